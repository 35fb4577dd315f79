//! Hybrid (dynamic-range) kernels: float activations quantized on the fly per batch, int8 weights,
//! float output (`EvalHybrid` of FULLY_CONNECTED, `HybridConvPerChannel`, `DepthwiseConvHybridPerChannel`).

use super::conv::{for_each_output, geometry, window};
use super::fully_connected::{fc_activation, fc_geometry, fc_output_shape};
use super::{channel_scales, codes, floats, OpCtx};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// Codes, scaling factor and zero point of one batch of float inputs.
pub(crate) struct Quantized {
    pub codes: Vec<i32>,
    pub scale: f32,
    pub offset: i32,
}

/// TFLite's `AsymmetricQuantizeFloats`: int8 with the range widened to include 0, the zero point nudged from
/// whichever end of the range loses less.
pub(crate) fn asymmetric_quantize(values: &[f32]) -> Quantized {
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let rmin = f64::from(min.min(0.0));
    let rmax = f64::from(max.max(0.0));
    // LiteRT 2.x keeps the range ends in float: their difference is rounded to f32 before the division.
    let range = f64::from(max.max(0.0) - min.min(0.0));
    if rmin == rmax {
        return Quantized {
            codes: vec![0; values.len()],
            scale: 1.0,
            offset: 0,
        };
    }
    let (qmin, qmax) = (-128.0f64, 127.0f64);
    let scale = range / (qmax - qmin);
    let from_min = qmin - rmin / scale;
    let from_max = qmax - rmax / scale;
    let from_min_error = qmin.abs() + (rmin / scale).abs();
    let from_max_error = qmax.abs() + (rmax / scale).abs();
    let zero_point = if from_min_error < from_max_error {
        from_min
    } else {
        from_max
    };
    let offset = if zero_point <= qmin {
        -128
    } else if zero_point >= qmax {
        127
    } else {
        zero_point.round() as i32
    };
    let scale = scale as f32;
    let inv = 1.0f32 / scale;
    let codes = values
        .iter()
        .map(|&v| ((offset as f32 + v * inv).round() as i32).clamp(-128, 127))
        .collect();
    Quantized {
        codes,
        scale,
        offset,
    }
}

/// TFLite's `SymmetricQuantizeFloats`: int8 in [-127, 127], zero point 0.
pub(crate) fn symmetric_quantize(values: &[f32]) -> Quantized {
    let range = values.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    if range == 0.0 {
        return Quantized {
            codes: vec![0; values.len()],
            scale: 1.0,
            offset: 0,
        };
    }
    let inv = 127.0f32 / range;
    Quantized {
        codes: values
            .iter()
            .map(|&v| ((v * inv).round() as i32).clamp(-127, 127))
            .collect(),
        scale: range / 127.0,
        offset: 0,
    }
}

fn clamp_float(v: f32, act: fb::ActivationFunctionType) -> f32 {
    use fb::ActivationFunctionType as A;
    match act {
        A::RELU => v.max(0.0),
        A::RELU6 => v.clamp(0.0, 6.0),
        A::RELU_N1_TO_1 => v.clamp(-1.0, 1.0),
        _ => v,
    }
}

fn float_bias(t: Option<&Tensor>, n: usize) -> Result<Vec<f32>, String> {
    match t {
        None => Ok(vec![0.0; n]),
        Some(b) => {
            let v = floats(b)?;
            if v.len() != n {
                return Err(format!("the bias has {} values, expected {n}", v.len()));
            }
            Ok(v.to_vec())
        }
    }
}

