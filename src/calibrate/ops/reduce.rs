//! MEAN, SUM, REDUCE_PROD, REDUCE_MAX and REDUCE_MIN over the axes given by the second input.
//!
//! One pass over the input in row-major order accumulates each element into its output cell, the order
//! TFLite's reference kernel uses (a reduced last axis in eight partial results, combined pairwise); MEAN
//! divides the float sum by the number of reduced elements.

use super::kernel_args::{array, flat, row_major};
use crate::calibrate::{KernelError, OpContext, Value};

pub(crate) fn mean(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let (mut out, count) = reduce(ctx, 0.0, |a, x| a + x)?;
    if count > 0 {
        let count = count as f32;
        out.mapv_inplace(|v| v / count);
    }
    Ok(vec![Value::F32(out)])
}

pub(crate) fn sum(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(reduce(ctx, 0.0, |a, x| a + x)?.0)])
}

pub(crate) fn reduce_prod(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(reduce(ctx, 1.0, |a, x| a * x)?.0)])
}

pub(crate) fn reduce_max(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(reduce(ctx, f32::MIN, f32::max)?.0)])
}

pub(crate) fn reduce_min(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(reduce(ctx, f32::MAX, f32::min)?.0)])
}

/// `row` folded with `f` from `init` (the identity of `f`) in eight lanes combined pairwise: the same
/// result as a left fold for max and min, a differently rounded one for sums and products.
fn fold_lanes(row: &[f32], init: f32, f: &impl Fn(f32, f32) -> f32) -> f32 {
    const LANES: usize = 8;
    let mut acc = [init; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    let mut r = f(
        f(f(acc[0], acc[4]), f(acc[2], acc[6])),
        f(f(acc[1], acc[5]), f(acc[3], acc[7])),
    );
    for &v in rest {
        r = f(r, v);
    }
    r
}

/// Reduces input 0 over the axes in input 1; returns the result and how many elements fed each output.
fn reduce(
    ctx: &OpContext<'_>,
    init: f32,
    f: impl Fn(f32, f32) -> f32,
) -> Result<(ndarray::ArrayD<f32>, usize), KernelError> {
    let keep_dims = ctx
        .operator()
        .builtin_options
        .as_reducer_options()
        .is_some_and(|o| o.keep_dims);
    let input = row_major(ctx.input_f32(0)?);
    let shape = input.shape().to_vec();
    let rank = shape.len();
    let mut reduced = vec![false; rank];
    for a in ctx.input_ints(1)? {
        let axis = if a < 0 { a + rank as i64 } else { a };
        let axis = usize::try_from(axis)
            .ok()
            .filter(|&x| x < rank)
            .ok_or_else(|| {
                KernelError::Invalid(format!("axis {a} is out of range for rank {rank}"))
            })?;
        reduced[axis] = true;
    }
    // Output strides over the input's dims: 0 on reduced axes, so every element finds its output cell.
    let mut out_strides = vec![0usize; rank];
    let mut step = 1;
    for d in (0..rank).rev() {
        if !reduced[d] {
            out_strides[d] = step;
            step *= shape[d];
        }
    }
    let out_len = step;
    let count: usize = shape
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| r)
        .map(|(&d, _)| d)
        .product();
    let mut out = vec![init; out_len];
    let x = flat(&input)?;
    if rank == 0 {
        if let Some(&v) = x.first() {
            out[0] = f(init, v);
        }
    } else if !x.is_empty() {
        let inner = shape[rank - 1];
        let inner_stride = out_strides[rank - 1];
        let mut index = vec![0usize; rank - 1];
        let mut base = 0usize;
        for row in x.chunks_exact(inner) {
            if inner_stride == 0 {
                // The last axis is reduced: eight independent partial results instead of one chain.
                out[base] = f(out[base], fold_lanes(row, init, &f));
            } else {
                let mut o = base;
                for &v in row {
                    out[o] = f(out[o], v);
                    o += inner_stride;
                }
            }
            for d in (0..rank - 1).rev() {
                index[d] += 1;
                base += out_strides[d];
                if index[d] < shape[d] {
                    break;
                }
                base -= out_strides[d] * shape[d];
                index[d] = 0;
            }
        }
    }
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(&reduced)
        .filter_map(|(&d, &r)| match (r, keep_dims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Ok((array(&out_shape, out)?, count))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb;

    fn keep(keep_dims: bool) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::ReducerOptions(Box::new(fb::ReducerOptionsT { keep_dims }))
    }

    fn cube() -> Arg {
        // [2, 2, 3]: values 0..12
        Arg::f32(&[2, 2, 3], (0..12).map(|v| v as f32).collect())
    }

    #[test]
    fn mean_over_spatial_axes_with_keep_dims() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::MEAN,
            keep(true),
            vec![cube(), Arg::i32(&[2], vec![0, 1])],
        );
        assert_eq!(shape, vec![1, 1, 3]);
        // channel c: mean of c, 3+c, 6+c, 9+c = 4.5 + c
        assert_close(&y, &[4.5, 5.5, 6.5], 1e-6);
    }

    #[test]
    fn sum_with_negative_axis_drops_the_dim() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::SUM,
            keep(false),
            vec![cube(), Arg::i32(&[], vec![-1])],
        );
        assert_eq!(shape, vec![2, 2]);
        assert_close(&y, &[3.0, 12.0, 21.0, 30.0], 0.0);
    }

    #[test]
    fn reduce_max_and_min_over_middle_axis() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::REDUCE_MAX,
            keep(false),
            vec![cube(), Arg::i32(&[1], vec![1])],
        );
        assert_eq!(shape, vec![2, 3]);
        assert_close(&y, &[3.0, 4.0, 5.0, 9.0, 10.0, 11.0], 0.0);
        let (_, y) = run_f32(
            fb::BuiltinOperator::REDUCE_MIN,
            keep(false),
            vec![cube(), Arg::i32(&[2], vec![1, 1])],
        );
        assert_close(&y, &[0.0, 1.0, 2.0, 6.0, 7.0, 8.0], 0.0);
    }

    #[test]
    fn reducing_every_axis_without_keep_dims_gives_a_scalar() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::MEAN,
            keep(false),
            vec![cube(), Arg::i32(&[3], vec![0, 1, 2])],
        );
        assert_eq!(shape, Vec::<usize>::new());
        assert_close(&y, &[5.5], 1e-6);
    }

    #[test]
    fn out_of_range_axis_is_an_error() {
        let r = super::super::testing::try_run_op(
            fb::BuiltinOperator::SUM,
            keep(false),
            vec![cube(), Arg::i32(&[1], vec![3])],
        );
        assert!(r.unwrap_err().to_string().contains("axis 3"));
    }
}
