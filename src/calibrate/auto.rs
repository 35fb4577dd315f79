//! `calibration = "auto"`: each activation's range chosen by the error it causes at the model's outputs,
//! not by its own.
//!
//! The histogram pass records every activation. Each tensor then has a few ways to choose its range
//! ([`methods`]: minmax, percentile 99.99 and 99.9, MSE and entropy on the mode's grid). A second pass runs
//! the float model: on the first half of the samples it fits each method's range per tensor, and on the next
//! ones (at most [`AUTO_SAMPLES`]) it quantizes one tensor at a time to each of those ranges (everything
//! else float), reruns the ops that depend on it and sums the squared error of the model's outputs. Per
//! tensor the method with the least error, relative to the outputs' energy, wins (ties keep minmax) and is
//! applied to the tensor's histogram over every sample. Measured out of sample, as a deployed model sees
//! data: clip points fitted and judged on the same samples look better than they are. Errors at the
//! outputs, not at the next op: a clipping error is systematic and carries through the network where
//! rounding noise averages out, so the next op's error favours clipping that the outputs pay for.
//!
//! Each tensor's sums run over the samples in order, whatever the thread count (the tensors of a sample
//! are spread over the workers, never one tensor's sums), so the choice is the same on any thread count.

use std::collections::{BTreeMap, HashSet};

use ndarray::ArrayD;
use rayon::prelude::*;

use super::calibrator::{calibrate_with, interpreter, thread_pool};
use super::gram::each_sample;
use super::{
    CalibError, CalibrateOptions, FloatInterpreter, Histogram, HistogramObserver, QuantGrid,
    RangeMethod, Value,
};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::params::ActivationType;
use crate::quantize::rules::{OutputRule, RuleRegistry};
use crate::quantize::Ranges;
use crate::tflite::fb;

/// Calibration samples the error is measured on, after the fitting half: each one reruns the network's tail
/// once per tensor and range (mobilenetv2: about 150 forward passes' worth).
pub const AUTO_SAMPLES: usize = 16;

/// Every float activation's histogram over all calibration samples, by tensor.
pub type Histograms = BTreeMap<TensorId, Histogram>;

/// One sample's values, by tensor index.
type Sample = Vec<ArrayD<f32>>;

/// The ways of choosing a range tried for a tensor quantized to `grid`, minmax's first (it wins ties).
// Percentile 99.9 is left out: it cuts into ReLU tails that carry the signal (digits_cnn int8 loses 11 dB).
fn methods(grid: QuantGrid) -> [RangeMethod; 4] {
    [
        RangeMethod::MinMax,
        RangeMethod::Percentile(99.99),
        RangeMethod::Mse(grid),
        RangeMethod::Entropy(grid),
    ]
}

