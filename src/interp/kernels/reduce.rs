//! MEAN and SUM on int8 / int16: int32 sums, then one requantization (MEAN in fixed point with 1/count folded
//! in, `reference_ops::QuantizedMeanOrSum`; SUM in float as LiteRT's builtin kernel); REDUCE_MAX / REDUCE_MIN
//! on raw codes.

use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_i64, quantize_multiplier,
    QuantizedMultiplier,
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

/// The reduction of one op: its input codes folded over the resolved axes.
struct Reduced {
    /// One accumulator per output cell (keep_dims layout).
    cells: Vec<i32>,
    /// Elements folded into each cell.
    count: i64,
    /// The output shape under `keep_dims`.
    shape: Vec<usize>,
}

/// Folds the codes of input 0 over the axes of input 1 with `f`, from `init`, in row-major order.
fn fold(ctx: &OpCtx<'_>, init: i32, f: impl Fn(i32, i32) -> i32) -> Result<Reduced, String> {
    fold_first(ctx, |v| f(init, v), &f)
}

/// Folds the codes of input 0 over the axes of input 1 in row-major order (`reference_ops::Reduce`): the
/// first element of each output cell through `first`, the others through `next`.
fn fold_first(
    ctx: &OpCtx<'_>,
    first: impl Fn(i32) -> i32,
    next: impl Fn(i32, i32) -> i32,
) -> Result<Reduced, String> {
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
    let reduced: Vec<bool> = (0..rank).map(|d| axes.contains(&d)).collect();
    let out_dims: Vec<usize> = input
        .shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if reduced[d] { 1 } else { n })
        .collect();
    let count: i64 = input
        .shape
        .iter()
        .enumerate()
        .filter(|(d, _)| reduced[*d])
        .map(|(_, &n)| n as i64)
        .product();
    let x = codes(input)?;
    if let Some(cells) = fold_block(&input.shape, &reduced, &x, &first, &next) {
        let shape = reduced_shape(&input.shape, &reduced, out_dims, keep_dims);
        return Ok(Reduced {
            cells,
            count,
            shape,
        });
    }
    let mut cells = vec![0; out_dims.iter().product()];
    let mut seen = vec![false; cells.len()];
    let mut index = vec![0usize; rank];
    for &v in &x {
        let mut o = 0;
        for d in 0..rank {
            o = o * out_dims[d] + if reduced[d] { 0 } else { index[d] };
        }
        cells[o] = if std::mem::replace(&mut seen[o], true) {
            next(cells[o], v)
        } else {
            first(v)
        };
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < input.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    let shape = reduced_shape(&input.shape, &reduced, out_dims, keep_dims);
    Ok(Reduced {
        cells,
        count,
        shape,
    })
}

/// The output shape of a reduction: `out_dims` (reduced dims 1) under `keep_dims`, else the kept dims.
fn reduced_shape(
    shape: &[usize],
    reduced: &[bool],
    out_dims: Vec<usize>,
    keep_dims: bool,
) -> Vec<usize> {
    if keep_dims {
        return out_dims;
    }
    shape
        .iter()
        .zip(reduced)
        .filter(|(_, &r)| !r)
        .map(|(&n, _)| n)
        .collect()
}

/// [`fold_first`]'s loop when the reduced dims are consecutive (a mean over height and width): the input
/// as `[outer, reduced, inner]`, each cell folded over its elements in the same row-major order. `None`
/// for other axes.
fn fold_block(
    shape: &[usize],
    reduced: &[bool],
    x: &[i32],
    first: &impl Fn(i32) -> i32,
    next: &impl Fn(i32, i32) -> i32,
) -> Option<Vec<i32>> {
    let lo = reduced.iter().position(|&r| r)?;
    let hi = reduced.iter().rposition(|&r| r)?;
    if !reduced[lo..=hi].iter().all(|&r| r) {
        return None;
    }
    let outer: usize = shape[..lo].iter().product();
    let middle: usize = shape[lo..=hi].iter().product();
    let inner: usize = shape[hi + 1..].iter().product();
    if middle == 0 || x.len() != outer * middle * inner {
        return None;
    }
    let mut cells = vec![0; outer * inner];
    for (o, block) in x.chunks_exact(middle * inner).enumerate() {
        let acc = &mut cells[o * inner..(o + 1) * inner];
        for (m, row) in block.chunks_exact(inner.max(1)).enumerate() {
            for (c, &v) in acc.iter_mut().zip(row) {
                *c = if m == 0 { first(v) } else { next(*c, v) };
            }
        }
    }
    Some(cells)
}

