//! Tensor values flowing through the float interpreter.

use crate::tflite::fb;
use ndarray::ArrayD;

/// A tensor value: float activations, or the integer/bool tensors shape ops use.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// FLOAT32 data.
    F32(ArrayD<f32>),
    /// INT32 data (shapes, axes, indices).
    I32(ArrayD<i32>),
    /// INT64 data.
    I64(ArrayD<i64>),
    /// BOOL data.
    Bool(ArrayD<bool>),
}

impl Value {
    /// The TFLite type name of the value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::F32(_) => "FLOAT32",
            Value::I32(_) => "INT32",
            Value::I64(_) => "INT64",
            Value::Bool(_) => "BOOL",
        }
    }

    /// The TFLite tensor type of the value.
    pub fn tensor_type(&self) -> fb::TensorType {
        match self {
            Value::F32(_) => fb::TensorType::FLOAT32,
            Value::I32(_) => fb::TensorType::INT32,
            Value::I64(_) => fb::TensorType::INT64,
            Value::Bool(_) => fb::TensorType::BOOL,
        }
    }

    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::I64(a) => a.shape(),
            Value::Bool(a) => a.shape(),
        }
    }

    /// Integer contents widened to i64 (INT32/INT64 only).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self {
            Value::I32(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Value::I64(a) => Some(a.iter().copied().collect()),
            _ => None,
        }
    }
}
