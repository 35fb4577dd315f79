//! What quantization cost: the quantized model against its float source on an evaluation dataset.
//!
//! [`evaluate`] runs every evaluation sample through the float model (the calibration interpreter) and the
//! quantized artifact ([`Interpreter`](crate::Interpreter), TFLite's integer arithmetic) and measures, as
//! TFLite's quantization debugger and ONNX Runtime's `qdq_loss_debug` do:
//! * output SQNR over all outputs and samples (`10 log10(sum f^2 / sum (f - q)^2)`, the score of
//!   `litert_eval.py` and `ANCHORS.md`), per output SQNR and max abs error;
//! * top-1 agreement for classifier outputs, and accuracy of both models when the data has labels;
//! * the SQNR of every activation tensor (the quantized tensor dequantized against the float tensor of the
//!   same name), in execution order: the layers where the error comes from.
//!
//! Samples run in fixed groups whose sums are merged in group order, so the numbers do not depend on the
//! thread count. [`html::render`] draws a report as a self-contained page.

#[cfg(feature = "html")]
pub mod html;
mod reuse;
pub mod target;

use crate::calibrate::{CalibError, FloatInterpreter, Registry, Value};
use crate::dataset::{self, DatasetError, DatasetSpec, Labels};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::interp::{InterpError, QuantParams, Tensor, TensorData};
use crate::tflite::{self, fb};
use crate::Interpreter;
use ndarray::ArrayD;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Version of the evaluation's arithmetic, in the cache key of reports that carry an accuracy: a change to the
/// interpreter or the measures must not be answered by a report computed before it.
pub const EVAL_VERSION: u32 = 2;

/// Samples one worker evaluates before its sums are merged (fixed: results do not depend on threads).
const SAMPLES_PER_GROUP: usize = 8;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The evaluation data cannot be read or does not fit the model.
    #[error(transparent)]
    Data(#[from] DatasetError),
    /// The float model cannot run (unsupported or passed-through op).
    #[error("float model: {0}")]
    Float(#[from] CalibError),
    /// The quantized model cannot run in the integer interpreter.
    #[error("quantized model: {0}")]
    Quantized(#[from] InterpError),
    /// The two models or the labels do not fit together.
    #[error("{0}")]
    Mismatch(String),
    /// The thread pool could not be created.
    #[error("evaluation thread pool: {0}")]
    ThreadPool(String),
}

/// Evaluation samples, read once, with their labels.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// The dataset's name in the config.
    pub dataset: String,
    /// One sample per entry: one array per model input, model input order.
    pub samples: Vec<Vec<ArrayD<f32>>>,
    /// Class labels, when the dataset has them.
    pub labels: Option<Labels>,
    /// What the data was converted from to feed the model (see [`dataset::SampleStream::conversions`]).
    pub conversions: Vec<String>,
    /// The dataset, for errors about its labels that show only once the scored output is known.
    spec: DatasetSpec,
}

impl EvalData {
    /// Reads every sample of `spec` (and its labels) as the float model `graph` takes them.
    pub fn load(spec: &DatasetSpec, graph: &Graph) -> Result<EvalData, EvalError> {
        let mut stream = dataset::open(spec, &crate::engine::input_specs(graph))?;
        let labels = check_labels(spec, stream.len(), graph)?;
        let mut samples = Vec::with_capacity(stream.len());
        loop {
            let batch = stream.next_batch(64)?;
            if batch.is_empty() {
                break;
            }
            samples.extend(batch);
        }
        Ok(EvalData {
            dataset: spec.name.clone(),
            samples,
            labels,
            conversions: stream.conversions(),
            spec: spec.clone(),
        })
    }
}

/// The model outputs of `graph` as labels are checked against them.
fn output_specs(graph: &Graph) -> Vec<dataset::OutputSpec> {
    graph
        .outputs()
        .iter()
        .map(|&t| dataset::OutputSpec {
            name: graph.tensor_name(t).to_string(),
            shape: graph.tensor(t).shape.clone().unwrap_or_default(),
        })
        .collect()
}

/// Reads the labels of the evaluation dataset `spec` (`samples` samples, feeding the float model `graph`) and
/// checks what can be checked before the model runs: one label per sample, and, when the output they refer to
/// is known (stated, or the model's only output), that it exists and every label is one of its classes.
/// `build` and `check` run the same checks.
pub fn check_labels(
    spec: &DatasetSpec,
    samples: usize,
    graph: &Graph,
) -> Result<Option<Labels>, DatasetError> {
    let Some(labels) = dataset::read_labels(spec)? else {
        return Ok(None);
    };
    labels.check_count(spec, samples)?;
    let outputs = output_specs(graph);
    let known = labels.output.or_else(|| (outputs.len() == 1).then_some(0));
    if let Some(output) = known {
        labels.check_output(spec, output, &outputs)?;
    }
    Ok(Some(labels))
}

/// How an evaluation runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// What quantization cost on the evaluation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The evaluation dataset.
    pub dataset: String,
    /// Samples evaluated.
    pub samples: usize,
    /// Output SQNR in dB over all outputs and samples (`null`: the outputs are identical).
    pub sqnr_db: Option<f64>,
    /// Largest absolute difference of any output element.
    pub max_abs_error: f64,
    /// Mean absolute difference over all output elements.
    pub mean_abs_error: f64,
    /// Mean top-1 agreement with the float model over the classifier outputs (`null`: none).
    pub top1_agreement: Option<f64>,
    /// The output the labels refer to, when the data has labels.
    pub label_output: Option<String>,
    /// The float model's accuracy on the labels.
    pub accuracy_float: Option<f64>,
    /// The quantized model's accuracy on the labels.
    pub accuracy_quant: Option<f64>,
    /// Each model output.
    pub outputs: Vec<OutputAccuracy>,
    /// Every activation tensor both models compute, in execution order.
    pub tensors: Vec<TensorAccuracy>,
}

