//! `quantize.toml`: the declarative description of what to quantize, parsed and validated.
//!
//! [`load`] (or [`parse`]) turns the file into a [`Config`] whose paths are resolved against the file's folder
//! and whose values are checked against each other; every mistake is a [`ConfigError`] naming the file, the
//! line and column, the full key path and what was expected:
//!
//! ```text
//! quantize.toml:7:22: key `models.classifier.modes[2]`: expected one of `dynamic`, `float16`, `int8`, `int16x8`, found `int4`
//! ```
//!
//! Every key is documented in `quantize.toml.example` at the repository root.
//!
//! ## Op sets
//! `op_sets` takes TensorFlow's names and, like TensorFlow, their union: `TFLITE_BUILTINS_INT8` alone means
//! every op of an integer mode is quantized or the job fails; together with `TFLITE_BUILTINS` float fallback
//! is allowed again. Op sets act on the integer modes (`int8`, `int16x8`) except `SELECT_TF_OPS`, which lets
//! Flex and custom ops pass through in every mode.

mod error;
mod locate;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

pub(crate) use error::join_key;
pub use error::{ConfigError, ConfigErrorKind, Location};

use crate::dataset::DatasetSpec;
use crate::quantize::{IoType, Mode, QuantOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed and validated `quantize.toml`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The config file, as given to [`load`] or [`parse`].
    pub path: PathBuf,
    /// The folder relative paths in the file are resolved against (the file's folder, made absolute).
    pub base_dir: PathBuf,
    /// `[settings]`, defaults filled in.
    pub settings: Settings,
    /// `[datasets.NAME]` tables by name, paths resolved.
    pub datasets: BTreeMap<String, DatasetSpec>,
    /// `[models.NAME]` tables by name, paths resolved and defaults filled in.
    pub models: BTreeMap<String, ModelConfig>,
}

/// `[settings]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// Where artifacts go (`out_dir`, default `target/quantized`), joined to [`Config::base_dir`] unless
    /// absolute.
    pub out_dir: PathBuf,
    /// The reproducibility record (`lock`, default `quantize.lock`), joined to [`Config::base_dir`] unless
    /// absolute.
    pub lock: PathBuf,
    /// The artifact cache folder (`cache`), joined to [`Config::base_dir`] unless absolute; `None`: the
    /// default (`LITEQUANT_CACHE_DIR`, else `<cargo target dir>/litequant-cache` in a cargo project, else
    /// `.litequant-cache` beside the config).
    pub cache: Option<PathBuf>,
}

/// A TensorFlow Lite op set, named as TensorFlow's `tf.lite.OpsSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum OpSet {
    /// `TFLITE_BUILTINS`: builtin ops; in the integer modes, ops that cannot be quantized stay float.
    #[serde(rename = "TFLITE_BUILTINS")]
    TfliteBuiltins,
    /// `TFLITE_BUILTINS_INT8`: builtin ops, all integer; alone, an op that cannot be quantized is an error.
    #[serde(rename = "TFLITE_BUILTINS_INT8")]
    TfliteBuiltinsInt8,
    /// `SELECT_TF_OPS`: Flex (TensorFlow) and custom ops pass through; they and what depends on them stay
    /// float.
    #[serde(rename = "SELECT_TF_OPS")]
    SelectTfOps,
}

impl OpSet {
    /// Every op set, in the order error messages list them.
    pub const ALL: [OpSet; 3] = [
        OpSet::TfliteBuiltins,
        OpSet::TfliteBuiltinsInt8,
        OpSet::SelectTfOps,
    ];

    /// TensorFlow's name, as written in `quantize.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpSet::TfliteBuiltins => "TFLITE_BUILTINS",
            OpSet::TfliteBuiltinsInt8 => "TFLITE_BUILTINS_INT8",
            OpSet::SelectTfOps => "SELECT_TF_OPS",
        }
    }
}

impl std::fmt::Display for OpSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How activation ranges are chosen from calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Calibration {
    /// `minmax`: the observed minimum and maximum (TensorFlow's converter does the same).
    #[default]
    MinMax,
    /// `percentile`: the tails beyond a percentile of the values clipped (`percentile = 99.99`).
    Percentile(Percentile),
    /// `mse`: the clip points minimizing the expected quantization + clipping squared error.
    Mse,
    /// `entropy`: TensorRT's KL-divergence threshold.
    Entropy,
    /// `auto`: per tensor, the candidate range (minmax, percentile, mse, entropy) that causes the least error
    /// in the outputs of the ops reading the tensor, measured on the calibration data.
    Auto,
}

impl Calibration {
    /// The method names accepted in `quantize.toml`, in the order error messages list them.
    pub const NAMES: [&'static str; 5] = ["minmax", "percentile", "mse", "entropy", "auto"];

    /// The name in `quantize.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Calibration::MinMax => "minmax",
            Calibration::Percentile(_) => "percentile",
            Calibration::Mse => "mse",
            Calibration::Entropy => "entropy",
            Calibration::Auto => "auto",
        }
    }

    /// The percentile of the `percentile` method.
    pub fn percentile(self) -> Option<Percentile> {
        match self {
            Calibration::Percentile(p) => Some(p),
            _ => None,
        }
    }
}

/// A percentile in (0, 100]: `percentile = 99.99` keeps 99.99% of the values inside the range.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Percentile(f64);

// Never NaN (the constructor rejects it), so equality is reflexive.
impl Eq for Percentile {}

impl std::hash::Hash for Percentile {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl Percentile {
    /// The default, 99.99.
    pub const DEFAULT: Percentile = Percentile(99.99);

