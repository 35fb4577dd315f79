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

/// The folder of corpus model `name` (`tests/corpus/<name>`, or a folder `LITEQUANT_CORPUS` adds).
pub fn model_dir(name: &str) -> PathBuf {
    crate::support::model_dir(name)
}

/// Names of the corpus models (folders with a model.tflite), sorted.
pub fn corpus_models() -> Vec<String> {
    crate::support::corpus_models()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// What LiteRT said about a quantized model run beside its float source. Every field is required in
/// `evaluate.py`'s output: a missing key fails the test rather than reading as 0.
#[derive(Debug, Clone, Deserialize)]
pub struct Eval {
    /// Both models loaded and ran (always true in what [`evaluate`] returns).
    pub loads_ok: bool,
    /// The failure, if any.
    pub error: Option<String>,
    /// SQNR of all outputs over all samples, dB.
    pub sqnr_db: f64,
    /// Top-1 agreement of classifier outputs (`null` when no output is a classifier).
    #[serde(deserialize_with = "required")]
    pub top1_agree: Option<f64>,
    /// Element types of the quantized model's inputs.
    pub input_types: Vec<String>,
    /// Element types of the quantized model's outputs.
    pub output_types: Vec<String>,
    /// Ops computing in float32 (not counting QUANTIZE/DEQUANTIZE).
    pub float_compute_ops: usize,
    /// Float ops reading int8 weights (dynamic-range kernels).
    pub hybrid_ops: usize,
}

/// Deserializes an `Option` whose key must be present (it may be `null`): serde reads a missing `Option` field
/// as `None` unless it has its own deserializer.
fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// Deserializes a required dB value: a number, `null`, or a non-finite one as the corpus scorer writes it
/// (`"inf"`, `"-inf"`, `"nan"`).
fn decibels<'de, D>(d: D) -> Result<Option<f64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Db {
        Number(f64),
        Text(String),
    }
    match Option::<Db>::deserialize(d)? {
        None => Ok(None),
        Some(Db::Number(x)) => Ok(Some(x)),
        Some(Db::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a dB value"))),
    }
}

/// Runs `quant` beside `float` in LiteRT on `eval` (or random inputs) and returns the scores; `Err` with
/// LiteRT's message when either model does not load or run. Panics when the script's output lacks a key.
pub fn try_evaluate(
    float: &Path,
    quant: &Path,
    eval: Option<&Path>,
    samples: usize,
) -> Result<Eval, String> {
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
    let value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("evaluate.py printed {line:?}: {e}"));
    if value["loads_ok"] != serde_json::Value::Bool(true) {
        return Err(format!("{}: {}", quant.display(), value["error"]));
    }
    Ok(serde_json::from_value(value).unwrap_or_else(|e| {
        panic!(
            "evaluate.py's output for {} lacks a value: {e}: {line}",
            quant.display()
        )
    }))
}

/// [`try_evaluate`], failing the test when LiteRT cannot load or run either model.
pub fn evaluate(float: &Path, quant: &Path, eval: Option<&Path>, samples: usize) -> Eval {
    try_evaluate(float, quant, eval, samples)
        .unwrap_or_else(|e| panic!("LiteRT cannot run the artifact: {e}"))
}

/// One row of the corpus' `anchors.jsonl` (what TF's converter reached). The keys the floors read are
/// required: a row without them fails the test instead of reading as 0.
#[derive(Debug, Clone, Deserialize)]
pub struct Anchor {
    /// SQNR, dB (`null` when the tool's output did not run; `"inf"` when it equals the float model's).
    #[serde(deserialize_with = "decibels")]
    pub sqnr_db: Option<f64>,
    /// Top-1 agreement (`null` when the model has no classifier output or the output did not run).
    #[serde(deserialize_with = "required")]
    pub top1_agree: Option<f64>,
    /// Artifact size in bytes (`null` when the tool wrote nothing).
    #[serde(deserialize_with = "required")]
    pub size_quant: Option<u64>,
    /// TF's op histogram, keyed `OP(input types/w:weight types->output types)`.
    pub quant_ops_typed: std::collections::BTreeMap<String, usize>,
    /// Ops computing in float in TF's output, by op type.
    pub quant_float_compute_ops: std::collections::BTreeMap<String, usize>,
    /// A bar an issue states (no tool reached the model): met as is, without the anchors' tolerances.
    #[serde(default)]
    pub bar: bool,
}

impl Anchor {
    /// How far under the anchor's SQNR (dB) and top-1 agreement a result may land: 1 dB and 0.01 for a
    /// tool's anchor (DESIGN.md, Targets), nothing for an issue's bar.
    pub fn tolerances(&self) -> (f64, f64) {
        if self.bar {
            (0.0, 0.0)
        } else {
            (1.0, 0.01)
        }
    }
}

/// The anchor for a corpus model and TF mode: TF's row (from the `anchors.jsonl` beside the model), or, where
/// TF's converter failed on the model (`tool_error`, e.g. int16x8 on the transformer: "not yet supported for
/// op: 'NEG'"), ai-edge-quantizer's row for the same mode, as the issues state the bar. Panics when neither
/// tool produced a model.
pub fn tf_anchor(model: &str, tf_mode: &str) -> Anchor {
    let row = crate::support::reference_anchor_row(model, tf_mode);
    serde_json::from_value(row.clone())
        .unwrap_or_else(|e| panic!("anchor {model}/{tf_mode}: {e}: {row}"))
}

/// The `litequant` binary under test.
pub fn litequant() -> Command {
    Command::new(env!("CARGO_BIN_EXE_litequant"))
}

/// Runs `litequant args` in `dir`; fails the test with its stderr unless it succeeds.
pub fn run_ok(dir: &Path, args: &[&str]) {
    let out = litequant().args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "litequant {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
