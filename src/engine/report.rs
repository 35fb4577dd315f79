//! The JSON report written beside each artifact.

use super::Job;
use crate::quantize::QuantSummary;
use serde::{Deserialize, Serialize};

/// What one job did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// litequant's version.
    pub litequant: String,
    /// Model name in the config.
    pub model: String,
    /// Mode.
    pub mode: String,
    /// Source model path.
    pub source: String,
    /// Artifact path.
    pub artifact: String,
    /// Source size in bytes.
    pub source_bytes: u64,
    /// Artifact size in bytes.
    pub artifact_bytes: u64,
    /// `artifact_bytes / source_bytes`.
    pub size_ratio: f64,
    /// Ops in the source model, every subgraph's.
    pub source_ops: usize,
    /// Calibration samples used (0 for modes without calibration).
    pub calibration_samples: usize,
    /// The calibration data was synthetic (`random`): fine for smoke tests, not for shipping.
    pub synthetic_calibration_data: bool,
    /// What quantization did (ops quantized, ops left float with reasons, warnings).
    pub quantization: QuantSummary,
    /// Wall time of the job in seconds (of the cache lookup, on a hit).
    pub seconds: f64,
    /// `hit` (the artifact came from the cache), `miss` (built and stored) or `off`.
    #[serde(default)]
    pub cache: String,
    /// Where the activation ranges came from: `dataset` (calibrated now), `lock` (`quantize.lock`) or `none`
    /// (modes without calibration).
    #[serde(default)]
    pub ranges_from: String,
    /// What quantization cost on the model's evaluation dataset (`eval`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<crate::eval::Accuracy>,
    /// How the accuracy target (`target_sqnr_db`, `max_top1_drop`) was met, when the model sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::eval::target::TargetOutcome>,
}

impl Report {
    /// Builds the report of a finished job.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        job: &Job,
        summary: &QuantSummary,
        source_bytes: u64,
        artifact_bytes: u64,
        source_ops: usize,
        calibration_samples: usize,
        synthetic: bool,
        seconds: f64,
    ) -> Report {
        Report {
            litequant: crate::VERSION.to_string(),
            model: job.model.clone(),
            mode: job.mode.to_string(),
            source: job.source.display().to_string(),
            artifact: job.artifact.display().to_string(),
            source_bytes,
            artifact_bytes,
            size_ratio: artifact_bytes as f64 / source_bytes.max(1) as f64,
            source_ops,
            calibration_samples,
            synthetic_calibration_data: synthetic,
            quantization: summary.clone(),
            seconds,
            cache: "off".into(),
            ranges_from: if calibration_samples > 0 {
                "dataset"
            } else {
                "none"
            }
            .into(),
            accuracy: None,
            target: None,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data (strings, numbers, vectors) cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// One line for a person: `digits.int8  11.5 KiB (0.41x of 27.7 KiB)  4 ops int8, 0 float  210 ms`.
    pub fn summary_line(&self) -> String {
        let q = &self.quantization;
        let floats = q.ops_float.len();
        let what = match self.mode.as_str() {
            "dynamic" => format!("{} ops with int8 weights, {floats} float", q.ops_quantized),
            "float16" => format!("{} weights float16", q.weights_quantized),
            mode => format!("{} ops {mode}, {floats} float", q.ops_quantized),
        };
        let mut notes = String::new();
        if self.synthetic_calibration_data {
            notes.push_str("  [random calibration data]");
        }
        if self.cache == "hit" {
            notes.push_str("  [cached]");
        } else if self.ranges_from == "lock" && matches!(self.mode.as_str(), "int8" | "int16x8") {
            notes.push_str("  [ranges from lock]");
        }
        format!(
            "{}.{}  {}  ({:.2}x of {})  {what}  {}{}",
            self.model,
            self.mode,
            human_size(self.artifact_bytes),
            self.size_ratio,
            human_size(self.source_bytes),
            human_time(self.seconds),
            notes
        )
    }
}

/// `0.2104` -> `210 ms`, `3.5` -> `3.50 s`.
pub fn human_time(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
