//! CONV_2D and DEPTHWISE_CONV_2D on NHWC float tensors.
//!
//! CONV_2D gathers each output pixel's receptive field into a row (im2col) and multiplies by the OHWI filter
//! seen as an `[out_channels, kh*kw*in_channels]` matrix; 1x1 stride-1 convolutions skip the gather.
//! Depthwise convolutions are a direct loop whose inner step runs over contiguous channels.

use super::kernel_args::{array, bias_values, dims4, flat, missing_options, row_major};
use super::matmul::{
    add_bias_and_activate, matmul_slices_weights_t, matmul_transposed, matmul_weights_t,
    transpose_weights, DOT_ROWS,
};
use super::window::Window;
use crate::calibrate::vector::wide_vectors;
use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::{s, ArrayView2, ArrayViewMut2};

fn shape_error(e: ndarray::ShapeError) -> KernelError {
    KernelError::Invalid(format!("internal: {e}"))
}

pub(crate) fn conv_2d(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_conv_2_doptions()
        .ok_or_else(|| missing_options("Conv2DOptions"))?;
    let input = row_major(ctx.input_f32(0)?);
    let filter = row_major(ctx.input_f32(1)?);
    let [n, h, w, c] = dims4(input.shape(), "input")?;
    let [oc, kh, kw, fc] = dims4(filter.shape(), "filter")?;
    // A filter with fewer input channels than the input is a grouped convolution (TFLite >= 2.9).
    if fc == 0 || c % fc != 0 || oc % (c / fc) != 0 {
        return Err(KernelError::Invalid(format!(
            "filter {:?} does not fit input {:?} (input channels must be a multiple of the filter's, \
             output channels of the group count)",
            filter.shape(),
            input.shape()
        )));
    }
    let groups = c / fc;
    let group_oc = oc / groups;
    let bias = bias_values(ctx, 2, oc)?;
    let wy = Window::new(o.padding, h, kh, o.stride_h, o.dilation_h_factor)?;
    let wx = Window::new(o.padding, w, kw, o.stride_w, o.dilation_w_factor)?;
    let rows = wy.out * wx.out;
    let k = kh * kw * fc;
    let x = flat(&input)?;
    let f = flat(&filter)?;
    let bias = match &bias {
        Some(b) => Some(flat(b)?),
        None => None,
    };
    let mut out = vec![0.0f32; n * rows * oc];
    let weights = ArrayView2::from_shape((oc, k), f).map_err(shape_error)?;

    let pointwise = kh == 1
        && kw == 1
        && wy.stride == 1
        && wx.stride == 1
        && wy.pad == 0
        && wx.pad == 0
        && groups == 1;
    if groups == 1 && c <= DIRECT_MAX_CHANNELS && k <= DIRECT_MAX_DEPTH && rows > 0 {
        // A receptive field of so few channels makes im2col rows of a few floats per copy and a GEMM of
        // small depth: accumulate each tap into all output channels directly instead (a large kernel, such
        // as a vision transformer's patch embedding, re-reads all its taps per pixel: im2col below).
        let taps = transpose_weights(f, oc, k);
        if oc % LANES == 0 && taps.iter().all(|t| t.is_finite()) {
            // Finite weights: a tap on the zero padding adds exactly +-0 to a sum that is never -0, so
            // summing over a zero-padded copy gives the same bits as skipping the tap, without a bounds
            // test per pixel and tap.
            let (padded, [ph, pw]) = zero_padded(x, [n, h, w, c], [kh, kw], &wy, &wx);
            padded_accumulate(
                &padded,
                [n, ph, pw, c],
                &taps,
                [kh, kw, oc],
                &wy,
                &wx,
                &mut out,
            );
        } else {
            direct_accumulate(x, [n, h, w, c], &taps, [kh, kw, oc], &wy, &wx, &mut out);
        }
    } else if pointwise && n * rows <= DOT_ROWS {
        // So few pixels (late feature maps) that transposing the filter would cost more than the product.
        matmul_slices_weights_t(x, f, k, &mut out).map_err(shape_error)?;
    } else if pointwise {
        // Every input pixel is one output pixel: the input already is the im2col matrix.
        let wt = transpose_weights(f, oc, k);
        matmul_transposed(x, &wt, k, oc, &mut out);
    } else if groups == 1 && rows > 0 {
        let wt = transpose_weights(f, oc, k);
        let mut cols = vec![0.0f32; rows * k];
        for b in 0..n {
            let image = &x[b * h * w * c..(b + 1) * h * w * c];
            im2col(image, [h, w, c], 0, c, &wy, &wx, &mut cols);
            matmul_transposed(
                &cols,
                &wt,
                k,
                oc,
                &mut out[b * rows * oc..(b + 1) * rows * oc],
            );
        }
    } else if rows > 0 {
        let mut cols = vec![0.0f32; rows * k];
        for b in 0..n {
            let image = &x[b * h * w * c..(b + 1) * h * w * c];
            let dst_rows = &mut out[b * rows * oc..(b + 1) * rows * oc];
            for g in 0..groups {
                im2col(image, [h, w, c], g * fc, fc, &wy, &wx, &mut cols);
                let lhs = ArrayView2::from_shape((rows, k), &cols[..]).map_err(shape_error)?;
                let rhs = weights.slice(s![g * group_oc..(g + 1) * group_oc, ..]);
                let mut dst = ArrayViewMut2::from_shape((rows, oc), &mut dst_rows[..])
                    .map_err(shape_error)?;
                let mut dst = dst.slice_mut(s![.., g * group_oc..(g + 1) * group_oc]);
                matmul_weights_t(&lhs, &rhs, &mut dst);
            }
        }
    }
    // Bias after the sum, as TFLite adds it.
    add_bias_and_activate(&mut out, oc, bias, o.fused_activation_function);
    Ok(vec![Value::F32(array(&[n, wy.out, wx.out, oc], out)?)])
}

