//! The float interpreter against LiteRT's reference kernels on every corpus model, tensor by tensor.
//!
//! Needs a Python with `ai-edge-litert` and numpy: `LITEQUANT_TEST_PYTHON=/path/to/python`. The corpus is
//! `tests/corpus` of this repository (one folder per model holding `model.tflite` and `eval.npz`), plus the
//! model folders in each folder of `LITEQUANT_CORPUS` (a path list; never required).

use super::{FloatInterpreter, Registry, Value};
use crate::graph::{Graph, TensorId};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Samples of each model's `eval.npz` compared.
const SAMPLES: usize = 3;
/// Largest accepted error of a tensor, relative to the tensor's largest magnitude in LiteRT.
const TOLERANCE: f32 = 1e-4;

/// Per tensor: max |ours - LiteRT| over max |LiteRT| (a relative error that stays meaningful near zero).
fn relative_error(ours: &ArrayD<f32>, theirs: &ArrayD<f32>) -> f32 {
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

struct ModelReport {
    name: String,
    tensors: usize,
    max_error: f32,
    worst: String,
    problems: Vec<String>,
}

fn compare_model(python: &str, dir: &Path, tmp: &Path) -> Result<ModelReport, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model = dir.join("model.tflite");
    let eval = dir.join("eval.npz");
    let dump = tmp.join(format!("{name}.npz"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litert/dump_tensors.py");
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg(&model)
        .arg(&eval)
        .arg(&dump)
        .args(["--samples", &SAMPLES.to_string()])
        .status()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{} failed on {}: {status}",
            script.display(),
            model.display()
        ));
    }
    let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
    let graph = Graph::from_bytes(&bytes).map_err(|e| format!("{}: {e}", model.display()))?;
    let interp = FloatInterpreter::new(&graph, &Registry::with_all_ops())
        .map_err(|e| format!("{name}: {e}"))?;
    let open = |p: &Path| -> Result<NpzReader<std::fs::File>, String> {
        NpzReader::new(std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut reference = open(&dump)?;
    let mut report = ModelReport {
        name: name.clone(),
        tensors: 0,
        max_error: 0.0,
        worst: String::new(),
        problems: Vec::new(),
    };
    let read: std::collections::HashSet<TensorId> = graph
        .consumers()
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty())
        .map(|(t, _)| TensorId(t))
        .chain(graph.outputs())
        .collect();
    let dead: std::collections::HashSet<TensorId> = (0..graph.tensors().len())
        .map(TensorId)
        .filter(|t| !read.contains(t))
        .collect();
    for s in 0..SAMPLES {
        // The inputs LiteRT ran on, as it saw them (eval.npz itself is deflated, which the reader need not support).
        let mut sample = Vec::new();
        for id in graph.inputs() {
            let a: ArrayD<f32> = reference
                .by_name(&format!("s{s}_t{}", id.0))
                .map_err(|e| format!("{name}: input {} of sample {s}: {e}", id.0))?;
            sample.push(a);
        }
        let mut ours: HashMap<TensorId, ArrayD<f32>> = HashMap::new();
        interp
            .run(&sample, &mut |t, v| {
                if let Value::F32(a) = v {
                    ours.insert(t, a.clone());
                }
            })
            .map_err(|e| format!("{name}: sample {s}: {e}"))?;
        for t in (0..graph.tensors().len())
            .map(TensorId)
            .filter(|&t| interp.is_observed(t))
        {
            let tensor_name = graph.tensor_name(t);
            let Some(mine) = ours.get(&t) else {
                report.problems.push(format!(
                    "sample {s}: tensor {} {tensor_name:?} was not computed",
                    t.0
                ));
                continue;
            };
            let theirs: ArrayD<f32> = match reference.by_name(&format!("s{s}_t{}", t.0)) {
                Ok(a) => a,
                // A dead tensor (no op reads it, not a model output: a WHILE's unused loop variable)
                // LiteRT may leave without memory; there is nothing to compare.
                Err(_) if dead.contains(&t) => continue,
                Err(e) => {
                    report.problems.push(format!(
                        "sample {s}: LiteRT gave no value for tensor {} {tensor_name:?}: {e}",
                        t.0
                    ));
                    continue;
                }
            };
            if mine.shape() != theirs.shape() {
                report.problems.push(format!(
                    "sample {s}: tensor {} {tensor_name:?} has shape {:?}, LiteRT {:?}",
                    t.0,
                    mine.shape(),
                    theirs.shape()
                ));
                continue;
            }
            let err = relative_error(mine, &theirs);
            report.tensors += 1;
            if err > report.max_error || err.is_nan() {
                report.max_error = err;
                report.worst = format!("tensor {} {tensor_name:?}", t.0);
            }
            if err.is_nan() || err > TOLERANCE {
                report.problems.push(format!(
                    "sample {s}: tensor {} {tensor_name:?}: relative error {err:e}",
                    t.0
                ));
            }
        }
    }
    Ok(report)
}

/// Every corpus model folder with `model.tflite` and `eval.npz`, by name: `tests/corpus` first, then the
/// folders of `LITEQUANT_CORPUS` (a model name already found is not added again).
fn corpus_model_dirs() -> Vec<PathBuf> {
    let mut roots = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")];
    if let Some(extra) = std::env::var_os("LITEQUANT_CORPUS") {
        roots.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    let mut dirs = std::collections::BTreeMap::new();
    for root in &roots {
        let entries =
            std::fs::read_dir(root).unwrap_or_else(|e| panic!("corpus {}: {e}", root.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("corpus {}: {e}", root.display()))
                .path();
            if path.join("model.tflite").is_file() && path.join("eval.npz").is_file() {
                if let Some(name) = path.file_name() {
                    dirs.entry(name.to_os_string()).or_insert(path);
                }
            }
        }
    }
    assert!(
        !dirs.is_empty(),
        "no <model>/model.tflite with eval.npz under {roots:?}"
    );
    dirs.into_values().collect()
}

#[test]
fn float_interpreter_matches_litert_on_corpus() {
    let Ok(python) = std::env::var("LITEQUANT_TEST_PYTHON") else {
        panic!(
            "this test compares with LiteRT: set LITEQUANT_TEST_PYTHON to a Python with ai-edge-litert and numpy, e.g.\n  \
             LITEQUANT_TEST_PYTHON=/work/venv/bin/python cargo test --lib float_interpreter_matches_litert_on_corpus -- --nocapture\n\
             (the corpus is tests/corpus; LITEQUANT_CORPUS adds model folders)"
        )
    };
    let dirs = corpus_model_dirs();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut failures = Vec::new();
    for dir in &dirs {
        match compare_model(&python, dir, tmp.path()) {
            Ok(r) => {
                eprintln!(
                    "{:<24} {:>4} tensor values compared, max relative error {:.2e} ({})",
                    r.name, r.tensors, r.max_error, r.worst
                );
                if r.tensors == 0 {
                    failures.push(format!("{}: no tensor value was compared", r.name));
                }
                failures.extend(r.problems.iter().map(|p| format!("{}: {p}", r.name)));
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
