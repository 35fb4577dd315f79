//! Slicing: SLICE, STRIDED_SLICE (all masks, negative strides, `offset`) and REVERSE_V2.

use super::typed::{invalid, resolve_axis, standard, typed_input, with_element_type, Element};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, Axis, Slice};

/// SLICE: `size[i]` elements from `begin[i]` along every dimension; a size of -1 means "to the end".
pub(crate) fn slice(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    let begin = ctx.input_ints(1)?;
    let size = ctx.input_ints(2)?;
    if begin.len() != shape.len() || size.len() != shape.len() {
        return Err(invalid(format!(
            "SLICE begin {begin:?} and size {size:?} must have one entry per dim of {shape:?}"
        )));
    }
    let mut ranges = Vec::with_capacity(shape.len());
    for ((&b, &s), &d) in begin.iter().zip(&size).zip(shape) {
        let d = d as i64;
        let e = if s == -1 { d } else { b.saturating_add(s) };
        if b < 0 || s < -1 || e > d {
            return Err(invalid(format!(
                "SLICE begin {begin:?} size {size:?} is outside the input {shape:?}"
            )));
        }
        ranges.push(Slice::new(b as isize, Some(e as isize), 1));
    }
    let out = with_element_type!(x, T => {
        let a = typed_input::<T>(ctx, 0)?;
        T::into_value(standard(a.slice_each_axis(|ax| ranges[ax.axis.index()])))
    });
    Ok(vec![out])
}

/// One axis of a strided slice over the input with its new axes inserted.
#[derive(Debug, Clone, Copy)]
struct AxisSlice {
    start: i64,
    stop: i64,
    stride: i64,
    shrink: bool,
    new_axis: bool,
}

fn bit(mask: i32, i: usize) -> bool {
    i < 32 && (mask as u32 >> i) & 1 == 1
}

/// The per-axis slices of STRIDED_SLICE, as TFLite's kernel resolves them: the ellipsis expands to the
/// dimensions the spec leaves out, new axes become size-1 dimensions, dims past the spec are taken whole,
/// then begin/end are made non-negative, clamped, overridden by the masks (and with `offset`, end is
/// relative to begin).
fn resolve_strided_slice(
    shape: &[usize],
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
    o: &fb::StridedSliceOptionsT,
) -> Result<Vec<AxisSlice>, KernelError> {
    let n = begin.len();
    if end.len() != n || strides.len() != n {
        return Err(invalid(format!(
            "begin {begin:?}, end {end:?} and strides {strides:?} differ in length"
        )));
    }
    if n > 31 {
        return Err(invalid(format!(
            "STRIDED_SLICE supports up to 31 indices, got {n}"
        )));
    }
    if (o.ellipsis_mask as u32 & ((1u32 << n) - 1)).count_ones() > 1 {
        return Err(invalid("STRIDED_SLICE allows at most one ellipsis"));
    }
    let rank = shape.len();
    let num_add = (0..n)
        .filter(|&i| !bit(o.ellipsis_mask, i) && bit(o.new_axis_mask, i))
        .count();
    let eff = rank + num_add;
    let has_ellipsis = (0..n).any(|i| bit(o.ellipsis_mask, i));
    if !has_ellipsis && n > eff {
        return Err(invalid(format!(
            "{n} slice indices for a rank-{rank} input"
        )));
    }

    // Which effective dims the ellipsis covers and which are new axes.
    let mut in_ellipsis = vec![false; eff];
    let mut is_new = vec![false; eff];
    let (mut ellipsis_start, mut expanded) = (eff, 0usize);
    let mut i = 0;
    while i < eff {
        if i < n && bit(o.ellipsis_mask, i) {
            ellipsis_start = i;
            let covered = (i + 1 + num_add + rank) as i64 - n as i64;
            let ellipsis_end = (covered.min(eff as i64) as usize).max(i + 1);
            expanded = ellipsis_end - i - 1;
            in_ellipsis[i..ellipsis_end]
                .iter_mut()
                .for_each(|e| *e = true);
            i = ellipsis_end;
            continue;
        }
        is_new[i] = bit(o.new_axis_mask, i - expanded);
        i += 1;
    }

    let mut axes = Vec::with_capacity(eff);
    let (mut added_ellipsis, mut added_axes) = (0usize, 0usize);
    for i in 0..eff {
        let whole = AxisSlice {
            start: 0,
            stop: i64::MAX,
            stride: 1,
            shrink: false,
            new_axis: false,
        };
        let input_dim = |added_axes: usize| {
            shape
                .get(i - added_axes)
                .map(|&d| d as i64)
                .ok_or_else(|| invalid("slice spec does not fit the input"))
        };
        let (spec, dim, begin_masked, end_masked) = if in_ellipsis[i] {
            added_ellipsis = i.saturating_sub(ellipsis_start);
            (whole, input_dim(added_axes)?, true, true)
        } else if is_new[i] {
            added_axes += 1;
            (
                AxisSlice {
                    start: 0,
                    stop: 1,
                    stride: 1,
                    shrink: false,
                    new_axis: true,
                },
                1,
                false,
                false,
            )
        } else if i >= n + expanded {
            (whole, input_dim(added_axes)?, true, true)
        } else {
            let k = i - added_ellipsis;
            let spec = AxisSlice {
                start: begin[k],
                stop: end[k],
                stride: strides[k],
                shrink: bit(o.shrink_axis_mask, k),
                new_axis: false,
            };
            (
                spec,
                input_dim(added_axes)?,
                bit(o.begin_mask, k),
                bit(o.end_mask, k),
            )
        };
        axes.push(resolve_axis_slice(
            spec,
            dim,
            begin_masked,
            end_masked,
            o.offset,
        )?);
    }
    Ok(axes)
}

