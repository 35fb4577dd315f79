//! ADD, SUB and MUL on int8 / int16 with broadcasting (`reference_ops::Add`/`Sub` general-scale paths,
//! `reference_integer_ops::Mul`).

use super::{codes, from_codes, type_range, OpCtx};
use crate::interp::fixed_point::{
    activation_range, multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier,
};
use crate::interp::tensor::{QuantParams, Tensor};
use crate::tflite::fb;

/// Output shape, then per output element the flat index into each input.
type Broadcast = (Vec<usize>, Vec<usize>, Vec<usize>);

/// The broadcast output shape and, for each output element, the flat index into each input.
pub(super) fn broadcast(a: &[usize], b: &[usize]) -> Result<Broadcast, String> {
    if a == b {
        // No broadcasting (residual adds): both inputs are read in order.
        let identity: Vec<usize> = (0..a.iter().product()).collect();
        return Ok((a.to_vec(), identity.clone(), identity));
    }
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
    let (sa, sb) = (strides(&pa), strides(&pb));
    let total: usize = out.iter().product();
    let mut ia = Vec::with_capacity(total);
    let mut ib = Vec::with_capacity(total);
    let mut index = vec![0usize; rank];
    for _ in 0..total {
        ia.push(index.iter().zip(&sa).map(|(i, s)| i * s).sum());
        ib.push(index.iter().zip(&sb).map(|(i, s)| i * s).sum());
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < out[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok((out, ia, ib))
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
    let (xa, xb) = (codes(a)?, codes(b)?);
    let (shape, ia, ib) = broadcast(&a.shape, &b.shape)?;
    let (za, zb, zo) = (qa.zero_point0(), qb.zero_point0(), qo.zero_point0());
    let scale_in = |x: i32, zp: i32, m: crate::interp::fixed_point::QuantizedMultiplier| {
        multiply_by_quantized_multiplier_smaller_than_one_exp(
            (x - zp).wrapping_mul(1 << left_shift),
            m.multiplier,
            m.shift,
        )
    };
    let out = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| {
            let sa = scale_in(xa[i], za, ma);
            let sb = scale_in(xb[j], zb, mb);
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
    let (shape, ia, ib) = broadcast(&a.shape, &b.shape)?;
    let (za, zb, zo) = (qa.zero_point0(), qb.zero_point0(), qo.zero_point0());
    let out = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| {
            let product = (xa[i] - za).wrapping_mul(xb[j] - zb);
            (multiply_by_quantized_multiplier(product, m) + zo).clamp(act_min, act_max)
        })
        .collect();
    Ok(vec![from_codes(shape, out_type, out)?])
}
