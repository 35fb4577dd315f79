//! Element-wise binary ops: ADD, SUB, MUL, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM.
//!
//! ADD/SUB/MUL rescale each input inside the kernel, so inputs keep their own params; MAXIMUM/MINIMUM compare
//! raw integers, so their inputs must carry the output's params. DIV has no int8 kernel: it stays float.

use super::{ActivationInputs, OpRule, RuleRegistry};
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(r: &mut RuleRegistry) {
    for op in [Op::ADD, Op::SUB, Op::MUL] {
        r.register(op, OpRule::activation(&[0, 1], 2));
    }
    // LiteRT 2.x has no int16 SQUARED_DIFFERENCE kernel we can rely on: float in int16x8.
    let mut sq = OpRule::activation(&[0, 1], 2);
    sq.int16 = false;
    r.register(Op::SQUARED_DIFFERENCE, sq);
    for op in [Op::MAXIMUM, Op::MINIMUM] {
        let mut rule = OpRule::activation(&[], 2);
        rule.activations = ActivationInputs::All;
        rule.inputs_match_output = true;
        r.register(op, rule);
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn add_inputs_keep_their_own_params() {
        let r = RuleRegistry::with_all_rules();
        let rule = r.get(Op::ADD).unwrap();
        assert_eq!(rule.output, OutputRule::Calibrated);
        assert!(!rule.inputs_match_output);
        assert!(rule.activations.contains(1, 2));
    }

    #[test]
    fn maximum_inputs_must_match_the_output() {
        let r = RuleRegistry::with_all_rules();
        assert!(r.get(Op::MAXIMUM).unwrap().inputs_match_output);
        assert!(r.get(Op::MINIMUM).unwrap().inputs_match_output);
    }

    #[test]
    fn div_has_no_integer_rule() {
        assert!(RuleRegistry::with_all_rules().get(Op::DIV).is_none());
    }
}
