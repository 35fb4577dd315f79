//! The integer interpreter against LiteRT, op by op: every corpus model in every mode is built with the CLI,
//! run in LiteRT's reference kernels (`BUILTIN_REF`, every tensor preserved), and each op is fed LiteRT's own
//! inputs so errors do not accumulate. Integer outputs must be bit-exact; float outputs (float ops, hybrid
//! ops, DEQUANTIZE) within a relative tolerance. End-to-end outputs against LiteRT's default (XNNPACK) path
//! are reported beside, not asserted.
//!
//! Runs on the corpus in `tests/corpus` (plus `LITEQUANT_CORPUS`'s models) and needs `LITEQUANT_TEST_PYTHON`
//! (fails, not skips, without it); `LITEQUANT_PARITY_MODELS` limits the models and must select at least one,
//! and every selected model in every mode must have ops compared. The table prints
//! with `cargo test --test tests interp -- --nocapture`.

use crate::interop::{litequant, model_dir, python, repo};
use litequant::graph::{OpIndex, TensorId};
use litequant::interp::{Interpreter, Tensor, TensorData};
use litequant::tflite::fb;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const ARTIFACTS: &[(&str, &str)] = &[
    ("m.dynamic", "dynamic"),
    ("m.float16", "float16"),
    ("m.int8", "int8"),
    ("mio.int8", "int8-io"),
    ("m.int16x8", "int16x8"),
];

/// Relative tolerance of float outputs: max |diff| over max |reference| of the tensor.
const FLOAT_TOLERANCE: f64 = 1e-4;

/// The build config of a model folder; `strict`: with the strict int8 model (`mio`, int8 I/O).
fn config(model_dir: &Path, strict: bool) -> String {
    let d = model_dir.display();
    let mio = if strict {
        format!(
            "\n[models.mio]\nsource = \"{d}/model.tflite\"\nmodes = [\"int8\"]\ndataset = \"calib\"\nop_sets = [\"TFLITE_BUILTINS_INT8\"]\n\
             inference_input_type = \"int8\"\ninference_output_type = \"int8\"\n"
        )
    } else {
        String::new()
    };
    format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.calib]\nformat = \"npz\"\npath = \"{d}/calib.npz\"\nsamples = 100\n\n\
         [models.m]\nsource = \"{d}/model.tflite\"\nmodes = [\"dynamic\", \"float16\", \"int8\", \"int16x8\"]\ndataset = \"calib\"\n{mio}"
    )
}

/// One tensor of LiteRT's dump, in the model's declared type.
pub(crate) fn read(
    npz: &mut NpzReader<std::fs::File>,
    key: &str,
    t: fb::TensorType,
) -> Option<Tensor> {
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
        fb::TensorType::BOOL => get::<bool>(npz, key).map(|a| {
            (
                a.shape().to_vec(),
                TensorData::Bool(a.into_iter().collect()),
            )
        })?,
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
    /// Elements of integer outputs that differ (must be none).
    integer_mismatches: usize,
    /// Largest relative difference over float outputs (a WHILE carries both kinds).
    float_rel: f64,
    max_abs_diff: f64,
    max_rel_diff: f64,
    failures: Vec<String>,
}

/// The per-op table, the end-to-end comparison and every problem found.
pub(crate) struct Report {
    pub(crate) table: String,
    pub(crate) end_to_end: String,
    pub(crate) problems: Vec<String>,
}

