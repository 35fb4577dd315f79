//! Activation functions: SOFTMAX, LOGISTIC, TANH, LOG_SOFTMAX, L2_NORMALIZATION (fixed output params),
//! RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, PRELU, HARD_SWISH, RSQRT, GELU (calibrated outputs).

use super::{OpRule, OutputRule, RuleRegistry};
use crate::tflite::fb::BuiltinOperator as Op;

const fn fixed(int8: (f32, i64), int16: (f32, i64), has_int16: bool) -> OpRule {
    let mut r = OpRule::activation(&[0], 2);
    r.output = OutputRule::Fixed { int8, int16 };
    r.int16 = has_int16;
    r
}

/// int16 output params of the fixed-range ops that have int16 kernels: [-1, 1] over 2^15 steps.
const INT16_UNIT: (f32, i64) = (1.0 / 32768.0, 0);

pub(super) fn register(r: &mut RuleRegistry) {
    // The kernels check these: SOFTMAX and LOGISTIC cover [0, 1), TANH and L2_NORMALIZATION [-1, 1).
    r.register(Op::SOFTMAX, fixed((1.0 / 256.0, -128), INT16_UNIT, true));
    r.register(Op::LOGISTIC, fixed((1.0 / 256.0, -128), INT16_UNIT, true));
    r.register(Op::TANH, fixed((1.0 / 128.0, 0), INT16_UNIT, true));
    r.register(
        Op::L2_NORMALIZATION,
        fixed((1.0 / 128.0, 0), INT16_UNIT, false),
    );
    r.register(
        Op::LOG_SOFTMAX,
        fixed((16.0 / 256.0, 127), INT16_UNIT, false),
    );
    r.register(Op::RELU, OpRule::activation(&[0], 2));
    r.register(Op::RELU6, OpRule::activation(&[0], 2));
    r.register(Op::LEAKY_RELU, OpRule::activation(&[0], 2));
    let mut relu_n1 = OpRule::activation(&[0], 1);
    relu_n1.int16 = false;
    r.register(Op::RELU_N1_TO_1, relu_n1);
    // PRELU's alpha is quantized like an activation (asymmetric, from its own values).
    let mut prelu = OpRule::activation(&[0, 1], 1);
    prelu.int16 = false;
    r.register(Op::PRELU, prelu);
    let mut hard_swish = OpRule::activation(&[0], 1);
    hard_swish.int16 = false;
    r.register(Op::HARD_SWISH, hard_swish);
    // LiteRT's int8 RSQRT is fixed point (v2), its int16 one an interpolated table (v3).
    r.register(Op::RSQRT, OpRule::activation(&[0], 2));
    // GELU: lookup tables for int8 (v2) and int16.
    r.register(Op::GELU, OpRule::activation(&[0], 2));
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::quantize::params::ActivationType;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn int8_softmax_output_has_fixed_scale() {
        let r = RuleRegistry::with_all_rules();
        let OutputRule::Fixed { int8, int16 } = r.get(Op::SOFTMAX).unwrap().output else {
            panic!("not fixed")
        };
        assert_eq!(int8, (1.0 / 256.0, -128));
        assert_eq!(int16, (1.0 / 32768.0, 0));
    }

    #[test]
    fn tanh_output_is_one_over_128() {
        let r = RuleRegistry::with_all_rules();
        assert!(
            matches!(r.get(Op::TANH).unwrap().output, OutputRule::Fixed { int8: (s, 0), .. } if s == 1.0 / 128.0)
        );
    }

    #[test]
    fn hard_swish_and_prelu_have_no_int16_kernel() {
        let r = RuleRegistry::with_all_rules();
        for op in [
            Op::HARD_SWISH,
            Op::PRELU,
            Op::L2_NORMALIZATION,
            Op::RELU_N1_TO_1,
        ] {
            let rule = r.get(op).unwrap();
            assert!(
                rule.supports(ActivationType::Int8) && !rule.supports(ActivationType::Int16),
                "{op:?}"
            );
        }
    }
}
