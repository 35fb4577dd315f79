//! TRANSPOSE_CONV on NHWC float tensors: LiteRT's `reference_ops::TransposeConv`.
//!
//! Inputs are `(output_shape, weights [O, KH, KW, I], input [N, H, W, I], bias [O]?)`. Every input pixel
//! scatters `input * weight` into the output window it influences (`in * stride - pad + k`); the bias and
//! the fused activation follow. For each output element the contributions arrive in the reference kernel's
//! order (input row, column, channel), so the sums have its rounding.

use super::apply_fused_activation;
use super::kernel_args::{array, bias_values, dims4, flat, missing_options, row_major};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;

/// The geometry of a transposed convolution, as LiteRT's `Prepare`/`Eval` derive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransposeGeometry {
    /// Batches, input height, width, channels.
    pub input: [usize; 4],
    /// Output channels, kernel height, width (weights `[O, KH, KW, I]`).
    pub filter: [usize; 3],
    /// Output height and width.
    pub out: [usize; 2],
    /// Strides (height, width).
    pub stride: [usize; 2],
    /// Leading padding (height, width).
    pub pad: [usize; 2],
}

/// Checks the shapes and computes the padding (`ComputePaddingHeightWidthChecked` run on the output size:
/// the input size it implies must be the actual one).
pub(crate) fn transpose_geometry(
    output_shape: &[i64],
    filter_shape: &[usize],
    input_shape: &[usize],
    padding: fb::Padding,
    stride: [i32; 2],
) -> Result<TransposeGeometry, String> {
    if output_shape.len() != 4 {
        return Err(format!(
            "output_shape {output_shape:?} must have 4 values (NHWC)"
        ));
    }
    let (Ok(input), Ok(filter)) = (
        <[usize; 4]>::try_from(input_shape),
        <[usize; 4]>::try_from(filter_shape),
    ) else {
        return Err(format!(
            "input {input_shape:?} and weights {filter_shape:?} must be 4-D"
        ));
    };
    let out: Vec<usize> = output_shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative output dim {d}")))
        .collect::<Result<_, _>>()?;
    if stride.iter().any(|&s| s <= 0 || s > i32::from(i16::MAX)) {
        return Err(format!("strides {stride:?} must be in 1..=32767"));
    }
    let stride = [stride[0] as usize, stride[1] as usize];
    if input[3] != filter[3] {
        return Err(format!(
            "input channels {} differ from the weights' {}",
            input[3], filter[3]
        ));
    }
    if out[0] != input[0] || out[3] != filter[0] {
        return Err(format!(
            "output_shape {out:?} does not fit input {input_shape:?} and weights {filter_shape:?}"
        ));
    }
    if out[1] == 0 || out[2] == 0 || filter[1] == 0 || filter[2] == 0 {
        return Err("output and kernel sizes must be positive".into());
    }
    let mut pad = [0usize; 2];
    for d in 0..2 {
        let (size, k, s) = (out[1 + d], filter[1 + d], stride[d]);
        let implied = if padding == fb::Padding::SAME {
            size.div_ceil(s)
        } else {
            if size + s < k {
                return Err(format!(
                    "output size {size} is smaller than the kernel's {k}"
                ));
            }
            (size + s - k) / s
        };
        if implied != input[1 + d] {
            return Err(format!(
                "output_shape {out:?} implies input size {implied} on dim {}, the input has {}",
                1 + d,
                input[1 + d]
            ));
        }
        let total = ((implied.max(1) - 1) * s + k).saturating_sub(size);
        pad[d] = total / 2;
    }
    Ok(TransposeGeometry {
        input,
        filter: [filter[0], filter[1], filter[2]],
        out: [out[1], out[2]],
        stride,
        pad,
    })
}

