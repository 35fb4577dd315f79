//! Errors of the float interpreter and the calibration driver.

use super::KernelError;

/// Where an op sits in the model: what a user needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLocation {
    /// Position in the main subgraph's execution order.
    pub index: usize,
    /// Op type (`CONV_2D`, `CUSTOM(name)`).
    pub op: String,
    /// Name of the op's first output tensor ("" when it has none).
    pub output: String,
}

impl std::fmt::Display for OpLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "op #{} {} (output {:?})",
            self.index, self.op, self.output
        )
    }
}

/// Why the float model could not be run on the representative data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibError {
    /// Ops without a float kernel: calibration cannot run the model.
    #[error("{} op(s) have no float kernel: {}", ops.len(), list(ops))]
    UnsupportedOps {
        /// Each op without a kernel.
        ops: Vec<OpLocation>,
    },
    /// A kernel rejected its inputs or options.
    #[error("{}{op} failed: {source}", sample_prefix(*sample))]
    Kernel {
        /// The op that failed.
        op: OpLocation,
        /// The sample being run, when known.
        sample: Option<usize>,
        /// What the kernel reported.
        source: KernelError,
    },
    /// The model's structure does not allow running it (a tensor read before it is written, bad constant data).
    #[error("invalid model: {0}")]
    Model(String),
    /// The representative data does not fit the model (count or shape of inputs), or could not be read.
    #[error("{}{message}", sample_prefix(*sample))]
    Data {
        /// The sample at fault, when known.
        sample: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The worker thread pool could not be created.
    #[error("calibration thread pool: {0}")]
    ThreadPool(String),
    /// The caller cancelled calibration.
    #[error("calibration cancelled")]
    Cancelled,
}

impl CalibError {
    /// The same error, attributed to sample `index` if it concerns one sample and names none yet.
    pub(crate) fn at_sample(self, index: usize) -> CalibError {
        match self {
            CalibError::Kernel {
                op,
                sample: None,
                source,
            } => CalibError::Kernel {
                op,
                sample: Some(index),
                source,
            },
            CalibError::Data {
                sample: None,
                message,
            } => CalibError::Data {
                sample: Some(index),
                message,
            },
            other => other,
        }
    }
}

fn list(ops: &[OpLocation]) -> String {
    ops.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn sample_prefix(sample: Option<usize>) -> String {
    sample.map(|s| format!("sample {s}: ")).unwrap_or_default()
}
