//! Elementwise activations: LOGISTIC and TANH (int8 lookup tables of [`through_table`], int16
//! interpolated sigmoid table), HARD_SWISH (int8 fixed point), RELU / RELU6 / RELU_N1_TO_1 (requantizing
//! clamp).

use super::lut::through_table;
use super::sigmoid_table::SIGMOID_TABLE_U16;
use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// TFLite's `CheckedLog2`: the rounded log2 and whether the value is (nearly) a power of two.
fn checked_log2(x: f32) -> (i32, bool) {
    let log2 = x.ln() * (1.0f32 / 2.0f32.ln());
    let rounded = log2.round();
    (rounded as i32, (log2 - rounded).abs() < 1e-3)
}

/// int16 LOGISTIC/TANH input rescaling (`SigmoidPrepare` / `TanhPrepare`): returns (multiplier, left shift);
/// multiplier 0 marks a power-of-two input scale.
fn int16_input_rescale(input_scale: f32, tanh: bool) -> (i32, i32) {
    let (log2, mut pot) = checked_log2(input_scale);
    let left_shift = (15 - 3) + log2;
    pot &= left_shift == 0 || (tanh && left_shift == 1);
    if pot {
        return (0, left_shift);
    }
    // Rescale the input to 1/(3*4096) as the table lookup needs.
    let mut multiplier = f64::from(input_scale) * 4096.0 * 3.0;
    let mut shift = 0;
    while multiplier <= 32767.0 / 2.0 && shift <= 30 {
        shift += 1;
        multiplier *= 2.0;
    }
    (multiplier as i32, shift)
}

/// The shared int16 sigmoid-table interpolation; `tanh` selects the tanh variant (8 fractional bits of
/// interpolation, symmetric result).
fn int16_sigmoid_table(x: i32, multiplier: i32, left_shift: i32, tanh: bool) -> i32 {
    let (multiplier, left_shift) = if multiplier == 0 {
        (3 << left_shift.clamp(0, 28), 0)
    } else {
        (multiplier, left_shift)
    };
    let round = if left_shift > 0 {
        1 << (left_shift - 1)
    } else {
        0
    };
    let input = (x.wrapping_mul(multiplier).wrapping_add(round)) >> left_shift.clamp(0, 31);
    let abs = input.unsigned_abs();
    let (bits, mask) = if tanh { (8, 0xFF) } else { (9, 0x1FF) };
    let uh = abs >> bits;
    let interpolated = if uh >= 255 {
        if tanh {
            0xFFFFu32 << 8
        } else {
            0x7FFFu32 << 10
        }
    } else {
        let ua = SIGMOID_TABLE_U16[uh as usize];
        let ub = SIGMOID_TABLE_U16[uh as usize + 1];
        let ut = abs & mask;
        (ua << bits).wrapping_add(ut.wrapping_mul(ub.wrapping_sub(ua)))
    };
    if tanh {
        let r = interpolated as i32;
        let r = if input >= 0 {
            r - (1 << 23) + (1 << 7)
        } else {
            -r + (1 << 23) + (1 << 7) - 1
        };
        r >> 8
    } else {
        let r = if input >= 0 {
            interpolated.wrapping_add(1 << 9)
        } else {
            (1u32 << 25)
                .wrapping_sub(interpolated)
                .wrapping_add((1 << 9) - 1)
        };
        (r >> 10) as i32
    }
}

fn sigmoid_or_tanh(ctx: &OpCtx<'_>, tanh: bool) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    if input.tensor_type() != fb::TensorType::INT16 {
        let f: fn(f32) -> f32 = if tanh {
            f32::tanh
        } else {
            |v| 1.0 / (1.0 + (-v).exp())
        };
        return through_table(ctx, f);
    }
    let in_q = ctx.input_quant(0)?;
    if in_q.zero_point0() != 0 {
        return Err("int16 input must have zero point 0".into());
    }
    let (multiplier, shift) = int16_input_rescale(in_q.scale0(), tanh);
    let out = codes(input)?
        .into_iter()
        .map(|x| int16_sigmoid_table(x, multiplier, shift, tanh))
        .map(|v| i32::from(v as i16))
        .collect();
    Ok(vec![from_codes(
        input.shape.clone(),
        fb::TensorType::INT16,
        out,
    )?])
}

