//! LEAKY_RELU on int8 / uint8 / int16: LiteRT's `reference_ops::QuantizeLeakyRelu` with the two
//! multipliers of `LeakyReluPrepare` (`input_scale * alpha / output_scale` and `input_scale / output_scale`,
//! each computed in float, then widened). Codes at or above the input zero point take the identity
//! multiplier, the others alpha's (a negative alpha multiplies by |alpha| and negates).

use super::arithmetic::broadcast;
use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, QuantizedMultiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The integer LEAKY_RELU kernel.
pub(crate) fn leaky_relu(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let alpha = match ctx.options() {
        fb::BuiltinOptionsT::LeakyReluOptions(o) => o.alpha,
        _ => return Err("missing LeakyReluOptions".into()),
    };
    let input = ctx.input(0)?;
    let (iq, oq) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let m_alpha = quantize_multiplier(f64::from(iq.scale0() * alpha / oq.scale0()));
    let m_identity = quantize_multiplier(f64::from(iq.scale0() / oq.scale0()));
    let negative_alpha = m_alpha.multiplier < 0;
    let safe_alpha = QuantizedMultiplier {
        multiplier: m_alpha.multiplier.wrapping_abs(),
        shift: m_alpha.shift,
    };
    let (in_zp, out_zp) = (iq.zero_point0(), oq.zero_point0());
    let v = codes(input)?
        .into_iter()
        .map(|x| {
            let value = x - in_zp;
            let scaled = if value >= 0 {
                multiply_by_quantized_multiplier(value, m_identity)
            } else {
                let s = multiply_by_quantized_multiplier(value, safe_alpha);
                if negative_alpha {
                    -s
                } else {
                    s
                }
            };
            (out_zp + scaled).clamp(qmin, qmax)
        })
        .collect();
    Ok(vec![from_codes(input.shape.clone(), out_type, v)?])
}

/// PRELU on int8 / int16 (`reference_ops::Prelu` / `BroadcastPrelu4DSlow`): `input_scale / output_scale` at
/// or above the input zero point, `input_scale * alpha_scale / output_scale` times the alpha code below it
/// (both multipliers computed in float by `PreluPrepare`, then widened); alpha broadcasts against the input.
pub(crate) fn prelu(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let (input, alpha) = (ctx.input(0)?, ctx.input(1)?);
    let (iq, aq, oq) = (
        ctx.input_quant(0)?,
        ctx.input_quant(1)?,
        ctx.output_quant(0)?,
    );
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let m1 = quantize_multiplier(f64::from(iq.scale0() / oq.scale0()));
    let m2 = quantize_multiplier(f64::from(iq.scale0() * aq.scale0() / oq.scale0()));
    let (in_zp, alpha_zp, out_zp) = (iq.zero_point0(), aq.zero_point0(), oq.zero_point0());
    let (x, a) = (codes(input)?, codes(alpha)?);
    let (shape, pairs) = broadcast(&input.shape, &alpha.shape)?;
    if shape != input.shape {
        return Err(format!(
            "alpha {:?} does not broadcast onto the input {:?}",
            alpha.shape, input.shape
        ));
    }
    let v = pairs
        .map(|(i, j)| {
            let value = x[i] - in_zp;
            let scaled = if value >= 0 {
                multiply_by_quantized_multiplier(value, m1)
            } else {
                multiply_by_quantized_multiplier(value * (a[j] - alpha_zp), m2)
            };
            (scaled + out_zp).clamp(qmin, qmax)
        })
        .collect();
    Ok(vec![from_codes(shape, out_type, v)?])
}