/// At most this many input channels (ungrouped): CONV_2D accumulates taps directly instead of im2col + GEMM.
const DIRECT_MAX_CHANNELS: usize = 4;
/// ... and at most this many taps times channels (a 5x5 RGB kernel is 75: 64 keeps 3x3 and 4x4 direct).
const DIRECT_MAX_DEPTH: usize = 64;

wide_vectors! {
    /// Direct convolution: every output pixel adds `input * taps[tap]` for each tap inside the image, all
    /// output channels at once (`taps` is the filter as `[kh, kw, c, oc]`).
    fn direct_accumulate(
        x: &[f32],
        input: [usize; 4],
        taps: &[f32],
        filter: [usize; 3],
        wy: &Window,
        wx: &Window,
        out: &mut [f32],
    ) => direct_loops;
}

#[inline(always)]
fn direct_loops(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    taps: &[f32],
    [kh, kw, oc]: [usize; 3],
    wy: &Window,
    wx: &Window,
    out: &mut [f32],
) {
    for b in 0..n {
        for oy in 0..wy.out {
            let mut ox = 0;
            // One or two registers of output channels per pixel: a pixel alone would be one chain of
            // dependent adds, so neighbouring pixels are summed together (each in its own order).
            while (oc == 8 || oc == 16) && ox + PIXELS <= wx.out {
                let field = Field {
                    x,
                    image: [b, h, w, c],
                    taps,
                    kernel: [kh, kw, oc],
                    at: (oy, ox),
                };
                let row = &mut out[((b * wy.out + oy) * wx.out + ox) * oc..][..PIXELS * oc];
                if oc == 8 {
                    field.accumulate_pixels::<8>(row, wy, wx);
                } else {
                    field.accumulate_pixels::<16>(row, wy, wx);
                }
                ox += PIXELS;
            }
            for ox in ox..wx.out {
                let pixel_out = &mut out[((b * wy.out + oy) * wx.out + ox) * oc..][..oc];
                // Output channels in blocks whose sums stay in registers across all taps; each sum still
                // adds its taps in (ky, kx, channel) order, so the blocking changes speed, not bits.
                let field = Field {
                    x,
                    image: [b, h, w, c],
                    taps,
                    kernel: [kh, kw, oc],
                    at: (oy, ox),
                };
                let mut first = 0;
                while first < oc {
                    let acc = &mut pixel_out[first..];
                    first += match acc.len() {
                        32.. => field.accumulate::<32>(acc, first, wy, wx),
                        16.. => field.accumulate::<16>(acc, first, wy, wx),
                        8.. => field.accumulate::<8>(acc, first, wy, wx),
                        _ => field.accumulate_rest(acc, first, wy, wx),
                    };
                }
            }
        }
    }
}

/// Output channels one register holds (AVX): the unit of the padded direct convolution.
const LANES: usize = 8;

/// Output pixels the padded direct convolution sums at once, per register of channels: enough independent
/// chains of adds to hide their latency.
const PADDED_PIXELS: usize = 8;

/// The input with the convolution's implicit zero padding made explicit: every tap of every output pixel
/// falls inside it. Returns the padded image and its height and width.
fn zero_padded(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    [kh, kw]: [usize; 2],
    wy: &Window,
    wx: &Window,
) -> (Vec<f32>, [usize; 2]) {
    let extent =
        |win: &Window, k: usize| (win.out.max(1) - 1) * win.stride + (k - 1) * win.dilation + 1;
    let (ph, pw) = (extent(wy, kh), extent(wx, kw));
    let mut padded = vec![0.0f32; n * ph * pw * c];
    for b in 0..n {
        for py in 0..ph {
            let Some(iy) = py.checked_sub(wy.pad).filter(|&iy| iy < h) else {
                continue;
            };
            // The padded columns that hold input columns: from `pad`, at most the input's width.
            let first = wx.pad.min(pw);
            let cols = w.min(pw - first);
            let src = &x[((b * h + iy) * w) * c..][..cols * c];
            padded[((b * ph + py) * pw + first) * c..][..cols * c].copy_from_slice(src);
        }
    }
    (padded, [ph, pw])
}

/// Direct convolution over a zero-padded input (`x` is `[n, ph, pw, c]`, every tap inside): each sum adds
/// its taps in (ky, kx, channel) order like [`direct_accumulate`]; `oc` is a multiple of [`LANES`].
fn padded_accumulate(
    x: &[f32],
    padded: [usize; 4],
    taps: &[f32],
    filter: [usize; 3],
    wy: &Window,
    wx: &Window,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available on this CPU (checked on the line above).
            unsafe { padded_loops_avx(x, padded, taps, filter, wy, wx, out) };
            return;
        }
    }
    padded_loops(x, padded, taps, filter, wy, wx, out);
}

