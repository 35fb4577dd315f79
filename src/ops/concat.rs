//! Joining and splitting: CONCATENATION, PACK, SPLIT, SPLIT_V, UNPACK.
//!
//! None of them computes: split outputs reuse the input's params; ops joining several tensors need every
//! input on the output's params.

use super::{OpDef, OpTable};
use crate::calibrate::ops::concat as f;
use crate::interp::kernels::data_movement as dm;
use crate::interp::kernels::shape as i;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::CONCATENATION)
            .float(f::concatenation)
            .quantize(OpRule::joining(2))
            .integer(i::concatenation),
    );
    t.add(
        op(Op::PACK)
            .float(f::pack)
            .quantize(OpRule::joining(2))
            .integer(|c| dm::on_codes(c, f::pack)),
    );
    // SPLIT reads (axis, value).
    t.add(
        op(Op::SPLIT)
            .float(f::split)
            .quantize(OpRule::same_scale(&[1], 2))
            .integer(|c| dm::on_codes(c, f::split)),
    );
    t.add(
        op(Op::SPLIT_V)
            .float(f::split_v)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::split_v)),
    );
    t.add(
        op(Op::UNPACK)
            .float(f::unpack)
            .quantize(OpRule::same_scale(&[0], 1))
            .integer(|c| dm::on_codes(c, f::unpack)),
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn concatenation_inputs_are_requantized_to_the_output() {
        let rule = table().get(Op::CONCATENATION).unwrap().rule(Int8).unwrap();
        assert!(rule.inputs_match_output);
        assert_eq!(rule.output, OutputRule::Calibrated);
        assert!(rule.activations.contains(3, 4));
    }

    #[test]
    fn split_value_is_input_1() {
        let rule = table().get(Op::SPLIT).unwrap().rule(Int8).unwrap();
        assert!(rule.activations.contains(1, 2));
    }
}