pub(crate) fn fully_connected(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let (batches, depth, units) = fc_geometry(input, filter)?;
    let x = floats(input)?;
    let w = codes(filter)?;
    let f_q = ctx.input_quant(1)?;
    let per_channel = f_q.scale.len() > 1;
    let scales = channel_scales(&f_q, units)?;
    let bias = float_bias(ctx.optional(2), units)?;
    let asymmetric = match ctx.options() {
        fb::BuiltinOptionsT::FullyConnectedOptions(o) => o.asymmetric_quantize_inputs,
        _ => false,
    };
    let act = fc_activation(ctx);
    let row_sums: Vec<i32> = (0..units)
        .map(|u| w[u * depth..(u + 1) * depth].iter().sum())
        .collect();
    let mut out = Vec::with_capacity(batches * units);
    for b in 0..batches {
        let row = &x[b * depth..(b + 1) * depth];
        let q = if asymmetric {
            asymmetric_quantize(row)
        } else {
            symmetric_quantize(row)
        };
        // Per-tensor filters fold their scale into the batch's scaling factor first.
        let batch_scale = if per_channel {
            q.scale
        } else {
            q.scale * scales[0]
        };
        for u in 0..units {
            let weights = &w[u * depth..(u + 1) * depth];
            let mut dot: i32 = q.codes.iter().zip(weights).map(|(&a, &b)| a * b).sum();
            dot -= row_sums[u] * q.offset;
            let scale = if per_channel {
                batch_scale * scales[u]
            } else {
                batch_scale
            };
            out.push(clamp_float(bias[u] + dot as f32 * scale, act));
        }
    }
    Ok(vec![Tensor::new(
        fc_output_shape(ctx, batches, units),
        TensorData::F32(out),
    )?])
}

pub(crate) fn conv(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    hybrid_conv(ctx, false)
}

pub(crate) fn depthwise(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    hybrid_conv(ctx, true)
}

fn hybrid_conv(ctx: &OpCtx<'_>, depthwise: bool) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let w = window(ctx)?;
    let g = geometry(input, filter, &w, depthwise)?;
    let x = floats(input)?;
    let f = codes(filter)?;
    let scales = channel_scales(&ctx.input_quant(1)?, g.out_c)?;
    let bias = float_bias(ctx.optional(2), g.out_c)?;
    let per_batch = g.in_h * g.in_w * g.in_c;
    let batches: Vec<Quantized> = (0..g.batches)
        .map(|b| asymmetric_quantize(&x[b * per_batch..(b + 1) * per_batch]))
        .collect();
    let qx: Vec<i32> = batches
        .iter()
        .flat_map(|q| q.codes.iter().copied())
        .collect();
    let per_out_batch = g.out_h * g.out_w * g.out_c;
    let mut out = vec![0f32; g.batches * per_out_batch];
    let mut bad_index = false;
    for_each_output(&g, &w, depthwise, |o, oc, pairs| {
        let q = &batches[o / per_out_batch.max(1)];
        let mut acc: i32 = 0;
        for (xi, fi) in pairs {
            match (qx.get(xi), f.get(fi)) {
                (Some(&xv), Some(&fv)) => acc += fv * (xv - q.offset),
                _ => bad_index = true,
            }
        }
        let v = if depthwise {
            acc as f32 * q.scale * scales[oc]
        } else {
            acc as f32 * scales[oc] * q.scale
        };
        out[o] = clamp_float(v + bias[oc], w.activation);
    });
    if bad_index {
        return Err(format!(
            "filter {:?} does not fit input {:?}",
            filter.shape, input.shape
        ));
    }
    Ok(vec![Tensor::new(
        vec![g.batches, g.out_h, g.out_w, g.out_c],
        TensorData::F32(out),
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_quantization_keeps_zero_exact_and_spans_the_range() {
        let q = asymmetric_quantize(&[0.0, 1.0, 2.0, -0.5]);
        assert_eq!(q.codes[0], q.offset);
        assert_eq!(*q.codes.iter().max().unwrap(), 127);
        assert!((q.scale - 2.5 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn all_zero_inputs_quantize_to_zero_with_unit_scale() {
        let q = asymmetric_quantize(&[0.0; 4]);
        assert_eq!((q.codes, q.scale, q.offset), (vec![0; 4], 1.0, 0));
    }
}
