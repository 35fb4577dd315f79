//! Shared test support: fixture models, the corpus, LiteRT through Python.

#![allow(dead_code)]

pub mod fixtures;

use std::path::{Path, PathBuf};

/// The corpus committed with the repository: `tests/corpus`, one folder per model.
pub fn repo_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The folders holding corpus models: `tests/corpus`, then each folder of `LITEQUANT_CORPUS` (a path list,
/// `:`-separated on Unix), which adds models and is never required.
///
/// Panics (failing the test) when a folder does not exist.
pub fn corpus_roots() -> Vec<PathBuf> {
    let mut roots = vec![repo_corpus()];
    if let Some(extra) = std::env::var_os("LITEQUANT_CORPUS") {
        roots.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    for dir in &roots {
        assert!(
            dir.is_dir(),
            "corpus folder {} does not exist (LITEQUANT_CORPUS adds folders holding <model>/model.tflite)",
            dir.display()
        );
    }
    roots
}

/// Every corpus model: `(name, model.tflite path)`, sorted by name. A model is a subfolder of a corpus folder
/// holding `model.tflite` (with `calib.npz`, `eval.npz`, `info.json`, and its rows in the folder's
/// `anchors.jsonl`); when two folders have a model of the same name, the first folder's wins (the
/// repository's before `LITEQUANT_CORPUS`).
pub fn corpus_models() -> Vec<(String, PathBuf)> {
    let mut models: std::collections::BTreeMap<String, PathBuf> = std::collections::BTreeMap::new();
    for dir in corpus_roots() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let model = entry.path().join("model.tflite");
            if model.is_file() {
                models
                    .entry(entry.file_name().to_string_lossy().into_owned())
                    .or_insert(model);
            }
        }
    }
    assert!(
        !models.is_empty(),
        "no <model>/model.tflite under {}",
        repo_corpus().display()
    );
    models.into_iter().collect()
}

/// The folder of corpus model `name` (its `model.tflite`, `calib.npz`, `eval.npz`, `info.json`).
///
/// Panics when no corpus folder has the model.
pub fn model_dir(name: &str) -> PathBuf {
    corpus_models()
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, model)| model.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| panic!("no corpus model {name:?} in {:?}", corpus_roots()))
}

/// The rows of `anchors.jsonl` beside corpus model `name` (what TF's converter and ai-edge-quantizer reached
/// on it), each parsed as JSON. Panics on a line that is not JSON, naming file and line.
pub fn anchor_rows(name: &str) -> Vec<serde_json::Value> {
    let dir = model_dir(name);
    let file = dir
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent folder", dir.display()))
        .join("anchors.jsonl");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (every corpus folder has an anchors.jsonl)",
            file.display()
        )
    });
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), i + 1))
        })
        .filter(|v| v["model"] == name)
        .collect()
}

/// The row of `tool` (`tf` or `aeq`) and `mode` for corpus model `name`; panics when there is none.
pub fn anchor_row(name: &str, tool: &str, mode: &str) -> serde_json::Value {
    anchor_rows(name)
        .into_iter()
        .find(|v| v["tool"] == tool && v["mode"] == mode)
        .unwrap_or_else(|| {
            panic!("no {tool} anchor for {name}/{mode} in the anchors.jsonl beside the model")
        })
}

/// The anchor row for corpus model `name` and TF mode `tf_mode`: TF's row, or, where TF's converter failed on
/// the model (`tool_error`, e.g. int16x8 on the transformer: "not yet supported for op: 'NEG'"),
/// ai-edge-quantizer's row for the same mode; where neither produced a model, the `issue` row holding the bar
/// the issue states (`"bar": true`: met exactly, without the anchors' 1 dB / 0.01 tolerance).
pub fn reference_anchor_row(name: &str, tf_mode: &str) -> serde_json::Value {
    let row = anchor_row(name, "tf", tf_mode);
    if row["tool_error"].is_null() {
        return row;
    }
    let aeq_mode = match tf_mode {
        "dynamic" => "dynamic_legacy_wi8",
        "float16" => "fp16_weight_only",
        "int_float_fallback" | "full_int8" => "static_wi8_ai8_globalminmax",
        "int16x8" => "static_wi8_ai16_globalminmax",
        other => panic!("no ai-edge-quantizer mode for TF mode {other}"),
    };
    let aeq = anchor_row(name, "aeq", aeq_mode);
    if aeq["tool_error"].is_null() {
        return aeq;
    }
    // Neither tool quantized it: the issue states the bar, recorded as an `issue` row (`"bar": true`).
    anchor_rows(name)
        .into_iter()
        .find(|v| v["tool"] == "issue" && v["mode"] == tf_mode)
        .unwrap_or_else(|| {
            panic!(
                "{name}/{tf_mode}: neither TF ({}) nor ai-edge-quantizer ({}) quantized it, and no `issue` row \
                 states the bar",
                row["tool_error"], aeq["tool_error"]
            )
        })
}

/// Model names a comma-separated filter variable (`LITEQUANT_MODELS`, `LITEQUANT_PARITY_MODELS`) selects from
/// the corpus: every corpus model when unset or empty. Panics when the filter names a model the corpus does not
/// have, so a typo cannot select nothing and pass.
pub fn selected_models(var: &str) -> Vec<String> {
    let all: Vec<String> = corpus_models().into_iter().map(|(n, _)| n).collect();
    let filter = std::env::var(var).unwrap_or_default();
    let wanted: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if wanted.is_empty() {
        return all;
    }
    for w in &wanted {
        assert!(
            all.iter().any(|m| m == w),
            "{var} names {w:?}, which is not a corpus model (corpus: {all:?})"
        );
    }
    all.into_iter()
        .filter(|m| wanted.contains(&m.as_str()))
        .collect()
}

/// The Python with LiteRT (`LITEQUANT_TEST_PYTHON`); panics with how to set it when absent.
pub fn litert_python() -> PathBuf {
    match std::env::var_os("LITEQUANT_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "this test runs models in LiteRT: set LITEQUANT_TEST_PYTHON to a Python with ai-edge-litert and numpy \
             (e.g. LITEQUANT_TEST_PYTHON=/work/venv/bin/python cargo test --test tests)"
        ),
    }
}

/// Offsets (from the file start) of every non-empty buffer's data in a written model.
pub fn buffer_data_offsets(bytes: &[u8]) -> Vec<usize> {
    let model =
        litequant::tflite::fb::root_as_model(bytes).expect("a model litequant wrote verifies");
    let base = bytes.as_ptr() as usize;
    model
        .buffers()
        .iter()
        .flatten()
        .filter_map(|b| b.data())
        .filter(|d| !d.is_empty())
        .map(|d| d.bytes().as_ptr() as usize - base)
        .collect()
}
