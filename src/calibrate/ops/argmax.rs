//! ARG_MAX and ARG_MIN along one axis, as INT32 or INT64 (the output tensor's declared type, else the
//! options' `output_type`). Ties go to the first index, as TFLite's strict comparison gives.

use super::typed::{from_shape_vec, invalid, resolve_axis, scalar_int, standard};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb::{self};
use ndarray::{ArrayD, Axis};

pub(crate) fn arg_extreme(ctx: &OpContext<'_>, max: bool) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let axis = resolve_axis(scalar_int(ctx, 1, "axis")?, x.shape().len(), "axis")?;
    if x.shape()[axis] == 0 {
        return Err(invalid("cannot take ARG_MAX/ARG_MIN over an empty axis"));
    }
    let indices = match x {
        Value::F32(a) => arg_along(a, axis, max),
        Value::I32(a) => arg_along(a, axis, max),
        Value::I64(a) => arg_along(a, axis, max),
        Value::Bool(a) => arg_along(a, axis, max),
    };
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    let options_type = match &ctx.operator().builtin_options {
        fb::BuiltinOptionsT::ArgMaxOptions(o) => Some(o.output_type),
        fb::BuiltinOptionsT::ArgMinOptions(o) => Some(o.output_type),
        _ => None,
    };
    let declared = ctx.output_type(0);
    let wants_i64 = match declared {
        fb::TensorType::INT64 => true,
        fb::TensorType::INT32 => false,
        _ => options_type == Some(fb::TensorType::INT64),
    };
    let out = if wants_i64 {
        Value::I64(from_shape_vec(
            &shape,
            indices.iter().map(|&i| i as i64).collect(),
        )?)
    } else {
        let data = indices
            .iter()
            .map(|&i| i32::try_from(i).map_err(|_| invalid("index too large for INT32")));
        Value::I32(from_shape_vec(&shape, data.collect::<Result<_, _>>()?)?)
    };
    Ok(vec![out])
}

/// Row-major indices of the extreme along `axis`; a later element wins only if strictly better.
fn arg_along<T: Copy + PartialOrd>(a: &ArrayD<T>, axis: usize, max: bool) -> Vec<usize> {
    // Move the reduced axis last so every lane is one contiguous run, in row-major order of the rest.
    let moved = standard(
        a.view()
            .permuted_axes(ndarray::IxDyn(&order_with_last(a.ndim(), axis))),
    );
    moved
        .lanes(Axis(a.ndim() - 1))
        .into_iter()
        .map(|lane| {
            let mut best = 0;
            for (i, v) in lane.iter().enumerate().skip(1) {
                let better = if max {
                    *v > lane[best]
                } else {
                    *v < lane[best]
                };
                if better {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// The axis order that keeps every axis but `axis` in place and moves `axis` last.
fn order_with_last(rank: usize, axis: usize) -> Vec<usize> {
    (0..rank).filter(|&k| k != axis).chain([axis]).collect()
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32s, i32s, i64s, SingleOp};
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    #[test]
    fn arg_max_over_the_last_axis_picks_the_first_of_ties() {
        let x = f32s(&[2, 3], &[1., 5., 5., 7., 0., 2.]);
        let out = SingleOp::new(Op::ARG_MAX)
            .outputs(&[(fb::TensorType::INT32, &[2])])
            .run1(&[x, i32s(&[], &[-1])]);
        assert_eq!(out, i32s(&[2], &[1, 0]));
    }

    #[test]
    fn arg_min_over_the_first_axis_in_int64() {
        let x = f32s(&[2, 3], &[1., 5., 5., 7., 0., 2.]);
        let op = SingleOp::new(Op::ARG_MIN)
            .options(fb::BuiltinOptionsT::ArgMinOptions(Box::new(
                fb::ArgMinOptionsT {
                    output_type: fb::TensorType::INT64,
                },
            )))
            .outputs(&[(fb::TensorType::INT64, &[3])]);
        assert_eq!(op.run1(&[x, i32s(&[1], &[0])]), i64s(&[3], &[0, 1, 1]));
    }

    #[test]
    fn arg_max_rejects_an_axis_out_of_range() {
        assert!(SingleOp::new(Op::ARG_MAX)
            .run(&[f32s(&[2], &[1., 2.]), i32s(&[], &[1])])
            .is_err());
    }
}
