//! SQUARED_DIFFERENCE on int8 with broadcasting: LiteRT's `squared_difference.cc` quantized path.
//!
//! Both inputs are rescaled to a common scale (`2 * max(scale1, scale2)`, left shift 7), subtracted and
//! squared in int32, then requantized with `twice_max^2 / (2^14 * output_scale)`. `Prepare` computes the
//! doubled maximum and the denominator in float before widening, as here. LiteRT has no int16 kernel.

use super::arithmetic::{binary_output, broadcast_runs, combine, rescaled};
use super::requantize::Scaler;
use super::OpCtx;
use crate::interp::fixed_point::quantize_multiplier;
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The int8 SQUARED_DIFFERENCE kernel.
pub(crate) fn squared_difference(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let out_type = ctx.output_type(0)?;
    if out_type != fb::TensorType::INT8
        || a.tensor_type() != fb::TensorType::INT8
        || b.tensor_type() != fb::TensorType::INT8
    {
        return Err(format!(
            "LiteRT's integer SQUARED_DIFFERENCE takes int8, got {} -> {}",
            crate::tflite::type_name(a.tensor_type()),
            crate::tflite::type_name(out_type)
        ));
    }
    let (qa, qb, qo) = (
        ctx.input_quant(0)?,
        ctx.input_quant(1)?,
        ctx.output_quant(0)?,
    );
    const LEFT_SHIFT: i32 = 7;
    let twice_max = f64::from(2.0 * qa.scale0().max(qb.scale0()));
    let ma = quantize_multiplier(f64::from(qa.scale0()) / twice_max);
    let mb = quantize_multiplier(f64::from(qb.scale0()) / twice_max);
    let denominator = f64::from((1 << (LEFT_SHIFT * 2)) as f32 * qo.scale0());
    let mo = quantize_multiplier(twice_max * twice_max / denominator);
    let rescale = Scaler::smaller_than_one(mo);
    let zo = qo.zero_point0();
    let (shape, runs) = broadcast_runs(&a.shape, &b.shape)?;
    ctx.with_scratch(|s| {
        rescaled(a, qa.zero_point0(), LEFT_SHIFT, ma, &mut s.lhs)?;
        rescaled(b, qb.zero_point0(), LEFT_SHIFT, mb, &mut s.rhs)?;
        combine(&s.lhs, &s.rhs, runs, &mut s.sums, move |x, y| {
            let diff = x.wrapping_sub(y);
            rescale
                .apply(diff.wrapping_mul(diff))
                .wrapping_add(zo)
                .clamp(-128, 127)
        })?;
        binary_output(ctx, shape, &s.sums)
    })
}
