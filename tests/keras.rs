//! The Keras front end: every corpus `model.keras` the lowering supports becomes the float graph TF's converter
//! wrote for it (`model.tflite` beside it): outputs within 1e-5 relative in LiteRT on `eval.npz` and the same op
//! histogram. Bad Keras files are clear errors naming file and layer, never panics.
//!
//! The parity test reads `model.keras` from `tests/corpus` and the `LITEQUANT_CORPUS` folders (e.g.
//! `LITEQUANT_CORPUS=../shared/corpus:../shared/corpus-new`) and needs `LITEQUANT_TEST_PYTHON`.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use litequant::keras::{lower_keras, KerasErrorKind};

use crate::support;

/// Relative output tolerance against TF's own export.
const MAX_REL: f64 = 1e-5;

/// The Keras sources a model folder may hold: Keras 3's file, and the same model saved by tf_keras (Keras 2).
const KERAS_SOURCES: [&str; 3] = ["model.keras", "model_tfkeras.h5", "model.h5"];

/// Every Keras source with `model.tflite` and `eval.npz` beside it, as (label, source, folder): the corpus
/// folders' (of two folders of the same name holding the same Keras file, the first, the repository's, wins;
/// a repository folder without it leaves the shared corpus' file checked) and the hand-made fixtures' (folders
/// of `tests/fixtures/keras`, made by its `make_recurrent_fixtures.py`).
fn keras_models() -> Vec<(String, PathBuf, PathBuf)> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras");
    let mut sources: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for root in support::corpus_roots().into_iter().chain([fixtures]) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for d in entries {
            let complete = ["model.tflite", "eval.npz"]
                .iter()
                .all(|f| d.join(f).is_file());
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            for file in KERAS_SOURCES {
                let label = format!("{name}/{file}");
                if complete && d.join(file).is_file() && !sources.iter().any(|s| s.0 == label) {
                    sources.push((label, d.join(file), d.clone()));
                }
            }
        }
    }
    sources
}

fn parity(ours: &Path, dir: &Path) -> serde_json::Value {
    parity_with(ours, &dir.join("model.tflite"), &dir.join("eval.npz"))
}

/// Runs `keras_parity.py` on our float model against TF's `reference` on the samples in `npz`.
pub(crate) fn parity_with(ours: &Path, reference: &Path, npz: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litert/keras_parity.py");
    let out = Command::new(support::litert_python())
        .arg(script)
        .arg(ours)
        .arg(reference)
        .arg(npz)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: keras_parity.py failed: {stdout}{}",
        reference.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("keras_parity.py prints one JSON line")
}

#[test]
fn keras_sources_lower_to_the_float_graph_tf_writes() {
    let models = keras_models();
    assert!(!models.is_empty(), "no corpus folder has a model.keras");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for (name, path, dir) in models {
        let bytes = std::fs::read(&path).unwrap();
        let graph = match lower_keras(&path, &bytes) {
            Ok(g) => g,
            Err(e) => {
                // Layers outside the supported set are a clear error, not a wrong model.
                assert!(
                    matches!(e.kind, KerasErrorKind::Unsupported { .. }),
                    "{name}: {e}"
                );
                eprintln!("{name}: not lowered: {e}");
                continue;
            }
        };
        let ours = tmp
            .path()
            .join(format!("{}.tflite", name.replace('/', "_")));
        std::fs::write(&ours, graph.to_bytes()).unwrap();
        let r = parity(&ours, &dir);
        let max_rel = r["max_rel"].as_f64().expect("max_rel");
        eprintln!(
            "{name}: max relative error {max_rel:.3e}, op histogram equal {}",
            r["hist_equal"]
        );
        assert!(
            max_rel <= MAX_REL,
            "{name}: outputs differ from TF's export by {max_rel:e} relative"
        );
        assert_eq!(
            r["hist_ours"], r["hist_ref"],
            "{name}: op histogram differs from TF's export"
        );
        checked.push(name);
    }
    // The committed corpus and fixtures hold these Keras files: each must lower and match.
    for required in [
        "digits_mlp/model.keras",
        "digits_multi_io/model.keras",
        "digits_unet/model.keras",
        "patch_vit_32/model.keras",
        "speech_conv1d/model.keras",
        // Keras 3 GRU: a WHILE loop.
        "digits_gru/model.keras",
        // tf_keras LSTM: one fused UNIDIRECTIONAL_SEQUENCE_LSTM.
        "digits_lstm_fused/model_tfkeras.h5",
        // Keras 3 LSTM: a WHILE loop.
        "keras3_lstm/model.keras",
        // tf_keras functional: two inputs, a shared layer, BatchNormalization folded, two outputs.
        "tfkeras_functional/model.h5",
        // Keras 3 LSTM and GRU returning every step, stacked: the loops pass the list on directly.
        "keras3_stacked_rnn/model.keras",
        // tf_keras GRUs (WHILE loops bounded by the time step, the recurrent gates SPLIT).
        "tfkeras_gru/model.h5",
    ] {
        assert!(
            checked.iter().any(|c| c == required),
            "{required} was not checked (checked: {checked:?})"
        );
    }
}

