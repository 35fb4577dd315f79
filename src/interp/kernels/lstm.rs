//! UNIDIRECTIONAL_SEQUENCE_LSTM, full-integer (TFLite's 8x8_16 scheme: int8 input, output and weights, int16
//! cell state and gates, int32 biases): `unidirectional_sequence_lstm.cc` `PopulateQuantizedLstmParams8x8_16`
//! and `lstm_eval.cc` `EvalInteger8x8_16` with the portable tensor utils, bit for bit. The 16-bit
//! sigmoid and tanh are gemmlowp's `FixedPoint<int16_t>` `logistic` and `tanh`.
//!
//! The state inputs (18: output state, 19: cell state) hold their reset value on every invoke (the
//! interpreter gives variable tensors their initial value), as LiteRT after `reset_all_variables()`.

use super::{codes, from_codes, OpCtx};
use crate::interp::fixed_point::{
    multiply_by_quantized_multiplier, quantize_multiplier, QuantizedMultiplier,
};
use crate::interp::tensor::{QuantParams, Tensor, TensorData};
use crate::tflite::fb;

// ---- gemmlowp FixedPoint<int16_t> arithmetic ----------------------------------------------------------

/// `SaturatingRoundingDoublingHighMul` on int16.
fn mul16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// `RoundingDivideByPOT` on int16.
fn rdbp16(x: i16, exponent: u32) -> i16 {
    let mask: i16 = ((1i32 << exponent) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i16::from(x < 0);
    (x >> exponent).wrapping_add(i16::from(remainder > threshold))
}

/// `SaturatingRoundingMultiplyByPOT<e>` with `e > 0` on int16.
fn sat_shl16(x: i16, e: u32) -> i16 {
    if e == 0 {
        return x;
    }
    let threshold = (1i32 << (15 - e)) - 1;
    let x32 = i32::from(x);
    if x32 > threshold {
        i16::MAX
    } else if x32 < -threshold {
        i16::MIN
    } else {
        (x32 << e) as i16
    }
}

/// An int32 raw constant rescaled to int16 (`RescaleConstantInitializer`).
fn k16(raw32: i32) -> i16 {
    crate::interp::fixed_point::rounding_divide_by_pot(raw32, 16) as i16
}

fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i16) -> i16 {
    let constant_term = k16(1_895_147_668);
    let one_third = k16(715_827_883);
    let x = a.wrapping_add(1 << 12);
    let x2 = mul16(x, x);
    let x3 = mul16(x2, x);
    let x4 = mul16(x2, x2);
    let x4_over_4 = rdbp16(x4, 2);
    let poly = rdbp16(
        mul16(x4_over_4.wrapping_add(x3), one_third).wrapping_add(x2),
        1,
    );
    constant_term.saturating_add(mul16(constant_term, x.wrapping_add(poly)))
}

/// `exp_on_negative_values` for a Q`integer_bits` int16 raw; returns Q0.15.
fn exp_on_negative_values16(a: i16, integer_bits: u32) -> i16 {
    let fractional_bits = 15 - integer_bits as i32;
    let one_quarter: i16 = (1i32 << (fractional_bits - 2)) as i16;
    let mask = one_quarter.wrapping_sub(1);
    let a_mod = (a & mask).wrapping_sub(one_quarter);
    let mut result =
        exp_on_interval_between_negative_one_quarter_and_0_excl(sat_shl16(a_mod, integer_bits));
    let remainder = a_mod.wrapping_sub(a);
    let barrel: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in barrel {
        if integer_bits as i32 > exponent {
            let shift = fractional_bits + exponent;
            if i32::from(remainder) & (1 << shift) != 0 {
                result = mul16(result, k16(multiplier));
            }
        }
    }
    if integer_bits > 5 {
        let clamp_b = 36 - integer_bits as i32;
        let clamp = k16(-(1i32 << clamp_b));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i16::MAX;
    }
    result
}

