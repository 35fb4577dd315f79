//! RSQRT on int8 and int16: LiteRT's `elementwise.cc`.
//!
//! int8: each `value = code - input_zp` (LiteRT fails on negative values) goes through the fixed-point
//! inverse square root `GetInvSqrtQuantizedMultiplierExp` (Newton-Raphson in gemmlowp Q3.28), scaled up by
//! 2^20, then requantized by `1 / (sqrt(input_scale) * output_scale)` (the square root and the product in
//! float, the division in double, as `SetRsqrtOutputMultiplier`); a zero value gives the maximum code.
//! int16: a 513-entry interpolated table of `1 / sqrt(x)` (`int16 max * output_scale` for `x <= 0`).

use super::lut::{lookup_int16, populate_int16};
use super::{codes, from_codes, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul, saturating_shift_left, QuantizedMultiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// `GetInvSqrtQuantizedMultiplierExp(input, reverse_shift = -1)`: `1 / sqrt(input)` as a Q0.31 multiplier
/// and a left shift.
pub(crate) fn inv_sqrt_quantized_multiplier_exp(mut input: i32) -> QuantizedMultiplier {
    if input <= 1 {
        return QuantizedMultiplier {
            multiplier: i32::MAX,
            shift: 0,
        };
    }
    let mut shift = 11i32;
    while input >= (1 << 29) {
        input /= 4;
        shift += 1;
    }
    let max_left_shift_bits = (input as u32).leading_zeros() - 1;
    let left_shift_bit_pairs = max_left_shift_bits / 2 - 1;
    shift -= left_shift_bit_pairs as i32;
    input <<= 2 * left_shift_bit_pairs;
    // Q3.28 fixed point: products of two Q3 values are Q6, rescaled back with a saturating shift by 3.
    let mul = saturating_rounding_doubling_high_mul;
    let rescale_6_to_3 = |x: i32| saturating_shift_left(x, 3);
    let fixed_input = input >> 1;
    let half_input = rounding_divide_by_pot(fixed_input, 1);
    let half_three = (1 << 28) + (1 << 27);
    let mut x = 1i32 << 28;
    for _ in 0..5 {
        // x * x * x is Q9: rescale by 6 bits to Q3.
        let x3 = saturating_shift_left(mul(mul(x, x), x), 6);
        x = rescale_6_to_3(mul(half_three, x).wrapping_sub(mul(half_input, x3)));
    }
    let half_sqrt_2 = 1_518_500_250;
    let mut multiplier = mul(x, half_sqrt_2);
    if shift < 0 {
        multiplier <<= -shift;
        shift = 0;
    }
    QuantizedMultiplier {
        multiplier,
        shift: -shift,
    }
}

/// The integer RSQRT kernel.
pub(crate) fn rsqrt(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let out_type = ctx.output_type(0)?;
    let (iq, oq) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
    let (in_zp, out_zp) = (iq.zero_point0(), oq.zero_point0());
    let x = codes(input)?;
    if let Some(v) = x.iter().find(|&&v| v < in_zp) {
        return Err(format!(
            "Rsqrt is only defined for positive values (code {v} is below the zero point {in_zp})"
        ));
    }
    let out: Vec<i32> = match (input.tensor_type(), out_type) {
        (fb::TensorType::INT8, fb::TensorType::INT8) => {
            let (is, os) = (iq.scale0(), oq.scale0());
            let m = quantize_multiplier(1.0 / f64::from(is.sqrt() * os));
            const SHIFT: i32 = 20;
            x.iter()
                .map(|&v| {
                    let value = v - in_zp;
                    if value == 0 {
                        return 127;
                    }
                    let inv = inv_sqrt_quantized_multiplier_exp(value);
                    let data = multiply_by_quantized_multiplier(
                        1,
                        QuantizedMultiplier {
                            multiplier: inv.multiplier,
                            shift: inv.shift + SHIFT,
                        },
                    );
                    let scaled = multiply_by_quantized_multiplier(
                        data,
                        QuantizedMultiplier {
                            multiplier: m.multiplier,
                            shift: m.shift - SHIFT,
                        },
                    );
                    scaled.wrapping_add(out_zp).clamp(-128, 127)
                })
                .collect()
        }
        (fb::TensorType::INT16, fb::TensorType::INT16) => {
            if in_zp != 0 || out_zp != 0 {
                return Err("int16 RSQRT needs zero points 0".into());
            }
            let out_scale = oq.scale0();
            let lut = populate_int16((iq.scale0(), in_zp), (out_scale, out_zp), |v| {
                if v <= 0.0 {
                    f32::from(i16::MAX) * out_scale
                } else {
                    1.0 / v.sqrt()
                }
            });
            x.iter()
                .map(|&v| i32::from(lookup_int16(v as i16, &lut)))
                .collect()
        }
        (a, b) => {
            return Err(format!(
                "no integer RSQRT for {} -> {}",
                crate::tflite::type_name(a),
                crate::tflite::type_name(b)
            ))
        }
    };
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_square_root_multiplier_is_close_to_the_real_one() {
        for v in [2, 3, 4, 100, 12345, 1 << 20, (1 << 30) + 7] {
            let m = inv_sqrt_quantized_multiplier_exp(v);
            let real = f64::from(m.multiplier) / 2f64.powi(31) * 2f64.powi(m.shift);
            let want = 1.0 / f64::from(v).sqrt();
            // LiteRT's five Newton-Raphson steps in Q3.28 land within about 1.2e-6 of the real value.
            assert!((real / want - 1.0).abs() < 1e-5, "{v}: {real} vs {want}");
        }
    }
}
