//! CONV_2D and DEPTHWISE_CONV_2D on int8 activations and weights at speed: the filter packed once per model
//! ([`OpCtx::prepared`]), patches gathered into reused buffers and multiplied by [`gemm::product`] (conv), or
//! taps accumulated across channels (depthwise). The integers are those of [`super::conv`]'s reference
//! loops: the same wrapping int32 sums (in another order, which integer sums do not see), bias and
//! per-channel requantization.

use super::conv::{per_channel_multipliers, Geometry, Window};
use super::gemm::{self, PackedWeights};
use super::requantize::Requantizer;
use super::{bias_i64, type_range, OpCtx, Scratch};
use crate::interp::fixed_point::activation_range;
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// Output pixels whose patches one product gathers.
const PIXELS_PER_PRODUCT: usize = 256;

/// What a convolution derives from its filter, bias and quantization, once.
struct Plan<W> {
    weights: W,
    input_offset: i32,
    requantizer: Requantizer,
}

/// Whether the fast int8 path applies: int8 input, filter and output; one group for a convolution, the
/// output channels `depth_multiplier` times the input's for a depthwise one.
pub(super) fn applies(ctx: &OpCtx<'_>, g: &Geometry, w: &Window, depthwise: bool) -> bool {
    let int8 = |t: Option<&Tensor>| t.is_some_and(|t| t.tensor_type() == fb::TensorType::INT8);
    let shapes = if depthwise {
        g.out_c == g.in_c * w.depth_multiplier.max(1)
    } else {
        g.filter_in_c == g.in_c
    };
    int8(ctx.optional(0))
        && int8(ctx.optional(1))
        && ctx.output_type(0).ok() == Some(fb::TensorType::INT8)
        && shapes
}

fn make_plan<W>(ctx: &OpCtx<'_>, g: &Geometry, weights: W) -> Result<Plan<W>, String> {
    let out_q = ctx.output_quant(0)?;
    let activation = super::conv::window(ctx)?.activation;
    let (qmin, qmax) = type_range(fb::TensorType::INT8)?;
    let (act_min, act_max) =
        activation_range(activation, out_q.scale0(), out_q.zero_point0(), qmin, qmax);
    // int8 kernels add the bias to the int32 accumulator: modulo 2^32, as the reference sum wraps.
    let bias: Vec<i32> = bias_i64(ctx.optional(2), g.out_c)?
        .into_iter()
        .map(|b| b as i32)
        .collect();
    Ok(Plan {
        weights,
        input_offset: -ctx.input_quant(0)?.zero_point0(),
        requantizer: Requantizer::new(
            &bias,
            &per_channel_multipliers(ctx, g.out_c)?,
            out_q.zero_point0(),
            (act_min, act_max),
        ),
    })
}

fn int8_data(t: &Tensor) -> Result<&[i8], String> {
    match &t.data {
        TensorData::I8(v) => Ok(v),
        _ => Err("expected INT8 data".into()),
    }
}

/// `x + offset` as i16 into `out` (reused).
fn offset_activations(x: &[i8], offset: i32, out: &mut Vec<i16>) {
    out.clear();
    out.extend(x.iter().map(|&v| (i32::from(v) + offset) as i16));
}

/// CONV_2D, int8, one group.
pub(super) fn conv(
    ctx: &OpCtx<'_>,
    filter: &Tensor,
    g: &Geometry,
    w: &Window,
) -> Result<Tensor, String> {
    let depth = g.k_h * g.k_w * g.in_c;
    let plan = ctx.prepared(&[1, 2], || {
        let f = int8_data(filter)?;
        if f.len() != g.out_c * depth {
            return Err(format!("filter {:?} does not fit the input", filter.shape));
        }
        let packed = PackedWeights::new(g.out_c, depth, |c, k| i16::from(f[c * depth + k]));
        make_plan(ctx, g, packed)
    })?;
    let x = int8_data(ctx.input(0)?)?;
    if x.len() != g.batches * g.in_h * g.in_w * g.in_c {
        return Err("the input does not fill its shape".into());
    }
    let pixels = g.batches * g.out_h * g.out_w;
    let mut out = Vec::with_capacity(pixels * g.out_c);
    ctx.with_scratch(|s| -> Result<(), String> {
        offset_activations(x, plan.input_offset, &mut s.activations);
        let stride = plan.weights.row_stride();
        let width = plan.weights.padded_columns();
        let pointwise = g.k_h == 1
            && g.k_w == 1
            && w.stride == (1, 1)
            && g.pad_h == 0
            && g.pad_w == 0
            && stride == g.in_c;
        let Scratch {
            activations,
            patches,
            sums,
            ..
        } = s;
        if pointwise {
            gemm::product(activations, pixels, &plan.weights, sums).ok_or("short input")?;
            plan.requantizer.apply(sums, width, &mut out);
            return Ok(());
        }
        for first in (0..pixels).step_by(PIXELS_PER_PRODUCT) {
            let count = PIXELS_PER_PRODUCT.min(pixels - first);
            gather_patches(g, w, activations, first, count, stride, patches);
            gemm::product(patches, count, &plan.weights, sums).ok_or("short patches")?;
            plan.requantizer.apply(sums, width, &mut out);
        }
        Ok(())
    })?;
    Tensor::new(
        vec![g.batches, g.out_h, g.out_w, g.out_c],
        TensorData::I8(out),
    )
}

