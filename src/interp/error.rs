//! Errors of the integer interpreter.

use crate::calibrate::OpLocation;

/// Why a model could not be loaded or run by [`Interpreter`](super::Interpreter).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InterpError {
    /// The bytes are not a valid `.tflite` model.
    #[error("cannot read the model: {0}")]
    Read(String),
    /// The model's structure cannot be run (bad tensor references, a tensor read before it is written,
    /// undecodable constants).
    #[error("invalid model: {0}")]
    Model(String),
    /// Ops the interpreter has no kernel for (each named with its index, type and first output).
    #[error("{} op(s) have no kernel in the integer interpreter: {}", ops.len(), list(ops))]
    Unsupported {
        /// Each op without a kernel for its types.
        ops: Vec<OpLocation>,
    },
    /// A kernel rejected the op's tensors or options.
    #[error("{op} failed: {message}")]
    Kernel {
        /// The op that failed.
        op: OpLocation,
        /// What the kernel reported.
        message: String,
    },
    /// An input given by the caller does not fit the model.
    #[error("input {index} ({name:?}): {message}")]
    Input {
        /// Input position.
        index: usize,
        /// Input tensor name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// `invoke` was called before every input was set.
    #[error("input {index} ({name:?}) was not set before invoke()")]
    MissingInput {
        /// Input position.
        index: usize,
        /// Input tensor name.
        name: String,
    },
}

fn list(ops: &[OpLocation]) -> String {
    ops.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
