//! Every corpus model in `dynamic` and `float16` mode: quantized, written, read back, deterministic; with
//! `LITEQUANT_TEST_PYTHON` (a Python with ai-edge-litert and numpy), each artifact runs in LiteRT and must reach
//! TF's converter: SQNR >= TF - 1 dB, size <= TF + max(2% of the float model, 1 KiB), and in dynamic mode at
//! least as many ops with int8 weights as TF's output.
//!
//! Corpus: `LITEQUANT_CORPUS`, default `../shared/corpus` beside the package. `LITEQUANT_OUT_DIR` keeps the
//! artifacts (`<model>.<mode>.tflite`) for inspection.

use litequant::graph::Graph;
use litequant::quantize::{quantize, Mode, QuantOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const MODES: [Mode; 2] = [Mode::Dynamic, Mode::Float16];

fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LITEQUANT_CORPUS") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A worktree sits one level deeper than the main checkout.
    [
        manifest.join("../shared/corpus"),
        manifest.join("../../shared/corpus"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .unwrap_or_else(|| manifest.join("../shared/corpus"))
}

fn models(corpus: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read corpus {}: {e} (set LITEQUANT_CORPUS)",
                corpus.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.tflite").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no models under {}", corpus.display());
    dirs
}

/// Quantizes one model in one mode and returns the artifact bytes, checking they read back and are deterministic.
fn artifact(model_dir: &Path, mode: Mode) -> Vec<u8> {
    let src = std::fs::read(model_dir.join("model.tflite")).expect("model.tflite is readable");
    let run = || {
        let mut g = Graph::from_bytes(&src).expect("the corpus model reads");
        quantize(&mut g, mode, &QuantOptions::default(), None)
            .unwrap_or_else(|e| panic!("{} {mode}: {e}", model_dir.display()));
        g.to_bytes()
    };
    let bytes = run();
    assert_eq!(
        bytes,
        run(),
        "{} {mode}: two runs give different bytes",
        model_dir.display()
    );
    let back = Graph::from_bytes(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} {mode}: artifact does not read: {e}",
            model_dir.display()
        )
    });
    assert_eq!(
        back.to_bytes(),
        bytes,
        "{} {mode}: re-writing the artifact changes it",
        model_dir.display()
    );
    bytes
}

/// TF's anchor row for a model and mode (`anchors.jsonl`, tool `tf`).
fn anchor(corpus: &Path, model: &str, mode: Mode) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(corpus.join("anchors.jsonl")).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["tool"] == "tf" && r["model"] == model && r["mode"] == mode.as_str())
}

/// Ops taking float activations and int8 constant weights (how the scoring script counts hybrid ops).
fn hybrid_ops(row: &serde_json::Value) -> u64 {
    row["quant_ops_typed"]
        .as_object()
        .map(|ops| {
            ops.iter()
                .filter(|(k, _)| {
                    k.split_once("/w:").is_some_and(|(_, w)| w.contains("int8"))
                        && k.ends_with("->float32)")
                })
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// A decibel value: a number, or `"inf"` when outputs match exactly.
fn db(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(f64::NEG_INFINITY),
        v => v.as_f64().unwrap_or(f64::NEG_INFINITY),
    }
}

fn evaluate(python: &str, corpus: &Path, model_dir: &Path, artifact: &Path) -> serde_json::Value {
    let script = corpus.join("../tools/litert_eval.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(model_dir.join("model.tflite"))
        .arg(artifact)
        .arg(model_dir.join("eval.npz"))
        .args(["--labels", "--runs", "1", "--no-ref-latency"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "litert_eval printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn corpus_models_in_dynamic_and_float16_reach_tf_in_litert() {
    let corpus = corpus_dir();
    let python = std::env::var("LITEQUANT_TEST_PYTHON").ok();
    let keep = std::env::var_os("LITEQUANT_OUT_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let out_dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&out_dir).expect("the output dir can be created");

    let mut shortfalls = Vec::new();
    let mut table = Vec::new();
    for model_dir in models(&corpus) {
        let name = model_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        for mode in MODES {
            let bytes = artifact(&model_dir, mode);
            let path = out_dir.join(format!("{name}.{mode}.tflite"));
            std::fs::write(&path, &bytes).expect("the artifact can be written");
            let Some(python) = python.as_deref() else {
                continue;
            };
            let ours = evaluate(python, &corpus, &model_dir, &path);
            if ours["loads_ok"] != true {
                shortfalls.push(format!(
                    "{name}/{mode}: LiteRT cannot run it: {}",
                    ours["error"]
                ));
                continue;
            }
            let sqnr = db(&ours["sqnr_db"]);
            let size = ours["size_quant"].as_f64().unwrap_or(f64::INFINITY);
            let size_float = ours["size_float"].as_f64().unwrap_or(1.0);
            let hybrid = hybrid_ops(&ours);
            table.push(format!(
                "{name:20} {mode:8} sqnr {sqnr:6.2} dB  size {size:9} B  int8-weight ops {hybrid}"
            ));
            let Some(tf) = anchor(&corpus, &name, mode) else {
                continue;
            };
            let tf_sqnr = db(&tf["sqnr_db"]);
            let tf_size = tf["size_quant"].as_f64().unwrap_or(0.0);
            table.push(format!(
                "{:20} {:8} TF   {tf_sqnr:6.2} dB  size {tf_size:9} B  int8-weight ops {}",
                "",
                "",
                hybrid_ops(&tf)
            ));
            if sqnr < tf_sqnr - 1.0 {
                shortfalls.push(format!(
                    "{name}/{mode}: SQNR {sqnr:.2} dB < TF {tf_sqnr:.2} dB - 1"
                ));
            }
            if size > tf_size + (0.02 * size_float).max(1024.0) {
                shortfalls.push(format!(
                    "{name}/{mode}: size {size} B > TF {tf_size} B + max(2%, 1 KiB)"
                ));
            }
            if mode == Mode::Dynamic && hybrid < hybrid_ops(&tf) {
                shortfalls.push(format!(
                    "{name}/{mode}: {hybrid} ops with int8 weights < TF's {}",
                    hybrid_ops(&tf)
                ));
            }
        }
    }
    let Some(_) = python else {
        panic!(
            "artifacts were written and re-read, but not run: set LITEQUANT_TEST_PYTHON to a Python with \
             ai-edge-litert and numpy (e.g. LITEQUANT_TEST_PYTHON=/work/venv/bin/python cargo test --test \
             dynamic_float16) to score them in LiteRT against TF"
        );
    };
    println!("{}", table.join("\n"));
    assert!(
        shortfalls.is_empty(),
        "short of TF:\n{}",
        shortfalls.join("\n")
    );
}
