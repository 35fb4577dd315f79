//! Shape ops: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, SHAPE, FILL, BROADCAST_TO, TILE.

use super::typed::{
    element_count, from_shape_vec, invalid, resolve_axis, scalar_int, standard, to_dims,
    typed_input, with_element_type, Element,
};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, Axis, IxDyn};

/// The same data under a new shape. Row-major data is reshaped as a view and copied once.
pub(crate) fn reshaped(x: &Value, shape: &[usize]) -> Result<Value, KernelError> {
    if element_count(shape)? != x.shape().iter().product::<usize>() {
        return Err(invalid(format!(
            "cannot reshape {:?} to {shape:?}: element counts differ",
            x.shape()
        )));
    }
    Ok(with_element_type!(x, T => {
        let a = T::array(x).ok_or_else(|| invalid("value type changed"))?;
        let view = a
            .to_shape((IxDyn(shape), ndarray::Order::RowMajor))
            .map_err(|e| invalid(format!("cannot reshape {:?} to {shape:?}: {e}", a.shape())))?;
        T::into_value(view.into_owned())
    }))
}

/// RESHAPE's target: the shape tensor (input 1) when it is a vector, else `new_shape` from the options
/// (`[0]` is a legacy spelling of a scalar), else the output tensor's declared shape. One -1 is inferred.
pub(crate) fn reshape(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let shape = reshape_target(ctx)?;
    Ok(vec![reshaped(ctx.input(0)?, &shape)?])
}

/// The shape RESHAPE gives its input (see [`reshape`]), for a caller that reshapes the data itself (the
/// interpreter moves an input nobody reads afterwards instead of copying it).
pub(crate) fn reshape_target(ctx: &OpContext<'_>) -> Result<Vec<usize>, KernelError> {
    let x = ctx.input(0)?;
    let from_tensor = match ctx.inputs.get(1).copied().flatten() {
        Some(v) if v.shape().len() == 1 => v.to_i64_vec(),
        _ => None,
    };
    let spec: Vec<i64> = match from_tensor {
        Some(s) => s,
        None => match ctx
            .operator()
            .builtin_options
            .as_reshape_options()
            .and_then(|o| o.new_shape.as_ref())
        {
            Some(s) if s.as_slice() == [0] => vec![],
            Some(s) => s.iter().map(|&d| i64::from(d)).collect(),
            None => ctx.output_shape(0).iter().map(|&d| d as i64).collect(),
        },
    };
    let count: usize = x.shape().iter().product();
    infer_stretch_dim(&spec, count)
}

/// Resolves a reshape spec with at most one -1 against an element count.
fn infer_stretch_dim(spec: &[i64], count: usize) -> Result<Vec<usize>, KernelError> {
    let mut stretch = None;
    let mut known = 1usize;
    let mut dims = Vec::with_capacity(spec.len());
    for (i, &d) in spec.iter().enumerate() {
        if d == -1 {
            if stretch.replace(i).is_some() {
                return Err(invalid(format!("shape {spec:?} has more than one -1")));
            }
            dims.push(0);
        } else {
            let d = usize::try_from(d)
                .map_err(|_| invalid(format!("shape {spec:?} has a negative dimension")))?;
            known = known
                .checked_mul(d)
                .ok_or_else(|| invalid(format!("shape {spec:?} is too large")))?;
            dims.push(d);
        }
    }
    if let Some(i) = stretch {
        if known == 0 || count % known != 0 {
            return Err(invalid(format!(
                "cannot infer the -1 in {spec:?} for {count} elements"
            )));
        }
        dims[i] = count / known;
    }
    if element_count(&dims)? != count {
        return Err(invalid(format!(
            "shape {spec:?} does not hold {count} elements"
        )));
    }
    Ok(dims)
}

