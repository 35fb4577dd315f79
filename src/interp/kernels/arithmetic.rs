//! ADD, SUB and MUL on int8 / int16 with broadcasting (`reference_ops::Add`/`Sub` general-scale paths,
//! `reference_integer_ops::Mul`).

use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    activation_range, multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier,
    QuantizedMultiplier,
};
use crate::interp::tensor::{QuantParams, Tensor};
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
    out_type: fb::TensorType,
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
        out_type,
        act_min,
        act_max,
    })
}

/// Each element of an input of ADD, SUB or SQUARED_DIFFERENCE on the common scale: the offset code shifted
/// left, times the input's multiplier (`MultiplyByQuantizedMultiplierSmallerThanOneExp`). Done once per
/// input element, so a broadcast input is not rescaled again for every output element that reads it.
pub(super) fn rescaled(
    t: &Tensor,
    zero_point: i32,
    left_shift: i32,
    m: QuantizedMultiplier,
) -> Result<Vec<i32>, String> {
    Ok(codes(t)?
        .into_iter()
        .map(|x| {
            multiply_by_quantized_multiplier_smaller_than_one_exp(
                (x - zero_point).wrapping_mul(1 << left_shift),
                m.multiplier,
                m.shift,
            )
        })
        .collect())
}

pub(crate) fn add_sub(ctx: &OpCtx<'_>, subtract: bool) -> Result<Vec<Tensor>, String> {
    let Operands {
        a,
        b,
        qa,
        qb,
        qo,
        out_type,
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
    let sa = rescaled(a, qa.zero_point0(), left_shift, ma)?;
    let sb = rescaled(b, qb.zero_point0(), left_shift, mb)?;
    let (shape, pairs) = broadcast(&a.shape, &b.shape)?;
    let zo = qo.zero_point0();
    let out = pairs
        .map(|(i, j)| {
            let (sa, sb) = (sa[i], sb[j]);
            let raw = if subtract {
                sa.wrapping_sub(sb)
            } else {
                sa.wrapping_add(sb)
            };
            (multiply_by_quantized_multiplier_smaller_than_one_exp(raw, mo.multiplier, mo.shift)
                + zo)
                .clamp(act_min, act_max)
        })
        .collect();
    Ok(vec![from_codes(shape, out_type, out)?])
}

pub(crate) fn mul(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let Operands {
        a,
        b,
        qa,
        qb,
        qo,
        out_type,
        act_min,
        act_max,
    } = operands(ctx)?;
    // LiteRT's MUL computes the real multiplier in float (`input1 scale * input2 scale / output scale`, all
    // float) before widening it to double.
    let m = quantize_multiplier(f64::from(qa.scale0() * qb.scale0() / qo.scale0()));
    let (xa, xb) = (codes(a)?, codes(b)?);
    let (shape, pairs) = broadcast(&a.shape, &b.shape)?;
    let (za, zb, zo) = (qa.zero_point0(), qb.zero_point0(), qo.zero_point0());
    let out = pairs
        .map(|(i, j)| {
            let product = (xa[i] - za).wrapping_mul(xb[j] - zb);
            (multiply_by_quantized_multiplier(product, m) + zo).clamp(act_min, act_max)
        })
        .collect();
    Ok(vec![from_codes(shape, out_type, out)?])
}
