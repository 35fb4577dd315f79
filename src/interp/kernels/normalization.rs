//! L2_NORMALIZATION and LOG_SOFTMAX on int8: LiteRT's `reference_integer_ops::L2Normalization` (the fixed
//! point inverse square root of each row's sum of squares, output at 1/128) and
//! `reference_integer_ops::LogSoftmax` (gemmlowp exp and log in Q5.26 / Q12.19, output at 16/256 with zero
//! point 127), with the parameters of their Prepare (`PreprocessLogSoftmaxScalingExp`).

use super::rsqrt::inv_sqrt_quantized_multiplier_exp;
use super::{codes, from_codes, OpCtx};
use crate::interp::fixed_point::{
    calculate_input_radius, exp_on_negative_values, multiply_by_quantized_multiplier,
    one_over_one_plus_x_for_x_in_0_1, quantize_multiplier, rounding_divide_by_pot,
    rounding_half_sum, saturating_rounding_doubling_high_mul as mul, saturating_shift_left,
    QuantizedMultiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The depth (last dim) of a row-wise op's input, which must have at least one dim.
fn depth_of(input: &Tensor, op: &str) -> Result<usize, String> {
    input
        .shape
        .last()
        .copied()
        .filter(|&d| d > 0)
        .ok_or_else(|| format!("{op} needs a non-empty last dimension"))
}

fn int8_only(ctx: &OpCtx<'_>, op: &str) -> Result<(), String> {
    match ctx.output_type(0)? {
        fb::TensorType::INT8 => Ok(()),
        other => Err(format!(
            "LiteRT's integer {op} is int8 only, the output is {}",
            crate::tflite::type_name(other)
        )),
    }
}

/// The integer L2_NORMALIZATION kernel.
pub(crate) fn l2_normalization(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    int8_only(ctx, "L2_NORMALIZATION")?;
    let input = ctx.input(0)?;
    let depth = depth_of(input, "L2_NORMALIZATION")?;
    let zp = ctx.input_quant(0)?.zero_point0();
    // The output is at 1/128: 2^7 folded into the inverse square root's shift.
    const OUTPUT_SCALE_BITS: i32 = 7;
    let x = codes(input)?;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(depth) {
        let acc = row
            .iter()
            .fold(0i32, |acc, &v| acc.wrapping_add((v - zp) * (v - zp)));
        let inv = inv_sqrt_quantized_multiplier_exp(acc);
        let m = QuantizedMultiplier {
            multiplier: inv.multiplier,
            shift: inv.shift + OUTPUT_SCALE_BITS,
        };
        out.extend(
            row.iter()
                .map(|&v| multiply_by_quantized_multiplier(v - zp, m).clamp(-128, 127)),
        );
    }
    Ok(vec![from_codes(
        input.shape.clone(),
        fb::TensorType::INT8,
        out,
    )?])
}

/// `log(x)` for a Q12.19 raw `x >= 1`, as a Q5.26 raw (`log_x_for_x_greater_than_or_equal_to_1_impl` with
/// `OutputIntegerBits = 5`, `InputIntegerBits = 12`; the accumulator has one more integer bit).
fn log_q12_to_q5(input_raw: i32) -> i32 {
    const INPUT_INTEGER_BITS: i32 = 12;
    const ACCUM_INTEGER_BITS: i32 = 6;
    let log_2: i32 = 1_488_522_236;
    let sqrt_sqrt_half: i32 = 1_805_811_301;
    let sqrt_half = 1_518_500_250;
    let one_quarter = 536_870_912;
    let alpha_n = 117_049_297;
    let alpha_d = 127_690_142;
    let alpha_i: i32 = 1_057_819_769;
    let alpha_f = 638_450_708;
    let saturating_add = |a: i32, b: i32| {
        (i64::from(a) + i64::from(b)).clamp(i32::MIN.into(), i32::MAX.into()) as i32
    };
    let saturating_sub = |a: i32, b: i32| {
        (i64::from(a) - i64::from(b)).clamp(i32::MIN.into(), i32::MAX.into()) as i32
    };
    // Rescale<6> of a Q0 value.
    let shifted_quarter = rounding_divide_by_pot(one_quarter, ACCUM_INTEGER_BITS);
    let z_a = input_raw;
    let z_a_headroom_plus_1 = (z_a as u32).leading_zeros() as i32;
    let r_a_tmp = saturating_shift_left(z_a, z_a_headroom_plus_1 - 1);
    let r_a_raw = saturating_shift_left(mul(r_a_tmp, sqrt_half), 1);
    let z_a_pow_2_adj = saturating_add(
        saturating_shift_left(
            INPUT_INTEGER_BITS - z_a_headroom_plus_1,
            31 - ACCUM_INTEGER_BITS,
        ),
        shifted_quarter,
    );
    let z_b = mul(z_a, sqrt_half);
    let z_b_headroom = (z_b as u32).leading_zeros() as i32 - 1;
    let r_b_raw = saturating_shift_left(z_a, z_b_headroom);
    let z_b_pow_2_adj = saturating_sub(
        saturating_shift_left(INPUT_INTEGER_BITS - z_b_headroom, 31 - ACCUM_INTEGER_BITS),
        shifted_quarter,
    );
    let r = r_a_raw.min(r_b_raw);
    let z_pow_2_adj = z_a_pow_2_adj.max(z_b_pow_2_adj);
    let p = rounding_half_sum(r, sqrt_sqrt_half);
    let mut q = r.wrapping_sub(sqrt_sqrt_half);
    q = q.wrapping_add(q);
    let common_sq = mul(q, q);
    let num = mul(q, r).wrapping_add(mul(mul(q, common_sq), alpha_n));
    let denom_minus_one = mul(
        p,
        alpha_i
            .wrapping_add(q)
            .wrapping_add(mul(alpha_d, common_sq)),
    )
    .wrapping_add(mul(alpha_f, q));
    let recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one);
    let num_scaled = rounding_divide_by_pot(num, ACCUM_INTEGER_BITS);
    // Q6 sum rescaled to Q5.
    saturating_shift_left(
        mul(z_pow_2_adj, log_2).wrapping_add(mul(num_scaled, recip_denom)),
        1,
    )
}

