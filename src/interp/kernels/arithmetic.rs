//! ADD, SUB and MUL on int8 / int16 with broadcasting (`reference_ops::Add`/`Sub` general-scale paths,
//! `reference_integer_ops::Mul`).

use super::requantize::Scaler;
use super::{from_code_slice, type_range, OpCtx};
use crate::calibrate::vector::wide_vectors;
use crate::interp::fixed_point::{activation_range, quantize_multiplier, QuantizedMultiplier};
use crate::interp::tensor::{QuantParams, Tensor, TensorData};
use crate::tflite::fb;

/// The broadcast output shape of two inputs, and per output element (row-major) the flat index into each.
pub(super) fn broadcast(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, Pairs), String> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(a), pad(b));
    let mut out = Vec::with_capacity(rank);
    for (&x, &y) in pa.iter().zip(&pb) {
        out.push(match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        });
    }
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![0; rank];
        let mut acc = 1;
        for d in (0..rank).rev() {
            st[d] = if s[d] == 1 { 0 } else { acc };
            acc *= s[d];
        }
        st
    };
    let pairs = Pairs {
        strides: [strides(&pa), strides(&pb)],
        index: vec![0; rank],
        offsets: [0, 0],
        remaining: out.iter().product(),
        same: a == b,
        dims: out.clone(),
    };
    Ok((out, pairs))
}

/// The flat input indices of each output element of a broadcast, in output order, computed as it goes
/// (no per-element index vectors).
pub(super) struct Pairs {
    dims: Vec<usize>,
    strides: [Vec<usize>; 2],
    /// The multi-index of the next output element and its offset into each input.
    index: Vec<usize>,
    offsets: [usize; 2],
    remaining: usize,
    /// Equal shapes (residual adds): both inputs are read in order.
    same: bool,
}