/// [`padded_loops`] with each block of sums held in AVX registers: a multiply then an add per lane, each
/// rounded, exactly the portable loop's operations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn padded_loops_avx(
    x: &[f32],
    padded: [usize; 4],
    taps: &[f32],
    filter: [usize; 3],
    wy: &Window,
    wx: &Window,
    out: &mut [f32],
) {
    let [n, _, _, _] = padded;
    let [_, _, oc] = filter;
    for b in 0..n {
        for oy in 0..wy.out {
            for first in (0..oc).step_by(LANES) {
                let mut ox = 0;
                while ox + PADDED_PIXELS <= wx.out {
                    let at = (b, oy, ox, first);
                    // SAFETY: AVX is enabled in this function, hence available.
                    unsafe {
                        padded_block_avx::<PADDED_PIXELS>(
                            x,
                            padded,
                            taps,
                            filter,
                            (wy, wx),
                            at,
                            out,
                        )
                    };
                    ox += PADDED_PIXELS;
                }
                for ox in ox..wx.out {
                    let at = (b, oy, ox, first);
                    // SAFETY: as above.
                    unsafe { padded_block_avx::<1>(x, padded, taps, filter, (wy, wx), at, out) };
                }
            }
        }
    }
}

/// [`padded_block`] in AVX registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn padded_block_avx<const P: usize>(
    x: &[f32],
    [_, ph, pw, c]: [usize; 4],
    taps: &[f32],
    [kh, kw, oc]: [usize; 3],
    (wy, wx): (&Window, &Window),
    (b, oy, ox, first): (usize, usize, usize, usize),
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    let mut sums = [_mm256_setzero_ps(); P];
    for ky in 0..kh {
        let row = (b * ph + oy * wy.stride + ky * wy.dilation) * pw;
        for kx in 0..kw {
            let column = ox * wx.stride + kx * wx.dilation;
            for ci in 0..c {
                let Some(t) = taps
                    .get(((ky * kw + kx) * c + ci) * oc + first..)
                    .and_then(|t| t.get(..LANES))
                else {
                    continue;
                };
                // SAFETY: `t` holds LANES = 8 floats; unaligned loads are allowed.
                let t = unsafe { _mm256_loadu_ps(t.as_ptr()) };
                for (p, sum) in sums.iter_mut().enumerate() {
                    let Some(&v) = x.get((row + column + p * wx.stride) * c + ci) else {
                        continue;
                    };
                    *sum = _mm256_add_ps(*sum, _mm256_mul_ps(_mm256_set1_ps(v), t));
                }
            }
        }
    }
    let pixel = (b * wy.out + oy) * wx.out + ox;
    for (p, sum) in sums.iter().enumerate() {
        if let Some(dst) = out
            .get_mut((pixel + p) * oc + first..)
            .and_then(|d| d.get_mut(..LANES))
        {
            // SAFETY: `dst` holds LANES = 8 floats.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), *sum) };
        }
    }
}

fn padded_loops(
    x: &[f32],
    padded: [usize; 4],
    taps: &[f32],
    filter: [usize; 3],
    wy: &Window,
    wx: &Window,
    out: &mut [f32],
) {
    let [n, _, _, _] = padded;
    let [_, _, oc] = filter;
    for b in 0..n {
        for oy in 0..wy.out {
            for first in (0..oc).step_by(LANES) {
                let mut ox = 0;
                while ox + PADDED_PIXELS <= wx.out {
                    padded_block::<PADDED_PIXELS>(
                        x,
                        padded,
                        taps,
                        filter,
                        (wy, wx),
                        (b, oy, ox, first),
                        out,
                    );
                    ox += PADDED_PIXELS;
                }
                for ox in ox..wx.out {
                    padded_block::<1>(x, padded, taps, filter, (wy, wx), (b, oy, ox, first), out);
                }
            }
        }
    }
}

/// `LANES` output channels from `first` of `P` neighbouring pixels from (`oy`, `ox`), summed in registers.
#[inline(always)]
fn padded_block<const P: usize>(
    x: &[f32],
    [_, ph, pw, c]: [usize; 4],
    taps: &[f32],
    [kh, kw, oc]: [usize; 3],
    (wy, wx): (&Window, &Window),
    (b, oy, ox, first): (usize, usize, usize, usize),
    out: &mut [f32],
) {
    let mut sums = [[0.0f32; LANES]; P];
    for ky in 0..kh {
        let row = (b * ph + oy * wy.stride + ky * wy.dilation) * pw;
        for kx in 0..kw {
            let column = ox * wx.stride + kx * wx.dilation;
            for ci in 0..c {
                let Some(t) = taps
                    .get(((ky * kw + kx) * c + ci) * oc + first..)
                    .and_then(|t| t.get(..LANES))
                else {
                    continue;
                };
                for (p, sums) in sums.iter_mut().enumerate() {
                    let Some(&v) = x.get((row + column + p * wx.stride) * c + ci) else {
                        continue;
                    };
                    for i in 0..LANES {
                        sums[i] += v * t[i];
                    }
                }
            }
        }
    }
    let pixel = (b * wy.out + oy) * wx.out + ox;
    for (p, sums) in sums.iter().enumerate() {
        if let Some(dst) = out
            .get_mut((pixel + p) * oc + first..)
            .and_then(|d| d.get_mut(..LANES))
        {
            dst.copy_from_slice(sums);
        }
    }
}

