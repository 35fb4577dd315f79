//! The file as written: serde's view of `quantize.toml`, values spanned so validation can point at them.
//!
//! Tables are not spanned (toml has no span for dotted-key tables); validation asks the
//! [`KeyIndex`](super::locate::KeyIndex) where a table starts.
//!
//! Names that must be one of a set (modes, op sets, formats, ...) are read as strings and checked in
//! validation, which can then say what was expected and where.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub settings: Option<RawSettings>,
    #[serde(default)]
    pub datasets: BTreeMap<String, RawDataset>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
}

/// `[settings]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub out_dir: Option<Spanned<String>>,
    pub lock: Option<Spanned<String>>,
    pub cache: Option<Spanned<String>>,
}

/// `[datasets.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataset {
    pub format: Spanned<String>,
    pub path: Option<Spanned<String>>,
    pub samples: Option<Spanned<i64>>,
    pub resize: Option<Spanned<Vec<Spanned<i64>>>>,
    pub mean: Option<Spanned<Vec<Spanned<f64>>>>,
    pub std: Option<Spanned<Vec<Spanned<f64>>>>,
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<String>>,
    pub range: Option<Spanned<Vec<Spanned<f64>>>>,
    pub seed: Option<Spanned<i64>>,
    pub labels: Option<Spanned<String>>,
    pub label_output: Option<Spanned<i64>>,
}

/// `[models.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub source: Spanned<String>,
    pub modes: Spanned<Vec<Spanned<String>>>,
    pub dataset: Option<Spanned<String>>,
    pub op_sets: Option<Spanned<Vec<Spanned<String>>>>,
    pub inference_input_type: Option<Spanned<String>>,
    pub inference_output_type: Option<Spanned<String>>,
    pub per_channel: Option<bool>,
    pub per_channel_dense: Option<bool>,
    pub calibration: Option<Spanned<String>>,
    pub percentile: Option<Spanned<f64>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    pub target_runtime: Option<Spanned<String>>,
    pub eval: Option<Spanned<String>>,
    pub target_sqnr_db: Option<Spanned<f64>>,
    pub max_top1_drop: Option<Spanned<f64>>,
    pub equalize: Option<bool>,
    pub adaptive_rounding: Option<bool>,
    pub bias_correction: Option<bool>,
    pub float16_weights_only: Option<bool>,
    pub output_aware: Option<bool>,
}
