//! TFLite's fixed-point arithmetic: quantized multipliers, rounding shifts, and gemmlowp's Q-format helpers.
//!
//! Every function reproduces the integer semantics of LiteRT's reference kernels (the double-rounding
//! `MultiplyByQuantizedMultiplier` that LiteRT builds by default), so kernels built on them are bit-exact.

/// A real multiplier as TFLite stores it: `real ≈ multiplier * 2^(shift - 31)`, multiplier in [2^30, 2^31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    /// Q0.31 significand.
    pub multiplier: i32,
    /// Power-of-two exponent (positive: left shift).
    pub shift: i32,
}

/// TFLite's `QuantizeMultiplier`: splits `real` into a Q0.31 significand and an exponent.
pub fn quantize_multiplier(real: f64) -> QuantizedMultiplier {
    if real == 0.0 || !real.is_finite() {
        return QuantizedMultiplier {
            multiplier: 0,
            shift: 0,
        };
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    // Multipliers too small to represent flush to zero, as TFLite does.
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    // TFLite caps very large multipliers instead of overflowing the shift.
    if shift > 30 {
        shift = 30;
        q_fixed = (1i64 << 31) - 1;
    }
    QuantizedMultiplier {
        multiplier: q_fixed as i32,
        shift,
    }
}

/// `frexp`: `x = m * 2^e` with `0.5 <= |m| < 1`.
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let e = exp - 1022;
    let m_bits = (bits & !(0x7ffu64 << 52)) | (1022u64 << 52);
    (f64::from_bits(m_bits), e)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)`, saturating the one overflow case.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // C++ integer division truncates toward zero, like Rust's.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent`, rounding half away from zero.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return x;
    }
    let exponent = exponent.min(31);
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier` (int32 accumulator, double rounding).
pub fn multiply_by_quantized_multiplier(x: i32, m: QuantizedMultiplier) -> i32 {
    let left = m.shift.max(0);
    let right = (-m.shift).max(0);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left.min(30)), m.multiplier),
        right,
    )
}

/// TFLite's `MultiplyByQuantizedMultiplier` for int64 accumulators (16x8 kernels): a 16-bit multiplier, one
/// rounding.
pub fn multiply_by_quantized_multiplier_i64(x: i64, m: QuantizedMultiplier) -> i32 {
    let reduced = if m.multiplier < 0x7FFF_0000 {
        (m.multiplier + (1 << 15)) >> 16
    } else {
        0x7FFF
    };
    let total_shift = (15 - m.shift).clamp(1, 62);
    let round = 1i64 << (total_shift - 1);
    let result = x.wrapping_mul(i64::from(reduced)).wrapping_add(round) >> total_shift;
    result as i32
}

/// `MultiplyByQuantizedMultiplierGreaterThanOne` (double rounding): left shift, then high multiply.
pub fn multiply_by_quantized_multiplier_greater_than_one(
    x: i32,
    multiplier: i32,
    left_shift: i32,
) -> i32 {
    saturating_rounding_doubling_high_mul(
        x.wrapping_mul(1i32 << left_shift.clamp(0, 30)),
        multiplier,
    )
}

/// `MultiplyByQuantizedMultiplierSmallerThanOneExp` (double rounding): high multiply, then rounding right shift.
pub fn multiply_by_quantized_multiplier_smaller_than_one_exp(
    x: i32,
    multiplier: i32,
    left_shift: i32,
) -> i32 {
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, multiplier),
        -left_shift,
    )
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT` with a positive exponent: a saturating left shift.
pub fn saturating_shift_left(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return rounding_divide_by_pot(x, -exponent);
    }
    let threshold = (1i64 << (31 - exponent)) - 1;
    if i64::from(x) > threshold {
        i32::MAX
    } else if i64::from(x) < -threshold {
        i32::MIN
    } else {
        x << exponent
    }
}

/// Fixed-point product of raw values (the integer bits add up; the raw result is the doubling high product).
fn mul(a: i32, b: i32) -> i32 {
    saturating_rounding_doubling_high_mul(a, b)
}