/// Neighbouring output pixels a direct convolution with few output channels sums at once.
const PIXELS: usize = 4;

/// The receptive field of one output pixel in a direct convolution.
struct Field<'a> {
    x: &'a [f32],
    /// Batch index, then the input's height, width and channels.
    image: [usize; 4],
    /// The filter as `[kh, kw, c, oc]`.
    taps: &'a [f32],
    /// Filter height, width and output channels.
    kernel: [usize; 3],
    /// The output pixel (row, column).
    at: (usize, usize),
}

impl Field<'_> {
    /// The input pixel under tap (`ky`, `kx`) and the offset of its weights for output channel `first`, if
    /// the tap is inside the image.
    #[inline(always)]
    fn tap(
        &self,
        wy: &Window,
        wx: &Window,
        ky: usize,
        kx: usize,
        first: usize,
    ) -> Option<(&[f32], usize)> {
        let [b, h, w, c] = self.image;
        let [_, kw, oc] = self.kernel;
        let iy = wy.tap(self.at.0, ky, h)?;
        let ix = wx.tap(self.at.1, kx, w)?;
        let pixel = self.x.get(((b * h + iy) * w + ix) * c..)?.get(..c)?;
        Some((pixel, (ky * kw + kx) * c * oc + first))
    }

    /// Sums `B` output channels from `first` over every tap in a local array (registers), then stores them
    /// into `acc`; returns `B`.
    #[inline(always)]
    fn accumulate<const B: usize>(
        &self,
        acc: &mut [f32],
        first: usize,
        wy: &Window,
        wx: &Window,
    ) -> usize {
        let [kh, kw, oc] = self.kernel;
        let mut sums = [0.0f32; B];
        for ky in 0..kh {
            for kx in 0..kw {
                let Some((pixel, offset)) = self.tap(wy, wx, ky, kx, first) else {
                    continue;
                };
                for (ci, &v) in pixel.iter().enumerate() {
                    let Some(t) = self.taps.get(offset + ci * oc..).and_then(|t| t.get(..B)) else {
                        continue;
                    };
                    for i in 0..B {
                        sums[i] += v * t[i];
                    }
                }
            }
        }
        if let Some(acc) = acc.get_mut(..B) {
            acc.copy_from_slice(&sums);
        }
        B
    }

    /// All `B` (= every) output channels of [`PIXELS`] pixels from `at` along the row, into `row`.
    #[inline(always)]
    fn accumulate_pixels<const B: usize>(&self, row: &mut [f32], wy: &Window, wx: &Window) {
        let [b, h, w, c] = self.image;
        let [kh, kw, oc] = self.kernel;
        let (oy, ox) = self.at;
        let mut sums = [[0.0f32; B]; PIXELS];
        for ky in 0..kh {
            let Some(iy) = wy.tap(oy, ky, h) else {
                continue;
            };
            for kx in 0..kw {
                let base = (ky * kw + kx) * c * oc;
                for ci in 0..c {
                    let Some(t) = self.taps.get(base + ci * oc..).and_then(|t| t.get(..B)) else {
                        continue;
                    };
                    for (p, sums) in sums.iter_mut().enumerate() {
                        let Some(ix) = wx.tap(ox + p, kx, w) else {
                            continue;
                        };
                        let Some(&v) = self.x.get(((b * h + iy) * w + ix) * c + ci) else {
                            continue;
                        };
                        for i in 0..B {
                            sums[i] += v * t[i];
                        }
                    }
                }
            }
        }
        for (dst, sums) in row.chunks_exact_mut(B).zip(&sums) {
            dst.copy_from_slice(sums);
        }
    }

    /// The last fewer-than-8 output channels, accumulated in place; returns how many.
    #[inline(always)]
    fn accumulate_rest(&self, acc: &mut [f32], first: usize, wy: &Window, wx: &Window) -> usize {
        let [kh, kw, oc] = self.kernel;
        for ky in 0..kh {
            for kx in 0..kw {
                let Some((pixel, offset)) = self.tap(wy, wx, ky, kx, first) else {
                    continue;
                };
                for (ci, &v) in pixel.iter().enumerate() {
                    if let Some(t) = self
                        .taps
                        .get(offset + ci * oc..)
                        .and_then(|t| t.get(..acc.len()))
                    {
                        for (a, &t) in acc.iter_mut().zip(t) {
                            *a += v * t;
                        }
                    }
                }
            }
        }
        acc.len()
    }
}

