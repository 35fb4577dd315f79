//! MEAN on int8 / int16 (`reference_ops::QuantizedMeanOrSum`): int32 sums, then one requantization that
//! folds in 1/count.

use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, QuantizedMultiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// Axes resolved against the rank (negative from the end), deduplicated.
pub(super) fn resolve_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for &a in axes {
        let r = if a < 0 { a + rank as i64 } else { a };
        if r < 0 || r >= rank as i64 {
            return Err(format!("axis {a} is out of range for rank {rank}"));
        }
        if !out.contains(&(r as usize)) {
            out.push(r as usize);
        }
    }
    Ok(out)
}

pub(crate) fn mean(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let axes = ctx
        .input(1)?
        .data
        .to_i64()
        .ok_or("the axes are not integers")?;
    let keep_dims = match ctx.options() {
        fb::BuiltinOptionsT::ReducerOptions(o) => o.keep_dims,
        _ => false,
    };
    let rank = input.shape.len();
    let axes = resolve_axes(&axes, rank)?;
    let in_q = ctx.input_quant(0)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let reduced: Vec<bool> = (0..rank).map(|d| axes.contains(&d)).collect();
    let out_dims: Vec<usize> = input
        .shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if reduced[d] { 1 } else { n })
        .collect();
    let out_count: usize = out_dims.iter().product();
    let count: i64 = input
        .shape
        .iter()
        .enumerate()
        .filter(|(d, _)| reduced[*d])
        .map(|(_, &n)| n as i64)
        .product();
    let x = codes(input)?;
    let mut sums = vec![0i32; out_count];
    let mut index = vec![0usize; rank];
    for &v in &x {
        let mut o = 0;
        for d in 0..rank {
            o = o * out_dims[d] + if reduced[d] { 0 } else { index[d] };
        }
        sums[o] = sums[o].wrapping_add(v);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < input.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    let base = quantize_multiplier(f64::from(in_q.scale0()) / f64::from(out_q.scale0()));
    // Fold 1/count into the multiplier, keeping it within int32 and the shift within range.
    let m = if count > 0 {
        let shift = (63 - (count as u64).leading_zeros() as i32)
            .min(32)
            .min(31 + base.shift);
        QuantizedMultiplier {
            multiplier: ((i64::from(base.multiplier) << shift.max(0)) / count) as i32,
            shift: base.shift - shift,
        }
    } else {
        base
    };
    let (in_zp, out_zp) = (in_q.zero_point0(), out_q.zero_point0());
    let out = sums
        .into_iter()
        .map(|s| {
            let shifted = s.wrapping_sub((i64::from(in_zp) * count) as i32);
            (multiply_by_quantized_multiplier(shifted, m) + out_zp).clamp(qmin, qmax)
        })
        .collect();
    let shape = if keep_dims {
        out_dims
    } else {
        input
            .shape
            .iter()
            .enumerate()
            .filter(|(d, _)| !reduced[*d])
            .map(|(_, &n)| n)
            .collect()
    };
    Ok(vec![from_codes(shape, out_type, out)?])
}