impl Iterator for Pairs {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = (self.offsets[0], self.offsets[1]);
        if self.same {
            self.offsets = [current.0 + 1, current.1 + 1];
            return Some(current);
        }
        // Within the last dim (most steps): one increment, no carry.
        if let Some(last) = self.dims.len().checked_sub(1) {
            if self.index[last] + 1 < self.dims[last] {
                self.index[last] += 1;
                self.offsets[0] += self.strides[0][last];
                self.offsets[1] += self.strides[1][last];
                return Some(current);
            }
        }
        for d in (0..self.dims.len()).rev() {
            self.index[d] += 1;
            self.offsets[0] += self.strides[0][d];
            self.offsets[1] += self.strides[1][d];
            if self.index[d] < self.dims[d] {
                break;
            }
            self.offsets[0] -= self.strides[0][d] * self.dims[d];
            self.offsets[1] -= self.strides[1][d] * self.dims[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Pairs {}

/// A broadcast walked in runs along the output's last dim (one run of every element when the shapes are
/// equal): where each run starts in each input, and how far each input advances per element (0 when it
/// broadcasts along that dim, else 1).
pub(super) struct Runs {
    starts: Pairs,
    len: usize,
    steps: (usize, usize),
}

/// The broadcast output shape of two inputs and its [`Runs`].
pub(super) fn broadcast_runs(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, Runs), String> {
    let (shape, mut starts) = broadcast(a, b)?;
    let total: usize = shape.iter().product();
    let Some(last) = shape.len().checked_sub(1).filter(|_| a != b) else {
        let starts = Pairs {
            dims: Vec::new(),
            strides: [Vec::new(), Vec::new()],
            index: Vec::new(),
            offsets: [0, 0],
            remaining: usize::from(total > 0),
            same: false,
        };
        return Ok((
            shape,
            Runs {
                starts,
                len: total,
                steps: (1, 1),
            },
        ));
    };
    let len = shape[last];
    let steps = (starts.strides[0][last], starts.strides[1][last]);
    starts.dims.truncate(last);
    starts.index.truncate(last);
    for s in &mut starts.strides {
        s.truncate(last);
    }
    starts.remaining = total.checked_div(len).unwrap_or(0);
    starts.same = false;
    Ok((shape, Runs { starts, len, steps }))
}

wide_vectors! {
    /// `f(a[i], b[j])` for every output element of the broadcast `runs`, in order, into `out` (reused);
    /// compiled for AVX2 where the CPU has it (the compiler vectorizes the runs).
    pub(super) fn combine(
        a: &[i32],
        b: &[i32],
        runs: Runs,
        out: &mut Vec<i32>,
        f: impl Fn(i32, i32) -> i32 + Copy,
    ) -> Result<(), String> => combine_runs;
}

#[inline(always)]
fn combine_runs(
    a: &[i32],
    b: &[i32],
    runs: Runs,
    out: &mut Vec<i32>,
    f: impl Fn(i32, i32) -> i32 + Copy,
) -> Result<(), String> {
    out.clear();
    let Runs { starts, len, steps } = runs;
    let short = || "an input is shorter than its shape".to_string();
    // The elements a run reads from an input starting at `i` with step `s`.
    let span = |i: usize, s: usize| i..i + if s == 0 { 1 } else { len };
    out.resize(starts.len() * len, 0);
    // Plain loops over slices (not `extend`, whose folds the compiler may keep out of line, and so out of
    // the AVX2 function).
    for ((i, j), dst) in starts.zip(out.chunks_exact_mut(len.max(1))) {
        let xa = a.get(span(i, steps.0)).ok_or_else(short)?;
        let xb = b.get(span(j, steps.1)).ok_or_else(short)?;
        match (xa, xb) {
            (&[x], &[y]) => dst.fill(f(x, y)),
            (&[x], _) => {
                for (d, &y) in dst.iter_mut().zip(xb) {
                    *d = f(x, y);
                }
            }
            (_, &[y]) => {
                for (d, &x) in dst.iter_mut().zip(xa) {
                    *d = f(x, y);
                }
            }
            _ => {
                for (d, (&x, &y)) in dst.iter_mut().zip(xa.iter().zip(xb)) {
                    *d = f(x, y);
                }
            }
        }
    }
    Ok(())
}

/// `out[i] = f(x[i])` as a plain loop.
#[inline(always)]
fn each<T: Copy>(x: &[T], out: &mut [i32], f: impl Fn(T) -> i32) {
    for (d, &v) in out.iter_mut().zip(x) {
        *d = f(v);
    }
}

wide_vectors! {
    /// `f(code)` for each element of a quantized tensor (INT8, UINT8, INT16, INT32), into `out` (reused);
    /// compiled for AVX2 where the CPU has it.
    pub(super) fn map_codes(
        t: &Tensor,
        out: &mut Vec<i32>,
        f: impl Fn(i32) -> i32 + Copy,
    ) -> Result<(), String> => map_codes_in;
}

#[inline(always)]
fn map_codes_in(
    t: &Tensor,
    out: &mut Vec<i32>,
    f: impl Fn(i32) -> i32 + Copy,
) -> Result<(), String> {
    out.clear();
    out.resize(t.data.len(), 0);
    match &t.data {
        TensorData::I8(v) => each(v, out, |x| f(i32::from(x))),
        TensorData::U8(v) => each(v, out, |x| f(i32::from(x))),
        TensorData::I16(v) => each(v, out, |x| f(i32::from(x))),
        TensorData::I32(v) => each(v, out, f),
        other => {
            return Err(format!(
                "expected quantized integer data, got {}",
                crate::tflite::type_name(other.tensor_type())
            ))
        }
    }
    Ok(())
}

fn fused(ctx: &OpCtx<'_>) -> fb::ActivationFunctionType {
    match ctx.options() {
        fb::BuiltinOptionsT::AddOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::SubOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::MulOptions(o) => o.fused_activation_function,
        _ => fb::ActivationFunctionType::NONE,
    }
}

/// The inputs, quantization parameters, output type and fused-activation clamp of a binary op.
struct Operands<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    qa: QuantParams,
    qb: QuantParams,
    qo: QuantParams,
    act_min: i32,
    act_max: i32,
}

fn operands<'a>(ctx: &OpCtx<'a>) -> Result<Operands<'a>, String> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let (qa, qb, qo) = (
        ctx.input_quant(0)?,
        ctx.input_quant(1)?,
        ctx.output_quant(0)?,
    );
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (act_min, act_max) =
        activation_range(fused(ctx), qo.scale0(), qo.zero_point0(), qmin, qmax);
    Ok(Operands {
        a,
        b,
        qa,
        qb,
        qo,
        act_min,
        act_max,
    })
}

/// Each element of an input of ADD, SUB or SQUARED_DIFFERENCE on the common scale, into `out`: the offset
/// code shifted left, times the input's multiplier (`MultiplyByQuantizedMultiplierSmallerThanOneExp`). Done
/// once per input element, so a broadcast input is not rescaled again for every output element that reads it.
pub(super) fn rescaled(
    t: &Tensor,
    zero_point: i32,
    left_shift: i32,
    m: QuantizedMultiplier,
    out: &mut Vec<i32>,
) -> Result<(), String> {
    let scaler = Scaler::smaller_than_one(m);
    map_codes(t, out, move |x| {
        scaler.apply((x - zero_point).wrapping_mul(1 << left_shift))
    })
}

/// The output tensor of a binary op from its codes (already clamped to the activation range).
pub(super) fn binary_output(
    ctx: &OpCtx<'_>,
    shape: Vec<usize>,
    codes: &[i32],
) -> Result<Vec<Tensor>, String> {
    Ok(vec![from_code_slice(shape, ctx.output_type(0)?, codes)?])
}

