//! Moving data between space, depth and batch: SPACE_TO_DEPTH, DEPTH_TO_SPACE (NHWC, DCR order),
//! SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND (any number of spatial dims after the batch).
//!
//! Each is a reshape, an axis permutation and a reshape back, so one row-major copy does the work.

use super::pad::constant_pad;
use super::typed::{
    element_count, invalid, standard, to_dims, typed_input, with_element_type, Element,
};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb::{self};
use ndarray::{ArrayD, IxDyn, Slice};

/// Views `a` as `split`, permutes the axes by `perm` and returns the row-major result shaped `out`.
fn rearrange<T: Element>(
    a: &ArrayD<T>,
    split: &[usize],
    perm: &[usize],
    out: &[usize],
) -> Result<ArrayD<T>, KernelError> {
    let a = standard(a.view());
    let view = a
        .view()
        .into_shape_with_order(IxDyn(split))
        .map_err(|e| invalid(format!("cannot view {:?} as {split:?}: {e}", a.shape())))?;
    standard(view.permuted_axes(IxDyn(perm)))
        .into_shape_with_order(IxDyn(out))
        .map_err(|e| invalid(format!("cannot shape the result as {out:?}: {e}")))
}

fn block_size(ctx: &OpContext<'_>) -> Result<usize, KernelError> {
    let options = &ctx.operator().builtin_options;
    let size = match options {
        fb::BuiltinOptionsT::SpaceToDepthOptions(o) => o.block_size,
        fb::BuiltinOptionsT::DepthToSpaceOptions(o) => o.block_size,
        _ => return Err(invalid("missing block_size options")),
    };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| invalid(format!("block_size {size} must be positive")))
}

fn nhwc(shape: &[usize]) -> Result<[usize; 4], KernelError> {
    <[usize; 4]>::try_from(shape)
        .map_err(|_| invalid(format!("expected an NHWC input, got shape {shape:?}")))
}

/// SPACE_TO_DEPTH: each `bs x bs` block of pixels becomes `bs*bs*C` channels, ordered (row, col, channel).
pub(crate) fn space_to_depth(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let bs = block_size(ctx)?;
    let x = ctx.input(0)?;
    let [n, h, w, c] = nhwc(x.shape())?;
    if h % bs != 0 || w % bs != 0 {
        return Err(invalid(format!(
            "height {h} and width {w} must be multiples of block_size {bs}"
        )));
    }
    let split = [n, h / bs, bs, w / bs, bs, c];
    let out = [n, h / bs, w / bs, bs * bs * c];
    Ok(vec![
        with_element_type!(x, T => T::into_value(rearrange(typed_input::<T>(ctx, 0)?, &split, &[0, 1, 3, 2, 4, 5], &out)?)),
    ])
}

/// DEPTH_TO_SPACE (DCR): channel `(dy * bs + dx) * C_out + c` moves to pixel offset `(dy, dx)`.
pub(crate) fn depth_to_space(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let bs = block_size(ctx)?;
    let x = ctx.input(0)?;
    let [n, h, w, c] = nhwc(x.shape())?;
    if c % (bs * bs) != 0 {
        return Err(invalid(format!(
            "depth {c} must be a multiple of block_size {bs} squared"
        )));
    }
    let oc = c / (bs * bs);
    let split = [n, h, w, bs, bs, oc];
    let out = [n, h * bs, w * bs, oc];
    Ok(vec![
        with_element_type!(x, T => T::into_value(rearrange(typed_input::<T>(ctx, 0)?, &split, &[0, 1, 3, 2, 4, 5], &out)?)),
    ])
}

/// (before, after) amounts per spatial dim: paddings or crops.
type Edges = Vec<(usize, usize)>;

/// The block shape (input 1) and its `[M, 2]` paddings or crops (input 2), checked against the input.
fn blocks_and_edges(
    ctx: &OpContext<'_>,
    shape: &[usize],
) -> Result<(Vec<usize>, Edges), KernelError> {
    let block = to_dims(&ctx.input_ints(1)?, "block_shape")?;
    let m = block.len();
    if m == 0 || m + 1 > shape.len() || block.contains(&0) {
        return Err(invalid(format!(
            "block_shape {block:?} does not fit an input of shape {shape:?}"
        )));
    }
    let edges_value = ctx.input(2)?;
    if edges_value.shape() != [m, 2] {
        return Err(invalid(format!(
            "paddings/crops have shape {:?}, expected [{m}, 2]",
            edges_value.shape()
        )));
    }
    let edges = to_dims(&ctx.input_ints(2)?, "paddings/crops")?;
    Ok((block, edges.chunks_exact(2).map(|c| (c[0], c[1])).collect()))
}

