//! Quantizing constant data: weights (int8 symmetric, per channel), biases (int32 / int64 with the product
//! scale) and constants that are quantized like activations.
//!
//! Private to the integer driver until the shared `quantize::weights` module lands.

use crate::quantize::params::{ActivationType, QuantParams};

/// Largest int8 weight magnitude (weights use [-127, 127] so the range is symmetric).
pub(crate) const WEIGHT_MAX: f32 = 127.0;

/// Weights quantized to int8 with their params.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuantizedWeights {
    /// int8 values, row-major like the source.
    pub values: Vec<i8>,
    /// One scale (per tensor) or one per slice along the axis.
    pub params: QuantParams,
}

/// For each element of a row-major tensor of `shape`, its index along `axis`.
fn channel_of(shape: &[usize], axis: usize) -> impl Fn(usize) -> usize {
    let inner: usize = shape[axis + 1..].iter().product::<usize>().max(1);
    let dim = shape[axis].max(1);
    move |i| (i / inner) % dim
}

/// Per-slice weight scales `max|w| / 127` (one for the whole tensor when `axis` is `None`).
pub(crate) fn weight_scales(values: &[f32], shape: &[usize], axis: Option<usize>) -> Vec<f32> {
    let mut max_abs = match axis {
        Some(a) => vec![0.0f32; shape[a]],
        None => vec![0.0f32],
    };
    let channel = axis.map(|a| channel_of(shape, a));
    for (i, v) in values.iter().enumerate() {
        let c = channel.as_ref().map_or(0, |f| f(i));
        max_abs[c] = max_abs[c].max(v.abs());
    }
    // An all-zero slice gets scale 1: any positive scale represents zeros exactly and the tensor loads.
    max_abs
        .into_iter()
        .map(|m| if m > 0.0 { m / WEIGHT_MAX } else { 1.0 })
        .collect()
}

/// Widens weight scales so that `bias / (input_scale * weight_scale)` stays within half of the int32 range
/// (`AdjustWeightsForBiasScale`): a bias far larger than the weights would otherwise saturate.
pub(crate) fn widen_for_bias(scales: &mut [f32], bias: &[f32], input_scale: f32) {
    let limit = 0.5 * f64::from(i32::MAX);
    for (c, b) in bias.iter().enumerate() {
        let s = if scales.len() == 1 { 0 } else { c };
        let Some(scale) = scales.get_mut(s) else {
            continue;
        };
        let needed = f64::from(b.abs()) / (f64::from(input_scale) * limit);
        if f64::from(*scale) < needed {
            *scale = needed as f32;
        }
    }
}

/// Quantizes weights with the given scales (symmetric, zero point 0, values in [-127, 127]).
pub(crate) fn quantize_weights(
    values: &[f32],
    shape: &[usize],
    axis: Option<usize>,
    scales: Vec<f32>,
) -> Result<QuantizedWeights, String> {
    let channel = axis.map(|a| channel_of(shape, a));
    let q = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = scales[channel.as_ref().map_or(0, |f| f(i))];
            (v / s).round().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8
        })
        .collect();
    let n = scales.len();
    let params = QuantParams::per_axis(scales, vec![0; n], axis.unwrap_or(0) as i32)
        .map_err(|e| e.to_string())?;
    Ok(QuantizedWeights { values: q, params })
}

/// Quantizes a bias with `scale[c] = input_scale * weight_scale[c]`, zero point 0, clamped to
/// `[-max, max]` of the storage type (int32, or int64 for int16 activations).
pub(crate) fn quantize_bias(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
    wide: bool,
) -> Result<(Vec<i64>, QuantParams), String> {
    let scales: Vec<f32> = weight_scales.iter().map(|w| input_scale * w).collect();
    if scales.len() != 1 && scales.len() != bias.len() {
        return Err(format!(
            "bias has {} values but the weights have {} channels",
            bias.len(),
            scales.len()
        ));
    }
    let limit = if wide {
        i64::MAX as f64
    } else {
        f64::from(i32::MAX)
    };
    let q = bias
        .iter()
        .enumerate()
        .map(|(c, b)| {
            let s = scales[if scales.len() == 1 { 0 } else { c }];
            (f64::from(*b) / f64::from(s)).round().clamp(-limit, limit) as i64
        })
        .collect();
    let n = scales.len();
    let params = QuantParams::per_axis(scales, vec![0; n], 0).map_err(|e| e.to_string())?;
    Ok((q, params))
}

/// Quantizes a constant with activation params, into the storage range of `ty`.
pub(crate) fn quantize_with(values: &[f32], params: &QuantParams, ty: ActivationType) -> Vec<i64> {
    let (qmin, qmax) = ty.range();
    values
        .iter()
        .map(|&v| params.quantize_value(v, 0, qmin, qmax))
        .collect()
}

/// Activation params for a constant, from its own values (`quantize_input_as_activations`).
pub(crate) fn constant_activation_params(
    values: &[f32],
    ty: ActivationType,
) -> Result<QuantParams, String> {
    let min = values.iter().copied().fold(0.0f32, f32::min);
    let max = values.iter().copied().fold(0.0f32, f32::max);
    ty.params_for_range(min, max).map_err(|e| e.to_string())
}

/// Little-endian bytes of integers stored as `ty`'s element width.
pub(crate) fn to_bytes(values: &[i64], bytes_per_value: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * bytes_per_value);
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..bytes_per_value]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_weights_get_one_scale_per_output_channel() {
        // Two output channels (axis 0), each with 2 values.
        let w = [1.0, -0.5, 0.25, 0.125];
        let scales = weight_scales(&w, &[2, 2], Some(0));
        assert_eq!(scales, vec![1.0 / 127.0, 0.25 / 127.0]);
        let q = quantize_weights(&w, &[2, 2], Some(0), scales).unwrap();
        assert_eq!(q.values, vec![127, -64, 127, 64]);
        assert_eq!(q.params.zero_point(), &[0, 0]);
    }

    #[test]
    fn depthwise_weights_are_split_along_the_last_axis() {
        // Shape [1, 2, 3]: channel = index % 3.
        let w = [3.0, 1.0, 2.0, -3.0, 0.5, 1.0];
        let scales = weight_scales(&w, &[1, 2, 3], Some(2));
        assert_eq!(scales, vec![3.0 / 127.0, 1.0 / 127.0, 2.0 / 127.0]);
    }

    #[test]
    fn bias_scale_is_input_scale_times_weight_scale() {
        let (q, p) = quantize_bias(&[1.0, -2.0], 0.5, &[0.01, 0.02], false).unwrap();
        assert_eq!(p.scale(), &[0.005, 0.01]);
        assert_eq!(q, vec![200, -200]);
    }

    #[test]
    fn int32_bias_is_clamped_symmetrically() {
        let (q, _) = quantize_bias(&[1e30, -1e30], 1e-3, &[1e-3], false).unwrap();
        assert_eq!(q, vec![i64::from(i32::MAX), -i64::from(i32::MAX)]);
    }

    #[test]
    fn huge_bias_widens_the_weight_scale() {
        let mut scales = vec![1e-6f32];
        widen_for_bias(&mut scales, &[1e6], 1e-3);
        let (q, _) = quantize_bias(&[1e6], 1e-3, &scales, false).unwrap();
        assert!(
            q[0] <= i64::from(i32::MAX) / 2 + 1,
            "bias {} should fit half the int32 range",
            q[0]
        );
    }

    #[test]
    fn bias_length_must_match_channels() {
        assert!(quantize_bias(&[1.0, 2.0, 3.0], 1.0, &[1.0, 1.0], false).is_err());
    }
}
