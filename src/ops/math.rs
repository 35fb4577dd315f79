//! Element-wise math: EXP, LOG, SQRT, RSQRT, ABS, NEG, SQUARE, FLOOR, CEIL, ROUND, CAST, ZEROS_LIKE.

use super::{OpDef, OpTable, KEPT_FLOAT_BY_TF, NO_RULE_NO_KERNEL};
use crate::calibrate::ops::{activation as f, unary};
use crate::interp::kernels::{elementwise as e, rsqrt};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    // EXP, LOG, SQRT and ABS rescale onto their own calibrated output (operator_property.cc, version 2).
    t.add(
        op(Op::EXP)
            .float(|c| f::unary(c, f32::exp))
            .quantize(OpRule::activation(&[0], 2))
            .integer(e::exp),
    );
    t.add(
        op(Op::LOG)
            .float(|c| f::unary(c, f32::ln))
            .quantize(OpRule::activation(&[0], 2))
            .integer(e::log),
    );
    t.add(
        op(Op::SQRT)
            .float(|c| f::unary(c, f32::sqrt))
            .quantize(OpRule::activation(&[0], 2))
            .integer(e::sqrt),
    );
    // LiteRT's int8 RSQRT is fixed point (v2), its int16 one an interpolated table (v3).
    t.add(
        op(Op::RSQRT)
            .float(|c| f::unary(c, |x| 1.0 / x.sqrt()))
            .quantize(OpRule::activation(&[0], 2))
            .integer(rsqrt::rsqrt),
    );
    t.add(
        op(Op::ABS)
            .float(|c| f::unary(c, f32::abs))
            .quantize(OpRule::activation(&[0], 2))
            .integer(e::abs),
    );
    t.add(
        op(Op::NEG)
            .float(|c| f::unary(c, |x| -x))
            .float_in_every_op_set(
                "TF's converter keeps NEG float in every op set: LiteRT's int8/int16 NEG negates raw codes \
                 (no zero point; the lowest code wraps onto itself)",
            )
            .no_integer(NO_RULE_NO_KERNEL),
    );
    t.add(
        op(Op::SQUARE)
            .float(|c| f::unary(c, |x| x * x))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(
        op(Op::FLOOR)
            .float(|c| unary::float_map(c, f32::floor))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(
        op(Op::CEIL)
            .float(|c| unary::float_map(c, f32::ceil))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    // TFLite rounds half to even (banker's rounding), like TensorFlow's tf.round.
    t.add(
        op(Op::ROUND)
            .float(|c| unary::float_map(c, f32::round_ties_even))
            .float_only(KEPT_FLOAT_BY_TF),
    );
    t.add(
        op(Op::CAST)
            .float(unary::cast)
            .float_only("it converts between element types: the integer modes leave it as it is"),
    );
    t.add(
        op(Op::ZEROS_LIKE)
            .float(unary::zeros_like)
            .float_only(KEPT_FLOAT_BY_TF),
    );
}
