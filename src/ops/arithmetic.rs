//! Element-wise binary ops: ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, POW, FLOOR_DIV,
//! FLOOR_MOD, ADD_N.
//!
//! ADD/SUB/MUL rescale each input inside the kernel, so inputs keep their own params; MAXIMUM/MINIMUM compare
//! raw integers, so their inputs must carry the output's params.

use super::{OpDef, OpTable, KEPT_FLOAT_BY_TF};
use crate::calibrate::ops::arithmetic::{self as f, Arith};
use crate::interp::kernels::data_movement as dm;
use crate::interp::kernels::{arithmetic as i, squared_difference as sq};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

const NO_INT16_SQUARED_DIFFERENCE: &str =
    "LiteRT 2.x has no int16 SQUARED_DIFFERENCE kernel we can rely on: int16x8 keeps it float";

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::ADD)
            .float(|c| f::binary(c, Arith::Add))
            .quantize(OpRule::activation(&[0, 1], 2))
            .integer(|c| i::add_sub(c, false)),
    );
    t.add(
        op(Op::SUB)
            .float(|c| f::binary(c, Arith::Sub))
            .quantize(OpRule::activation(&[0, 1], 2))
            .integer(|c| i::add_sub(c, true)),
    );
    t.add(
        op(Op::MUL)
            .float(|c| f::binary(c, Arith::Mul))
            .quantize(OpRule::activation(&[0, 1], 2))
            .integer(i::mul),
    );
    t.add(
        op(Op::DIV)
            .float(|c| f::binary(c, Arith::Div))
            .float_only("LiteRT has no int8 or int16 DIV kernel (uint8 only): it stays float"),
    );
    t.add(
        op(Op::SQUARED_DIFFERENCE)
            .float(|c| f::binary(c, Arith::SquaredDifference))
            .quantize_int8(OpRule::activation(&[0, 1], 2), NO_INT16_SQUARED_DIFFERENCE)
            .int8_kernel(sq::squared_difference, NO_INT16_SQUARED_DIFFERENCE),
    );
    t.add(
        op(Op::MAXIMUM)
            .float(|c| f::binary(c, Arith::Maximum))
            .quantize(OpRule::joining(2))
            .integer(|c| dm::max_min(c, true)),
    );
    t.add(
        op(Op::MINIMUM)
            .float(|c| f::binary(c, Arith::Minimum))
            .quantize(OpRule::joining(2))
            .integer(|c| dm::max_min(c, false)),
    );
    t.add(
        op(Op::POW)
            .float(|c| f::binary(c, Arith::Pow))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(
        op(Op::FLOOR_DIV)
            .float(|c| f::binary(c, Arith::FloorDiv))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(
        op(Op::FLOOR_MOD)
            .float(|c| f::binary(c, Arith::FloorMod))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(op(Op::ADD_N).float(f::add_n).float_only(KEPT_FLOAT_BY_TF));
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::{Int16, Int8};
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn add_inputs_keep_their_own_params() {
        let rule = table().get(Op::ADD).unwrap().rule(Int8).unwrap();
        assert_eq!(rule.output, OutputRule::Calibrated);
        assert!(!rule.inputs_match_output);
        assert!(rule.activations.contains(1, 2));
    }

    #[test]
    fn maximum_inputs_must_match_the_output() {
        for op in [Op::MAXIMUM, Op::MINIMUM] {
            assert!(
                table()
                    .get(op)
                    .unwrap()
                    .rule(Int16)
                    .unwrap()
                    .inputs_match_output
            );
        }
    }

    #[test]
    fn div_has_no_integer_rule() {
        let div = table().get(Op::DIV).unwrap();
        assert!(div.rule(Int8).is_err() && div.rule(Int16).is_err());
    }
}
