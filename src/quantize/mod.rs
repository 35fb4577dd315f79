//! Applying a quantization mode to a graph, following TFLite's quantization spec.
//!
//! * `dynamic`: int8 weights, float activations (hybrid kernels).
//! * `float16`: FLOAT16 constants, each behind one DEQUANTIZE.
//! * `int8` / `int16x8`: full integer with calibrated activation ranges (see [`crate::calibrate`]).

pub mod bias;
pub mod check;
mod dynamic;
mod exclude;
mod float16;
pub mod integer;
pub mod metadata;
pub mod params;
pub(crate) mod rounding;
pub mod rules;
pub mod versions;
pub mod weights;

pub use dynamic::{quantize_dynamic, MIN_WEIGHT_ELEMENTS};
pub use exclude::ExcludeSet;
pub use float16::quantize_float16;
pub use integer::quantize_integer;

use crate::graph::{Graph, TensorId};
use std::collections::BTreeMap;

/// A quantization mode, named as in `quantize.toml`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Dynamic range: int8 weights, float activations.
    Dynamic,
    /// Full integer: int8 activations and weights, int32 bias.
    Int8,
    /// float16 weights.
    Float16,
    /// int16 activations, int8 weights, int64 bias.
    Int16x8,
}

impl Mode {
    /// The mode's name in `quantize.toml` and artifact file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dynamic => "dynamic",
            Mode::Int8 => "int8",
            Mode::Float16 => "float16",
            Mode::Int16x8 => "int16x8",
        }
    }

    /// Whether the mode needs calibrated activation ranges (a dataset).
    pub fn needs_calibration(self) -> bool {
        matches!(self, Mode::Int8 | Mode::Int16x8)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The element type of a model input or output in the quantized model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IoType {
    /// Float I/O: QUANTIZE at inputs, DEQUANTIZE at outputs.
    #[default]
    Float32,
    /// int8 I/O (int8 mode).
    Int8,
    /// uint8 I/O (int8 mode): requantizing boundary ops with zero point + 128.
    Uint8,
    /// int16 I/O (int16x8 mode).
    Int16,
}

/// Everything besides the mode that decides how a graph is quantized (the resolved per-model settings).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuantOptions {
    /// Conv and depthwise weights per output channel.
    pub per_channel: bool,
    /// FULLY_CONNECTED weights per output channel.
    pub per_channel_dense: bool,
    /// Ops that cannot be quantized may stay float (`TFLITE_BUILTINS`); false for `TFLITE_BUILTINS_INT8`.
    pub allow_float_fallback: bool,
    /// Custom and Flex ops pass through untouched (`SELECT_TF_OPS`).
    pub select_tf_ops: bool,
    /// Model input type (integer modes).
    pub inference_input_type: IoType,
    /// Model output type (integer modes).
    pub inference_output_type: IoType,
    /// Ops kept float: op type names (`SOFTMAX`) or globs on each `;`-separated part of an output name.
    pub exclude: Vec<String>,
    /// Fail if the artifact needs a newer LiteRT than this (`"2.14"`).
    pub target_runtime: Option<String>,
    /// Ops (indices in the source model) kept float to meet an accuracy target (integer modes). Left out of
    /// the serialized options when empty, so settings digests of models without a target stay as they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_float_ops: Vec<usize>,
    /// Cross-layer equalization of convolution pairs before calibration
    /// ([`crate::graph::equalize_cross_layer`]). Left out of the serialized options when off, so settings
    /// digests of models without it stay as they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub equalize: bool,
    /// Adaptive weight rounding in the integer modes ([`rounding`]): left out of the serialized options when
    /// off, like `equalize`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adaptive_rounding: bool,
    /// The input second moments adaptive rounding uses, measured on the calibration data (not a setting: not
    /// serialized). Without them weights round to nearest.
    #[serde(skip)]
    pub grams: Option<std::sync::Arc<crate::calibrate::gram::Grams>>,
    /// Empirical bias correction in the integer modes ([`bias`]): left out of the serialized options when
    /// off, like `equalize`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bias_correction: bool,
    /// The mean input rows of the weighted ops bias correction uses, measured on the calibration data (not a
    /// setting: not serialized). Without them biases are quantized as they are.
    #[serde(skip)]
    pub row_sums: Option<std::sync::Arc<crate::calibrate::gram::RowSums>>,
    /// float16 mode stores only the ops' weights as FLOAT16, biases and other constants float32, as
    /// ai-edge-quantizer does ([`float16`]); off: every float constant, as TF's converter does. Left out of the
    /// serialized options when off, like `equalize`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub float16_weights_only: bool,
    /// int8: the input range of each SOFTMAX / LOGISTIC / TANH that gives a model output is chosen by the
    /// error at that output ([`crate::calibrate::heads`]). Left out of the serialized options when off, like
    /// `equalize`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub output_aware: bool,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            per_channel: true,
            per_channel_dense: true,
            allow_float_fallback: true,
            select_tf_ops: false,
            inference_input_type: IoType::Float32,
            inference_output_type: IoType::Float32,
            exclude: Vec::new(),
            target_runtime: None,
            keep_float_ops: Vec::new(),
            equalize: false,
            adaptive_rounding: false,
            grams: None,
            bias_correction: false,
            row_sums: None,
            float16_weights_only: false,
            output_aware: false,
        }
    }
}

