//! BATCH_MATMUL on quantized operands: int8 x int8 -> int8 (int32 accumulator), int16 x int16 -> int16 and
//! int16 x int8 -> int16 (int64 accumulator); LiteRT's `reference_ops::BatchMatMul<.., FullyConnectedParams>`.
//!
//! `output[..., r, c] = sum_k (lhs[..., r, k] - lhs_zp) * (rhs[..., k, c] - rhs_zp)` (`adj_x` / `adj_y`
//! transpose the last two dims of an operand first; batch dims broadcast, 2 to 5 dims), requantized with
//! one multiplier: `Prepare` computes `double(lhs_scale * rhs_scale) / double(output_scale)`, the product
//! in float as `GetQuantizedConvolutionMultipler` does. No fused activation: the clamp is the type's range.
//! Integer sums are exact, so LiteRT's batch-folding and operand swap do not change a result.

use super::batch_matmul::{transpose_last_two, MatmulDims};
use super::gemm::{self, PackedWeights};
use super::requantize::Requantizer;
use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_i64, quantize_multiplier,
};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// The integer BATCH_MATMUL kernel.
pub(crate) fn batch_matmul(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    use fb::TensorType as T;
    let lhs = ctx.input(0)?;
    let rhs = ctx.input(1)?;
    let (adj_x, adj_y) = match ctx.options() {
        fb::BuiltinOptionsT::BatchMatMulOptions(o) => (o.adj_x, o.adj_y),
        _ => (false, false),
    };
    let out_type = ctx.output_type(0)?;
    let wide = match (lhs.tensor_type(), rhs.tensor_type(), out_type) {
        (T::INT8, T::INT8, T::INT8) => false,
        (T::INT16, T::INT16 | T::INT8, T::INT16) => true,
        (a, b, o) => {
            return Err(format!(
                "no integer BATCH_MATMUL for {} x {} -> {}",
                crate::tflite::type_name(a),
                crate::tflite::type_name(b),
                crate::tflite::type_name(o)
            ))
        }
    };
    for (operand, shape) in [("LHS", &lhs.shape), ("RHS", &rhs.shape)] {
        if !(2..=5).contains(&shape.len()) {
            return Err(format!(
                "the {operand} has shape {shape:?}: BATCH_MATMUL takes 2 to 5 dims"
            ));
        }
    }
    let (lq, rq, oq) = (
        ctx.input_quant(0)?,
        ctx.input_quant(1)?,
        ctx.output_quant(0)?,
    );
    if wide && (lq.zero_point0() != 0 || rq.zero_point0() != 0 || oq.zero_point0() != 0) {
        return Err("int16 BATCH_MATMUL needs zero points 0".into());
    }
    let multiplier =
        quantize_multiplier(f64::from(lq.scale0() * rq.scale0()) / f64::from(oq.scale0()));
    let (qmin, qmax) = type_range(out_type)?;

    let MatmulDims {
        l,
        r,
        batch,
        rows,
        depth,
        cols,
    } = MatmulDims::new(&lhs.shape, &rhs.shape, adj_x, adj_y)?;
    // Row-major operands with the depth last: LHS [..., rows, depth], RHS [..., cols, depth].
    let lhs_offset = -lq.zero_point0();
    let rhs_offset = -rq.zero_point0();
    let x: Vec<i32> = codes(lhs)?.into_iter().map(|v| v + lhs_offset).collect();
    let x = if adj_x { transpose_last_two(&x, &l) } else { x };
    let w: Vec<i32> = codes(rhs)?.into_iter().map(|v| v + rhs_offset).collect();
    let w = if adj_y { w } else { transpose_last_two(&w, &r) };
    if x.len() != l.iter().product::<usize>() || w.len() != r.iter().product::<usize>() {
        return Err("operand sizes do not match their shapes".into());
    }
    let output_offset = oq.zero_point0();
    let matrices: usize = batch.iter().product();
    let mut shape = batch.clone();
    shape.extend([rows, cols]);
    if !wide && depth > 0 {
        let requantizer = Requantizer::new(
            &vec![0; cols],
            &vec![multiplier; cols],
            output_offset,
            (qmin, qmax),
        );
        let operands = Operands {
            x: &x,
            w: &w,
            l: &l,
            r: &r,
            batch: &batch,
            dims: (rows, depth, cols),
        };
        let out = int8_products(ctx, &operands, &requantizer)?;
        return Ok(vec![Tensor::new(shape, TensorData::I8(out))?]);
    }
    let mut out = Vec::with_capacity(matrices * rows * cols);
    for m in 0..matrices {
        // Each operand's matrix for output batch m: a size-1 batch dim broadcasts (LiteRT's `extent`).
        let (li, ri) = operand_matrices(m, &l, &r, &batch);
        let xm = &x[li * rows * depth..(li + 1) * rows * depth];
        let wm = &w[ri * cols * depth..(ri + 1) * cols * depth];
        for i in 0..rows {
            let xr = &xm[i * depth..(i + 1) * depth];
            for j in 0..cols {
                let wr = &wm[j * depth..(j + 1) * depth];
                let scaled = if wide {
                    let total: i64 = xr
                        .iter()
                        .zip(wr)
                        .map(|(&a, &b)| i64::from(a) * i64::from(b))
                        .sum();
                    multiply_by_quantized_multiplier_i64(total, multiplier)
                } else {
                    let total = xr
                        .iter()
                        .zip(wr)
                        .fold(0i32, |s, (&a, &b)| s.wrapping_add(a.wrapping_mul(b)));
                    multiply_by_quantized_multiplier(total, multiplier)
                };
                out.push(scaled.wrapping_add(output_offset).clamp(qmin, qmax));
            }
        }
    }
    Ok(vec![from_codes(shape, out_type, out)?])
}