/// The patches of output pixels `first..first + count` (flat over batch, y, x), each `stride` values in
/// (ky, kx, channel) order, zero where a tap falls in the padding (the reference loop skips those taps).
fn gather_patches(
    g: &Geometry,
    w: &Window,
    x: &[i16],
    first: usize,
    count: usize,
    stride: usize,
    patches: &mut Vec<i16>,
) {
    patches.clear();
    patches.resize(count * stride, 0);
    for (i, patch) in patches.chunks_exact_mut(stride).enumerate() {
        let p = first + i;
        let (b, oy, ox) = (
            p / (g.out_h * g.out_w),
            (p / g.out_w) % g.out_h,
            p % g.out_w,
        );
        for (tap, base) in g.taps_inside(w, b, oy, ox) {
            let at = tap * g.in_c;
            patch[at..at + g.in_c].copy_from_slice(&x[base..base + g.in_c]);
        }
    }
}

/// DEPTHWISE_CONV_2D, int8.
pub(super) fn depthwise(
    ctx: &OpCtx<'_>,
    filter: &Tensor,
    g: &Geometry,
    w: &Window,
) -> Result<Tensor, String> {
    let taps = g.k_h * g.k_w;
    let plan = ctx.prepared(&[1, 2], || {
        let f = int8_data(filter)?;
        if f.len() != taps * g.out_c {
            return Err(format!("filter {:?} does not fit the input", filter.shape));
        }
        make_plan(
            ctx,
            g,
            f.iter().map(|&v| i16::from(v)).collect::<Vec<i16>>(),
        )
    })?;
    let x = int8_data(ctx.input(0)?)?;
    if x.len() != g.batches * g.in_h * g.in_w * g.in_c {
        return Err("the input does not fill its shape".into());
    }
    let pixels = g.batches * g.out_h * g.out_w;
    let mut out = Vec::with_capacity(pixels * g.out_c);
    ctx.with_scratch(|s| {
        offset_activations(x, plan.input_offset, &mut s.activations);
        depthwise_sums(g, w, &s.activations, &plan.weights, &mut s.sums);
        plan.requantizer.apply(&s.sums, g.out_c, &mut out);
    });
    Tensor::new(
        vec![g.batches, g.out_h, g.out_w, g.out_c],
        TensorData::I8(out),
    )
}

/// The depthwise sums of every output pixel (NHWC), AVX2 where the CPU has it.
fn depthwise_sums(g: &Geometry, w: &Window, x: &[i16], taps: &[i16], sums: &mut Vec<i32>) {
    sums.clear();
    sums.resize(g.batches * g.out_h * g.out_w * g.out_c, 0);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available on this CPU (checked on the line above).
            unsafe { depthwise_sums_avx2(g, w, x, taps, sums) };
            return;
        }
    }
    depthwise_loops(g, w, x, taps, sums);
}

/// [`depthwise_loops`] compiled for AVX2 (the compiler vectorizes the channel loops).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn depthwise_sums_avx2(g: &Geometry, w: &Window, x: &[i16], taps: &[i16], sums: &mut [i32]) {
    depthwise_loops(g, w, x, taps, sums);
}

/// Per output pixel, per in-bounds tap in (ky, kx) order: `sum[c] += x[c / multiplier] * tap[c]`.
#[inline(always)]
fn depthwise_loops(g: &Geometry, w: &Window, x: &[i16], taps: &[i16], sums: &mut [i32]) {
    let m = w.depth_multiplier.max(1);
    for (p, acc) in sums.chunks_exact_mut(g.out_c).enumerate() {
        let (b, oy, ox) = (
            p / (g.out_h * g.out_w),
            (p / g.out_w) % g.out_h,
            p % g.out_w,
        );
        for (k, base) in g.taps_inside(w, b, oy, ox) {
            let pixel = &x[base..base + g.in_c];
            let tap = &taps[k * g.out_c..][..g.out_c];
            if m == 1 {
                for ((s, &v), &t) in acc.iter_mut().zip(pixel).zip(tap) {
                    *s = s.wrapping_add(i32::from(v) * i32::from(t));
                }
            } else {
                for (c, (s, &t)) in acc.iter_mut().zip(tap).enumerate() {
                    *s = s.wrapping_add(i32::from(pixel[c / m]) * i32::from(t));
                }
            }
        }
    }
}
