//! Second moments of what each weighted op multiplies its weights with: `H = sum x x^T` over the rows its
//! weights see (an im2col row of a convolution, one channel's taps of a depthwise convolution, an input row
//! of a fully connected op), over the calibration samples. Adaptive weight rounding
//! ([`crate::quantize::rounding`]) minimises each op's output error `(W - Q) H (W - Q)^T` with them.
//!
//! Each op's matrix sums its rows sample by sample, in sample order, whatever the thread count (the ops of a
//! sample are spread over the workers, never one op's sum), so the result is the same on any number of
//! threads.

use std::collections::{BTreeMap, HashMap, HashSet};

use ndarray::{ArrayD, ArrayView2};
use rayon::prelude::*;

use super::calibrator::{registry, thread_pool};
use super::ops::conv::im2col;
use super::ops::window::Window;
use super::{CalibError, FloatInterpreter, Value};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::fb;

/// Ops whose rows are longer than this keep round-to-nearest: the matrix (and the rounding's cubic cost)
/// would grow past what a build step should spend.
pub const MAX_ROW: usize = 2048;

/// One op's input second moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    /// Length of a row (`kh * kw * in_channels`, the taps of one channel, or the input features).
    pub dim: usize,
    /// Row-major `dim x dim` sums: one matrix, or one per input channel of a depthwise convolution.
    pub matrices: Vec<Vec<f64>>,
    /// Rows summed (per matrix).
    pub rows: u64,
    /// The matrices are per input channel of a depthwise convolution (weights `[1, kh, kw, channels]`).
    pub depthwise: bool,
}

/// The matrices of every weighted op of the main subgraph, keyed by the op's output tensor (stable across
/// the folding and rewriting the modes do, unlike op indices).
pub type Grams = BTreeMap<TensorId, Gram>;

/// How an op's weights meet its input.
#[derive(Debug, Clone, Copy)]
enum Geometry {
    /// CONV_2D (one group): im2col rows of `kh * kw * c`.
    Conv {
        kh: usize,
        kw: usize,
        wy: [i32; 2],
        wx: [i32; 2],
        padding: fb::Padding,
    },
    /// DEPTHWISE_CONV_2D: per input channel, rows of its `kh * kw` taps.
    Depthwise {
        kh: usize,
        kw: usize,
        wy: [i32; 2],
        wx: [i32; 2],
        padding: fb::Padding,
    },
    /// FULLY_CONNECTED: the input's rows of `dim` features.
    Dense,
}

struct Target {
    output: TensorId,
    input: TensorId,
    geometry: Geometry,
    dim: usize,
    channels: usize,
    gram: Option<Gram>,
}

/// The weighted ops of the main subgraph (CONV_2D of one group, DEPTHWISE_CONV_2D, FULLY_CONNECTED) whose
/// rows are at most [`MAX_ROW`] long.
fn targets(graph: &Graph) -> Vec<Target> {
    (0..graph.ops().len())
        .map(OpIndex)
        .filter_map(|op| target(graph, op))
        .filter(|t| t.dim > 0 && t.dim <= MAX_ROW)
        .collect()
}