    /// `p` if it is in (0, 100].
    pub fn new(p: f64) -> Option<Percentile> {
        (p > 0.0 && p <= 100.0).then_some(Percentile(p))
    }

    /// The percentile, in (0, 100].
    pub fn value(self) -> f64 {
        self.0
    }
}

impl Default for Percentile {
    fn default() -> Self {
        Percentile::DEFAULT
    }
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An accuracy a model's integer artifacts must reach on its evaluation dataset (`target_sqnr_db`,
/// `max_top1_drop`): litequant keeps the most damaging ops float, one at a time, until it is met.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct AccuracyTarget {
    /// Minimum output SQNR in dB (quantized vs float model, all outputs and samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqnr_db: Option<f64>,
    /// Maximum drop in top-1 agreement with the float model (0.01 = at most 1% of samples classified
    /// differently).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_top1_drop: Option<f64>,
}

/// One `[models.NAME]` table, resolved: what to quantize and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    /// The table name; artifacts are `<out_dir>/<name>.<mode>.tflite`.
    pub name: String,
    /// The float `.tflite`, joined to [`Config::base_dir`] unless absolute.
    pub source: PathBuf,
    /// Modes to build, in the order written (at least one, no repeats).
    pub modes: Vec<Mode>,
    /// The calibration dataset (a key of [`Config::datasets`]); always set when a mode needs calibration.
    pub dataset: Option<String>,
    /// Op sets (default `[TFLITE_BUILTINS]`), in the order written.
    pub op_sets: Vec<OpSet>,
    /// Input type of the integer mode it fits (default float32).
    pub inference_input_type: IoType,
    /// Output type of the integer mode it fits (default float32).
    pub inference_output_type: IoType,
    /// Conv and depthwise weights per output channel (default true).
    pub per_channel: bool,
    /// FULLY_CONNECTED weights per output channel (default true).
    pub per_channel_dense: bool,
    /// Range selection from calibration statistics (default minmax).
    pub calibration: Calibration,
    /// Ops kept float: op types or globs on output tensor names (default none).
    pub exclude: Vec<String>,
    /// The oldest LiteRT the artifacts must load in (`"2.14"`), if any.
    pub target_runtime: Option<String>,
    /// The evaluation dataset (a key of [`Config::datasets`]): every artifact's report measures its accuracy
    /// against the float model on it.
    pub eval: Option<String>,
    /// The accuracy the integer artifacts must reach on `eval`, if any.
    pub target: Option<AccuracyTarget>,
    /// Cross-layer equalization of convolution pairs before calibration and quantization (default false).
    pub equalize: bool,
    /// Adaptive weight rounding against the calibration data in the integer modes (default false).
    pub adaptive_rounding: bool,
    /// Empirical bias correction against the calibration data in the integer modes (default false).
    pub bias_correction: bool,
    /// float16 mode casts only the ops' weights, as ai-edge-quantizer does (default false: every float
    /// constant, as TF's converter does).
    pub float16_weights_only: bool,
    /// int8: choose the input ranges of the output heads (SOFTMAX, LOGISTIC, TANH) by the output error
    /// (default false).
    pub output_aware: bool,
}

impl ModelConfig {
    /// The options for quantizing this model in `mode`.
    ///
    /// Float fallback is forbidden only in the integer modes and only when `TFLITE_BUILTINS_INT8` is the one
    /// builtin op set; the I/O types apply to the mode they fit (int8/uint8 to `int8`, int16 to `int16x8`)
    /// and are float32 in every other mode.
    pub fn quant_options(&self, mode: Mode) -> QuantOptions {
        let has = |set| self.op_sets.contains(&set);
        let int8_only = has(OpSet::TfliteBuiltinsInt8) && !has(OpSet::TfliteBuiltins);
        let io_type = |io: IoType| {
            if io_type_fits(io, mode) {
                io
            } else {
                IoType::Float32
            }
        };
        QuantOptions {
            per_channel: self.per_channel,
            per_channel_dense: self.per_channel_dense,
            allow_float_fallback: !(int8_only && mode.needs_calibration()),
            select_tf_ops: has(OpSet::SelectTfOps),
            inference_input_type: io_type(self.inference_input_type),
            inference_output_type: io_type(self.inference_output_type),
            exclude: self.exclude.clone(),
            target_runtime: self.target_runtime.clone(),
            keep_float_ops: Vec::new(),
            equalize: self.equalize,
            adaptive_rounding: self.adaptive_rounding,
            grams: None,
            bias_correction: self.bias_correction,
            row_sums: None,
            float16_weights_only: self.float16_weights_only,
            output_aware: self.output_aware,
        }
    }
}

/// Whether model I/O of type `io` can be used in `mode`.
fn io_type_fits(io: IoType, mode: Mode) -> bool {
    match io {
        IoType::Float32 => true,
        IoType::Int8 | IoType::Uint8 => mode == Mode::Int8,
        IoType::Int16 => mode == Mode::Int16x8,
    }
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_path_buf(),
        location: None,
        key: None,
        kind: ConfigErrorKind::Io,
        message,
    };
    let bytes = crate::regular_file::read(
        path,
        crate::regular_file::MAX_CONFIG_BYTES,
        "a quantize.toml",
    )
    .map_err(|e| fail(format!("cannot read the config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "the config file is not UTF-8 text (invalid byte at offset {}); expected TOML",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&text, path)
}

/// Parses and validates `text`, the contents of the config file at `path`.
///
/// `path` names the file in errors, and its folder is the base for relative paths; the file itself is not
/// read.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let keys = locate::KeyIndex::build(text, path)?;
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| keys.error(&e, text, path))?;
    validate::validate(raw, &keys, text, path)
}
