//! Data movement: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, PAD, PADV2, MIRROR_PAD, SLICE, STRIDED_SLICE,
//! GATHER, GATHER_ND, SPLIT, SPLIT_V, UNPACK, PACK, CONCATENATION, TILE, BROADCAST_TO, REVERSE_V2,
//! DEPTH_TO_SPACE, SPACE_TO_DEPTH, BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND.
//!
//! None of them computes: outputs reuse the input's params, and ops joining several tensors need every input
//! on the output's params.

use super::{ActivationInputs, OpRule, OutputRule, RuleRegistry};
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(r: &mut RuleRegistry) {
    for op in [Op::RESHAPE, Op::SQUEEZE, Op::EXPAND_DIMS, Op::UNPACK] {
        r.register(op, OpRule::same_scale(&[0], 1));
    }
    for op in [
        Op::TRANSPOSE,
        Op::PAD,
        Op::MIRROR_PAD,
        Op::SLICE,
        Op::STRIDED_SLICE,
        Op::GATHER,
        Op::SPLIT_V,
        Op::BATCH_TO_SPACE_ND,
        Op::SPACE_TO_BATCH_ND,
    ] {
        r.register(op, OpRule::same_scale(&[0], 2));
    }
    for op in [Op::TILE, Op::BROADCAST_TO, Op::GATHER_ND, Op::REVERSE_V2] {
        r.register(op, OpRule::same_scale(&[0], 3));
    }
    for op in [Op::DEPTH_TO_SPACE, Op::SPACE_TO_DEPTH] {
        let mut rule = OpRule::same_scale(&[0], 2);
        rule.int16 = false;
        r.register(op, rule);
    }
    // SPLIT reads (axis, value).
    r.register(Op::SPLIT, OpRule::same_scale(&[1], 2));
    // PADV2's pad value must be on the input's grid.
    let mut padv2 = OpRule::same_scale(&[0], 2);
    padv2.same_as_input = &[2];
    r.register(Op::PADV2, padv2);
    for op in [Op::CONCATENATION, Op::PACK] {
        let mut rule = OpRule::activation(&[], 2);
        rule.activations = ActivationInputs::All;
        rule.output = OutputRule::Calibrated;
        rule.inputs_match_output = true;
        r.register(op, rule);
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn concatenation_inputs_are_requantized_to_the_output() {
        let r = RuleRegistry::with_all_rules();
        let rule = r.get(Op::CONCATENATION).unwrap();
        assert!(rule.inputs_match_output);
        assert_eq!(rule.output, OutputRule::Calibrated);
        assert!(rule.activations.contains(3, 4));
    }

    #[test]
    fn reshape_shape_input_is_not_an_activation() {
        let r = RuleRegistry::with_all_rules();
        let rule = r.get(Op::RESHAPE).unwrap();
        assert!(rule.activations.contains(0, 2) && !rule.activations.contains(1, 2));
        assert_eq!(rule.output, OutputRule::SameAsInput);
    }

    #[test]
    fn split_value_is_input_1() {
        let r = RuleRegistry::with_all_rules();
        assert!(r.get(Op::SPLIT).unwrap().activations.contains(1, 2));
    }
}
