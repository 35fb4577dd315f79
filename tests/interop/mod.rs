//! Running artifacts in the real LiteRT interpreter (through `tests/litert/evaluate.py`) and the corpus anchors.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has `ai-edge-litert` and `numpy` (set by `scripts/test.sh`).
pub fn python() -> PathBuf {
    crate::support::litert_python()
}

/// The model corpus (`LITEQUANT_CORPUS`, else `../shared/corpus` beside the repository).
pub fn corpus() -> PathBuf {
    crate::support::corpus_dir()
}

/// Names of the corpus models (folders with a model.tflite), sorted.
pub fn corpus_models() -> Vec<String> {
    crate::support::corpus_models()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// What LiteRT said about a quantized model run beside its float source.
#[derive(Debug, Clone, Deserialize)]
pub struct Eval {
    /// Both models loaded and ran.
    pub loads_ok: bool,
    /// The failure, if any.
    pub error: Option<String>,
    /// SQNR of all outputs over all samples, dB.
    #[serde(default)]
    pub sqnr_db: f64,
    /// Top-1 agreement of classifier outputs.
    #[serde(default)]
    pub top1_agree: Option<f64>,
    /// Element types of the quantized model's inputs.
    #[serde(default)]
    pub input_types: Vec<String>,
    /// Element types of the quantized model's outputs.
    #[serde(default)]
    pub output_types: Vec<String>,
    /// Ops computing in float32 (not counting QUANTIZE/DEQUANTIZE).
    #[serde(default)]
    pub float_compute_ops: usize,
    /// Float ops reading int8 weights (dynamic-range kernels).
    #[serde(default)]
    pub hybrid_ops: usize,
}

/// Runs `quant` beside `float` in LiteRT on `eval` (or random inputs) and returns the scores.
pub fn evaluate(float: &Path, quant: &Path, eval: Option<&Path>, samples: usize) -> Eval {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/litert/evaluate.py"))
        .arg(float)
        .arg(quant);
    if let Some(e) = eval {
        cmd.arg(e);
    }
    cmd.arg("--samples").arg(samples.to_string());
    let out = cmd.output().expect("the test Python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "evaluate.py printed no JSON for {}:\n{}\n{}",
                quant.display(),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).expect("evaluate.py prints valid JSON")
}

/// One row of the corpus' `anchors.jsonl` (what TF's converter reached).
#[derive(Debug, Clone, Deserialize)]
pub struct Anchor {
    /// `tf` or `aeq`.
    pub tool: String,
    /// Corpus model.
    pub model: String,
    /// The tool's mode name (`dynamic`, `int_float_fallback`, `full_int8`, `float16`, `int16x8`).
    pub mode: String,
    /// SQNR, dB.
    pub sqnr_db: Option<f64>,
    /// Top-1 agreement.
    pub top1_agree: Option<f64>,
    /// Artifact size in bytes.
    pub size_quant: Option<u64>,
    /// TF's op histogram, keyed `OP(input types/w:weight types->output types)`.
    #[serde(default)]
    pub quant_ops_typed: std::collections::BTreeMap<String, usize>,
    /// Ops computing in float in TF's output, by op type.
    #[serde(default)]
    pub quant_float_compute_ops: std::collections::BTreeMap<String, usize>,
}

/// TF's row for a corpus model and TF mode.
pub fn tf_anchor(model: &str, tf_mode: &str) -> Anchor {
    let text =
        std::fs::read_to_string(corpus().join("anchors.jsonl")).expect("anchors.jsonl is readable");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Anchor>(l).ok())
        .find(|a| a.tool == "tf" && a.model == model && a.mode == tf_mode)
        .unwrap_or_else(|| panic!("no tf anchor for {model}/{tf_mode}"))
}

/// The `litequant` binary under test.
pub fn litequant() -> Command {
    Command::new(env!("CARGO_BIN_EXE_litequant"))
}

impl Anchor {
    /// Ops in TF's output taking float activations and int8 weights (as the corpus scorer counts them).
    pub fn hybrid_ops(&self) -> usize {
        self.quant_ops_typed
            .iter()
            .filter(|(k, _)| {
                k.split_once("/w:").is_some_and(|(_, w)| w.contains("int8"))
                    && k.ends_with("->float32)")
            })
            .map(|(_, n)| n)
            .sum()
    }
}
