//! QUANTIZE (float to integer, integer requantization) and DEQUANTIZE (integer or float16 to float).

use super::{codes, floats, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// `x.round() as i32` (half away from zero, saturating, NaN to 0) without a call into libm or a branch, so
/// a loop over it vectorizes: the truncation `x as i32` is exact below 2^31 in magnitude and so is the
/// fraction `x - trunc(x)`; above, the truncation saturates and the step keeps it there.
#[inline(always)]
pub(crate) fn round_to_i32(x: f32) -> i32 {
    let t = x as i32;
    let fraction = x - t as f32;
    let step = if fraction.abs() >= 0.5 {
        if x < 0.0 {
            -1
        } else {
            1
        }
    } else {
        0
    };
    t.saturating_add(step)
}

/// `x.round()` converted to i32 with saturation (NaN to 0), the double-precision requantization of
/// FULLY_CONNECTED, without a call into libm: the truncation to i64 is exact (an `|x| >= 2^53` is already
/// an integer) and so is the fraction; beyond i64 the truncation saturates and the step keeps it there.
#[inline(always)]
pub(crate) fn round_f64_to_i32(x: f64) -> i32 {
    let t = x as i64;
    let fraction = x - t as f64;
    let step = if fraction.abs() >= 0.5 {
        if x < 0.0 {
            -1
        } else {
            1
        }
    } else {
        0
    };
    t.saturating_add(step)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// `clamp(round(x / scale) + zero_point, -128, 127)` for every `x` of `input` (TFLite's AffineQuantize;
/// NaN to the zero point, as [`round_to_i32`]), written without integer saturation so the loop vectorizes:
/// the quotient is first clamped to one step beyond the codes the zero point leaves, which changes no code.
#[inline(always)]
fn quantize_int8_body(input: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    let lo = (i32::from(i8::MIN) - zero_point - 1) as f32;
    let hi = (i32::from(i8::MAX) - zero_point + 1) as f32;
    for (o, &x) in out.iter_mut().zip(input) {
        let y = x / scale;
        let y = if y.is_nan() { 0.0 } else { y.max(lo).min(hi) };
        let t = y as i32;
        let fraction = y - t as f32;
        let step = i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5);
        *o = (t + step + zero_point).clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
    }
}

crate::calibrate::vector::wide_vectors! {
    /// [`quantize_int8_body`], with AVX2 where the CPU has it (the same operations per element).
    fn quantize_int8(input: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) => quantize_int8_body;
}

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
            let code = |x: f32| {
                round_to_i32(x / scale)
                    .saturating_add(out_zp)
                    .clamp(qmin, qmax)
            };
            if out_type == fb::TensorType::INT8 {
                let mut out = vec![0i8; v.len()];
                quantize_int8(v, scale, out_zp, &mut out);
                return Ok(vec![Tensor::new(input.shape.clone(), TensorData::I8(out))?]);
            }
            v.iter().map(|&x| code(x)).collect()
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

#[cfg(test)]
mod tests {
    use super::{quantize_int8, quantize_int8_body, round_f64_to_i32, round_to_i32};

    #[test]
    fn rounding_matches_f32_round_on_halves_edges_and_specials() {
        let mut xs = vec![
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            8388607.5,
            8388608.0,
            1e10,
            -1e10,
            2147483520.0,
            -2147483648.0,
            2147483648.0,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            127.5,
            -128.5,
            f32::MAX,
            f32::MIN,
        ];
        xs.extend((0..20000).map(|i| (i as f32 - 10000.0) * 0.0137));
        xs.extend((0..2000).map(|i| (i as f32 - 1000.0) * 0.5));
        for x in xs {
            assert_eq!(round_to_i32(x), x.round() as i32, "{x}");
        }
    }

    #[test]
    fn double_rounding_matches_f64_round_saturated_on_halves_edges_and_specials() {
        let mut xs = vec![
            0.5f64,
            -0.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            9007199254740993.0,
            2147483647.4,
            2147483647.5,
            -2147483648.5,
            -2147483648.4,
            9.3e18,
            -9.3e18,
            1e300,
            -1e300,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        xs.extend((0..20000).map(|i| (f64::from(i) - 10000.0) * 0.0137));
        xs.extend((0..2000).map(|i| (f64::from(i) - 1000.0) * 0.5));
        for x in xs {
            let want = x.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
            assert_eq!(round_f64_to_i32(x), want, "{x}");
        }
    }

    #[test]
    fn int8_quantization_is_the_rounded_quotient_plus_zero_point_clamped() {
        let mut xs: Vec<f32> = vec![
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            1e30,
            -1e30,
        ];
        xs.extend((0..4000).map(|i| (i as f32 - 2000.0) * 0.0371));
        xs.extend((0..600).map(|i| (i as f32 - 300.0) * 0.25));
        for (scale, zp) in [
            (0.1f32, 0),
            (0.05, -128),
            (0.5, 127),
            (0.0371, 3),
            (1e-3, -7),
        ] {
            let want: Vec<i8> = xs
                .iter()
                .map(|&x| round_to_i32(x / scale).saturating_add(zp).clamp(-128, 127) as i8)
                .collect();
            let (mut wide, mut portable) = (vec![0i8; xs.len()], vec![0i8; xs.len()]);
            quantize_int8(&xs, scale, zp, &mut wide);
            quantize_int8_body(&xs, scale, zp, &mut portable);
            assert_eq!(wide, want, "scale {scale}, zero point {zp}");
            assert_eq!(portable, want, "scale {scale}, zero point {zp}");
        }
    }
}