pub(crate) fn logistic(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    sigmoid_or_tanh(ctx, false)
}

pub(crate) fn tanh(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    sigmoid_or_tanh(ctx, true)
}

/// Requantizing clamp to `[lo, hi]` in real units (`QuantizedReluX`).
pub(crate) fn relu(ctx: &OpCtx<'_>, lo: f32, hi: f32) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let in_q = ctx.input_quant(0)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (out_scale, out_zp) = (out_q.scale0(), out_q.zero_point0());
    let act_min = qmin.max(out_zp + (lo / out_scale).round() as i32);
    let act_max = if hi.is_finite() {
        qmax.min(out_zp + (hi / out_scale).round() as i32)
    } else {
        qmax
    };
    let m = quantize_multiplier(f64::from(in_q.scale0()) / f64::from(out_scale));
    let in_zp = in_q.zero_point0();
    let out = codes(input)?
        .into_iter()
        .map(|v| (out_zp + multiply_by_quantized_multiplier(v - in_zp, m)).clamp(act_min, act_max))
        .collect();
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}

/// int16 `SaturatingRoundingDoublingHighMul`.
fn srdhm16(a: i32, b: i32) -> i32 {
    if a == b && a == -32768 {
        return 32767;
    }
    let ab = a * b;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    (ab + nudge) / (1 << 15)
}

/// int16 `SaturatingDoublingHighMul` (truncating).
fn sdhm16(a: i32, b: i32) -> i32 {
    if a == b && a == -32768 {
        return 32767;
    }
    (a * b) / (1 << 15)
}

fn saturate16(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// `DownScaleInt32ToInt16Multiplier`.
fn to_int16_multiplier(m: i32) -> i32 {
    if m >= i32::MAX - (1 << 15) {
        32767
    } else {
        (m + (1 << 15)) >> 16
    }
}

/// int8/uint8 HARD_SWISH in 16-bit fixed point (`reference_ops::HardSwish` with `HardSwishPrepare`).
pub(crate) fn hard_swish(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let in_q = ctx.input_quant(0)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    if out_type == fb::TensorType::INT16 {
        return Err("HARD_SWISH has no int16 kernel".into());
    }
    let hires_input_scale = (1.0f32 / 128.0) * in_q.scale0();
    let reluish_scale = 3.0f32 / 32768.0;
    let output_m = quantize_multiplier(f64::from(hires_input_scale / out_q.scale0()));
    let reluish_m = quantize_multiplier(f64::from(hires_input_scale / reluish_scale));
    if output_m.shift > 0 {
        return Err("HARD_SWISH output multiplier exponent must be <= 0".into());
    }
    let output_m16 = to_int16_multiplier(output_m.multiplier);
    let reluish_m16 = to_int16_multiplier(reluish_m.multiplier);
    let (in_zp, out_zp) = (in_q.zero_point0(), out_q.zero_point0());
    let out = codes(input)?
        .into_iter()
        .map(|v| {
            let input_value = saturate16(v - in_zp);
            let hires = saturate16(input_value * (1 << 7));
            let preshift_output = srdhm16(hires, output_m16);
            let mut reluish = hires;
            if reluish_m.shift > 0 {
                reluish = saturate16(reluish * (1 << (reluish_m.shift - 1).min(15)));
            }
            reluish = srdhm16(reluish, reluish_m16);
            if reluish_m.shift > 0 {
                reluish = saturate16(reluish * 2);
            }
            if reluish_m.shift < 0 {
                reluish = rounding_divide_by_pot(reluish, -reluish_m.shift);
            }
            reluish = ((reluish + (1 << 15)) >> 1) as i16 as i32;
            let preshift = sdhm16(reluish, preshift_output);
            let value = rounding_divide_by_pot(preshift, -output_m.shift) + out_zp;
            value.clamp(qmin, qmax)
        })
        .collect();
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}
