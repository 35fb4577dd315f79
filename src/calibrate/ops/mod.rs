//! Float kernels, one module per op family. Each family module has `register(&mut Registry)`.

pub mod activation;
mod argmax;
mod arithmetic;
mod broadcast;
mod compare;
mod concat;
pub mod conv;
mod fast_math;
pub mod fully_connected;
mod gather;
mod kernel_args;
mod matmul;
pub mod normalization;
mod pad;
pub mod pool;
pub mod quantize_ops;
pub mod reduce;
pub mod resize;
mod shape;
#[cfg(test)]
mod single_op;
mod slice;
mod space;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod transpose_conv;
mod typed;
mod unary;
mod window;

pub(crate) use shape::reshape_target;

use super::Registry;
use crate::tflite::fb;
use ndarray::ArrayD;

/// Registers every family's kernels.
pub fn register_all(r: &mut Registry) {
    activation::register(r);
    conv::register(r);
    fully_connected::register(r);
    normalization::register(r);
    pool::register(r);
    quantize_ops::register(r);
    reduce::register(r);
    resize::register(r);
    arithmetic::register(r);
    compare::register(r);
    unary::register(r);
    shape::register(r);
    slice::register(r);
    pad::register(r);
    concat::register(r);
    gather::register(r);
    space::register(r);
    transpose_conv::register(r);
    argmax::register(r);
}

/// Applies a fused activation function in place, as TFLite's float kernels do after the op.
pub fn apply_fused_activation(x: &mut ArrayD<f32>, act: fb::ActivationFunctionType) {
    match act {
        fb::ActivationFunctionType::RELU => x.mapv_inplace(|v| v.max(0.0)),
        fb::ActivationFunctionType::RELU6 => x.mapv_inplace(|v| v.clamp(0.0, 6.0)),
        fb::ActivationFunctionType::RELU_N1_TO_1 => x.mapv_inplace(|v| v.clamp(-1.0, 1.0)),
        fb::ActivationFunctionType::TANH => match x.as_slice_memory_order_mut() {
            Some(values) => fast_math::tanh_in_place(values),
            None => x.mapv_inplace(fast_math::tanh),
        },
        fb::ActivationFunctionType::SIGN_BIT => {
            x.mapv_inplace(|v| if v.is_sign_negative() { 1.0 } else { 0.0 })
        }
        _ => {}
    }
}