/// One model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputAccuracy {
    /// Tensor name.
    pub name: String,
    /// SQNR in dB over all samples (`null`: identical).
    pub sqnr_db: Option<f64>,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Top-1 agreement, for a classifier output (probability rows, or the labels' output).
    pub top1_agreement: Option<f64>,
}

/// One activation tensor: the quantized model's value (dequantized) against the float model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorAccuracy {
    /// Tensor name (as in the float model).
    pub name: String,
    /// The op computing it in the float model (`input` for a model input).
    pub op: String,
    /// That op's index in the float model (`null` for a model input).
    pub op_index: Option<usize>,
    /// Its type in the quantized model (`int8`, `int16`, `float32`).
    pub dtype: String,
    /// SQNR in dB over all samples (`null`: identical).
    pub sqnr_db: Option<f64>,
    /// Largest absolute difference.
    pub max_abs_error: f64,
}

impl Accuracy {
    /// Tensors worst first (lowest SQNR), identical ones last; ties keep execution order.
    pub fn worst_tensors(&self) -> Vec<&TensorAccuracy> {
        let mut t: Vec<&TensorAccuracy> = self.tensors.iter().collect();
        t.sort_by(|a, b| {
            let key = |x: &TensorAccuracy| x.sqnr_db.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
        t
    }

    /// One line for a person: `SQNR 43.0 dB, top-1 agreement 0.998, accuracy 0.9850 (float 0.9825)`.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "SQNR {} on {} eval samples, max abs error {:.3e}",
            db(self.sqnr_db),
            self.samples,
            self.max_abs_error
        );
        if let Some(a) = self.top1_agreement {
            s.push_str(&format!(", top-1 agreement {a:.3}"));
        }
        if let (Some(q), Some(f)) = (self.accuracy_quant, self.accuracy_float) {
            s.push_str(&format!(", accuracy {q:.4} (float {f:.4})"));
        }
        s
    }

    /// The short table `build` and `eval` print: the summary line, then the `worst` lowest-SQNR tensors.
    pub fn table(&self, worst: usize) -> String {
        let mut out = format!("  {}\n", self.summary_line());
        let rows: Vec<&TensorAccuracy> = self.worst_tensors().into_iter().take(worst).collect();
        if rows.is_empty() {
            return out;
        }
        out.push_str(&format!(
            "  {:>9}  {:<7}  {:<18}  {}\n",
            "SQNR", "type", "op", "tensor (worst first)"
        ));
        for t in rows {
            out.push_str(&format!(
                "  {:>9}  {:<7}  {:<18}  {}\n",
                db(t.sqnr_db),
                t.dtype,
                t.op,
                short_name(&t.name, 60),
            ));
        }
        out
    }
}

/// `43.04` -> `43.0 dB`, `None` -> `exact`.
pub fn db(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.1} dB"),
        None => "exact".into(),
    }
}

/// A tensor name for a narrow column: the first `;`-separated part (TF's converter joins the names of fused
/// ops, the layer's own first), its start elided to `max` characters.
pub fn short_name(name: &str, max: usize) -> String {
    let first = name.split(';').next().unwrap_or(name);
    if first.chars().count() <= max {
        first.to_string()
    } else {
        let tail: Vec<char> = first.chars().rev().take(max.saturating_sub(1)).collect();
        format!("…{}", tail.into_iter().rev().collect::<String>())
    }
}

