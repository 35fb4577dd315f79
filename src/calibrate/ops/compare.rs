//! Comparisons (LESS, GREATER, EQUAL, NOT_EQUAL, LESS_EQUAL, GREATER_EQUAL) with broadcasting, giving BOOL;
//! and SELECT / SELECT_V2.

use super::broadcast::{broadcast_map, broadcast_shape3};
use super::typed::{invalid, typed_input, with_element_type, Element};
use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::{ArrayD, IxDyn, Zip};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cmp {
    Less,
    Greater,
    Equal,
    NotEqual,
    LessEqual,
    GreaterEqual,
}

pub(crate) fn compare(ctx: &OpContext<'_>, op: Cmp) -> Result<Vec<Value>, KernelError> {
    let out = match (ctx.input(0)?, ctx.input(1)?) {
        (Value::F32(x), Value::F32(y)) => compare_arrays(op, x, y)?,
        (Value::I32(x), Value::I32(y)) => compare_arrays(op, x, y)?,
        (Value::I64(x), Value::I64(y)) => compare_arrays(op, x, y)?,
        // TFLite compares BOOL tensors for (in)equality only.
        (Value::Bool(x), Value::Bool(y)) if matches!(op, Cmp::Equal | Cmp::NotEqual) => {
            compare_arrays(op, x, y)?
        }
        (x, y) => {
            return Err(invalid(format!(
                "{op:?} cannot compare {} with {}",
                x.type_name(),
                y.type_name()
            )))
        }
    };
    Ok(vec![Value::Bool(out)])
}

fn compare_arrays<T: Copy + PartialOrd>(
    op: Cmp,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
) -> Result<ArrayD<bool>, KernelError> {
    match op {
        Cmp::Less => broadcast_map(x, y, |a, b| a < b),
        Cmp::Greater => broadcast_map(x, y, |a, b| a > b),
        Cmp::Equal => broadcast_map(x, y, |a, b| a == b),
        Cmp::NotEqual => broadcast_map(x, y, |a, b| a != b),
        Cmp::LessEqual => broadcast_map(x, y, |a, b| a <= b),
        Cmp::GreaterEqual => broadcast_map(x, y, |a, b| a >= b),
    }
}

/// LOGICAL_AND and LOGICAL_OR: BOOL inputs, broadcast.
pub(crate) fn logical(ctx: &OpContext<'_>, and: bool) -> Result<Vec<Value>, KernelError> {
    match (ctx.input(0)?, ctx.input(1)?) {
        (Value::Bool(x), Value::Bool(y)) => {
            let out = if and {
                broadcast_map(x, y, |a, b| a && b)?
            } else {
                broadcast_map(x, y, |a, b| a || b)?
            };
            Ok(vec![Value::Bool(out)])
        }
        (x, y) => Err(invalid(format!(
            "logical ops take BOOL inputs, got {} and {}",
            x.type_name(),
            y.type_name()
        ))),
    }
}

/// LOGICAL_NOT: one BOOL input.
pub(crate) fn logical_not(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    match ctx.input(0)? {
        Value::Bool(x) => Ok(vec![Value::Bool(x.mapv(|a| !a))]),
        x => Err(invalid(format!(
            "LOGICAL_NOT takes a BOOL input, got {}",
            x.type_name()
        ))),
    }
}

/// SELECT (v1: the condition has x's shape, is a scalar, or is rank 1 choosing whole rows of x) and
/// SELECT_V2 (condition, x and y broadcast together).
pub(crate) fn select(ctx: &OpContext<'_>, v2: bool) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(1)?;
    let out = with_element_type!(x, T => select_typed::<T>(ctx, v2)?);
    Ok(vec![out])
}

