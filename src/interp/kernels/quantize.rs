//! QUANTIZE (float to integer, integer requantization) and DEQUANTIZE (integer or float16 to float).

use super::{codes, floats, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::interp::tensor::{Tensor, TensorData};

pub(crate) fn quantize(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let out_zp = out_q.zero_point0();
    let out = match &input.data {
        TensorData::F32(v) => {
            // AffineQuantize: round(x / scale) in float, then the zero point.
            if out_q.scale.len() > 1 {
                return Err("per-channel QUANTIZE of activations is not supported".into());
            }
            let scale = out_q.scale0();
            v.iter()
                .map(|&x| {
                    ((x / scale).round() as i32)
                        .saturating_add(out_zp)
                        .clamp(qmin, qmax)
                })
                .collect()
        }
        _ => {
            // Requantize: (q - zp_in) * (scale_in / scale_out) + zp_out, in fixed point.
            let in_q = ctx.input_quant(0)?;
            let m = quantize_multiplier(f64::from(in_q.scale0()) / f64::from(out_q.scale0()));
            let in_zp = in_q.zero_point0();
            codes(input)?
                .into_iter()
                .map(|x| {
                    (multiply_by_quantized_multiplier(x - in_zp, m) + out_zp).clamp(qmin, qmax)
                })
                .collect()
        }
    };
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}

pub(crate) fn dequantize(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let out = match &input.data {
        TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        TensorData::F32(v) => floats(input).map(|_| v.clone())?,
        _ => {
            let q = ctx.input_quant(0)?;
            input.to_real(Some(&q))
        }
    };
    Ok(vec![Tensor::new(
        input.shape.clone(),
        TensorData::F32(out),
    )?])
}
