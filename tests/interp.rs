//! The integer interpreter against LiteRT, op by op: every corpus model in every mode is built with the CLI,
//! run in LiteRT's reference kernels (`BUILTIN_REF`, every tensor preserved), and each op is fed LiteRT's own
//! inputs so errors do not accumulate. Integer outputs must be bit-exact; float outputs (float ops, hybrid
//! ops, DEQUANTIZE) within a relative tolerance. End-to-end outputs against LiteRT's default (XNNPACK) path
//! are reported beside, not asserted.
//!
//! Needs `LITEQUANT_CORPUS` and `LITEQUANT_TEST_PYTHON` (fails, not skips, without them). The table prints
//! with `cargo test --test tests interp -- --nocapture`.

use crate::interop::{corpus, corpus_models, litequant, python, repo};
use litequant::graph::{OpIndex, TensorId};
use litequant::interp::{Interpreter, Tensor, TensorData};
use litequant::tflite::fb;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

const ARTIFACTS: &[(&str, &str)] = &[
    ("m.dynamic", "dynamic"),
    ("m.float16", "float16"),
    ("m.int8", "int8"),
    ("mio.int8", "int8-io"),
    ("m.int16x8", "int16x8"),
];

/// Relative tolerance of float outputs: max |diff| over max |reference| of the tensor.
const FLOAT_TOLERANCE: f64 = 1e-4;

fn config(model_dir: &Path) -> String {
    let d = model_dir.display();
    format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.calib]\nformat = \"npz\"\npath = \"{d}/calib.npz\"\nsamples = 100\n\n\
         [models.m]\nsource = \"{d}/model.tflite\"\nmodes = [\"dynamic\", \"float16\", \"int8\", \"int16x8\"]\ndataset = \"calib\"\n\n\
         [models.mio]\nsource = \"{d}/model.tflite\"\nmodes = [\"int8\"]\ndataset = \"calib\"\nop_sets = [\"TFLITE_BUILTINS_INT8\"]\n\
         inference_input_type = \"int8\"\ninference_output_type = \"int8\"\n"
    )
}

/// One tensor of LiteRT's dump, in the model's declared type.
fn read(npz: &mut NpzReader<std::fs::File>, key: &str, t: fb::TensorType) -> Option<Tensor> {
    fn get<T: ndarray_npy::ReadableElement>(
        npz: &mut NpzReader<std::fs::File>,
        key: &str,
    ) -> Option<ArrayD<T>> {
        npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(&format!("{key}.npy"))
            .ok()
    }
    let (shape, data) = match t {
        fb::TensorType::FLOAT32 => get::<f32>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::F32(a.into_iter().collect())))?,
        fb::TensorType::INT8 => get::<i8>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::I8(a.into_iter().collect())))?,
        fb::TensorType::UINT8 => get::<u8>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::U8(a.into_iter().collect())))?,
        fb::TensorType::INT16 => get::<i16>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::I16(a.into_iter().collect())))?,
        fb::TensorType::INT32 => get::<i32>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::I32(a.into_iter().collect())))?,
        fb::TensorType::INT64 => get::<i64>(npz, key)
            .map(|a| (a.shape().to_vec(), TensorData::I64(a.into_iter().collect())))?,
        _ => return None,
    };
    Tensor::new(shape, data).ok()
}

/// Parity of one (model, mode, op type) group.
#[derive(Default)]
struct Row {
    count: usize,
    integer: bool,
    mismatched_elements: usize,
    max_abs_diff: f64,
    max_rel_diff: f64,
    failures: Vec<String>,
}

struct Report {
    table: String,
    end_to_end: String,
    problems: Vec<String>,
}

