//! Slicing and indexing: SLICE, STRIDED_SLICE, REVERSE_V2, GATHER, GATHER_ND. Outputs reuse the input's
//! params.

use super::{DynamicWeights, OpDef, OpTable, WeightKernel};
use crate::calibrate::ops::{gather as g, slice as f};
use crate::interp::kernels::data_movement as dm;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::SLICE)
            .float(f::slice)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::slice)),
    );
    t.add(
        op(Op::STRIDED_SLICE)
            .float(f::strided_slice)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, f::strided_slice)),
    );
    t.add(
        op(Op::REVERSE_V2)
            .float(f::reverse_v2)
            .quantize(OpRule::same_scale(&[0], 3))
            .integer(|c| dm::on_codes(c, f::reverse_v2)),
    );
    // Dynamic mode stores a constant GATHER table int8; a DEQUANTIZE feeds the float kernel.
    t.add(
        OpDef::new(Op::GATHER)
            .float(g::gather)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| dm::on_codes(c, g::gather))
            .dynamic(DynamicWeights {
                inputs: &[0],
                per_channel: None,
                kernel: WeightKernel::WeightOnly,
                asymmetric_inputs: false,
                condition: None,
            })
            .no_hybrid("LiteRT has no hybrid GATHER kernel: a DEQUANTIZE feeds the float kernel"),
    );
    t.add(
        op(Op::GATHER_ND)
            .float(g::gather_nd)
            .quantize(OpRule::same_scale(&[0], 3))
            .integer(|c| dm::on_codes(c, g::gather_nd)),
    );
}
