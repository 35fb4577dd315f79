//! Full-integer quantization of the corpus, loaded and scored in the real LiteRT interpreter.
//!
//! For every corpus model and each of `int8` (float I/O, fallback allowed), strict int8 with int8 I/O and
//! `int16x8`, the artifact must load and run in LiteRT with SQNR no more than 1 dB below TF's converter,
//! top-1 agreement no more than 0.01 below it, no more float compute ops than TF's, and none in strict int8.
//! Ranges come from LiteRT itself (`tests/litert/ranges_from_litert.py`); a loop body's, which LiteRT's Python
//! API cannot observe at every iteration, from litequant's calibration.
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
    let mut ranges = ranges_for(
        env,
        &dir.join("model.tflite"),
        &dir.join("calib.npz"),
        model,
    );
    ranges.extend(loop_ranges(&dir));
    ranges
}

/// Ranges of the tensors LiteRT's Python API cannot observe: those of subgraphs other than the main one
/// (loop bodies, seen at every iteration), from litequant's own calibration (flat ids past the main
/// subgraph's tensors). Empty for one-subgraph models.
fn loop_ranges(dir: &Path) -> Ranges {
    let g = Graph::from_file(&dir.join("model.tflite")).expect("model reads");
    if g.subgraph_count() < 2 {
        return Ranges::new();
    }
    let main = g.tensors().len();
    let mut npz =
        ndarray_npy::NpzReader::new(std::fs::File::open(dir.join("calib.npz")).expect("calib"))
            .expect("npz");
    let names = npz.names().expect("npz names");
    assert_eq!(g.inputs().len(), 1, "one-input loop models only here");
    let name = names
        .iter()
        .find(|n| !n.starts_with("label"))
        .expect("an input array")
        .trim_end_matches(".npy")
        .to_string();
    let all: ndarray::ArrayD<f32> = npz.by_name(&name).expect("f32 input array");
    let samples: Vec<Vec<ndarray::ArrayD<f32>>> = all
        .outer_iter()
        .map(|s| vec![s.insert_axis(ndarray::Axis(0)).to_owned()])
        .collect();
    let mut queue = samples.iter().cloned();
    let mut next = |n: usize| -> Result<Vec<Vec<ndarray::ArrayD<f32>>>, String> {
        Ok(queue.by_ref().take(n).collect())
    };
    litequant::calibrate::calibrate(
        &g,
        &mut next,
        samples.len(),
        &litequant::calibrate::CalibrateOptions::default(),
        &|_, _| {},
        &|| false,
    )
    .expect("calibrates")
    .into_iter()
    .filter(|(t, _)| t.0 >= main)
    .collect()
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
            // An issue's bar (no tool reached the model) is met as is; a tool's anchor within 1 dB / 0.01.
            let (tol_db, tol_top1) = if tf["bar"] == serde_json::Value::Bool(true) {
                (0.0, 0.0)
            } else {
                (1.0, 0.01)
            };
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
                (Some(s), Some(t)) if s >= t - tol_db => {}
                (Some(s), None) if !s.is_nan() => {}
                _ => failures.push(format!(
                    "{model} {}: SQNR {sqnr:?}, anchor {tf_sqnr:?} (floor anchor - {tol_db} dB)",
                    cfg.name
                )),
            }
            // A model without a classifier output has no top-1 on either side.
            match (agree, tf_agree) {
                (Some(a), Some(t)) if a < t - tol_top1 => failures.push(format!(
                    "{model} {}: top-1 agreement {a} < anchor {t} - {tol_top1}",
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
