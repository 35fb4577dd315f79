//! Comparisons of int8 / int16 inputs (`reference_ops::ComparisonWithScaling`): each input's code less its
//! zero point, shifted left by 8 and multiplied by its own scale (`MultiplyByQuantizedMultiplierSmallerThanOneExp`
//! of `QuantizeMultiplier(scale)`), so inputs on different params compare as reals; the int32 results are then
//! compared, with broadcasting, by the float model's generic comparison kernel.

use super::data_movement::on_values;
use super::{codes, OpCtx};
use crate::calibrate::Value;
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier,
};
use crate::interp::tensor::{Tensor, TensorData};
use ndarray::{ArrayD, IxDyn};

/// Input `i` scaled as `ComparisonWithScaling` does, as an INT32 value.
fn scaled(ctx: &OpCtx<'_>, i: usize) -> Result<Value, String> {
    let t = ctx.input(i)?;
    let q = ctx.input_quant(i)?;
    let m = quantize_multiplier(f64::from(q.scale0()));
    let zp = q.zero_point0();
    let v: Vec<i32> = codes(t)?
        .into_iter()
        .map(|c| {
            multiply_by_quantized_multiplier_smaller_than_one_exp(
                (c - zp).wrapping_mul(1 << 8),
                m.multiplier,
                m.shift,
            )
        })
        .collect();
    Ok(Value::I32(
        ArrayD::from_shape_vec(IxDyn(&t.shape), v).map_err(|e| e.to_string())?,
    ))
}

/// The integer comparison kernel (`kernel`: the op's float-model comparison): BOOL output.
pub(crate) fn compare_quantized(
    ctx: &OpCtx<'_>,
    kernel: crate::calibrate::Kernel,
) -> Result<Vec<Tensor>, String> {
    let values = [Some(scaled(ctx, 0)?), Some(scaled(ctx, 1)?)];
    on_values(ctx, &values, kernel)?
        .into_iter()
        .map(|v| match v {
            Value::Bool(a) => Tensor::new(
                a.shape().to_vec(),
                TensorData::Bool(a.iter().copied().collect()),
            ),
            other => Err(format!("a comparison produced {}", other.type_name())),
        })
        .collect()
}
