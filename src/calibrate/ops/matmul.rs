//! The matrix product behind CONV_2D and FULLY_CONNECTED, and the bias + activation epilogue they share.
//!
//! Weights are stored one output channel per row (OHWI, `[units, depth]`), so the product is
//! `out = lhs · weightsᵀ`. Large products go to `matrixmultiply`; products with few rows (late 3x3 feature
//! maps, batch-1 dense layers) are dot products, because packing both operands would cost more than the
//! arithmetic.

use crate::calibrate::vector::{fused_vectors, wide_vectors};
use crate::tflite::fb;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// At most this many rows: dot products instead of a packed GEMM.
pub(crate) const DOT_ROWS: usize = 12;

/// `dst = lhs · weightsᵀ` (`lhs` is `[rows, depth]`, `weights` `[cols, depth]`, `dst` `[rows, cols]`).
pub(crate) fn matmul_weights_t(
    lhs: &ArrayView2<'_, f32>,
    weights: &ArrayView2<'_, f32>,
    dst: &mut ArrayViewMut2<'_, f32>,
) {
    let depth = lhs.ncols();
    if lhs.nrows() <= DOT_ROWS && depth > 0 {
        if let (Some(x), Some(w), Some(out)) =
            (lhs.as_slice(), weights.as_slice(), dst.as_slice_mut())
        {
            dots(x, w, depth, out);
            return;
        }
    }
    general_mat_mul(1.0, lhs, &weights.t(), 0.0, dst);
}

/// [`matmul_weights_t`] on row-major slices: `x` is `[rows, depth]`, `w` `[cols, depth]`, `dst`
/// `[rows, cols]` (lengths are the caller's invariant; a mismatch is an error, not a panic).
pub(crate) fn matmul_slices_weights_t(
    x: &[f32],
    w: &[f32],
    depth: usize,
    dst: &mut [f32],
) -> Result<(), ndarray::ShapeError> {
    let rows = x.len().checked_div(depth).unwrap_or(0);
    let cols = w.len().checked_div(depth).unwrap_or(0);
    if rows <= DOT_ROWS
        && depth > 0
        && rows * depth == x.len()
        && cols * depth == w.len()
        && dst.len() == rows * cols
    {
        dots(x, w, depth, dst);
        return Ok(());
    }
    let lhs = ArrayView2::from_shape((rows, depth), x)?;
    let weights = ArrayView2::from_shape((cols, depth), w)?;
    let mut out = ArrayViewMut2::from_shape((rows, cols), dst)?;
    general_mat_mul(1.0, &lhs, &weights.t(), 0.0, &mut out);
    Ok(())
}

wide_vectors! {
    /// `dst[r, o] = x[r] · w[o]` for every row `r` of `x` and `o` of `w`, both of length `depth`.
    fn dots(x: &[f32], w: &[f32], depth: usize, dst: &mut [f32]) => dot_loops;
}

#[inline(always)]
fn dot_loops(x: &[f32], w: &[f32], depth: usize, dst: &mut [f32]) {
    let cols = w.len() / depth;
    let mut blocks = w.chunks_exact(depth * DOT_BLOCK);
    // Each block of weight rows is read once and used against every input row while it is in cache; its
    // rows' sums are independent chains, so the adds overlap instead of waiting on one another.
    for (b, block) in (&mut blocks).enumerate() {
        let o = b * DOT_BLOCK;
        for (r, x_row) in x.chunks_exact(depth).enumerate() {
            let sums = dot_block(x_row, block, depth);
            if let Some(d) = dst.get_mut(r * cols + o..r * cols + o + DOT_BLOCK) {
                d.copy_from_slice(&sums);
            }
        }
    }
    let first = cols - cols % DOT_BLOCK;
    for (j, w_row) in blocks.remainder().chunks_exact(depth).enumerate() {
        for (r, x_row) in x.chunks_exact(depth).enumerate() {
            if let Some(d) = dst.get_mut(r * cols + first + j) {
                *d = dot(x_row, w_row);
            }
        }
    }
}

/// Weight rows [`dot_block`] multiplies at once.
const DOT_BLOCK: usize = 8;
/// Lanes of every dot product's partial sums.
const LANES: usize = 8;

