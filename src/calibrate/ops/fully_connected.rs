//! FULLY_CONNECTED and BATCH_MATMUL: matrix products through `matrixmultiply` (ndarray's `general_mat_mul`).

use super::broadcast::broadcast_shape;
use super::kernel_args::{array, bias_values, flat, row_major};
use super::matmul::{add_bias_and_activate, matmul_slices_weights_t};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

fn shape_error(e: ndarray::ShapeError) -> KernelError {
    KernelError::Invalid(format!("internal: {e}"))
}

pub(crate) fn fully_connected(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let default = fb::FullyConnectedOptionsT::default();
    let o = ctx
        .operator()
        .builtin_options
        .as_fully_connected_options()
        .unwrap_or(&default);
    if o.weights_format != fb::FullyConnectedOptionsWeightsFormat::DEFAULT {
        return Err(KernelError::Invalid(format!(
            "weights format {} is not supported",
            o.weights_format.0
        )));
    }
    let input = row_major(ctx.input_f32(0)?);
    let weights = row_major(ctx.input_f32(1)?);
    let &[units, depth] = weights.shape() else {
        return Err(KernelError::Invalid(format!(
            "weights have shape {:?}, expected [units, depth]",
            weights.shape()
        )));
    };
    // TFLite flattens the input to [-1, depth]; keep_num_dims keeps its leading dims instead.
    if depth == 0 || input.len() % depth != 0 {
        return Err(KernelError::Invalid(format!(
            "input {:?} does not split into rows of {depth}",
            input.shape()
        )));
    }
    let batch = input.len() / depth;
    let bias = bias_values(ctx, 2, units)?;
    let bias = match &bias {
        Some(b) => Some(flat(b)?),
        None => None,
    };
    let mut out = vec![0.0f32; batch * units];
    matmul_slices_weights_t(flat(&input)?, flat(&weights)?, depth, &mut out)
        .map_err(shape_error)?;
    add_bias_and_activate(&mut out, units, bias, o.fused_activation_function);
    let shape = if o.keep_num_dims {
        match input.shape().split_last() {
            Some((&last, lead)) if last == depth => lead.iter().copied().chain([units]).collect(),
            _ => {
                return Err(KernelError::Invalid(format!(
                    "keep_num_dims needs the input's last dim to be {depth}, got {:?}",
                    input.shape()
                )))
            }
        }
    } else {
        vec![batch, units]
    };
    Ok(vec![Value::F32(array(&shape, out)?)])
}

