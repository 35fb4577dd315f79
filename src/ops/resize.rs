//! Resizing: RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR. The output reuses the input's params.

use super::{OpDef, OpTable, NOT_IN_INTERPRETER};
use crate::calibrate::ops::resize as f;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    t.add(
        OpDef::weightless(Op::RESIZE_BILINEAR)
            .float(f::resize_bilinear)
            .quantize(OpRule::same_scale(&[0], 2))
            .no_integer(NOT_IN_INTERPRETER),
    );
    t.add(
        OpDef::weightless(Op::RESIZE_NEAREST_NEIGHBOR)
            .float(f::resize_nearest_neighbor)
            .quantize(OpRule::same_scale(&[0], 2))
            .no_integer(NOT_IN_INTERPRETER),
    );
}
