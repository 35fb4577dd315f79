//! Padding: PAD, PADV2, MIRROR_PAD. Outputs reuse the input's params.

use super::{OpDef, OpTable};
use crate::calibrate::ops::pad as f;
use crate::interp::kernels::data_movement as dm;
use crate::interp::kernels::shape as i;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::PAD)
            .float(f::pad)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(i::pad),
    );
    // PADV2's pad value must be on the input's grid.
    let mut padv2 = OpRule::same_scale(&[0], 2);
    padv2.same_as_input = &[2];
    t.add(op(Op::PADV2).float(f::pad).quantize(padv2).integer(i::pad));
    t.add(
        op(Op::MIRROR_PAD)
            .float(f::mirror_pad)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::mirror_pad)),
    );
}
