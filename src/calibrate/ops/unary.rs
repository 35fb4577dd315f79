//! Element-wise unary ops on float and integer tensors: FLOOR, CEIL, ROUND, CAST, ZEROS_LIKE.

use super::typed::{invalid, with_element_type, Element};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::{self, fb};
use ndarray::ArrayD;

pub(crate) fn float_map(ctx: &OpContext<'_>, f: fn(f32) -> f32) -> Result<Vec<Value>, KernelError> {
    Ok(vec![Value::F32(ctx.input_f32(0)?.mapv(f))])
}

pub(crate) fn zeros_like(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    Ok(vec![
        with_element_type!(x, T => T::into_value(ArrayD::from_elem(x.shape(), T::default()))),
    ])
}

/// CAST to the output tensor's declared type, converting as C++'s `static_cast` does (float to integer
/// truncates toward zero; Rust's `as` also saturates, where C++ would be undefined).
pub(crate) fn cast(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let target = ctx.output_type(0);
    let x = ctx.input(0)?;
    let out = match target {
        fb::TensorType::FLOAT32 => {
            Value::F32(convert(x, |v| v, |v| v as f32, |v| v as f32, f32::from))
        }
        fb::TensorType::INT32 => {
            Value::I32(convert(x, |v| v as i32, |v| v, |v| v as i32, i32::from))
        }
        fb::TensorType::INT64 => Value::I64(convert(x, |v| v as i64, i64::from, |v| v, i64::from)),
        fb::TensorType::BOOL => {
            Value::Bool(convert(x, |v| v != 0.0, |v| v != 0, |v| v != 0, |v| v))
        }
        other => {
            return Err(invalid(format!(
                "CAST to {} is not supported by the float interpreter",
                tflite::type_name(other)
            )))
        }
    };
    Ok(vec![out])
}

fn convert<O: Element>(
    x: &Value,
    from_f32: fn(f32) -> O,
    from_i32: fn(i32) -> O,
    from_i64: fn(i64) -> O,
    from_bool: fn(bool) -> O,
) -> ArrayD<O> {
    match x {
        Value::F32(a) => a.mapv(from_f32),
        Value::I32(a) => a.mapv(from_i32),
        Value::I64(a) => a.mapv(from_i64),
        Value::Bool(a) => a.mapv(from_bool),
    }
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{bools, f32_data, f32s, i32s, int_data, SingleOp};
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    #[test]
    fn round_is_half_to_even() {
        let x = f32s(&[6], &[0.5, 1.5, 2.5, -0.5, -1.5, 2.6]);
        assert_eq!(
            f32_data(&SingleOp::new(Op::ROUND).run1(&[x])).1,
            vec![0., 2., 2., -0., -2., 3.]
        );
    }

    #[test]
    fn floor_and_ceil() {
        let x = f32s(&[3], &[-1.5, 0.2, 2.0]);
        assert_eq!(
            f32_data(&SingleOp::new(Op::FLOOR).run1(std::slice::from_ref(&x))).1,
            vec![-2., 0., 2.]
        );
        assert_eq!(
            f32_data(&SingleOp::new(Op::CEIL).run1(&[x])).1,
            vec![-1., 1., 2.]
        );
    }

    #[test]
    fn cast_follows_the_declared_output_type() {
        let x = f32s(&[4], &[-1.7, 0.0, 2.9, 3.0]);
        let to_i32 = SingleOp::new(Op::CAST).outputs(&[(fb::TensorType::INT32, &[4])]);
        let out = to_i32.run1(std::slice::from_ref(&x));
        assert_eq!(out, i32s(&[4], &[-1, 0, 2, 3]));
        let to_bool = SingleOp::new(Op::CAST).outputs(&[(fb::TensorType::BOOL, &[4])]);
        assert_eq!(to_bool.run1(&[x]), bools(&[4], &[true, false, true, true]));
        let to_f32 = SingleOp::new(Op::CAST).outputs(&[(fb::TensorType::FLOAT32, &[2])]);
        assert_eq!(
            f32_data(&to_f32.run1(&[bools(&[2], &[true, false])])).1,
            vec![1., 0.]
        );
        let to_i64 = SingleOp::new(Op::CAST).outputs(&[(fb::TensorType::INT64, &[2])]);
        assert_eq!(
            int_data(&to_i64.run1(&[i32s(&[2], &[-5, 7])])).1,
            vec![-5, 7]
        );
        let to_u8 = SingleOp::new(Op::CAST).outputs(&[(fb::TensorType::UINT8, &[2])]);
        assert!(to_u8.run(&[i32s(&[2], &[1, 2])]).is_err());
    }

    #[test]
    fn zeros_like_keeps_type_and_shape() {
        assert_eq!(
            SingleOp::new(Op::ZEROS_LIKE).run1(&[i32s(&[2, 1], &[4, 5])]),
            i32s(&[2, 1], &[0, 0])
        );
        assert_eq!(
            f32_data(&SingleOp::new(Op::ZEROS_LIKE).run1(&[f32s(&[1], &[3.])])).1,
            vec![0.]
        );
    }
}
