//! AVERAGE_POOL_2D and MAX_POOL_2D on NHWC float tensors.
//!
//! Padding cells take no part: the average divides by the number of valid cells under the window, as
//! TFLite's kernels do (not by the window size).

use super::kernel_args::{array, dims4, flat, missing_options, row_major};
use super::matmul::add_bias_and_activate;
use super::window::Window;
use crate::calibrate::{KernelError, OpContext, Value};

#[derive(Clone, Copy, PartialEq)]
enum Pooling {
    Average,
    Max,
}

pub(crate) fn average_pool_2d(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    pool(ctx, Pooling::Average)
}

pub(crate) fn max_pool_2d(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    pool(ctx, Pooling::Max)
}

fn pool(ctx: &OpContext<'_>, kind: Pooling) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_pool_2_doptions()
        .ok_or_else(|| missing_options("Pool2DOptions"))?;
    let input = row_major(ctx.input_f32(0)?);
    let [n, h, w, c] = dims4(input.shape(), "input")?;
    let taps = |v: i32, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| KernelError::Invalid(format!("{what} {v} must be positive")))
    };
    let wy = Window::new(
        o.padding,
        h,
        taps(o.filter_height, "filter_height")?,
        o.stride_h,
        1,
    )?;
    let wx = Window::new(
        o.padding,
        w,
        taps(o.filter_width, "filter_width")?,
        o.stride_w,
        1,
    )?;
    let x = flat(&input)?;
    let init = match kind {
        Pooling::Average => 0.0,
        Pooling::Max => f32::MIN,
    };
    let mut out = vec![init; n * wy.out * wx.out * c];
    for b in 0..n {
        for oy in 0..wy.out {
            for ox in 0..wx.out {
                let acc = &mut out[((b * wy.out + oy) * wx.out + ox) * c..][..c];
                let mut count = 0usize;
                for ky in 0..wy.taps {
                    let Some(iy) = wy.tap(oy, ky, h) else {
                        continue;
                    };
                    for kx in 0..wx.taps {
                        let Some(ix) = wx.tap(ox, kx, w) else {
                            continue;
                        };
                        let pixel = &x[((b * h + iy) * w + ix) * c..][..c];
                        count += 1;
                        match kind {
                            Pooling::Average => {
                                acc.iter_mut().zip(pixel).for_each(|(a, &v)| *a += v)
                            }
                            Pooling::Max => {
                                acc.iter_mut().zip(pixel).for_each(|(a, &v)| *a = a.max(v))
                            }
                        }
                    }
                }
                if kind == Pooling::Average && count > 0 {
                    let count = count as f32;
                    acc.iter_mut().for_each(|a| *a /= count);
                }
            }
        }
    }
    add_bias_and_activate(&mut out, c, None, o.fused_activation_function);
    Ok(vec![Value::F32(array(&[n, wy.out, wx.out, c], out)?)])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb;

    fn options(padding: fb::Padding, size: i32, stride: i32) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::Pool2DOptions(Box::new(fb::Pool2DOptionsT {
            padding,
            stride_w: stride,
            stride_h: stride,
            filter_width: size,
            filter_height: size,
            fused_activation_function: fb::ActivationFunctionType::NONE,
        }))
    }

    fn grid() -> Arg {
        // 3x3 single channel: 1..9
        Arg::f32(&[1, 3, 3, 1], (1..=9).map(|v| v as f32).collect())
    }

    #[test]
    fn average_pool_same_padding_counts_only_valid_cells() {
        // 2x2 window, stride 2, SAME on 3x3: 2x2 outputs, padding only after (total 1, 0 before).
        let (shape, y) = run_f32(
            fb::BuiltinOperator::AVERAGE_POOL_2D,
            options(fb::Padding::SAME, 2, 2),
            vec![grid()],
        );
        assert_eq!(shape, vec![1, 2, 2, 1]);
        // [1,2,4,5] -> 3; [3,6] -> 4.5; [7,8] -> 7.5; [9] -> 9.
        assert_close(&y, &[3.0, 4.5, 7.5, 9.0], 1e-6);
    }

    #[test]
    fn max_pool_valid_padding_stride_one() {
        let (shape, y) = run_f32(
            fb::BuiltinOperator::MAX_POOL_2D,
            options(fb::Padding::VALID, 2, 1),
            vec![grid()],
        );
        assert_eq!(shape, vec![1, 2, 2, 1]);
        assert_close(&y, &[5.0, 6.0, 8.0, 9.0], 0.0);
    }

    #[test]
    fn max_pool_same_padding_ignores_padding_for_negative_inputs() {
        let x = Arg::f32(&[1, 2, 2, 1], vec![-4.0, -3.0, -2.0, -1.0]);
        let (_, y) = run_f32(
            fb::BuiltinOperator::MAX_POOL_2D,
            options(fb::Padding::SAME, 3, 1),
            vec![x],
        );
        // Padding is not a zero: every window's max is the largest real cell it covers.
        assert_close(&y, &[-1.0, -1.0, -1.0, -1.0], 0.0);
    }
}
