//! Activations: LOGISTIC, TANH, SOFTMAX, LOG_SOFTMAX, L2_NORMALIZATION (fixed output params), RELU, RELU6,
//! RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU, PRELU, HARD_SWISH, ELU, GELU.

use super::{
    OpDef, OpTable, KEPT_FLOAT_BY_TF, NOT_INT16_BY_TF, NO_INT16_KERNEL, NO_RULE_NO_KERNEL,
};
use crate::calibrate::ops::{activation as f, fast_math, normalization};
use crate::interp::kernels::{activation as i, gelu, leaky_relu, normalization as norm, softmax};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

/// int16 output params of the fixed-range ops: [-1, 1] over 2^15 steps.
const INT16_UNIT: (f32, i64) = (1.0 / 32768.0, 0);

pub(super) fn register(t: &mut OpTable) {
    // The kernels check these: SOFTMAX and LOGISTIC cover [0, 1), TANH and L2_NORMALIZATION [-1, 1).
    t.add(
        OpDef::weightless(Op::SOFTMAX)
            .float(normalization::softmax)
            .quantize(OpRule::fixed((1.0 / 256.0, -128), INT16_UNIT, 2))
            .integer(softmax::softmax),
    );
    t.add(
        OpDef::weightless(Op::LOGISTIC)
            .float(|c| f::unary_slices(c, fast_math::logistic_into, fast_math::logistic))
            .quantize(OpRule::fixed((1.0 / 256.0, -128), INT16_UNIT, 2))
            .integer(i::logistic),
    );
    t.add(
        OpDef::weightless(Op::TANH)
            .float(|c| f::unary_slices(c, fast_math::tanh_into, fast_math::tanh))
            .quantize(OpRule::fixed((1.0 / 128.0, 0), INT16_UNIT, 2))
            .integer(i::tanh),
    );
    t.add(
        OpDef::weightless(Op::L2_NORMALIZATION)
            .float(normalization::l2_normalization)
            .quantize_int8(
                OpRule::fixed((1.0 / 128.0, 0), INT16_UNIT, 2),
                NO_INT16_KERNEL,
            )
            .int8_kernel(norm::l2_normalization, NO_INT16_KERNEL),
    );
    t.add(
        OpDef::weightless(Op::LOG_SOFTMAX)
            .float(normalization::log_softmax)
            .quantize_int8(
                OpRule::fixed((16.0 / 256.0, 127), INT16_UNIT, 2),
                NO_INT16_KERNEL,
            )
            .int8_kernel(norm::log_softmax, NO_INT16_KERNEL),
    );
    t.add(
        OpDef::weightless(Op::RELU)
            .float(|c| f::unary(c, |x| x.max(0.0)))
            .quantize(OpRule::activation(&[0], 2))
            .integer(|c| i::relu(c, 0.0, f32::INFINITY)),
    );
    t.add(
        OpDef::weightless(Op::RELU6)
            .float(|c| f::unary(c, |x| x.clamp(0.0, 6.0)))
            .quantize(OpRule::activation(&[0], 2))
            .integer(|c| i::relu(c, 0.0, 6.0)),
    );
    t.add(
        OpDef::weightless(Op::RELU_N1_TO_1)
            .float(|c| f::unary(c, |x| x.clamp(-1.0, 1.0)))
            .quantize_int8(OpRule::activation(&[0], 1), NO_INT16_KERNEL)
            .integer(|c| i::relu(c, -1.0, 1.0)),
    );
    t.add(
        OpDef::weightless(Op::RELU_0_TO_1)
            .float(|c| f::unary(c, |x| x.clamp(0.0, 1.0)))
            .no_rule(KEPT_FLOAT_BY_TF)
            .no_integer(NO_RULE_NO_KERNEL),
    );
    t.add(
        OpDef::weightless(Op::LEAKY_RELU)
            .float(f::leaky_relu)
            .quantize(OpRule::activation(&[0], 2))
            .integer(leaky_relu::leaky_relu),
    );
    // PRELU's alpha is quantized like an activation (asymmetric, from its own values).
    t.add(
        OpDef::weightless(Op::PRELU)
            .float(f::prelu)
            .quantize_int8(OpRule::activation(&[0, 1], 1), NOT_INT16_BY_TF)
            .int8_kernel(leaky_relu::prelu, NOT_INT16_BY_TF),
    );
    t.add(
        OpDef::weightless(Op::HARD_SWISH)
            .float(|c| f::unary(c, |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0))
            .quantize_int8(OpRule::activation(&[0], 1), NO_INT16_KERNEL)
            .int8_kernel(i::hard_swish, NO_INT16_KERNEL),
    );
    t.add(
        OpDef::weightless(Op::ELU)
            .float(|c| f::unary(c, |x| if x < 0.0 { x.exp_m1() } else { x }))
            .no_rule(KEPT_FLOAT_BY_TF)
            .no_integer(NO_RULE_NO_KERNEL),
    );
    // GELU: lookup tables for int8 (v2) and int16.
    t.add(
        OpDef::weightless(Op::GELU)
            .float(f::gelu)
            .quantize(OpRule::activation(&[0], 2))
            .integer(gelu::gelu),
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType;
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn int8_softmax_output_has_fixed_scale() {
        let rule = table()
            .get(Op::SOFTMAX)
            .unwrap()
            .rule(ActivationType::Int8)
            .unwrap();
        let OutputRule::Fixed { int8, int16 } = rule.output else {
            panic!("not fixed")
        };
        assert_eq!(int8, (1.0 / 256.0, -128));
        assert_eq!(int16, (1.0 / 32768.0, 0));
    }

    #[test]
    fn tanh_output_is_one_over_128() {
        let rule = table()
            .get(Op::TANH)
            .unwrap()
            .rule(ActivationType::Int8)
            .unwrap();
        assert!(matches!(rule.output, OutputRule::Fixed { int8: (s, 0), .. } if s == 1.0 / 128.0));
    }

    #[test]
    fn hard_swish_and_prelu_have_no_int16_kernel() {
        for op in [
            Op::HARD_SWISH,
            Op::PRELU,
            Op::L2_NORMALIZATION,
            Op::RELU_N1_TO_1,
        ] {
            let def = table().get(op).unwrap();
            assert!(
                def.rule(ActivationType::Int8).is_ok() && def.rule(ActivationType::Int16).is_err(),
                "{op:?}"
            );
        }
    }
}
