//! FULLY_CONNECTED on int8 (int32 bias) and int16 (int64 bias) activations with int8 weights
//! (`reference_integer_ops::FullyConnected`, `FullyConnectedPerChannel`).

use super::gemm::{self, PackedWeights};
use super::quantize::round_f64_to_i32;
use super::{bias_i64, codes, dim, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::activation_range;
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// Batches and depth of an FC input: the filter's second dim is the depth, everything else is batches.
pub(super) fn fc_geometry(
    input: &Tensor,
    filter: &Tensor,
) -> Result<(usize, usize, usize), String> {
    if filter.shape.len() != 2 {
        return Err(format!(
            "the filter has shape {:?}, expected 2-D",
            filter.shape
        ));
    }
    let units = filter.shape[0];
    let depth = dim(&filter.shape, 1, "filter")?;
    if depth == 0 || input.len() % depth != 0 {
        return Err(format!(
            "input of {} elements does not split into rows of {depth}",
            input.len()
        ));
    }
    Ok((input.len() / depth, depth, units))
}

/// The output shape: the declared one when it holds `batches * units` elements, else `[batches, units]`.
pub(super) fn fc_output_shape(ctx: &OpCtx<'_>, batches: usize, units: usize) -> Vec<usize> {
    match ctx.output_shape(0) {
        Ok(s) if !s.is_empty() && s.iter().product::<usize>() == batches * units => s,
        _ => vec![batches, units],
    }
}

pub(super) fn fc_activation(ctx: &OpCtx<'_>) -> fb::ActivationFunctionType {
    match ctx.options() {
        fb::BuiltinOptionsT::FullyConnectedOptions(o) => o.fused_activation_function,
        _ => fb::ActivationFunctionType::NONE,
    }
}

pub(crate) fn fully_connected(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let (batches, depth, units) = fc_geometry(input, filter)?;
    let in_q = ctx.input_quant(0)?;
    let f_q = ctx.input_quant(1)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (act_min, act_max) = activation_range(
        fc_activation(ctx),
        out_q.scale0(),
        out_q.zero_point0(),
        qmin,
        qmax,
    );
    // LiteRT's reference FULLY_CONNECTED (and its int16-activation kernels on every path) requantize with
    // the real scale in double, `round(acc * input_scale * filter_scale / output_scale)`, not with a
    // fixed-point multiplier: the two differ by one code on a few percent of outputs.
    let scales: Vec<f64> = if f_q.scale.len() > 1 {
        if f_q.scale.len() != units {
            return Err(format!(
                "the filter has {} scales for {units} units",
                f_q.scale.len()
            ));
        }
        f_q.scale
            .iter()
            .map(|&s| f64::from(in_q.scale0()) * f64::from(s) / f64::from(out_q.scale0()))
            .collect()
    } else {
        vec![f64::from(in_q.scale0()) * f64::from(f_q.scale0()) / f64::from(out_q.scale0()); units]
    };
    let wide = input.tensor_type() == fb::TensorType::INT16;
    let int8 = |t: &Tensor| t.tensor_type() == fb::TensorType::INT8;
    if int8(input) && int8(filter) && out_type == fb::TensorType::INT8 {
        let requant = Requantization {
            scales,
            output_offset: out_q.zero_point0(),
            act_min,
            act_max,
        };
        let out = int8_product(ctx, filter, (batches, depth, units), requant)?;
        return Ok(vec![Tensor::new(
            fc_output_shape(ctx, batches, units),
            TensorData::I8(out),
        )?]);
    }
    let x = codes(input)?;
    let f = codes(filter)?;
    let bias = bias_i64(ctx.optional(2), units)?;
    let input_offset = -in_q.zero_point0();
    let filter_offset = -f_q.zero_point0();
    let output_offset = out_q.zero_point0();
    let mut out = Vec::with_capacity(batches * units);
    for b in 0..batches {
        let row = &x[b * depth..(b + 1) * depth];
        for u in 0..units {
            let weights = &f[u * depth..(u + 1) * depth];
            let mut acc: i64 = row
                .iter()
                .zip(weights)
                .map(|(&xv, &wv)| i64::from(wv + filter_offset) * i64::from(xv + input_offset))
                .sum();
            acc += bias[u];
            // int8 kernels accumulate in int32 (wrapping); int16 ones in the bias type (int64).
            let acc = if wide {
                acc as f64
            } else {
                f64::from(acc as i32)
            };
            let v = round_f64_to_i32(acc * scales[u]).saturating_add(output_offset);
            out.push(v.clamp(act_min, act_max));
        }
    }
    Ok(vec![from_codes(
        fc_output_shape(ctx, batches, units),
        out_type,
        out,
    )?])
}

/// How FULLY_CONNECTED turns a unit's int32 sum into its output code.
struct Requantization {
    /// Per unit, `input_scale * filter_scale / output_scale`.
    scales: Vec<f64>,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
}

/// The int8 filter with its offset, packed once, and the bias as the int32 accumulator adds it.
struct Int8Plan {
    weights: PackedWeights,
    bias: Vec<i32>,
}

/// int8 x int8 -> int8 through [`gemm::product`]: the reference sums (wrapping int32, bias added), then
/// the double-precision requantization of [`fully_connected`].
fn int8_product(
    ctx: &OpCtx<'_>,
    filter: &Tensor,
    (batches, depth, units): (usize, usize, usize),
    r: Requantization,
) -> Result<Vec<i8>, String> {
    let plan = ctx.prepared(&[1, 2], || {
        let TensorData::I8(f) = &filter.data else {
            return Err("expected an INT8 filter".to_string());
        };
        let filter_offset = -ctx.input_quant(1)?.zero_point0();
        let weights = PackedWeights::new(units, depth, |u, k| {
            (i32::from(f[u * depth + k]) + filter_offset) as i16
        });
        let bias = bias_i64(ctx.optional(2), units)?
            .into_iter()
            .map(|b| b as i32)
            .collect();
        Ok(Int8Plan { weights, bias })
    })?;
    let TensorData::I8(x) = &ctx.input(0)?.data else {
        return Err("expected an INT8 input".into());
    };
    let input_offset = -ctx.input_quant(0)?.zero_point0();
    let stride = plan.weights.row_stride();
    let width = plan.weights.padded_columns();
    let mut out = Vec::with_capacity(batches * units);
    ctx.with_scratch(|s| -> Result<(), String> {
        s.activations.clear();
        s.activations.resize(batches * stride, 0);
        for (row, xs) in s
            .activations
            .chunks_exact_mut(stride)
            .zip(x.chunks_exact(depth))
        {
            for (a, &v) in row.iter_mut().zip(xs) {
                *a = (i32::from(v) + input_offset) as i16;
            }
        }
        gemm::product(&s.activations, batches, &plan.weights, &mut s.sums).ok_or("short input")?;
        r.apply(&s.sums, width, &plan.bias, &mut out);
        Ok(())
    })?;
    Ok(out)
}

impl Requantization {
    /// Appends the code of the first `units` sums of each row of `sums` (rows `width` apart), bias added:
    /// AVX2 lanes where the CPU has them.
    fn apply(&self, sums: &[i32], width: usize, bias: &[i32], out: &mut Vec<i8>) {
        let units = self.scales.len();
        if units == 0 || width < units || bias.len() != units {
            return;
        }
        let start = out.len();
        out.resize(start + sums.len() / width * units, 0);
        let dst = &mut out[start..];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is available on this CPU (checked on the line above).
                unsafe { self.rows_avx2(sums, width, bias, dst) };
                return;
            }
        }
        self.rows(sums, width, bias, dst);
    }

    /// [`rows`](Self::rows) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(&self, sums: &[i32], width: usize, bias: &[i32], out: &mut [i8]) {
        self.rows(sums, width, bias, out);
    }

    /// `clamp(round(acc * scale) + offset)` per unit, written without branches so that it vectorizes. The
    /// integers are those of `round_f64_to_i32(acc * scale).saturating_add(offset).clamp(..)`: `x - trunc(x)`
    /// is exact, rounding is half away from zero, and the clamp in double gives the same bound for any
    /// product beyond the int32 range.
    #[inline(always)]
    fn rows(&self, sums: &[i32], width: usize, bias: &[i32], out: &mut [i8]) {
        let units = self.scales.len();
        let offset = f64::from(self.output_offset);
        let (lo, hi) = (f64::from(self.act_min), f64::from(self.act_max));
        for (row, dst) in sums.chunks_exact(width).zip(out.chunks_exact_mut(units)) {
            for (((d, &sum), &b), &scale) in dst.iter_mut().zip(row).zip(bias).zip(&self.scales) {
                let x = f64::from(sum.wrapping_add(b)) * scale;
                let t = x.trunc();
                let step = if (x - t).abs() >= 0.5 {
                    1f64.copysign(x)
                } else {
                    0.0
                };
                *d = (t + step + offset).clamp(lo, hi) as i8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn vector_requantization_matches_rounding_in_double(
            sums in proptest::collection::vec(any::<i32>(), 1..40),
            bias in -100_000i32..100_000,
            scale in prop_oneof![1e-9f64..1e-3, 1e-3f64..4.0, Just(0.5), Just(1.0)],
            offset in -128i32..128,
        ) {
            let units = sums.len();
            let r = Requantization {
                scales: vec![scale; units],
                output_offset: offset,
                act_min: -120,
                act_max: 127,
            };
            let mut got = Vec::new();
            r.apply(&sums, units, &vec![bias; units], &mut got);
            let want: Vec<i8> = sums
                .iter()
                .map(|&s| {
                    let v = round_f64_to_i32(f64::from(s.wrapping_add(bias)) * scale)
                        .saturating_add(offset);
                    v.clamp(-120, 127) as i8
                })
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn halves_round_away_from_zero() {
        let r = Requantization {
            scales: vec![0.5; 6],
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let mut got = Vec::new();
        r.apply(&[1, -1, 3, -3, 0, 254], 6, &[0; 6], &mut got);
        assert_eq!(got, vec![1, -1, 2, -2, 0, 127]);
    }
}