fn resolve_axis_slice(
    spec: AxisSlice,
    dim: i64,
    begin_masked: bool,
    end_masked: bool,
    offset: bool,
) -> Result<AxisSlice, KernelError> {
    let stride = spec.stride;
    if stride == 0 {
        return Err(invalid("STRIDED_SLICE stride must be non-zero"));
    }
    let (lo, hi) = if stride > 0 { (0, dim) } else { (-1, dim - 1) };
    let mut start = if spec.start < 0 {
        spec.start.saturating_add(dim)
    } else {
        spec.start
    };
    start = start.clamp(lo, hi.max(lo));
    if begin_masked {
        start = if stride > 0 { 0 } else { dim - 1 };
    }
    let stop = if spec.shrink {
        if start < 0 || start >= dim {
            return Err(invalid(format!(
                "shrink_axis index {} is out of range for a dim of {dim}",
                spec.start
            )));
        }
        start + 1
    } else {
        let mut stop = if offset {
            spec.stop.saturating_add(start)
        } else {
            spec.stop
        };
        if stop < 0 {
            stop = stop.saturating_add(dim);
        }
        stop = stop.clamp(lo, hi.max(lo));
        if end_masked {
            stop = if stride > 0 { dim } else { -1 };
        }
        stop
    };
    Ok(AxisSlice {
        start,
        stop,
        stride,
        ..spec
    })
}

pub(crate) fn strided_slice(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let default = fb::StridedSliceOptionsT::default();
    let o = ctx
        .operator()
        .builtin_options
        .as_strided_slice_options()
        .unwrap_or(&default);
    let axes = resolve_strided_slice(
        x.shape(),
        &ctx.input_ints(1)?,
        &ctx.input_ints(2)?,
        &ctx.input_ints(3)?,
        o,
    )?;
    let out = with_element_type!(x, T => T::into_value(apply_strided_slice(typed_input::<T>(ctx, 0)?, &axes)?));
    Ok(vec![out])
}