fn parity() -> Report {
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    let mut end_to_end = String::from("model                mode       output  max|ref-xnnpack|  max|interp-xnnpack|  max|interp-ref|\n");
    let mut problems = Vec::new();
    // Samples per model (LITEQUANT_PARITY_SAMPLES, default 2; LITEQUANT_PARITY_MODELS limits the models).
    let samples: usize = std::env::var("LITEQUANT_PARITY_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let only = std::env::var("LITEQUANT_PARITY_MODELS").unwrap_or_default();
    for name in corpus_models() {
        if !only.is_empty() && !only.split(',').any(|m| m == name) {
            continue;
        }
        let mdir = corpus().join(&name);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("quantize.toml"), config(&mdir)).expect("write config");
        let out = litequant()
            .args(["build", "-c", "quantize.toml"])
            .current_dir(dir.path())
            .output()
            .expect("the CLI runs");
        assert!(
            out.status.success(),
            "{name}: build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for &(file, mode) in ARTIFACTS {
            let art = dir.path().join(format!("out/{file}.tflite"));
            let dump = dir.path().join(format!("{file}.npz"));
            let status = std::process::Command::new(python())
                .arg(repo().join("tests/litert/dump_ref.py"))
                .args([&art, &mdir.join("eval.npz"), &dump])
                .args(["--samples", &samples.to_string()])
                .status()
                .expect("python runs");
            assert!(status.success(), "{name}/{mode}: LiteRT dump failed");
            let bytes = std::fs::read(&art).expect("artifact");
            let mut interp = match Interpreter::new(&bytes) {
                Ok(i) => i,
                Err(e) => {
                    problems.push(format!("{name}/{mode}: {e}"));
                    continue;
                }
            };
            let mut npz = NpzReader::new(std::fs::File::open(&dump).expect("dump")).expect("npz");
            let graph = litequant::graph::Graph::from_bytes(&bytes).expect("the artifact reads");
            for s in 0..samples {
                let tensor = |npz: &mut NpzReader<std::fs::File>, t: TensorId| {
                    read(npz, &format!("s{s}_t{}", t.0), graph.tensor(t).type_)
                };
                for i in 0..graph.ops().len() {
                    let op = OpIndex(i);
                    let key = (name.clone(), mode.to_string(), graph.op_type_name(op));
                    let inputs: Vec<Option<Tensor>> = graph
                        .op_inputs(op)
                        .into_iter()
                        .map(|t| {
                            t.and_then(|t| {
                                // Constants from the model, activations from LiteRT's own run.
                                if graph.is_constant(t) {
                                    interp.tensor(t).cloned()
                                } else {
                                    tensor(&mut npz, t)
                                }
                            })
                        })
                        .collect();
                    let row = rows.entry(key).or_default();
                    row.count += 1;
                    let ours = match interp.eval_op(op, &inputs) {
                        Ok(o) => o,
                        Err(e) => {
                            row.failures.push(e.to_string());
                            continue;
                        }
                    };
                    for (t, v) in graph.op_outputs(op).into_iter().zip(ours) {
                        let Some(reference) = tensor(&mut npz, t) else {
                            row.failures
                                .push(format!("LiteRT kept no value for tensor {}", t.0));
                            continue;
                        };
                        let integer = !matches!(v.data, TensorData::F32(_));
                        row.integer |= integer;
                        let (a, b) = (v.data.to_f64(), reference.data.to_f64());
                        if a.len() != b.len() {
                            row.failures.push(format!(
                                "tensor {}: {} elements, LiteRT {}",
                                t.0,
                                a.len(),
                                b.len()
                            ));
                            continue;
                        }
                        let peak = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
                        for (x, y) in a.iter().zip(&b) {
                            let d = (x - y).abs();
                            if d > 0.0 {
                                row.mismatched_elements += 1;
                            }
                            row.max_abs_diff = row.max_abs_diff.max(d);
                            row.max_rel_diff = row.max_rel_diff.max(d / peak);
                        }
                    }
                }
                // End to end: our whole run from the same inputs, against LiteRT reference and XNNPACK.
                for (k, info) in interp.inputs().into_iter().enumerate() {
                    if let Some(x) = tensor(&mut npz, info.id) {
                        interp.set_input(k, x).expect("LiteRT's input fits");
                    }
                }
                if let Err(e) = interp.invoke() {
                    problems.push(format!("{name}/{mode}: invoke: {e}"));
                    continue;
                }
                for (k, info) in interp.outputs().into_iter().enumerate() {
                    let ours = interp
                        .output(k)
                        .map(|t| t.data.to_f64())
                        .unwrap_or_default();
                    let reference = tensor(&mut npz, info.id)
                        .map(|t| t.data.to_f64())
                        .unwrap_or_default();
                    let xnn = read(&mut npz, &format!("s{s}_xnn_o{k}"), info.dtype)
                        .map(|t| t.data.to_f64())
                        .unwrap_or_default();
                    let max = |p: &[f64], q: &[f64]| {
                        p.iter()
                            .zip(q)
                            .map(|(x, y)| (x - y).abs())
                            .fold(0f64, f64::max)
                    };
                    let _ = writeln!(
                        end_to_end,
                        "{name:20} {mode:10} s{s}/o{k}  {:16.3e}  {:19.3e}  {:15.3e}",
                        max(&reference, &xnn),
                        max(&ours, &xnn),
                        max(&ours, &reference)
                    );
                }
            }
        }
    }
    let mut table = String::from(
        "model                mode       op                  count  kind     parity\n",
    );
    for ((model, mode, op), row) in &rows {
        let kind = if row.integer { "integer" } else { "float" };
        let verdict = if !row.failures.is_empty() {
            format!("ERROR {}", row.failures[0])
        } else if row.mismatched_elements == 0 {
            "bit-exact".to_string()
        } else {
            format!(
                "max|diff| {:.3e} (rel {:.2e}, {} elements differ)",
                row.max_abs_diff, row.max_rel_diff, row.mismatched_elements
            )
        };
        let _ = writeln!(
            table,
            "{model:20} {mode:10} {op:19} {:5}  {kind:7}  {verdict}",
            row.count
        );
        let label = format!("{model}/{mode}/{op}");
        if !row.failures.is_empty() {
            problems.push(format!("{label}: {}", row.failures.join("; ")));
        } else if row.integer && row.mismatched_elements > 0 {
            problems.push(format!(
                "{label}: not bit-exact (max |diff| {} codes)",
                row.max_abs_diff
            ));
        } else if !row.integer && row.max_rel_diff > FLOAT_TOLERANCE {
            problems.push(format!(
                "{label}: relative difference {:.2e} > {FLOAT_TOLERANCE:e}",
                row.max_rel_diff
            ));
        }
    }
    Report {
        table,
        end_to_end,
        problems,
    }
}

#[test]
fn integer_ops_match_litert_reference_kernels_bit_for_bit_on_the_corpus() {
    let report = parity();
    println!(
        "{}\nend to end (sample / output):\n{}",
        report.table, report.end_to_end
    );
    assert!(
        report.problems.is_empty(),
        "{}\n{}",
        report.table,
        report.problems.join("\n")
    );
}
