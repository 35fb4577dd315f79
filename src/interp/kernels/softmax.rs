//! SOFTMAX on int8 (gemmlowp fixed-point exp, `reference_ops::Softmax`) and int16 (exp and 1/(1+x) lookup
//! tables, `reference_ops::SoftmaxInt16`).

use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    calculate_input_radius, exp_on_negative_values, get_reciprocal,
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_greater_than_one,
    quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

pub(crate) fn softmax(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let beta = match ctx.options() {
        fb::BuiltinOptionsT::SoftmaxOptions(o) => o.beta,
        _ => 1.0,
    };
    let depth = *input
        .shape
        .last()
        .ok_or("SOFTMAX needs at least one dimension")?;
    let x = codes(input)?;
    let out_type = ctx.output_type(0)?;
    let in_scale = ctx.input_quant(0)?.scale0();
    let out = if input.tensor_type() == fb::TensorType::INT16 {
        softmax_int16(&x, depth, in_scale, beta)
    } else {
        let exps = ctx.prepared(&[], || Ok(ExpTable::new(in_scale, beta)))?;
        softmax_8bit(&x, depth, &exps, out_type)?
    };
    Ok(vec![from_codes(input.shape.clone(), out_type, out)?])
}

const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// The 8-bit kernel's exp of every difference `code - row max` an 8-bit input can have (0 down to -255),
/// computed once: `None` below the kernel's `diff_min` (those elements count as 0).
struct ExpTable(Vec<Option<i32>>);

impl ExpTable {
    fn new(in_scale: f32, beta: f32) -> ExpTable {
        // PreprocessSoftmaxScaling: the input-beta multiplier, capped, in Q5.26.
        let real =
            (f64::from(beta) * f64::from(in_scale) * 2f64.powi(31 - SCALED_DIFF_INTEGER_BITS))
                .min((1u64 << 31) as f64 - 1.0);
        let m = quantize_multiplier(real);
        let diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, m.shift, 31);
        ExpTable(
            (0..=255)
                .map(|d: i32| {
                    (-d >= diff_min).then(|| {
                        let rescaled = multiply_by_quantized_multiplier_greater_than_one(
                            -d,
                            m.multiplier,
                            m.shift,
                        );
                        exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
                    })
                })
                .collect(),
        )
    }

    /// The exp of `diff` (`code - row max`, in [-255, 0]).
    fn get(&self, diff: i32) -> Result<Option<i32>, String> {
        usize::try_from(-diff)
            .ok()
            .and_then(|i| self.0.get(i).copied())
            .ok_or_else(|| format!("{diff} is no difference of 8-bit codes"))
    }
}

fn softmax_8bit(
    x: &[i32],
    depth: usize,
    table: &ExpTable,
    out_type: fb::TensorType,
) -> Result<Vec<i32>, String> {
    let (out_min, out_max) = type_range(out_type)?;
    let out_bits = if out_type == fb::TensorType::INT16 {
        16
    } else {
        8
    };
    let mut out = Vec::with_capacity(x.len());
    // Each kept element's exp, looked up once for the sum and the output (the reference computes it twice).
    let mut exps: Vec<Option<i32>> = Vec::with_capacity(depth);
    for row in x.chunks(depth.max(1)) {
        let max = row.iter().copied().max().unwrap_or(0);
        exps.clear();
        for &v in row {
            exps.push(table.get(v - max)?);
        }
        let sum = exps.iter().flatten().fold(0i32, |sum, &e| {
            sum.wrapping_add(rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS))
        });
        let (shifted_scale, bits_over_unit) = get_reciprocal(sum, ACCUMULATION_INTEGER_BITS);
        let exponent = bits_over_unit + 31 - out_bits;
        out.extend(exps.iter().map(|e| match e {
            Some(e) => {
                let unsat = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(shifted_scale, *e),
                    exponent,
                );
                (unsat + out_min).clamp(out_min, out_max)
            }
            None => out_min,
        }));
    }
    Ok(out)
}