fn apply_strided_slice<T: Element>(
    a: &ArrayD<T>,
    axes: &[AxisSlice],
) -> Result<ArrayD<T>, KernelError> {
    let mut view = a.view();
    for (i, s) in axes.iter().enumerate() {
        if s.new_axis {
            view.insert_axis_inplace(Axis(i));
        }
    }
    let to_isize = |v: i64| isize::try_from(v).map_err(|_| invalid("slice index too large"));
    let mut ranges = Vec::with_capacity(axes.len());
    for s in axes {
        // ndarray takes a negative step from the end of [lo, hi): [stop + 1, start + 1) walks down from start.
        let (lo, hi) = if s.stride > 0 {
            (s.start, s.stop.max(s.start))
        } else {
            (s.stop + 1, (s.start + 1).max(s.stop + 1))
        };
        ranges.push(Slice::new(
            to_isize(lo)?,
            Some(to_isize(hi)?),
            to_isize(s.stride)?,
        ));
    }
    let mut sliced = view.slice_each_axis(|ax| ranges[ax.axis.index()]);
    for (i, s) in axes.iter().enumerate().rev() {
        if s.shrink {
            sliced = sliced.index_axis_move(Axis(i), 0);
        }
    }
    Ok(standard(sliced))
}

/// REVERSE_V2: reverses the input along every axis listed in input 1 (negative counts from the end).
pub(crate) fn reverse_v2(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let axes: Vec<usize> = ctx
        .input_ints(1)?
        .iter()
        .map(|&a| resolve_axis(a, x.shape().len(), "axis"))
        .collect::<Result<_, _>>()?;
    let out = with_element_type!(x, T => {
        let mut view = typed_input::<T>(ctx, 0)?.view();
        let mut flipped = vec![false; x.shape().len()];
        for &axis in &axes {
            // Listing an axis twice reverses it once, as TensorFlow does.
            if !std::mem::replace(&mut flipped[axis], true) {
                view.invert_axis(Axis(axis));
            }
        }
        T::into_value(standard(view))
    });
    Ok(vec![out])
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

    fn strided(o: fb::StridedSliceOptionsT) -> SingleOp {
        SingleOp::new(Op::STRIDED_SLICE)
            .options(fb::BuiltinOptionsT::StridedSliceOptions(Box::new(o)))
    }

    fn run_strided(
        o: fb::StridedSliceOptionsT,
        x: Value,
        b: &[i32],
        e: &[i32],
        s: &[i32],
    ) -> (Vec<usize>, Vec<f32>) {
        let n = [b.len()];
        f32_data(&strided(o).run1(&[x, i32s(&n, b), i32s(&n, e), i32s(&n, s)]))
    }

    #[test]
    fn slice_takes_size_elements_and_minus_one_to_the_end() {
        let out = SingleOp::new(Op::SLICE).run1(&[
            iota(&[3, 4]),
            i32s(&[2], &[1, 1]),
            i32s(&[2], &[-1, 2]),
        ]);
        assert_eq!(f32_data(&out), (vec![2, 2], vec![5., 6., 9., 10.]));
        assert!(SingleOp::new(Op::SLICE)
            .run(&[iota(&[3, 4]), i32s(&[2], &[2, 0]), i32s(&[2], &[2, 1])])
            .is_err());
    }

    #[test]
    fn strided_slice_with_negative_stride_walks_backward() {
        let d = fb::StridedSliceOptionsT::default();
        assert_eq!(
            run_strided(d.clone(), iota(&[5]), &[4], &[-6], &[-2]),
            (vec![3], vec![4., 2., 0.])
        );
        assert_eq!(
            run_strided(d.clone(), iota(&[5]), &[-1], &[0], &[-1]),
            (vec![4], vec![4., 3., 2., 1.])
        );
        assert_eq!(
            run_strided(d, iota(&[5]), &[1], &[4], &[2]),
            (vec![2], vec![1., 3.])
        );
    }

    #[test]
    fn strided_slice_begin_and_end_masks_take_the_whole_range() {
        let o = fb::StridedSliceOptionsT {
            begin_mask: 0b01,
            end_mask: 0b10,
            ..Default::default()
        };
        let out = run_strided(o, iota(&[3, 4]), &[2, 1], &[2, 0], &[1, 1]);
        assert_eq!(out, (vec![2, 3], vec![1., 2., 3., 5., 6., 7.]));
        let reversed = fb::StridedSliceOptionsT {
            begin_mask: 1,
            end_mask: 1,
            ..Default::default()
        };
        assert_eq!(
            run_strided(reversed, iota(&[3]), &[0], &[0], &[-1]),
            (vec![3], vec![2., 1., 0.])
        );
    }

    #[test]
    fn strided_slice_shrink_axis_drops_the_dimension() {
        let o = fb::StridedSliceOptionsT {
            shrink_axis_mask: 0b01,
            ..Default::default()
        };
        assert_eq!(
            run_strided(o.clone(), iota(&[3, 2]), &[-1, 0], &[0, 2], &[1, 1]),
            (vec![2], vec![4., 5.])
        );
        assert!(strided(o)
            .run(&[
                iota(&[3, 2]),
                i32s(&[2], &[3, 0]),
                i32s(&[2], &[4, 2]),
                i32s(&[2], &[1, 1])
            ])
            .is_err());
    }

    #[test]
    fn strided_slice_new_axis_inserts_a_size_one_dimension() {
        let o = fb::StridedSliceOptionsT {
            new_axis_mask: 0b01,
            ..Default::default()
        };
        // x[newaxis, 0:1] on [2, 3]: the second index applies to input dim 0, the last dim is taken whole.
        let out = run_strided(o, iota(&[2, 3]), &[0, 0], &[1, 1], &[1, 1]);
        assert_eq!(out, (vec![1, 1, 3], vec![0., 1., 2.]));
    }

    #[test]
    fn strided_slice_ellipsis_covers_the_unlisted_dimensions() {
        // x[..., 1] on [2, 3, 4]: the ellipsis covers the first two dims.
        let o = fb::StridedSliceOptionsT {
            ellipsis_mask: 0b01,
            shrink_axis_mask: 0b10,
            ..Default::default()
        };
        let out = run_strided(o, iota(&[2, 3, 4]), &[0, 1], &[0, 2], &[1, 1]);
        assert_eq!(out.0, vec![2, 3]);
        assert_eq!(
            out.1,
            (0..6).map(|r| (r * 4 + 1) as f32).collect::<Vec<_>>()
        );
        // x[1, ...] on [2, 3]: the ellipsis covers the last dim.
        let o = fb::StridedSliceOptionsT {
            ellipsis_mask: 0b10,
            shrink_axis_mask: 0b01,
            ..Default::default()
        };
        assert_eq!(
            run_strided(o, iota(&[2, 3]), &[1, 0], &[2, 0], &[1, 1]),
            (vec![3], vec![3., 4., 5.])
        );
    }

    #[test]
    fn strided_slice_offset_makes_end_relative_to_begin() {
        let o = fb::StridedSliceOptionsT {
            offset: true,
            ..Default::default()
        };
        assert_eq!(
            run_strided(o, iota(&[6]), &[-4], &[3], &[1]),
            (vec![3], vec![2., 3., 4.])
        );
    }

    #[test]
    fn strided_slice_rejects_a_zero_stride() {
        let d = fb::StridedSliceOptionsT::default();
        assert!(strided(d)
            .run(&[
                iota(&[3]),
                i32s(&[1], &[0]),
                i32s(&[1], &[3]),
                i32s(&[1], &[0])
            ])
            .is_err());
    }

    #[test]
    fn reverse_v2_flips_listed_axes() {
        let out = SingleOp::new(Op::REVERSE_V2).run1(&[iota(&[2, 3]), i32s(&[1], &[-1])]);
        assert_eq!(f32_data(&out), (vec![2, 3], vec![2., 1., 0., 5., 4., 3.]));
        let out = SingleOp::new(Op::REVERSE_V2).run1(&[iota(&[2, 3]), i32s(&[2], &[0, 1])]);
        assert_eq!(f32_data(&out).1, vec![5., 4., 3., 2., 1., 0.]);
        assert!(SingleOp::new(Op::REVERSE_V2)
            .run(&[iota(&[2, 3]), i32s(&[1], &[2])])
            .is_err());
    }
}
