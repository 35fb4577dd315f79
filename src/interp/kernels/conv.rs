//! CONV_2D and DEPTHWISE_CONV_2D on int8 (int32 bias) and int16 (int64 bias) activations with int8 weights,
//! per-channel requantization (`reference_integer_ops::ConvPerChannel`, `DepthwiseConvPerChannel`).

use super::{bias_i64, channel_scales, codes, dim, from_codes, padding, type_range, OpCtx};
use crate::interp::fixed_point::{
    activation_range, multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_i64,
    quantize_multiplier, QuantizedMultiplier,
};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// The window geometry shared by convolutions: strides, dilations, padding, fused activation.
pub(super) struct Window {
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub padding: fb::Padding,
    pub activation: fb::ActivationFunctionType,
    pub depth_multiplier: usize,
}

pub(super) fn window(ctx: &OpCtx<'_>) -> Result<Window, String> {
    let u = |v: i32| usize::try_from(v).map_err(|_| format!("negative stride or dilation {v}"));
    match ctx.options() {
        fb::BuiltinOptionsT::Conv2DOptions(o) => Ok(Window {
            stride: (u(o.stride_h)?, u(o.stride_w)?),
            dilation: (u(o.dilation_h_factor)?, u(o.dilation_w_factor)?),
            padding: o.padding,
            activation: o.fused_activation_function,
            depth_multiplier: 1,
        }),
        fb::BuiltinOptionsT::DepthwiseConv2DOptions(o) => Ok(Window {
            stride: (u(o.stride_h)?, u(o.stride_w)?),
            dilation: (u(o.dilation_h_factor)?, u(o.dilation_w_factor)?),
            padding: o.padding,
            activation: o.fused_activation_function,
            depth_multiplier: u(o.depth_multiplier)?,
        }),
        _ => Err("missing convolution options".into()),
    }
}

/// Shapes of a convolution: input NHWC, filter [O, KH, KW, I] (conv) or [1, KH, KW, O] (depthwise).
pub(super) struct Geometry {
    pub batches: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    /// Input channels each filter reads (conv: the filter's last dim; grouped when less than `in_c`).
    pub filter_in_c: usize,
}

impl Geometry {
    /// The taps of output pixel `(b, oy, ox)` that fall inside the input, in (ky, kx) order: each tap's index
    /// `ky * k_w + kx` and the offset of its input pixel's first channel in the NHWC input.
    #[inline(always)]
    pub fn taps_inside<'a>(
        &'a self,
        w: &'a Window,
        b: usize,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        let y0 = (oy * w.stride.0) as i64 - self.pad_h as i64;
        let x0 = (ox * w.stride.1) as i64 - self.pad_w as i64;
        (0..self.k_h).flat_map(move |ky| {
            let iy = y0 + (ky * w.dilation.0) as i64;
            let row = (iy >= 0 && (iy as usize) < self.in_h).then_some(iy as usize);
            (0..self.k_w).filter_map(move |kx| {
                let iy = row?;
                let ix = x0 + (kx * w.dilation.1) as i64;
                (ix >= 0 && (ix as usize) < self.in_w).then(|| {
                    (
                        ky * self.k_w + kx,
                        ((b * self.in_h + iy) * self.in_w + ix as usize) * self.in_c,
                    )
                })
            })
        })
    }
}

pub(super) fn geometry(
    input: &Tensor,
    filter: &Tensor,
    w: &Window,
    depthwise: bool,
) -> Result<Geometry, String> {
    if input.shape.len() != 4 || filter.shape.len() != 4 {
        return Err(format!(
            "input {:?} and filter {:?} must be 4-D",
            input.shape, filter.shape
        ));
    }
    let (batches, in_h, in_w, in_c) = (
        input.shape[0],
        input.shape[1],
        input.shape[2],
        input.shape[3],
    );
    let (k_h, k_w) = (
        dim(&filter.shape, 1, "filter")?,
        dim(&filter.shape, 2, "filter")?,
    );
    let (out_c, filter_in_c) = if depthwise {
        (filter.shape[3], 1)
    } else {
        (filter.shape[0], filter.shape[3])
    };
    if depthwise {
        if in_c == 0 || out_c % in_c != 0 {
            return Err(format!(
                "depthwise output channels {out_c} are not a multiple of input channels {in_c}"
            ));
        }
    } else if filter_in_c == 0 || in_c % filter_in_c != 0 || out_c % (in_c / filter_in_c) != 0 {
        return Err(format!(
            "input channels {in_c} do not fit filter channels {filter_in_c}"
        ));
    }
    let (out_h, pad_h) = padding(w.padding, in_h, k_h, w.stride.0, w.dilation.0)?;
    let (out_w, pad_w) = padding(w.padding, in_w, k_w, w.stride.1, w.dilation.1)?;
    Ok(Geometry {
        batches,
        in_h,
        in_w,
        in_c,
        k_h,
        k_w,
        out_h,
        out_w,
        out_c,
        pad_h,
        pad_w,
        filter_in_c,
    })
}

