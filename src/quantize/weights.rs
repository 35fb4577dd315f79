//! Symmetric integer weight quantization, per tensor or per channel (TFLite's weight scheme).
//!
//! `real = q * scale`, zero point 0, `q` in `[-(2^(bits-1) - 1), 2^(bits-1) - 1]` (narrow range: -127..127
//! for int8, so the negated range stays representable). Per channel, each slice along `axis` gets its own
//! scale from its own maximum magnitude.

/// Why weights could not be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    /// The values do not fill the shape.
    #[error("weight shape {shape:?} holds {expected} values but the tensor has {found}")]
    ShapeMismatch {
        /// The tensor's shape.
        shape: Vec<i32>,
        /// Elements the shape holds.
        expected: usize,
        /// Elements present.
        found: usize,
    },
    /// The quantized axis is outside the shape.
    #[error("quantized axis {axis} is outside the weight shape {shape:?}")]
    AxisOutOfRange {
        /// The requested axis.
        axis: usize,
        /// The tensor's shape.
        shape: Vec<i32>,
    },
    /// A value is NaN or infinite: no finite scale can represent it.
    #[error("weight value at element {index} is not finite ({value})")]
    NonFinite {
        /// Flat index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Only 2 to 8 bits fit the int8 storage this function returns.
    #[error("cannot quantize weights to {0} bits (2 to 8 supported)")]
    Bits(u32),
}

/// Symmetrically quantized weights: values, one scale per slice (or one), and the axis they apply to.
#[derive(Debug, Clone, PartialEq)]
pub struct SymmetricWeights {
    /// Quantized values, same layout as the input.
    pub values: Vec<i8>,
    /// One scale per slice of `axis`, or a single scale when per tensor.
    pub scales: Vec<f32>,
    /// The quantized dimension, `None` for per tensor.
    pub axis: Option<usize>,
}

impl SymmetricWeights {
    /// Zero points for TFLite's `QuantizationParameters` (all 0, one per scale).
    pub fn zero_points(&self) -> Vec<i64> {
        vec![0; self.scales.len()]
    }

    /// Values as raw bytes for a tensor buffer.
    pub fn bytes(&self) -> Vec<u8> {
        self.values.iter().map(|&v| v as u8).collect()
    }

    /// The float value each quantized value stands for (`q * scale` of its slice).
    pub fn dequantize(&self, shape: &[i32]) -> Vec<f32> {
        let (_, channels, inner) = split_shape(shape, self.axis);
        self.values
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let c = if self.axis.is_some() && channels > 0 {
                    (i / inner.max(1)) % channels
                } else {
                    0
                };
                f32::from(q) * self.scales.get(c).copied().unwrap_or(0.0)
            })
            .collect()
    }
}

/// Quantizes `values` (laid out row-major in `shape`) to signed `bits`-bit symmetric integers.
///
/// With `axis`, every slice along that dimension gets its own scale `max|w| / qmax` (TFLite's per-channel
/// scheme: axis 0 for CONV_2D and FULLY_CONNECTED, 3 for DEPTHWISE_CONV_2D); without, one scale for all.
/// An all-zero slice gets scale 1 (any scale represents it exactly, and 0 would be an invalid scale).
/// Values round half away from zero, as TFLite's `std::round`.
pub fn quantize_weights_symmetric(
    values: &[f32],
    shape: &[i32],
    axis: Option<usize>,
    bits: u32,
) -> Result<SymmetricWeights, WeightError> {
    if !(2..=8).contains(&bits) {
        return Err(WeightError::Bits(bits));
    }
    let expected: usize = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .product();
    if expected != values.len() {
        return Err(WeightError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            found: values.len(),
        });
    }
    if let Some(a) = axis {
        if a >= shape.len() {
            return Err(WeightError::AxisOutOfRange {
                axis: a,
                shape: shape.to_vec(),
            });
        }
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(WeightError::NonFinite { index, value });
    }
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let (_, channels, inner) = split_shape(shape, axis);
    let n_scales = if axis.is_some() { channels } else { 1 };
    let channel_of = |i: usize| {
        if axis.is_some() && channels > 0 {
            (i / inner.max(1)) % channels
        } else {
            0
        }
    };

    let mut max_abs = vec![0f32; n_scales.max(1)];
    for (i, &v) in values.iter().enumerate() {
        let m = &mut max_abs[channel_of(i)];
        *m = m.max(v.abs());
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / qmax } else { 1.0 })
        .collect();
    let quantized = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let q = (v / scales[channel_of(i)]).round();
            q.clamp(-qmax, qmax) as i8
        })
        .collect();
    Ok(SymmetricWeights {
        values: quantized,
        scales: scales[..n_scales].to_vec(),
        axis,
    })
}

