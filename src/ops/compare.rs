//! Comparisons, logic and selection: LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT, LESS, GREATER, EQUAL, NOT_EQUAL, LESS_EQUAL, GREATER_EQUAL, SELECT,
//! SELECT_V2, ARG_MAX, ARG_MIN.

use super::{OpDef, OpTable, NO_RULE_YET};
use crate::calibrate::ops::argmax::arg_extreme;
use crate::calibrate::ops::compare::{compare, logical, logical_not, select, Cmp};
use crate::tflite::fb::BuiltinOperator as Op;

const BOOLEAN: &str = "it computes on BOOL tensors: there is nothing to quantize";

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
    t.add(
        op(Op::LESS)
            .float(|c| compare(c, Cmp::Less))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::GREATER)
            .float(|c| compare(c, Cmp::Greater))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::EQUAL)
            .float(|c| compare(c, Cmp::Equal))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::NOT_EQUAL)
            .float(|c| compare(c, Cmp::NotEqual))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::LESS_EQUAL)
            .float(|c| compare(c, Cmp::LessEqual))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::GREATER_EQUAL)
            .float(|c| compare(c, Cmp::GreaterEqual))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::SELECT)
            .float(|c| select(c, false))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::SELECT_V2)
            .float(|c| select(c, true))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::ARG_MAX)
            .float(|c| arg_extreme(c, true))
            .float_only(NO_RULE_YET),
    );
    t.add(
        op(Op::ARG_MIN)
            .float(|c| arg_extreme(c, false))
            .float_only(NO_RULE_YET),
    );
}