/// The integer LOG_SOFTMAX kernel (beta 1).
pub(crate) fn log_softmax(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    int8_only(ctx, "LOG_SOFTMAX")?;
    let input = ctx.input(0)?;
    let depth = depth_of(input, "LOG_SOFTMAX")?;
    const INPUT_INTEGER_BITS: i32 = 5;
    const ACCUMULATION_INTEGER_BITS: i32 = 12;
    const OUTPUT_INTEGER_BITS: i32 = 4;
    const OUTPUT_ZERO_POINT: i32 = 127;
    // PreprocessLogSoftmaxScalingExp (beta 1): the input multiplier in Q5.26, capped, and its reverse.
    let in_scale = f64::from(ctx.input_quant(0)?.scale0());
    let real = (in_scale * 2f64.powi(31 - INPUT_INTEGER_BITS)).min((1u64 << 31) as f64 - 1.0);
    let input_m = quantize_multiplier(real);
    let left_shift = input_m.shift;
    // `1 << (31 - left_shift)` is an int in LiteRT.
    let reverse_real =
        f64::from(1i32.wrapping_shl((31 - left_shift) as u32)) / f64::from(input_m.multiplier);
    let reverse_m = quantize_multiplier(reverse_real);
    let diff_min = -calculate_input_radius(INPUT_INTEGER_BITS, left_shift, 31);
    let x = codes(input)?;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(depth) {
        let max = row.iter().copied().max().unwrap_or(-128);
        let mut sum_of_exps_q12 = 0i32;
        for &v in row {
            let diff = v - max;
            if diff >= diff_min {
                let diff_q5 = multiply_by_quantized_multiplier(diff, input_m);
                sum_of_exps_q12 = sum_of_exps_q12.wrapping_add(rounding_divide_by_pot(
                    exp_on_negative_values(diff_q5, INPUT_INTEGER_BITS),
                    ACCUMULATION_INTEGER_BITS,
                ));
            }
        }
        let log_sum_q5 = log_q12_to_q5(sum_of_exps_q12);
        let shifted_log_sum = log_sum_q5.wrapping_add(i32::MIN);
        let adjusted_diff_min =
            (diff_min - 1).max(multiply_by_quantized_multiplier(shifted_log_sum, reverse_m));
        for &v in row {
            let diff = v - max;
            out.push(if diff > adjusted_diff_min {
                let diff_q5 = multiply_by_quantized_multiplier(diff, input_m);
                (rounding_divide_by_pot(
                    diff_q5.wrapping_sub(log_sum_q5),
                    31 - INPUT_INTEGER_BITS - OUTPUT_INTEGER_BITS,
                ) + OUTPUT_ZERO_POINT)
                    .clamp(-128, 127)
            } else {
                -128
            });
        }
    }
    Ok(vec![from_codes(
        input.shape.clone(),
        fb::TensorType::INT8,
        out,
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_of_one_is_zero_and_log_of_e_is_one() {
        // Q12.19: 1.0 = 2^19.
        let one = 1 << 19;
        assert!(log_q12_to_q5(one).abs() < 1 << 6);
        let e = (std::f64::consts::E * f64::from(one)).round() as i32;
        let got = f64::from(log_q12_to_q5(e)) / 2f64.powi(26);
        assert!((got - 1.0).abs() < 1e-5, "{got}");
    }
}