fn target(graph: &Graph, op: OpIndex) -> Option<Target> {
    let inputs = graph.op_inputs(op);
    let (Some(Some(input)), Some(Some(weights))) = (inputs.first(), inputs.get(1)) else {
        return None;
    };
    let output = *graph.op_outputs(op).first()?;
    let dims = |t: TensorId| -> Option<Vec<usize>> {
        graph
            .shape(t)
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect()
    };
    let (w, x) = (dims(*weights)?, dims(*input)?);
    let options = &graph.op(op).builtin_options;
    let (geometry, dim, channels) = match graph.op_code(op) {
        fb::BuiltinOperator::CONV_2D => {
            let o = options.as_conv_2_doptions()?;
            let [_, kh, kw, c] = w[..] else { return None };
            // A grouped convolution's rows differ per group: left to round-to-nearest.
            if x.get(3) != Some(&c) {
                return None;
            }
            let geometry = Geometry::Conv {
                kh,
                kw,
                wy: [o.stride_h, o.dilation_h_factor],
                wx: [o.stride_w, o.dilation_w_factor],
                padding: o.padding,
            };
            (geometry, kh * kw * c, 1)
        }
        fb::BuiltinOperator::DEPTHWISE_CONV_2D => {
            let o = options.as_depthwise_conv_2_doptions()?;
            let [1, kh, kw, _] = w[..] else { return None };
            let c = *x.get(3)?;
            let geometry = Geometry::Depthwise {
                kh,
                kw,
                wy: [o.stride_h, o.dilation_h_factor],
                wx: [o.stride_w, o.dilation_w_factor],
                padding: o.padding,
            };
            (geometry, kh * kw, c)
        }
        fb::BuiltinOperator::FULLY_CONNECTED => {
            let [_, features] = w[..] else { return None };
            (Geometry::Dense, features, 1)
        }
        _ => return None,
    };
    Some(Target {
        output,
        input: *input,
        geometry,
        dim,
        channels,
        gram: None,
    })
}

