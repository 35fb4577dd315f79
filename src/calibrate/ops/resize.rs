//! RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on NHWC float tensors, with TFLite's `align_corners` and
//! `half_pixel_centers` coordinate mappings.

use super::kernel_args::{array, dims4, flat, row_major};
use super::typed::{from_shape_vec, standard, typed_input, with_element_type, Element};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;

/// The new `[height, width]` from input 1.
fn output_size(ctx: &OpContext<'_>) -> Result<[usize; 2], KernelError> {
    let size = ctx.input_ints(1)?;
    let &[h, w] = size.as_slice() else {
        return Err(KernelError::Invalid(format!(
            "size has {} values, expected [height, width]",
            size.len()
        )));
    };
    let dim = |v: i64| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| KernelError::Invalid(format!("output size {v} must be positive")))
    };
    Ok([dim(h)?, dim(w)?])
}

/// Input units per output unit along one axis.
fn scale(input: usize, output: usize, align_corners: bool) -> f32 {
    if align_corners && output > 1 {
        (input - 1) as f32 / (output - 1) as f32
    } else {
        input as f32 / output as f32
    }
}

/// Source coordinate of output `o` and its two neighbours (bilinear).
fn bilinear_source(
    o: usize,
    scale: f32,
    half_pixel_centers: bool,
    input: usize,
) -> (f32, usize, usize) {
    let at = if half_pixel_centers {
        (o as f32 + 0.5) * scale - 0.5
    } else {
        o as f32 * scale
    };
    let lower = (at.floor().max(0.0) as usize).min(input - 1);
    let upper = (at.ceil().max(0.0) as usize).min(input - 1);
    (at, lower, upper)
}

pub(crate) fn resize_bilinear(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let default = fb::ResizeBilinearOptionsT::default();
    let o = ctx
        .operator()
        .builtin_options
        .as_resize_bilinear_options()
        .unwrap_or(&default);
    let input = row_major(ctx.input_f32(0)?);
    let [n, h, w, c] = dims4(input.shape(), "input")?;
    let [oh, ow] = output_size(ctx)?;
    if h == 0 || w == 0 {
        return Err(KernelError::Invalid("cannot resize an empty image".into()));
    }
    let (sy, sx) = (scale(h, oh, o.align_corners), scale(w, ow, o.align_corners));
    let x = flat(&input)?;
    let mut out = vec![0.0f32; n * oh * ow * c];
    let xs: Vec<_> = (0..ow)
        .map(|ox| bilinear_source(ox, sx, o.half_pixel_centers, w))
        .collect();
    for b in 0..n {
        for oy in 0..oh {
            let (iy, y0, y1) = bilinear_source(oy, sy, o.half_pixel_centers, h);
            let dy = iy - y0 as f32;
            for (ox, &(ix, x0, x1)) in xs.iter().enumerate() {
                let dx = ix - x0 as f32;
                let px = |y: usize, xx: usize| &x[((b * h + y) * w + xx) * c..][..c];
                let (a, bb, cc, d) = (px(y0, x0), px(y1, x0), px(y0, x1), px(y1, x1));
                let dst = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                for ch in 0..c {
                    // The four-term form of TFLite's float kernel, term for term.
                    dst[ch] = a[ch] * (1.0 - dy) * (1.0 - dx)
                        + bb[ch] * dy * (1.0 - dx)
                        + cc[ch] * (1.0 - dy) * dx
                        + d[ch] * dy * dx;
                }
            }
        }
    }
    Ok(vec![Value::F32(array(&[n, oh, ow, c], out)?)])
}

/// Source index of output `o` (nearest neighbour).
fn nearest_source(
    o: usize,
    scale: f32,
    align_corners: bool,
    half_pixel_centers: bool,
    input: usize,
) -> usize {
    let offset = if half_pixel_centers { 0.5 } else { 0.0 };
    let at = (o as f32 + offset) * scale;
    // round() is half away from zero, as TfLiteRound; negative coordinates cannot occur here.
    let i = if align_corners {
        at.round()
    } else {
        at.floor()
    };
    (i.max(0.0) as usize).min(input - 1)
}

