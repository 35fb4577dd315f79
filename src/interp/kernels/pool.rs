//! AVERAGE_POOL_2D and MAX_POOL_2D on int8 / int16 (`reference_integer_ops::AveragePool`, `MaxPool`).

use super::{codes, from_codes, padding, type_range, OpCtx};
use crate::interp::fixed_point::activation_range;
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

pub(crate) fn pool(ctx: &OpCtx<'_>, max: bool) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let fb::BuiltinOptionsT::Pool2DOptions(o) = ctx.options() else {
        return Err("missing pooling options".into());
    };
    let u = |v: i32| usize::try_from(v).map_err(|_| format!("negative pooling parameter {v}"));
    let (stride_h, stride_w, f_h, f_w) = (
        u(o.stride_h)?,
        u(o.stride_w)?,
        u(o.filter_height)?,
        u(o.filter_width)?,
    );
    if input.shape.len() != 4 {
        return Err(format!("input has shape {:?}, expected 4-D", input.shape));
    }
    let (batches, in_h, in_w, depth) = (
        input.shape[0],
        input.shape[1],
        input.shape[2],
        input.shape[3],
    );
    let (out_h, pad_h) = padding(o.padding, in_h, f_h, stride_h, 1)?;
    let (out_w, pad_w) = padding(o.padding, in_w, f_w, stride_w, 1)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (act_min, act_max) = activation_range(
        o.fused_activation_function,
        out_q.scale0(),
        out_q.zero_point0(),
        qmin,
        qmax,
    );
    let x = codes(input)?;
    let mut out = Vec::with_capacity(batches * out_h * out_w * depth);
    for b in 0..batches {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let y0 = (oy * stride_h) as i64 - pad_h as i64;
                let x0 = (ox * stride_w) as i64 - pad_w as i64;
                let ys = (y0.max(0) as usize)..((y0 + f_h as i64).min(in_h as i64).max(0) as usize);
                let xs = (x0.max(0) as usize)..((x0 + f_w as i64).min(in_w as i64).max(0) as usize);
                for c in 0..depth {
                    let mut acc: i64 = if max { i64::MIN } else { 0 };
                    let mut count: i64 = 0;
                    for iy in ys.clone() {
                        for ix in xs.clone() {
                            let v = i64::from(x[((b * in_h + iy) * in_w + ix) * depth + c]);
                            acc = if max { acc.max(v) } else { acc + v };
                            count += 1;
                        }
                    }
                    if count == 0 {
                        return Err("a pooling window covers no input".into());
                    }
                    let v = if max {
                        acc
                    } else if acc > 0 {
                        // Round half away from zero.
                        (acc + count / 2) / count
                    } else {
                        (acc - count / 2) / count
                    };
                    out.push((v as i32).clamp(act_min, act_max));
                }
            }
        }
    }
    Ok(vec![from_codes(
        vec![batches, out_h, out_w, depth],
        out_type,
        out,
    )?])
}
