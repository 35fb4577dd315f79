//! Joining and splitting: CONCATENATION (negative axis, fused activation), SPLIT, SPLIT_V, PACK, UNPACK.

use super::apply_fused_activation;
use super::typed::{
    from_shape_vec, invalid, resolve_axis, scalar_int, standard, typed_input, with_element_type,
    Element,
};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, ArrayViewD, Axis, Slice};

/// Every input of the op as an array of `T` (all inputs must share the first one's type).
fn all_inputs<'a, T: Element>(ctx: &OpContext<'a>) -> Result<Vec<&'a ArrayD<T>>, KernelError> {
    if ctx.inputs.is_empty() {
        return Err(invalid("the op has no inputs"));
    }
    (0..ctx.inputs.len())
        .map(|i| typed_input::<T>(ctx, i))
        .collect()
}

pub(crate) fn concatenation(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let first = ctx.input(0)?;
    let options = ctx.operator().builtin_options.as_concatenation_options();
    let axis = options.map_or(0, |o| o.axis);
    let act = options.map_or(fb::ActivationFunctionType::NONE, |o| {
        o.fused_activation_function
    });
    let mut out = with_element_type!(first, T => {
        let inputs = all_inputs::<T>(ctx)?;
        let axis = resolve_axis(i64::from(axis), first.shape().len(), "CONCATENATION axis")?;
        T::into_value(concat(&inputs, axis)?)
    });
    if let Value::F32(a) = &mut out {
        apply_fused_activation(a, act);
    }
    Ok(vec![out])
}

/// Joins arrays along `axis`. Row-major inputs are copied as whole runs: for every index of the leading
/// dims, each input contributes one contiguous chunk, whatever the axis.
pub(crate) fn concat<T: Element>(
    inputs: &[&ArrayD<T>],
    axis: usize,
) -> Result<ArrayD<T>, KernelError> {
    let first = inputs
        .first()
        .ok_or_else(|| invalid("nothing to concatenate"))?;
    let mut shape = first.shape().to_vec();
    shape[axis] = 0;
    for (i, x) in inputs.iter().enumerate() {
        let fits = x.ndim() == shape.len()
            && x.shape()
                .iter()
                .zip(&shape)
                .enumerate()
                .all(|(k, (a, b))| k == axis || a == b);
        if !fits {
            return Err(invalid(format!(
                "input {i} of shape {:?} does not fit input 0's {:?} outside axis {axis}",
                x.shape(),
                first.shape()
            )));
        }
        shape[axis] += x.shape()[axis];
    }
    let slices: Option<Vec<&[T]>> = inputs.iter().map(|x| x.as_slice()).collect();
    match slices {
        Some(slices) => {
            let outer: usize = shape[..axis].iter().product();
            let inner: usize = shape[axis + 1..].iter().product();
            let chunks: Vec<usize> = inputs.iter().map(|x| x.shape()[axis] * inner).collect();
            let mut data = Vec::with_capacity(outer * shape[axis] * inner);
            for o in 0..outer {
                for (s, &chunk) in slices.iter().zip(&chunks) {
                    data.extend_from_slice(&s[o * chunk..(o + 1) * chunk]);
                }
            }
            from_shape_vec(&shape, data)
        }
        None => {
            let views: Vec<ArrayViewD<'_, T>> = inputs.iter().map(|x| x.view()).collect();
            ndarray::concatenate(Axis(axis), &views)
                .map_err(|e| invalid(format!("cannot concatenate: {e}")))
        }
    }
}

/// Checks that the op declares one output per piece, so no result is dropped or left unset.
fn check_output_count(ctx: &OpContext<'_>, pieces: usize) -> Result<(), KernelError> {
    let declared = ctx.graph.op_outputs(ctx.op).len();
    if declared != pieces {
        return Err(invalid(format!(
            "the op makes {pieces} pieces but declares {declared} outputs"
        )));
    }
    Ok(())
}

/// Cuts `a` along `axis` into consecutive pieces of the given sizes.
fn split_into<T: Element>(a: &ArrayD<T>, axis: usize, sizes: &[usize]) -> Vec<Value> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let piece = a.slice_axis(Axis(axis), Slice::from(start..start + n));
            start += n;
            T::into_value(standard(piece))
        })
        .collect()
}

/// SPLIT: the axis is input 0 and the data input 1; `num_splits` equal pieces.
pub(crate) fn split(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(1)?;
    let axis = resolve_axis(
        scalar_int(ctx, 0, "SPLIT axis")?,
        x.shape().len(),
        "SPLIT axis",
    )?;
    let num = ctx
        .operator()
        .builtin_options
        .as_split_options()
        .map(|o| o.num_splits)
        .filter(|&n| n > 0);
    let num = num.map_or(ctx.graph.op_outputs(ctx.op).len(), |n| n as usize);
    let dim = x.shape()[axis];
    if num == 0 || dim % num != 0 {
        return Err(invalid(format!(
            "cannot split a dim of {dim} into {num} equal pieces"
        )));
    }
    let sizes = vec![dim / num; num];
    check_output_count(ctx, sizes.len())?;
    Ok(with_element_type!(x, T => split_into(typed_input::<T>(ctx, 1)?, axis, &sizes)))
}

