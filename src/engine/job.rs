//! Running one job: read, calibrate, quantize, check, write.

use super::artifact::{write_atomically, Artifact};
use super::report::Report;
use super::{CancellationToken, Job};
use crate::calibrate::{self, CalibrateOptions};
use crate::dataset::{self, InputSpec};
use crate::eval::{self, target::TargetOutcome, EvalData, EvalOptions};
use crate::graph::Graph;
use crate::quantize::{self, Ranges};
use crate::tflite;
use std::path::PathBuf;
use std::time::Instant;

/// Why a job failed. Every variant names the job's files in the user's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The source is not a readable TFLite model.
    #[error("{}: {source}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        source: tflite::ModelError,
    },
    /// The source is a Keras file litequant cannot lower.
    #[cfg(feature = "keras")]
    #[error(transparent)]
    Keras(#[from] crate::keras::KerasError),
    /// A Keras source, in a litequant built without its `keras` feature (the HDF5 reader).
    #[cfg(not(feature = "keras"))]
    #[error("{}: Keras sources need litequant's `keras` feature (in a build script: `litequant-build = {{ ..., features = [\"keras\"] }}`), or a float .tflite written once by `litequant convert`", .0.display())]
    KerasFeatureOff(PathBuf),
    /// The integer modes need a dataset and the model has none.
    #[error("model `{model}`: mode {mode} needs a calibration dataset (set `dataset = \"...\"`)")]
    NoDataset {
        /// The model name.
        model: String,
        /// The mode.
        mode: quantize::Mode,
    },
    /// The dataset does not fit the model or cannot be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// The float interpreter failed (unsupported op, bad data).
    #[error(transparent)]
    Calibration(#[from] calibrate::CalibError),
    /// The mode cannot be applied as asked.
    #[error("model `{model}`, mode {mode}: {source}")]
    Quantize {
        /// The model name.
        model: String,
        /// The mode.
        mode: quantize::Mode,
        /// Why.
        source: quantize::QuantError,
    },
    /// The evaluation dataset cannot be read, or a model cannot run on it.
    #[error("{job}: evaluation: {source}")]
    Eval {
        /// `model.mode`.
        job: String,
        /// Why.
        source: Box<crate::eval::EvalError>,
    },
    /// The accuracy target cannot be met.
    #[error("{job}: {message}")]
    TargetMissed {
        /// `model.mode`.
        job: String,
        /// What was reached and why no more can be done.
        message: String,
    },
    /// The job was cancelled before it finished; nothing was written.
    #[error("cancelled")]
    Cancelled,
    /// `quantize.lock` cannot be read.
    #[error(transparent)]
    Lock(#[from] super::lockfile::LockError),
    /// An entry of `quantize.lock` cannot be trusted (a range not finite, of a tensor the model lacks, listed
    /// twice, edited by hand, or missing), in a locked build.
    #[error("{}:{line}: {message}; run `litequant build` (without --locked) to recalibrate it and rewrite the entry, then commit the lock", lock.display())]
    LockEntry {
        /// The lock file.
        lock: PathBuf,
        /// The 1-based line of the entry or of its offending range.
        line: usize,
        /// What is wrong, naming the entry (`model.mode`).
        message: String,
    },
    /// A locked build and no lock file.
    #[error("{}: no lock file; run `litequant build` once to write it (a locked build rebuilds every artifact from it)", path.display())]
    NoLock {
        /// Where the lock was expected.
        path: PathBuf,
    },
    /// A locked build, and the job's inputs, settings or format version differ from what the lock records.
    #[error("{job} drifted from {}:\n{}\n  refresh the lock with `litequant build` (without --locked) and commit it", lock.display(), bullet_list(drift))]
    Drift {
        /// `model.mode`.
        job: String,
        /// The lock file.
        lock: PathBuf,
        /// What drifted, one line each, naming the file or setting.
        drift: Vec<String>,
    },
}

fn bullet_list(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  - {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl JobError {
    /// Whether the failure comes from bad input (exit code 2 in the CLI) rather than from what was asked.
    pub fn is_bad_input(&self) -> bool {
        match self {
            JobError::Eval { source, .. } => matches!(**source, crate::eval::EvalError::Data(_)),
            #[cfg(feature = "keras")]
            JobError::Keras(_) => true,
            #[cfg(not(feature = "keras"))]
            JobError::KerasFeatureOff(_) => true,
            _ => matches!(
                self,
                JobError::Io { .. }
                    | JobError::Model { .. }
                    | JobError::Dataset(_)
                    | JobError::Lock(_)
                    | JobError::LockEntry { .. }
                    | JobError::NoLock { .. }
                    | JobError::Drift { .. }
            ),
        }
    }
}

/// Receives progress of long stages (calibration), e.g. to draw a progress bar.
pub trait Progress: Sync {
    /// Calibration of `job` has run `done` of `total` samples.
    fn calibration(&self, job: &str, done: usize, total: usize);
}

/// How jobs run.
#[derive(Clone, Default)]
pub struct RunOptions<'a> {
    /// Calibration worker threads (0: one per core; bounded to [`MAX_THREADS`](super::MAX_THREADS)).
    pub threads: usize,
    /// Stops the job at the next sample when cancelled.
    pub cancel: CancellationToken,
    /// Progress sink, if any.
    pub progress: Option<&'a dyn Progress>,
}

/// Reads a source model and checks it can be quantized.
pub fn load_source(path: &std::path::Path) -> Result<(Graph, u64), JobError> {
    let bytes = read_file(path)?;
    Ok((parse_source(path, &bytes)?, bytes.len() as u64))
}

/// Reads a `.tflite` file: a regular file only (a FIFO or a device is refused before it is opened), at most
/// the flatbuffer's 2 GiB.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, JobError> {
    use crate::regular_file::{read, MAX_TFLITE_BYTES};
    read(path, MAX_TFLITE_BYTES, "a .tflite model").map_err(|source| JobError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The float graph of a source file's bytes: a `.tflite` model as read, a `.keras` file lowered.
pub fn source_graph(path: &std::path::Path, bytes: &[u8]) -> Result<Graph, JobError> {
    #[cfg(feature = "keras")]
    if crate::keras::is_keras_source(path) {
        return Ok(crate::keras::lower_keras(path, bytes)?);
    }
    #[cfg(not(feature = "keras"))]
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("keras") || e.eq_ignore_ascii_case("h5"))
    {
        return Err(JobError::KerasFeatureOff(path.to_path_buf()));
    }
    Graph::from_bytes(bytes).map_err(|source| JobError::Model {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses source model bytes read from `path` and checks they can be quantized.
pub(crate) fn parse_source(path: &std::path::Path, bytes: &[u8]) -> Result<Graph, JobError> {
    let graph = source_graph(path, bytes)?;
    graph
        .require_float_source()
        .map_err(|source| JobError::Model {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(graph)
}

/// Folds float16-stored constants in every subgraph (tensor ids do not change, op indices do).
fn fold_fp16_everywhere(graph: &mut Graph) {
    for sg in 0..graph.subgraph_count() {
        graph.focus(sg);
        crate::graph::fold_fp16_constants(graph);
    }
    graph.focus(0);
}

/// The source graph a job calibrates and quantizes: as read, or (`equalize = true`) with float16 weights
/// folded and convolution pairs equalized, so calibration sees the ranges the rescaled graph produces.
/// float16 is left as read: rounding to float16 does not depend on a channel's scale, and rescaled weights
/// would only be rounded twice.
fn prepare(job: &Job, mut graph: Graph) -> Graph {
    if job.options.equalize && job.mode != quantize::Mode::Float16 {
        fold_fp16_everywhere(&mut graph);
        crate::graph::equalize_cross_layer(&mut graph);
    }
    graph
}

/// The model inputs as the dataset must feed them.
pub fn input_specs(graph: &Graph) -> Vec<InputSpec> {
    graph
        .inputs()
        .iter()
        .map(|&t| {
            let tensor = graph.tensor(t);
            InputSpec {
                name: graph.tensor_name(t).to_string(),
                shape: tensor.shape.clone().unwrap_or_default(),
                shape_signature: tensor.shape_signature.clone(),
                dtype: tensor.type_,
            }
        })
        .collect()
}

/// What a pass over the job's dataset saw besides its result: the sample count, whether the data is
/// synthetic, and what it was converted from.
type DataPass<T> = (T, usize, bool, Vec<String>);

/// Streams the job's dataset (for the model inputs of `graph`) through `pass`, mapping its failure to the
/// data error that caused it, a cancellation, or a calibration error.
fn over_dataset<T>(
    job: &Job,
    graph: &Graph,
    opts: &RunOptions<'_>,
    pass: impl FnOnce(
        &mut dyn FnMut(usize) -> Result<Vec<Vec<ndarray::ArrayD<f32>>>, String>,
        usize,
    ) -> Result<T, calibrate::CalibError>,
) -> Result<DataPass<T>, JobError> {
    let spec = job.dataset.as_ref().ok_or_else(|| JobError::NoDataset {
        model: job.model.clone(),
        mode: job.mode,
    })?;
    let mut stream = dataset::open(spec, &input_specs(graph))?;
    let total = stream.len();
    let synthetic = stream.is_synthetic();
    let conversions = stream.conversions();
    let mut data_error = None;
    let mut next = |n: usize| match stream.next_batch(n) {
        Ok(batch) => Ok(batch),
        Err(e) => {
            let msg = e.to_string();
            data_error = Some(e);
            Err(msg)
        }
    };
    let result = pass(&mut next, total);
    match result {
        Ok(r) => Ok((r, total, synthetic, conversions)),
        Err(e) => match data_error {
            Some(d) => Err(JobError::Dataset(d)),
            None if opts.cancel.is_cancelled() => Err(JobError::Cancelled),
            None => Err(JobError::Calibration(e)),
        },
    }
}

fn calibrate_job(
    job: &Job,
    graph: &Graph,
    opts: &RunOptions<'_>,
) -> Result<DataPass<Ranges>, JobError> {
    let id = job.id();
    let progress = |done: usize, total: usize| {
        if let Some(p) = opts.progress {
            p.calibration(&id, done, total);
        }
    };
    let cancelled = || opts.cancel.is_cancelled();
    // What the MSE and entropy criteria measure against: the grid this mode quantizes activations to.
    let grid = match job.mode {
        quantize::Mode::Int16x8 => calibrate::QuantGrid::Int16Symmetric,
        _ => calibrate::QuantGrid::Int8Asymmetric,
    };
    use crate::config::Calibration;
    let method = match job.calibration {
        Calibration::Percentile(p) => calibrate::RangeMethod::Percentile(p.value()),
        Calibration::Mse => calibrate::RangeMethod::Mse(grid),
        Calibration::Entropy => calibrate::RangeMethod::Entropy(grid),
        _ => calibrate::RangeMethod::MinMax,
    };
    let copts = CalibrateOptions {
        threads: opts.threads.min(super::MAX_THREADS),
        batch: calibrate::batch_for_graph(graph),
        pass_through_custom_ops: job.options.select_tf_ops,
        method,
    };
    if job.calibration == Calibration::Auto {
        // Histograms, then a second pass over the data to choose each tensor's method.
        let (histograms, n, s, c) = over_dataset(job, graph, opts, |next, total| {
            calibrate::auto::histograms(graph, next, total, &copts, &progress, &cancelled)
        })?;
        let ty = match job.mode {
            quantize::Mode::Int16x8 => quantize::params::ActivationType::Int16,
            _ => quantize::params::ActivationType::Int8,
        };
        let (ranges, ..) = over_dataset(job, graph, opts, |next, total| {
            calibrate::auto::choose(graph, &histograms, ty, next, total, &copts, &cancelled)
        })?;
        return Ok((ranges, n, s, c));
    }
    over_dataset(job, graph, opts, |next, total| {
        calibrate::calibrate(graph, next, total, &copts, &progress, &cancelled)
    })
}

/// What the passes after calibration measure from the dataset: the input second moments of the weighted
/// ops (`adaptive_rounding`), their mean input rows (`bias_correction`) and the values reaching the output
/// heads (`output_aware`), all from one more pass of the float model, on every build, a locked one too (they
/// follow from the dataset the lock pins; the heads' ranges are in the lock).
fn moments_job(
    job: &Job,
    graph: &Graph,
    opts: &RunOptions<'_>,
    wanted: &calibrate::gram::Moments,
) -> Result<calibrate::gram::Gathered, JobError> {
    let cancelled = || opts.cancel.is_cancelled();
    let threads = opts.threads.min(super::MAX_THREADS);
    over_dataset(job, graph, opts, |next, _| {
        calibrate::gram::collect_moments(graph, next, threads, wanted, &cancelled)
    })
    .map(|(gathered, ..)| gathered)
}

/// What a job produced, before anything is written.
pub(crate) struct Produced {
    pub bytes: Vec<u8>,
    pub report: Report,
    /// The ranges the artifact was quantized with (calibrated modes).
    pub ranges: Option<Ranges>,
}

/// Quantizes `source` (the bytes of `job.source`) as the job says. Calibrated modes use `given` ranges when
/// present (from `quantize.lock`) and calibrate on the dataset otherwise.
pub(crate) fn produce(
    job: &Job,
    source: &[u8],
    given: Option<Ranges>,
    opts: &RunOptions<'_>,
    start: Instant,
) -> Result<Produced, JobError> {
    // Calibrated modes record what integer kernels need params for (an LSTM's gate values); `equalize`
    // rescales conv pairs first.
    let parse_for_job = || -> Result<Graph, JobError> {
        let mut g = prepare(job, parse_source(&job.source, source)?);
        if job.mode.needs_calibration() {
            quantize::integer::record_lstm_intermediates(&mut g);
        }
        Ok(g)
    };
    let graph = parse_for_job()?;
    // Every subgraph's ops (a loop body's too).
    let source_ops = graph
        .model
        .subgraphs
        .iter()
        .flatten()
        .map(|sg| sg.operators.as_ref().map_or(0, Vec::len))
        .sum();
    // Only calibrated modes take ranges: a dynamic or float16 job never reports them as from the lock.
    let from_lock = given.is_some() && job.mode.needs_calibration();
    let (ranges, samples, synthetic, mut conversions) = match (job.mode.needs_calibration(), given)
    {
        (false, _) => (None, 0, false, Vec::new()),
        (true, Some(r)) => (Some(r), 0, false, Vec::new()),
        (true, None) => {
            let (r, n, s, c) = calibrate_job(job, &graph, opts)?;
            (Some(r), n, s, c)
        }
    };
    if opts.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let eval_err = |source| JobError::Eval {
        job: job.id(),
        source: Box::new(source),
    };
    // The float source and the evaluation samples, read once for every round of the target search.
    let eval = match &job.eval {
        Some(spec) => {
            let data = EvalData::load(spec, &graph).map_err(eval_err)?;
            // Folded like every quantized graph, so the op indices the target search picks (from this graph's
            // report) are the indices the integer modes see; equalized like them, so each tensor is compared
            // with the float tensor it stands for (the model's outputs are the same function either way).
            let mut float = prepare(job, parse_source(&job.source, source)?);
            fold_fp16_everywhere(&mut float);
            Some((float, data))
        }
        None => None,
    };
    let eval_opts = EvalOptions {
        threads: opts.threads.min(super::MAX_THREADS),
    };
    // The float side of every round's evaluation: each sample's float run is computed once, and each round
    // computes again only what the op it keeps float changes.
    let mut evaluator = match &eval {
        Some((float, data)) => Some(eval::Evaluator::new(
            eval::FloatReference::new(float, data).map_err(eval_err)?,
        )),
        None => None,
    };
    let mut options = job.options.clone();
    let calibrated = job.mode.needs_calibration();
    // Heads whose ranges are chosen here: int8 activations, ranges just calibrated (a lock holds them), the
    // op itself integer (an excluded one computes in float, off the int8 output grid the choice assumes).
    let heads = match (&ranges, from_lock, job.mode) {
        (Some(_), false, quantize::Mode::Int8) if options.output_aware => {
            let excluded = quantize::ExcludeSet::new(&options.exclude);
            let mut heads = calibrate::heads::heads(&graph);
            heads.retain(|h| !excluded.matches(&graph, h.index));
            heads
        }
        _ => Vec::new(),
    };
    let wanted = calibrate::gram::Moments {
        grams: options.adaptive_rounding && calibrated,
        row_sums: options.bias_correction && calibrated,
        capture: heads.iter().map(|h| h.input).collect(),
        capture_limit: calibrate::heads::MAX_VALUES,
    };
    let mut ranges = ranges;
    if wanted.grams || wanted.row_sums || !wanted.capture.is_empty() {
        let gathered = moments_job(job, &graph, opts, &wanted)?;
        if wanted.grams {
            options.grams = Some(std::sync::Arc::new(gathered.grams));
        }
        if wanted.row_sums {
            options.row_sums = Some(std::sync::Arc::new(gathered.row_sums));
        }
        if let Some(r) = &mut ranges {
            calibrate::heads::refine(r, &heads, &gathered.captured);
        }
    }
    let mut outcome: Option<TargetOutcome> = None;
    // The first round quantizes the graph already read; each further round (a target search) reads afresh.
    let mut first_graph = Some(graph);
    let mut round = |options: &quantize::QuantOptions| -> Result<Round, JobError> {
        let mut graph = match first_graph.take() {
            Some(g) => g,
            None => parse_for_job()?,
        };
        let (summary, bytes) = quantize_checked(job, &mut graph, options, ranges.as_ref())?;
        if opts.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let accuracy = match &mut evaluator {
            Some(e) if job.target.is_some() => {
                Some(e.evaluate(&bytes, &eval_opts).map_err(eval_err)?)
            }
            Some(e) => {
                Some(eval::evaluate_against(e.reference(), &bytes, &eval_opts).map_err(eval_err)?)
            }
            None => None,
        };
        Ok((summary, bytes, accuracy))
    };
    // The ops the last round added to the kept-float list (one target-search batch).
    let mut batch = 0;
    let (summary, bytes, accuracy) = loop {
        let (summary, bytes, accuracy) = round(&options)?;
        let (Some(target), Some(acc), Some((float, _))) = (&job.target, &accuracy, &eval) else {
            break (summary, bytes, accuracy);
        };
        let first = outcome.get_or_insert_with(|| TargetOutcome {
            target_sqnr_db: target.sqnr_db,
            max_top1_drop: target.max_top1_drop,
            sqnr_db_fully_quantized: acc.sqnr_db,
            top1_agreement_fully_quantized: acc.top1_agreement,
            kept_float: Vec::new(),
            bytes_fully_quantized: bytes.len() as u64,
            float_mac_share: 0.0,
        });
        for k in first.kept_float.iter_mut().rev().take(batch) {
            k.output_sqnr_db_after = acc.sqnr_db;
        }
        let missed = |why: String| JobError::TargetMissed {
            job: job.id(),
            message: why,
        };
        if eval::target::meets(target, acc).map_err(missed)? {
            // The batch's shortest prefix (most damaging first) that meets the target, by bisection: the
            // round before it missed, the whole batch meets.
            let mut best = (summary, bytes, accuracy);
            let base = options.keep_float_ops.len() - batch;
            let (mut missing, mut meeting) = (0, batch);
            while meeting - missing > 1 {
                let mid = (missing + meeting) / 2;
                let mut shorter = options.clone();
                shorter.keep_float_ops.truncate(base + mid);
                let r = round(&shorter)?;
                let Some(acc) = &r.2 else { break };
                if eval::target::meets(target, acc).map_err(missed)? {
                    for k in &mut first.kept_float[base..base + mid] {
                        k.output_sqnr_db_after = acc.sqnr_db;
                    }
                    (meeting, best) = (mid, r);
                } else {
                    missing = mid;
                }
            }
            options.keep_float_ops.truncate(base + meeting);
            first.kept_float.truncate(base + meeting);
            first.float_mac_share = eval::target::mac_share(float, &options.keep_float_ops);
            break best;
        }
        let reached = format!(
            "accuracy target not met: output SQNR {}, top-1 agreement {}{}",
            eval::db(acc.sqnr_db),
            acc.top1_agreement
                .map_or_else(|| "n/a".to_string(), |a| format!("{a:.4}")),
            target_text(target)
        );
        if !options.allow_float_fallback {
            return Err(missed(format!(
                "{reached}; op_sets = [\"TFLITE_BUILTINS_INT8\"] forbids keeping ops float (add \"TFLITE_BUILTINS\" to allow it)"
            )));
        }
        let next = eval::target::most_damaging(float, acc, &options.keep_float_ops);
        if next.is_empty() {
            return Err(missed(format!(
                "{reached} with {} op(s) kept float and no integer op left to keep float (the model's \
                 integer I/O or the remaining quantize/dequantize steps limit it)",
                options.keep_float_ops.len()
            )));
        }
        batch = next.len();
        for op in next {
            let sqnr = acc
                .tensors
                .iter()
                .find(|t| t.op_index == Some(op))
                .and_then(|t| t.sqnr_db);
            first
                .kept_float
                .push(eval::target::kept_op(float, op, sqnr));
            options.keep_float_ops.push(op);
        }
    };
    let mut report = Report::new(
        job,
        &summary,
        source.len() as u64,
        bytes.len() as u64,
        source_ops,
        samples,
        synthetic,
        start.elapsed().as_secs_f64(),
    );
    if from_lock {
        report.ranges_from = "lock".into();
    }
    report.accuracy = accuracy;
    report.target = outcome;
    // What the data was converted from (a float64 array, unscaled integers): said once per job and dataset.
    if let Some((_, data)) = &eval {
        conversions.extend(data.conversions.iter().cloned());
    }
    let mut seen = std::collections::BTreeSet::new();
    conversions.retain(|c| seen.insert(c.clone()));
    report.quantization.warnings.extend(conversions);
    Ok(Produced {
        bytes,
        report,
        ranges,
    })
}

/// One round's quantization summary, artifact bytes and (with an evaluation) accuracy.
type Round = (quantize::QuantSummary, Vec<u8>, Option<eval::Accuracy>);

/// ` (target: SQNR >= 30 dB, top-1 drop <= 0.01)`.
fn target_text(t: &crate::config::AccuracyTarget) -> String {
    let mut parts = Vec::new();
    if let Some(s) = t.sqnr_db {
        parts.push(format!("SQNR >= {s} dB"));
    }
    if let Some(d) = t.max_top1_drop {
        parts.push(format!("top-1 drop <= {d}"));
    }
    format!(" (target: {})", parts.join(", "))
}

/// Quantizes `graph` with `options` and checks the written bytes read back.
fn quantize_checked(
    job: &Job,
    graph: &mut Graph,
    options: &quantize::QuantOptions,
    ranges: Option<&Ranges>,
) -> Result<(quantize::QuantSummary, Vec<u8>), JobError> {
    let summary = quantize::quantize(graph, job.mode, options, ranges).map_err(|source| {
        JobError::Quantize {
            model: job.model.clone(),
            mode: job.mode,
            source,
        }
    })?;
    let bytes = graph.to_bytes();
    // What we hand out must read back: a failure here is a bug, and nothing is written.
    Graph::from_bytes(&bytes).map_err(|e| JobError::Quantize {
        model: job.model.clone(),
        mode: job.mode,
        source: quantize::QuantError::SelfCheck(format!(
            "the written model does not read back: {e}"
        )),
    })?;
    Ok((summary, bytes))
}

/// Writes the artifact (unless the file already holds exactly these bytes) and its report, atomically.
pub(crate) fn write_outputs(job: &Job, bytes: &[u8], report: &Report) -> Result<(), JobError> {
    // Temp files of this job's outputs left by a build killed mid-write.
    for path in [&job.artifact, &job.report] {
        super::artifact::remove_stale_temps(path);
    }
    let unchanged = std::fs::read(&job.artifact).is_ok_and(|old| old == bytes);
    if unchanged && report.cache == "hit" && job.report.is_file() {
        // A cache hit over an identical artifact: its report already describes it; writing nothing keeps
        // a cached build of many models in milliseconds (no fsync per file).
        return Ok(());
    }
    if !unchanged {
        write_atomically(&job.artifact, bytes).map_err(|source| JobError::Io {
            path: job.artifact.clone(),
            source,
        })?;
    }
    write_atomically(&job.report, report.to_json().as_bytes()).map_err(|source| JobError::Io {
        path: job.report.clone(),
        source,
    })
}

/// Runs one job to completion, without cache or lock: the artifact and its report are written atomically,
/// or nothing is. [`Session::build`](super::Session::build) is the cached, lock-aware way.
pub fn run_job(job: &Job, opts: &RunOptions<'_>) -> Result<Artifact, JobError> {
    let start = Instant::now();
    let source = read_file(&job.source)?;
    let produced = produce(job, &source, None, opts, start)?;
    write_outputs(job, &produced.bytes, &produced.report)?;
    Ok(Artifact {
        job: job.id(),
        path: job.artifact.clone(),
        report: produced.report,
    })
}