/// Independent accumulators per [`Energy::add_lanes`] call.
const LANES: usize = 8;

/// The lanes of [`Energy::add_lanes`], one array per sum (so the compiler keeps them in vector registers).
#[derive(Default)]
struct Lanes {
    signal: [f64; LANES],
    noise: [f64; LANES],
    max_abs: [f64; LANES],
    abs_sum: [f64; LANES],
}

impl Lanes {
    #[inline(always)]
    fn add(&mut self, f: &[f32; LANES], q: &[f32; LANES]) {
        for l in 0..LANES {
            let (f, q) = (f64::from(f[l]), f64::from(q[l]));
            let d = f - q;
            self.signal[l] += f * f;
            self.noise[l] += d * d;
            let a = d.abs();
            // NaN in the quantized model is the worst error there is: keep it visible.
            self.max_abs[l] = if a > self.max_abs[l] || a.is_nan() {
                a
            } else {
                self.max_abs[l]
            };
            self.abs_sum[l] += a;
        }
    }
}

/// Signal and noise energy of one tensor or output, summed over samples.
#[derive(Debug, Clone, Copy, Default)]
struct Energy {
    signal: f64,
    noise: f64,
    max_abs: f64,
    abs_sum: f64,
    count: u64,
}

/// The lanes of the pairs `(float[i], real(quant[i]))`: element `i` in lane `i % LANES`, each lane in element
/// order, the tail zero-padded (a zero pair adds nothing).
#[inline(always)]
fn fill_lanes<T: Copy>(float: &[f32], quant: &[T], real: impl Fn(T) -> f32) -> Lanes {
    let n = float.len().min(quant.len());
    let mut lanes = Lanes::default();
    let mut q = [0f32; LANES];
    let whole = n / LANES * LANES;
    for (f, codes) in float[..whole]
        .chunks_exact(LANES)
        .zip(quant[..whole].chunks_exact(LANES))
    {
        for (q, &c) in q.iter_mut().zip(codes) {
            *q = real(c);
        }
        let mut fl = [0f32; LANES];
        fl.copy_from_slice(f);
        lanes.add(&fl, &q);
    }
    let mut fl = [0f32; LANES];
    q = [0f32; LANES];
    for (i, (&f, &c)) in float[whole..n].iter().zip(&quant[whole..n]).enumerate() {
        fl[i] = f;
        q[i] = real(c);
    }
    lanes.add(&fl, &q);
    lanes
}

#[inline(always)]
fn real_lanes_body(float: &[f32], quant: &[f32]) -> Lanes {
    fill_lanes(float, quant, |q| q)
}

#[inline(always)]
fn code_lanes_body(float: &[f32], codes: &[i8], scale: f64, zero_point: f64) -> Lanes {
    fill_lanes(float, codes, |c| {
        (scale * (f64::from(c) - zero_point)) as f32
    })
}

crate::calibrate::vector::wide_vectors! {
    /// [`fill_lanes`] of two float slices, with AVX2 where the CPU has it (the same lane operations, so the
    /// same sums).
    fn real_lanes(float: &[f32], quant: &[f32]) -> Lanes => real_lanes_body;
}

crate::calibrate::vector::wide_vectors! {
    /// [`fill_lanes`] of int8 codes dequantized with one scale and zero point ([`OneScale`]).
    fn code_lanes(float: &[f32], codes: &[i8], scale: f64, zero_point: f64) -> Lanes => code_lanes_body;
}

impl Energy {
    fn add(&mut self, float: &[f32], quant: &[f32]) {
        self.add_lanes(&real_lanes(float, quant), float.len().min(quant.len()));
    }

    /// [`add`](Self::add) of an int8 tensor with one scale and zero point.
    fn add_codes(&mut self, float: &[f32], codes: &[i8], q: OneScale) {
        let lanes = code_lanes(float, codes, q.scale, q.zero_point);
        self.add_lanes(&lanes, float.len().min(codes.len()));
    }

    /// Adds the sums of `n` pairs kept in [`LANES`] independent lanes (so no addition waits for the one
    /// before it), the lanes in lane order, so the sums are the same on every run.
    fn add_lanes(&mut self, lanes: &Lanes, n: usize) {
        for l in 0..LANES {
            self.signal += lanes.signal[l];
            self.noise += lanes.noise[l];
            self.abs_sum += lanes.abs_sum[l];
            if lanes.max_abs[l] > self.max_abs || lanes.max_abs[l].is_nan() {
                self.max_abs = lanes.max_abs[l];
            }
        }
        self.count += n as u64;
    }

