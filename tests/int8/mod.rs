//! Full-integer quantization of the corpus, loaded and scored in the real LiteRT interpreter.
//!
//! For every corpus model and each of `int8` (float I/O, fallback allowed), strict int8 with int8 I/O and
//! `int16x8`, the artifact must load and run in LiteRT with SQNR no more than 1 dB below TF's converter,
//! top-1 agreement no more than 0.01 below it, no more float compute ops than TF's, and none in strict int8.
//! Ranges come from LiteRT itself (`tests/litert/ranges_from_litert.py`).
//!
//! Needs the corpus (`LITEQUANT_CORPUS`) and a Python with LiteRT (`LITEQUANT_TEST_PYTHON`); `scripts/test.sh`
//! sets both.

use litequant::graph::{Graph, TensorId};
use litequant::quantize::{quantize_integer, IoType, Mode, QuantOptions, Ranges};
use std::path::{Path, PathBuf};
use std::process::Command;

mod ops;

const MODELS: [&str; 5] = [
    "digits_cnn",
    "digits_mlp",
    "digits_multi_io",
    "mobilenetv2_035_96",
    "speech_conv1d",
];

struct Env {
    corpus: PathBuf,
    python: PathBuf,
    out: PathBuf,
}

fn env() -> Option<Env> {
    let corpus = crate::support::corpus_dir();
    let python = crate::support::litert_python();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("int8");
    std::fs::create_dir_all(&out).expect("the target tmp dir is writable");
    Some(Env {
        corpus,
        python,
        out,
    })
}

fn run_python(env: &Env, args: &[&str]) {
    let status = Command::new(&env.python)
        .args(args)
        .status()
        .expect("python runs");
    assert!(status.success(), "python {args:?} failed");
}

/// Ranges of `model` calibrated on `calib` by LiteRT, cached under `key`.
fn ranges_for(env: &Env, model: &Path, calib: &Path, key: &str) -> Ranges {
    let json = env.out.join(format!("{key}.ranges.json"));
    if !json.exists() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/litert/ranges_from_litert.py"
        );
        let path = |p: &Path| p.to_string_lossy().into_owned();
        run_python(env, &[script, &path(model), &path(calib), &path(&json)]);
    }
    let text = std::fs::read_to_string(&json).expect("ranges json");
    let map: std::collections::BTreeMap<String, (f32, f32)> =
        serde_json::from_str(&text).expect("ranges parse");
    map.into_iter()
        .map(|(k, v)| (TensorId(k.parse().expect("tensor index")), v))
        .collect()
}

fn ranges(env: &Env, model: &str) -> Ranges {
    let dir = env.corpus.join(model);
    ranges_for(
        env,
        &dir.join("model.tflite"),
        &dir.join("calib.npz"),
        model,
    )
}

struct Config {
    name: &'static str,
    tf_mode: &'static str,
    mode: Mode,
    opts: QuantOptions,
}

fn configs() -> Vec<Config> {
    let strict = QuantOptions {
        allow_float_fallback: false,
        inference_input_type: IoType::Int8,
        inference_output_type: IoType::Int8,
        ..QuantOptions::default()
    };
    vec![
        Config {
            name: "int8",
            tf_mode: "int_float_fallback",
            mode: Mode::Int8,
            opts: QuantOptions::default(),
        },
        Config {
            name: "int8io",
            tf_mode: "full_int8",
            mode: Mode::Int8,
            opts: strict,
        },
        Config {
            name: "int16x8",
            tf_mode: "int16x8",
            mode: Mode::Int16x8,
            opts: QuantOptions::default(),
        },
    ]
}

fn anchor(env: &Env, model: &str, tf_mode: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(env.corpus.join("anchors.jsonl")).expect("anchors");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["tool"] == "tf" && v["model"] == model && v["mode"] == tf_mode)
        .expect("anchor row")
}

/// Scores `quant` against `float` in LiteRT on `data` (litert_eval.py's JSON line).
fn eval_files(
    env: &Env,
    float: &Path,
    quant: &Path,
    data: &Path,
    labels: bool,
) -> serde_json::Value {
    let mut cmd = Command::new(&env.python);
    cmd.arg(env.corpus.join("../tools/litert_eval.py"))
        .arg(float)
        .arg(quant)
        .arg(data);
    if labels {
        cmd.arg("--labels");
    }
    let out = cmd.output().expect("litert_eval runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("{}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("litert_eval output {line:?}: {e}"))
}

fn eval(env: &Env, model: &str, artifact: &Path) -> serde_json::Value {
    let dir = env.corpus.join(model);
    eval_files(
        env,
        &dir.join("model.tflite"),
        artifact,
        &dir.join("eval.npz"),
        true,
    )
}

fn float_ops(v: &serde_json::Value) -> u64 {
    v["quant_float_compute_ops"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
}

#[test]
fn corpus_quantizes_and_runs_in_litert_within_tf_floors() {
    let Some(env) = env() else { return };
    let only = std::env::var("LITEQUANT_MODELS").ok();
    let mut failures = Vec::new();
    for model in MODELS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == model))
        {
            continue;
        }
        let ranges = ranges(&env, model);
        let bytes = std::fs::read(env.corpus.join(model).join("model.tflite")).expect("model");
        for cfg in configs() {
            let mut g = Graph::from_bytes(&bytes).expect("model reads");
            let summary = match quantize_integer(&mut g, cfg.mode, &cfg.opts, &ranges) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{model} {}: {e}", cfg.name));
                    continue;
                }
            };
            let path = env.out.join(format!("{model}.{}.tflite", cfg.name));
            std::fs::write(&path, g.to_bytes()).expect("write artifact");
            let ours = eval(&env, model, &path);
            let tf = anchor(&env, model, cfg.tf_mode);
            let (sqnr, agree) = (
                ours["sqnr_db"].as_f64().unwrap_or(f64::NAN),
                ours["top1_agree"].as_f64().unwrap_or(0.0),
            );
            let (tf_sqnr, tf_agree) = (
                tf["sqnr_db"].as_f64().unwrap_or(0.0),
                tf["top1_agree"].as_f64().unwrap_or(0.0),
            );
            println!(
                "{model:20} {:8} loads={} sqnr={sqnr:6.2} (tf {tf_sqnr:6.2}) agree={agree:.4} (tf {tf_agree:.4}) float_ops={} (tf {}) size={} (tf {}) quantized={} float={}",
                cfg.name,
                ours["loads_ok"],
                float_ops(&ours),
                float_ops(&tf),
                ours["size_quant"],
                tf["size_quant"],
                summary.ops_quantized,
                summary.ops_float.len()
            );
            if ours["loads_ok"] != serde_json::Value::Bool(true) {
                failures.push(format!(
                    "{model} {}: does not load: {}",
                    cfg.name, ours["error"]
                ));
                continue;
            }
            if sqnr.is_nan() || sqnr < tf_sqnr - 1.0 {
                failures.push(format!(
                    "{model} {}: SQNR {sqnr:.2} < TF {tf_sqnr:.2} - 1",
                    cfg.name
                ));
            }
            if agree < tf_agree - 0.01 {
                failures.push(format!(
                    "{model} {}: top-1 agreement {agree} < TF {tf_agree} - 0.01",
                    cfg.name
                ));
            }
            if float_ops(&ours) > float_ops(&tf) {
                failures.push(format!(
                    "{model} {}: {} float ops, TF has {}",
                    cfg.name,
                    float_ops(&ours),
                    float_ops(&tf)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
