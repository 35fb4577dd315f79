//! Layout ops on quantized tensors: RESHAPE, SQUEEZE (same codes, new shape), CONCATENATION (requantizing
//! inputs whose parameters differ from the output's), PAD (filling with the zero point).

use super::{codes, from_codes, OpCtx};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The declared output shape, which must hold the input's elements.
pub(crate) fn reshape(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let shape = ctx.output_shape(0)?;
    if shape.iter().product::<usize>() != input.len() {
        return Err(format!(
            "the declared output shape {shape:?} does not hold the input's {} elements",
            input.len()
        ));
    }
    Ok(vec![Tensor::new(shape, input.data.clone())?])
}

pub(crate) fn concatenation(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let fb::BuiltinOptionsT::ConcatenationOptions(o) = ctx.options() else {
        return Err("missing concatenation options".into());
    };
    let first = ctx.input(0)?;
    let rank = first.shape.len() as i64;
    let axis = if o.axis < 0 {
        i64::from(o.axis) + rank
    } else {
        i64::from(o.axis)
    };
    if axis < 0 || axis >= rank {
        return Err(format!("axis {} is out of range for rank {rank}", o.axis));
    }
    let axis = axis as usize;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = super::type_range(out_type)?;
    let outer: usize = first.shape[..axis].iter().product();
    let mut parts = Vec::new();
    let mut total_axis = 0;
    for i in 0..ctx.inputs.len() {
        let t = ctx.input(i)?;
        if t.shape.len() != first.shape.len()
            || t.shape
                .iter()
                .enumerate()
                .any(|(d, &n)| d != axis && n != first.shape[d])
        {
            return Err(format!(
                "input {i} has shape {:?}, incompatible with {:?}",
                t.shape, first.shape
            ));
        }
        let q = ctx.input_quant(i)?;
        let x = codes(t)?;
        // Inputs with other parameters are requantized in float (`ConcatenationWithScaling`).
        let x = if q.scale0() == out_q.scale0() && q.zero_point0() == out_q.zero_point0() {
            x
        } else {
            let scale = q.scale0() / out_q.scale0();
            let bias = -(q.zero_point0() as f32) * scale;
            x.into_iter()
                .map(|v| {
                    ((v as f32 * scale + bias).round() as i32 + out_q.zero_point0())
                        .clamp(qmin, qmax)
                })
                .collect()
        };
        let inner: usize = t.shape[axis..].iter().product();
        total_axis += t.shape[axis];
        parts.push((x, inner));
    }
    let mut out = Vec::new();
    for o in 0..outer {
        for (x, inner) in &parts {
            out.extend_from_slice(&x[o * inner..(o + 1) * inner]);
        }
    }
    let mut shape = first.shape.clone();
    shape[axis] = total_axis;
    Ok(vec![from_codes(shape, out_type, out)?])
}

pub(crate) fn pad(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let pads = ctx
        .input(1)?
        .data
        .to_i64()
        .ok_or("paddings are not integers")?;
    let rank = input.shape.len();
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Err(format!("paddings {pads:?} do not fit rank {rank}"));
    }
    let out_type = ctx.output_type(0)?;
    let fill = match ctx.optional(2) {
        Some(v) => *codes(v)?.first().ok_or("empty pad value")?,
        None => ctx.output_quant(0).map(|q| q.zero_point0()).unwrap_or(0),
    };
    let shape: Vec<usize> = (0..rank)
        .map(|d| input.shape[d] + pads[2 * d] as usize + pads[2 * d + 1] as usize)
        .collect();
    let total: usize = shape.iter().product();
    let x = codes(input)?;
    let mut out = vec![fill; total];
    let mut index = vec![0usize; rank];
    for &v in &x {
        let mut o = 0;
        for d in 0..rank {
            o = o * shape[d] + index[d] + pads[2 * d] as usize;
        }
        out[o] = v;
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < input.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(vec![from_codes(shape, out_type, out)?])
}
