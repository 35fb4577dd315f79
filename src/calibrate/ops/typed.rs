//! Kernels written once for every element type of [`Value`], and the axis and shape checks they share.

use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// An element type a [`Value`] can hold.
pub(crate) trait Element: Copy + Default + PartialEq + Send + Sync + 'static {
    /// The TFLite type name, for error messages.
    const TYPE_NAME: &'static str;
    /// The array inside `value` if it holds this element type.
    fn array(value: &Value) -> Option<&ArrayD<Self>>;
    /// Wraps an array into a [`Value`].
    fn into_value(array: ArrayD<Self>) -> Value;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $name:literal) => {
        impl Element for $t {
            const TYPE_NAME: &'static str = $name;
            fn array(value: &Value) -> Option<&ArrayD<Self>> {
                match value {
                    Value::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn into_value(array: ArrayD<Self>) -> Value {
                Value::$variant(array)
            }
        }
    };
}

impl_element!(f32, F32, "FLOAT32");
impl_element!(i32, I32, "INT32");
impl_element!(i64, I64, "INT64");
impl_element!(bool, Bool, "BOOL");

/// Runs `$body` with `$t` bound to the element type of `$value` (a `&Value`).
macro_rules! with_element_type {
    ($value:expr, $t:ident => $body:expr) => {
        match $value {
            crate::calibrate::Value::F32(_) => {
                type $t = f32;
                $body
            }
            crate::calibrate::Value::I32(_) => {
                type $t = i32;
                $body
            }
            crate::calibrate::Value::I64(_) => {
                type $t = i64;
                $body
            }
            crate::calibrate::Value::Bool(_) => {
                type $t = bool;
                $body
            }
        }
    };
}
pub(crate) use with_element_type;

/// A kernel error with a message.
pub(crate) fn invalid(message: impl Into<String>) -> KernelError {
    KernelError::Invalid(message.into())
}

/// Input `i` as an array of `T`; other element types are an error naming both types.
pub(crate) fn typed_input<'a, T: Element>(
    ctx: &OpContext<'a>,
    i: usize,
) -> Result<&'a ArrayD<T>, KernelError> {
    let value = ctx.input(i)?;
    T::array(value).ok_or_else(|| {
        invalid(format!(
            "input {i} is {}, expected {} like the op's data input",
            value.type_name(),
            T::TYPE_NAME
        ))
    })
}

/// An axis in `[-rank, rank)` as an index in `[0, rank)`.
pub(crate) fn resolve_axis(axis: i64, rank: usize, what: &str) -> Result<usize, KernelError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(invalid(format!(
            "{what} {axis} is out of range for rank {rank}"
        )));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Input `i` as one integer (a scalar or a one-element tensor: axes, counts).
pub(crate) fn scalar_int(ctx: &OpContext<'_>, i: usize, what: &str) -> Result<i64, KernelError> {
    let values = ctx.input_ints(i)?;
    match values.as_slice() {
        [v] => Ok(*v),
        _ => Err(invalid(format!(
            "{what} (input {i}) must hold one integer, it holds {}",
            values.len()
        ))),
    }
}

/// Non-negative integers as dimensions.
pub(crate) fn to_dims(values: &[i64], what: &str) -> Result<Vec<usize>, KernelError> {
    values
        .iter()
        .map(|&v| {
            usize::try_from(v)
                .map_err(|_| invalid(format!("{what} {values:?} has a negative entry")))
        })
        .collect()
}

/// An owned array in standard (row-major) layout, so later kernels can take contiguous fast paths.
pub(crate) fn standard<T: Clone>(view: ArrayViewD<'_, T>) -> ArrayD<T> {
    // A row-major view copies as one slice (`into_owned` would first work out an axis order).
    if let Some(values) = view.as_slice() {
        if let Ok(a) = ArrayD::from_shape_vec(view.raw_dim(), values.to_vec()) {
            return a;
        }
    }
    // Otherwise row by row (the last axis, in logical order): a permuted or strided view copies in 1-D
    // loops instead of one n-dimensional index step per element.
    let mut values = Vec::with_capacity(view.len());
    if view.ndim() == 0 {
        values.extend(view.iter().cloned());
    } else {
        for row in view.rows() {
            match row.as_slice() {
                Some(s) => values.extend_from_slice(s),
                None => values.extend(row.iter().cloned()),
            }
        }
    }
    match ArrayD::from_shape_vec(view.raw_dim(), values) {
        Ok(a) => a,
        Err(_) => view.as_standard_layout().into_owned(),
    }
}

/// A row-major array from its shape and data.
pub(crate) fn from_shape_vec<T>(shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, KernelError> {
    let len = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|e| invalid(format!("cannot shape {len} elements as {shape:?}: {e}")))
}

/// The most elements one tensor may have: TFLite sizes tensors with int32 dimensions and flat sizes, and a
/// shape read from a hostile model must fail here rather than abort the process in the allocator.
pub(crate) const MAX_ELEMENTS: usize = i32::MAX as usize;

/// Checked product of dimensions, so a hostile shape is an error rather than an overflow.
pub(crate) fn element_count(shape: &[usize]) -> Result<usize, KernelError> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            invalid(format!(
                "shape {shape:?} has more than {MAX_ELEMENTS} elements"
            ))
        })
}
