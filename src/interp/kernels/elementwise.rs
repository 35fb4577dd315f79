//! EXP, LOG, SQRT and ABS on int8 / int16, as LiteRT 2.3's `exp.cc` and `elementwise.cc` compute them:
//! EXP and LOG through the lookup tables of `expf` / `logf` ([`through_table`]; LOG maps `x <= 0` to the
//! output's lowest value), SQRT in float per element (dequantize, `sqrtf`, divide by the output scale and
//! truncate), ABS on `|code - input_zp|` requantized by `input_scale / output_scale` (computed in float)
//! when the scales differ.

use super::lut::through_table;
use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::interp::tensor::Tensor;

/// The integer EXP kernel.
pub(crate) fn exp(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    through_table(ctx, f32::exp)
}

/// The integer LOG kernel (`LogLUTPrepare`).
pub(crate) fn log(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let oq = ctx.output_quant(0)?;
    let (qmin, _) = type_range(ctx.output_type(0)?)?;
    let output_min = (qmin - oq.zero_point0()) as f32 * oq.scale0();
    through_table(ctx, |x| if x <= 0.0 { output_min } else { x.ln() })
}

/// The integer SQRT kernel (`SqrtEvalQuantized`).
pub(crate) fn sqrt(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let (iq, oq) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (in_scale, in_zp) = (iq.scale0(), iq.zero_point0());
    let (out_scale, out_zp) = (oq.scale0(), oq.zero_point0());
    let out = codes(input)?
        .into_iter()
        .map(|c| {
            let x = in_scale * (c - in_zp) as f32;
            if x < 0.0 {
                return Err(format!(
                    "SQRT of a negative value ({x}): LiteRT fails here too"
                ));
            }
            Ok(((x.sqrt() / out_scale) as i32 + out_zp).clamp(qmin, qmax))
        })
        .collect::<Result<_, _>>()?;
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}

/// The integer ABS kernel (`AbsEvalQuantized`).
pub(crate) fn abs(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let (iq, oq) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (in_zp, out_zp) = (iq.zero_point0(), oq.zero_point0());
    let rescale = (iq.scale0() != oq.scale0())
        .then(|| quantize_multiplier(f64::from(iq.scale0() / oq.scale0())));
    let out = codes(input)?
        .into_iter()
        .map(|c| {
            let value = (c - in_zp).abs();
            let scaled = rescale.map_or(value, |m| multiply_by_quantized_multiplier(value, m));
            (scaled + out_zp).clamp(qmin, qmax)
        })
        .collect();
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}
