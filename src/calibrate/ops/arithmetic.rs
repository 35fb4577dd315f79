//! Binary arithmetic with broadcasting and fused activation: ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE,
//! MAXIMUM, MINIMUM, POW, FLOOR_DIV, FLOOR_MOD; and ADD_N.
//!
//! FLOAT32 follows TFLite's float kernels; INT32/INT64 (shape arithmetic) wrap on overflow like the C++
//! kernels do in practice, and a zero divisor or a negative integer exponent is an error instead of
//! undefined behaviour.

use super::apply_fused_activation;
use super::broadcast::broadcast_map;
use super::typed::{invalid, typed_input, with_element_type, Element};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::ArrayD;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    SquaredDifference,
    Maximum,
    Minimum,
    Pow,
    FloorDiv,
    FloorMod,
}

/// The fused activation of ops that carry one in their options (ADD, SUB, MUL, DIV).
pub(crate) fn fused_activation(ctx: &OpContext<'_>) -> fb::ActivationFunctionType {
    let options = &ctx.operator().builtin_options;
    let none = fb::ActivationFunctionType::NONE;
    match options {
        fb::BuiltinOptionsT::AddOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::SubOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::MulOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::DivOptions(o) => o.fused_activation_function,
        fb::BuiltinOptionsT::ConcatenationOptions(o) => o.fused_activation_function,
        _ => none,
    }
}

pub(crate) fn binary(ctx: &OpContext<'_>, op: Arith) -> Result<Vec<Value>, KernelError> {
    let act = fused_activation(ctx);
    let out = match (ctx.input(0)?, ctx.input(1)?) {
        (Value::F32(x), Value::F32(y)) => {
            let mut out = float_binary(op, x, y)?;
            apply_fused_activation(&mut out, act);
            Value::F32(out)
        }
        (Value::I32(x), Value::I32(y)) => Value::I32(int_binary(op, x, y, act)?),
        (Value::I64(x), Value::I64(y)) => Value::I64(int_binary(op, x, y, act)?),
        (x, y) => {
            return Err(invalid(format!(
                "{op:?} needs two FLOAT32, INT32 or INT64 inputs of one type, got {} and {}",
                x.type_name(),
                y.type_name()
            )))
        }
    };
    Ok(vec![out])
}

/// One match per op outside the loop, so each element-wise loop is a plain closure the compiler vectorizes.
fn float_binary(op: Arith, x: &ArrayD<f32>, y: &ArrayD<f32>) -> Result<ArrayD<f32>, KernelError> {
    match op {
        Arith::Add => broadcast_map(x, y, |a, b| a + b),
        Arith::Sub => broadcast_map(x, y, |a, b| a - b),
        Arith::Mul => broadcast_map(x, y, |a, b| a * b),
        Arith::Div => broadcast_map(x, y, |a, b| a / b),
        Arith::SquaredDifference => broadcast_map(x, y, |a, b| (a - b) * (a - b)),
        // TFLite's `a > b ? a : b`: a NaN in `b` propagates, one in `a` does not.
        Arith::Maximum => broadcast_map(x, y, |a, b| if a > b { a } else { b }),
        Arith::Minimum => broadcast_map(x, y, |a, b| if a < b { a } else { b }),
        Arith::Pow => broadcast_map(x, y, f32::powf),
        Arith::FloorDiv => broadcast_map(x, y, |a, b| (a / b).floor()),
        Arith::FloorMod => broadcast_map(x, y, |a, b| {
            // C's fmod, then moved into the divisor's sign as Python's modulo.
            let r = a % b;
            if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                r + b
            } else {
                r
            }
        }),
    }
}

/// Integer element types for shape arithmetic.
trait IntElement: Element + Ord + std::fmt::Display {
    const ZERO: Self;
    fn from_i8(v: i8) -> Self;
    fn wrapping_add(self, b: Self) -> Self;
    fn wrapping_sub(self, b: Self) -> Self;
    fn wrapping_mul(self, b: Self) -> Self;
    fn wrapping_div(self, b: Self) -> Self;
    fn wrapping_rem(self, b: Self) -> Self;
}

