//! Float kernel bodies, one module per op family. Which op runs which kernel is declared in the op table
//! ([`crate::ops`]).

pub mod activation;
pub(crate) mod argmax;
pub(crate) mod arithmetic;
pub(crate) mod broadcast;
pub(crate) mod compare;
pub(crate) mod concat;
pub(crate) mod control;
pub mod conv;
pub(crate) mod fast_math;
pub mod fully_connected;
pub(crate) mod gather;
pub(crate) mod kernel_args;
pub(crate) mod matmul;
pub mod normalization;
pub(crate) mod pad;
pub mod pool;
pub mod quantize_ops;
pub(crate) mod recurrent;
pub mod reduce;
pub mod resize;
pub(crate) mod shape;
#[cfg(test)]
mod single_op;
pub(crate) mod slice;
pub(crate) mod space;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod transpose_conv;
pub(crate) mod typed;
pub(crate) mod unary;
pub(crate) mod window;

pub(crate) use shape::reshape_target;

use crate::tflite::fb;
use ndarray::ArrayD;

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