/// Visits every (batch, out_y, out_x, out_channel) and the input/filter index pairs that contribute to it.
/// `f(out_index, pairs)` where pairs yields (input flat index, filter flat index).
pub(super) fn for_each_output(
    g: &Geometry,
    w: &Window,
    depthwise: bool,
    mut f: impl FnMut(usize, usize, &mut dyn Iterator<Item = (usize, usize)>),
) {
    let groups_out = if depthwise {
        1
    } else {
        g.out_c / (g.in_c / g.filter_in_c)
    };
    for b in 0..g.batches {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for oc in 0..g.out_c {
                    let out_index = ((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc;
                    let y0 = (oy * w.stride.0) as i64 - g.pad_h as i64;
                    let x0 = (ox * w.stride.1) as i64 - g.pad_w as i64;
                    let mut pairs = (0..g.k_h)
                        .flat_map(move |ky| (0..g.k_w).map(move |kx| (ky, kx)))
                        .flat_map(move |(ky, kx)| {
                            let iy = y0 + (ky * w.dilation.0) as i64;
                            let ix = x0 + (kx * w.dilation.1) as i64;
                            let inside = iy >= 0
                                && ix >= 0
                                && (iy as usize) < g.in_h
                                && (ix as usize) < g.in_w;
                            let base = if inside {
                                Some(((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c)
                            } else {
                                None
                            };
                            let channels = if depthwise { 1 } else { g.filter_in_c };
                            (0..channels).filter_map(move |ic| {
                                let base = base?;
                                if depthwise {
                                    let in_ch = oc / w.depth_multiplier.max(1);
                                    Some((base + in_ch, (ky * g.k_w + kx) * g.out_c + oc))
                                } else {
                                    let group = oc / groups_out.max(1);
                                    let in_ch = group * g.filter_in_c + ic;
                                    Some((
                                        base + in_ch,
                                        ((oc * g.k_h + ky) * g.k_w + kx) * g.filter_in_c + ic,
                                    ))
                                }
                            })
                        });
                    f(out_index, oc, &mut pairs);
                }
            }
        }
    }
}

pub(crate) fn conv(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    quantized_conv(ctx, false)
}

pub(crate) fn depthwise(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    quantized_conv(ctx, true)
}

fn quantized_conv(ctx: &OpCtx<'_>, depthwise: bool) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let w = window(ctx)?;
    let g = geometry(input, filter, &w, depthwise)?;
    if super::conv_int8::applies(ctx, &g, &w, depthwise) {
        let out = if depthwise {
            super::conv_int8::depthwise(ctx, filter, &g, &w)?
        } else {
            super::conv_int8::conv(ctx, filter, &g, &w)?
        };
        return Ok(vec![out]);
    }
    let multipliers = per_channel_multipliers(ctx, g.out_c)?;
    let out_q = ctx.output_quant(0)?;
    let out_type = ctx.output_type(0)?;
    let (qmin, qmax) = type_range(out_type)?;
    let (act_min, act_max) = activation_range(
        w.activation,
        out_q.scale0(),
        out_q.zero_point0(),
        qmin,
        qmax,
    );
    let x = codes(input)?;
    let f = codes(filter)?;
    let bias = bias_i64(ctx.optional(2), g.out_c)?;
    let input_offset = -ctx.input_quant(0)?.zero_point0();
    let output_offset = out_q.zero_point0();
    let wide = input.tensor_type() == fb::TensorType::INT16;
    // Offsets applied once: every product is filter * (input + input_offset), as in the reference kernel.
    let x: Vec<i32> = x.iter().map(|&v| v + input_offset).collect();
    let acc = accumulate(&g, &w, depthwise, &x, &f, wide).ok_or_else(|| {
        format!(
            "filter {:?} does not fit input {:?}",
            filter.shape, input.shape
        )
    })?;
    let out: Vec<i32> = acc
        .iter()
        .enumerate()
        .map(|(o, &acc)| {
            let oc = o % g.out_c.max(1);
            let acc = acc + bias[oc];
            let scaled = if wide {
                multiply_by_quantized_multiplier_i64(acc, multipliers[oc])
            } else {
                // int8 kernels accumulate in int32.
                multiply_by_quantized_multiplier(acc as i32, multipliers[oc]) + output_offset
            };
            scaled.clamp(act_min, act_max)
        })
        .collect();
    Ok(vec![from_codes(
        vec![g.batches, g.out_h, g.out_w, g.out_c],
        out_type,
        out,
    )?])
}

/// Per-channel output multipliers: `input_scale * filter_scale[c] / output_scale` in double
/// (`PopulateConvolutionQuantizationParams`).
pub(super) fn per_channel_multipliers(
    ctx: &OpCtx<'_>,
    channels: usize,
) -> Result<Vec<QuantizedMultiplier>, String> {
    let input_scale = f64::from(ctx.input_quant(0)?.scale0());
    let output_scale = f64::from(ctx.output_quant(0)?.scale0());
    let filter_scales = channel_scales(&ctx.input_quant(1)?, channels)?;
    Ok(filter_scales
        .iter()
        .map(|&s| quantize_multiplier(input_scale * f64::from(s) / output_scale))
        .collect())
}

/// The sums of filter * offset input for every output (NHWC order), without bias. int8 sums wrap in i32 as
/// the reference kernel's int32 accumulator would; int16 sums are exact in i64. `None` when an index falls
/// outside the input or filter (shapes that do not fit).
fn accumulate(
    g: &Geometry,
    w: &Window,
    depthwise: bool,
    x: &[i32],
    f: &[i32],
    wide: bool,
) -> Option<Vec<i64>> {
    let mut out = vec![0i64; g.batches * g.out_h * g.out_w * g.out_c];
    let groups_out = if depthwise {
        1
    } else {
        (g.out_c / (g.in_c / g.filter_in_c.max(1)).max(1)).max(1)
    };
    let dot = |a: &[i32], b: &[i32]| -> i64 {
        if wide {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| i64::from(p) * i64::from(q))
                .sum()
        } else {
            i64::from(
                a.iter()
                    .zip(b)
                    .fold(0i32, |s, (&p, &q)| s.wrapping_add(p.wrapping_mul(q))),
            )
        }
    };
    let mut sums = vec![0i64; g.out_c];
    for b in 0..g.batches {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                sums.iter_mut().for_each(|s| *s = 0);
                for (tap, base) in g.taps_inside(w, b, oy, ox) {
                    let (ky, kx) = (tap / g.k_w, tap % g.k_w);
                    if depthwise {
                        let taps = f.get(tap * g.out_c..(tap + 1) * g.out_c)?;
                        let pixel = x.get(base..base + g.in_c)?;
                        let m = w.depth_multiplier.max(1);
                        for (oc, (s, &t)) in sums.iter_mut().zip(taps).enumerate() {
                            let v = *pixel.get(oc / m)?;
                            *s = if wide {
                                *s + i64::from(v) * i64::from(t)
                            } else {
                                i64::from((*s as i32).wrapping_add(v.wrapping_mul(t)))
                            };
                        }
                    } else {
                        for (oc, s) in sums.iter_mut().enumerate() {
                            let ch0 = (oc / groups_out) * g.filter_in_c;
                            let xs = x.get(base + ch0..base + ch0 + g.filter_in_c)?;
                            let fb = ((oc * g.k_h + ky) * g.k_w + kx) * g.filter_in_c;
                            let fs = f.get(fb..fb + g.filter_in_c)?;
                            let d = dot(xs, fs);
                            *s = if wide {
                                *s + d
                            } else {
                                i64::from((*s as i32).wrapping_add(d as i32))
                            };
                        }
                    }
                }
                let o = ((b * g.out_h + oy) * g.out_w + ox) * g.out_c;
                out.get_mut(o..o + g.out_c)?.copy_from_slice(&sums);
            }
        }
    }
    Some(out)
}
