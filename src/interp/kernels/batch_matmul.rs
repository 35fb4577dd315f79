//! BATCH_MATMUL with float activations and int8 weights (dynamic range): LiteRT's `EvalHybrid`.
//!
//! `output[..., r, c] = sum_k lhs[..., r, k] * rhs[..., k, c]` (`adj_x` / `adj_y` transpose the last two dims
//! of an operand first; batch dims broadcast). Each LHS row is quantized to int8 on the fly (asymmetric with
//! `asymmetric_quantize_inputs`, else symmetric), multiplied with the int8 RHS in int32, and scaled back to
//! float by the row's scaling factor times the RHS scale: one per tensor (what litequant's dynamic mode
//! writes) or one per output column.
//!
//! The loops follow LiteRT's reference kernel, including where it reads each row's quantization parameters
//! and each weight row's sum: with more than one non-broadcast batch dim it reads them at `b * rows` per
//! batch dim instead of the flat batch index, and LiteRT's results are what a user of the artifact gets.

use super::hybrid::{asymmetric_quantize, symmetric_quantize};
use super::{channel_scales, floats, OpCtx};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// `shape` padded with leading 1s to `rank` dims (LiteRT's `RuntimeShape::ExtendedShape`).
pub(super) fn extended(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut dims = vec![1; rank.saturating_sub(shape.len())];
    dims.extend_from_slice(shape);
    dims
}

/// The last two dims of a row-major `[..., a, b]` array swapped: `[..., b, a]`.
pub(super) fn transpose_last_two<T: Copy>(data: &[T], shape: &[usize]) -> Vec<T> {
    let n = shape.len();
    let (a, b) = (shape[n - 2], shape[n - 1]);
    let mut out = Vec::with_capacity(data.len());
    for matrix in data.chunks_exact((a * b).max(1)) {
        for j in 0..b {
            out.extend((0..a).map(|i| matrix[i * b + j]));
        }
    }
    out
}

/// How far one step along dim `k` of a 5-D shape moves in memory; 0 for a size-1 (broadcast) dim.
fn extent(shape5: &[usize], k: usize) -> usize {
    if shape5[k] == 1 {
        0
    } else {
        shape5[k + 1..].iter().product()
    }
}