/// Streams `samples` (as [`super::calibrate`] does) through the float model and sums the input second
/// moments of every weighted op. `threads` as [`super::CalibrateOptions::threads`].
pub fn collect_grams(
    graph: &Graph,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Vec<ArrayD<f32>>>, String>,
    threads: usize,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Grams, CalibError> {
    let mut targets = targets(graph);
    if targets.is_empty() {
        return Ok(Grams::new());
    }
    let interp = FloatInterpreter::new(graph, registry())?;
    let pool = thread_pool(threads)?;
    let wanted: HashSet<TensorId> = targets.iter().map(|t| t.input).collect();
    each_sample(samples, cancelled, |sample| {
        let mut seen: HashMap<TensorId, ArrayD<f32>> = HashMap::new();
        interp.observe_sample(sample, &mut |t, v| {
            if let (true, Value::F32(a)) = (wanted.contains(&t), v) {
                seen.entry(t).or_insert_with(|| a.clone());
            }
        })?;
        let step = |t: &mut Target| -> Result<(), CalibError> {
            match seen.get(&t.input) {
                Some(x) => t.add(x),
                None => Ok(()),
            }
        };
        pool.install(|| targets.par_iter_mut().try_for_each(step))
    })?;
    Ok(targets
        .into_iter()
        .filter_map(|t| t.gram.map(|g| (t.output, g)))
        .collect())
}

/// Calls `f` on every sample of `samples` (read 32 at a time), in order, until they run out, `cancelled`
/// says so, or `f` fails.
pub(super) fn each_sample(
    samples: &mut dyn FnMut(usize) -> Result<Vec<Vec<ArrayD<f32>>>, String>,
    cancelled: &(dyn Fn() -> bool + Sync),
    mut f: impl FnMut(&[ArrayD<f32>]) -> Result<(), CalibError>,
) -> Result<(), CalibError> {
    let mut done = 0usize;
    loop {
        let batch = samples(32).map_err(|message| CalibError::Data {
            sample: Some(done),
            message,
        })?;
        if batch.is_empty() {
            return Ok(());
        }
        for sample in &batch {
            if cancelled() {
                return Err(CalibError::Cancelled);
            }
            f(sample)?;
            done += 1;
        }
    }
}

/// Streams `samples` through the float model and sums the input rows of every weighted op (bias
/// correction's float side), sample after sample.
pub fn collect_row_sums(
    graph: &Graph,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Vec<ArrayD<f32>>>, String>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<RowSums, CalibError> {
    let mut collector = RowSumCollector::new(graph);
    let interp = FloatInterpreter::new(graph, registry())?;
    each_sample(samples, cancelled, |sample| {
        let mut failed = None;
        interp.observe_sample(sample, &mut |t, v| {
            if let (true, Value::F32(a), None) = (collector.wants(t), v, &failed) {
                failed = collector.add(t, a).err();
            }
        })?;
        failed.map_or(Ok(()), Err)
    })?;
    Ok(collector.finish())
}

impl Target {
    /// Adds the rows of one input value to the op's second moments.
    fn add(&mut self, x: &ArrayD<f32>) -> Result<(), CalibError> {
        let depthwise = matches!(self.geometry, Geometry::Depthwise { .. });
        let (dim, channels) = (self.dim, self.channels);
        let gram = self.gram.get_or_insert_with(|| Gram {
            dim,
            matrices: vec![vec![0.0; dim * dim]; channels],
            rows: 0,
            depthwise,
        });
        for_rows(self.geometry, dim, x, &mut |rows, k| {
            if depthwise {
                gram.add_depthwise(rows, dim, channels);
            } else {
                gram.add_rows(rows, k);
            }
        })
    }
}

/// Calls `f` with the rows an op of `geometry` multiplies its weights with, in blocks (`rows`, row length):
/// input rows of `dim` features (dense), or the im2col rows of each image (`kh * kw * c`, tap-major).
fn for_rows(
    geometry: Geometry,
    dim: usize,
    x: &ArrayD<f32>,
    f: &mut dyn FnMut(&[f32], usize),
) -> Result<(), CalibError> {
    let x = x.as_standard_layout();
    let data = x.as_slice().unwrap_or_default();
    let shape = x.shape().to_vec();
    let bad = |what: String| CalibError::Model(format!("weighted op input: {what}"));
    match geometry {
        Geometry::Dense => {
            if dim == 0 || data.len() % dim != 0 {
                return Err(bad(format!("input {shape:?} is not rows of {dim}")));
            }
            f(data, dim);
        }
        Geometry::Conv {
            kh,
            kw,
            wy,
            wx,
            padding,
        }
        | Geometry::Depthwise {
            kh,
            kw,
            wy,
            wx,
            padding,
        } => {
            let [n, h, w, c] = shape[..] else {
                return Err(bad(format!("input {shape:?} is not NHWC")));
            };
            let window = |size, taps, [stride, dilation]: [i32; 2]| {
                Window::new(padding, size, taps, stride, dilation).map_err(|e| bad(e.to_string()))
            };
            let (win_y, win_x) = (window(h, kh, wy)?, window(w, kw, wx)?);
            let rows = win_y.out * win_x.out;
            let k = kh * kw * c;
            let mut cols = vec![0.0f32; rows * k];
            for image in data.chunks_exact(h * w * c).take(n) {
                im2col(image, [h, w, c], 0, c, &win_y, &win_x, &mut cols);
                f(&cols, k);
            }
        }
    }
    Ok(())
}

/// The sum of the rows a weighted op multiplied its weights with (a dense input row, an im2col row of a
/// convolution, tap-major for a depthwise one) over the samples: `sums / rows` is the mean row, what
/// bias correction ([`crate::quantize::bias`]) needs to turn a weight or input error into the output shift
/// it causes per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSum {
    /// Sum of each row position, in f64.
    pub sums: Vec<f64>,
    /// Rows summed.
    pub rows: u64,
}

impl RowSum {
    /// The mean row (zeros before any row).
    pub fn mean(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        self.sums.iter().map(|s| s / n).collect()
    }
}

/// The row sums of every weighted op, keyed by the op's output tensor like [`Grams`].
pub type RowSums = BTreeMap<TensorId, RowSum>;

/// Sums the rows of every weighted op (as [`collect_grams`] finds them) of one graph, from whichever
/// interpreter runs it: feed it every tensor value a sample produces ([`RowSumCollector::wants`] says which),
/// samples in order, one after the other, so the sums are the same on any thread count.
pub struct RowSumCollector {
    targets: Vec<Target>,
    by_input: HashMap<TensorId, Vec<usize>>,
    sums: Vec<RowSum>,
}

impl RowSumCollector {
    /// The weighted ops of `graph`'s main subgraph.
    pub fn new(graph: &Graph) -> Self {
        let targets = targets(graph);
        let mut by_input: HashMap<TensorId, Vec<usize>> = HashMap::new();
        for (i, t) in targets.iter().enumerate() {
            by_input.entry(t.input).or_default().push(i);
        }
        let sums = targets
            .iter()
            .map(|t| RowSum {
                sums: vec![0.0; t.dim * t.channels],
                rows: 0,
            })
            .collect();
        RowSumCollector {
            targets,
            by_input,
            sums,
        }
    }

    /// Whether tensor `t` is the input of a weighted op.
    pub fn wants(&self, t: TensorId) -> bool {
        self.by_input.contains_key(&t)
    }

    /// Adds the rows of tensor `t`'s value (real numbers) to every op that reads it.
    pub fn add(&mut self, t: TensorId, x: &ArrayD<f32>) -> Result<(), CalibError> {
        let Some(ops) = self.by_input.get(&t) else {
            return Ok(());
        };
        for &i in ops {
            let (target, sum) = (&self.targets[i], &mut self.sums[i]);
            for_rows(target.geometry, target.dim, x, &mut |rows, k| {
                if k != sum.sums.len() {
                    return;
                }
                for row in rows.chunks_exact(k) {
                    for (s, &v) in sum.sums.iter_mut().zip(row) {
                        *s += f64::from(v);
                    }
                }
                sum.rows += (rows.len() / k) as u64;
            })?;
        }
        Ok(())
    }

    /// The sums of every op that saw rows, keyed by its output tensor.
    pub fn finish(self) -> RowSums {
        self.targets
            .iter()
            .zip(self.sums)
            .filter(|(_, s)| s.rows > 0)
            .map(|(t, s)| (t.output, s))
            .collect()
    }
}

impl Gram {
    /// Adds `x^T x` of rows of length `dim` (one matrix).
    fn add_rows(&mut self, rows: &[f32], dim: usize) {
        let count = rows.len() / dim;
        let Ok(x) = ArrayView2::from_shape((count, dim), &rows[..count * dim]) else {
            return;
        };
        let product = x.t().dot(&x);
        if let Some(m) = self.matrices.first_mut() {
            for (acc, v) in m.iter_mut().zip(product.iter()) {
                *acc += f64::from(*v);
            }
        }
        self.rows += count as u64;
    }

    /// Adds each channel's `x^T x` over its `taps` of every im2col row (`taps * channels` long, tap-major).
    fn add_depthwise(&mut self, cols: &[f32], taps: usize, channels: usize) {
        let k = taps * channels;
        let mut sums = vec![0.0f64; channels * taps * taps];
        for row in cols.chunks_exact(k) {
            for t1 in 0..taps {
                let a = &row[t1 * channels..][..channels];
                for t2 in t1..taps {
                    let b = &row[t2 * channels..][..channels];
                    let dst = &mut sums[(t1 * taps + t2) * channels..][..channels];
                    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                        *d += f64::from(x) * f64::from(y);
                    }
                }
            }
        }
        for (ch, m) in self.matrices.iter_mut().enumerate() {
            for t1 in 0..taps {
                for t2 in t1..taps {
                    let v = sums[(t1 * taps + t2) * channels + ch];
                    m[t1 * taps + t2] += v;
                    if t1 != t2 {
                        m[t2 * taps + t1] += v;
                    }
                }
            }
        }
        self.rows += (cols.len() / k.max(1)) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_rows_sum_outer_products() {
        let mut g = Gram {
            dim: 2,
            matrices: vec![vec![0.0; 4]],
            rows: 0,
            depthwise: false,
        };
        g.add_rows(&[1.0, 2.0, 3.0, -1.0], 2);
        assert_eq!(g.matrices[0], vec![10.0, -1.0, -1.0, 5.0]);
        assert_eq!(g.rows, 2);
    }

    #[test]
    fn depthwise_channels_get_their_own_taps() {
        // Two taps, two channels: rows are [tap0 ch0, tap0 ch1, tap1 ch0, tap1 ch1].
        let mut g = Gram {
            dim: 2,
            matrices: vec![vec![0.0; 4]; 2],
            rows: 0,
            depthwise: true,
        };
        g.add_depthwise(&[1.0, 10.0, 2.0, 20.0], 2, 2);
        assert_eq!(g.matrices[0], vec![1.0, 2.0, 2.0, 4.0]);
        assert_eq!(g.matrices[1], vec![100.0, 200.0, 200.0, 400.0]);
    }
}