impl TransposeGeometry {
    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.input[0] * self.out[0] * self.out[1] * self.filter[0]
    }

    /// Visits, in the reference kernel's order, every (input pixel, kernel tap) pair that lands inside the
    /// output: `f(input pixel offset, weight tap (ky, kx), output pixel offset)`, offsets in elements of
    /// the first channel.
    pub fn scatter(&self, mut f: impl FnMut(usize, (usize, usize), usize)) {
        let [n, h, w, c] = self.input;
        let [oc, kh, kw] = self.filter;
        let [oh, ow] = self.out;
        for b in 0..n {
            for iy in 0..h {
                for ix in 0..w {
                    let in_base = ((b * h + iy) * w + ix) * c;
                    let y0 = (iy * self.stride[0]) as i64 - self.pad[0] as i64;
                    let x0 = (ix * self.stride[1]) as i64 - self.pad[1] as i64;
                    for ky in 0..kh {
                        let oy = y0 + ky as i64;
                        if oy < 0 || oy >= oh as i64 {
                            continue;
                        }
                        for kx in 0..kw {
                            let ox = x0 + kx as i64;
                            if ox < 0 || ox >= ow as i64 {
                                continue;
                            }
                            let out_base = ((b * oh + oy as usize) * ow + ox as usize) * oc;
                            f(in_base, (ky, kx), out_base);
                        }
                    }
                }
            }
        }
    }
}

/// Weights `[O, KH, KW, I]` rearranged to `[KH, KW, I, O]` so a tap's output channels are contiguous.
pub(crate) fn taps_by_output_channel<T: Copy>(w: &[T], filter: [usize; 3], ic: usize) -> Vec<T> {
    let [oc, kh, kw] = filter;
    let mut out = Vec::with_capacity(w.len());
    for ky in 0..kh {
        for kx in 0..kw {
            for i in 0..ic {
                out.extend((0..oc).map(|o| w[((o * kh + ky) * kw + kx) * ic + i]));
            }
        }
    }
    out
}

