//! Second moments of what each weighted op multiplies its weights with: `H = sum x x^T` over the rows its
//! weights see (an im2col row of a convolution, one channel's taps of a depthwise convolution, an input row
//! of a fully connected op), over the calibration samples. Adaptive weight rounding
//! ([`crate::quantize::rounding`]) minimises each op's output error `(W - Q) H (W - Q)^T` with them.
//!
//! Each op's matrix sums its rows sample by sample, in sample order, whatever the thread count (samples run
//! side by side and the ops are spread over the workers, never one op's sum), so the result is the same on
//! any number of threads. The same pass sums the mean input rows bias correction uses and keeps the values
//! of the output heads ([`super::heads`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use ndarray::{ArrayD, ArrayView2};
use rayon::prelude::*;

use super::calibrator::{registry, thread_pool};
use super::ops::conv::im2col;
use super::ops::window::Window;
use super::vector::wide_vectors;
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
    /// Rows not yet in `gram` (fewer than [`BLOCK_ROWS`]).
    pending: Vec<f32>,
    /// Whether to sum the second moments.
    grams: bool,
    /// The row sums, when wanted.
    sum: Option<RowSum>,
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
        pending: Vec::new(),
        grams: true,
        sum: None,
    })
}

/// What [`collect_moments`] gathers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moments {
    /// The input second moments of every weighted op (adaptive rounding).
    pub grams: bool,
    /// The input row sums of every weighted op (bias correction).
    pub row_sums: bool,
    /// Tensors whose values are kept, every sample's after the one before.
    pub capture: Vec<TensorId>,
    /// At most this many values kept per captured tensor: whole samples, the first ones (0: no limit).
    pub capture_limit: usize,
}

/// What [`collect_moments`] gathered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// Second moments, when asked for.
    pub grams: Grams,
    /// Row sums, when asked for.
    pub row_sums: RowSums,
    /// The values of each captured tensor (float ones), in sample order.
    pub captured: BTreeMap<TensorId, Vec<f32>>,
}

