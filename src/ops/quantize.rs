//! Conversions between float and integers: QUANTIZE, DEQUANTIZE.

use super::{OpDef, OpTable};
use crate::calibrate::ops::quantize_ops as f;
use crate::interp::kernels::quantize as i;
use crate::tflite::fb::BuiltinOperator as Op;

/// Why the integer modes have no rule for them.
const CONVERSION: &str =
    "it converts between float and integers: the integer modes insert it where a tensor changes type";

pub(super) fn register(t: &mut OpTable) {
    t.add(
        OpDef::weightless(Op::QUANTIZE)
            .float(f::quantize)
            .no_rule(CONVERSION)
            .integer(i::quantize),
    );
    t.add(
        OpDef::weightless(Op::DEQUANTIZE)
            .float(f::dequantize)
            .no_rule(CONVERSION)
            .integer(i::dequantize),
    );
}
