//! Gathering: GATHER (axis, batch_dims) and GATHER_ND. An index outside the gathered dimension is an
//! error, as in TFLite's kernels.

use super::typed::{
    element_count, from_shape_vec, invalid, standard, typed_input, with_element_type, Element,
};
use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::ArrayD;

/// Where GATHER reads: `batch_dims` leading dims shared by params and indices, then the gathered axis.
struct GatherLayout {
    batch: usize,
    outer: usize,
    axis_size: usize,
    inner: usize,
    coords_per_batch: usize,
    out_shape: Vec<usize>,
}

fn gather_layout(
    params: &[usize],
    indices: &[usize],
    axis: i64,
    batch_dims: i64,
) -> Result<GatherLayout, KernelError> {
    let rank = params.len() as i64;
    let index_rank = indices.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let batch_dims = if batch_dims < 0 {
        batch_dims + index_rank
    } else {
        batch_dims
    };
    if axis < 0 || axis >= rank {
        return Err(invalid(format!(
            "GATHER axis {axis} is out of range for params of shape {params:?}"
        )));
    }
    if batch_dims < 0 || batch_dims > axis || batch_dims > index_rank {
        return Err(invalid(format!(
            "GATHER batch_dims {batch_dims} must be in [0, min(axis {axis}, indices rank {index_rank})]"
        )));
    }
    let (axis, batch_dims) = (axis as usize, batch_dims as usize);
    if params[..batch_dims] != indices[..batch_dims] {
        return Err(invalid(format!(
            "GATHER batch dims differ: params {params:?}, indices {indices:?}"
        )));
    }
    let out_shape: Vec<usize> = params[..axis]
        .iter()
        .chain(&indices[batch_dims..])
        .chain(&params[axis + 1..])
        .copied()
        .collect();
    element_count(&out_shape)?;
    Ok(GatherLayout {
        batch: params[..batch_dims].iter().product(),
        outer: params[batch_dims..axis].iter().product(),
        axis_size: params[axis],
        inner: params[axis + 1..].iter().product(),
        coords_per_batch: indices[batch_dims..].iter().product(),
        out_shape,
    })
}

pub(crate) fn gather(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let params = ctx.input(0)?;
    let index_shape = ctx.input(1)?.shape().to_vec();
    let indices = ctx.input_ints(1)?;
    let options = ctx.operator().builtin_options.as_gather_options();
    let axis = options.map_or(0, |o| i64::from(o.axis));
    let batch_dims = options.map_or(0, |o| i64::from(o.batch_dims));
    let layout = gather_layout(params.shape(), &index_shape, axis, batch_dims)?;
    let out = with_element_type!(params, T => T::into_value(gather_typed(typed_input::<T>(ctx, 0)?, &indices, &layout)?));
    Ok(vec![out])
}

fn gather_typed<T: Element>(
    params: &ArrayD<T>,
    indices: &[i64],
    l: &GatherLayout,
) -> Result<ArrayD<T>, KernelError> {
    let params = standard(params.view());
    let p = params
        .as_slice()
        .ok_or_else(|| invalid("params are not contiguous"))?;
    let mut data = Vec::with_capacity(l.out_shape.iter().product());
    for b in 0..l.batch {
        for o in 0..l.outer {
            for &index in &indices[b * l.coords_per_batch..(b + 1) * l.coords_per_batch] {
                let i = usize::try_from(index)
                    .ok()
                    .filter(|&i| i < l.axis_size)
                    .ok_or_else(|| {
                        invalid(format!(
                            "GATHER index {index} is outside [0, {})",
                            l.axis_size
                        ))
                    })?;
                let start = ((b * l.outer + o) * l.axis_size + i) * l.inner;
                data.extend_from_slice(&p[start..start + l.inner]);
            }
        }
    }
    from_shape_vec(&l.out_shape, data)
}