/// [`dot`] of `x` with each of the [`DOT_BLOCK`] rows of `w` (each `depth` long), every sum in exactly
/// [`dot`]'s order, so blocking changes speed, not bits.
#[inline(always)]
fn dot_block(x: &[f32], w: &[f32], depth: usize) -> [f32; DOT_BLOCK] {
    let mut acc = [[0.0f32; LANES]; DOT_BLOCK];
    let mut rows: [&[f32]; DOT_BLOCK] = [&[]; DOT_BLOCK];
    for (j, row) in rows.iter_mut().enumerate() {
        *row = &w[j * depth..(j + 1) * depth];
    }
    let full = depth - depth % LANES;
    for k in (0..full).step_by(LANES) {
        let xs = &x[k..k + LANES];
        for (a, row) in acc.iter_mut().zip(&rows) {
            let ws = &row[k..k + LANES];
            for i in 0..LANES {
                a[i] += xs[i] * ws[i];
            }
        }
    }
    let mut sums = [0.0f32; DOT_BLOCK];
    for ((sum, a), row) in sums.iter_mut().zip(&acc).zip(&rows) {
        *sum = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        for (x, w) in x[full..].iter().zip(&row[full..]) {
            *sum += x * w;
        }
    }
    sums
}

/// A dot product with eight independent partial sums, which the compiler keeps in vector registers, added
/// pairwise at the end.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// The filter `[cols, depth]` (one output channel per row) as `[depth, cols]`: each input element's
/// weights for every output channel, contiguous, as [`matmul_transposed`] reads them.
pub(crate) fn transpose_weights(w: &[f32], cols: usize, depth: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; depth * cols];
    for (o, row) in w.chunks_exact(depth.max(1)).enumerate().take(cols) {
        for (j, &v) in row.iter().enumerate() {
            t[j * cols + o] = v;
        }
    }
    t
}

fused_vectors! {
    /// `dst[r, o] = Σ_k x[r, k] · wt[k, o]` (`x` is `[rows, depth]`, `wt` `[depth, cols]`, `dst`
    /// `[rows, cols]`): every sum is a chain of fused multiply-adds in `k` order from 0, whatever tile
    /// computes it, so the tiling depends on the shapes only and never changes bits.
    pub(crate) fn matmul_transposed(x: &[f32], wt: &[f32], depth: usize, cols: usize, dst: &mut [f32]) => transposed_loops;
}

/// Output channels of a wide tile: two AVX2 registers per row.
const TILE_COLS: usize = 16;
/// Rows of a wide tile: with [`TILE_COLS`], eight independent accumulator registers.
const TILE_ROWS: usize = 4;

#[inline(always)]
fn transposed_loops(x: &[f32], wt: &[f32], depth: usize, cols: usize, dst: &mut [f32]) {
    if depth == 0 {
        dst.fill(0.0);
        return;
    }
    let rows = (x.len() / depth).min(dst.len() / cols.max(1));
    // Column blocks outside: a block's weights ([depth, width]) stay in cache over all rows.
    let mut o = 0;
    while o + TILE_COLS <= cols {
        tile_rows::<TILE_ROWS, TILE_COLS>(x, wt, depth, cols, rows, o, dst);
        o += TILE_COLS;
    }
    // Channel counts are often multiples of 8, not 16: one register per row, twice the rows.
    if o + TILE_COLS / 2 <= cols {
        tile_rows::<{ 2 * TILE_ROWS }, { TILE_COLS / 2 }>(x, wt, depth, cols, rows, o, dst);
        o += TILE_COLS / 2;
    }
    for r in 0..rows {
        let x_row = &x[r * depth..][..depth];
        for o in o..cols {
            let mut sum = 0.0f32;
            for (k, &v) in x_row.iter().enumerate() {
                sum = v.mul_add(wt[k * cols + o], sum);
            }
            dst[r * cols + o] = sum;
        }
    }
}

/// Every row times the `C` output channels from `o`, `R` rows per tile.
#[inline(always)]
fn tile_rows<const R: usize, const C: usize>(
    x: &[f32],
    wt: &[f32],
    depth: usize,
    cols: usize,
    rows: usize,
    o: usize,
    dst: &mut [f32],
) {
    let mut r = 0;
    while r + R <= rows {
        tile::<R, C>(x, wt, depth, cols, r, o, dst);
        r += R;
    }
    while r < rows {
        tile::<1, C>(x, wt, depth, cols, r, o, dst);
        r += 1;
    }
}

