//! Shared test support: fixture models, the corpus, LiteRT through Python.

#![allow(dead_code)]

pub mod fixtures;

use std::path::{Path, PathBuf};

/// The corpus of float models: `LITEQUANT_CORPUS`, or `../shared/corpus` beside the crate.
///
/// Panics (failing the test) when it does not exist, saying how to point at it.
pub fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("LITEQUANT_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    };
    assert!(
        dir.is_dir(),
        "corpus not found at {}: set LITEQUANT_CORPUS to the folder holding <model>/model.tflite",
        dir.display()
    );
    dir
}

/// Every corpus model: `(name, model.tflite path)`, sorted by name.
pub fn corpus_models() -> Vec<(String, PathBuf)> {
    let dir = corpus_dir();
    let mut models: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("model.tflite"),
            )
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    models.sort();
    assert!(
        !models.is_empty(),
        "no <model>/model.tflite under {}",
        dir.display()
    );
    models
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
