//! FULLY_CONNECTED on int8 (int32 bias) and int16 (int64 bias) activations with int8 weights
//! (`reference_integer_ops::FullyConnected`, `FullyConnectedPerChannel`).

use super::{bias_i64, codes, dim, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::activation_range;
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// Batches and depth of an FC input: the filter's second dim is the depth, everything else is batches.
pub(super) fn fc_geometry(
    input: &Tensor,
    filter: &Tensor,
) -> Result<(usize, usize, usize), String> {
    if filter.shape.len() != 2 {
        return Err(format!(
            "the filter has shape {:?}, expected 2-D",
            filter.shape
        ));
    }
    let units = filter.shape[0];
    let depth = dim(&filter.shape, 1, "filter")?;
    if depth == 0 || input.len() % depth != 0 {
        return Err(format!(
            "input of {} elements does not split into rows of {depth}",
            input.len()
        ));
    }
    Ok((input.len() / depth, depth, units))
}

/// The output shape: the declared one when it holds `batches * units` elements, else `[batches, units]`.
pub(super) fn fc_output_shape(ctx: &OpCtx<'_>, batches: usize, units: usize) -> Vec<usize> {
    match ctx.output_shape(0) {
        Ok(s) if !s.is_empty() && s.iter().product::<usize>() == batches * units => s,
        _ => vec![batches, units],
    }
}

pub(super) fn fc_activation(ctx: &OpCtx<'_>) -> fb::ActivationFunctionType {
    match ctx.options() {
        fb::BuiltinOptionsT::FullyConnectedOptions(o) => o.fused_activation_function,
        _ => fb::ActivationFunctionType::NONE,
    }
}

pub(crate) fn fully_connected(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let (batches, depth, units) = fc_geometry(input, filter)?;
    let in_q = ctx.input_quant(0)?;
    let f_q = ctx.input_quant(1)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (act_min, act_max) = activation_range(
        fc_activation(ctx),
        out_q.scale0(),
        out_q.zero_point0(),
        qmin,
        qmax,
    );
    // LiteRT's reference FULLY_CONNECTED (and its int16-activation kernels on every path) requantize with
    // the real scale in double, `round(acc * input_scale * filter_scale / output_scale)`, not with a
    // fixed-point multiplier: the two differ by one code on a few percent of outputs.
    let scales: Vec<f64> = if f_q.scale.len() > 1 {
        if f_q.scale.len() != units {
            return Err(format!(
                "the filter has {} scales for {units} units",
                f_q.scale.len()
            ));
        }
        f_q.scale
            .iter()
            .map(|&s| f64::from(in_q.scale0()) * f64::from(s) / f64::from(out_q.scale0()))
            .collect()
    } else {
        vec![f64::from(in_q.scale0()) * f64::from(f_q.scale0()) / f64::from(out_q.scale0()); units]
    };
    let wide = input.tensor_type() == fb::TensorType::INT16;
    let x = codes(input)?;
    let f = codes(filter)?;
    let bias = bias_i64(ctx.optional(2), units)?;
    let input_offset = -in_q.zero_point0();
    let filter_offset = -f_q.zero_point0();
    let output_offset = out_q.zero_point0();
    let mut out = Vec::with_capacity(batches * units);
    for b in 0..batches {
        let row = &x[b * depth..(b + 1) * depth];
        for u in 0..units {
            let weights = &f[u * depth..(u + 1) * depth];
            let mut acc: i64 = row
                .iter()
                .zip(weights)
                .map(|(&xv, &wv)| i64::from(wv + filter_offset) * i64::from(xv + input_offset))
                .sum();
            acc += bias[u];
            // int8 kernels accumulate in int32 (wrapping); int16 ones in the bias type (int64).
            let acc = if wide {
                acc as f64
            } else {
                f64::from(acc as i32)
            };
            let scaled = (acc * scales[u]).round();
            let v = (scaled.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
                .saturating_add(output_offset);
            out.push(v.clamp(act_min, act_max));
        }
    }
    Ok(vec![from_codes(
        fc_output_shape(ctx, batches, units),
        out_type,
        out,
    )?])
}
