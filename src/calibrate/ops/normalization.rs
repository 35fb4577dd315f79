//! SOFTMAX, LOG_SOFTMAX and L2_NORMALIZATION, each over the last axis.

use super::apply_fused_activation;
use super::fast_math;
use super::kernel_args::{array, flat, missing_options, row_major};
use crate::calibrate::vector::wide_vectors;
use crate::calibrate::{KernelError, OpContext, Value};

/// Applies `f` to each last-axis row of input 0, writing a same-shaped output.
fn per_row(ctx: &OpContext<'_>, f: impl Fn(&[f32], &mut [f32])) -> Result<Vec<Value>, KernelError> {
    let input = row_major(ctx.input_f32(0)?);
    let x = flat(&input)?;
    let depth = input.shape().last().copied().unwrap_or(1);
    let mut out = vec![0.0f32; x.len()];
    if depth > 0 {
        for (src, dst) in x.chunks_exact(depth).zip(out.chunks_exact_mut(depth)) {
            f(src, dst);
        }
    }
    Ok(vec![Value::F32(array(input.shape(), out)?)])
}

fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::MIN, f32::max)
}

pub(crate) fn softmax(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let beta = ctx
        .operator()
        .builtin_options
        .as_softmax_options()
        .ok_or_else(|| missing_options("SoftmaxOptions"))?
        .beta;
    per_row(ctx, |src, dst| softmax_row(src, dst, beta))
}

wide_vectors! {
    /// One softmax row: `dst = exp((src - max) beta) / sum`.
    fn softmax_row(src: &[f32], dst: &mut [f32], beta: f32) => softmax_row_loops;
}

/// Lanes of the max and sum below.
const LANES: usize = 8;

#[inline(always)]
fn softmax_row_loops(src: &[f32], dst: &mut [f32], beta: f32) {
    // Subtracting the max keeps exp() finite; it cancels in the ratio. Max and sum run in eight
    // independent lanes (a fixed order: the same bits on every run).
    let mut m = [f32::MIN; LANES];
    let chunks = src.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in m.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let max = rest
        .iter()
        .fold(m.iter().copied().fold(f32::MIN, f32::max), |a, &v| a.max(v));
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = fast_math::exp((x - max) * beta);
    }
    let mut acc = [0.0f32; LANES];
    let chunks = dst.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for &v in rest {
        sum += v;
    }
    dst.iter_mut().for_each(|d| *d /= sum);
}

pub(crate) fn log_softmax(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    per_row(ctx, |src, dst| {
        let max = row_max(src);
        let log_sum = src.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = x - max - log_sum;
        }
    })
}

pub(crate) fn l2_normalization(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    // TFLite floors the norm at 1e-6 so an all-zero row stays zero instead of NaN.
    const EPSILON: f32 = 1e-6;
    let mut out = per_row(ctx, |src, dst| {
        let norm = src.iter().map(|&x| x * x).sum::<f32>().sqrt().max(EPSILON);
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = x / norm;
        }
    })?;
    if let (Some(o), Some(Value::F32(a))) = (
        ctx.operator().builtin_options.as_l2_norm_options(),
        out.first_mut(),
    ) {
        apply_fused_activation(a, o.fused_activation_function);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb;

    #[test]
    fn softmax_normalizes_each_row_with_beta() {
        let o = fb::BuiltinOptionsT::SoftmaxOptions(Box::new(fb::SoftmaxOptionsT { beta: 2.0 }));
        let (shape, y) = run_f32(
            fb::BuiltinOperator::SOFTMAX,
            o,
            vec![Arg::f32(&[2, 2], vec![0.0, 0.5, 3.0, 3.0])],
        );
        assert_eq!(shape, vec![2, 2]);
        let e = 1.0f32.exp();
        assert_close(&y, &[1.0 / (1.0 + e), e / (1.0 + e), 0.5, 0.5], 1e-6);
    }

    #[test]
    fn log_softmax_is_log_of_softmax() {
        let (_, y) = run_f32(
            fb::BuiltinOperator::LOG_SOFTMAX,
            fb::BuiltinOptionsT::NONE,
            vec![Arg::f32(&[3], vec![1.0, 2.0, 3.0])],
        );
        let z: f32 = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        let want: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|v| v - z.ln()).collect();
        assert_close(&y, &want, 1e-6);
    }

    #[test]
    fn l2_normalization_divides_rows_by_their_norm_and_keeps_zero_rows() {
        let (_, y) = run_f32(
            fb::BuiltinOperator::L2_NORMALIZATION,
            fb::BuiltinOptionsT::NONE,
            vec![Arg::f32(&[2, 2], vec![3.0, 4.0, 0.0, 0.0])],
        );
        assert_close(&y, &[0.6, 0.8, 0.0, 0.0], 1e-7);
    }
}