    /// Adds the quantized model's value `v` of the tensor `p` against the float model's `float`
    /// (`real` is scratch); nothing when their sizes differ.
    fn add_tensor(&mut self, float: &[f32], v: &Tensor, p: &Pair, real: &mut Vec<f32>) {
        match (p.int8, &v.data) {
            (Some(q), TensorData::I8(codes)) => {
                if codes.len() == float.len() {
                    self.add_codes(float, codes, q);
                }
                return;
            }
            (_, TensorData::F32(values)) => {
                if values.len() == float.len() {
                    self.add(float, values);
                }
                return;
            }
            _ => {}
        }
        v.to_real_into(p.params.as_ref(), real);
        if real.len() == float.len() {
            self.add(float, real);
        }
    }

    fn merge(&mut self, o: &Energy) {
        self.signal += o.signal;
        self.noise += o.noise;
        if o.max_abs > self.max_abs || o.max_abs.is_nan() {
            self.max_abs = o.max_abs;
        }
        self.abs_sum += o.abs_sum;
        self.count += o.count;
    }

    fn sqnr_db(&self) -> Option<f64> {
        if self.noise == 0.0 {
            return None;
        }
        if self.noise.is_nan() {
            return Some(f64::MIN);
        }
        Some(10.0 * (self.signal.max(f64::MIN_POSITIVE) / self.noise).log10())
    }
}

/// What one group of samples contributes.
#[derive(Default)]
struct Partial {
    /// Per sample: every op output, by key, for the next round (when kept).
    memos: Vec<Option<HashMap<reuse::Key, Arc<Tensor>>>>,
    outputs: Vec<Energy>,
    tensors: Vec<Energy>,
    /// Per sample (group order): argmax of the float and quantized model for each top-1 output.
    argmax: Vec<Vec<(usize, usize)>>,
    /// Per sample: whether each output looks like probabilities (non-negative rows summing to 1).
    prob_like: Vec<bool>,
}

/// A float model tensor compared in the report, and its counterpart in the quantized model.
struct Pair {
    float: TensorId,
    quant: TensorId,
    params: Option<QuantParams>,
    /// An int8 tensor's one scale and zero point.
    int8: Option<OneScale>,
}

/// One scale and zero point: code `c` stands for `(scale * (c - zero_point)) as f32` in double precision,
/// [`Tensor::to_real_into`]'s arithmetic.
#[derive(Debug, Clone, Copy)]
struct OneScale {
    scale: f64,
    zero_point: f64,
}

impl OneScale {
    fn of(q: &QuantParams) -> Option<OneScale> {
        (q.scale.len() == 1).then(|| OneScale {
            scale: f64::from(q.scale[0]),
            zero_point: q.zero_point.first().copied().unwrap_or(0) as f64,
        })
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::with_all_ops)
}

/// Bytes of float activations a [`FloatReference`] keeps (samples past it are run again when compared).
const REFERENCE_BUDGET: usize = 512 << 20;

/// The float model's side of evaluations against one dataset: the float interpreter, and each sample's
/// outputs and observed activations once computed (while they fit [`REFERENCE_BUDGET`]), so an accuracy
/// target's rounds run the float model once. What is kept is what a fresh run computes: results do not
/// depend on it.
pub struct FloatReference<'a> {
    float: &'a Graph,
    interp: FloatInterpreter<'a>,
    data: &'a EvalData,
    runs: Vec<OnceLock<Arc<FloatRun>>>,
    kept_bytes: AtomicUsize,
}

/// One sample through the float model: its outputs and every observed float activation (by tensor id).
struct FloatRun {
    outputs: Vec<Vec<f32>>,
    tensors: Vec<Option<Vec<f32>>>,
}