/// SPACE_TO_BATCH_ND: pads the spatial dims, then moves each block offset into the batch
/// (output batch = block offset * N + n).
pub(crate) fn space_to_batch_nd(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let (block, pads) = blocks_and_edges(ctx, x.shape())?;
    let out = with_element_type!(x, T => T::into_value(space_to_batch_typed(typed_input::<T>(ctx, 0)?, &block, &pads)?));
    Ok(vec![out])
}

fn space_to_batch_typed<T: Element>(
    a: &ArrayD<T>,
    block: &[usize],
    pads: &[(usize, usize)],
) -> Result<ArrayD<T>, KernelError> {
    let m = block.len();
    let rank = a.ndim();
    let mut all_pads = vec![(0, 0); rank];
    all_pads[1..=m].copy_from_slice(pads);
    let padded = constant_pad(a, &all_pads, T::default())?;
    let shape = padded.shape().to_vec();
    let mut split = vec![shape[0]];
    let mut out = vec![shape[0] * block.iter().product::<usize>()];
    for (k, &b) in block.iter().enumerate() {
        let d = shape[k + 1];
        if d % b != 0 {
            return Err(invalid(format!(
                "padded spatial dim {d} is not a multiple of block {b}"
            )));
        }
        split.extend([d / b, b]);
        out.push(d / b);
    }
    split.extend(&shape[m + 1..]);
    out.extend(&shape[m + 1..]);
    // [N, s1/b1, b1, ..., rest] -> [b1, ..., bM, N, s1/b1, ..., sM/bM, rest]
    let perm: Vec<usize> = (0..m)
        .map(|k| 2 + 2 * k)
        .chain([0])
        .chain((0..m).map(|k| 1 + 2 * k))
        .chain(2 * m + 1..split.len())
        .collect();
    element_count(&out)?;
    rearrange(&padded, &split, &perm, &out)
}

/// BATCH_TO_SPACE_ND: the inverse of SPACE_TO_BATCH_ND, then crops the spatial dims.
pub(crate) fn batch_to_space_nd(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let (block, crops) = blocks_and_edges(ctx, x.shape())?;
    let out = with_element_type!(x, T => T::into_value(batch_to_space_typed(typed_input::<T>(ctx, 0)?, &block, &crops)?));
    Ok(vec![out])
}

