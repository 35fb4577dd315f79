//! The accuracy report and accuracy targets, end to end: `litequant eval` on corpus models, its numbers checked
//! against LiteRT's reference kernels (the arithmetic litequant's interpreter reproduces), the HTML page, and
//! targets that keep ops float until met or fail clearly. Every artifact runs in LiteRT.

use crate::interop::{litequant, model_dir, python, repo};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A config quantizing corpus model `model` in `modes` with its calib.npz, evaluating on its eval.npz.
fn write_config(dir: &Path, model: &str, modes: &str, extra: &str) -> PathBuf {
    let c = model_dir(model);
    let text = format!(
        "[settings]\nout_dir = \"out\"\ncache = \"cache\"\n\n\
         [datasets.calib]\nformat = \"npz\"\npath = \"{}\"\n\n\
         [datasets.held_out]\nformat = \"npz\"\npath = \"{}\"\n\n\
         [models.m]\nsource = \"{}\"\nmodes = [{modes}]\ndataset = \"calib\"\neval = \"held_out\"\n{extra}\n",
        c.join("calib.npz").display(),
        c.join("eval.npz").display(),
        c.join("model.tflite").display(),
    );
    let path = dir.join("quantize.toml");
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = litequant()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("litequant runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(dir: &Path, job: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("out").join(format!("{job}.json")))
        .unwrap_or_else(|e| panic!("report of {job}: {e}"));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// LiteRT's numbers for an artifact: `{"ref": {...}, "default": {...}}` (tests/litert/eval_ref.py).
fn litert(model: &str, artifact: &Path) -> Value {
    let c = model_dir(model);
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/litert/eval_ref.py"))
        .arg(c.join("model.tflite"))
        .arg(artifact)
        .arg(c.join("eval.npz"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "eval_ref.py failed on {}: {}",
        artifact.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("eval_ref.py prints JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn eval_reports_what_litert_reference_kernels_measure_and_draws_one_bar_per_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        "digits_multi_io",
        "\"dynamic\", \"int8\", \"int16x8\"",
        "",
    );
    let (code, stdout, stderr) = run(dir.path(), &["eval", "--html", "--all"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for mode in ["dynamic", "int8", "int16x8"] {
        let job = format!("m.{mode}");
        let r = report(dir.path(), &job);
        let acc = &r["accuracy"];
        let artifact = dir.path().join("out").join(format!("{job}.tflite"));
        let lite = litert("digits_multi_io", &artifact);
        let (ours, theirs) = (f(&acc["sqnr_db"]), f(&lite["ref"]["sqnr_db"]));
        println!(
            "{job}: SQNR ours {ours:.4} dB, LiteRT reference {theirs:.4} dB, LiteRT default {:.4} dB; \
             top-1 {} vs {}; accuracy {} vs {}",
            f(&lite["default"]["sqnr_db"]),
            acc["top1_agreement"],
            lite["ref"]["top1_agree"],
            acc["accuracy_quant"],
            lite["ref"]["acc_quant"]
        );
        assert!(
            (ours - theirs).abs() < 0.01,
            "{job}: SQNR {ours} vs LiteRT reference {theirs}"
        );
        assert!(ours > 35.0, "{job}: SQNR {ours}");
        assert_eq!(acc["samples"], 400);
        assert!((f(&acc["top1_agreement"]) - f(&lite["ref"]["top1_agree"])).abs() < 1e-9);
        assert!((f(&acc["accuracy_quant"]) - f(&lite["ref"]["acc_quant"])).abs() < 1e-9);
        assert!((f(&acc["accuracy_float"]) - f(&lite["ref"]["acc_float"])).abs() < 1e-9);
        assert_eq!(acc["label_output"], "StatefulPartitionedCall:0");

        // One row per activation of the float model: its inputs and every op output.
        let float = litequant::graph::Graph::from_bytes(
            &std::fs::read(model_dir("digits_multi_io").join("model.tflite")).unwrap(),
        )
        .unwrap();
        let activations = float.inputs().len()
            + (0..float.ops().len())
                .map(|i| float.op_outputs(litequant::graph::OpIndex(i)).len())
                .sum::<usize>();
        let tensors = acc["tensors"].as_array().expect("tensors").len();
        assert_eq!(tensors, activations, "{job}");
        let page = std::fs::read_to_string(dir.path().join("out").join(format!("{job}.html")))
            .expect("eval --html writes the page");
        assert_eq!(page.matches("<rect class=\"bar ").count(), tensors, "{job}");
        assert!(page.contains("<svg") && !page.contains("<script"));
        // The table lists every tensor (--all).
        assert!(stdout.contains(acc["tensors"][0]["name"].as_str().unwrap_or("?")));
    }
}

#[test]
fn a_sqnr_target_keeps_the_most_damaging_ops_float_until_litert_measures_it() {
    let dir = tempfile::tempdir().unwrap();
    // Fully quantized, digits_cnn int8 reaches 43.9 dB in LiteRT's reference kernels.
    write_config(dir.path(), "digits_cnn", "\"int8\"", "target_sqnr_db = 46");
    let (code, stdout, stderr) = run(dir.path(), &["build"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("accuracy target met by keeping"),
        "{stdout}"
    );
    let r = report(dir.path(), "m.int8");
    let target = &r["target"];
    let kept = target["kept_float"].as_array().expect("kept_float");
    assert!(!kept.is_empty());
    assert!(f(&target["sqnr_db_fully_quantized"]) < 46.0);
    assert!(f(&r["accuracy"]["sqnr_db"]) >= 46.0);
    assert!(r["artifact_bytes"].as_u64() > target["bytes_fully_quantized"].as_u64());
    let lite = litert("digits_cnn", &dir.path().join("out/m.int8.tflite"));
    println!(
        "kept {} op(s) float: {:?}; SQNR {:.2} -> {:.2} dB (LiteRT reference {:.2}, default {:.2})",
        kept.len(),
        kept.iter()
            .map(|k| k["op"].as_str().unwrap_or("?"))
            .collect::<Vec<_>>(),
        f(&target["sqnr_db_fully_quantized"]),
        f(&r["accuracy"]["sqnr_db"]),
        f(&lite["ref"]["sqnr_db"]),
        f(&lite["default"]["sqnr_db"]),
    );
    assert!(f(&lite["ref"]["sqnr_db"]) >= 46.0 - 0.01);
    // The float ops are in the artifact: the report's quantization summary lists them with the reason.
    let floats = r["quantization"]["ops_float"]
        .as_array()
        .expect("ops_float");
    assert_eq!(floats.len(), kept.len());
    assert!(floats
        .iter()
        .all(|o| o.to_string().contains("accuracy target")));

    // A second build is a cache hit with the same bytes.
    let before = std::fs::read(dir.path().join("out/m.int8.tflite")).unwrap();
    let (code, stdout, _) = run(dir.path(), &["build"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("[cached]"), "{stdout}");
    assert_eq!(
        std::fs::read(dir.path().join("out/m.int8.tflite")).unwrap(),
        before
    );
}

#[test]
fn a_target_that_strict_int8_cannot_meet_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        "digits_cnn",
        "\"int8\"",
        "op_sets = [\"TFLITE_BUILTINS_INT8\"]\ntarget_sqnr_db = 60",
    );
    let (code, stdout, stderr) = run(dir.path(), &["build"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("accuracy target not met: output SQNR 43.9 dB")
            && stderr.contains("SQNR >= 60 dB")
            && stderr.contains("TFLITE_BUILTINS_INT8"),
        "{stderr}"
    );
    assert!(!dir.path().join("out/m.int8.tflite").exists());
}

#[test]
fn eval_without_an_eval_dataset_says_how_to_declare_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "digits_mlp", "\"dynamic\"", "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("eval = \"held_out\"\n", "");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = run(dir.path(), &["eval"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("add `eval = \"NAME\"`"), "{stderr}");
}

/// An fp16-stored model (`fp16_weights_cnn`: digits_cnn's weights as FLOAT16 behind DEQUANTIZE ops that come
/// first in execution order): the search must keep float the ops it names, though folding the DEQUANTIZE ops
/// moves every op's index.
#[test]
fn a_sqnr_target_on_an_fp16_model_keeps_float_the_ops_it_names() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "digits_cnn", "\"int8\"", "target_sqnr_db = 46");
    let config = dir.path().join("quantize.toml");
    let fp16 = repo().join("tests/fixtures/models/fp16_weights_cnn.tflite");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("source = ") {
                format!("source = \"{}\"", fp16.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let (code, stdout, stderr) = run(dir.path(), &["build"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report(dir.path(), "m.int8");
    let kept = r["target"]["kept_float"]
        .as_array()
        .expect("kept_float")
        .clone();
    assert!(!kept.is_empty());
    let floats = r["quantization"]["ops_float"]
        .as_array()
        .expect("ops_float");
    let named = |v: &Value, op: &str, tensor: &str| {
        (
            v[op].as_str().unwrap_or("?").to_string(),
            v[tensor].as_str().unwrap_or("?").to_string(),
        )
    };
    let mut kept: Vec<_> = kept.iter().map(|k| named(k, "op", "tensor")).collect();
    let mut floats: Vec<_> = floats.iter().map(|o| named(o, "op", "output")).collect();
    kept.sort();
    floats.sort();
    assert_eq!(
        kept, floats,
        "the ops kept float are the ones the search named"
    );
    assert!(f(&r["accuracy"]["sqnr_db"]) >= 46.0);
    // LiteRT runs the artifact beside the fp16 source it was measured against.
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/litert/eval_ref.py"))
        .arg(&fp16)
        .arg(dir.path().join("out/m.int8.tflite"))
        .arg(model_dir("digits_cnn").join("eval.npz"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lite: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON");
    assert!(f(&lite["ref"]["sqnr_db"]) >= 46.0 - 0.01, "{lite}");
}