impl<'a> FloatReference<'a> {
    /// The float model `float` ready to run the samples of `data`.
    pub fn new(float: &'a Graph, data: &'a EvalData) -> Result<FloatReference<'a>, EvalError> {
        Ok(FloatReference {
            float,
            interp: FloatInterpreter::new(float, registry())?,
            data,
            runs: (0..data.samples.len()).map(|_| OnceLock::new()).collect(),
            kept_bytes: AtomicUsize::new(0),
        })
    }

    /// Sample `i` through the float model: kept from an earlier call, or run now (and kept if it fits).
    fn run(&self, i: usize) -> Result<Arc<FloatRun>, EvalError> {
        let slot = self
            .runs
            .get(i)
            .ok_or_else(|| EvalError::Mismatch(format!("there is no evaluation sample {i}")))?;
        if let Some(run) = slot.get() {
            return Ok(Arc::clone(run));
        }
        let mut tensors: Vec<Option<Vec<f32>>> = vec![None; self.float.tensors().len()];
        let outputs = self.interp.run(&self.data.samples[i], &mut |t, v| {
            if let (Some(slot), Value::F32(a)) = (tensors.get_mut(t.0), v) {
                *slot = Some(flat(a));
            }
        })?;
        let outputs = outputs
            .iter()
            .enumerate()
            .map(|(k, v)| match v {
                Value::F32(f) => Ok(flat(f)),
                other => Err(EvalError::Mismatch(format!(
                    "float model output {k} is {}, not float32",
                    other.type_name()
                ))),
            })
            .collect::<Result<Vec<Vec<f32>>, _>>()?;
        let run = Arc::new(FloatRun { outputs, tensors });
        let bytes = 4 * run.tensors.iter().flatten().map(Vec::len).sum::<usize>();
        let kept = self.kept_bytes.fetch_add(bytes, Ordering::Relaxed);
        if kept + bytes <= REFERENCE_BUDGET {
            let _ = slot.set(Arc::clone(&run));
        } else {
            self.kept_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        Ok(run)
    }
}

/// Runs `data` through the float model `float` and the quantized model (`quant`, the artifact's bytes) and
/// measures the difference.
pub fn evaluate(
    float: &Graph,
    quant: &[u8],
    data: &EvalData,
    opts: &EvalOptions,
) -> Result<Accuracy, EvalError> {
    evaluate_against(&FloatReference::new(float, data)?, quant, opts)
}

/// [`evaluate`] with the float side given, for several quantized models compared with one float model.
pub fn evaluate_against(
    reference: &FloatReference<'_>,
    quant: &[u8],
    opts: &EvalOptions,
) -> Result<Accuracy, EvalError> {
    Ok(evaluate_round(reference, quant, opts, None)?.0)
}

/// Evaluations of a series of quantized models of one float model, each like [`evaluate_against`], where
/// each reuses what the previous model computed the same way (see [`reuse`]): an accuracy target's rounds,
/// each keeping one more op float, recompute only the ops downstream of that op. The results are those of
/// [`evaluate_against`].
pub struct Evaluator<'a> {
    reference: FloatReference<'a>,
    memo: Option<reuse::Memo>,
    round: u64,
    /// Ops the last evaluation did not run again.
    skipped: usize,
}

impl<'a> Evaluator<'a> {
    /// Evaluations against `reference`.
    pub fn new(reference: FloatReference<'a>) -> Evaluator<'a> {
        Evaluator {
            reference,
            memo: None,
            round: 0,
            skipped: 0,
        }
    }

    /// The float side of the evaluations.
    pub fn reference(&self) -> &FloatReference<'a> {
        &self.reference
    }

    /// Evaluates the quantized model `quant` (the artifact's bytes).
    pub fn evaluate(&mut self, quant: &[u8], opts: &EvalOptions) -> Result<Accuracy, EvalError> {
        self.round += 1;
        let previous = self.memo.take();
        let reuse = Reuse {
            memo: previous.as_ref(),
            round: self.round,
        };
        let (accuracy, memo, skipped) = evaluate_round(&self.reference, quant, opts, Some(reuse))?;
        self.memo = memo.and_then(reuse::Memo::within_budget);
        self.skipped = skipped;
        Ok(accuracy)
    }
}

/// What a round of an [`Evaluator`] reuses: the previous round's memo, and the round's number.
#[derive(Clone, Copy)]
struct Reuse<'m> {
    memo: Option<&'m reuse::Memo>,
    round: u64,
}