pub(crate) fn transpose_conv(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_transpose_conv_options()
        .ok_or_else(|| missing_options("TransposeConvOptions"))?;
    let output_shape = ctx.input_ints(0)?;
    let filter = row_major(ctx.input_f32(1)?);
    let input = row_major(ctx.input_f32(2)?);
    dims4(input.shape(), "input")?;
    dims4(filter.shape(), "weights")?;
    let g = transpose_geometry(
        &output_shape,
        filter.shape(),
        input.shape(),
        o.padding,
        [o.stride_h, o.stride_w],
    )
    .map_err(KernelError::Invalid)?;
    let oc = g.filter[0];
    let ic = g.input[3];
    let bias = bias_values(ctx, 3, oc)?;
    let x = flat(&input)?;
    let taps = taps_by_output_channel(flat(&filter)?, g.filter, ic);
    let kw = g.filter[2];
    let mut out = vec![0.0f32; g.output_len()];
    g.scatter(|in_base, (ky, kx), out_base| {
        let dst = &mut out[out_base..out_base + oc];
        for (i, &v) in x[in_base..in_base + ic].iter().enumerate() {
            let t = ((ky * kw + kx) * ic + i) * oc;
            for (d, &wt) in dst.iter_mut().zip(&taps[t..t + oc]) {
                *d += v * wt;
            }
        }
    });
    if let Some(b) = &bias {
        let b = flat(b)?;
        for px in out.chunks_exact_mut(oc.max(1)) {
            for (d, &bv) in px.iter_mut().zip(b) {
                *d += bv;
            }
        }
    }
    let [n, _, _, _] = g.input;
    let mut result = array(&[n, g.out[0], g.out[1], oc], out)?;
    apply_fused_activation(&mut result, o.fused_activation_function);
    Ok(vec![Value::F32(result)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::ops::single_op::{f32_data, f32s, i32s, SingleOp};

    fn options(padding: fb::Padding, stride: i32) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::TransposeConvOptions(Box::new(fb::TransposeConvOptionsT {
            padding,
            stride_w: stride,
            stride_h: stride,
            ..Default::default()
        }))
    }

    #[test]
    fn stride_2_valid_scatters_each_input_into_its_window() {
        // input 2x2x1 [1, 2; 3, 4], kernel 2x2 [1, 10; 100, 1000], stride 2, VALID: output 4x4 is the
        // Kronecker product; bias 0.5 is added everywhere.
        let op = SingleOp::new(fb::BuiltinOperator::TRANSPOSE_CONV)
            .options(options(fb::Padding::VALID, 2))
            .outputs(&[(fb::TensorType::FLOAT32, &[1, 4, 4, 1])]);
        let out = op.run1(&[
            i32s(&[4], &[1, 4, 4, 1]),
            f32s(&[1, 2, 2, 1], &[1.0, 10.0, 100.0, 1000.0]),
            f32s(&[1, 2, 2, 1], &[1.0, 2.0, 3.0, 4.0]),
            f32s(&[1], &[0.5]),
        ]);
        let (shape, v) = f32_data(&out);
        assert_eq!(shape, vec![1, 4, 4, 1]);
        let k = [1.0, 10.0, 100.0, 1000.0];
        let x = [1.0, 2.0, 3.0, 4.0];
        for oy in 0..4 {
            for ox in 0..4 {
                let want = x[(oy / 2) * 2 + ox / 2] * k[(oy % 2) * 2 + ox % 2] + 0.5;
                assert_eq!(v[oy * 4 + ox], want, "({oy}, {ox})");
            }
        }
    }

    #[test]
    fn overlapping_taps_sum_over_input_channels() {
        // 1x1 input with 2 channels, 3x3 kernel with 2 output channels, stride 1, SAME: output 1x1 reads
        // the centre tap only: out[o] = sum_i x[i] * w[o, 1, 1, i].
        let mut w = vec![0.0f32; 2 * 3 * 3 * 2];
        for o in 0..2 {
            for i in 0..2 {
                w[((o * 3 + 1) * 3 + 1) * 2 + i] = (1 + o * 2 + i) as f32;
            }
        }
        let op = SingleOp::new(fb::BuiltinOperator::TRANSPOSE_CONV)
            .options(options(fb::Padding::SAME, 1))
            .outputs(&[(fb::TensorType::FLOAT32, &[1, 1, 1, 2])]);
        let out = op.run1(&[
            i32s(&[4], &[1, 1, 1, 2]),
            f32s(&[2, 3, 3, 2], &w),
            f32s(&[1, 1, 1, 2], &[2.0, 3.0]),
        ]);
        // o=0: 2*1 + 3*2 = 8; o=1: 2*3 + 3*4 = 18.
        assert_eq!(f32_data(&out).1, vec![8.0, 18.0]);
    }

    #[test]
    fn same_padding_stride_2_matches_a_direct_scatter() {
        // 2x2 input, 3x3 kernel, stride 2, SAME: output 4x4, total padding 1 (pad 0 leading).
        let g = transpose_geometry(
            &[1, 4, 4, 1],
            &[1, 3, 3, 1],
            &[1, 2, 2, 1],
            fb::Padding::SAME,
            [2, 2],
        )
        .unwrap();
        assert_eq!(g.pad, [0, 0]);
        let g = transpose_geometry(
            &[1, 3, 3, 1],
            &[1, 3, 3, 1],
            &[1, 2, 2, 1],
            fb::Padding::SAME,
            [2, 2],
        )
        .unwrap();
        // 2 = ceil(3/2); total padding (2-1)*2+3-3 = 2: one leading.
        assert_eq!(g.pad, [1, 1]);
    }

    #[test]
    fn output_shape_must_imply_the_input_size() {
        let e = transpose_geometry(
            &[1, 9, 9, 1],
            &[1, 3, 3, 1],
            &[1, 2, 2, 1],
            fb::Padding::SAME,
            [2, 2],
        )
        .unwrap_err();
        assert!(e.contains("implies input size"), "{e}");
    }
}