/// SQUEEZE: drops the listed size-1 dimensions (negative counts from the end), or every size-1 one.
pub(crate) fn squeeze(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let in_shape = x.shape();
    let dims = ctx
        .operator()
        .builtin_options
        .as_squeeze_options()
        .and_then(|o| o.squeeze_dims.clone());
    let mut drop = vec![false; in_shape.len()];
    match dims.filter(|d| !d.is_empty()) {
        None => drop
            .iter_mut()
            .zip(in_shape)
            .for_each(|(k, &d)| *k = d == 1),
        Some(list) => {
            for d in list {
                let axis = resolve_axis(i64::from(d), in_shape.len(), "squeeze dim")?;
                if in_shape[axis] != 1 {
                    return Err(invalid(format!(
                        "cannot squeeze dim {d} of {in_shape:?}: its size is not 1"
                    )));
                }
                drop[axis] = true;
            }
        }
    }
    let shape: Vec<usize> = in_shape
        .iter()
        .zip(&drop)
        .filter(|(_, &k)| !k)
        .map(|(&d, _)| d)
        .collect();
    Ok(vec![reshaped(x, &shape)?])
}

/// EXPAND_DIMS: inserts a size-1 dimension at the axis of input 1, in `[-rank-1, rank]`.
pub(crate) fn expand_dims(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let rank = x.shape().len();
    let axis = resolve_axis(scalar_int(ctx, 1, "axis")?, rank + 1, "axis")?;
    let mut shape = x.shape().to_vec();
    shape.insert(axis, 1);
    Ok(vec![reshaped(x, &shape)?])
}

/// TRANSPOSE: output dimension `i` is input dimension `perm[i]`.
pub(crate) fn transpose(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let rank = x.shape().len();
    let perm = ctx.input_ints(1)?;
    if perm.len() != rank {
        return Err(invalid(format!(
            "perm {perm:?} has {} entries for a rank-{rank} input",
            perm.len()
        )));
    }
    let perm: Vec<usize> = perm
        .iter()
        .map(|&p| resolve_axis(p, rank, "perm entry"))
        .collect::<Result<_, _>>()?;
    let mut seen = vec![false; rank];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return Err(invalid(format!("perm {perm:?} repeats axis {p}")));
        }
    }
    let out = with_element_type!(x, T => {
        let a = typed_input::<T>(ctx, 0)?;
        T::into_value(standard(a.view().permuted_axes(IxDyn(&perm))))
    });
    Ok(vec![out])
}

/// SHAPE: the input's shape as INT32, or INT64 when the output is declared so.
pub(crate) fn shape(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let dims = ctx.input(0)?.shape();
    let n = [dims.len()];
    let wants_i64 = ctx.output_type(0) == fb::TensorType::INT64;
    let out = if wants_i64 {
        let data = dims
            .iter()
            .map(|&d| i64::try_from(d).map_err(|_| invalid("dimension too large")))
            .collect::<Result<_, _>>()?;
        Value::I64(from_shape_vec(&n, data)?)
    } else {
        let data = dims
            .iter()
            .map(|&d| i32::try_from(d).map_err(|_| invalid("dimension too large for INT32")))
            .collect::<Result<_, _>>()?;
        Value::I32(from_shape_vec(&n, data)?)
    };
    Ok(vec![out])
}

/// FILL: a tensor of the shape in input 0, every element the scalar of input 1.
pub(crate) fn fill(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let dims = to_dims(&ctx.input_ints(0)?, "FILL dims")?;
    element_count(&dims)?;
    let value = ctx.input(1)?;
    if value.shape().iter().product::<usize>() != 1 {
        return Err(invalid(format!(
            "FILL value must be a scalar, it has shape {:?}",
            value.shape()
        )));
    }
    let out = with_element_type!(value, T => {
        let v = typed_input::<T>(ctx, 1)?.first().copied().unwrap_or_default();
        T::into_value(ArrayD::from_elem(IxDyn(&dims), v))
    });
    Ok(vec![out])
}

/// BROADCAST_TO: the input broadcast to the shape in input 1.
pub(crate) fn broadcast_to(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let dims = to_dims(&ctx.input_ints(1)?, "BROADCAST_TO shape")?;
    element_count(&dims)?;
    let out = with_element_type!(x, T => {
        let a = typed_input::<T>(ctx, 0)?;
        let view = a
            .broadcast(IxDyn(&dims))
            .ok_or_else(|| invalid(format!("cannot broadcast {:?} to {dims:?}", a.shape())))?;
        T::into_value(standard(view))
    });
    Ok(vec![out])
}