/// The second moments and/or row sums of every weighted op and the values of `wanted.capture`, from one pass
/// of the float model over `samples`. Each op's sums take its rows sample after sample, so they are the same
/// on any thread count; the float run of the next sample overlaps the sums of the one before.
pub fn collect_moments(
    graph: &Graph,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Vec<ArrayD<f32>>>, String>,
    threads: usize,
    wanted: &Moments,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Gathered, CalibError> {
    let mut targets = if wanted.grams || wanted.row_sums {
        targets(graph)
    } else {
        Vec::new()
    };
    if targets.is_empty() && wanted.capture.is_empty() {
        return Ok(Gathered::default());
    }
    for t in &mut targets {
        t.grams = wanted.grams;
        if wanted.row_sums {
            t.sum = Some(RowSum {
                sums: vec![0.0; t.dim * t.channels],
                rows: 0,
            });
        }
    }
    let interp = FloatInterpreter::new(graph, registry())?;
    let pool = thread_pool(threads)?;
    let mut seen_ids: HashSet<TensorId> = targets.iter().map(|t| t.input).collect();
    seen_ids.extend(wanted.capture.iter().copied());
    let observe = |sample: &[ArrayD<f32>]| -> Result<HashMap<TensorId, ArrayD<f32>>, CalibError> {
        let mut seen: HashMap<TensorId, ArrayD<f32>> = HashMap::new();
        interp.observe_sample(sample, &mut |t, v| {
            if let (true, Value::F32(a)) = (seen_ids.contains(&t), v) {
                seen.entry(t).or_insert_with(|| a.clone());
            }
        })?;
        Ok(seen)
    };
    let mut captured: BTreeMap<TensorId, Vec<f32>> = BTreeMap::new();
    // A block's samples in order: each op takes them one after the other (the ops side by side).
    let mut add = |block: &[HashMap<TensorId, ArrayD<f32>>]| -> Result<(), CalibError> {
        for seen in block {
            for t in &wanted.capture {
                if let Some(x) = seen.get(t) {
                    let kept = captured.entry(*t).or_default();
                    if wanted.capture_limit == 0 || kept.len() + x.len() <= wanted.capture_limit {
                        kept.extend(x.iter().copied());
                    }
                }
            }
        }
        targets.par_iter_mut().try_for_each(|t| {
            let input = t.input;
            block
                .iter()
                .filter_map(|seen| seen.get(&input))
                .try_for_each(|x| t.add(x))
        })
    };
    // Blocks of samples run the float model side by side, while the sums take the block before, sample
    // after sample. The first block has one sample per thread; later ones hold what the kept values of 16 MiB
    // allow (at most 32 samples), so a small model meets the workers rarely and a large one stays in memory.
    let mut block = threads.max(1);
    let mut previous: Vec<HashMap<TensorId, ArrayD<f32>>> = Vec::new();
    let mut done = 0usize;
    loop {
        if cancelled() {
            return Err(CalibError::Cancelled);
        }
        let batch = samples(block).map_err(|message| CalibError::Data {
            sample: Some(done),
            message,
        })?;
        let (seen, added) = pool.install(|| {
            rayon::join(
                || {
                    // In sample order: the first failing sample is the one reported.
                    let results: Vec<_> = batch.par_iter().map(|sample| observe(sample)).collect();
                    results.into_iter().collect::<Result<Vec<_>, _>>()
                },
                || add(&previous),
            )
        });
        added?;
        previous = seen?;
        if batch.is_empty() {
            break;
        }
        if done == 0 {
            let bytes: usize = previous
                .iter()
                .flat_map(|seen| seen.values())
                .map(|a| a.len() * std::mem::size_of::<f32>())
                .sum::<usize>()
                / previous.len().max(1);
            block = (KEPT_BYTES / bytes.max(1)).clamp(block, 32);
        }
        done += batch.len();
    }
    let mut gathered = Gathered::default();
    for t in targets {
        let output = t.output;
        let (gram, sum) = t.finish();
        if let Some(g) = gram {
            gathered.grams.insert(output, g);
        }
        if let Some(s) = sum.filter(|s| s.rows > 0) {
            gathered.row_sums.insert(output, s);
        }
    }
    gathered.captured = captured;
    Ok(gathered)
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

/// Float values a moments pass keeps for a block of samples, about (see [`collect_moments`]).
const KEPT_BYTES: usize = 16 << 20;

/// Rows of one matrix gathered before their product joins the f64 sums: one product per block of rows
/// instead of one per sample (a dense layer sees one row per sample), in sample order, so the sums do not
/// depend on how samples were batched or spread over threads.
const BLOCK_ROWS: usize = 256;

impl Target {
    /// Adds the rows of one input value to the op's second moments and row sums.
    fn add(&mut self, x: &ArrayD<f32>) -> Result<(), CalibError> {
        let depthwise = matches!(self.geometry, Geometry::Depthwise { .. });
        let (dim, channels) = (self.dim, self.channels);
        let mut gram = self.grams.then(|| {
            self.gram.get_or_insert_with(|| Gram {
                dim,
                matrices: vec![vec![0.0; dim * dim]; channels],
                rows: 0,
                depthwise,
            })
        });
        let (pending, sum) = (&mut self.pending, &mut self.sum);
        for_rows(self.geometry, dim, x, &mut |rows, k| {
            if let Some(sum) = sum.as_mut().filter(|s| s.sums.len() == k) {
                for row in rows.chunks_exact(k) {
                    add_widened(&mut sum.sums, row);
                }
                sum.rows += (rows.len() / k) as u64;
            }
            let Some(gram) = gram.as_mut() else { return };
            if depthwise {
                gram.add_depthwise(rows, dim, channels);
            } else {
                pending.extend_from_slice(rows);
                if pending.len() >= BLOCK_ROWS * k {
                    gram.add_rows(pending, k);
                    pending.clear();
                }
            }
        })
    }

    /// The second moments (with the rows still pending) and the row sums.
    fn finish(mut self) -> (Option<Gram>, Option<RowSum>) {
        let mut gram = self.gram.take();
        if let (Some(g), false) = (&mut gram, self.pending.is_empty()) {
            g.add_rows(&self.pending, self.dim);
        }
        (gram, self.sum)
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
            // One buffer per thread, reused from op to op and sample to sample (im2col writes every
            // element); taken out while in use, so a nested call on the same thread gets its own.
            thread_local! {
                static COLS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
            }
            let mut cols = COLS.take();
            cols.resize(rows * k, 0.0);
            for image in data.chunks_exact(h * w * c).take(n) {
                im2col(image, [h, w, c], 0, c, &win_y, &win_x, &mut cols);
                f(&cols, k);
            }
            COLS.set(cols);
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

impl Gram {
    /// Adds `x^T x` of rows of length `dim` (one matrix).
    fn add_rows(&mut self, rows: &[f32], dim: usize) {
        let count = rows.len() / dim;
        let Ok(x) = ArrayView2::from_shape((count, dim), &rows[..count * dim]) else {
            return;
        };
        let product = x.t().dot(&x);
        if let (Some(m), Some(product)) = (self.matrices.first_mut(), product.as_slice()) {
            for (acc, v) in m.iter_mut().zip(product) {
                *acc += f64::from(*v);
            }
        }
        self.rows += count as u64;
    }

    /// Adds each channel's `x^T x` over its `taps` of every im2col row (`taps * channels` long, tap-major).
    fn add_depthwise(&mut self, cols: &[f32], taps: usize, channels: usize) {
        let k = taps * channels;
        // One image's rows (at most its output positions) sum in f32 lanes, then join the f64 matrices.
        let mut sums = vec![0.0f32; channels * taps * taps];
        tap_products(cols, taps, channels, &mut sums);
        for (ch, m) in self.matrices.iter_mut().enumerate() {
            for t1 in 0..taps {
                for t2 in t1..taps {
                    let v = f64::from(sums[(t1 * taps + t2) * channels + ch]);
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

wide_vectors! {
    /// `sums[(t1 * taps + t2) * channels + c] += row[t1 * channels + c] * row[t2 * channels + c]` over the
    /// rows of `cols` (`taps * channels` long), for `t2 >= t1`.
    fn tap_products(cols: &[f32], taps: usize, channels: usize, sums: &mut [f32]) => tap_products_body;
}

#[inline(always)]
fn tap_products_body(cols: &[f32], taps: usize, channels: usize, sums: &mut [f32]) {
    let k = taps * channels;
    // Blocks of rows stay in cache while each tap pair's channel sums (one short slice) take them in.
    for block in cols.chunks(k * 16) {
        for t1 in 0..taps {
            for t2 in t1..taps {
                let dst = &mut sums[(t1 * taps + t2) * channels..][..channels];
                for row in block.chunks_exact(k) {
                    let a = &row[t1 * channels..][..channels];
                    let b = &row[t2 * channels..][..channels];
                    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                        *d += x * y;
                    }
                }
            }
        }
    }
}

wide_vectors! {
    /// `sums[i] += row[i]` in f64.
    fn add_widened(sums: &mut [f64], row: &[f32]) => add_widened_body;
}

#[inline(always)]
fn add_widened_body(sums: &mut [f64], row: &[f32]) {
    for (s, &v) in sums.iter_mut().zip(row) {
        *s += f64::from(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::ops::testing::{one_op_graph, with_float_input, Arg};
    use ndarray::IxDyn;

    /// `x [1, 3] -> FULLY_CONNECTED (2 outputs) -> y`, `x` a model input.
    fn dense_model() -> Graph {
        let g = one_op_graph(
            fb::BuiltinOperator::FULLY_CONNECTED,
            fb::BuiltinOptionsT::FullyConnectedOptions(Box::default()),
            vec![
                Arg::Omitted,
                Arg::f32(&[2, 3], vec![1.0, -2.0, 0.5, 0.25, 1.5, -1.0]),
            ],
            &[fb::TensorType::FLOAT32],
        );
        with_float_input(g, &[1, 3], 0)
    }

    fn samples(n: usize) -> impl FnMut(usize) -> Result<Vec<Vec<ArrayD<f32>>>, String> {
        let mut next = 0;
        move |k| {
            let batch = (next..n.min(next + k))
                .map(|i| {
                    let v: Vec<f32> = (0..3).map(|j| (i * 3 + j) as f32 * 0.37 - 2.0).collect();
                    vec![ArrayD::from_shape_vec(IxDyn(&[1, 3]), v).expect("shape")]
                })
                .collect::<Vec<_>>();
            next += batch.len();
            Ok(batch)
        }
    }

    #[test]
    fn one_pass_gathers_what_separate_passes_do_and_captures_whole_samples() {
        let g = dense_model();
        let never = || false;
        let n = 300; // more rows than one block of the dense product
        let only = |grams: bool, threads: usize| {
            let wanted = Moments {
                grams,
                row_sums: !grams,
                ..Moments::default()
            };
            collect_moments(&g, &mut samples(n), threads, &wanted, &never).unwrap()
        };
        let (grams, sums) = (only(true, 2).grams, only(false, 1).row_sums);
        let y = TensorId(1);
        let wanted = Moments {
            grams: true,
            row_sums: true,
            capture: vec![y],
            capture_limit: 5,
        };
        let both = collect_moments(&g, &mut samples(n), 1, &wanted, &never).unwrap();
        assert_eq!(both.grams, grams);
        assert_eq!(both.row_sums, sums);
        let gram = &grams[&y];
        assert_eq!((gram.dim, gram.rows), (3, n as u64));
        // The first row's square plus the others: the (0, 0) entry is the sum of x0^2.
        let x0: f64 = (0..n)
            .map(|i| f64::from((i * 3) as f32 * 0.37 - 2.0).powi(2))
            .sum();
        assert!(
            (gram.matrices[0][0] - x0).abs() < 1e-3 * x0,
            "{} {x0}",
            gram.matrices[0][0]
        );
        assert_eq!(sums[&y].rows, n as u64);
        // Two outputs per sample, at most 5 values: the first two samples' outputs, whole.
        let kept = &both.captured[&y];
        assert_eq!(kept.len(), 4);
        let first: Vec<f32> = (0..3).map(|j| j as f32 * 0.37 - 2.0).collect();
        let y0 = first[0] - 2.0 * first[1] + 0.5 * first[2];
        assert_eq!(kept[0], y0);
    }

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
