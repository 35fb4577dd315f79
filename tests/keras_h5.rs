//! Keras 2 / tf_keras `.h5` sources: `convert` and `build` take them as they take `.keras` files; a truncated,
//! corrupted or incomplete `.h5` is a clear error naming the file (and the layer), exit 2, never a panic.
//!
//! The bad files are the corpus' `digits_lstm_fused/model_tfkeras.h5` edited in place: HDF5 files written by
//! h5py's defaults carry no checksums, so a same-length edit of the `model_config` text or of an attribute's
//! name reaches the Keras reader rather than the HDF5 one.

use std::path::Path;
use std::process::Command;

use litequant::keras::lower_keras;

use crate::support;

fn lstm_h5() -> Vec<u8> {
    std::fs::read(support::repo_corpus().join("digits_lstm_fused/model_tfkeras.h5")).unwrap()
}

/// `bytes` with the single occurrence of `from` replaced by `to` (same length).
fn edit(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "`{from}` occurs {} times", at.len());
    let mut out = bytes.to_vec();
    out[at[0]..at[0] + to.len()].copy_from_slice(to.as_bytes());
    out
}

fn h5_error(bytes: &[u8]) -> String {
    match lower_keras(Path::new("bad/model.h5"), bytes) {
        Ok(_) => panic!("a bad .h5 file was lowered"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("bad/model.h5: "), "{text}");
            text
        }
    }
}

#[test]
fn h5_lowers_as_the_fused_lstm() {
    let g = lower_keras(Path::new("model_tfkeras.h5"), &lstm_h5()).expect("the corpus .h5 lowers");
    let ops: Vec<String> = (0..g.ops().len())
        .map(|i| g.op_type_name(litequant::graph::OpIndex(i)))
        .collect();
    assert_eq!(
        ops,
        [
            "UNIDIRECTIONAL_SEQUENCE_LSTM",
            "STRIDED_SLICE",
            "FULLY_CONNECTED",
            "SOFTMAX"
        ]
    );
}

#[test]
fn h5_truncated_is_a_clear_error() {
    let bytes = lstm_h5();
    for len in [0, 7, 8, 100, 1000, bytes.len() / 2, bytes.len() - 100] {
        let e = h5_error(&bytes[..len]);
        assert!(
            e.contains("not a readable Keras .h5 model") || e.contains("layer `"),
            "{len}: {e}"
        );
    }
}

#[test]
fn h5_not_hdf5_is_a_clear_error() {
    let e = h5_error(b"PK\x03\x04 a zip named .h5");
    assert!(e.contains("not a readable Keras .h5 model"), "{e}");
}

#[test]
fn h5_without_model_config_is_a_clear_error() {
    // What `save_weights` writes: the layers' weights but no model.
    let e = h5_error(&edit(&lstm_h5(), "model_config", "model_confiX"));
    assert!(
        e.contains("no `model_config`") && e.contains("weights only"),
        "{e}"
    );
}

#[test]
fn h5_model_config_that_is_not_json_is_a_clear_error() {
    let e = h5_error(&edit(
        &lstm_h5(),
        "\"class_name\": \"Sequential\"",
        "\"class_name\": \"Sequential'",
    ));
    assert!(e.contains("model_config: not JSON"), "{e}");
}

#[test]
fn h5_missing_weight_names_the_layer() {
    // The config's Dense is renamed: the weights have no group for it.
    let e = h5_error(&edit(
        &lstm_h5(),
        "\"name\": \"dense\"",
        "\"name\": \"dznse\"",
    ));
    assert!(
        e.contains("layer `dznse`") && e.contains("no kernel"),
        "{e}"
    );
    // The config's LSTM has one unit more than its weights.
    let e = h5_error(&edit(&lstm_h5(), "\"units\": 24", "\"units\": 25"));
    assert!(
        e.contains("layer `lstm`") && e.contains("kernel has shape"),
        "{e}"
    );
}

#[test]
fn h5_unsupported_option_names_layer_class_and_option() {
    let e = h5_error(&edit(
        &lstm_h5(),
        "\"go_backwards\": false",
        "\"go_backwards\": true ",
    ));
    assert!(
        e.contains("layer `lstm` (LSTM)") && e.contains("go_backwards"),
        "{e}"
    );
}

#[test]
fn h5_reader_survives_corrupted_bytes() {
    use rand::{Rng, SeedableRng};
    let clean = lstm_h5();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut refused = 0;
    for round in 0..400 {
        let mut bytes = clean.clone();
        for _ in 0..rng.gen_range(1..8) {
            // Half the flips in the first 4 KiB, where the superblock, object headers and B-trees sit.
            let end = if round % 2 == 0 { 4096 } else { bytes.len() };
            let at = rng.gen_range(0..end);
            bytes[at] = rng.gen();
        }
        if round % 5 == 0 {
            let len = rng.gen_range(0..bytes.len());
            bytes.truncate(len);
        }
        // Any outcome but a panic: an error, or a model (a flipped weight bit still lowers).
        if lower_keras(Path::new("fuzz.h5"), &bytes).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "no corruption was detected at all");
}

#[test]
fn h5_convert_and_build_take_an_h5_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = support::repo_corpus().join("digits_lstm_fused");
    let out = tmp.path().join("lstm.tflite");
    let status = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .arg("convert")
        .arg(dir.join("model_tfkeras.h5"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let config = tmp.path().join("quantize.toml");
    std::fs::write(
        &config,
        format!(
            "[settings]\nout_dir = {out:?}\nlock = {lock:?}\ncache = {cache:?}\n\n\
             [datasets.calib]\nformat = \"npz\"\npath = {calib:?}\n\n\
             [models.lstm]\nsource = {source:?}\nmodes = [\"dynamic\", \"int8\"]\ndataset = \"calib\"\n",
            out = tmp.path().join("out"),
            lock = tmp.path().join("quantize.lock"),
            cache = tmp.path().join("cache"),
            calib = dir.join("calib.npz"),
            source = dir.join("model_tfkeras.h5"),
        ),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .arg("build")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    for mode in ["dynamic", "int8"] {
        let artifact = tmp.path().join(format!("out/lstm.{mode}.tflite"));
        let g = litequant::graph::Graph::from_file(&artifact).unwrap();
        assert!(
            (0..g.ops().len())
                .any(|i| g.op_type_name(litequant::graph::OpIndex(i))
                    == "UNIDIRECTIONAL_SEQUENCE_LSTM"),
            "{mode}: no LSTM op"
        );
    }
    let bad = tmp.path().join("bad.h5");
    std::fs::write(&bad, &lstm_h5()[..500]).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .arg("convert")
        .arg(&bad)
        .arg("-o")
        .arg(tmp.path().join("x.tflite"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("bad.h5") && err.contains("Keras .h5"), "{err}");
}