/// The Newton-Raphson core of gemmlowp's two `..._for_x_in_0_1` functions: `1 / (1 + a)` in Q2.13.
fn reciprocal_q2(a: i16) -> i16 {
    let sum = i32::from(a) + i32::from(i16::MAX);
    let sign = if sum >= 0 { 1 } else { -1 };
    let half_denominator = ((sum + sign) / 2) as i16;
    let c48_17 = k16(1_515_870_810);
    let cn32_17 = k16(-1_010_580_540);
    let one_q2: i16 = 1 << 13;
    let mut x = c48_17.wrapping_add(mul16(half_denominator, cn32_17));
    for _ in 0..3 {
        let hdx = mul16(half_denominator, x);
        let one_minus = one_q2.wrapping_sub(hdx);
        x = x.wrapping_add(sat_shl16(mul16(x, one_minus), 2));
    }
    x
}

/// gemmlowp `logistic` of a Q`integer_bits` int16 raw; returns Q0.15.
pub(crate) fn logistic16(a: i16, integer_bits: u32) -> i16 {
    let positive = a > 0;
    let abs = if positive { a } else { a.wrapping_neg() };
    let exp = exp_on_negative_values16(abs.wrapping_neg(), integer_bits);
    // Rescale<0>(ExactMulByPot<-1>(x)): Q2 read as Q1, then to Q0.
    let result_if_positive = sat_shl16(reciprocal_q2(exp), 1);
    let result_if_negative = i16::MAX.wrapping_sub(result_if_positive);
    if a == 0 {
        k16(1 << 30)
    } else if positive {
        result_if_positive
    } else {
        result_if_negative
    }
}

/// gemmlowp `tanh` of a Q`integer_bits` int16 raw; returns Q0.15.
pub(crate) fn tanh16(a: i16, integer_bits: u32) -> i16 {
    let negative = a < 0;
    let n = if negative { a } else { a.wrapping_neg() };
    // neg_tanh_on_negative_values: ExactMulByPot<1> adds an integer bit.
    let exp = exp_on_negative_values16(n, integer_bits + 1);
    let t = sat_shl16(reciprocal_q2(exp).wrapping_sub(1 << 13), 2);
    if a == 0 {
        0
    } else if negative {
        t.wrapping_neg()
    } else {
        t
    }
}

// ---- the LSTM ------------------------------------------------------------------------------------------

fn qm(real: f64) -> QuantizedMultiplier {
    quantize_multiplier(real)
}

fn mbqm(x: i32, m: QuantizedMultiplier) -> i32 {
    multiply_by_quantized_multiplier(x, m)
}

/// `MatrixBatchVectorMultiplyAccumulate` (int8 x int8 -> int16/int8 with saturation): for one batch row.
#[allow(clippy::too_many_arguments)]
fn matvec_acc(
    x: &[i32],
    bias: &[i32],
    w: &[i8],
    m: QuantizedMultiplier,
    n_in: usize,
    n_out: usize,
    zp: i32,
    range: (i32, i32),
    out: &mut [i32],
) {
    for r in 0..n_out {
        let mut acc = bias[r];
        for c in 0..n_in {
            acc = acc.wrapping_add(x[c].wrapping_mul(i32::from(w[r * n_in + c])));
        }
        let mut v = mbqm(acc, m).wrapping_add(zp).wrapping_add(out[r]);
        v = v.clamp(range.0, range.1);
        out[r] = v;
    }
}

/// `bias + zero_point * row_sum(weights)` (`PrecomputeZeroPointTimesWeightWithBias`).
fn effective_bias(zp: i32, w: &[i8], rows: usize, bias: Option<&[i32]>) -> Vec<i32> {
    let cols = w.len() / rows.max(1);
    (0..rows)
        .map(|r| {
            let b = bias.map_or(0, |b| b[r]);
            if zp == 0 {
                return b;
            }
            let sum: i32 = w[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| i32::from(v))
                .sum();
            b.wrapping_add(sum.wrapping_mul(zp))
        })
        .collect()
}

fn i8s(t: &Tensor, what: &str) -> Result<Vec<i8>, String> {
    match &t.data {
        TensorData::I8(v) => Ok(v.clone()),
        other => Err(format!(
            "{what} is {}, expected INT8",
            crate::tflite::type_name(other.tensor_type())
        )),
    }
}

fn i16s(t: &Tensor, what: &str) -> Result<Vec<i16>, String> {
    match &t.data {
        TensorData::I16(v) => Ok(v.clone()),
        other => Err(format!(
            "{what} is {}, expected INT16",
            crate::tflite::type_name(other.tensor_type())
        )),
    }
}