pub(crate) fn batch_matmul(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let default = fb::BatchMatMulOptionsT::default();
    let o = ctx
        .operator()
        .builtin_options
        .as_batch_mat_mul_options()
        .unwrap_or(&default);
    let lhs = row_major(ctx.input_f32(0)?);
    let rhs = row_major(ctx.input_f32(1)?);
    let (ls, rs) = (lhs.shape(), rhs.shape());
    if ls.len() < 2 || rs.len() < 2 {
        return Err(KernelError::Invalid(format!(
            "operands {ls:?} and {rs:?} need rank >= 2"
        )));
    }
    let (l_rows, l_cols) = (ls[ls.len() - 2], ls[ls.len() - 1]);
    let (r_rows, r_cols) = (rs[rs.len() - 2], rs[rs.len() - 1]);
    let (m, k) = if o.adj_x {
        (l_cols, l_rows)
    } else {
        (l_rows, l_cols)
    };
    let (k2, n) = if o.adj_y {
        (r_cols, r_rows)
    } else {
        (r_rows, r_cols)
    };
    if k != k2 {
        return Err(KernelError::Invalid(format!(
            "inner dims differ: {ls:?} (adj_x {}) times {rs:?} (adj_y {})",
            o.adj_x, o.adj_y
        )));
    }
    let l_batch = &ls[..ls.len() - 2];
    let r_batch = &rs[..rs.len() - 2];
    let batch = broadcast_shape(l_batch, r_batch)?;
    let batches: usize = batch.iter().product();
    // Element strides of each operand's batch dims in the broadcast shape (0 where it broadcasts).
    let strides = |own: &[usize], mat: usize| -> Vec<usize> {
        let mut s = vec![0; batch.len()];
        let mut step = mat;
        for (i, &d) in own.iter().enumerate().rev() {
            let j = i + batch.len() - own.len();
            s[j] = if d == 1 { 0 } else { step };
            step *= d;
        }
        s
    };
    let l_strides = strides(l_batch, l_rows * l_cols);
    let r_strides = strides(r_batch, r_rows * r_cols);
    let (lx, rx) = (flat(&lhs)?, flat(&rhs)?);
    let mut out = vec![0.0f32; batches * m * n];
    let mut index = vec![0usize; batch.len()];
    for b in 0..batches {
        let l_off: usize = index.iter().zip(&l_strides).map(|(i, s)| i * s).sum();
        let r_off: usize = index.iter().zip(&r_strides).map(|(i, s)| i * s).sum();
        let a = ArrayView2::from_shape((l_rows, l_cols), &lx[l_off..l_off + l_rows * l_cols])
            .map_err(shape_error)?;
        let c = ArrayView2::from_shape((r_rows, r_cols), &rx[r_off..r_off + r_rows * r_cols])
            .map_err(shape_error)?;
        let a = if o.adj_x { a.reversed_axes() } else { a };
        let c = if o.adj_y { c.reversed_axes() } else { c };
        let mut dst = ArrayViewMut2::from_shape((m, n), &mut out[b * m * n..(b + 1) * m * n])
            .map_err(shape_error)?;
        general_mat_mul(1.0, &a, &c, 0.0, &mut dst);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < batch[d] {
                break;
            }
            index[d] = 0;
        }
    }
    let shape: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
    Ok(vec![Value::F32(array(&shape, out)?)])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use super::*;

    fn fc_options(keep_num_dims: bool, act: fb::ActivationFunctionType) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::FullyConnectedOptions(Box::new(fb::FullyConnectedOptionsT {
            fused_activation_function: act,
            keep_num_dims,
            ..Default::default()
        }))
    }

    #[test]
    fn fully_connected_flattens_input_to_rows_of_depth() {
        // Input [1, 2, 2] is two rows of depth 2.
        let (shape, y) = run_f32(
            fb::BuiltinOperator::FULLY_CONNECTED,
            fc_options(false, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Arg::f32(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
                Arg::f32(&[3], vec![0.0, 0.0, 10.0]),
            ],
        );
        assert_eq!(shape, vec![2, 3]);
        assert_close(&y, &[1.0, 2.0, 13.0, 3.0, 4.0, 17.0], 0.0);
    }

    #[test]
    fn fully_connected_keep_num_dims_keeps_leading_dims_and_bias_is_optional() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::FULLY_CONNECTED,
            fc_options(true, fb::ActivationFunctionType::RELU),
            vec![
                Arg::f32(&[1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Arg::f32(&[1, 2], vec![1.0, -1.0]),
                Arg::Omitted,
            ],
        );
        assert_eq!(shape, vec![1, 2, 1]);
        assert_close(&y, &[0.0, 0.0], 0.0);
    }

    #[test]
    fn fully_connected_gives_the_same_values_with_few_rows_and_many() {
        // 1 row takes the dot-product path, 6 rows the matrix product: both must agree with a direct sum.
        let depth = 19; // not a multiple of the dot product's lanes, so the tail is covered too
        let units = 5;
        let weights: Vec<f32> = (0..units * depth)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.25)
            .collect();
        let bias: Vec<f32> = (0..units).map(|u| u as f32 - 2.0).collect();
        for rows in [1, 6] {
            let x: Vec<f32> = (0..rows * depth)
                .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.5)
                .collect();
            let (shape, y) = run_f32(
                fb::BuiltinOperator::FULLY_CONNECTED,
                fc_options(false, fb::ActivationFunctionType::NONE),
                vec![
                    Arg::f32(&[rows, depth], x.clone()),
                    Arg::f32(&[units, depth], weights.clone()),
                    Arg::f32(&[units], bias.clone()),
                ],
            );
            assert_eq!(shape, vec![rows, units]);
            let want: Vec<f32> = (0..rows * units)
                .map(|i| {
                    let (r, u) = (i / units, i % units);
                    let sum: f64 = (0..depth)
                        .map(|d| f64::from(x[r * depth + d]) * f64::from(weights[u * depth + d]))
                        .sum();
                    (sum + f64::from(bias[u])) as f32
                })
                .collect();
            assert_close(&y, &want, 1e-4);
        }
    }

    #[test]
    fn batch_matmul_broadcasts_batch_dims_and_honours_adjoints() {
        let opts = fb::BuiltinOptionsT::BatchMatMulOptions(Box::new(fb::BatchMatMulOptionsT {
            adj_x: false,
            adj_y: true,
            asymmetric_quantize_inputs: false,
        }));
        // lhs [2, 1, 2] (two batches of one row), rhs [1, 3, 2] transposed to [2, 3], shared by both batches.
        let (shape, y) = run_f32(
            fb::BuiltinOperator::BATCH_MATMUL,
            opts,
            vec![
                Arg::f32(&[2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Arg::f32(&[1, 3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
            ],
        );
        assert_eq!(shape, vec![2, 1, 3]);
        assert_close(&y, &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0], 0.0);
    }

    #[test]
    fn batch_matmul_adj_x_transposes_the_left_operand() {
        let opts = fb::BuiltinOptionsT::BatchMatMulOptions(Box::new(fb::BatchMatMulOptionsT {
            adj_x: true,
            adj_y: false,
            asymmetric_quantize_inputs: false,
        }));
        // lhs [2, 1] transposed is [1, 2].
        let (shape, y) = run_f32(
            fb::BuiltinOperator::BATCH_MATMUL,
            opts,
            vec![
                Arg::f32(&[2, 1], vec![1.0, 2.0]),
                Arg::f32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            ],
        );
        assert_eq!(shape, vec![1, 2]);
        assert_close(&y, &[7.0, 10.0], 0.0);
    }
}