/// SPLIT_V: data input 0, piece sizes input 1 (one may be -1: the rest), axis input 2.
pub(crate) fn split_v(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let axis = resolve_axis(
        scalar_int(ctx, 2, "SPLIT_V axis")?,
        x.shape().len(),
        "SPLIT_V axis",
    )?;
    let dim = x.shape()[axis];
    let spec = ctx.input_ints(1)?;
    let mut rest = None;
    let mut known = 0usize;
    let mut sizes = Vec::with_capacity(spec.len());
    for (i, &s) in spec.iter().enumerate() {
        if s == -1 && rest.replace(i).is_none() {
            sizes.push(0);
            continue;
        }
        let s = usize::try_from(s)
            .map_err(|_| invalid(format!("SPLIT_V sizes {spec:?} are invalid")))?;
        known = known.saturating_add(s);
        sizes.push(s);
    }
    if let Some(i) = rest {
        sizes[i] = dim
            .checked_sub(known)
            .ok_or_else(|| invalid(format!("SPLIT_V sizes {spec:?} exceed {dim}")))?;
    }
    if sizes.iter().sum::<usize>() != dim {
        return Err(invalid(format!(
            "SPLIT_V sizes {spec:?} do not add up to the dim {dim}"
        )));
    }
    check_output_count(ctx, sizes.len())?;
    Ok(with_element_type!(x, T => split_into(typed_input::<T>(ctx, 0)?, axis, &sizes)))
}

/// PACK: stacks same-shaped inputs along a new axis in `[-rank-1, rank]`.
pub(crate) fn pack(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let first = ctx.input(0)?;
    let axis = ctx
        .operator()
        .builtin_options
        .as_pack_options()
        .map_or(0, |o| o.axis);
    let axis = resolve_axis(i64::from(axis), first.shape().len() + 1, "PACK axis")?;
    let out = with_element_type!(first, T => {
        let inputs = all_inputs::<T>(ctx)?;
        if let Some(i) = inputs.iter().position(|x| x.shape() != first.shape()) {
            return Err(invalid(format!("PACK input {i} has shape {:?}, input 0 has {:?}", inputs[i].shape(), first.shape())));
        }
        let views: Vec<ArrayViewD<'_, T>> = inputs.iter().map(|x| x.view()).collect();
        T::into_value(ndarray::stack(Axis(axis), &views).map_err(|e| invalid(format!("cannot pack: {e}")))?)
    });
    Ok(vec![out])
}