macro_rules! impl_int_element {
    ($t:ty) => {
        impl IntElement for $t {
            const ZERO: Self = 0;
            fn from_i8(v: i8) -> Self {
                Self::from(v)
            }
            fn wrapping_add(self, b: Self) -> Self {
                <$t>::wrapping_add(self, b)
            }
            fn wrapping_sub(self, b: Self) -> Self {
                <$t>::wrapping_sub(self, b)
            }
            fn wrapping_mul(self, b: Self) -> Self {
                <$t>::wrapping_mul(self, b)
            }
            fn wrapping_div(self, b: Self) -> Self {
                <$t>::wrapping_div(self, b)
            }
            fn wrapping_rem(self, b: Self) -> Self {
                <$t>::wrapping_rem(self, b)
            }
        }
    };
}
impl_int_element!(i32);
impl_int_element!(i64);

/// `base^exp` by repeated squaring, wrapping like the C++ loop does.
fn int_pow<T: IntElement>(base: T, exp: T) -> T {
    let mut result = T::from_i8(1);
    let mut b = base;
    let mut e = exp;
    let two = T::from_i8(2);
    while e > T::ZERO {
        if e.wrapping_rem(two) != T::ZERO {
            result = result.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e = e.wrapping_div(two);
    }
    result
}

fn int_floor_div<T: IntElement>(a: T, b: T) -> T {
    let q = a.wrapping_div(b);
    let r = a.wrapping_rem(b);
    if r != T::ZERO && ((r < T::ZERO) != (b < T::ZERO)) {
        q.wrapping_sub(T::from_i8(1))
    } else {
        q
    }
}

fn int_floor_mod<T: IntElement>(a: T, b: T) -> T {
    let r = a.wrapping_rem(b);
    if r != T::ZERO && ((r < T::ZERO) != (b < T::ZERO)) {
        r.wrapping_add(b)
    } else {
        r
    }
}

fn int_binary<T: IntElement>(
    op: Arith,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
    act: fb::ActivationFunctionType,
) -> Result<ArrayD<T>, KernelError> {
    if matches!(op, Arith::Div | Arith::FloorDiv | Arith::FloorMod)
        && y.iter().any(|&v| v == T::ZERO)
    {
        return Err(invalid(format!("integer {op:?} by zero")));
    }
    if op == Arith::Pow {
        if let Some(e) = y.iter().find(|&&v| v < T::ZERO) {
            return Err(invalid(format!("integer POW with negative exponent {e}")));
        }
    }
    let mut out = match op {
        Arith::Add => broadcast_map(x, y, T::wrapping_add),
        Arith::Sub => broadcast_map(x, y, T::wrapping_sub),
        Arith::Mul => broadcast_map(x, y, T::wrapping_mul),
        Arith::Div => broadcast_map(x, y, T::wrapping_div),
        Arith::SquaredDifference => broadcast_map(x, y, |a, b| {
            let d = a.wrapping_sub(b);
            d.wrapping_mul(d)
        }),
        Arith::Maximum => broadcast_map(x, y, Ord::max),
        Arith::Minimum => broadcast_map(x, y, Ord::min),
        Arith::Pow => broadcast_map(x, y, int_pow),
        Arith::FloorDiv => broadcast_map(x, y, int_floor_div),
        Arith::FloorMod => broadcast_map(x, y, int_floor_mod),
    }?;
    // TFLite's integer activation range: RELU [0, max], RELU6 [0, 6], RELU_N1_TO_1 [-1, 1].
    let range = match act {
        fb::ActivationFunctionType::RELU => Some((T::ZERO, None)),
        fb::ActivationFunctionType::RELU6 => Some((T::ZERO, Some(T::from_i8(6)))),
        fb::ActivationFunctionType::RELU_N1_TO_1 => Some((T::from_i8(-1), Some(T::from_i8(1)))),
        _ => None,
    };
    if let Some((lo, hi)) = range {
        out.mapv_inplace(|v| {
            let v = v.max(lo);
            hi.map_or(v, |hi| v.min(hi))
        });
    }
    Ok(out)
}

/// ADD_N: the sum of any number of same-shaped inputs.
pub(crate) fn add_n(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let first = ctx.input(0)?;
    let out = with_element_type!(first, T => add_n_typed::<T>(ctx)?);
    Ok(vec![out])
}

fn add_n_typed<T: Element + AddN>(ctx: &OpContext<'_>) -> Result<Value, KernelError> {
    let mut sum = typed_input::<T>(ctx, 0)?.to_owned();
    for i in 1..ctx.inputs.len() {
        let x = typed_input::<T>(ctx, i)?;
        if x.shape() != sum.shape() {
            return Err(invalid(format!(
                "ADD_N input {i} has shape {:?}, input 0 has {:?}",
                x.shape(),
                sum.shape()
            )));
        }
        T::accumulate(&mut sum, x)?;
    }
    Ok(T::into_value(sum))
}

/// Element types ADD_N can sum.
trait AddN: Sized {
    fn accumulate(sum: &mut ArrayD<Self>, x: &ArrayD<Self>) -> Result<(), KernelError>;
}

impl AddN for f32 {
    fn accumulate(sum: &mut ArrayD<f32>, x: &ArrayD<f32>) -> Result<(), KernelError> {
        sum.zip_mut_with(x, |s, &v| *s += v);
        Ok(())
    }
}

impl AddN for i32 {
    fn accumulate(sum: &mut ArrayD<i32>, x: &ArrayD<i32>) -> Result<(), KernelError> {
        sum.zip_mut_with(x, |s, &v| *s = s.wrapping_add(v));
        Ok(())
    }
}

impl AddN for i64 {
    fn accumulate(sum: &mut ArrayD<i64>, x: &ArrayD<i64>) -> Result<(), KernelError> {
        sum.zip_mut_with(x, |s, &v| *s = s.wrapping_add(v));
        Ok(())
    }
}

impl AddN for bool {
    fn accumulate(_: &mut ArrayD<bool>, _: &ArrayD<bool>) -> Result<(), KernelError> {
        Err(invalid("ADD_N does not take BOOL inputs"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, i64s, int_data, SingleOp};
    use super::*;
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    fn add_with(act: fb::ActivationFunctionType) -> SingleOp {
        SingleOp::new(Op::ADD).options(fb::BuiltinOptionsT::AddOptions(Box::new(fb::AddOptionsT {
            fused_activation_function: act,
            pot_scale_int16: false,
        })))
    }

    #[test]
    fn add_broadcasts_2x1x3_with_4x1() {
        let a = f32s(&[2, 1, 3], &[1., 2., 3., 4., 5., 6.]);
        let b = f32s(&[4, 1], &[10., 20., 30., 40.]);
        let (shape, data) = f32_data(&add_with(fb::ActivationFunctionType::NONE).run1(&[a, b]));
        assert_eq!(shape, vec![2, 4, 3]);
        let mut want = Vec::new();
        for i in 0..2 {
            for b in [10., 20., 30., 40.] {
                for k in 0..3 {
                    want.push((i * 3 + k + 1) as f32 + b);
                }
            }
        }
        assert_eq!(data, want);
    }

    #[test]
    fn add_applies_fused_relu6() {
        let a = f32s(&[4], &[-3., 1., 5., 9.]);
        let b = f32s(&[], &[1.]);
        let (_, data) = f32_data(&add_with(fb::ActivationFunctionType::RELU6).run1(&[a, b]));
        assert_eq!(data, vec![0., 2., 6., 6.]);
    }

    #[test]
    fn scalar_on_the_left_broadcasts() {
        let a = f32s(&[], &[10.]);
        let b = f32s(&[3], &[1., 2., 4.]);
        let (_, data) = f32_data(&SingleOp::new(Op::SUB).run1(&[a.clone(), b.clone()]));
        assert_eq!(data, vec![9., 8., 6.]);
        let (_, data) = f32_data(&SingleOp::new(Op::DIV).run1(&[a, b]));
        assert_eq!(data, vec![10., 5., 2.5]);
    }

    #[test]
    fn int32_shape_arithmetic_multiplies_and_clamps_with_relu() {
        let op = SingleOp::new(Op::MUL).options(fb::BuiltinOptionsT::MulOptions(Box::new(
            fb::MulOptionsT {
                fused_activation_function: fb::ActivationFunctionType::RELU,
            },
        )));
        let out = op.run1(&[i32s(&[3], &[2, -3, 4]), i32s(&[1], &[5])]);
        assert_eq!(int_data(&out), (vec![3], vec![10, 0, 20]));
        assert!(matches!(out, Value::I32(_)));
    }

    #[test]
    fn floor_div_and_floor_mod_round_toward_negative_infinity() {
        let a = f32s(&[4], &[7., -7., 7., -7.]);
        let b = f32s(&[4], &[2., 2., -2., -2.]);
        let (_, q) = f32_data(&SingleOp::new(Op::FLOOR_DIV).run1(&[a.clone(), b.clone()]));
        assert_eq!(q, vec![3., -4., -4., 3.]);
        let (_, r) = f32_data(&SingleOp::new(Op::FLOOR_MOD).run1(&[a, b]));
        assert_eq!(r, vec![1., 1., -1., -1.]);
        let ai = i64s(&[4], &[7, -7, 7, -7]);
        let bi = i64s(&[4], &[2, 2, -2, -2]);
        assert_eq!(
            int_data(&SingleOp::new(Op::FLOOR_DIV).run1(&[ai.clone(), bi.clone()])).1,
            vec![3, -4, -4, 3]
        );
        assert_eq!(
            int_data(&SingleOp::new(Op::FLOOR_MOD).run1(&[ai, bi])).1,
            vec![1, 1, -1, -1]
        );
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        let err = SingleOp::new(Op::FLOOR_DIV).run(&[i32s(&[2], &[1, 2]), i32s(&[2], &[1, 0])]);
        assert!(matches!(err, Err(KernelError::Invalid(m)) if m.contains("by zero")));
    }

    #[test]
    fn maximum_minimum_pow_and_squared_difference() {
        let a = f32s(&[3], &[1., 4., -2.]);
        let b = f32s(&[3], &[3., 2., -2.]);
        assert_eq!(
            f32_data(&SingleOp::new(Op::MAXIMUM).run1(&[a.clone(), b.clone()])).1,
            vec![3., 4., -2.]
        );
        assert_eq!(
            f32_data(&SingleOp::new(Op::MINIMUM).run1(&[a.clone(), b.clone()])).1,
            vec![1., 2., -2.]
        );
        assert_eq!(
            f32_data(&SingleOp::new(Op::SQUARED_DIFFERENCE).run1(&[a.clone(), b])).1,
            vec![4., 4., 0.]
        );
        let e = f32s(&[1], &[2.]);
        assert_eq!(
            f32_data(&SingleOp::new(Op::POW).run1(&[a, e])).1,
            vec![1., 16., 4.]
        );
        assert_eq!(
            int_data(&SingleOp::new(Op::POW).run1(&[i32s(&[2], &[3, -2]), i32s(&[], &[3])])).1,
            vec![27, -8]
        );
        assert!(SingleOp::new(Op::POW)
            .run(&[i32s(&[1], &[3]), i32s(&[1], &[-1])])
            .is_err());
    }

    #[test]
    fn incompatible_shapes_are_an_error_not_a_panic() {
        let err = SingleOp::new(Op::ADD).run(&[f32s(&[2, 3], &[0.; 6]), f32s(&[4, 3], &[0.; 12])]);
        assert!(matches!(err, Err(KernelError::Invalid(m)) if m.contains("do not broadcast")));
        assert!(SingleOp::new(Op::ADD)
            .run(&[f32s(&[1], &[0.]), i32s(&[1], &[0])])
            .is_err());
        assert!(SingleOp::new(Op::ADD).run(&[f32s(&[1], &[0.])]).is_err());
    }

    #[test]
    fn add_n_sums_every_input() {
        let out = SingleOp::new(Op::ADD_N).run1(&[
            f32s(&[2], &[1., 2.]),
            f32s(&[2], &[3., 4.]),
            f32s(&[2], &[5., 6.]),
        ]);
        assert_eq!(f32_data(&out).1, vec![9., 12.]);
        assert!(SingleOp::new(Op::ADD_N)
            .run(&[f32s(&[2], &[1., 2.]), f32s(&[1], &[3.])])
            .is_err());
    }
}
