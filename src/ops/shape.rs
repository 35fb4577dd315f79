//! Shape and layout: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, TILE, BROADCAST_TO, SHAPE, FILL.
//!
//! None of them computes: outputs reuse the input's params.

use super::{OpDef, OpTable};
use crate::calibrate::ops::shape as f;
use crate::interp::kernels::data_movement as dm;
use crate::interp::kernels::{shape as i, transpose};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::RESHAPE)
            .float(f::reshape)
            .quantize(OpRule::same_scale(&[0], 1))
            .integer(i::reshape),
    );
    t.add(
        op(Op::SQUEEZE)
            .float(f::squeeze)
            .quantize(OpRule::same_scale(&[0], 1))
            .integer(i::reshape),
    );
    t.add(
        op(Op::EXPAND_DIMS)
            .float(f::expand_dims)
            .quantize(OpRule::same_scale(&[0], 1))
            .integer(|c| dm::on_codes(c, f::expand_dims)),
    );
    t.add(
        op(Op::TRANSPOSE)
            .float(f::transpose)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(transpose::transpose),
    );
    t.add(
        op(Op::TILE)
            .float(f::tile)
            .quantize(OpRule::same_scale(&[0], 3))
            .integer(|c| dm::on_codes(c, f::tile)),
    );
    t.add(
        op(Op::BROADCAST_TO)
            .float(f::broadcast_to)
            .quantize(OpRule::same_scale(&[0], 3))
            .integer(|c| dm::on_codes(c, f::broadcast_to)),
    );
    t.add(
        op(Op::SHAPE)
            .float(f::shape)
            .float_only("its output is the input's shape (int32): there is nothing to quantize"),
    );
    // FILL repeats its value: the output reuses the value's params (operator_property.cc, version 3).
    t.add(
        op(Op::FILL)
            .float(f::fill)
            .quantize(OpRule::same_scale(&[1], 3))
            .integer(|c| dm::on_codes(c, f::fill)),
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn reshape_shape_input_is_not_an_activation() {
        let rule = table().get(Op::RESHAPE).unwrap().rule(Int8).unwrap();
        assert!(rule.activations.contains(0, 2) && !rule.activations.contains(1, 2));
        assert_eq!(rule.output, OutputRule::SameAsInput);
    }
}