fn select_typed<T: Element>(ctx: &OpContext<'_>, v2: bool) -> Result<Value, KernelError> {
    let cond = match ctx.input(0)? {
        Value::Bool(c) => c,
        other => {
            return Err(invalid(format!(
                "condition (input 0) is {}, expected BOOL",
                other.type_name()
            )))
        }
    };
    let x = typed_input::<T>(ctx, 1)?;
    let y = typed_input::<T>(ctx, 2)?;
    if let (true, Some(c), Some(xs), Some(ys)) = (
        cond.shape() == x.shape() && x.shape() == y.shape(),
        cond.as_slice(),
        x.as_slice(),
        y.as_slice(),
    ) {
        let data = c
            .iter()
            .zip(xs)
            .zip(ys)
            .map(|((&c, &a), &b)| if c { a } else { b })
            .collect();
        return Ok(T::into_value(super::typed::from_shape_vec(
            x.shape(),
            data,
        )?));
    }
    let (shape, cond_view) = if v2 {
        (
            broadcast_shape3(cond.shape(), x.shape(), y.shape())?,
            cond.view(),
        )
    } else {
        if x.shape() != y.shape() {
            return Err(invalid(format!(
                "SELECT needs x and y of one shape, got {:?} and {:?}",
                x.shape(),
                y.shape()
            )));
        }
        let cond_view = if cond.shape() == x.shape() || cond.ndim() == 0 {
            cond.view()
        } else if cond.ndim() == 1 && x.ndim() >= 1 && cond.len() == x.shape()[0] {
            // A rank-1 condition picks whole slices along x's first dimension.
            let mut rows = vec![1; x.ndim()];
            rows[0] = cond.len();
            cond.view()
                .into_shape_with_order(IxDyn(&rows))
                .map_err(|e| invalid(format!("cannot reshape the condition: {e}")))?
        } else {
            return Err(invalid(format!(
                "SELECT condition of shape {:?} fits neither x's shape {:?}, a scalar, nor its first dimension",
                cond.shape(),
                x.shape()
            )));
        };
        (x.shape().to_vec(), cond_view)
    };
    let not_broadcast = || {
        invalid(format!(
            "SELECT shapes {:?}, {:?}, {:?} do not broadcast",
            cond.shape(),
            x.shape(),
            y.shape()
        ))
    };
    let c = cond_view
        .broadcast(IxDyn(&shape))
        .ok_or_else(not_broadcast)?;
    let xb = x.broadcast(IxDyn(&shape)).ok_or_else(not_broadcast)?;
    let yb = y.broadcast(IxDyn(&shape)).ok_or_else(not_broadcast)?;
    let mut out = ArrayD::from_elem(IxDyn(&shape), T::default());
    Zip::from(&mut out)
        .and(&c)
        .and(&xb)
        .and(&yb)
        .for_each(|o, &c, &a, &b| *o = if c { a } else { b });
    Ok(T::into_value(out))
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{bool_data, bools, f32_data, f32s, i32s, SingleOp};
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn comparisons_broadcast_and_give_bool() {
        let a = f32s(&[2, 2], &[1., 2., 3., 4.]);
        let b = f32s(&[2], &[2., 3.]);
        let run = |op| bool_data(&SingleOp::new(op).run1(&[a.clone(), b.clone()])).1;
        assert_eq!(run(Op::LESS), vec![true, true, false, false]);
        assert_eq!(run(Op::GREATER), vec![false, false, true, true]);
        assert_eq!(run(Op::EQUAL), vec![false, false, false, false]);
        assert_eq!(run(Op::NOT_EQUAL), vec![true, true, true, true]);
        assert_eq!(run(Op::LESS_EQUAL), vec![true, true, false, false]);
        assert_eq!(run(Op::GREATER_EQUAL), vec![false, false, true, true]);
        let (shape, eq) =
            bool_data(&SingleOp::new(Op::EQUAL).run1(&[i32s(&[3], &[1, 2, 3]), i32s(&[], &[2])]));
        assert_eq!((shape, eq), (vec![3], vec![false, true, false]));
    }

    #[test]
    fn bool_tensors_compare_only_for_equality() {
        let t = bools(&[2], &[true, false]);
        assert_eq!(
            bool_data(&SingleOp::new(Op::EQUAL).run1(&[t.clone(), t.clone()])).1,
            vec![true, true]
        );
        assert!(SingleOp::new(Op::LESS).run(&[t.clone(), t]).is_err());
    }

    #[test]
    fn select_v1_with_rank_one_condition_picks_rows() {
        let c = bools(&[2], &[true, false]);
        let x = f32s(&[2, 2], &[1., 2., 3., 4.]);
        let y = f32s(&[2, 2], &[-1., -2., -3., -4.]);
        let out = SingleOp::new(Op::SELECT).run1(&[c, x, y]);
        assert_eq!(f32_data(&out), (vec![2, 2], vec![1., 2., -3., -4.]));
    }

    #[test]
    fn select_v1_rejects_x_and_y_of_different_shapes() {
        let c = bools(&[2], &[true, false]);
        assert!(SingleOp::new(Op::SELECT)
            .run(&[c, f32s(&[2], &[1., 2.]), f32s(&[1], &[0.])])
            .is_err());
    }

    #[test]
    fn select_v2_broadcasts_all_three_inputs() {
        let c = bools(&[2, 1], &[true, false]);
        let x = f32s(&[3], &[1., 2., 3.]);
        let y = f32s(&[], &[0.]);
        let out = SingleOp::new(Op::SELECT_V2).run1(&[c, x, y]);
        assert_eq!(f32_data(&out), (vec![2, 3], vec![1., 2., 3., 0., 0., 0.]));
    }

    #[test]
    fn select_same_shape_is_element_wise() {
        let c = bools(&[3], &[false, true, false]);
        let out =
            SingleOp::new(Op::SELECT_V2).run1(&[c, i32s(&[3], &[1, 2, 3]), i32s(&[3], &[7, 8, 9])]);
        assert_eq!(out, i32s(&[3], &[7, 2, 9]));
    }
}