/// `LUTPopulate<int16_t>` with a double transform (the softmax tables): 512 interpolation steps plus the end
/// point, each corrected by half the midpoint error.
fn lut_int16(
    input_scale: f64,
    input_zp: i32,
    output_scale: f64,
    output_zp: i32,
    f: fn(f64) -> f64,
) -> Vec<i32> {
    let input_min = input_scale * f64::from(i32::from(i16::MIN) - input_zp);
    let input_max = input_scale * f64::from(i32::from(i16::MAX) - input_zp);
    let output_min = output_scale * f64::from(i32::from(i16::MIN) - output_zp);
    let output_max = output_scale * f64::from(i32::from(i16::MAX) - output_zp);
    let steps = 512;
    let step = (input_max - input_min) / f64::from(steps);
    let half_step = step / 2.0;
    let scaling_inv = 65536.0 / (output_max - output_min);
    let (table_min, table_max) = (f64::from(i16::MIN), f64::from(i16::MAX));
    let mut lut = Vec::with_capacity(513);
    for i in 0..steps {
        let at = input_min + f64::from(i) * step;
        let val = f(at);
        let val_mid = f(at + half_step);
        let val_next = f(input_min + f64::from(i + 1) * step);
        let sample = (val * scaling_inv).round();
        let midpoint_interp =
            ((val_next * scaling_inv + (val * scaling_inv).round()) / 2.0).round();
        let midpoint = (val_mid * scaling_inv).round();
        let bias = ((midpoint_interp - midpoint) / 2.0).round();
        lut.push((sample - bias).clamp(table_min, table_max) as i32);
    }
    lut.push(
        (f(input_max) * scaling_inv)
            .round()
            .clamp(table_min, table_max) as i32,
    );
    lut
}

/// `LUTLookup` for int16: 9 bits index, 7 bits interpolate.
fn lut_lookup(value: i32, lut: &[i32]) -> i32 {
    let index = (256 + (value >> 7)).clamp(0, 511) as usize;
    let offset = value & 0x7f;
    let base = lut[index];
    let slope = lut[index + 1] - base;
    i32::from((base + ((slope * offset + 64) >> 7)) as i16)
}

fn softmax_int16(x: &[i32], depth: usize, in_scale: f32, beta: f32) -> Vec<i32> {
    let range = f64::from(i32::from(i16::MAX) - i32::from(i16::MIN));
    let exp_lut = lut_int16(10.0 / range, i32::from(i16::MAX), 2.0 / range, 0, f64::exp);
    let one_over_lut = lut_int16(1.0 / range, i32::from(i16::MIN), 2.0 / range, 0, |v| {
        1.0 / (1.0 + v)
    });
    let m = quantize_multiplier(f64::from(in_scale) * f64::from(beta) / (10.0 / 65535.0));
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(depth.max(1)) {
        let max = row.iter().copied().max().unwrap_or(i32::from(i16::MIN));
        let exps: Vec<i32> = row
            .iter()
            .map(|&v| {
                let scaled = multiply_by_quantized_multiplier(v - max, m);
                lut_lookup((scaled + 32767).clamp(-32768, 32767), &exp_lut)
            })
            .collect();
        let sum: i32 = exps.iter().sum();
        let headroom_plus_one = (sum as u32).leading_zeros() as i32;
        let shifted_sum =
            (((i64::from(sum) << (headroom_plus_one - 1).clamp(0, 62)) + (1 << 13)) >> 14) as i32;
        let sym = shifted_sum + (-((1 << 15) + (1 << 16)));
        let reciprocal = lut_lookup(sym.clamp(-32768, 32767), &one_over_lut);
        let right_shift = (31 - headroom_plus_one).clamp(1, 62);
        for e in exps {
            let round = 1i64 << (right_shift - 1);
            let r = ((i64::from(e) * i64::from(reciprocal) + round) >> right_shift) as i32;
            out.push(r.clamp(0, 32767));
        }
    }
    out
}
