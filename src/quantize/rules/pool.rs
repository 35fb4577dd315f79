//! Pooling, reductions and resizing: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, SUM, REDUCE_MAX, REDUCE_MIN,
//! RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR.

use super::{OpRule, OutputRule, RuleRegistry};
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(r: &mut RuleRegistry) {
    // These kernels do not rescale: the output reuses the input's params.
    for op in [
        Op::AVERAGE_POOL_2D,
        Op::MAX_POOL_2D,
        Op::REDUCE_MAX,
        Op::REDUCE_MIN,
        Op::RESIZE_BILINEAR,
        Op::RESIZE_NEAREST_NEIGHBOR,
    ] {
        r.register(op, OpRule::same_scale(&[0], 2));
    }
    // MEAN rescales (a mean narrows the range, so its own calibrated range is finer).
    r.register(Op::MEAN, OpRule::activation(&[0], 2));
    // SUM rescales in int8 only.
    let mut sum = OpRule::activation(&[0], 2);
    sum.output = OutputRule::SameAsInputInt16;
    r.register(Op::SUM, sum);
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn pooling_output_reuses_input_params() {
        let r = RuleRegistry::with_all_rules();
        assert_eq!(
            r.get(Op::AVERAGE_POOL_2D).unwrap().output,
            OutputRule::SameAsInput
        );
        assert_eq!(
            r.get(Op::MAX_POOL_2D).unwrap().output,
            OutputRule::SameAsInput
        );
    }

    #[test]
    fn mean_output_is_calibrated() {
        assert_eq!(
            RuleRegistry::with_all_rules().get(Op::MEAN).unwrap().output,
            OutputRule::Calibrated
        );
    }
}