fn batch_to_space_typed<T: Element>(
    a: &ArrayD<T>,
    block: &[usize],
    crops: &[(usize, usize)],
) -> Result<ArrayD<T>, KernelError> {
    let m = block.len();
    let shape = a.shape();
    let blocks: usize = block.iter().product();
    if shape[0] % blocks != 0 {
        return Err(invalid(format!(
            "batch {} is not a multiple of the block count {blocks}",
            shape[0]
        )));
    }
    let n = shape[0] / blocks;
    let mut split: Vec<usize> = block.to_vec();
    split.push(n);
    split.extend(&shape[1..]);
    let mut out = vec![n];
    // [b1, ..., bM, N, s1, ..., sM, rest] -> [N, s1, b1, ..., sM, bM, rest]
    let mut perm = vec![m];
    for k in 0..m {
        perm.extend([m + 1 + k, k]);
        out.push(shape[k + 1] * block[k]);
    }
    perm.extend(2 * m + 1..split.len());
    out.extend(&shape[m + 1..]);
    let full = rearrange(a, &split, &perm, &out)?;
    for (k, &(lo, hi)) in crops.iter().enumerate() {
        if lo.saturating_add(hi) > out[k + 1] {
            return Err(invalid(format!(
                "crops {crops:?} exceed the spatial dim {}",
                out[k + 1]
            )));
        }
    }
    let cropped = full.slice_each_axis(|ax| {
        let i = ax.axis.index();
        match i.checked_sub(1).and_then(|k| crops.get(k)) {
            Some(&(lo, hi)) => Slice::from(lo..ax.len - hi),
            None => Slice::from(..),
        }
    });
    Ok(standard(cropped))
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, SingleOp};
    use super::*;
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    fn iota(shape: &[usize]) -> Value {
        let n: usize = shape.iter().product();
        f32s(shape, &(0..n).map(|v| v as f32).collect::<Vec<_>>())
    }

    #[test]
    fn space_to_depth_moves_2x2_blocks_into_channels() {
        let op =
            SingleOp::new(Op::SPACE_TO_DEPTH).options(fb::BuiltinOptionsT::SpaceToDepthOptions(
                Box::new(fb::SpaceToDepthOptionsT { block_size: 2 }),
            ));
        let out = op.run1(&[iota(&[1, 2, 2, 1])]);
        assert_eq!(f32_data(&out), (vec![1, 1, 1, 4], vec![0., 1., 2., 3.]));
        let out = op.run1(&[iota(&[1, 2, 4, 1])]);
        assert_eq!(
            f32_data(&out),
            (vec![1, 1, 2, 4], vec![0., 1., 4., 5., 2., 3., 6., 7.])
        );
        assert!(op.run(&[iota(&[1, 3, 2, 1])]).is_err());
    }

    #[test]
    fn depth_to_space_inverts_space_to_depth() {
        let d2s =
            SingleOp::new(Op::DEPTH_TO_SPACE).options(fb::BuiltinOptionsT::DepthToSpaceOptions(
                Box::new(fb::DepthToSpaceOptionsT { block_size: 2 }),
            ));
        let s2d =
            SingleOp::new(Op::SPACE_TO_DEPTH).options(fb::BuiltinOptionsT::SpaceToDepthOptions(
                Box::new(fb::SpaceToDepthOptionsT { block_size: 2 }),
            ));
        let x = iota(&[2, 4, 6, 3]);
        assert_eq!(d2s.run1(&[s2d.run1(std::slice::from_ref(&x))]), x);
        let out = d2s.run1(&[iota(&[1, 1, 1, 8])]);
        assert_eq!(
            f32_data(&out),
            (vec![1, 2, 2, 2], vec![0., 1., 2., 3., 4., 5., 6., 7.])
        );
    }

    #[test]
    fn space_to_batch_nd_pads_then_moves_blocks_into_the_batch() {
        let x = iota(&[1, 2, 3, 1]);
        let out = SingleOp::new(Op::SPACE_TO_BATCH_ND).run1(&[
            x,
            i32s(&[2], &[2, 2]),
            i32s(&[2, 2], &[0, 0, 0, 1]),
        ]);
        let (shape, data) = f32_data(&out);
        assert_eq!(shape, vec![4, 1, 2, 1]);
        // Padded [[0,1,2,pad],[3,4,5,pad]]; batch k = (dy * 2 + dx) takes pixels (dy, dx), (dy, dx + 2).
        assert_eq!(data, vec![0., 2., 1., 0., 3., 5., 4., 0.]);
    }

    #[test]
    fn batch_to_space_nd_inverts_space_to_batch_and_crops() {
        let x = iota(&[2, 4, 6, 3]);
        let block = i32s(&[2], &[2, 3]);
        let edges = i32s(&[2, 2], &[1, 1, 0, 3]);
        let batched =
            SingleOp::new(Op::SPACE_TO_BATCH_ND).run1(&[x.clone(), block.clone(), edges.clone()]);
        assert_eq!(batched.shape(), &[12, 3, 3, 3]);
        let back = SingleOp::new(Op::BATCH_TO_SPACE_ND).run1(&[batched, block, edges]);
        assert_eq!(back, x);
    }

    #[test]
    fn batch_to_space_nd_on_a_3d_input() {
        let x = iota(&[2, 2, 1]);
        let out = SingleOp::new(Op::BATCH_TO_SPACE_ND).run1(&[
            x,
            i32s(&[1], &[2]),
            i32s(&[1, 2], &[0, 1]),
        ]);
        assert_eq!(f32_data(&out), (vec![1, 3, 1], vec![0., 2., 1.]));
        assert!(SingleOp::new(Op::BATCH_TO_SPACE_ND)
            .run(&[iota(&[3, 2, 1]), i32s(&[1], &[2]), i32s(&[1, 2], &[0, 0])])
            .is_err());
    }
}
