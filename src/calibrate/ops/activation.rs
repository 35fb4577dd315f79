//! Element-wise activations and unary math: LOGISTIC, TANH, the RELU family, LEAKY_RELU, PRELU, HARD_SWISH,
//! ELU, GELU, EXP, LOG, SQRT, RSQRT, ABS, NEG, SQUARE.

use super::broadcast::broadcast_shape;
use super::fast_math;
use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::{ArrayD, IxDyn, Zip};

pub(crate) fn unary(
    ctx: &OpContext<'_>,
    f: impl Fn(f32) -> f32,
) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(ctx.input_f32(0)?.mapv(f))])
}

/// A unary op through a slice kernel (`each` for inputs that are not contiguous).
pub(crate) fn unary_slices(
    ctx: &OpContext<'_>,
    slices: fn(&[f32], &mut [f32]),
    each: fn(f32) -> f32,
) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input_f32(0)?;
    let Some(src) = x.as_slice() else {
        return unary(ctx, each);
    };
    let mut out = vec![0.0f32; src.len()];
    slices(src, &mut out);
    let out = ArrayD::from_shape_vec(IxDyn(x.shape()), out)
        .map_err(|e| KernelError::Invalid(format!("internal: {e}")))?;
    Ok(vec![Value::F32(out)])
}

pub(crate) fn leaky_relu(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let alpha = ctx
        .operator()
        .builtin_options
        .as_leaky_relu_options()
        .map_or(0.0, |o| o.alpha);
    unary(ctx, |x| if x > 0.0 { x } else { x * alpha })
}

pub(crate) fn gelu(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let approximate = ctx
        .operator()
        .builtin_options
        .as_gelu_options()
        .is_some_and(|o| o.approximate);
    if approximate {
        unary_slices(ctx, fast_math::gelu_tanh_into, fast_math::gelu_tanh)
    } else {
        unary_slices(ctx, fast_math::gelu_into, fast_math::gelu)
    }
}

pub(crate) fn prelu(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input_f32(0)?;
    let alpha = ctx.input_f32(1)?;
    let shape = broadcast_shape(x.shape(), alpha.shape())?;
    let (xb, ab) = (spread(x, &shape)?, spread(alpha, &shape)?);
    let mut out = ArrayD::<f32>::zeros(IxDyn(&shape));
    Zip::from(&mut out)
        .and(&xb)
        .and(&ab)
        .for_each(|o, &x, &a| *o = if x >= 0.0 { x } else { x * a });
    Ok(vec![Value::F32(out)])
}