/// One evaluation; with `reuse`, also what the next round can reuse.
fn evaluate_round(
    reference: &FloatReference<'_>,
    quant: &[u8],
    opts: &EvalOptions,
    reuse: Option<Reuse<'_>>,
) -> Result<(Accuracy, Option<reuse::Memo>, usize), EvalError> {
    let (float, data) = (reference.float, reference.data);
    let quant_interp = Interpreter::new(quant)?;
    let quant_bytes = quant;
    let quant = quant_interp.graph();
    let n_out = float.outputs().len();
    if quant.outputs().len() != n_out || quant.inputs().len() != float.inputs().len() {
        return Err(EvalError::Mismatch(format!(
            "the quantized model has {} input(s) and {} output(s), the float model {} and {}",
            quant.inputs().len(),
            quant.outputs().len(),
            float.inputs().len(),
            n_out
        )));
    }
    let output_map = match_outputs(float, quant);
    let pairs = tensor_pairs(float, quant, &reference.interp);
    let quant_slot: HashMap<usize, usize> = pairs
        .iter()
        .enumerate()
        .map(|(slot, p)| (p.quant.0, slot))
        .collect();
    let compared: Vec<(TensorId, usize)> = pairs.iter().map(|p| (p.quant, p.float.0)).collect();
    let memo = reuse.and_then(|r| r.memo);
    let plan = reuse.map(|r| reuse::Plan::new(quant, &compared, memo, data.samples.len(), r.round));
    let skip: &[bool] = plan.as_ref().map_or(&[], |p| &p.skip);
    let producers = quant.producers();
    // The op outputs whose accuracy the previous round measured.
    let reused_slot = |p: &Pair| {
        producers
            .get(p.quant.0)
            .copied()
            .flatten()
            .is_some_and(|op| skip.get(op.0).copied().unwrap_or(false))
    };
    let op_outputs: Vec<(usize, TensorId)> = (0..quant.ops().len())
        .flat_map(|i| {
            quant
                .op_outputs(OpIndex(i))
                .into_iter()
                .map(move |t| (i, t))
        })
        .collect();

    let groups: Vec<usize> = (0..data.samples.len()).step_by(SAMPLES_PER_GROUP).collect();
    // One quantized interpreter per worker: its weights are prepared once, its state is reset by every run.
    let run_group = |interp: &mut Option<Interpreter>,
                     &first: &usize|
     -> Result<Partial, EvalError> {
        let interp = match interp {
            Some(i) => i,
            None => interp.insert(Interpreter::new(quant_bytes)?),
        };
        let group = first..(first + SAMPLES_PER_GROUP).min(data.samples.len());
        let mut part = Partial {
            memos: Vec::with_capacity(group.len()),
            outputs: vec![Energy::default(); n_out],
            tensors: vec![Energy::default(); pairs.len()],
            argmax: Vec::with_capacity(group.len()),
            prob_like: vec![true; n_out],
        };
        for s in group {
            let reference_run = reference.run(s)?;
            for (i, x) in data.samples[s].iter().enumerate() {
                match x.as_slice() {
                    Some(flat) => interp.set_input_f32(i, flat)?,
                    None => interp.set_input_f32(i, &x.iter().copied().collect::<Vec<f32>>())?,
                }
            }
            let known = memo.and_then(|m| m.samples.get(s));
            let reused: Vec<(TensorId, Tensor)> = match (&plan, known) {
                (Some(plan), Some(known)) => plan
                    .load
                    .iter()
                    .filter_map(|t| known.get(&plan.keys[t.0]).map(|v| (*t, Tensor::clone(v))))
                    .collect(),
                _ => Vec::new(),
            };
            let mut tensor_energy = std::mem::take(&mut part.tensors);
            let mut real = Vec::new();
            interp.invoke_reusing(skip, reused, &mut |t, v| {
                if let Some(&slot) = quant_slot.get(&t.0) {
                    let float_id = pairs[slot].float.0;
                    if let Some(Some(f)) = reference_run.tensors.get(float_id) {
                        tensor_energy[slot].add_tensor(f, v, &pairs[slot], &mut real);
                    }
                }
            })?;
            part.tensors = tensor_energy;
            let mut maxes = Vec::with_capacity(n_out);
            for (i, f) in reference_run.outputs.iter().enumerate() {
                let q = interp.output_f32(output_map[i])?;
                if q.len() != f.len() {
                    return Err(EvalError::Mismatch(format!(
                        "output {i} has {} elements in the quantized model and {} in the float model",
                        q.len(),
                        f.len()
                    )));
                }
                part.outputs[i].add(f, &q);
                let sum: f32 = f.iter().sum();
                if f.len() < 2 || f.iter().any(|&v| v < -1e-6) || (sum - 1.0).abs() > 1e-3 {
                    part.prob_like[i] = false;
                }
                maxes.push((argmax(f), argmax(&q)));
            }
            part.argmax.push(maxes);
            if let Some(plan) = &plan {
                part.memos
                    .push(keep_values(interp, plan, skip, &op_outputs, known));
            }
        }
        Ok(part)
    };
    let parts: Vec<Result<Partial, EvalError>> = if opts.threads == 1 || groups.len() < 2 {
        let mut interp = None;
        groups.iter().map(|g| run_group(&mut interp, g)).collect()
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| EvalError::ThreadPool(e.to_string()))?;
        pool.install(|| {
            groups
                .par_iter()
                .map_init(|| None, |interp, g| run_group(interp, g))
                .collect()
        })
    };
    let mut outputs = vec![Energy::default(); n_out];
    let mut tensors = vec![Energy::default(); pairs.len()];
    let mut argmaxes: Vec<Vec<(usize, usize)>> = Vec::with_capacity(data.samples.len());
    let mut prob_like = vec![!data.samples.is_empty(); n_out];
    let mut memos = Vec::with_capacity(data.samples.len());
    for part in parts {
        let part = part?;
        for (a, b) in outputs.iter_mut().zip(&part.outputs) {
            a.merge(b);
        }
        for (a, b) in tensors.iter_mut().zip(&part.tensors) {
            a.merge(b);
        }
        for (a, b) in prob_like.iter_mut().zip(&part.prob_like) {
            *a &= *b;
        }
        argmaxes.extend(part.argmax);
        memos.extend(part.memos);
    }
    let next = match &plan {
        Some(plan) => {
            // The accuracy of what was not computed again is the previous round's.
            for (slot, p) in pairs.iter().enumerate() {
                let cached = memo.and_then(|m| m.energies.get(&(plan.keys[p.quant.0], p.float.0)));
                if let (true, Some(&e)) = (reused_slot(p), cached) {
                    tensors[slot] = e;
                }
            }
            let energies = pairs
                .iter()
                .zip(&tensors)
                .filter(|(p, _)| producers.get(p.quant.0).copied().flatten().is_some())
                .map(|(p, &e)| ((plan.keys[p.quant.0], p.float.0), e))
                .collect();
            let samples: Option<Vec<_>> = memos.into_iter().collect();
            samples.map(|samples| reuse::Memo { samples, energies })
        }
        None => None,
    };
    let accuracy = accuracy_of(
        reference,
        quant,
        &pairs,
        Sums {
            outputs,
            tensors,
            argmaxes,
            prob_like,
        },
    )?;
    Ok((accuracy, next, skip.iter().filter(|&&s| s).count()))
}