fn i32s(t: &Tensor, what: &str) -> Result<Vec<i32>, String> {
    match &t.data {
        TensorData::I32(v) => Ok(v.clone()),
        other => Err(format!(
            "{what} is {}, expected INT32",
            crate::tflite::type_name(other.tensor_type())
        )),
    }
}

/// LiteRT's `ApplyLayerNorm` (integer).
#[allow(clippy::too_many_arguments)]
fn layer_norm(
    gate: &mut [i32],
    weights: &[i16],
    bias: &[i32],
    scale: QuantizedMultiplier,
    variance_limit: i32,
) {
    let n = gate.len() as i64;
    let (mut sum, mut sum_sq) = (0i64, 0i64);
    for &v in gate.iter() {
        sum += i64::from(v);
        sum_sq += i64::from(v) * i64::from(v);
    }
    let mean = (sum * 1024 / n) as i32;
    let temp = ((1i64 << 20) / n) as i32;
    let variance = sum_sq * i64::from(temp) - i64::from(mean) * i64::from(mean);
    let mut variance2 = (variance / (1 << 20)) as i32;
    if variance2 < 1 {
        variance2 = variance_limit;
    }
    let inv = inv_sqrt_multiplier_exp(variance2, -1);
    for (j, g) in gate.iter_mut().enumerate() {
        let shifted = 1024i32.wrapping_mul(*g).wrapping_sub(mean);
        let rescaled = mbqm(shifted, inv);
        // LiteRT multiplies and adds in 32 bits before widening.
        let val3 = i64::from(
            rescaled
                .wrapping_mul(i32::from(weights[j]))
                .wrapping_add(bias[j]),
        );
        let val4 = (if val3 > 0 { val3 + 512 } else { val3 - 512 } / 1024) as i32;
        let val5 = mbqm(
            val4,
            QuantizedMultiplier {
                multiplier: scale.multiplier,
                shift: scale.shift + 12,
            },
        );
        *g = val5.clamp(-32768, 32767);
    }
}

/// TFLite's `GetInvSqrtQuantizedMultiplierExp`.
fn inv_sqrt_multiplier_exp(mut input: i32, reverse_shift: i32) -> QuantizedMultiplier {
    use crate::interp::fixed_point::saturating_rounding_doubling_high_mul as srdhm;
    if input <= 1 {
        return QuantizedMultiplier {
            multiplier: i32::MAX,
            shift: 0,
        };
    }
    let mut output_shift = 11;
    while input >= (1 << 29) {
        input /= 4;
        output_shift += 1;
    }
    let max_left_shift_bits = (input as u32).leading_zeros() as i32 - 1;
    let max_left_shift_bit_pairs = max_left_shift_bits / 2;
    let left_shift_bit_pairs = max_left_shift_bit_pairs - 1;
    output_shift -= left_shift_bit_pairs;
    input <<= 2 * left_shift_bit_pairs;
    use crate::interp::fixed_point::saturating_shift_left as shl;
    // F3 (Q3.28) Newton-Raphson, as gemmlowp computes it.
    let fixedpoint_input = input >> 1;
    let fixedpoint_half_input = rounding_pot_shift(fixedpoint_input, 1);
    let fixedpoint_half_three: i32 = (1 << 28) + (1 << 27);
    let mut x: i32 = 1 << 28;
    for _ in 0..5 {
        let x3 = shl(srdhm(srdhm(x, x), x), 6);
        x = shl(
            srdhm(fixedpoint_half_three, x).wrapping_sub(srdhm(fixedpoint_half_input, x3)),
            3,
        );
    }
    x = srdhm(x, 1_518_500_250);
    let mut multiplier = x;
    if output_shift < 0 {
        multiplier <<= -output_shift;
        output_shift = 0;
    }
    // Convert right shift (< 0) to left shift (> 0).
    QuantizedMultiplier {
        multiplier,
        shift: output_shift * reverse_shift,
    }
}

fn rounding_pot_shift(x: i32, e: i32) -> i32 {
    crate::interp::fixed_point::rounding_divide_by_pot(x, e)
}