fn spread<'a>(
    a: &'a ArrayD<f32>,
    shape: &[usize],
) -> Result<ndarray::ArrayViewD<'a, f32>, KernelError> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        KernelError::Invalid(format!("cannot broadcast {:?} to {shape:?}", a.shape()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb::{self};

    fn run(op: fb::BuiltinOperator, options: fb::BuiltinOptionsT, x: &[f32]) -> Vec<f32> {
        run_f32(op, options, vec![Arg::f32(&[x.len()], x.to_vec())]).1
    }

    const X: [f32; 5] = [-4.0, -0.5, 0.0, 0.5, 7.0];

    #[test]
    fn relu_family_clamps_to_their_ranges() {
        use fb::BuiltinOperator as Op;
        let n = fb::BuiltinOptionsT::NONE;
        assert_close(
            &run(Op::RELU, n.clone(), &X),
            &[0.0, 0.0, 0.0, 0.5, 7.0],
            0.0,
        );
        assert_close(
            &run(Op::RELU6, n.clone(), &X),
            &[0.0, 0.0, 0.0, 0.5, 6.0],
            0.0,
        );
        assert_close(
            &run(Op::RELU_N1_TO_1, n.clone(), &X),
            &[-1.0, -0.5, 0.0, 0.5, 1.0],
            0.0,
        );
        assert_close(
            &run(Op::RELU_0_TO_1, n, &X),
            &[0.0, 0.0, 0.0, 0.5, 1.0],
            0.0,
        );
    }

    #[test]
    fn logistic_tanh_and_hard_swish_follow_their_formulas() {
        use fb::BuiltinOperator as Op;
        let n = fb::BuiltinOptionsT::NONE;
        let want: Vec<f32> = X.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
        assert_close(&run(Op::LOGISTIC, n.clone(), &X), &want, 2e-6);
        let want: Vec<f32> = X.iter().map(|&x| x.tanh()).collect();
        assert_close(&run(Op::TANH, n.clone(), &X), &want, 2e-6);
        // hard_swish(-4) = 0, (-0.5) = -0.5*2.5/6, (0.5) = 0.5*3.5/6, (7) = 7
        assert_close(
            &run(Op::HARD_SWISH, n, &X),
            &[0.0, -0.208_333_33, 0.0, 0.291_666_66, 7.0],
            1e-6,
        );
    }

    #[test]
    fn leaky_relu_scales_negative_inputs_by_alpha() {
        let o =
            fb::BuiltinOptionsT::LeakyReluOptions(Box::new(fb::LeakyReluOptionsT { alpha: 0.1 }));
        assert_close(
            &run(fb::BuiltinOperator::LEAKY_RELU, o, &X),
            &[-0.4, -0.05, 0.0, 0.5, 7.0],
            1e-7,
        );
    }

    #[test]
    fn elu_uses_exp_minus_one_below_zero() {
        let y = run(fb::BuiltinOperator::ELU, fb::BuiltinOptionsT::NONE, &X);
        assert_close(
            &y,
            &[(-4.0f32).exp_m1(), (-0.5f32).exp_m1(), 0.0, 0.5, 7.0],
            1e-7,
        );
    }

    #[test]
    fn gelu_exact_and_approximate_match_reference_values() {
        // GELU(1) = 0.841344746, GELU(-1) = -0.158655254, GELU(-3) = -0.004049694
        let exact =
            fb::BuiltinOptionsT::GeluOptions(Box::new(fb::GeluOptionsT { approximate: false }));
        let y = run(fb::BuiltinOperator::GELU, exact, &[1.0, -1.0, -3.0]);
        assert_close(&y, &[0.841_344_7, -0.158_655_25, -0.004_049_694], 2e-7);
        let approx =
            fb::BuiltinOptionsT::GeluOptions(Box::new(fb::GeluOptionsT { approximate: true }));
        let y = run(fb::BuiltinOperator::GELU, approx, &[1.0, -1.0]);
        assert_close(&y, &[0.841_192, -0.158_808], 1e-6);
    }

    #[test]
    fn math_unaries() {
        use fb::BuiltinOperator as Op;
        let n = fb::BuiltinOptionsT::NONE;
        assert_close(
            &run(Op::EXP, n.clone(), &[0.0, 1.0]),
            &[1.0, std::f32::consts::E],
            1e-6,
        );
        assert_close(
            &run(Op::LOG, n.clone(), &[1.0, std::f32::consts::E]),
            &[0.0, 1.0],
            1e-6,
        );
        assert_close(&run(Op::SQRT, n.clone(), &[4.0, 9.0]), &[2.0, 3.0], 0.0);
        assert_close(&run(Op::RSQRT, n.clone(), &[4.0, 0.25]), &[0.5, 2.0], 0.0);
        assert_close(
            &run(Op::ABS, n.clone(), &X),
            &[4.0, 0.5, 0.0, 0.5, 7.0],
            0.0,
        );
        assert_close(&run(Op::NEG, n.clone(), &[1.0, -2.0]), &[-1.0, 2.0], 0.0);
        assert_close(&run(Op::SQUARE, n, &[-3.0, 0.5]), &[9.0, 0.25], 0.0);
    }

    #[test]
    fn prelu_broadcasts_alpha_per_channel() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::PRELU,
            fb::BuiltinOptionsT::NONE,
            vec![
                Arg::f32(&[1, 2, 2], vec![-1.0, -1.0, 2.0, -4.0]),
                Arg::f32(&[2], vec![0.5, 0.25]),
            ],
        );
        assert_eq!(shape, vec![1, 2, 2]);
        assert_close(&y, &[-0.5, -0.25, 2.0, -1.0], 0.0);
    }
}
