//! Comparisons, logic and selection: LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT, LESS, GREATER, EQUAL, NOT_EQUAL,
//! LESS_EQUAL, GREATER_EQUAL, SELECT, SELECT_V2, ARG_MAX, ARG_MIN.
//!
//! TF's converter quantizes the comparisons' and ARG_MAX's inputs to int8 (their BOOL / index outputs stay
//! as they are; `quantizable_int16 = false`), and SELECT's value inputs onto its output's params.

use super::{OpDef, OpTable, NOT_INT16_BY_TF};
use crate::calibrate::ops::argmax::arg_extreme;
use crate::calibrate::ops::compare::{compare, logical, logical_not, select, Cmp};
use crate::interp::kernels::compare::compare_quantized as cq;
use crate::interp::kernels::data_movement as dm;
use crate::quantize::rules::{OpRule, OutputRule};
use crate::tflite::fb::BuiltinOperator as Op;

const BOOLEAN: &str = "it computes on BOOL tensors: there is nothing to quantize";

/// int8 inputs, outputs that are not real values (BOOL, indices).
const fn int8_inputs(inputs: &'static [usize]) -> OpRule {
    let mut r = OpRule::activation(inputs, 2);
    r.output = OutputRule::NotQuantized;
    r
}

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::LOGICAL_AND)
            .float(|c| logical(c, true))
            .float_only(BOOLEAN),
    );
    t.add(
        op(Op::LOGICAL_OR)
            .float(|c| logical(c, false))
            .float_only(BOOLEAN),
    );
    t.add(op(Op::LOGICAL_NOT).float(logical_not).float_only(BOOLEAN));
    let comparison = |code, float: crate::calibrate::Kernel, int8: crate::interp::IntegerKernel| {
        op(code)
            .float(float)
            .quantize_int8(int8_inputs(&[0, 1]), NOT_INT16_BY_TF)
            .int8_kernel(int8, NOT_INT16_BY_TF)
    };
    t.add(comparison(
        Op::LESS,
        |c| compare(c, Cmp::Less),
        |c| cq(c, |f| compare(f, Cmp::Less)),
    ));
    t.add(comparison(
        Op::GREATER,
        |c| compare(c, Cmp::Greater),
        |c| cq(c, |f| compare(f, Cmp::Greater)),
    ));
    t.add(comparison(
        Op::EQUAL,
        |c| compare(c, Cmp::Equal),
        |c| cq(c, |f| compare(f, Cmp::Equal)),
    ));
    t.add(comparison(
        Op::NOT_EQUAL,
        |c| compare(c, Cmp::NotEqual),
        |c| cq(c, |f| compare(f, Cmp::NotEqual)),
    ));
    t.add(comparison(
        Op::LESS_EQUAL,
        |c| compare(c, Cmp::LessEqual),
        |c| cq(c, |f| compare(f, Cmp::LessEqual)),
    ));
    t.add(comparison(
        Op::GREATER_EQUAL,
        |c| compare(c, Cmp::GreaterEqual),
        |c| cq(c, |f| compare(f, Cmp::GreaterEqual)),
    ));
    // SELECT copies raw codes: both value inputs are requantized onto the output's calibrated params.
    let mut select_rule = OpRule::activation(&[1, 2], 1);
    select_rule.inputs_match_output = true;
    t.add(
        op(Op::SELECT)
            .float(|c| select(c, false))
            .quantize(select_rule.clone())
            .integer(|c| dm::on_codes(c, |f| select(f, false))),
    );
    t.add(
        op(Op::SELECT_V2)
            .float(|c| select(c, true))
            .quantize(select_rule)
            .integer(|c| dm::on_codes(c, |f| select(f, true))),
    );
    // The index of the extreme code is the index of the extreme value (the scale is positive).
    t.add(
        op(Op::ARG_MAX)
            .float(|c| arg_extreme(c, true))
            .quantize_int8(int8_inputs(&[0]), NOT_INT16_BY_TF)
            .int8_kernel(
                |c| dm::on_codes(c, |f| arg_extreme(f, true)),
                NOT_INT16_BY_TF,
            ),
    );
    t.add(
        op(Op::ARG_MIN)
            .float(|c| arg_extreme(c, false))
            .quantize_int8(int8_inputs(&[0]), NOT_INT16_BY_TF)
            .int8_kernel(
                |c| dm::on_codes(c, |f| arg_extreme(f, false)),
                NOT_INT16_BY_TF,
            ),
    );
}