/// The members of a corpus `.keras` file: (name, bytes).
fn members(model: &str) -> Vec<(String, Vec<u8>)> {
    members_of(&support::repo_corpus().join(model).join("model.keras"))
}

/// The members of the `.keras` file at `path`: (name, bytes).
pub(crate) fn members_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let name = zip.name_for_index(i).unwrap().to_string();
            let raw = zip.by_index_raw(i).unwrap();
            let deflated = raw.compression() == zip::CompressionMethod::DEFLATE;
            let mut data = Vec::new();
            if deflated {
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut data)
                    .unwrap();
            } else {
                let mut raw = raw;
                raw.read_to_end(&mut data).unwrap();
            }
            (name, data)
        })
        .collect()
}

/// A stored (uncompressed) zip of `members`.
pub(crate) fn zip_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in members {
        out.start_file(name.as_str(), options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// digits_mlp's `.keras` with `edit` applied to its parsed config.json.
fn mlp_with_config(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut m = members("digits_mlp");
    for (name, data) in &mut m {
        if name == "config.json" {
            let mut config: serde_json::Value = serde_json::from_slice(data).unwrap();
            edit(&mut config);
            *data = serde_json::to_vec(&config).unwrap();
        }
    }
    zip_of(&m)
}

fn lower_error(bytes: &[u8]) -> String {
    let path = Path::new("bad/model.keras");
    match lower_keras(path, bytes) {
        Ok(_) => panic!("a bad .keras file was lowered"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("bad/model.keras: "), "{text}");
            text
        }
    }
}

#[test]
fn keras_repacked_corpus_file_still_lowers() {
    // The bad-input tests below edit this repacked file: it must lower as it stands.
    let bytes = zip_of(&members("digits_mlp"));
    lower_keras(Path::new("model.keras"), &bytes).expect("a repacked .keras file lowers");
}

#[test]
fn keras_truncated_archive_is_a_clear_error() {
    let bytes = std::fs::read(support::repo_corpus().join("digits_mlp/model.keras")).unwrap();
    for len in [0, 10, bytes.len() / 2, bytes.len() - 30] {
        let e = lower_error(&bytes[..len]);
        assert!(e.contains(".keras archive") || e.contains("corrupt"), "{e}");
    }
}

#[test]
fn keras_zip_without_a_model_is_a_clear_error() {
    let bytes = zip_of(&[("readme.txt".into(), b"hello".to_vec())]);
    let e = lower_error(&bytes);
    assert!(e.contains("no `config.json`"), "{e}");
    let e = lower_error(b"PK\x03\x04 not really a zip");
    assert!(e.contains("not a readable .keras archive"), "{e}");
}

#[test]
fn keras_unknown_layer_names_layer_class_and_the_float_route() {
    let bytes = mlp_with_config(|c| {
        c["config"]["layers"][2]["class_name"] = "FancyDense".into();
    });
    let e = lower_error(&bytes);
    assert!(e.contains("layer `dense_1` (FancyDense)"), "{e}");
    assert!(e.contains("float .tflite"), "{e}");
}

#[test]
fn keras_unknown_option_is_named() {
    let bytes = mlp_with_config(|c| {
        c["config"]["layers"][1]["config"]["kernel_magic"] = 3.into();
    });
    let e = lower_error(&bytes);
    assert!(
        e.contains("layer `dense` (Dense)") && e.contains("kernel_magic"),
        "{e}"
    );
}

#[test]
fn keras_custom_object_is_a_clear_error() {
    let bytes = mlp_with_config(|c| {
        let layer = &mut c["config"]["layers"][3];
        layer["module"] = "my_project.layers".into();
        layer["registered_name"] = "Custom>MyDense".into();
    });
    let e = lower_error(&bytes);
    assert!(e.contains("dense_2") && e.contains("custom object"), "{e}");
}

#[test]
fn keras_missing_or_misshapen_weight_names_the_layer() {
    let bytes = mlp_with_config(|c| {
        c["config"]["layers"][2]["config"]["units"] = 33.into();
    });
    let e = lower_error(&bytes);
    assert!(
        e.contains("layer `dense_1`") && e.contains("kernel has shape"),
        "{e}"
    );
    let bytes = mlp_with_config(|c| {
        let mut extra = c["config"]["layers"][3].clone();
        extra["config"]["name"] = "dense_extra".into();
        c["config"]["layers"].as_array_mut().unwrap().push(extra);
    });
    let e = lower_error(&bytes);
    assert!(
        e.contains("layer `dense_extra`") && e.contains("no kernel"),
        "{e}"
    );
}

#[test]
fn keras_unlowered_recurrent_layer_is_unsupported_not_a_panic() {
    let bytes = mlp_with_config(|c| {
        c["config"]["layers"][2]["class_name"] = "SimpleRNN".into();
    });
    let e = lower_error(&bytes);
    assert!(e.contains("(SimpleRNN)") && e.contains("recurrent"), "{e}");
}

#[test]
fn keras_convert_cli_writes_the_float_model_and_exits_2_on_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mlp.tflite");
    let src = support::repo_corpus().join("digits_mlp/model.keras");
    let status = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .args(["convert"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let graph = litequant::graph::Graph::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(graph.ops().len(), 4);
    let bad = tmp.path().join("bad.keras");
    std::fs::write(&bad, b"not a zip").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .arg("convert")
        .arg(&bad)
        .arg("-o")
        .arg(tmp.path().join("x.tflite"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("bad.keras") && err.contains("not a readable .keras archive"),
        "{err}"
    );
}

#[test]
fn keras_reader_survives_corrupted_members() {
    use rand::{Rng, SeedableRng};
    // Bytes of config.json or model.weights.h5 flipped, then zipped with valid checksums, so the flips reach the
    // JSON and HDF5 readers rather than the archive's CRC check.
    let clean = members("digits_mlp");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let mut refused = 0;
    for round in 0..300 {
        let mut m = clean.clone();
        let target = m
            .iter_mut()
            .find(|(name, _)| {
                name == if round % 2 == 0 {
                    "config.json"
                } else {
                    "model.weights.h5"
                }
            })
            .expect("the member exists");
        for _ in 0..rng.gen_range(1..8) {
            let at = rng.gen_range(0..target.1.len());
            target.1[at] = rng.gen();
        }
        // Any outcome but a panic: an error, or a model (a flipped weight bit still lowers).
        if lower_keras(Path::new("fuzz.keras"), &zip_of(&m)).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "no corruption was detected at all");
}