/// Writes one row per output pixel: the `channels` input channels from `first` of every tap, zero outside
/// the image (the implicit padding).
pub(crate) fn im2col(
    image: &[f32],
    [h, w, c]: [usize; 3],
    first: usize,
    channels: usize,
    wy: &Window,
    wx: &Window,
    cols: &mut [f32],
) {
    let k = wy.taps * wx.taps * channels;
    for oy in 0..wy.out {
        for ox in 0..wx.out {
            let row = &mut cols[(oy * wx.out + ox) * k..][..k];
            for ky in 0..wy.taps {
                let iy = wy.tap(oy, ky, h);
                let dst = &mut row[ky * wx.taps * channels..][..wx.taps * channels];
                let Some(iy) = iy else {
                    dst.fill(0.0);
                    continue;
                };
                if wx.dilation == 1 && channels == c {
                    // Adjacent taps of all channels are adjacent in the image: one copy per kernel row.
                    let start = ox * wx.stride;
                    let first_kx = wx.pad.saturating_sub(start);
                    let end_kx = wx.taps.min((w + wx.pad).saturating_sub(start));
                    if first_kx < end_kx {
                        let ix = start + first_kx - wx.pad;
                        let run = (end_kx - first_kx) * c;
                        dst[..first_kx * c].fill(0.0);
                        dst[first_kx * c..][..run]
                            .copy_from_slice(&image[(iy * w + ix) * c..][..run]);
                        dst[end_kx * c..].fill(0.0);
                    } else {
                        dst.fill(0.0);
                    }
                    continue;
                }
                for kx in 0..wx.taps {
                    let dst = &mut dst[kx * channels..][..channels];
                    match wx.tap(ox, kx, w) {
                        Some(ix) => {
                            dst.copy_from_slice(&image[(iy * w + ix) * c + first..][..channels])
                        }
                        None => dst.fill(0.0),
                    }
                }
            }
        }
    }
}

pub(crate) fn depthwise_conv_2d(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_depthwise_conv_2_doptions()
        .ok_or_else(|| missing_options("DepthwiseConv2DOptions"))?;
    let input = row_major(ctx.input_f32(0)?);
    let filter = row_major(ctx.input_f32(1)?);
    let [n, h, w, c] = dims4(input.shape(), "input")?;
    let [one, kh, kw, oc] = dims4(filter.shape(), "filter")?;
    // The runtime derives the multiplier from the shapes; the option only has to agree when set.
    if one != 1 || c == 0 || oc % c != 0 {
        return Err(KernelError::Invalid(format!(
            "filter {:?} does not fit input {:?} (expected [1, kh, kw, in_channels * depth_multiplier])",
            filter.shape(),
            input.shape()
        )));
    }
    let m = oc / c;
    if o.depth_multiplier > 0 && o.depth_multiplier as usize != m {
        return Err(KernelError::Invalid(format!(
            "depth_multiplier {} but the filter has {oc} channels for {c} input channels",
            o.depth_multiplier
        )));
    }
    let bias = bias_values(ctx, 2, oc)?;
    let wy = Window::new(o.padding, h, kh, o.stride_h, o.dilation_h_factor)?;
    let wx = Window::new(o.padding, w, kw, o.stride_w, o.dilation_w_factor)?;
    let x = flat(&input)?;
    let f = flat(&filter)?;
    let bias = match &bias {
        Some(b) => Some(flat(b)?),
        None => None,
    };
    let mut out = vec![0.0f32; n * wy.out * wx.out * oc];
    depthwise_accumulate(x, [n, h, w, c], f, [kh, kw, oc], &wy, &wx, &mut out);
    // Bias after the sum, as TFLite adds it.
    add_bias_and_activate(&mut out, oc, bias, o.fused_activation_function);
    Ok(vec![Value::F32(array(&[n, wy.out, wx.out, oc], out)?)])
}

wide_vectors! {
    /// The depthwise accumulation: every output pixel sums its taps, channel `c * m + j` reading input channel `c`.
    fn depthwise_accumulate(
        x: &[f32],
        input: [usize; 4],
        f: &[f32],
        filter: [usize; 3],
        wy: &Window,
        wx: &Window,
        out: &mut [f32],
    ) => depthwise_loops;
}

#[inline(always)]
fn depthwise_loops(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    f: &[f32],
    [kh, kw, oc]: [usize; 3],
    wy: &Window,
    wx: &Window,
    out: &mut [f32],
) {
    let m = oc / c.max(1);
    for b in 0..n {
        for oy in 0..wy.out {
            for ox in 0..wx.out {
                let acc = &mut out[((b * wy.out + oy) * wx.out + ox) * oc..][..oc];
                // The taps inside the image, as (input pixel offset, filter offset) pairs.
                let mut inside = [(0usize, 0usize); MAX_TAPS];
                let mut count = 0;
                let small = kh * kw <= MAX_TAPS;
                for ky in 0..kh {
                    let Some(iy) = wy.tap(oy, ky, h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(ix) = wx.tap(ox, kx, w) else {
                            continue;
                        };
                        let at = (((b * h + iy) * w + ix) * c, (ky * kw + kx) * oc);
                        if m == 1 && small {
                            inside[count] = at;
                            count += 1;
                            continue;
                        }
                        let pixel = &x[at.0..][..c];
                        let taps = &f[at.1..][..oc];
                        for ((a, t), &v) in
                            acc.chunks_exact_mut(m).zip(taps.chunks_exact(m)).zip(pixel)
                        {
                            for (a, &t) in a.iter_mut().zip(t) {
                                *a += v * t;
                            }
                        }
                    }
                }
                if m == 1 && small {
                    // Channel blocks whose sums stay in registers over every tap, added in tap order
                    // (the order of the per-tap loop above), so the blocking changes speed, not bits.
                    let taps = &inside[..count];
                    let mut first = 0;
                    while first < oc {
                        first += match oc - first {
                            32.. => depthwise_block::<32>(x, f, taps, first, acc),
                            16.. => depthwise_block::<16>(x, f, taps, first, acc),
                            8.. => depthwise_block::<8>(x, f, taps, first, acc),
                            _ => depthwise_block::<1>(x, f, taps, first, acc),
                        };
                    }
                }
            }
        }
    }
}