/// Everything `Prepare` derives for one integer LSTM.
struct Prepared {
    cifg: bool,
    layer_norm: bool,
    /// Per gate (i, f, c, o): input and recurrent multipliers.
    input_m: [QuantizedMultiplier; 4],
    recurrent_m: [QuantizedMultiplier; 4],
    /// Peephole multipliers (i, f, -, o).
    cell_m: [QuantizedMultiplier; 4],
    ln_m: [QuantizedMultiplier; 4],
    ln_guard: [i32; 4],
    hidden_m: QuantizedMultiplier,
    hidden_zp: i32,
    proj_m: QuantizedMultiplier,
    cell_scale: i32,
    cell_clip: i32,
    proj_clip: i32,
    input_zp: i32,
    output_state_zp: i32,
}

fn scale_of(ctx: &OpCtx<'_>, i: usize) -> Result<f32, String> {
    Ok(ctx.input_quant(i)?.scale0())
}

fn intermediate_quant(ctx: &OpCtx<'_>, i: usize) -> Result<QuantParams, String> {
    let ids = ctx.graph.op(ctx.op).intermediates.as_deref().unwrap_or(&[]);
    let &id = ids.get(i).ok_or_else(|| {
        format!(
            "the integer LSTM needs 5 intermediates, the op has {}",
            ids.len()
        )
    })?;
    let t = usize::try_from(id)
        .ok()
        .and_then(|t| ctx.graph.tensors().get(t))
        .ok_or_else(|| format!("intermediate {i} refers to tensor {id}, out of range"))?;
    QuantParams::of(t).ok_or_else(|| format!("intermediate {i} has no quantization parameters"))
}

fn prepare(
    ctx: &OpCtx<'_>,
    o: &fb::UnidirectionalSequenceLSTMOptionsT,
) -> Result<Prepared, String> {
    let cifg = ctx.optional(1).is_none();
    let peephole = ctx.optional(11).is_some();
    let layer_norm = ctx.inputs.len() == 24 && ctx.optional(21).is_some();
    let projection = ctx.optional(16).is_some();
    let mut inter_scale = [2f32.powi(-12); 5];
    let mut inter_zp = [0i32; 5];
    if layer_norm {
        for g in 0..4 {
            let q = intermediate_quant(ctx, g)?;
            inter_scale[g] = q.scale0();
            inter_zp[g] = q.zero_point0();
        }
    }
    let hidden = intermediate_quant(ctx, 4)?;
    inter_scale[4] = hidden.scale0();
    inter_zp[4] = hidden.zero_point0();

    let input_q = ctx.input_quant(0)?;
    let out_state_q = ctx.input_quant(18)?;
    let cell_q = ctx.input_quant(19)?;
    let output_q = ctx.output_quant(0)?;
    let input_scale = input_q.scale0();
    let output_state_scale = out_state_q.scale0();
    let cell_state_scale = cell_q.scale0();
    // CheckedLog2: the cell scale must be a power of two.
    let log2 = f64::from(cell_state_scale).log2();
    let cell_scale = log2.round() as i32;
    if (log2 - f64::from(cell_scale)).abs() > 1e-3 {
        return Err(format!(
            "the cell state scale {cell_state_scale} is not a power of two"
        ));
    }
    let cell_clip = if o.cell_clip > 0.0 {
        (o.cell_clip / cell_state_scale).clamp(-32768.0, 32767.0) as i16 as i32
    } else {
        0
    };
    let proj_clip = if o.proj_clip > 0.0 {
        (o.proj_clip / output_q.scale0()).clamp(-128.0, 127.0) as i8 as i32
    } else {
        0
    };
    let w_scale = |i: usize| -> Result<f32, String> { scale_of(ctx, i) };
    let mut input_m = [qm(1.0); 4];
    let mut recurrent_m = [qm(1.0); 4];
    let mut cell_m = [qm(1.0); 4];
    let mut ln_m = [qm(1.0); 4];
    let mut ln_guard = [1i32; 4];
    for g in 0..4 {
        if g == 0 && cifg {
            continue;
        }
        let e_in = w_scale(1 + g)? * input_scale / inter_scale[g];
        let e_rec = w_scale(5 + g)? * output_state_scale / inter_scale[g];
        input_m[g] = qm(f64::from(e_in));
        recurrent_m[g] = qm(f64::from(e_rec));
        if peephole && g != 2 {
            let pi = if g == 3 { 11 } else { 9 + g };
            let e = (2f64.powi(cell_scale) * f64::from(w_scale(pi)?) / f64::from(inter_scale[g]))
                as f32;
            cell_m[g] = qm(f64::from(e));
        }
        if layer_norm {
            let s = w_scale(20 + g)?;
            ln_m[g] = qm(f64::from(s));
            ln_guard[g] = ((10000.0 * s) as i32).max(1);
        }
    }
    let hidden_scale = (2f64.powi(-15) / f64::from(inter_scale[4]) * 2f64.powi(-15)) as f32;
    let proj_m = if projection {
        qm(f64::from(
            w_scale(16)? * inter_scale[4] / output_state_scale,
        ))
    } else {
        qm(f64::from(1.0f32 * inter_scale[4] / output_state_scale))
    };
    Ok(Prepared {
        cifg,
        layer_norm,
        input_m,
        recurrent_m,
        cell_m,
        ln_m,
        ln_guard,
        hidden_m: qm(f64::from(hidden_scale)),
        hidden_zp: inter_zp[4],
        proj_m,
        cell_scale,
        cell_clip,
        proj_clip,
        input_zp: input_q.zero_point0(),
        output_state_zp: out_state_q.zero_point0(),
    })
}