/// The histogram pass: every float activation's histogram (`opts.method` is not used).
pub fn histograms(
    graph: &Graph,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Sample>, String>,
    total: usize,
    opts: &CalibrateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Histograms, CalibError> {
    let interp = interpreter(graph, opts.pass_through_custom_ops)?;
    let observers = calibrate_with(
        &interp,
        &|| HistogramObserver::new(RangeMethod::MinMax),
        samples,
        total,
        opts,
        progress,
        cancelled,
    )?;
    Ok(observers
        .into_iter()
        .map(|(t, o)| (t, o.histogram().clone()))
        .collect())
}

/// Distinct ranges, and the index among them each method selects.
type Choices = (Vec<(f32, f32)>, Vec<usize>);

/// The distinct ranges `methods` select from `histogram`, and which of them each method selects (`None`
/// for a histogram without values).
fn distinct_ranges(histogram: &Histogram, methods: &[RangeMethod]) -> Option<Choices> {
    let mut ranges: Vec<(f32, f32)> = Vec::new();
    let mut slot = Vec::with_capacity(methods.len());
    for &m in methods {
        let r = histogram.range(m)?;
        match ranges.iter().position(|&x| x == r) {
            Some(i) => slot.push(i),
            None => {
                slot.push(ranges.len());
                ranges.push(r);
            }
        }
    }
    Some((ranges, slot))
}

/// One tensor being chosen for, with its sums.
struct Target {
    tensor: TensorId,
    /// The tensor's histogram over the fitting samples.
    fit: Histogram,
    /// The distinct ranges the methods select from `fit` (set when the fitting samples are done), and the
    /// range each method selects.
    ranges: Vec<(f32, f32)>,
    slot: Vec<usize>,
    /// Squared error per model output and range.
    error: Vec<Vec<f64>>,
    /// Squared float value per model output.
    energy: Vec<f64>,
}

/// Whether tensor `t` (made by `producer`) has a range of its own in the mode with activations `ty`: not
/// an output whose params come from its input or the kernel.
fn range_used(
    graph: &Graph,
    rules: &RuleRegistry,
    producer: Option<OpIndex>,
    ty: ActivationType,
) -> bool {
    let Some(op) = producer else { return true };
    match rules.for_type(graph.op_code(op), ty) {
        Ok(r) => match r.output {
            OutputRule::Calibrated => true,
            OutputRule::SameAsInputInt16 => ty == ActivationType::Int8,
            _ => false,
        },
        // Kept float: its output is quantized where an integer op reads it.
        Err(_) => true,
    }
}

/// The second pass: picks each tensor's way of choosing its range ([`methods`]) by the error it causes at
/// the model's outputs, quantized as activations of type `ty`, and applies it to the tensor's histogram over every
/// sample (`histograms`). Out of sample, as a deployed model sees data: the first half of the `total`
/// samples fits each method's range, the next (at most [`AUTO_SAMPLES`]) measure the error; clip points
/// fitted and judged on the same samples look better than they are. Tensors of another subgraph, whose
/// range the mode does not use, or whose methods all agree keep minmax's.
pub fn choose(
    graph: &Graph,
    histograms: &Histograms,
    ty: ActivationType,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Sample>, String>,
    total: usize,
    opts: &CalibrateOptions,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Ranges, CalibError> {
    let methods = methods(match ty {
        ActivationType::Int8 => QuantGrid::Int8Asymmetric,
        ActivationType::Int16 => QuantGrid::Int16Symmetric,
    });
    let mut chosen: Ranges = histograms
        .iter()
        .filter_map(|(t, h)| h.min_max().map(|r| (*t, r)))
        .collect();
    let mut targets = targets(graph, histograms, &methods, ty);
    let fitting = total / 2;
    if targets.is_empty() || fitting == 0 {
        return Ok(chosen);
    }
    let interp = interpreter(graph, opts.pass_through_custom_ops)?;
    let fitted: HashSet<TensorId> = targets.iter().map(|t| t.tensor).collect();
    let measured = measured_tensors(graph);
    let pool = thread_pool(opts.threads)?;
    let end = fitting + AUTO_SAMPLES;
    let mut taken = 0usize;
    let mut capped = |n: usize| {
        let n = n.min(end.saturating_sub(taken));
        let batch = if n == 0 { Vec::new() } else { samples(n)? };
        taken += batch.len();
        Ok(batch)
    };
    let mut index = 0usize;
    each_sample(&mut capped, cancelled, |sample| {
        let i = index;
        index += 1;
        if i < fitting {
            return fit(&interp, sample, &fitted, &mut targets);
        }
        if i == fitting {
            for t in targets.iter_mut() {
                t.fitted(&methods);
            }
        }
        let base = interp.values(sample)?;
        let float = measured
            .iter()
            .map(|t| base.get(t.0).cloned().flatten())
            .collect::<Vec<_>>();
        let (base, float, measured) = (&base, &float, &measured);
        let step = |target: &mut Target| target.add(&interp, base, measured, float, ty);
        if opts.threads == 1 {
            targets.iter_mut().try_for_each(step)
        } else {
            pool.install(|| targets.par_iter_mut().try_for_each(step))
        }
    })?;
    for t in &targets {
        let best = t.best();
        let range = best
            .and_then(|m| methods.get(m))
            .and_then(|&m| histograms.get(&t.tensor).and_then(|h| h.range(m)));
        if let Some(r) = range {
            chosen.insert(t.tensor, r);
        }
    }
    Ok(chosen)
}

/// Where the error is measured: each model output, or the input of the SOFTMAX that makes it. Softmax
/// outputs turn a small change of a sample near a decision boundary into a large one, so a few samples
/// would decide every tensor's range; the logits weigh every sample alike.
fn measured_tensors(graph: &Graph) -> Vec<TensorId> {
    let producers = graph.producers();
    graph
        .outputs()
        .into_iter()
        .map(|t| {
            producers
                .get(t.0)
                .copied()
                .flatten()
                .filter(|&op| graph.op_code(op) == fb::BuiltinOperator::SOFTMAX)
                .and_then(|op| graph.op_inputs(op).first().copied().flatten())
                .unwrap_or(t)
        })
        .collect()
}

/// Adds one fitting sample to the targets' histograms.
fn fit(
    interp: &FloatInterpreter<'_>,
    sample: &[ArrayD<f32>],
    fitted: &HashSet<TensorId>,
    targets: &mut [Target],
) -> Result<(), CalibError> {
    let mut seen: BTreeMap<TensorId, Value> = BTreeMap::new();
    interp.observe_sample(sample, &mut |t, v| {
        if fitted.contains(&t) {
            seen.insert(t, v.clone());
        }
    })?;
    for t in targets.iter_mut() {
        if let Some(Value::F32(x)) = seen.get(&t.tensor) {
            t.fit
                .observe(x.as_standard_layout().as_slice().unwrap_or_default());
        }
    }
    Ok(())
}

/// The main-subgraph tensors whose range the mode uses and on which the methods disagree.
fn targets(
    graph: &Graph,
    histograms: &Histograms,
    methods: &[RangeMethod],
    ty: ActivationType,
) -> Vec<Target> {
    let rules = RuleRegistry::with_all_rules();
    let producers = graph.producers();
    let outputs = graph.outputs().len();
    histograms
        .iter()
        .filter(|(t, h)| {
            t.0 < producers.len()
                && range_used(graph, &rules, producers[t.0], ty)
                && distinct_ranges(h, methods).is_some_and(|(r, _)| r.len() > 1)
        })
        .map(|(&tensor, _)| Target {
            tensor,
            energy: vec![0.0; outputs],
            error: vec![Vec::new(); outputs],
            fit: Histogram::new(),
            ranges: Vec::new(),
            slot: Vec::new(),
        })
        .collect()
}

/// `x` quantized to the grid of `range` for activations of type `ty` and back.
fn fake_quantize(
    x: &ArrayD<f32>,
    (lo, hi): (f32, f32),
    ty: ActivationType,
) -> Result<ArrayD<f32>, CalibError> {
    let params = ty
        .params_for_range(lo, hi)
        .map_err(|e| CalibError::Model(format!("candidate range: {e}")))?;
    let (scale, zero) = (params.scale()[0], params.zero_point()[0] as f32);
    let (qmin, qmax) = ty.range();
    let (qmin, qmax) = (qmin as f32 - zero, qmax as f32 - zero);
    Ok(x.mapv(|v| (v / scale).round().clamp(qmin, qmax) * scale))
}

/// Sum of squares, and of squared differences, of `q` against `f` (`None` when the shapes differ).
fn squared_error(q: &Value, f: &Value) -> Option<(f64, f64)> {
    let (Value::F32(q), Value::F32(f)) = (q, f) else {
        return None;
    };
    if q.shape() != f.shape() {
        return None;
    }
    let (mut err, mut energy) = (0.0f64, 0.0f64);
    for (&a, &b) in q.iter().zip(f.iter()) {
        let (a, b) = (f64::from(a), f64::from(b));
        err += (a - b) * (a - b);
        energy += b * b;
    }
    Some((err, energy))
}

impl Target {
    /// Fixes the ranges to measure: those `methods` select from the fitting samples' histogram.
    fn fitted(&mut self, methods: &[RangeMethod]) {
        if let Some((ranges, slot)) = distinct_ranges(&self.fit, methods) {
            self.error = vec![vec![0.0; ranges.len()]; self.energy.len()];
            (self.ranges, self.slot) = (ranges, slot);
        }
    }

    /// Adds one sample's errors at the `measured` tensors (`float`, as `base` gives them), every range in
    /// turn.
    fn add(
        &mut self,
        interp: &FloatInterpreter<'_>,
        base: &[Option<Value>],
        measured: &[TensorId],
        float: &[Option<Value>],
        ty: ActivationType,
    ) -> Result<(), CalibError> {
        let Some(Some(Value::F32(x))) = base.get(self.tensor.0) else {
            return Ok(());
        };
        for (k, &range) in self.ranges.iter().enumerate() {
            let q = Value::F32(fake_quantize(x, range, ty)?);
            let outs = interp.rerun_from(base, self.tensor, q, measured)?;
            for (j, (o, f)) in outs.iter().zip(float).enumerate() {
                let Some(f) = f else { continue };
                if let Some((err, energy)) = squared_error(o, f) {
                    self.error[j][k] += err;
                    if k == 0 {
                        self.energy[j] += energy;
                    }
                }
            }
        }
        Ok(())
    }

    /// The method whose range has the least relative error over the sinks; the first (minmax) on ties;
    /// `None` before anything was measured.
    fn best(&self) -> Option<usize> {
        let score = |k: usize| -> f64 {
            self.error
                .iter()
                .zip(&self.energy)
                .filter(|(_, &e)| e > 0.0)
                .map(|(err, e)| err.get(k).copied().unwrap_or(0.0) / e)
                .sum()
        };
        let scores: Vec<f64> = (0..self.ranges.len()).map(score).collect();
        let mut best: Option<(f64, usize)> = None;
        for (m, &k) in self.slot.iter().enumerate() {
            let s = scores[k];
            if best.is_none_or(|(b, _)| s < b) {
                best = Some((s, m));
            }
        }
        best.map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn fake_quantization_clips_to_the_range_and_rounds_to_its_grid() {
        let x = ArrayD::from_shape_vec(IxDyn(&[4]), vec![-1.0f32, 0.0, 0.3, 9.0]).unwrap();
        let q = fake_quantize(&x, (-1.0, 1.55), ActivationType::Int8).unwrap();
        let step = 2.55f32 / 255.0;
        assert!((q[0] + 1.0).abs() <= step / 2.0 + 1e-6, "{q}");
        assert_eq!(q[1], 0.0);
        assert!((q[2] - 0.3).abs() <= step / 2.0 + 1e-6, "{q}");
        assert!((q[3] - 1.55).abs() <= step, "clipped: {q}");
        let q16 = fake_quantize(&x, (-1.0, 2.0), ActivationType::Int16).unwrap();
        assert!((q16[2] - 0.3).abs() <= 2.0 / 32767.0, "{q16}");
        assert!((q16[3] - 2.0).abs() <= 1e-6, "{q16}");
    }

    #[test]
    fn ties_keep_minmax_and_the_least_relative_error_wins() {
        let mut t = Target {
            tensor: TensorId(0),
            fit: Histogram::new(),
            ranges: vec![(0.0, 8.0), (0.0, 4.0), (0.0, 2.0)],
            // Methods 0 and 1 select the first range, 2 the second, 3 the third.
            slot: vec![0, 0, 1, 2],
            error: vec![vec![1.0, 1.0, 0.5], vec![2.0, 2.0, 4.0]],
            energy: vec![10.0, 100.0],
        };
        // Scores: 0.12, 0.12, 0.09.
        assert_eq!(t.best(), Some(3));
        t.error[1][2] = 8.0; // 0.13
        assert_eq!(t.best(), Some(0));
    }
}
