//! read -> write round trips: deterministic bytes, 16-byte aligned buffers, the same model, and (in LiteRT)
//! bit-identical outputs.

use crate::support::{self, fixtures};
use litequant::graph::Graph;
use litequant::tflite::{op_code, write_model, write_model_with_buffers_after};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every model the round-trip tests cover: corpus models and fixtures, with an input npz when there is one.
fn models() -> Vec<(String, Vec<u8>, Option<PathBuf>)> {
    let mut all: Vec<(String, Vec<u8>, Option<PathBuf>)> = support::corpus_models()
        .into_iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let eval = path.with_file_name("eval.npz");
            (
                format!("corpus/{name}"),
                bytes,
                eval.is_file().then_some(eval),
            )
        })
        .collect();
    let data = fixtures::fixtures_dir().join("data");
    for (name, bytes) in fixtures::all() {
        let npz = match name {
            "digits_mlp" | "legacy_opcodes_mlp" => Some(data.join("digits_mlp_eval.npz")),
            "digits_cnn" | "fp16_weights_cnn" => Some(data.join("digits_cnn_eval.npz")),
            _ => None,
        };
        all.push((format!("fixture/{name}"), bytes, npz));
    }
    all
}

/// The model as the writer normalises it: op codes in both fields.
fn normalised(mut g: Graph) -> litequant::tflite::fb::ModelT {
    for c in g.model.operator_codes.iter_mut().flatten() {
        let code = op_code(c);
        c.builtin_code = code;
        c.deprecated_builtin_code = code.0.min(127) as i8;
    }
    g.model
}

#[test]
fn round_trip_is_deterministic_aligned_and_lossless() {
    for (name, bytes, _) in models() {
        let g = Graph::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            g.warnings.is_empty(),
            "{name}: unexpected reader warnings {:?}",
            g.warnings
        );
        let first = g.to_bytes();
        assert_eq!(
            first,
            g.to_bytes(),
            "{name}: two writes of one model differ"
        );
        let again = Graph::from_bytes(&first)
            .unwrap_or_else(|e| panic!("{name}: rereading our output: {e}"));
        assert_eq!(
            first,
            again.to_bytes(),
            "{name}: read -> write is not a fixed point"
        );
        for offset in support::buffer_data_offsets(&first) {
            assert_eq!(
                offset % 16,
                0,
                "{name}: buffer data at {offset} is not 16-byte aligned"
            );
        }
        assert_eq!(
            first.len() % 16,
            0,
            "{name}: file size not a multiple of 16"
        );
        assert!(
            normalised(g) == again.model,
            "{name}: the model changed on the round trip"
        );
    }
}

#[test]
fn writer_fills_both_op_code_fields() {
    let g = Graph::from_bytes(&fixtures::legacy_opcodes_mlp()).expect("reads");
    let written = g.to_bytes();
    let raw = litequant::tflite::fb::root_as_model(&written).expect("verifies");
    for code in raw.operator_codes().iter().flatten() {
        assert!(code.builtin_code().0 > 0, "builtin_code left at ADD");
        assert_eq!(
            i32::from(code.deprecated_builtin_code()),
            code.builtin_code().0.min(127)
        );
    }
}

fn compare_in_litert(python: &Path, a: &Path, b: &Path, npz: Option<&Path>) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litert/compare_outputs.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(a).arg(b);
    if let Some(npz) = npz {
        cmd.arg(npz);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (
        out.status.success() && stdout.contains("\"identical\": true"),
        format!("{stdout} {}", String::from_utf8_lossy(&out.stderr).trim()),
    )
}

#[test]
fn litert_outputs_are_bit_identical_after_round_trip() {
    let python = support::litert_python();
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, bytes, npz) in models() {
        let source = dir.path().join("source.tflite");
        let written = dir.path().join("written.tflite");
        std::fs::write(&source, &bytes).expect("write source");
        let g = Graph::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(&written, write_model(&g.model)).expect("write round trip");
        let (identical, report) = compare_in_litert(&python, &source, &written, npz.as_deref());
        assert!(
            identical,
            "{name}: LiteRT outputs differ after read -> write: {report}"
        );
        // The layout for models over 2 GB: LiteRT must find every buffer after the flatbuffer.
        std::fs::write(&written, write_model_with_buffers_after(&g.model)).expect("write");
        let (identical, report) = compare_in_litert(&python, &source, &written, npz.as_deref());
        assert!(
            identical,
            "{name}: LiteRT outputs differ with buffers after the flatbuffer: {report}"
        );
    }
}

#[test]
fn quantized_models_are_not_float_sources() {
    let mut checked = 0;
    for (name, path) in support::corpus_models() {
        let g = Graph::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(g.require_float_source().is_ok(), "{name} is a float model");
        // TF's converter crashes on some models (digits_gru): those have no TF integer output to refuse.
        let tf_int8 = path.with_file_name("tf").join("full_int8.tflite");
        if !tf_int8.is_file() {
            continue;
        }
        checked += 1;
        let int8 = Graph::from_file(&tf_int8).unwrap_or_else(|e| panic!("{e}"));
        let message = int8
            .require_float_source()
            .expect_err("int8 model")
            .to_string();
        assert!(
            message.starts_with("not a float32 model: input") && message.contains("INT8"),
            "{message}"
        );
        // Float I/O around integer internals is refused too, naming a quantized tensor.
        let fallback =
            Graph::from_file(&path.with_file_name("tf").join("int_float_fallback.tflite"))
                .unwrap_or_else(|e| panic!("{e}"));
        let message = fallback
            .require_float_source()
            .expect_err("int8 model")
            .to_string();
        assert!(
            message.starts_with("not a float32 model: tensor"),
            "{message}"
        );
    }
    assert!(checked > 0, "no corpus model has TF's integer outputs");
    let fp16 = Graph::from_bytes(&fixtures::fp16_weights_cnn()).expect("reads");
    assert!(
        fp16.require_float_source().is_ok(),
        "fp16 weights are a float source"
    );
}