/// UNIDIRECTIONAL_SEQUENCE_LSTM on int8 activations (8x8_16).
pub(crate) fn unidirectional_sequence_lstm(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let o = match ctx.options() {
        fb::BuiltinOptionsT::UnidirectionalSequenceLSTMOptions(o) => o.as_ref().clone(),
        _ => return Err("the op has no UnidirectionalSequenceLSTMOptions".into()),
    };
    let input = ctx.input(0)?;
    if input.tensor_type() != fb::TensorType::INT8 {
        return Err("the integer LSTM kernel takes int8 input (8x8_16)".into());
    }
    let p = prepare(ctx, &o)?;
    let (batch, time, n_input) = match input.shape[..] {
        [b, n] => (b, 1, n),
        [a, b, n] if o.time_major => (b, a, n),
        [a, b, n] => (a, b, n),
        _ => {
            return Err(format!(
                "input has shape {:?}, expected rank 2 or 3",
                input.shape
            ))
        }
    };
    let w_in: Vec<Option<Vec<i8>>> = (1..=4)
        .map(|i| ctx.optional(i).map(|t| i8s(t, "input weights")).transpose())
        .collect::<Result<_, _>>()?;
    let w_rec: Vec<Option<Vec<i8>>> = (5..=8)
        .map(|i| {
            ctx.optional(i)
                .map(|t| i8s(t, "recurrent weights"))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let peep: Vec<Option<Vec<i16>>> = (9..=11)
        .map(|i| {
            ctx.optional(i)
                .map(|t| i16s(t, "peephole weights"))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let bias: Vec<Option<Vec<i32>>> = (12..=15)
        .map(|i| ctx.optional(i).map(|t| i32s(t, "gate bias")).transpose())
        .collect::<Result<_, _>>()?;
    let proj_w = ctx
        .optional(16)
        .map(|t| i8s(t, "projection weights"))
        .transpose()?;
    let proj_b = ctx
        .optional(17)
        .map(|t| i32s(t, "projection bias"))
        .transpose()?;
    let ln_w: Vec<Option<Vec<i16>>> = (20..24)
        .map(|i| {
            ctx.optional(i)
                .map(|t| i16s(t, "layer norm coefficients"))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let w_out = w_in[3].as_ref().ok_or("missing input_to_output weights")?;
    let n_cell = w_out.len() / n_input.max(1);
    let rec_out = ctx.input(8)?;
    let n_output = *rec_out
        .shape
        .get(1)
        .ok_or("recurrent weights must be 2-D")?;
    for g in 0..4 {
        if g == 0 && p.cifg {
            continue;
        }
        let (Some(wi), Some(wr)) = (&w_in[g], &w_rec[g]) else {
            return Err(format!("gate {g} lacks its weights"));
        };
        if wi.len() != n_cell * n_input || wr.len() != n_cell * n_output {
            return Err(format!("gate {g} weights do not fit {n_cell} cells"));
        }
    }
    let mut h: Vec<i32> = codes(ctx.input(18)?)?;
    let mut c: Vec<i32> = codes(ctx.input(19)?)?;
    if h.len() != batch * n_output || c.len() != batch * n_cell {
        return Err("state sizes do not match the batch".into());
    }
    // Effective biases: zero point times row sums, plus the bias unless layer norm applies it later.
    let gate_bias = |g: usize| {
        if p.layer_norm {
            None
        } else {
            bias[g].as_deref()
        }
    };
    let eff_in: Vec<Vec<i32>> = (0..4)
        .map(|g| {
            w_in[g].as_ref().map_or_else(Vec::new, |w| {
                effective_bias(-p.input_zp, w, n_cell, gate_bias(g))
            })
        })
        .collect();
    let eff_rec: Vec<Vec<i32>> = (0..4)
        .map(|g| {
            w_rec[g].as_ref().map_or_else(Vec::new, |w| {
                effective_bias(-p.output_state_zp, w, n_cell, None)
            })
        })
        .collect();
    let eff_proj = proj_w
        .as_ref()
        .map(|w| effective_bias(p.hidden_zp, w, n_output, proj_b.as_deref()));
    let x = codes(input)?;
    let mut out = vec![0i32; batch * time * n_output];
    let i16r = (-32768, 32767);
    let i8r = (-128, 127);
    let mut gates = vec![vec![0i32; n_cell]; 4];
    for b in 0..batch {
        for t in 0..time {
            let row = if o.time_major {
                t * batch + b
            } else {
                b * time + t
            };
            let xs = &x[row * n_input..(row + 1) * n_input];
            let hs: Vec<i32> = h[b * n_output..(b + 1) * n_output].to_vec();
            let cs = &mut c[b * n_cell..(b + 1) * n_cell];
            for g in 0..4 {
                if g == 0 && p.cifg {
                    continue;
                }
                let gate = &mut gates[g];
                gate.iter_mut().for_each(|v| *v = 0);
                let (Some(wi), Some(wr)) = (&w_in[g], &w_rec[g]) else {
                    continue;
                };
                if g == 3 {
                    // The output gate reads the updated cell state (computed below), so it runs later.
                    continue;
                }
                matvec_acc(
                    xs,
                    &eff_in[g],
                    wi,
                    p.input_m[g],
                    n_input,
                    n_cell,
                    0,
                    i16r,
                    gate,
                );
                matvec_acc(
                    &hs,
                    &eff_rec[g],
                    wr,
                    p.recurrent_m[g],
                    n_output,
                    n_cell,
                    0,
                    i16r,
                    gate,
                );
                let pi = if g == 0 { 0 } else { 1 };
                if g != 2 {
                    if let Some(pw) = &peep[pi] {
                        peephole_acc(pw, cs, p.cell_m[g], n_output, gate);
                    }
                }
                finish_gate(&p, g, gate, &ln_w, &bias)?;
            }
            // Cell update.
            for r in 0..n_cell {
                let f = gates[1][r];
                let cg = gates[2][r];
                let mut v = rdbp32(f * cs[r], 15) as i16 as i32;
                let ig = if p.cifg { 32767 - f } else { gates[0][r] };
                let s = rdbp32(ig * cg, (30 + p.cell_scale) as u32) as i16 as i32;
                v = (v + s).clamp(-32768, 32767);
                if p.cell_clip > 0 {
                    v = v.clamp(-p.cell_clip, p.cell_clip);
                }
                cs[r] = v;
            }
            // Output gate.
            {
                let gate = &mut gates[3];
                let (Some(wi), Some(wr)) = (&w_in[3], &w_rec[3]) else {
                    return Err("missing output gate weights".into());
                };
                matvec_acc(
                    xs,
                    &eff_in[3],
                    wi,
                    p.input_m[3],
                    n_input,
                    n_cell,
                    0,
                    i16r,
                    gate,
                );
                matvec_acc(
                    &hs,
                    &eff_rec[3],
                    wr,
                    p.recurrent_m[3],
                    n_output,
                    n_cell,
                    0,
                    i16r,
                    gate,
                );
                if let Some(pw) = &peep[2] {
                    peephole_acc(pw, cs, p.cell_m[3], n_output, gate);
                }
                finish_gate(&p, 3, gate, &ln_w, &bias)?;
            }
            // Hidden and output state.
            let tanh_bits = (15 + p.cell_scale) as u32;
            if tanh_bits > 6 {
                return Err(format!(
                    "the cell state scale 2^{} is outside 2^-15..2^-9",
                    p.cell_scale
                ));
            }
            let cell_tanh: Vec<i32> = cs
                .iter()
                .map(|&v| i32::from(tanh16(v as i16, tanh_bits)))
                .collect();
            let hb = &mut h[b * n_output..(b + 1) * n_output];
            match (&proj_w, &eff_proj) {
                (Some(pw), Some(pb)) => {
                    let hidden: Vec<i32> = (0..n_cell)
                        .map(|r| {
                            (mbqm(gates[3][r] * cell_tanh[r], p.hidden_m) - p.hidden_zp)
                                .clamp(-128, 127)
                        })
                        .collect();
                    hb.iter_mut().for_each(|v| *v = 0);
                    let pw8: &[i8] = pw;
                    matvec_acc(
                        &hidden,
                        pb,
                        pw8,
                        p.proj_m,
                        n_cell,
                        n_output,
                        p.output_state_zp,
                        i8r,
                        hb,
                    );
                    if p.proj_clip > 0 {
                        hb.iter_mut()
                            .for_each(|v| *v = (*v).clamp(-p.proj_clip, p.proj_clip));
                    }
                }
                _ => {
                    for r in 0..n_cell {
                        hb[r] = (mbqm(gates[3][r] * cell_tanh[r], p.hidden_m) + p.hidden_zp)
                            .clamp(-128, 127);
                    }
                }
            }
            out[row * n_output..(row + 1) * n_output].copy_from_slice(hb);
        }
    }
    let shape = match input.shape.len() {
        2 => vec![batch, n_output],
        _ if o.time_major => vec![time, batch, n_output],
        _ => vec![batch, time, n_output],
    };
    Ok(vec![from_codes(shape, ctx.output_type(0)?, out)?])
}

fn rdbp32(x: i32, e: u32) -> i32 {
    crate::interp::fixed_point::rounding_divide_by_pot(x, e as i32)
}

/// `VectorBatchVectorCwiseProductAccumulate` (int16 peephole): LiteRT passes `n_output` as the length.
fn peephole_acc(w: &[i16], c: &[i32], m: QuantizedMultiplier, n: usize, gate: &mut [i32]) {
    for v in 0..n.min(w.len()).min(gate.len()) {
        let prod = mbqm(i32::from(w[v]) * c[v], m);
        gate[v] = (prod + gate[v]).clamp(-32768, 32767);
    }
}

/// Layer norm (when used) and the gate's activation, in place: sigmoid on Q3.12, tanh (cell gate) on Q3.12.
fn finish_gate(
    p: &Prepared,
    g: usize,
    gate: &mut [i32],
    ln_w: &[Option<Vec<i16>>],
    bias: &[Option<Vec<i32>>],
) -> Result<(), String> {
    if p.layer_norm {
        let w = ln_w[g].as_ref().ok_or("missing layer norm coefficients")?;
        let b = bias[g].as_ref().ok_or("layer norm needs the gate bias")?;
        layer_norm(gate, w, b, p.ln_m[g], p.ln_guard[g]);
    }
    for v in gate.iter_mut() {
        *v = i32::from(if g == 2 {
            tanh16(*v as i16, 3)
        } else {
            logistic16(*v as i16, 3)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int16_logistic_and_tanh_follow_the_real_functions() {
        for raw in (-32768i32..32768).step_by(97) {
            let x = f64::from(raw) / 4096.0;
            let s = f64::from(logistic16(raw as i16, 3)) / 32768.0;
            assert!(
                (s - 1.0 / (1.0 + (-x).exp())).abs() < 2e-3,
                "sigmoid({x}) = {s}"
            );
            let t = f64::from(tanh16(raw as i16, 3)) / 32768.0;
            assert!((t - x.tanh()).abs() < 2e-3, "tanh({x}) = {t}");
            let x4 = f64::from(raw) / 2048.0;
            let t4 = f64::from(tanh16(raw as i16, 4)) / 32768.0;
            assert!((t4 - x4.tanh()).abs() < 2e-3, "tanh({x4}) = {t4}");
        }
        assert_eq!(logistic16(0, 3), 16384);
        assert_eq!(tanh16(0, 3), 0);
    }
}