/// Calibrated activation ranges: `(min, max)` per tensor of the main subgraph, as float32.
pub type Ranges = BTreeMap<TensorId, (f32, f32)>;

/// What quantization did to the graph, for the report and the summary line.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantSummary {
    /// Ops whose computation is now integer (or hybrid, in dynamic mode).
    pub ops_quantized: usize,
    /// Ops left computing in float, with the reason for each.
    pub ops_float: Vec<FloatOp>,
    /// Weight tensors stored in a narrower type.
    pub weights_quantized: usize,
    /// Warnings for the user (exclude patterns matching nothing, ...).
    pub warnings: Vec<String>,
}

/// An op left in float and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FloatOp {
    /// The subgraph the op is in (0, the main one, is left out of reports).
    #[serde(default, skip_serializing_if = "is_main")]
    pub subgraph: usize,
    /// Position in its subgraph's execution order in the source model.
    pub index: usize,
    /// Op type (`SOFTMAX`, `CUSTOM(name)`).
    pub op: String,
    /// First output tensor name.
    pub output: String,
    /// Why it stayed float.
    pub reason: String,
}

fn is_main(sg: &usize) -> bool {
    *sg == 0
}

/// Why a graph could not be quantized as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// Ops that cannot be quantized where the op set forbids float (`TFLITE_BUILTINS_INT8`).
    #[error("{} op(s) cannot be quantized to {mode} under TFLITE_BUILTINS_INT8: {}", ops.len(), ops.iter().map(|o| format!("#{} {} ({}): {}", o.index, o.op, o.output, o.reason)).collect::<Vec<_>>().join("; "))]
    NotQuantizable {
        /// The mode asked for.
        mode: Mode,
        /// Each op that cannot be quantized.
        ops: Vec<FloatOp>,
    },
    /// A calibrated range is missing for a tensor the mode needs.
    #[error("no calibrated range for tensor {0:?}")]
    MissingRange(String),
    /// The artifact needs a newer runtime than `target_runtime`.
    #[error("op {op} version {version} needs LiteRT {needs}, newer than target_runtime {target}")]
    RuntimeTooOld {
        /// Op name.
        op: String,
        /// Op version.
        version: i32,
        /// Runtime it needs.
        needs: String,
        /// The configured target.
        target: String,
    },
    /// The self-check of the result failed (a bug: nothing is written).
    #[error("internal check failed: {0}")]
    SelfCheck(String),
    /// Anything else that makes the request impossible for this model.
    #[error("{0}")]
    Unsupported(String),
}

/// Quantizes `graph` in place.
///
/// `ranges` must hold calibrated ranges for the integer modes (`int8`, `int16x8`) and is ignored otherwise.
pub fn quantize(
    graph: &mut Graph,
    mode: Mode,
    opts: &QuantOptions,
    ranges: Option<&Ranges>,
) -> Result<QuantSummary, QuantError> {
    match mode {
        Mode::Dynamic => quantize_dynamic(graph, opts),
        Mode::Float16 => quantize_float16(graph, opts),
        Mode::Int8 | Mode::Int16x8 => {
            let ranges = ranges.ok_or_else(|| {
                QuantError::Unsupported(format!("mode {mode} needs calibrated ranges"))
            })?;
            quantize_integer(graph, mode, opts, ranges)
        }
    }
}