pub(crate) fn hybrid(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let lhs = ctx.input(0)?;
    let rhs = ctx.input(1)?;
    let (adj_x, adj_y, asymmetric) = match ctx.options() {
        fb::BuiltinOptionsT::BatchMatMulOptions(o) => {
            (o.adj_x, o.adj_y, o.asymmetric_quantize_inputs)
        }
        _ => (false, false, false),
    };
    let x = floats(lhs)?;
    let TensorData::I8(w) = &rhs.data else {
        return Err(format!(
            "the hybrid kernel takes int8 weights, the RHS is {}",
            crate::tflite::type_name(rhs.tensor_type())
        ));
    };
    for (operand, shape, len) in [("LHS", &lhs.shape, x.len()), ("RHS", &rhs.shape, w.len())] {
        if !(2..=5).contains(&shape.len()) {
            return Err(format!(
                "the {operand} has shape {shape:?}: BATCH_MATMUL takes 2 to 5 dims"
            ));
        }
        if shape.iter().product::<usize>() != len {
            return Err(format!(
                "the {operand} has shape {shape:?} but {len} elements"
            ));
        }
    }

    // The output shape as LiteRT's Prepare derives it: broadcast batch dims, then rows x columns.
    let MatmulDims {
        batch,
        rows,
        depth,
        cols,
        ..
    } = MatmulDims::new(&lhs.shape, &rhs.shape, adj_x, adj_y)?;
    let mut out_shape = batch;
    out_shape.extend([rows, cols]);
    if depth == 0 {
        // Empty dot products: LiteRT's zero-filled output.
        let n = out_shape.iter().product();
        return Ok(vec![Tensor::new(out_shape, TensorData::F32(vec![0.0; n]))?]);
    }

    // LiteRT's Eval folds an LHS [..., Q, R, S] times an RHS [..., 1, X, Y] into [..., Q*R, S] x [..., X, Y].
    let (mut lhs_shape, mut rhs_shape) = (lhs.shape.clone(), rhs.shape.clone());
    let (ln, rn) = (lhs_shape.len(), rhs_shape.len());
    if !adj_x && ln > 2 && rn > 2 && rhs_shape[rn - 3] == 1 {
        let folded = lhs_shape[ln - 3] * lhs_shape[ln - 2];
        lhs_shape[ln - 3] = folded;
        lhs_shape.remove(ln - 2);
        rhs_shape.remove(rn - 3);
    }
    let (ln, rn) = (lhs_shape.len(), rhs_shape.len());
    // Row-major operands as the kernel reads them: LHS [..., rows, depth], weights [..., cols, depth].
    let x_rows = if adj_x {
        transpose_last_two(x, &lhs_shape)
    } else {
        x.to_vec()
    };
    let weights: Vec<i32> = if adj_y {
        w.iter().map(|&v| i32::from(v)).collect()
    } else {
        transpose_last_two(w, &rhs_shape)
            .into_iter()
            .map(i32::from)
            .collect()
    };
    let rows = if adj_x {
        lhs_shape[ln - 1]
    } else {
        lhs_shape[ln - 2]
    };
    let x_batches = extended(&lhs_shape[..ln - 2], 3);
    let w_batches = extended(&rhs_shape[..rn - 2], 3);
    if x_rows.len() != x_batches.iter().product::<usize>() * rows * depth
        || weights.len() != w_batches.iter().product::<usize>() * cols * depth
    {
        return Err(format!(
            "LHS {:?} and RHS {:?} do not hold the elements their shapes need",
            lhs.shape, rhs.shape
        ));
    }

    // One quantization per LHS row; the per-tensor weight scale folds into each row's scaling factor.
    let filter_quant = ctx.input_quant(1)?;
    let per_channel = filter_quant.scale.len() > 1;
    let channel = channel_scales(&filter_quant, cols)?;
    let tensor_scale = filter_quant.scale.first().copied().unwrap_or(1.0);
    let mut x_codes = Vec::with_capacity(x_rows.len());
    let mut scales = Vec::new();
    let mut offsets = Vec::new();
    for row in x_rows.chunks_exact(depth) {
        let q = if asymmetric {
            asymmetric_quantize(row)
        } else {
            symmetric_quantize(row)
        };
        x_codes.extend(q.codes);
        scales.push(if per_channel {
            q.scale
        } else {
            q.scale * tensor_scale
        });
        offsets.push(q.offset);
    }
    let row_sums: Vec<i32> = weights
        .chunks_exact(depth)
        .map(|r| r.iter().sum())
        .collect();

    // 5-D views as the reference kernel iterates them: weights [b0, b1, b2, cols, depth] are its LHS,
    // the quantized input [b0, b1, b2, depth, rows] its RHS.
    let w5: Vec<usize> = w_batches.iter().copied().chain([cols, depth]).collect();
    let x5: Vec<usize> = x_batches.iter().copied().chain([depth, rows]).collect();
    let batch: Vec<usize> = (0..3).map(|k| w5[k].max(x5[k])).collect();
    let w_step: Vec<usize> = (0..3).map(|k| extent(&w5, k)).collect();
    let x_step: Vec<usize> = (0..3).map(|k| extent(&x5, k)).collect();
    let row_param_step: Vec<usize> = (0..3).map(|k| rows * usize::from(x_step[k] != 0)).collect();
    let row_sum_step: Vec<usize> = (0..3).map(|k| cols * usize::from(w_step[k] != 0)).collect();
    let out_len: usize = batch.iter().product::<usize>() * rows * cols;
    if out_len != out_shape.iter().product::<usize>() {
        return Err(format!(
            "LHS {:?} and RHS {:?} give {out_len} outputs, the output shape {out_shape:?} holds {}",
            lhs.shape,
            rhs.shape,
            out_shape.iter().product::<usize>()
        ));
    }
    let out_of_range = || {
        format!(
            "LHS {:?} and RHS {:?} index out of range",
            lhs.shape, rhs.shape
        )
    };
    let mut out = vec![0f32; out_len];
    for b0 in 0..batch[0] {
        for b1 in 0..batch[1] {
            for b2 in 0..batch[2] {
                let at = |step: &[usize]| b0 * step[0] + b1 * step[1] + b2 * step[2];
                let (w_base, x_base) = (at(&w_step), at(&x_step));
                let (param_base, sum_base) = (at(&row_param_step), at(&row_sum_step));
                let out_base = ((b0 * batch[1] + b1) * batch[2] + b2) * rows * cols;
                for j in 0..rows {
                    let (Some(&scale), Some(&offset)) =
                        (scales.get(param_base + j), offsets.get(param_base + j))
                    else {
                        return Err(out_of_range());
                    };
                    let start = x_base + j * depth;
                    let xq = x_codes.get(start..start + depth).ok_or_else(out_of_range)?;
                    for (i, &channel_scale) in channel.iter().enumerate() {
                        let start = w_base + i * depth;
                        let wq = weights.get(start..start + depth).ok_or_else(out_of_range)?;
                        let row_sum = *row_sums.get(sum_base + i).ok_or_else(out_of_range)?;
                        let dot = wq
                            .iter()
                            .zip(xq)
                            .fold(0i32, |acc, (&a, &b)| acc.wrapping_add(a * b));
                        // LiteRT subtracts the zero-point term in float (an int32 minus a float product).
                        let total = (dot as f32 - row_sum as f32 * offset as f32) as i32;
                        let scale = if per_channel {
                            scale * channel_scale
                        } else {
                            scale
                        };
                        let slot = out
                            .get_mut(out_base + j * cols + i)
                            .ok_or_else(out_of_range)?;
                        // Accumulated onto a zeroed output, as LiteRT does (a -0.0 product becomes 0.0).
                        *slot += scale * total as f32;
                    }
                }
            }
        }
    }
    Ok(vec![Tensor::new(out_shape, TensorData::F32(out))?])
}