/// `(elements before axis, size of axis, elements after axis)`; per tensor is `(1, 1, all)`.
fn split_shape(shape: &[i32], axis: Option<usize>) -> (usize, usize, usize) {
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .collect();
    match axis {
        Some(a) if a < dims.len() => (
            dims[..a].iter().product(),
            dims[a],
            dims[a + 1..].iter().product(),
        ),
        _ => (1, 1, dims.iter().product()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tensor_scale_is_max_magnitude_over_127() {
        let w = quantize_weights_symmetric(&[0.5, -1.27, 0.0, 1.0], &[2, 2], None, 8).unwrap();
        assert_eq!(w.scales, vec![0.01]);
        assert_eq!(w.values, vec![50, -127, 0, 100]);
        assert_eq!(w.zero_points(), vec![0]);
    }

    #[test]
    fn per_channel_scales_come_from_each_slice_on_axis_0() {
        // Two output channels of a [2, 1, 1, 3] conv filter.
        let values = [1.0, -2.0, 0.5, 0.1, 0.2, -0.3];
        let w = quantize_weights_symmetric(&values, &[2, 1, 1, 3], Some(0), 8).unwrap();
        assert_eq!(w.scales.len(), 2);
        assert!((w.scales[0] - 2.0 / 127.0).abs() < 1e-9);
        assert!((w.scales[1] - 0.3 / 127.0).abs() < 1e-9);
        assert_eq!(w.values[1], -127);
        assert_eq!(w.values[5], -127);
    }

    #[test]
    fn per_channel_on_last_axis_matches_depthwise_layout() {
        // [1, 2, 1, 2] depthwise filter: channel = index % 2.
        let values = [1.0, 0.1, -0.5, 0.05];
        let w = quantize_weights_symmetric(&values, &[1, 2, 1, 2], Some(3), 8).unwrap();
        assert!((w.scales[0] - 1.0 / 127.0).abs() < 1e-9);
        assert!((w.scales[1] - 0.1 / 127.0).abs() < 1e-9);
        assert_eq!(w.values, vec![127, 127, -64, 64]);
    }

    #[test]
    fn all_zero_slice_gets_scale_one_and_zero_values() {
        let w = quantize_weights_symmetric(&[0.0, 0.0, 3.0, -3.0], &[2, 2], Some(0), 8).unwrap();
        assert_eq!(w.scales[0], 1.0);
        assert_eq!(&w.values[..2], &[0, 0]);
    }

    #[test]
    fn dequantized_weights_are_within_half_a_step() {
        let values: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013)
            .collect();
        let shape = [4, 16];
        for axis in [None, Some(0), Some(1)] {
            let w = quantize_weights_symmetric(&values, &shape, axis, 8).unwrap();
            let back = w.dequantize(&shape);
            let max_scale = w.scales.iter().cloned().fold(0f32, f32::max);
            for (a, b) in values.iter().zip(&back) {
                assert!(
                    (a - b).abs() <= max_scale / 2.0 + 1e-7,
                    "{a} vs {b} (axis {axis:?})"
                );
            }
        }
    }

    #[test]
    fn four_bit_weights_use_range_minus_7_to_7() {
        let w = quantize_weights_symmetric(&[0.7, -0.7, 0.35], &[3], None, 4).unwrap();
        assert_eq!(w.values, vec![7, -7, 4]);
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert!(matches!(
            quantize_weights_symmetric(&[1.0], &[2], None, 8),
            Err(WeightError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            quantize_weights_symmetric(&[1.0, 2.0], &[2], Some(1), 8),
            Err(WeightError::AxisOutOfRange { .. })
        ));
        assert!(matches!(
            quantize_weights_symmetric(&[f32::NAN], &[1], None, 8),
            Err(WeightError::NonFinite { .. })
        ));
        assert!(matches!(
            quantize_weights_symmetric(&[1.0], &[1], None, 9),
            Err(WeightError::Bits(9))
        ));
    }
}
