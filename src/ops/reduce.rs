//! Reductions: MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD.

use super::{OpDef, OpTable};
use crate::calibrate::ops::reduce as f;
use crate::interp::kernels::reduce as i;
use crate::quantize::rules::{OpRule, OutputRule};
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    // MEAN rescales (a mean narrows the range, so its own calibrated range is finer).
    t.add(
        op(Op::MEAN)
            .float(f::mean)
            .quantize(OpRule::activation(&[0], 2))
            .integer(i::mean),
    );
    // SUM rescales in int8 only.
    let mut sum = OpRule::activation(&[0], 2);
    sum.output = OutputRule::SameAsInputInt16;
    t.add(op(Op::SUM).float(f::sum).quantize(sum).integer(i::sum));
    // The extremes do not rescale: the output reuses the input's params.
    t.add(
        op(Op::REDUCE_MAX)
            .float(f::reduce_max)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| i::extreme(c, true)),
    );
    t.add(
        op(Op::REDUCE_MIN)
            .float(f::reduce_min)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| i::extreme(c, false)),
    );
    // REDUCE_PROD rescales onto its own calibrated output (operator_property.cc, version 2).
    t.add(
        op(Op::REDUCE_PROD)
            .float(f::reduce_prod)
            .quantize(OpRule::activation(&[0], 2))
            .integer(i::prod),
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn mean_output_is_calibrated() {
        let rule = table().get(Op::MEAN).unwrap().rule(Int8).unwrap();
        assert_eq!(rule.output, OutputRule::Calibrated);
    }
}
