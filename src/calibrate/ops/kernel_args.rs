//! Small accessors the NN kernels share: options, optional inputs, contiguous data, fixed ranks.

use crate::calibrate::{KernelError, OpContext, Value};
use ndarray::{ArrayD, CowArray, IxDyn};

/// The error for an op whose builtin options are absent or of another type.
pub(crate) fn missing_options(name: &str) -> KernelError {
    KernelError::Invalid(format!("the op has no {name}"))
}

/// Input `i` as float32 if present (an omitted optional input, such as a bias, gives `None`).
pub(crate) fn optional_f32<'a>(
    ctx: &OpContext<'a>,
    i: usize,
) -> Result<Option<&'a ArrayD<f32>>, KernelError> {
    match ctx.inputs.get(i).copied().flatten() {
        None => Ok(None),
        Some(Value::F32(a)) => Ok(Some(a)),
        Some(other) => Err(KernelError::Invalid(format!(
            "input {i} is {}, expected FLOAT32",
            other.type_name()
        ))),
    }
}

/// A row-major view of `a` (borrowed when it already is one, which is the common case).
pub(crate) fn row_major(a: &ArrayD<f32>) -> CowArray<'_, f32, IxDyn> {
    a.as_standard_layout()
}

/// The elements of a row-major array as a slice.
pub(crate) fn flat<'a>(a: &'a CowArray<'_, f32, IxDyn>) -> Result<&'a [f32], KernelError> {
    a.as_slice()
        .ok_or_else(|| KernelError::Invalid("internal: array is not contiguous".into()))
}

/// The dims of a rank-4 shape, or an error naming the operand.
pub(crate) fn dims4(shape: &[usize], what: &str) -> Result<[usize; 4], KernelError> {
    <[usize; 4]>::try_from(shape)
        .map_err(|_| KernelError::Invalid(format!("{what} has shape {shape:?}, expected rank 4")))
}

/// An array of `shape` over `data` (the length is the caller's invariant, checked anyway).
pub(crate) fn array(shape: &[usize], data: Vec<f32>) -> Result<ArrayD<f32>, KernelError> {
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|e| KernelError::Invalid(format!("internal: {e}")))
}

/// The bias vector of a conv-like op: absent, or exactly `channels` values.
pub(crate) fn bias_values<'a>(
    ctx: &OpContext<'a>,
    i: usize,
    channels: usize,
) -> Result<Option<CowArray<'a, f32, IxDyn>>, KernelError> {
    let Some(b) = optional_f32(ctx, i)? else {
        return Ok(None);
    };
    if b.len() != channels {
        return Err(KernelError::Invalid(format!(
            "bias has {} values for {channels} output channels",
            b.len()
        )));
    }
    Ok(Some(row_major(b)))
}