/// TILE: repeats the input `multiples[i]` times along each dimension `i`.
pub(crate) fn tile(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let multiples = to_dims(&ctx.input_ints(1)?, "TILE multiples")?;
    if multiples.len() != x.shape().len() {
        return Err(invalid(format!(
            "TILE multiples {multiples:?} do not match the input's rank {}",
            x.shape().len()
        )));
    }
    let out_shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&multiples)
        .map(|(&d, &m)| d.saturating_mul(m))
        .collect();
    element_count(&out_shape)?;
    let out = with_element_type!(x, T => T::into_value(tile_typed(typed_input::<T>(ctx, 0)?, &multiples)?));
    Ok(vec![out])
}

fn tile_typed<T: Element>(a: &ArrayD<T>, multiples: &[usize]) -> Result<ArrayD<T>, KernelError> {
    let mut out = standard(a.view());
    for (axis, &m) in multiples.iter().enumerate() {
        if m == 1 {
            continue;
        }
        let copies = vec![out.view(); m];
        out = if m == 0 {
            let mut shape = out.shape().to_vec();
            shape[axis] = 0;
            ArrayD::from_elem(IxDyn(&shape), T::default())
        } else {
            ndarray::concatenate(Axis(axis), &copies).map_err(|e| invalid(format!("TILE: {e}")))?
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, i64s, int_data, SingleOp};
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    fn reshape_options(new_shape: &[i32]) -> fb::BuiltinOptionsT {
        fb::BuiltinOptionsT::ReshapeOptions(Box::new(fb::ReshapeOptionsT {
            new_shape: Some(new_shape.to_vec()),
        }))
    }

    #[test]
    fn reshape_prefers_the_shape_tensor_and_infers_minus_one() {
        let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let op = SingleOp::new(Op::RESHAPE).options(reshape_options(&[6]));
        let out = op.run1(&[x.clone(), i32s(&[2], &[3, -1])]);
        assert_eq!(f32_data(&out), (vec![3, 2], vec![1., 2., 3., 4., 5., 6.]));
    }

    #[test]
    fn reshape_falls_back_to_options_then_the_declared_output_shape() {
        let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let with_options = SingleOp::new(Op::RESHAPE).options(reshape_options(&[-1]));
        assert_eq!(
            f32_data(&with_options.run1(std::slice::from_ref(&x))).0,
            vec![6]
        );
        let declared = SingleOp::new(Op::RESHAPE).outputs(&[(fb::TensorType::FLOAT32, &[1, 6, 1])]);
        assert_eq!(
            f32_data(&declared.run1(std::slice::from_ref(&x))).0,
            vec![1, 6, 1]
        );
        let scalar = SingleOp::new(Op::RESHAPE).options(reshape_options(&[0]));
        assert_eq!(
            f32_data(&scalar.run1(&[f32s(&[1, 1], &[7.])])).0,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn reshape_rejects_a_wrong_element_count_and_two_stretch_dims() {
        let x = f32s(&[2, 3], &[0.; 6]);
        assert!(SingleOp::new(Op::RESHAPE)
            .run(&[x.clone(), i32s(&[2], &[4, -1])])
            .is_err());
        assert!(SingleOp::new(Op::RESHAPE)
            .run(&[x.clone(), i32s(&[2], &[-1, -1])])
            .is_err());
        assert!(SingleOp::new(Op::RESHAPE)
            .run(&[x, i32s(&[2], &[5, 5])])
            .is_err());
    }

    #[test]
    fn squeeze_drops_listed_dims_including_negative_ones() {
        let x = f32s(&[1, 2, 1, 1], &[1., 2.]);
        let op = |dims: &[i32]| {
            SingleOp::new(Op::SQUEEZE).options(fb::BuiltinOptionsT::SqueezeOptions(Box::new(
                fb::SqueezeOptionsT {
                    squeeze_dims: Some(dims.to_vec()),
                },
            )))
        };
        assert_eq!(
            f32_data(&op(&[0, -1]).run1(std::slice::from_ref(&x))).0,
            vec![2, 1]
        );
        assert_eq!(f32_data(&op(&[]).run1(std::slice::from_ref(&x))).0, vec![2]);
        assert_eq!(
            f32_data(&SingleOp::new(Op::SQUEEZE).run1(std::slice::from_ref(&x))).0,
            vec![2]
        );
        assert!(op(&[1]).run(std::slice::from_ref(&x)).is_err());
        assert!(op(&[4]).run(&[x]).is_err());
    }

    #[test]
    fn expand_dims_accepts_negative_axes() {
        let x = f32s(&[2, 3], &[0.; 6]);
        let run = |axis| {
            f32_data(&SingleOp::new(Op::EXPAND_DIMS).run1(&[x.clone(), i32s(&[], &[axis])])).0
        };
        assert_eq!(run(0), vec![1, 2, 3]);
        assert_eq!(run(2), vec![2, 3, 1]);
        assert_eq!(run(-1), vec![2, 3, 1]);
        assert_eq!(run(-3), vec![1, 2, 3]);
        assert!(SingleOp::new(Op::EXPAND_DIMS)
            .run(&[x, i32s(&[], &[3])])
            .is_err());
    }

    #[test]
    fn transpose_permutes_dimensions() {
        let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let out = SingleOp::new(Op::TRANSPOSE).run1(&[x.clone(), i32s(&[2], &[1, 0])]);
        assert_eq!(f32_data(&out), (vec![3, 2], vec![1., 4., 2., 5., 3., 6.]));
        assert!(SingleOp::new(Op::TRANSPOSE)
            .run(&[x.clone(), i32s(&[2], &[0, 0])])
            .is_err());
        assert!(SingleOp::new(Op::TRANSPOSE)
            .run(&[x, i32s(&[1], &[0])])
            .is_err());
        let y = f32s(&[1, 2, 3], &[1., 2., 3., 4., 5., 6.]);
        let out = SingleOp::new(Op::TRANSPOSE).run1(&[y, i32s(&[3], &[2, 0, 1])]);
        assert_eq!(
            f32_data(&out),
            (vec![3, 1, 2], vec![1., 4., 2., 5., 3., 6.])
        );
    }

    #[test]
    fn shape_gives_int32_or_declared_int64() {
        let x = f32s(&[2, 3, 1], &[0.; 6]);
        assert_eq!(
            SingleOp::new(Op::SHAPE)
                .outputs(&[(fb::TensorType::INT32, &[3])])
                .run1(std::slice::from_ref(&x)),
            i32s(&[3], &[2, 3, 1])
        );
        assert_eq!(
            SingleOp::new(Op::SHAPE)
                .outputs(&[(fb::TensorType::INT64, &[3])])
                .run1(&[x]),
            i64s(&[3], &[2, 3, 1])
        );
    }

    #[test]
    fn fill_repeats_a_scalar() {
        let out = SingleOp::new(Op::FILL).run1(&[i32s(&[2], &[2, 2]), f32s(&[], &[1.5])]);
        assert_eq!(f32_data(&out), (vec![2, 2], vec![1.5; 4]));
        assert!(SingleOp::new(Op::FILL)
            .run(&[i32s(&[1], &[-2]), f32s(&[], &[1.5])])
            .is_err());
    }

    #[test]
    fn broadcast_to_and_tile() {
        let x = f32s(&[2, 1], &[1., 2.]);
        let out = SingleOp::new(Op::BROADCAST_TO).run1(&[x.clone(), i32s(&[3], &[2, 2, 3])]);
        assert_eq!(
            f32_data(&out),
            (
                vec![2, 2, 3],
                vec![1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2.]
            )
        );
        assert!(SingleOp::new(Op::BROADCAST_TO)
            .run(&[x.clone(), i32s(&[2], &[3, 3])])
            .is_err());
        let out = SingleOp::new(Op::TILE).run1(&[x.clone(), i32s(&[2], &[2, 3])]);
        assert_eq!(
            f32_data(&out),
            (
                vec![4, 3],
                vec![1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2.]
            )
        );
        let out = SingleOp::new(Op::TILE).run1(&[i32s(&[2], &[4, 5]), i64s(&[1], &[2])]);
        assert_eq!(int_data(&out), (vec![4], vec![4, 5, 4, 5]));
    }
}