/// `round(c * 2^31)` of a constant in (-1, 1): gemmlowp's checked fixed-point constants.
fn q31(c: f64) -> i32 {
    (c * 2f64.powi(31)).round() as i32
}

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl` on a Q0.31 raw value.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    let constant_term = q31((-1.0f64 / 8.0).exp());
    let one_third = q31(1.0 / 3.0);
    // Taylor expansion around -1/8: x = a + 1/8.
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(
        mul(x4_over_4.wrapping_add(x3), one_third).wrapping_add(x2),
        1,
    );
    constant_term.wrapping_add(mul(constant_term, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values` for a raw value with `integer_bits` integer bits; returns Q0.31.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let fractional_bits = 31 - integer_bits;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    // Rescale to Q0.31: multiply by 2^integer_bits (saturating).
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits),
    );
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // Barrel shifter: multiply by exp(-2^k) for each set bit of the integer part.
    for exponent in -2..=4 {
        if integer_bits > exponent {
            let shift = fractional_bits + exponent;
            if (0..31).contains(&shift) && remainder & (1 << shift) != 0 {
                result = mul(result, q31((-(2f64.powi(exponent))).exp()));
            }
        }
    }
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits).clamp(0, 30));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX;
    }
    result
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` on Q0.31 raws (Newton-Raphson in Q2.29).
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let c48_17 = (48.0f64 / 17.0 * 2f64.powi(29)).round() as i32;
    let cn32_17 = (-32.0f64 / 17.0 * 2f64.powi(29)).round() as i32;
    let one_q2 = 1i32 << 29;
    let mut x = c48_17.wrapping_add(mul(half_denominator, cn32_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus = one_q2.wrapping_sub(half_denominator_times_x);
        // Q2 * Q2 = Q4, rescaled to Q2.
        x = x.wrapping_add(saturating_shift_left(mul(x, one_minus), 2));
    }
    // ExactMulByPot<-1> keeps the raw (Q1), Rescale<0> shifts left by one.
    saturating_shift_left(x, 1)
}

/// gemmlowp's `RoundingHalfSum` for int32.
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// TFLite's `GetReciprocal`: `1 / x` for a Q(x_integer_digits) value; returns (Q0.31 raw, bits over unit).
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = x_integer_digits - headroom_plus_one;
    let shifted = ((x as u32)
        .checked_shl(headroom_plus_one as u32)
        .unwrap_or(0))
    .wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted),
        num_bits_over_unit,
    )
}

/// TFLite's `CalculateInputRadius`: the largest input difference that does not saturate the rescaled input.
pub fn calculate_input_radius(
    input_integer_bits: i32,
    input_left_shift: i32,
    total_signed_bits: i32,
) -> i32 {
    let max_input_rescaled = f64::from((1i32 << input_integer_bits) - 1)
        * 2f64.powi(total_signed_bits - input_integer_bits)
        / 2f64.powi(input_left_shift);
    max_input_rescaled.floor() as i32
}

/// The quantized activation range of a fused activation (`CalculateActivationRangeQuantized`).
pub fn activation_range(
    act: crate::tflite::fb::ActivationFunctionType,
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
) -> (i32, i32) {
    use crate::tflite::fb::ActivationFunctionType as A;
    let quantize = |f: f32| zero_point + (f / scale).round() as i32;
    match act {
        A::RELU => (qmin.max(quantize(0.0)), qmax),
        A::RELU6 => (qmin.max(quantize(0.0)), qmax.min(quantize(6.0))),
        A::RELU_N1_TO_1 => (qmin.max(quantize(-1.0)), qmax.min(quantize(1.0))),
        _ => (qmin, qmax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantize_multiplier_splits_into_q31_and_exponent() {
        let m = quantize_multiplier(0.5);
        assert_eq!((m.multiplier, m.shift), (1 << 30, 0));
        let m = quantize_multiplier(0.75);
        assert_eq!((m.multiplier, m.shift), (1610612736, 0));
        let m = quantize_multiplier(3.0);
        assert_eq!((m.multiplier, m.shift), (1610612736, 2));
    }

    #[test]
    fn exp_barrel_constants_match_gemmlowp() {
        let got: Vec<i32> = (-2..=4).map(|e| q31((-(2f64.powi(e))).exp())).collect();
        assert_eq!(
            got,
            vec![1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242]
        );
        assert_eq!(q31((-1.0f64 / 8.0).exp()), 1895147668);
    }

    #[test]
    fn rounding_divide_by_pot_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 2), 1);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
    }

    /// Relative error of the int64 overload's multiplier: the Q0.31 significand rounded to 16 bits, at most
    /// (2^15 + 1/2) / 2^30 of a significand >= 2^30.
    const INT64_MULTIPLIER_ERROR: f64 = 3.0519e-5;

    #[test]
    fn int64_multiplier_at_the_edges_of_litert_domain() {
        // |x| near 2^47 with a multiplier of 2^-17: reduced multiplier 2^14, total shift 31.
        let m = quantize_multiplier(2f64.powi(-17));
        assert_eq!((m.multiplier, m.shift), (1 << 30, -16));
        assert_eq!(
            multiply_by_quantized_multiplier_i64((1i64 << 47) - 1, m),
            1 << 30
        );
        assert_eq!(
            multiply_by_quantized_multiplier_i64(-(1i64 << 47), m),
            -(1 << 30)
        );
        // A multiplier > 1 (100 = 0.78125 * 2^7): reduced 25600, total shift 8; the result near i32::MAX.
        let m = quantize_multiplier(100.0);
        assert_eq!((m.multiplier, m.shift), (1_677_721_600, 7));
        assert_eq!(
            multiply_by_quantized_multiplier_i64(20_000_000, m),
            2_000_000_000
        );
        assert_eq!(
            multiply_by_quantized_multiplier_i64(-21_474_836, m),
            -2_147_483_600
        );
        // Rounding half up (toward +inf) on ties, as `(x * m + 2^(s-1)) >> s` does: 3 * 0.5 and -3 * 0.5.
        let half = quantize_multiplier(0.5);
        assert_eq!(multiply_by_quantized_multiplier_i64(3, half), 2);
        assert_eq!(multiply_by_quantized_multiplier_i64(-3, half), -1);
        // A significand >= 0x7FFF0000 saturates the reduced multiplier at 0x7FFF.
        let m = QuantizedMultiplier {
            multiplier: i32::MAX,
            shift: 0,
        };
        assert_eq!(
            multiply_by_quantized_multiplier_i64(1 << 20, m),
            0x7FFF << 5
        );
    }

    proptest! {
        #[test]
        fn multiply_by_quantized_multiplier_is_within_one_of_the_real_product(
            x in -1_000_000i32..1_000_000, real in 1e-6f64..0.99
        ) {
            let m = quantize_multiplier(real);
            let got = multiply_by_quantized_multiplier(x, m);
            let want = f64::from(x) * real;
            prop_assert!((f64::from(got) - want).abs() <= 1.0, "{got} vs {want}");
        }

        #[test]
        fn exp_on_negative_values_approximates_exp(x in -8.0f64..0.0) {
            let raw = (x * 2f64.powi(26)).round() as i32; // Q5.26
            let got = f64::from(exp_on_negative_values(raw, 5)) / 2f64.powi(31);
            prop_assert!((got - x.exp()).abs() < 1e-6, "{got} vs {}", x.exp());
        }

        #[test]
        fn one_over_one_plus_x_approximates_the_reciprocal(x in 0.0f64..0.999) {
            let raw = (x * 2f64.powi(31)).round() as i32;
            let got = f64::from(one_over_one_plus_x_for_x_in_0_1(raw)) / 2f64.powi(31);
            prop_assert!((got - 1.0 / (1.0 + x)).abs() < 1e-6);
        }

        /// LiteRT's whole domain for the int64 overload (`common.cc`): |x| < 2^47, shift in [-31, 8) (real
        /// multipliers from 2^-20 up to 127, so also > 1), and the scaled result fits int32.
        #[test]
        fn int64_multiplier_matches_the_real_product(
            fraction in -1.0f64..1.0, log2_real in -20.0f64..6.99
        ) {
            let real = log2_real.exp2();
            let m = quantize_multiplier(real);
            prop_assert!((-31..8).contains(&m.shift), "{m:?}");
            let limit = ((1i64 << 47) - 1) as f64;
            let limit = limit.min(f64::from(i32::MAX - 1) / (real * (1.0 + INT64_MULTIPLIER_ERROR)));
            let x = (fraction * limit) as i64;
            let got = multiply_by_quantized_multiplier_i64(x, m);
            let want = x as f64 * real;
            // One rounding (half a unit) plus the 16-bit multiplier's relative error.
            prop_assert!(
                (f64::from(got) - want).abs() <= 0.5 + want.abs() * INT64_MULTIPLIER_ERROR,
                "x {x} real {real}: {got} vs {want}"
            );
        }
    }
}