/// RESIZE_NEAREST_NEIGHBOR on any element type (LiteRT's kernel is a template: quantized codes are copied).
pub(crate) fn resize_nearest_neighbor(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let default = fb::ResizeNearestNeighborOptionsT::default();
    let o = ctx
        .operator()
        .builtin_options
        .as_resize_nearest_neighbor_options()
        .unwrap_or(&default);
    let input = ctx.input(0)?;
    let [n, h, w, c] = dims4(input.shape(), "input")?;
    let [oh, ow] = output_size(ctx)?;
    if h == 0 || w == 0 {
        return Err(KernelError::Invalid("cannot resize an empty image".into()));
    }
    let (sy, sx) = (scale(h, oh, o.align_corners), scale(w, ow, o.align_corners));
    let xs: Vec<usize> = (0..ow)
        .map(|ox| nearest_source(ox, sx, o.align_corners, o.half_pixel_centers, w))
        .collect();
    let out = with_element_type!(input, T => {
        let a = standard(typed_input::<T>(ctx, 0)?.view());
        let x = a.as_slice().ok_or_else(|| KernelError::Invalid("internal: input is not contiguous".into()))?;
        let mut out = Vec::with_capacity(n * oh * ow * c);
        for b in 0..n {
            for oy in 0..oh {
                let iy = nearest_source(oy, sy, o.align_corners, o.half_pixel_centers, h);
                for &ix in &xs {
                    out.extend_from_slice(&x[((b * h + iy) * w + ix) * c..][..c]);
                }
            }
        }
        T::into_value(from_shape_vec(&[n, oh, ow, c], out)?)
    });
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb;

    fn bilinear(align_corners: bool, half_pixel_centers: bool) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::ResizeBilinearOptions(Box::new(fb::ResizeBilinearOptionsT {
            align_corners,
            half_pixel_centers,
        }))
    }

    fn nearest(align_corners: bool, half_pixel_centers: bool) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::ResizeNearestNeighborOptions(Box::new(
            fb::ResizeNearestNeighborOptionsT {
                align_corners,
                half_pixel_centers,
            },
        ))
    }

    fn row() -> Arg {
        // 1x2 image: [0, 4]
        Arg::f32(&[1, 1, 2, 1], vec![0.0, 4.0])
    }

    #[test]
    fn bilinear_default_maps_output_x_to_x_times_scale() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::RESIZE_BILINEAR,
            bilinear(false, false),
            vec![row(), Arg::i32(&[2], vec![1, 4])],
        );
        assert_eq!(shape, vec![1, 1, 4, 1]);
        // scale 0.5: sources 0, 0.5, 1, 1.5 (clamped to 1)
        assert_close(&y, &[0.0, 2.0, 4.0, 4.0], 1e-6);
    }

    #[test]
    fn bilinear_align_corners_hits_both_ends() {
        let (_, y) = run_f32(
            fb::BuiltinOperator::RESIZE_BILINEAR,
            bilinear(true, false),
            vec![row(), Arg::i32(&[2], vec![1, 3])],
        );
        assert_close(&y, &[0.0, 2.0, 4.0], 1e-6);
    }

    #[test]
    fn bilinear_half_pixel_centers_samples_pixel_centres() {
        let (_, y) = run_f32(
            fb::BuiltinOperator::RESIZE_BILINEAR,
            bilinear(false, true),
            vec![row(), Arg::i32(&[2], vec![1, 4])],
        );
        // sources (x+0.5)*0.5-0.5: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper clamped)
        assert_close(&y, &[0.0, 1.0, 3.0, 4.0], 1e-6);
    }

    #[test]
    fn nearest_neighbor_modes() {
        let x = || Arg::f32(&[1, 1, 3, 1], vec![10.0, 20.0, 30.0]);
        let size = || Arg::i32(&[2], vec![1, 5]);
        // floor(x * 0.6): 0, 0, 1, 1, 2
        let (_, y) = run_f32(
            fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR,
            nearest(false, false),
            vec![x(), size()],
        );
        assert_close(&y, &[10.0, 10.0, 20.0, 20.0, 30.0], 0.0);
        // round(x * 0.5): 0, 1 (0.5 rounds up), 1, 2 (1.5), 2
        let (_, y) = run_f32(
            fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR,
            nearest(true, false),
            vec![x(), size()],
        );
        assert_close(&y, &[10.0, 20.0, 20.0, 30.0, 30.0], 0.0);
        // floor((x + 0.5) * 0.6): 0, 0, 1, 2, 2
        let (_, y) = run_f32(
            fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR,
            nearest(false, true),
            vec![x(), size()],
        );
        assert_close(&y, &[10.0, 10.0, 20.0, 30.0, 30.0], 0.0);
    }
}