/// Every op output of the last invoke of `interp` by key: computed ones moved out of the interpreter,
/// skipped ones shared with the previous round's `known`. `None` when one is missing.
fn keep_values(
    interp: &mut Interpreter,
    plan: &reuse::Plan,
    skip: &[bool],
    op_outputs: &[(usize, TensorId)],
    known: Option<&HashMap<reuse::Key, Arc<Tensor>>>,
) -> Option<HashMap<reuse::Key, Arc<Tensor>>> {
    op_outputs
        .iter()
        .map(|&(op, t)| {
            let key = plan.keys[t.0];
            let value = if skip.get(op).copied().unwrap_or(false) {
                Arc::clone(known?.get(&key)?)
            } else {
                Arc::new(interp.take_tensor(t)?)
            };
            Some((key, value))
        })
        .collect()
}

/// The sums of an evaluation, merged over its groups.
struct Sums {
    outputs: Vec<Energy>,
    tensors: Vec<Energy>,
    argmaxes: Vec<Vec<(usize, usize)>>,
    prob_like: Vec<bool>,
}

/// The report of an evaluation from its sums.
fn accuracy_of(
    reference: &FloatReference<'_>,
    quant: &Graph,
    pairs: &[Pair],
    sums: Sums,
) -> Result<Accuracy, EvalError> {
    let (float, data) = (reference.float, reference.data);
    let Sums {
        outputs,
        tensors,
        argmaxes,
        prob_like,
    } = sums;
    let n_out = outputs.len();
    let n = argmaxes.len();

    let mut classifiers: Vec<usize> = (0..n_out).filter(|&i| prob_like[i]).collect();
    let mut label_output = None;
    let (mut accuracy_float, mut accuracy_quant) = (None, None);
    if let Some(labels) = &data.labels {
        let out = labels.output.or(classifiers.first().copied()).unwrap_or(0);
        labels.check_output(&data.spec, out, &output_specs(float))?;
        if !classifiers.contains(&out) {
            classifiers.push(out);
        }
        let hits = |pick: fn(&(usize, usize)) -> usize| {
            argmaxes
                .iter()
                .zip(&labels.classes)
                .filter(|(m, &label)| i64::try_from(pick(&m[out])).ok() == Some(label))
                .count() as f64
                / n.max(1) as f64
        };
        accuracy_float = Some(hits(|m| m.0));
        accuracy_quant = Some(hits(|m| m.1));
        label_output = Some(float.tensor_name(float.outputs()[out]).to_string());
    }
    let agreement =
        |i: usize| argmaxes.iter().filter(|m| m[i].0 == m[i].1).count() as f64 / n.max(1) as f64;
    let top1_agreement = (!classifiers.is_empty())
        .then(|| classifiers.iter().map(|&i| agreement(i)).sum::<f64>() / classifiers.len() as f64);

    let producers = float.producers();
    let mut all = Energy::default();
    for e in &outputs {
        all.merge(e);
    }
    Ok(Accuracy {
        dataset: data.dataset.clone(),
        samples: n,
        sqnr_db: all.sqnr_db(),
        max_abs_error: all.max_abs,
        mean_abs_error: all.abs_sum / all.count.max(1) as f64,
        top1_agreement,
        label_output,
        accuracy_float,
        accuracy_quant,
        outputs: outputs
            .iter()
            .enumerate()
            .map(|(i, e)| OutputAccuracy {
                name: float.tensor_name(float.outputs()[i]).to_string(),
                sqnr_db: e.sqnr_db(),
                max_abs_error: e.max_abs,
                top1_agreement: classifiers.contains(&i).then(|| agreement(i)),
            })
            .collect(),
        tensors: pairs
            .iter()
            .zip(&tensors)
            .filter(|(_, e)| e.count > 0)
            .map(|(p, e)| {
                let producer = producers.get(p.float.0).copied().flatten();
                TensorAccuracy {
                    name: float.tensor_name(p.float).to_string(),
                    op: producer.map_or_else(
                        || "input".to_string(),
                        |op| tflite::op_name(float.op_code(op)),
                    ),
                    op_index: producer.map(|op| op.0),
                    dtype: tflite::type_name(quant.tensor(p.quant).type_).to_lowercase(),
                    sqnr_db: e.sqnr_db(),
                    max_abs_error: e.max_abs,
                }
            })
            .collect(),
    })
}

