//! Resizing: RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR. The output reuses the input's params.

use super::{OpDef, OpTable};
use crate::calibrate::ops::resize as f;
use crate::interp::kernels::{data_movement as dm, resize as i};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    t.add(
        OpDef::weightless(Op::RESIZE_BILINEAR)
            .float(f::resize_bilinear)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(i::resize_bilinear),
    );
    t.add(
        OpDef::weightless(Op::RESIZE_NEAREST_NEIGHBOR)
            .float(f::resize_nearest_neighbor)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::resize_nearest_neighbor)),
    );
}
