//! Space and depth rearrangements: SPACE_TO_DEPTH, DEPTH_TO_SPACE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND.
//! Outputs reuse the input's params.

use super::{OpDef, OpTable, NO_INT16_KERNEL};
use crate::calibrate::ops::space as f;
use crate::interp::kernels::data_movement as dm;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::SPACE_TO_DEPTH)
            .float(f::space_to_depth)
            .quantize_int8(OpRule::same_scale(&[0], 2), NO_INT16_KERNEL)
            .integer(|c| dm::on_codes(c, f::space_to_depth)),
    );
    t.add(
        op(Op::DEPTH_TO_SPACE)
            .float(f::depth_to_space)
            .quantize_int8(OpRule::same_scale(&[0], 2), NO_INT16_KERNEL)
            .integer(|c| dm::on_codes(c, f::depth_to_space)),
    );
    t.add(
        op(Op::SPACE_TO_BATCH_ND)
            .float(f::space_to_batch_nd)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::space_to_batch_nd)),
    );
    t.add(
        op(Op::BATCH_TO_SPACE_ND)
            .float(f::batch_to_space_nd)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::batch_to_space_nd)),
    );
}