/// BATCH_MATMUL's dimensions as LiteRT's Prepare derives them: both shapes left-padded with 1s to one rank, the
/// broadcast batch dims, and rows x depth times depth x cols after the adjoint flags.
pub(crate) struct MatmulDims {
    /// LHS shape extended to the common rank.
    pub l: Vec<usize>,
    /// RHS shape extended to the common rank.
    pub r: Vec<usize>,
    /// The broadcast batch dims (rank - 2 of them).
    pub batch: Vec<usize>,
    pub rows: usize,
    pub depth: usize,
    pub cols: usize,
}

impl MatmulDims {
    pub(crate) fn new(
        lhs: &[usize],
        rhs: &[usize],
        adj_x: bool,
        adj_y: bool,
    ) -> Result<MatmulDims, String> {
        let rank = lhs.len().max(rhs.len());
        if rank < 2 {
            return Err(format!(
                "LHS {lhs:?} and RHS {rhs:?}: BATCH_MATMUL needs rank 2 or more"
            ));
        }
        let (l, r) = (extended(lhs, rank), extended(rhs, rank));
        let mut batch = Vec::with_capacity(rank - 2);
        for (&a, &b) in l[..rank - 2].iter().zip(&r[..rank - 2]) {
            if a != b && a != 1 && b != 1 {
                return Err(format!(
                    "batch dims of LHS {lhs:?} and RHS {rhs:?} do not broadcast"
                ));
            }
            batch.push(if a == 1 { b } else { a });
        }
        let (rows, depth) = if adj_x {
            (l[rank - 1], l[rank - 2])
        } else {
            (l[rank - 2], l[rank - 1])
        };
        let (rhs_depth, cols) = if adj_y {
            (r[rank - 1], r[rank - 2])
        } else {
            (r[rank - 2], r[rank - 1])
        };
        if depth != rhs_depth {
            return Err(format!(
                "LHS {lhs:?} (adj_x {adj_x}) and RHS {rhs:?} (adj_y {adj_y}) disagree on the inner dim: {depth} vs {rhs_depth}"
            ));
        }
        Ok(MatmulDims {
            l,
            r,
            batch,
            rows,
            depth,
            cols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::OpIndex;
    use crate::interp::Interpreter;
    use crate::quantize::versions::testing::ModelBuilder;
    use fb::TensorType as T;

    fn input(i: usize) -> f32 {
        ((i * 37 % 23) as f32 - 9.0) / 7.0
    }

    fn weight(i: usize) -> i8 {
        ((i * 53 % 255) as i32 - 127) as i8
    }

    fn dims(shape: &[usize]) -> Vec<i32> {
        shape.iter().map(|&d| d as i32).collect()
    }

    /// Runs one hybrid BATCH_MATMUL: float LHS, int8 constant RHS with `scales` (per tensor or per column).
    fn run(
        lhs: &Tensor,
        rhs: &Tensor,
        scales: Vec<f32>,
        options: fb::BatchMatMulOptionsT,
        out: &[usize],
    ) -> Tensor {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &dims(&lhs.shape));
        let TensorData::I8(codes) = &rhs.data else {
            panic!("the test RHS is int8")
        };
        let bytes = codes.iter().map(|&c| c as u8).collect();
        let w = b.constant("w", T::INT8, &dims(&rhs.shape), bytes);
        let axis = rhs.shape.len() as i32 - if options.adj_y { 2 } else { 1 };
        b.quantize(w, scales, axis);
        let y = b.tensor("y", T::FLOAT32, &dims(out));
        b.op(
            fb::BuiltinOperator::BATCH_MATMUL,
            &[Some(x), Some(w)],
            &[y],
            fb::BuiltinOptionsT::BatchMatMulOptions(Box::new(options)),
        );
        b.output(y);
        let interp = Interpreter::from_graph(b.build()).expect("the hybrid op has a kernel");
        let mut outs = interp
            .eval_op(OpIndex(0), &[Some(lhs.clone()), Some(rhs.clone())])
            .expect("the op runs");
        outs.remove(0)
    }

    /// The definition, in f64 over natural indices: each LHS row `x[b, r, :]` quantized to `q` with scale `s`
    /// and zero point `z`; `y[b, r, c] = s * w_scale[c] * sum_k (q[k] - z) * w[b, k, c]`.
    fn reference(
        x: &[f32],
        w: &[i8],
        (batches, rows, depth, cols): (usize, usize, usize, usize),
        w_batched: bool,
        scales: &[f32],
        asymmetric: bool,
    ) -> Vec<f64> {
        let mut out = Vec::new();
        for b in 0..batches {
            for r in 0..rows {
                let start = (b * rows + r) * depth;
                let q = if asymmetric {
                    asymmetric_quantize(&x[start..start + depth])
                } else {
                    symmetric_quantize(&x[start..start + depth])
                };
                for c in 0..cols {
                    let w_base = if w_batched { b * depth * cols } else { 0 };
                    let dot: i64 = (0..depth)
                        .map(|k| {
                            i64::from(q.codes[k] - q.offset) * i64::from(w[w_base + k * cols + c])
                        })
                        .sum();
                    let scale = scales[if scales.len() == 1 { 0 } else { c }];
                    out.push(f64::from(q.scale) * f64::from(scale) * dot as f64);
                }
            }
        }
        out
    }

    fn assert_close(ours: &Tensor, expected: &[f64]) {
        let TensorData::F32(v) = &ours.data else {
            panic!("hybrid BATCH_MATMUL outputs float")
        };
        assert_eq!(v.len(), expected.len());
        for (i, (&a, &b)) in v.iter().zip(expected).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1.0),
                "element {i}: {a} vs {b}"
            );
        }
    }

    fn options(adj_x: bool, adj_y: bool, asymmetric: bool) -> fb::BatchMatMulOptionsT {
        fb::BatchMatMulOptionsT {
            adj_x,
            adj_y,
            asymmetric_quantize_inputs: asymmetric,
        }
    }

    #[test]
    fn hybrid_batch_matmul_is_the_row_quantized_integer_product() {
        let (batches, rows, depth, cols) = (2, 3, 8, 5);
        let x: Vec<f32> = (0..batches * rows * depth).map(input).collect();
        let w: Vec<i8> = (0..depth * cols).map(weight).collect();
        let lhs = Tensor::f32(vec![batches, rows, depth], x.clone()).unwrap();
        let rhs = Tensor::new(vec![depth, cols], TensorData::I8(w.clone())).unwrap();
        for asymmetric in [true, false] {
            let out = run(
                &lhs,
                &rhs,
                vec![0.02],
                options(false, false, asymmetric),
                &[2, 3, 5],
            );
            assert_eq!(out.shape, [batches, rows, cols]);
            let dims = (batches, rows, depth, cols);
            assert_close(&out, &reference(&x, &w, dims, false, &[0.02], asymmetric));
        }
    }

    #[test]
    fn adjoint_operands_give_the_same_product_as_transposed_data() {
        let (batches, rows, depth, cols) = (2, 3, 8, 5);
        let x: Vec<f32> = (0..batches * rows * depth).map(input).collect();
        let w: Vec<i8> = (0..depth * cols).map(weight).collect();
        let plain = run(
            &Tensor::f32(vec![batches, rows, depth], x.clone()).unwrap(),
            &Tensor::new(vec![depth, cols], TensorData::I8(w.clone())).unwrap(),
            vec![0.02],
            options(false, false, true),
            &[2, 3, 5],
        );
        let adjoint = run(
            &Tensor::f32(
                vec![batches, depth, rows],
                transpose_last_two(&x, &[batches, rows, depth]),
            )
            .unwrap(),
            &Tensor::new(
                vec![cols, depth],
                TensorData::I8(transpose_last_two(&w, &[depth, cols])),
            )
            .unwrap(),
            vec![0.02],
            options(true, true, true),
            &[2, 3, 5],
        );
        assert_eq!(adjoint, plain);
    }

    #[test]
    fn per_column_weight_scales_scale_each_output_column() {
        let (rows, depth, cols) = (4, 6, 3);
        let x: Vec<f32> = (0..rows * depth).map(input).collect();
        let w: Vec<i8> = (0..depth * cols).map(weight).collect();
        let scales = vec![0.01, 0.02, 0.04];
        let out = run(
            &Tensor::f32(vec![rows, depth], x.clone()).unwrap(),
            &Tensor::new(vec![depth, cols], TensorData::I8(w.clone())).unwrap(),
            scales.clone(),
            options(false, false, true),
            &[4, 3],
        );
        assert_close(
            &out,
            &reference(&x, &w, (1, rows, depth, cols), false, &scales, true),
        );
    }

    #[test]
    fn a_two_dim_input_broadcasts_over_batched_weights() {
        let (batches, rows, depth, cols) = (2, 3, 4, 5);
        let x: Vec<f32> = (0..rows * depth).map(input).collect();
        let w: Vec<i8> = (0..batches * depth * cols).map(weight).collect();
        let out = run(
            &Tensor::f32(vec![rows, depth], x.clone()).unwrap(),
            &Tensor::new(vec![batches, depth, cols], TensorData::I8(w.clone())).unwrap(),
            vec![0.05],
            options(false, false, true),
            &[2, 3, 5],
        );
        assert_eq!(out.shape, [batches, rows, cols]);
        // Both batches read the same input rows.
        let x2: Vec<f32> = x.iter().chain(&x).copied().collect();
        assert_close(
            &out,
            &reference(&x2, &w, (batches, rows, depth, cols), true, &[0.05], true),
        );
    }

    #[test]
    fn mismatched_inner_dims_are_an_error_not_a_panic() {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[2, 3]);
        let w = b.constant("w", T::INT8, &[4, 2], vec![1; 8]);
        b.quantize(w, vec![0.1], 0);
        let y = b.tensor("y", T::FLOAT32, &[2, 2]);
        b.op(
            fb::BuiltinOperator::BATCH_MATMUL,
            &[Some(x), Some(w)],
            &[y],
            fb::BuiltinOptionsT::BatchMatMulOptions(Box::default()),
        );
        b.output(y);
        let interp = Interpreter::from_graph(b.build()).unwrap();
        let lhs = Tensor::f32(vec![2, 3], vec![0.5; 6]).unwrap();
        let rhs = Tensor::new(vec![4, 2], TensorData::I8(vec![1; 8])).unwrap();
        let err = interp
            .eval_op(OpIndex(0), &[Some(lhs), Some(rhs)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("inner dim"), "{err}");
    }

    #[test]
    fn transposing_the_last_two_dims_keeps_batches_apart() {
        let data: Vec<i32> = (0..12).collect();
        assert_eq!(
            transpose_last_two(&data, &[2, 2, 3]),
            [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]
        );
    }

    #[test]
    fn broadcast_dims_do_not_advance_in_memory() {
        assert_eq!(extent(&[1, 1, 2, 3, 4], 1), 0);
        assert_eq!(extent(&[1, 1, 2, 3, 4], 2), 12);
    }
}