/// Most taps a depthwise filter may have for the register-blocked path (larger filters, rare, take the
/// per-tap loop).
const MAX_TAPS: usize = 49;

/// Sums channels `first..first + B` over `taps` (input pixel offset, filter offset) into `acc`; returns `B`.
#[inline(always)]
fn depthwise_block<const B: usize>(
    x: &[f32],
    f: &[f32],
    taps: &[(usize, usize)],
    first: usize,
    acc: &mut [f32],
) -> usize {
    let mut sums = [0.0f32; B];
    for &(p, t) in taps {
        let (Some(v), Some(w)) = (
            x.get(p + first..p + first + B),
            f.get(t + first..t + first + B),
        ) else {
            continue;
        };
        for i in 0..B {
            sums[i] += v[i] * w[i];
        }
    }
    if let Some(acc) = acc.get_mut(first..first + B) {
        acc.copy_from_slice(&sums);
    }
    B
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run_op, Arg};
    use crate::calibrate::Value;
    use crate::tflite::fb;

    fn conv_options(
        padding: fb::Padding,
        stride: i32,
        dilation: i32,
        act: fb::ActivationFunctionType,
    ) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::Conv2DOptions(Box::new(fb::Conv2DOptionsT {
            padding,
            stride_w: stride,
            stride_h: stride,
            fused_activation_function: act,
            dilation_w_factor: dilation,
            dilation_h_factor: dilation,
            ..Default::default()
        }))
    }

    /// A direct, obviously-correct convolution to compare against.
    #[allow(clippy::too_many_arguments)]
    fn naive_conv(
        x: &[f32],
        [h, w, c]: [usize; 3],
        f: &[f32],
        [oc, kh, kw]: [usize; 3],
        stride: usize,
        dil: usize,
        pad: (usize, usize),
        out: (usize, usize),
    ) -> Vec<f32> {
        let mut y = vec![0.0; out.0 * out.1 * oc];
        for oy in 0..out.0 {
            for ox in 0..out.1 {
                for o in 0..oc {
                    let mut acc = 0.0;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * stride + ky * dil) as isize - pad.0 as isize;
                            let ix = (ox * stride + kx * dil) as isize - pad.1 as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ci in 0..c {
                                acc += x[(iy as usize * w + ix as usize) * c + ci]
                                    * f[((o * kh + ky) * kw + kx) * c + ci];
                            }
                        }
                    }
                    y[(oy * out.1 + ox) * oc + o] = acc;
                }
            }
        }
        y
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7) % 11) as f32 * scale - 1.0)
            .collect()
    }

    #[test]
    fn conv_same_padding_stride_two_matches_direct_sum() {
        let x = ramp(5 * 5 * 2, 0.25);
        let f = ramp(3 * 3 * 3 * 2, 0.125);
        let out = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::SAME, 2, 1, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 5, 5, 2], x.clone()),
                Arg::f32(&[3, 3, 3, 2], f.clone()),
                Arg::f32(&[3], vec![0.5, 0.0, -0.5]),
            ],
        );
        let Value::F32(y) = &out[0] else {
            panic!("float output")
        };
        assert_eq!(y.shape(), &[1, 3, 3, 3]);
        let mut want = naive_conv(&x, [5, 5, 2], &f, [3, 3, 3], 2, 1, (1, 1), (3, 3));
        for (i, v) in want.iter_mut().enumerate() {
            *v += [0.5, 0.0, -0.5][i % 3];
        }
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn conv_dilation_valid_padding_and_relu6() {
        let x = ramp(7 * 6, 1.0);
        let f = ramp(2 * 3 * 3, 0.5);
        let out = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::VALID, 1, 2, fb::ActivationFunctionType::RELU6),
            vec![
                Arg::f32(&[1, 7, 6, 1], x.clone()),
                Arg::f32(&[2, 3, 3, 1], f.clone()),
                Arg::Omitted,
            ],
        );
        let Value::F32(y) = &out[0] else {
            panic!("float output")
        };
        // Extent 5: 7 -> 3 rows, 6 -> 2 columns.
        assert_eq!(y.shape(), &[1, 3, 2, 2]);
        let want: Vec<f32> = naive_conv(&x, [7, 6, 1], &f, [2, 3, 3], 1, 2, (0, 0), (3, 2))
            .iter()
            .map(|v| v.clamp(0.0, 6.0))
            .collect();
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn im2col_path_with_many_channels_matches_direct_sum() {
        // More channels than DIRECT_MAX_CHANNELS: the im2col + matrix product path, with padding and stride.
        let c = super::DIRECT_MAX_CHANNELS + 2;
        let x = ramp(6 * 5 * c, 0.25);
        let f = ramp(3 * 3 * 3 * c, 0.125);
        let out = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::SAME, 2, 1, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 6, 5, c], x.clone()),
                Arg::f32(&[3, 3, 3, c], f.clone()),
                Arg::Omitted,
            ],
        );
        let Value::F32(y) = &out[0] else {
            panic!("float output")
        };
        assert_eq!(y.shape(), &[1, 3, 3, 3]);
        let want = naive_conv(&x, [6, 5, c], &f, [3, 3, 3], 2, 1, (0, 1), (3, 3));
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn direct_conv_of_eight_and_sixteen_channels_equals_the_direct_sum_bit_for_bit() {
        // Few input channels (the direct path), 8 and 16 output channels (pixels summed four at a time),
        // and a row of 7 pixels (one group of four plus three alone): every sum keeps the filter's order.
        for oc in [8, 16, 19] {
            let x = ramp(5 * 7 * 2, 0.37);
            let f = ramp(oc * 3 * 3 * 2, 0.21);
            let out = run_op(
                fb::BuiltinOperator::CONV_2D,
                conv_options(fb::Padding::SAME, 1, 1, fb::ActivationFunctionType::NONE),
                vec![
                    Arg::f32(&[1, 5, 7, 2], x.clone()),
                    Arg::f32(&[oc, 3, 3, 2], f.clone()),
                    Arg::Omitted,
                ],
            );
            let Value::F32(y) = &out[0] else {
                panic!("float output")
            };
            let want = naive_conv(&x, [5, 7, 2], &f, [oc, 3, 3], 1, 1, (1, 1), (5, 7));
            assert_eq!(y.iter().copied().collect::<Vec<_>>(), want, "{oc} channels");
        }
    }

    #[test]
    fn padded_direct_conv_with_stride_and_dilation_equals_the_direct_sum_bit_for_bit() {
        // One input channel, 24 output channels (three registers), a 7 x 19 image: rows of two blocks of
        // eight pixels plus single pixels, taps on the padding skipped by the reference and summed as zero.
        let (h, w, oc) = (7, 19, 24);
        let x: Vec<f32> = ramp(h * w, 0.37).iter().map(|v| v - 3.0).collect();
        let f: Vec<f32> = ramp(oc * 3 * 3, 0.21).iter().map(|v| 1.5 - v).collect();
        for (padding, stride, dilation, pad, out) in [
            (fb::Padding::SAME, 1, 1, (1, 1), (7, 19)),
            (fb::Padding::SAME, 2, 2, (2, 2), (4, 10)),
            (fb::Padding::VALID, 2, 1, (0, 0), (3, 9)),
        ] {
            let y = run_op(
                fb::BuiltinOperator::CONV_2D,
                conv_options(padding, stride, dilation, fb::ActivationFunctionType::NONE),
                vec![
                    Arg::f32(&[1, h, w, 1], x.clone()),
                    Arg::f32(&[oc, 3, 3, 1], f.clone()),
                    Arg::Omitted,
                ],
            );
            let Value::F32(y) = &y[0] else {
                panic!("float output")
            };
            assert_eq!(y.shape(), &[1, out.0, out.1, oc]);
            let want = naive_conv(
                &x,
                [h, w, 1],
                &f,
                [oc, 3, 3],
                stride as usize,
                dilation as usize,
                pad,
                out,
            );
            assert_eq!(
                y.iter().copied().collect::<Vec<_>>(),
                want,
                "{padding:?} stride {stride}"
            );
        }
    }

    #[test]
    fn infinite_weights_on_the_padding_do_not_reach_the_sum() {
        // A 1x1 image under a SAME 3x3 filter: only the centre tap is inside; the corner's infinity is not.
        let mut f = vec![0.5f32; 8 * 9];
        f[0] = f32::INFINITY;
        let y = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::SAME, 1, 1, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 1, 1, 1], vec![2.0]),
                Arg::f32(&[8, 3, 3, 1], f),
                Arg::Omitted,
            ],
        );
        let Value::F32(y) = &y[0] else {
            panic!("float output")
        };
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![1.0; 8]);
    }

    #[test]
    fn gemm_conv_matches_direct_sum_for_every_tile_shape() {
        // 6 input channels (im2col + GEMM), 3x3 and 1x1 filters; 27 = 16 + 8 + 3 output channels and
        // 5 x 3 = 15 pixels (three tiles of four rows plus three single rows).
        for k in [1, 3] {
            let x = ramp(5 * 3 * 6, 0.3);
            let f = ramp(27 * k * k * 6, 0.17);
            let pad = if k == 3 {
                fb::Padding::SAME
            } else {
                fb::Padding::VALID
            };
            let out = run_op(
                fb::BuiltinOperator::CONV_2D,
                conv_options(pad, 1, 1, fb::ActivationFunctionType::NONE),
                vec![
                    Arg::f32(&[1, 5, 3, 6], x.clone()),
                    Arg::f32(&[27, k, k, 6], f.clone()),
                    Arg::Omitted,
                ],
            );
            let Value::F32(y) = &out[0] else {
                panic!("float output")
            };
            let p = k / 2;
            let want = naive_conv(&x, [5, 3, 6], &f, [27, k, k], 1, 1, (p, p), (5, 3));
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{k}x{k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn depthwise_channel_blocks_equal_the_direct_sum_bit_for_bit() {
        // 59 = 32 + 16 + 8 + 3 channels: every block width, SAME padding so border pixels skip taps.
        let c = 59;
        let x = ramp(4 * 4 * c, 0.29);
        let f = ramp(9 * c, 0.13);
        let opts =
            fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptionsT {
                padding: fb::Padding::SAME,
                stride_w: 1,
                stride_h: 1,
                depth_multiplier: 1,
                fused_activation_function: fb::ActivationFunctionType::NONE,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            }));
        let out = run_op(
            fb::BuiltinOperator::DEPTHWISE_CONV_2D,
            opts,
            vec![
                Arg::f32(&[1, 4, 4, c], x.clone()),
                Arg::f32(&[1, 3, 3, c], f.clone()),
                Arg::Omitted,
            ],
        );
        let Value::F32(y) = &out[0] else {
            panic!("float output")
        };
        let mut want = vec![0.0f32; 4 * 4 * c];
        for oy in 0..4 {
            for ox in 0..4 {
                for ch in 0..c {
                    let mut acc = 0.0f32;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy < 1 || ix < 1 || iy > 4 || ix > 4 {
                                continue;
                            }
                            acc += x[((iy - 1) * 4 + ix - 1) * c + ch] * f[(ky * 3 + kx) * c + ch];
                        }
                    }
                    want[(oy * 4 + ox) * c + ch] = acc;
                }
            }
        }
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), want);
    }

    #[test]
    fn pointwise_conv_is_a_matrix_product_per_pixel() {
        let out = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::SAME, 1, 1, fb::ActivationFunctionType::RELU),
            vec![
                Arg::f32(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Arg::f32(&[2, 1, 1, 2], vec![1.0, 1.0, 1.0, -1.0]),
                Arg::f32(&[2], vec![0.0, 0.5]),
            ],
        );
        // pixel (1,2): [3, -0.5 -> relu 0]; pixel (3,4): [7, -0.5 -> 0].
        assert_eq!(
            out[0],
            Arg::f32(&[1, 1, 2, 2], vec![3.0, 0.0, 7.0, 0.0]).value()
        );
    }

    #[test]
    fn grouped_conv_uses_each_groups_channels() {
        // 2 input channels, filter with 1 input channel: 2 groups, one output channel each.
        let out = run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::VALID, 1, 1, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 1, 2, 2], vec![1.0, 10.0, 2.0, 20.0]),
                Arg::f32(&[2, 1, 2, 1], vec![1.0, 1.0, 1.0, -1.0]),
                Arg::Omitted,
            ],
        );
        assert_eq!(out[0], Arg::f32(&[1, 1, 1, 2], vec![3.0, -10.0]).value());
    }

    #[test]
    fn depthwise_multiplier_two_maps_channel_c_to_outputs_2c_and_2c_plus_1() {
        let opts =
            fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptionsT {
                padding: fb::Padding::VALID,
                stride_w: 1,
                stride_h: 1,
                depth_multiplier: 2,
                fused_activation_function: fb::ActivationFunctionType::NONE,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            }));
        // 1x2 image, 2 channels; 1x2 filter, 4 output channels.
        let out = run_op(
            fb::BuiltinOperator::DEPTHWISE_CONV_2D,
            opts,
            vec![
                Arg::f32(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Arg::f32(
                    &[1, 1, 2, 4],
                    vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0],
                ),
                Arg::f32(&[4], vec![0.0, 0.0, 0.0, 100.0]),
            ],
        );
        // out[0] = 1*1 + 3*10, out[1] = 1*2 + 3*20, out[2] = 2*3 + 4*30, out[3] = 2*4 + 4*40 + 100.
        assert_eq!(
            out[0],
            Arg::f32(&[1, 1, 1, 4], vec![31.0, 62.0, 126.0, 268.0]).value()
        );
    }

    #[test]
    fn depthwise_same_padding_stride_two_with_dilation() {
        let opts =
            fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptionsT {
                padding: fb::Padding::SAME,
                stride_w: 2,
                stride_h: 2,
                depth_multiplier: 1,
                fused_activation_function: fb::ActivationFunctionType::NONE,
                dilation_w_factor: 2,
                dilation_h_factor: 2,
            }));
        let x = ramp(5 * 5, 1.0);
        let f = ramp(9, 0.5);
        let out = run_op(
            fb::BuiltinOperator::DEPTHWISE_CONV_2D,
            opts,
            vec![
                Arg::f32(&[1, 5, 5, 1], x.clone()),
                Arg::f32(&[1, 3, 3, 1], f.clone()),
                Arg::Omitted,
            ],
        );
        let Value::F32(y) = &out[0] else {
            panic!("float output")
        };
        assert_eq!(y.shape(), &[1, 3, 3, 1]);
        // Extent 5, 3 outputs at stride 2 need 9 cells: 4 padding, 2 before.
        let want = naive_conv(&x, [5, 5, 1], &f, [1, 3, 3], 2, 2, (2, 2), (3, 3));
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn conv_rejects_mismatched_bias() {
        let err = super::super::testing::try_run_op(
            fb::BuiltinOperator::CONV_2D,
            conv_options(fb::Padding::SAME, 1, 1, fb::ActivationFunctionType::NONE),
            vec![
                Arg::f32(&[1, 1, 1, 1], vec![1.0]),
                Arg::f32(&[2, 1, 1, 1], vec![1.0, 1.0]),
                Arg::f32(&[3], vec![0.0; 3]),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("CONV_2D") && err.to_string().contains("bias"),
            "{err}"
        );
    }
}
