//! The integer reference interpreter: runs the models litequant produces (int8, int16x8, dynamic-range
//! hybrid, float16, float fallback) with LiteRT's integer arithmetic, so results match LiteRT's reference
//! kernels bit for bit on integer ops.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use litequant::interp::{Interpreter, Tensor};
//! let bytes = std::fs::read("model.int8.tflite")?;
//! let mut interp = Interpreter::new(&bytes)?;
//! let shape = interp.inputs()[0].shape.clone();
//! let n = shape.iter().product();
//! interp.set_input_f32(0, &vec![0.5; n])?; // quantized with the input's parameters when it is integer
//! interp.invoke()?;
//! let scores = interp.output_f32(0)?; // dequantized when the output is integer
//! # let _ = scores; Ok(()) }
//! ```
//!
//! Every tensor stays readable after [`Interpreter::invoke`] ([`Interpreter::tensor`]), for per-tensor
//! accuracy reports; [`Interpreter::eval_op`] runs one op on given inputs, for op-by-op parity checks.

mod error;
pub mod fixed_point;
mod interpreter;
pub(crate) mod kernels;
mod tensor;

pub use error::InterpError;
pub use interpreter::Interpreter;
pub use tensor::{QuantParams, Tensor, TensorData, TensorInfo};

pub(crate) use kernels::Kernel as IntegerKernel;