/// `R` rows from `r` times the `C` output channels from `o`, accumulated in registers.
#[inline(always)]
fn tile<const R: usize, const C: usize>(
    x: &[f32],
    wt: &[f32],
    depth: usize,
    cols: usize,
    r: usize,
    o: usize,
    dst: &mut [f32],
) {
    let mut acc = [[0.0f32; C]; R];
    let mut x_rows: [&[f32]; R] = [&[]; R];
    for (i, row) in x_rows.iter_mut().enumerate() {
        *row = &x[(r + i) * depth..][..depth];
    }
    for k in 0..depth {
        let w: &[f32; C] = match wt[k * cols + o..][..C].try_into() {
            Ok(w) => w,
            Err(_) => return,
        };
        for (a, x_row) in acc.iter_mut().zip(&x_rows) {
            let v = x_row[k];
            for i in 0..C {
                a[i] = v.mul_add(w[i], a[i]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        dst[(r + i) * cols + o..][..C].copy_from_slice(a);
    }
}

/// Adds the per-channel bias to every `channels`-wide row and applies the fused activation, in one pass.
pub(crate) fn add_bias_and_activate(
    out: &mut [f32],
    channels: usize,
    bias: Option<&[f32]>,
    act: fb::ActivationFunctionType,
) {
    let (lo, hi) = match act {
        fb::ActivationFunctionType::RELU => (0.0, f32::INFINITY),
        fb::ActivationFunctionType::RELU6 => (0.0, 6.0),
        fb::ActivationFunctionType::RELU_N1_TO_1 => (-1.0, 1.0),
        _ => (f32::NEG_INFINITY, f32::INFINITY),
    };
    bias_and_clamp(out, channels, bias, lo, hi);
    match act {
        fb::ActivationFunctionType::TANH => super::fast_math::tanh_in_place(out),
        fb::ActivationFunctionType::SIGN_BIT => out
            .iter_mut()
            .for_each(|v| *v = if v.is_sign_negative() { 1.0 } else { 0.0 }),
        _ => {}
    }
}

wide_vectors! {
    /// `v = clamp(v + bias[channel], lo, hi)` over `channels`-wide rows (no bias: clamp only).
    fn bias_and_clamp(out: &mut [f32], channels: usize, bias: Option<&[f32]>, lo: f32, hi: f32) => bias_and_clamp_lanes;
}

#[inline(always)]
fn bias_and_clamp_lanes(out: &mut [f32], channels: usize, bias: Option<&[f32]>, lo: f32, hi: f32) {
    let clamp = |v: f32| {
        let v = if v < lo { lo } else { v };
        if v > hi {
            hi
        } else {
            v
        }
    };
    match bias {
        Some(b) if channels > 0 => {
            for row in out.chunks_exact_mut(channels) {
                for (v, &b) in row.iter_mut().zip(b) {
                    *v = clamp(*v + b);
                }
            }
        }
        _ => out.iter_mut().for_each(|v| *v = clamp(*v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn dot_path_and_gemm_path_agree() {
        for rows in [1, DOT_ROWS, DOT_ROWS + 1] {
            let lhs = Array2::from_shape_fn((rows, 19), |(r, k)| ((r * 19 + k) % 7) as f32 - 3.0);
            // 19 output channels: two blocks of DOT_BLOCK weight rows and a remainder.
            let w = Array2::from_shape_fn((19, 19), |(o, k)| ((o * 3 + k) % 5) as f32 * 0.5);
            let mut got = Array2::zeros((rows, 19));
            matmul_weights_t(&lhs.view(), &w.view(), &mut got.view_mut());
            assert_eq!(got, lhs.dot(&w.t()), "rows {rows}");
        }
    }

    #[test]
    fn bias_then_relu6_clamps_each_channel() {
        let mut out = vec![1.0, 7.0, -3.0, 2.0];
        add_bias_and_activate(
            &mut out,
            2,
            Some(&[0.5, -0.5]),
            fb::ActivationFunctionType::RELU6,
        );
        assert_eq!(out, vec![1.5, 6.0, 0.0, 1.5]);
    }
}