pub(crate) fn add_sub(ctx: &OpCtx<'_>, subtract: bool) -> Result<Vec<Tensor>, String> {
    let Operands {
        a,
        b,
        qa,
        qb,
        qo,
        act_min,
        act_max,
    } = operands(ctx)?;
    // int16 uses the general-scale kernel with 15 bits of headroom, 8-bit types 20.
    let left_shift = if a.tensor_type() == fb::TensorType::INT16 {
        15
    } else {
        20
    };
    let twice_max = 2.0 * f64::from(qa.scale0().max(qb.scale0()));
    let ma = quantize_multiplier(f64::from(qa.scale0()) / twice_max);
    let mb = quantize_multiplier(f64::from(qb.scale0()) / twice_max);
    let mo =
        quantize_multiplier(twice_max / (f64::from(1u32 << left_shift) * f64::from(qo.scale0())));
    let rescale = Scaler::smaller_than_one(mo);
    let zo = qo.zero_point0();
    let (shape, runs) = broadcast_runs(&a.shape, &b.shape)?;
    ctx.with_scratch(|s| {
        rescaled(a, qa.zero_point0(), left_shift, ma, &mut s.lhs)?;
        rescaled(b, qb.zero_point0(), left_shift, mb, &mut s.rhs)?;
        let finish = move |raw: i32| (rescale.apply(raw) + zo).clamp(act_min, act_max);
        if subtract {
            combine(&s.lhs, &s.rhs, runs, &mut s.sums, move |x, y| {
                finish(x.wrapping_sub(y))
            })?;
        } else {
            combine(&s.lhs, &s.rhs, runs, &mut s.sums, move |x, y| {
                finish(x.wrapping_add(y))
            })?;
        }
        binary_output(ctx, shape, &s.sums)
    })
}

pub(crate) fn mul(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let Operands {
        a,
        b,
        qa,
        qb,
        qo,
        act_min,
        act_max,
    } = operands(ctx)?;
    // LiteRT's MUL computes the real multiplier in float (`input1 scale * input2 scale / output scale`, all
    // float) before widening it to double.
    let m = quantize_multiplier(f64::from(qa.scale0() * qb.scale0() / qo.scale0()));
    let scaler = Scaler::new(m);
    let (za, zb, zo) = (qa.zero_point0(), qb.zero_point0(), qo.zero_point0());
    let (shape, runs) = broadcast_runs(&a.shape, &b.shape)?;
    ctx.with_scratch(|s| {
        map_codes(a, &mut s.lhs, move |x| x - za)?;
        map_codes(b, &mut s.rhs, move |x| x - zb)?;
        combine(&s.lhs, &s.rhs, runs, &mut s.sums, move |x, y| {
            (scaler.apply(x.wrapping_mul(y)) + zo).clamp(act_min, act_max)
        })?;
        binary_output(ctx, shape, &s.sums)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::fixed_point::multiply_by_quantized_multiplier_smaller_than_one_exp;
    use proptest::prelude::*;

    #[test]
    fn runs_visit_the_broadcast_pairs_in_order() {
        let shapes: [(&[usize], &[usize]); 7] = [
            (&[2, 3, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[4]),
            (&[2, 3, 1], &[1, 3, 4]),
            (&[1, 16, 1], &[1, 16, 32]),
            (&[], &[5]),
            (&[3, 1], &[1]),
            (&[2, 0, 3], &[3]),
        ];
        for (a, b) in shapes {
            let (want_shape, pairs) = broadcast(a, b).unwrap();
            let x: Vec<i32> = (0..a.iter().product::<usize>() as i32).collect();
            let y: Vec<i32> = (0..b.iter().product::<usize>() as i32)
                .map(|v| v * 1000)
                .collect();
            let want: Vec<i32> = pairs.map(|(i, j)| x[i] + y[j]).collect();
            let (shape, runs) = broadcast_runs(a, b).unwrap();
            let mut got = vec![7];
            combine(&x, &y, runs, &mut got, |p, q| p + q).unwrap();
            assert_eq!((shape, got), (want_shape, want), "{a:?} with {b:?}");
        }
    }

    proptest! {
        #[test]
        fn rescaling_matches_the_reference_steps(
            x in -(1i32 << 28)..(1 << 28),
            real in 1e-7f64..0.999,
        ) {
            let m = quantize_multiplier(real);
            let t = Tensor::new(vec![1], TensorData::I32(vec![x])).unwrap();
            let mut got = Vec::new();
            rescaled(&t, 3, 2, m, &mut got).unwrap();
            let want = multiply_by_quantized_multiplier_smaller_than_one_exp(
                (x - 3).wrapping_mul(4),
                m.multiplier,
                m.shift,
            );
            prop_assert_eq!(got, vec![want]);
        }
    }
}
