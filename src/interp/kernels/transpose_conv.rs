//! TRANSPOSE_CONV on int8 (int32 bias) and int16 (int64 or int32 bias) activations with int8 weights:
//! LiteRT's `reference_integer_ops::TransposeConv` with the per-channel multipliers of
//! `PopulateConvolutionQuantizationParams` (`input_scale * weight_scale[c] / output_scale` in double).
//!
//! Inputs are `(output_shape, weights [O, KH, KW, I], input [N, H, W, I], bias [O]?)`. Each input code plus
//! the input offset times each weight is scattered into an int32 (int8) or int64/int32 (int16) scratch
//! buffer; then per output element: bias, requantization, output offset (int8 only), activation clamp.

use super::{bias_i64, channel_scales, codes, from_codes, type_range, OpCtx};
use crate::calibrate::ops::transpose_conv::{taps_by_output_channel, transpose_geometry};
use crate::interp::fixed_point::{
    activation_range, multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_i64,
    quantize_multiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The integer TRANSPOSE_CONV kernel (int8 and 16x8).
pub(crate) fn transpose_conv(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let fb::BuiltinOptionsT::TransposeConvOptions(o) = ctx.options() else {
        return Err("missing TransposeConvOptions".into());
    };
    let output_shape = ctx
        .input(0)?
        .data
        .to_i64()
        .ok_or("output_shape is not an integer tensor")?;
    let filter = ctx.input(1)?;
    let input = ctx.input(2)?;
    let g = transpose_geometry(
        &output_shape,
        &filter.shape,
        &input.shape,
        o.padding,
        [o.stride_h, o.stride_w],
    )?;
    let [oc, _, kw] = g.filter;
    let ic = g.input[3];
    let wide = input.tensor_type() == fb::TensorType::INT16;
    let in_q = ctx.input_quant(2)?;
    let out_q = ctx.output_quant(0)?;
    if wide && (in_q.zero_point0() != 0 || out_q.zero_point0() != 0) {
        return Err("int16 TRANSPOSE_CONV needs zero points 0".into());
    }
    let input_scale = f64::from(in_q.scale0());
    let output_scale = f64::from(out_q.scale0());
    let multipliers: Vec<_> = channel_scales(&ctx.input_quant(1)?, oc)?
        .iter()
        .map(|&s| quantize_multiplier(input_scale * f64::from(s) / output_scale))
        .collect();
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let output_offset = out_q.zero_point0();
    let (act_min, act_max) = activation_range(
        o.fused_activation_function,
        out_q.scale0(),
        output_offset,
        qmin,
        qmax,
    );
    let input_offset = -in_q.zero_point0();
    let x: Vec<i32> = codes(input)?.iter().map(|&v| v + input_offset).collect();
    let taps = taps_by_output_channel(&codes(filter)?, g.filter, ic);
    let bias_tensor = ctx.optional(3);
    let bias = bias_i64(bias_tensor, oc)?;
    // int16 with an int32 bias (quantized_bias_type INT32) accumulates in int32; otherwise int64.
    let acc64 = wide
        && !(o.quantized_bias_type == fb::TensorType::INT32
            && bias_tensor.is_some_and(|b| b.tensor_type() == fb::TensorType::INT32));
    let n = g.output_len();
    let mut out = Vec::with_capacity(n);
    if acc64 {
        let mut scratch = vec![0i64; n];
        g.scatter(|in_base, (ky, kx), out_base| {
            let dst = &mut scratch[out_base..out_base + oc];
            for (i, &v) in x[in_base..in_base + ic].iter().enumerate() {
                let t = ((ky * kw + kx) * ic + i) * oc;
                for (d, &w) in dst.iter_mut().zip(&taps[t..t + oc]) {
                    *d = d.wrapping_add(i64::from(v) * i64::from(w));
                }
            }
        });
        for (o, &acc) in scratch.iter().enumerate() {
            let c = o % oc.max(1);
            let scaled =
                multiply_by_quantized_multiplier_i64(acc.wrapping_add(bias[c]), multipliers[c]);
            out.push(scaled.clamp(act_min, act_max));
        }
    } else {
        let mut scratch = vec![0i32; n];
        g.scatter(|in_base, (ky, kx), out_base| {
            let dst = &mut scratch[out_base..out_base + oc];
            for (i, &v) in x[in_base..in_base + ic].iter().enumerate() {
                let t = ((ky * kw + kx) * ic + i) * oc;
                for (d, &w) in dst.iter_mut().zip(&taps[t..t + oc]) {
                    *d = d.wrapping_add(v.wrapping_mul(w));
                }
            }
        });
        let offset = if wide { 0 } else { output_offset };
        for (o, &acc) in scratch.iter().enumerate() {
            let c = o % oc.max(1);
            let acc = acc.wrapping_add(bias[c] as i32);
            let scaled = multiply_by_quantized_multiplier(acc, multipliers[c]).wrapping_add(offset);
            out.push(scaled.clamp(act_min, act_max));
        }
    }
    Ok(vec![from_codes(
        vec![g.input[0], g.out[0], g.out[1], oc],
        out_type,
        out,
    )?])
}