/// Which LHS and RHS matrix output batch `m` reads: a size-1 batch dim broadcasts (LiteRT's `extent`).
fn operand_matrices(m: usize, l: &[usize], r: &[usize], batch: &[usize]) -> (usize, usize) {
    let rank = l.len();
    let (mut rest, mut li, mut ri) = (m, 0usize, 0usize);
    for d in (0..rank - 2).rev() {
        let i = rest % batch[d];
        rest /= batch[d];
        let lstride: usize = l[d + 1..rank - 2].iter().product();
        let rstride: usize = r[d + 1..rank - 2].iter().product();
        if l[d] != 1 {
            li += i * lstride;
        }
        if r[d] != 1 {
            ri += i * rstride;
        }
    }
    (li, ri)
}

/// Offset operands with the depth last (LHS `[..., rows, depth]`, RHS `[..., cols, depth]`) and dims.
struct Operands<'a> {
    x: &'a [i32],
    w: &'a [i32],
    l: &'a [usize],
    r: &'a [usize],
    batch: &'a [usize],
    dims: (usize, usize, usize),
}

/// int8 x int8 -> int8 through [`gemm::product`], matrix by matrix: the same wrapping int32 sums and
/// requantization as the reference loop.
fn int8_products(
    ctx: &OpCtx<'_>,
    o: &Operands<'_>,
    requantizer: &Requantizer,
) -> Result<Vec<i8>, String> {
    let (rows, depth, cols) = o.dims;
    let matrices: usize = o.batch.iter().product();
    let mut out = Vec::with_capacity(matrices * rows * cols);
    ctx.with_scratch(|s| -> Result<(), String> {
        for m in 0..matrices {
            let (li, ri) = operand_matrices(m, o.l, o.r, o.batch);
            let xm = &o.x[li * rows * depth..(li + 1) * rows * depth];
            let wm = &o.w[ri * cols * depth..(ri + 1) * cols * depth];
            // Offset int8 codes lie in [-255, 255]: exact in i16.
            let packed = PackedWeights::new(cols, depth, |c, k| wm[c * depth + k] as i16);
            let stride = packed.row_stride();
            s.activations.clear();
            s.activations.resize(rows * stride, 0);
            for (row, xs) in s
                .activations
                .chunks_exact_mut(stride)
                .zip(xm.chunks_exact(depth))
            {
                for (a, &v) in row.iter_mut().zip(xs) {
                    *a = v as i16;
                }
            }
            gemm::product(&s.activations, rows, &packed, &mut s.sums).ok_or("short operand")?;
            requantizer.apply(&s.sums, packed.padded_columns(), &mut out);
        }
        Ok(())
    })?;
    Ok(out)
}
