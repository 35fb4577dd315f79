//! RESIZE_BILINEAR on int8 / int16 (`reference_ops::ResizeBilinearInteger`): source coordinates in 10-bit
//! fixed point, the four neighbours weighted in 20 bits on the raw codes (the weights sum to 2^20, so the
//! zero point carries through), rounded half away from zero. RESIZE_NEAREST_NEIGHBOR copies codes through
//! the float model's generic kernel ([`super::data_movement::on_codes`]).

use super::{codes, from_codes, OpCtx};
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

/// Source coordinate (10-bit fixed point) of output `value` and its lower and upper neighbours
/// (`ComputeInterpolationValuesInteger`).
fn source(value: i32, scale_10: i32, half_pixel_centers: bool, input_size: i32) -> (i32, i32, i32) {
    let scaled = if half_pixel_centers {
        value * scale_10 + scale_10 / 2 - (1 << 9)
    } else {
        value * scale_10
    };
    let lower = (scaled / (1 << 10)).max(0);
    let upper = ((scaled + (1 << 10) - 1) / (1 << 10)).min(input_size - 1);
    (scaled, lower, upper)
}

/// Input units per output unit in 10-bit fixed point, rounded as LiteRT does.
fn scale_10(input: i32, output: i32, align_corners: bool) -> i32 {
    if align_corners && output > 1 {
        ((1 << 10) * (input - 1) + (output - 1) / 2) / (output - 1)
    } else {
        ((1 << 10) * input + output / 2) / output
    }
}

pub(crate) fn resize_bilinear(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let o = match ctx.options() {
        fb::BuiltinOptionsT::ResizeBilinearOptions(o) => (o.align_corners, o.half_pixel_centers),
        _ => (false, false),
    };
    let (align_corners, half_pixel_centers) = o;
    if align_corners && half_pixel_centers {
        return Err("align_corners and half_pixel_centers cannot both be set".into());
    }
    let input = ctx.input(0)?;
    let [n, h, w, c] = <[usize; 4]>::try_from(input.shape.as_slice())
        .map_err(|_| format!("input {:?} must be 4-D", input.shape))?;
    let size = ctx
        .input(1)?
        .data
        .to_i64()
        .ok_or("the size is not an integer tensor")?;
    let &[oh, ow] = size.as_slice() else {
        return Err(format!("size {size:?} must be [height, width]"));
    };
    let limit = i64::from(i32::MAX >> 11);
    if !(1..=limit).contains(&oh) || !(1..=limit).contains(&ow) {
        return Err(format!("output size {oh}x{ow} is out of range"));
    }
    if h == 0 || w == 0 || h as i64 > limit || w as i64 > limit {
        return Err(format!("cannot resize a {h}x{w} image"));
    }
    let (oh, ow, ih, iw) = (oh as i32, ow as i32, h as i32, w as i32);
    let (sy, sx) = (
        scale_10(ih, oh, align_corners),
        scale_10(iw, ow, align_corners),
    );
    let x = codes(input)?;
    let at = |b: usize, y: i32, xx: i32, ch: usize| {
        i64::from(x[((b * h + y as usize) * w + xx as usize) * c + ch])
    };
    let xs: Vec<(i32, i32, i32)> = (0..ow)
        .map(|ox| source(ox, sx, half_pixel_centers, iw))
        .collect();
    let mut out = Vec::with_capacity(n * oh as usize * ow as usize * c);
    for b in 0..n {
        for oy in 0..oh {
            let (iy, y0, y1) = source(oy, sy, half_pixel_centers, ih);
            let dy = i64::from(iy - (1 << 10) * y0);
            for &(ix, x0, x1) in &xs {
                let dx = i64::from(ix - (1 << 10) * x0);
                for ch in 0..c {
                    let v = at(b, y0, x0, ch) * (1024 - dy) * (1024 - dx)
                        + at(b, y1, x0, ch) * dy * (1024 - dx)
                        + at(b, y0, x1, ch) * (1024 - dy) * dx
                        + at(b, y1, x1, ch) * dy * dx;
                    let round = if v > 0 { 1 << 19 } else { -(1 << 19) };
                    out.push(((v + round) / (1 << 20)) as i32);
                }
            }
        }
    }
    let shape = vec![n, oh as usize, ow as usize, c];
    Ok(vec![from_codes(shape, ctx.output_type(0)?, out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_pixel_source_of_the_first_output_is_clamped_at_zero() {
        // 3 -> 6: scale 512; half pixel: 0 * 512 + 256 - 512 = -256, lower 0, upper 0.
        assert_eq!(scale_10(3, 6, false), 512);
        assert_eq!(source(0, 512, true, 3), (-256, 0, 0));
        assert_eq!(source(5, 512, true, 3), (2304, 2, 2));
        // align corners: (3 - 1) / (5 - 1) = 0.5.
        assert_eq!(scale_10(3, 5, true), 512);
    }
}