/// GATHER_ND: each row of the last indices dim addresses a slice of params' leading dims.
pub(crate) fn gather_nd(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let params = ctx.input(0)?;
    let index_shape = ctx.input(1)?.shape().to_vec();
    let indices = ctx.input_ints(1)?;
    let (&depth, leading) = index_shape
        .split_last()
        .ok_or_else(|| invalid("GATHER_ND indices must have rank >= 1"))?;
    let pshape = params.shape();
    if depth > pshape.len() {
        return Err(invalid(format!(
            "GATHER_ND index depth {depth} exceeds params rank {}",
            pshape.len()
        )));
    }
    let out_shape: Vec<usize> = leading.iter().chain(&pshape[depth..]).copied().collect();
    element_count(&out_shape)?;
    let slice_len: usize = pshape[depth..].iter().product();
    let out = with_element_type!(params, T => {
        let a = standard(typed_input::<T>(ctx, 0)?.view());
        let p = a.as_slice().ok_or_else(|| invalid("params are not contiguous"))?;
        let mut data = Vec::with_capacity(out_shape.iter().product());
        if depth == 0 {
            for _ in 0..leading.iter().product::<usize>() {
                data.extend_from_slice(p);
            }
        } else {
            for tuple in indices.chunks_exact(depth) {
                let mut offset = 0usize;
                for (k, &i) in tuple.iter().enumerate() {
                    let i = usize::try_from(i).ok().filter(|&i| i < pshape[k]).ok_or_else(|| {
                        invalid(format!("GATHER_ND index {tuple:?} is outside params of shape {pshape:?}"))
                    })?;
                    offset = offset * pshape[k] + i;
                }
                let start = offset * slice_len;
                data.extend_from_slice(&p[start..start + slice_len]);
            }
        }
        T::into_value(from_shape_vec(&out_shape, data)?)
    });
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, i64s, SingleOp};
    use crate::tflite::fb::BuiltinOperator as Op;

    use crate::tflite::fb;

    fn gather_op(axis: i32, batch_dims: i32) -> SingleOp {
        SingleOp::new(Op::GATHER).options(fb::BuiltinOptionsT::GatherOptions(Box::new(
            fb::GatherOptionsT { axis, batch_dims },
        )))
    }

    #[test]
    fn gather_on_axis_zero_picks_rows() {
        let params = f32s(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
        let out = gather_op(0, 0).run1(&[params, i32s(&[2], &[2, 0])]);
        assert_eq!(f32_data(&out), (vec![2, 2], vec![5., 6., 1., 2.]));
    }

    #[test]
    fn gather_on_a_negative_axis_with_matrix_indices() {
        let params = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let out = gather_op(-1, 0).run1(&[params, i64s(&[2, 2], &[0, 2, 1, 1])]);
        assert_eq!(
            f32_data(&out),
            (vec![2, 2, 2], vec![1., 3., 2., 2., 4., 6., 5., 5.])
        );
    }

    #[test]
    fn gather_with_batch_dims_uses_each_batch_own_indices() {
        let params = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let out = gather_op(1, 1).run1(&[params, i32s(&[2, 2], &[2, 0, 1, 1])]);
        assert_eq!(f32_data(&out), (vec![2, 2], vec![3., 1., 5., 5.]));
    }

    #[test]
    fn gather_out_of_range_index_is_an_error() {
        let params = f32s(&[3], &[1., 2., 3.]);
        assert!(gather_op(0, 0)
            .run(&[params.clone(), i32s(&[1], &[3])])
            .is_err());
        assert!(gather_op(0, 0)
            .run(&[params.clone(), i32s(&[1], &[-1])])
            .is_err());
        assert!(gather_op(1, 0).run(&[params, i32s(&[1], &[0])]).is_err());
    }

    #[test]
    fn gather_nd_addresses_elements_and_slices() {
        let params = f32s(&[2, 2], &[1., 2., 3., 4.]);
        let out =
            SingleOp::new(Op::GATHER_ND).run1(&[params.clone(), i32s(&[2, 2], &[1, 0, 0, 1])]);
        assert_eq!(f32_data(&out), (vec![2], vec![3., 2.]));
        let out = SingleOp::new(Op::GATHER_ND).run1(&[params.clone(), i32s(&[1, 1], &[1])]);
        assert_eq!(f32_data(&out), (vec![1, 2], vec![3., 4.]));
        assert!(SingleOp::new(Op::GATHER_ND)
            .run(&[params, i32s(&[1, 2], &[2, 0])])
            .is_err());
    }
}