/// SUM as LiteRT's builtin kernel computes it (`optimized_ops::QuantizedMeanOrSum` with `compute_sum`): the
/// int32 sum scaled by `input_scale / output_scale` in float, less the zero points' float bias, rounded half
/// away from zero. (BUILTIN_REF's SUM reads int8 and int16 codes as uint8 bytes, a LiteRT bug, so the
/// generated suite checks SUM against the builtin kernel.)
pub(crate) fn sum(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let (in_q, out_q) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let r = fold(ctx, 0, i32::wrapping_add)?;
    let scale = in_q.scale0() / out_q.scale0();
    let bias = -(in_q.zero_point0() as f32) * scale * r.count as f32;
    let out_zp = out_q.zero_point0();
    let out = r
        .cells
        .into_iter()
        .map(|s| (((s as f32) * scale + bias).round() as i32 + out_zp).clamp(qmin, qmax))
        .collect();
    Ok(vec![from_codes(r.shape, out_type, out)?])
}

/// MEAN: int32 sums requantized once, 1/count folded into the multiplier (`reference_ops::QuantizedMeanOrSum`).
pub(crate) fn mean(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let in_q = ctx.input_quant(0)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let r = fold(ctx, 0, i32::wrapping_add)?;
    let count = r.count;
    let base = quantize_multiplier(f64::from(in_q.scale0()) / f64::from(out_q.scale0()));
    // 1/count folded into the multiplier, keeping it within int32 and the shift within range.
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
    let out = r
        .cells
        .into_iter()
        .map(|s| {
            let shifted = s.wrapping_sub((i64::from(in_zp) * count) as i32);
            (multiply_by_quantized_multiplier(shifted, m) + out_zp).clamp(qmin, qmax)
        })
        .collect();
    Ok(vec![from_codes(r.shape, out_type, out)?])
}

/// REDUCE_MAX (`max`) / REDUCE_MIN on raw codes (`EvalGeneric`): the output shares the input's params.
pub(crate) fn extreme(ctx: &OpCtx<'_>, max: bool) -> Result<Vec<Tensor>, String> {
    let out_type = ctx.output_type(0)?;
    let (lo, hi) = type_range(out_type)?;
    let r = if max {
        fold(ctx, lo, i32::max)?
    } else {
        fold(ctx, hi, i32::min)?
    };
    Ok(vec![from_codes(r.shape, out_type, r.cells)?])
}

/// REDUCE_PROD on int8 / int16 (`reference_ops::QuantizedReduceProd`): each step of the product rescaled by
/// `input_scale / output_scale^(1/n)` (n reduced elements per output), once more at the end.
pub(crate) fn prod(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let (in_q, out_q) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let input = ctx.input(0)?;
    let axes = ctx
        .input(1)?
        .data
        .to_i64()
        .ok_or("the axes are not integers")?;
    let reduced: usize = resolve_axes(&axes, input.shape.len())?
        .into_iter()
        .map(|a| input.shape[a])
        .product();
    if reduced == 0 || input.is_empty() {
        return Err("REDUCE_PROD of an empty tensor".into());
    }
    let scaling = f64::from(in_q.scale0()) / f64::from(out_q.scale0()).powf(1.0 / reduced as f64);
    let m = quantize_multiplier(scaling);
    let zp = in_q.zero_point0();
    let r = fold_first(
        ctx,
        |v| v - zp,
        |cur, v| multiply_by_quantized_multiplier_i64(i64::from(cur) * i64::from(v - zp), m),
    )?;
    let out_zp = out_q.zero_point0();
    let out = r
        .cells
        .into_iter()
        .map(|p| (multiply_by_quantized_multiplier_i64(i64::from(p), m) + out_zp).clamp(qmin, qmax))
        .collect();
    Ok(vec![from_codes(r.shape, out_type, out)?])
}