/// The elements of an array in row-major order.
fn flat(a: &ArrayD<f32>) -> Vec<f32> {
    a.as_slice()
        .map_or_else(|| a.iter().copied().collect(), <[f32]>::to_vec)
}

/// The first index of the largest value (NaN never wins).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// For each float output, the quantized output of the same name, else the one at the same position.
fn match_outputs(float: &Graph, quant: &Graph) -> Vec<usize> {
    let names: Vec<&str> = quant
        .outputs()
        .iter()
        .map(|&t| quant.tensor_name(t))
        .collect();
    float
        .outputs()
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let name = float.tensor_name(t);
            names.iter().position(|n| *n == name).unwrap_or(i)
        })
        .collect()
}

/// Every float activation the float interpreter observes, paired with the quantized model's tensor of the
/// same name (the quantizer keeps activation names), in the float model's execution order.
fn tensor_pairs(float: &Graph, quant: &Graph, interp: &FloatInterpreter<'_>) -> Vec<Pair> {
    let mut by_name: HashMap<&str, TensorId> = HashMap::new();
    let produced = quant
        .ops()
        .iter()
        .enumerate()
        .flat_map(|(i, _)| quant.op_outputs(OpIndex(i)))
        .chain(quant.inputs());
    for t in produced {
        by_name.entry(quant.tensor_name(t)).or_insert(t);
    }
    let order = float
        .inputs()
        .into_iter()
        .chain((0..float.ops().len()).flat_map(|i| float.op_outputs(OpIndex(i))));
    let mut pairs = Vec::new();
    let mut seen = vec![false; float.tensors().len()];
    for t in order {
        if t.0 >= seen.len() || seen[t.0] || !interp.is_observed(t) {
            continue;
        }
        seen[t.0] = true;
        let Some(&q) = by_name.get(float.tensor_name(t)) else {
            continue;
        };
        let tensor = quant.tensor(q);
        let comparable = matches!(
            tensor.type_,
            fb::TensorType::FLOAT32
                | fb::TensorType::FLOAT16
                | fb::TensorType::INT8
                | fb::TensorType::UINT8
                | fb::TensorType::INT16
        );
        let params = QuantParams::of(tensor);
        let integer =
            tensor.type_ != fb::TensorType::FLOAT32 && tensor.type_ != fb::TensorType::FLOAT16;
        if comparable && (!integer || params.is_some()) {
            let int8 = params
                .as_ref()
                .filter(|_| tensor.type_ == fb::TensorType::INT8)
                .and_then(OneScale::of);
            pairs.push(Pair {
                float: t,
                quant: q,
                params,
                int8,
            });
        }
    }
    pairs
}