/// UNPACK: one output per index along the axis, that axis removed.
pub(crate) fn unpack(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let options = ctx.operator().builtin_options.as_unpack_options();
    let axis = resolve_axis(
        i64::from(options.map_or(0, |o| o.axis)),
        x.shape().len(),
        "UNPACK axis",
    )?;
    let dim = x.shape()[axis];
    if let Some(num) = options.map(|o| o.num).filter(|&n| n != 0) {
        if num as i64 != dim as i64 {
            return Err(invalid(format!(
                "UNPACK num {num} differs from the dim {dim} along axis {axis}"
            )));
        }
    }
    check_output_count(ctx, dim)?;
    Ok(with_element_type!(x, T => {
        let a = typed_input::<T>(ctx, 0)?;
        a.axis_iter(Axis(axis)).map(|v| T::into_value(standard(v))).collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, SingleOp};
    use super::*;
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    const TWO_OUTPUTS: &[(fb::TensorType, &[i32])] = &[
        (fb::TensorType::FLOAT32, &[]),
        (fb::TensorType::FLOAT32, &[]),
    ];

    fn concat_op(axis: i32, act: fb::ActivationFunctionType) -> SingleOp {
        SingleOp::new(Op::CONCATENATION).options(fb::BuiltinOptionsT::ConcatenationOptions(
            Box::new(fb::ConcatenationOptionsT {
                axis,
                fused_activation_function: act,
            }),
        ))
    }

    #[test]
    fn concatenation_on_negative_axis_joins_the_last_dim() {
        let a = f32s(&[2, 1], &[1., 2.]);
        let b = f32s(&[2, 2], &[3., 4., 5., 6.]);
        let out = concat_op(-1, fb::ActivationFunctionType::NONE).run1(&[a, b]);
        assert_eq!(f32_data(&out), (vec![2, 3], vec![1., 3., 4., 2., 5., 6.]));
    }

    #[test]
    fn concatenation_on_the_first_axis_and_with_fused_relu() {
        let a = f32s(&[1, 2], &[-1., 2.]);
        let b = f32s(&[2, 2], &[3., -4., 5., 6.]);
        let out = concat_op(0, fb::ActivationFunctionType::RELU).run1(&[a, b]);
        assert_eq!(f32_data(&out), (vec![3, 2], vec![0., 2., 3., 0., 5., 6.]));
    }

    #[test]
    fn concatenation_of_non_row_major_inputs_matches() {
        let t = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![1f32, 2., 3., 4.])
            .unwrap()
            .reversed_axes();
        let out = concat(&[&t, &t], 1).unwrap();
        assert_eq!(
            out.iter().copied().collect::<Vec<_>>(),
            vec![1., 3., 1., 3., 2., 4., 2., 4.]
        );
    }

    #[test]
    fn concatenation_rejects_mismatched_shapes() {
        let err = concat_op(0, fb::ActivationFunctionType::NONE)
            .run(&[f32s(&[1, 2], &[0.; 2]), f32s(&[1, 3], &[0.; 3])]);
        assert!(matches!(err, Err(KernelError::Invalid(m)) if m.contains("does not fit")));
        assert!(concat_op(2, fb::ActivationFunctionType::NONE)
            .run(&[f32s(&[1, 2], &[0.; 2])])
            .is_err());
    }

    #[test]
    fn split_reads_the_axis_from_input_zero() {
        let op = SingleOp::new(Op::SPLIT)
            .options(fb::BuiltinOptionsT::SplitOptions(Box::new(
                fb::SplitOptionsT { num_splits: 2 },
            )))
            .outputs(&[
                (fb::TensorType::FLOAT32, &[]),
                (fb::TensorType::FLOAT32, &[]),
            ]);
        let out = op
            .run(&[i32s(&[], &[-1]), f32s(&[1, 4], &[1., 2., 3., 4.])])
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(f32_data(&out[0]), (vec![1, 2], vec![1., 2.]));
        assert_eq!(f32_data(&out[1]), (vec![1, 2], vec![3., 4.]));
        let three = SingleOp::new(Op::SPLIT).options(fb::BuiltinOptionsT::SplitOptions(Box::new(
            fb::SplitOptionsT { num_splits: 3 },
        )));
        assert!(three
            .run(&[i32s(&[], &[1]), f32s(&[1, 4], &[0.; 4])])
            .is_err());
    }

    #[test]
    fn split_v_infers_the_minus_one_piece() {
        let out = SingleOp::new(Op::SPLIT_V)
            .outputs(TWO_OUTPUTS)
            .run(&[
                f32s(&[5], &[1., 2., 3., 4., 5.]),
                i32s(&[2], &[-1, 2]),
                i32s(&[], &[0]),
            ])
            .unwrap();
        assert_eq!(f32_data(&out[0]).1, vec![1., 2., 3.]);
        assert_eq!(f32_data(&out[1]).1, vec![4., 5.]);
        assert!(SingleOp::new(Op::SPLIT_V)
            .outputs(TWO_OUTPUTS)
            .run(&[f32s(&[5], &[0.; 5]), i32s(&[2], &[1, 2]), i32s(&[], &[0])])
            .is_err());
    }

    #[test]
    fn split_with_fewer_declared_outputs_than_pieces_is_an_error() {
        let err = SingleOp::new(Op::SPLIT_V).run(&[
            f32s(&[5], &[0.; 5]),
            i32s(&[2], &[3, 2]),
            i32s(&[], &[0]),
        ]);
        assert!(matches!(err, Err(KernelError::Invalid(m)) if m.contains("declares 1 outputs")));
    }

    #[test]
    fn pack_and_unpack_round_trip_on_a_negative_axis() {
        let pack = SingleOp::new(Op::PACK).options(fb::BuiltinOptionsT::PackOptions(Box::new(
            fb::PackOptionsT {
                values_count: 2,
                axis: -1,
            },
        )));
        let packed = pack.run1(&[f32s(&[2], &[1., 2.]), f32s(&[2], &[3., 4.])]);
        assert_eq!(f32_data(&packed), (vec![2, 2], vec![1., 3., 2., 4.]));
        let unpack = SingleOp::new(Op::UNPACK).options(fb::BuiltinOptionsT::UnpackOptions(
            Box::new(fb::UnpackOptionsT { num: 2, axis: -1 }),
        ));
        let parts = unpack.outputs(TWO_OUTPUTS).run(&[packed]).unwrap();
        assert_eq!(f32_data(&parts[0]), (vec![2], vec![1., 2.]));
        assert_eq!(f32_data(&parts[1]), (vec![2], vec![3., 4.]));
    }
}