fn parity() -> Report {
    // Samples per model (LITEQUANT_PARITY_SAMPLES, default 2; LITEQUANT_PARITY_MODELS limits the models).
    let samples: usize = std::env::var("LITEQUANT_PARITY_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let models: Vec<(String, PathBuf)> = crate::support::selected_models("LITEQUANT_PARITY_MODELS")
        .into_iter()
        .map(|name| {
            let dir = model_dir(&name);
            (name, dir)
        })
        .collect();
    parity_on(&models, samples)
}

/// The op-by-op comparison on `(name, folder with model.tflite, calib.npz, eval.npz)` models, `samples`
/// evaluation samples each, every mode.
pub(crate) fn parity_on(models: &[(String, PathBuf)], samples: usize) -> Report {
    parity_on_modes(models, samples, true)
}

/// [`parity_on`]; without `strict`, no strict int8 model (`TFLITE_BUILTINS_INT8`, int8 I/O) is built: for
/// ops that int8 mode keeps float, which that op set refuses.
pub(crate) fn parity_on_modes(
    models: &[(String, PathBuf)],
    samples: usize,
    strict: bool,
) -> Report {
    let artifacts: Vec<(&str, &str)> = ARTIFACTS
        .iter()
        .copied()
        .filter(|&(file, _)| strict || !file.starts_with("mio"))
        .collect();
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    let mut end_to_end = String::from("model                mode       output  max|ref-xnnpack|  max|interp-xnnpack|  max|interp-ref|\n");
    let mut problems = Vec::new();
    for (name, mdir) in models {
        let name = name.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("quantize.toml"), config(mdir, strict))
            .expect("write config");
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
        for &(file, mode) in &artifacts {
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
            let live: std::collections::HashSet<TensorId> = graph
                .consumers()
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.is_empty())
                .map(|(t, _)| TensorId(t))
                .chain(graph.outputs())
                .collect();
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
                                // Constants from the model, activations from LiteRT's own run;
                                // variable tensors (recurrent state, which LiteRT updates in place)
                                // at their reset value, as each sample starts.
                                if graph.is_constant(t) || graph.tensor(t).is_variable {
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
                            // A dead tensor (a WHILE's loop variable nothing reads afterwards) LiteRT
                            // may leave without memory: nothing to compare.
                            if !live.contains(&t) {
                                continue;
                            }
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
                                row.integer_mismatches += usize::from(integer);
                            }
                            if !integer {
                                row.float_rel = row.float_rel.max(d / peak);
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
    // Something was compared: every selected model in every mode has ops checked against LiteRT.
    for (name, _) in models {
        for &(_, mode) in &artifacts {
            let ops: usize = rows
                .iter()
                .filter(|((m, md, _), _)| m == name && md == mode)
                .map(|(_, r)| r.count)
                .sum();
            if ops == 0 {
                problems.push(format!("{name}/{mode}: no op was compared with LiteRT"));
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
        } else if row.integer_mismatches > 0 {
            problems.push(format!(
                "{label}: not bit-exact ({} integer elements differ, max |diff| {})",
                row.integer_mismatches, row.max_abs_diff
            ));
        } else if row.float_rel > FLOAT_TOLERANCE {
            problems.push(format!(
                "{label}: relative difference {:.2e} > {FLOAT_TOLERANCE:e}",
                row.float_rel
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

/// A float model `y = BATCH_MATMUL(x, w)` (default options but `adj_y`) whose RHS `w` is a constant.
fn batch_matmul_model(lhs: &[i32], rhs: &[i32], out: &[i32], adj_y: bool) -> Vec<u8> {
    // The generated object API is non-exhaustive: build from defaults, field by field.
    let tensor = |name: &str, shape: &[i32], buffer: u32| {
        let mut t = fb::TensorT::default();
        t.shape = Some(shape.to_vec());
        t.type_ = fb::TensorType::FLOAT32;
        t.buffer = buffer;
        t.name = Some(name.to_string());
        t
    };
    let elements: i32 = rhs.iter().product();
    let mut weights = fb::BufferT::default();
    weights.data = Some(
        (0..elements as usize)
            .map(|i| ((i * 7919 % 251) as f32 - 125.0) / 97.0)
            .flat_map(f32::to_le_bytes)
            .collect(),
    );
    let mut options = fb::BatchMatMulOptionsT::default();
    options.adj_y = adj_y;
    let mut op = fb::OperatorT::default();
    op.inputs = Some(vec![0, 1]);
    op.outputs = Some(vec![2]);
    op.builtin_options = fb::BuiltinOptionsT::BatchMatMulOptions(Box::new(options));
    op.debug_metadata_index = -1;
    let mut code = fb::OperatorCodeT::default();
    code.deprecated_builtin_code = fb::BuiltinOperator::BATCH_MATMUL.0 as i8;
    code.builtin_code = fb::BuiltinOperator::BATCH_MATMUL;
    code.version = 1;
    let mut main = fb::SubGraphT::default();
    main.tensors = Some(vec![
        tensor("x", lhs, 0),
        tensor("w", rhs, 1),
        tensor("y", out, 0),
    ]);
    main.inputs = Some(vec![0]);
    main.outputs = Some(vec![2]);
    main.operators = Some(vec![op]);
    main.name = Some("main".into());
    main.debug_metadata_index = -1;
    let mut model = fb::ModelT::default();
    model.version = 3;
    model.operator_codes = Some(vec![code]);
    model.subgraphs = Some(vec![main]);
    model.buffers = Some(vec![fb::BufferT::default(), weights]);
    model.description = Some("litequant test: BATCH_MATMUL with a constant RHS".into());
    litequant::tflite::write_model(&model)
}

/// LHS, RHS and output shapes of a BATCH_MATMUL, and its `adj_y`.
type MatMulShapes = (&'static [i32], &'static [i32], &'static [i32], bool);

#[test]
fn hybrid_batch_matmul_matches_litert_reference_kernel_bit_for_bit() {
    use litequant::quantize::{quantize, Mode, QuantOptions};
    // (LHS, RHS, output, adj_y): 2-D weights under a batched input; a [1, K, N] RHS (LiteRT folds the LHS
    // batch into its rows); adj_y weights; and two LHS batch dims (where LiteRT indexes row parameters
    // per batch dim).
    let cases: [MatMulShapes; 4] = [
        (&[2, 4, 64], &[64, 32], &[2, 4, 32], false),
        (&[3, 5, 48], &[1, 48, 24], &[3, 5, 24], false),
        (&[4, 40], &[32, 40], &[4, 32], true),
        (&[2, 3, 2, 32], &[32, 40], &[2, 3, 2, 40], false),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut problems = Vec::new();
    for (case, &(lhs, rhs, out, adj_y)) in cases.iter().enumerate() {
        let mut graph =
            litequant::graph::Graph::from_bytes(&batch_matmul_model(lhs, rhs, out, adj_y))
                .expect("the float model reads");
        quantize(&mut graph, Mode::Dynamic, &QuantOptions::default(), None)
            .expect("dynamic mode quantizes BATCH_MATMUL");
        let bytes = graph.to_bytes();
        let graph = litequant::graph::Graph::from_bytes(&bytes).expect("the artifact reads");
        let op = OpIndex(0);
        let weights = graph.op_inputs(op)[1].expect("the op has weights");
        assert_eq!(
            graph.tensor(weights).type_,
            fb::TensorType::INT8,
            "case {case}"
        );
        assert!(
            graph
                .op(op)
                .builtin_options
                .as_batch_mat_mul_options()
                .is_some_and(|o| o.asymmetric_quantize_inputs),
            "case {case}: dynamic mode sets asymmetric_quantize_inputs"
        );
        let model = dir.path().join(format!("bmm{case}.tflite"));
        std::fs::write(&model, &bytes).expect("write model");

        let samples = 3;
        let per_sample: usize = lhs.iter().map(|&d| d as usize).product();
        let data: Vec<f32> = (0..samples * per_sample)
            .map(|i| ((i * 31 % 97) as f32 - 40.0) / 23.0 + (i % 5) as f32 * 0.01)
            .collect();
        let inputs = dir.path().join(format!("bmm{case}_inputs.npz"));
        let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).expect("npz"));
        let array =
            ndarray::Array2::from_shape_vec((samples, per_sample), data.clone()).expect("shape");
        npz.add_array("x", &array).expect("write x");
        npz.finish().expect("finish npz");
        let dump = dir.path().join(format!("bmm{case}_ref.npz"));
        let status = std::process::Command::new(python())
            .arg(repo().join("tests/litert/dump_ref.py"))
            .args([&model, &inputs, &dump])
            .args(["--samples", &samples.to_string()])
            .status()
            .expect("python runs");
        assert!(status.success(), "case {case}: LiteRT dump failed");
        let mut reference = NpzReader::new(std::fs::File::open(&dump).expect("dump")).expect("npz");

        let mut interp = Interpreter::new(&bytes).expect("the hybrid op has a kernel");
        let y = interp.outputs()[0].id;
        let (mut max_diff, mut differing) = (0f64, 0);
        for s in 0..samples {
            interp
                .set_input_f32(0, &data[s * per_sample..(s + 1) * per_sample])
                .expect("input fits");
            interp.invoke().expect("invoke");
            let ours = interp.output(0).expect("output").data.to_f64();
            let theirs = read(
                &mut reference,
                &format!("s{s}_t{}", y.0),
                fb::TensorType::FLOAT32,
            )
            .expect("LiteRT's output")
            .data
            .to_f64();
            assert_eq!(ours.len(), theirs.len(), "case {case}");
            for (a, b) in ours.iter().zip(&theirs) {
                if a.to_bits() != b.to_bits() {
                    differing += 1;
                    max_diff = max_diff.max((a - b).abs());
                }
            }
        }
        eprintln!(
            "hybrid BATCH_MATMUL {lhs:?} x {rhs:?} (adj_y {adj_y}): {differing} of {} outputs differ from LiteRT BUILTIN_REF, max |diff| {max_diff:e}",
            samples * out.iter().product::<i32>() as usize
        );
        if differing > 0 {
            problems.push(format!(
                "case {case}: {differing} outputs differ, max |diff| {max_diff:e}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
