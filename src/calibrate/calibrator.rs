//! The calibration driver: streams samples through the float interpreter, in parallel, into range observers.
//!
//! Each batch is cut into fixed tasks of [`SAMPLES_PER_TASK`] consecutive samples; a task runs its samples
//! in order with observers of its own, and the tasks' observers are merged in task order. The grouping
//! depends on neither the thread count nor scheduling, so every observer (even one whose merge is not
//! exact) gives the same result on 1 or 16 threads.

use super::{
    CalibError, FloatInterpreter, HistogramObserver, MinMaxObserver, RangeMethod, RangeObserver,
    Registry, Value,
};
use crate::graph::{Graph, TensorId};
use crate::quantize::Ranges;
use ndarray::ArrayD;
use rayon::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};

/// Samples one worker runs with its own observers before they are merged.
pub const SAMPLES_PER_TASK: usize = 4;

/// From this many multiply-adds per sample, tasks go to the worker pool from the first batch on.
const INLINE_WORK: usize = 100_000;

/// Below that estimate the first task runs on the calling thread, timed: if it took at least this long
/// (the estimate misses what loops and recurrent ops repeat), the rest go to the pool; otherwise every
/// task stays inline, where a sample costs less than handing a task to a worker and joining it. The
/// choice changes where tasks run, never their grouping or merge order, so results are the same.
const INLINE_TASK_TIME: std::time::Duration = std::time::Duration::from_micros(40);

/// Decoded sample data a calibration batch holds at most (unless [`MIN_BATCH`] samples need more).
const BATCH_BYTES: usize = 16 << 20;
/// Fewest samples requested at a time.
const MIN_BATCH: usize = 32;
/// Most samples requested at a time.
const MAX_BATCH: usize = 512;

/// Samples to request from the data source at a time when each takes `sample_bytes` of memory: as many as
/// fit in 16 MiB, from 32 to 512, a multiple of [`SAMPLES_PER_TASK`]. Small models then hand a batch to the
/// workers (and join them) rarely, large ones hold a bounded amount of decoded data. Tasks are the same
/// [`SAMPLES_PER_TASK`] consecutive samples whatever the batch size, so ranges do not depend on it.
pub fn batch_for(sample_bytes: usize) -> usize {
    let fit = BATCH_BYTES / sample_bytes.max(1);
    let batch = fit.clamp(MIN_BATCH, MAX_BATCH);
    batch - batch % SAMPLES_PER_TASK
}

/// [`batch_for`] the float inputs of `graph` (4 bytes per element of every model input).
pub fn batch_for_graph(graph: &Graph) -> usize {
    let bytes: usize = graph
        .inputs()
        .iter()
        .map(|&t| {
            let shape = graph.tensor(t).shape.clone().unwrap_or_default();
            shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(1).max(1))
                .fold(4usize, usize::saturating_mul)
        })
        .fold(0usize, usize::saturating_add);
    batch_for(bytes)
}

/// How calibration runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrateOptions {
    /// Worker threads; 0 = rayon's default (one per core).
    pub threads: usize,
    /// Samples requested from the data source at a time (bounds the memory held by decoded samples).
    pub batch: usize,
    /// Pass custom/Flex ops through (`SELECT_TF_OPS`): they and what depends on them get no range.
    pub pass_through_custom_ops: bool,
    /// How each tensor's range is chosen (default minmax, TFLite's).
    pub method: RangeMethod,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            threads: 0,
            batch: 64,
            pass_through_custom_ops: false,
            method: RangeMethod::MinMax,
        }
    }
}

/// One sample: one array per model input, in model input order.
type Sample = Vec<ArrayD<f32>>;

/// Streams samples through the interpreter and returns the range of every float activation, chosen by
/// `opts.method` from statistics of one pass over the samples.
///
/// `samples(n)` returns the next batch of up to `n` samples (empty when the data is exhausted); `total` is
/// the expected count, only used for `progress(done, total)`, called after each batch. `cancelled` is polled
/// before every sample.
pub fn calibrate(
    graph: &Graph,
    samples: &mut dyn FnMut(usize) -> Result<Vec<Sample>, String>,
    total: usize,
    opts: &CalibrateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Ranges, CalibError> {
    let interp = interpreter(graph, opts.pass_through_custom_ops)?;
    match opts.method {
        // The minmax fast path: no histograms.
        RangeMethod::MinMax => {
            let observers = calibrate_with(
                &interp,
                &MinMaxObserver::new,
                samples,
                total,
                opts,
                progress,
                cancelled,
            )?;
            Ok(ranges_of(observers))
        }
        method => {
            let observers = calibrate_with(
                &interp,
                &|| HistogramObserver::new(method),
                samples,
                total,
                opts,
                progress,
                cancelled,
            )?;
            // Each tensor's range search is independent of the others: run them on the workers too.
            let select = |(t, o): &(TensorId, HistogramObserver)| o.range().map(|r| (*t, r));
            let ranges: Vec<(TensorId, (f32, f32))> = if opts.threads == 1 {
                observers.iter().filter_map(select).collect()
            } else {
                thread_pool(opts.threads)?
                    .install(|| observers.par_iter().filter_map(select).collect())
            };
            Ok(ranges.into_iter().collect())
        }
    }
}

/// The range of every observer that saw a value.
fn ranges_of<O: RangeObserver>(observers: Vec<(TensorId, O)>) -> Ranges {
    observers
        .into_iter()
        .filter_map(|(t, o)| o.range().map(|r| (t, r)))
        .collect()
}

/// [`calibrate`] with any observer: returns the merged observer of every float activation, in tensor order.
pub fn calibrate_with<O: RangeObserver>(
    interp: &FloatInterpreter<'_>,
    new_observer: &(dyn Fn() -> O + Sync),
    samples: &mut dyn FnMut(usize) -> Result<Vec<Sample>, String>,
    total: usize,
    opts: &CalibrateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<(TensorId, O)>, CalibError> {
    let observed: Vec<TensorId> = (0..interp.num_tensors())
        .map(TensorId)
        .filter(|&t| interp.is_observed(t))
        .collect();
    // Tensor index -> position in a task's observer list.
    let mut slot_of = vec![None; interp.num_tensors()];
    for (slot, t) in observed.iter().enumerate() {
        slot_of[t.0] = Some(slot);
    }
    // One thread, or samples too small to be worth waking a worker for: the tasks run inline, in order
    // (same grouping and merge order as on a pool, so the same results).
    let mut pool = None;
    let mut undecided = opts.threads != 1;
    if undecided && interp.work_per_sample() >= INLINE_WORK {
        pool = Some(thread_pool(opts.threads)?);
        undecided = false;
    }
    let mut merged: Vec<O> = observed.iter().map(|_| new_observer()).collect();
    let mut done = 0usize;
    loop {
        if cancelled() {
            return Err(CalibError::Cancelled);
        }
        let batch = samples(opts.batch.max(1)).map_err(|message| CalibError::Data {
            sample: Some(done),
            message,
        })?;
        if batch.is_empty() {
            break;
        }
        let tasks: Vec<(usize, &[Sample])> = batch
            .chunks(SAMPLES_PER_TASK)
            .enumerate()
            .map(|(i, chunk)| (done + i * SAMPLES_PER_TASK, chunk))
            .collect();
        let task = |&(first, chunk): &(usize, &[Sample])| {
            run_task(
                interp,
                &slot_of,
                observed.len(),
                new_observer,
                first,
                chunk,
                cancelled,
            )
        };
        let mut results: Vec<Result<Vec<O>, CalibError>> = Vec::with_capacity(tasks.len());
        let mut rest = &tasks[..];
        if undecided {
            undecided = false;
            if let Some((first, later)) = tasks.split_first() {
                let start = std::time::Instant::now();
                results.push(task(first));
                if start.elapsed() >= INLINE_TASK_TIME {
                    pool = Some(thread_pool(opts.threads)?);
                }
                rest = later;
            }
        }
        match &pool {
            Some(pool) => {
                results.extend(pool.install(|| rest.par_iter().map(task).collect::<Vec<_>>()))
            }
            None => results.extend(rest.iter().map(task)),
        }
        // In task order: the first failing sample is the one reported, whatever ran first.
        for local in results {
            for (m, o) in merged.iter_mut().zip(local?) {
                m.merge(&o);
            }
        }
        done += batch.len();
        progress(done, total);
    }
    if done == 0 {
        return Err(CalibError::Data {
            sample: None,
            message: "the representative dataset yielded no samples".into(),
        });
    }
    Ok(observed.into_iter().zip(merged).collect())
}

/// The kernel table, built once per process: filling it costs more than calibrating a small model on a few
/// samples.
/// The float interpreter calibration runs `graph` with (custom ops passing their first input through when
/// `pass_custom`).
pub(crate) fn interpreter(
    graph: &Graph,
    pass_custom: bool,
) -> Result<FloatInterpreter<'_>, CalibError> {
    if pass_custom {
        FloatInterpreter::new_passing_custom_ops(graph, registry())
    } else {
        FloatInterpreter::new(graph, registry())
    }
}

pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::with_all_ops)
}

/// A thread count and its pool.
type SharedPool = (usize, Arc<rayon::ThreadPool>);

/// The worker pool for a thread count (0 = one per core), built on first use and shared by later calls:
/// building a pool (spawning its threads) costs more than calibrating a small model.
pub(crate) fn thread_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, CalibError> {
    static POOLS: OnceLock<Mutex<Vec<SharedPool>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    // A panic while the lock was held leaves the list itself valid: keep using it.
    let mut pools = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, pool)) = pools.iter().find(|(t, _)| *t == threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| CalibError::ThreadPool(e.to_string()))?,
    );
    pools.push((threads, Arc::clone(&pool)));
    Ok(pool)
}

/// Runs consecutive samples `first..` with fresh observers.
fn run_task<O: RangeObserver>(
    interp: &FloatInterpreter<'_>,
    slot_of: &[Option<usize>],
    slots: usize,
    new_observer: &(dyn Fn() -> O + Sync),
    first: usize,
    chunk: &[Sample],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<O>, CalibError> {
    let mut observers: Vec<O> = (0..slots).map(|_| new_observer()).collect();
    for (i, sample) in chunk.iter().enumerate() {
        if cancelled() {
            return Err(CalibError::Cancelled);
        }
        let mut observe = |t: TensorId, v: &Value| {
            if let (Some(Some(slot)), Value::F32(a)) = (slot_of.get(t.0), v) {
                // `as_slice` first: its row-major check is a loop over the dimensions, while
                // `as_slice_memory_order` computes an axis order (a measurable share of small models).
                match a.as_slice().or_else(|| a.as_slice_memory_order()) {
                    Some(values) => observers[*slot].observe(values),
                    None => observers[*slot].observe(&a.iter().copied().collect::<Vec<_>>()),
                }
            }
        };
        interp
            .observe_sample(sample, &mut observe)
            .map_err(|e| e.at_sample(first + i))?;
    }
    Ok(observers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::ops::testing::{one_op_graph, with_float_input};
    use crate::calibrate::{CalibError, QuantGrid};
    use crate::tflite::fb;
    use ndarray::IxDyn;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// RELU6 on a model input: x -> relu6(x), both float.
    fn relu6_model() -> Graph {
        let g = one_op_graph(
            fb::BuiltinOperator::RELU6,
            fb::BuiltinOptionsT::NONE,
            vec![],
            &[fb::TensorType::FLOAT32],
        );
        with_float_input(g, &[1, 3], 0)
    }

    fn stream(values: Vec<[f32; 3]>) -> impl FnMut(usize) -> Result<Vec<Sample>, String> {
        let mut rest = values.into_iter();
        move |n| {
            Ok(rest
                .by_ref()
                .take(n)
                .map(|v| vec![ArrayD::from_shape_vec(IxDyn(&[1, 3]), v.to_vec()).expect("shape")])
                .collect())
        }
    }

    #[test]
    fn minmax_ranges_cover_every_sample_of_inputs_and_outputs() {
        let g = relu6_model();
        let data: Vec<[f32; 3]> = (0..23)
            .map(|i| [i as f32 - 11.0, 0.5, (i % 5) as f32 * 2.0])
            .collect();
        let calls = AtomicUsize::new(0);
        let opts = CalibrateOptions {
            threads: 2,
            batch: 10,
            ..Default::default()
        };
        let ranges = calibrate(
            &g,
            &mut stream(data),
            23,
            &opts,
            &|_, _| {
                calls.fetch_add(1, Ordering::Relaxed);
            },
            &|| false,
        )
        .unwrap();
        // tensor 0 is the RELU6 output, tensor 1 the input
        assert_eq!(ranges.get(&TensorId(1)), Some(&(-11.0, 11.0)));
        assert_eq!(ranges.get(&TensorId(0)), Some(&(0.0, 6.0)));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn batches_hold_16_mib_of_samples_within_32_to_512_in_whole_tasks() {
        assert_eq!(batch_for(8 * 8 * 4), MAX_BATCH);
        assert_eq!(batch_for(96 * 96 * 3 * 4), 148);
        assert_eq!(batch_for(224 * 224 * 3 * 4 * 4), MIN_BATCH);
        assert_eq!(batch_for(0), MAX_BATCH);
        for bytes in [1, 1000, 33_333, 123_457, 1 << 20] {
            let b = batch_for(bytes);
            assert_eq!(b % SAMPLES_PER_TASK, 0, "{bytes} bytes -> {b}");
            assert!((MIN_BATCH..=MAX_BATCH).contains(&b));
        }
        // relu6_model's one input is [1, 3] float32: 12 bytes.
        assert_eq!(batch_for_graph(&relu6_model()), MAX_BATCH);
    }

    #[test]
    fn ranges_do_not_depend_on_thread_count_or_batch_size() {
        let g = relu6_model();
        let data: Vec<[f32; 3]> = (0..37)
            .map(|i| {
                [
                    (i as f32 * 0.37).sin() * 9.0,
                    (i as f32).cos(),
                    i as f32 * 0.1,
                ]
            })
            .collect();
        let run = |threads, batch| {
            let opts = CalibrateOptions {
                threads,
                batch,
                ..Default::default()
            };
            calibrate(
                &g,
                &mut stream(data.clone()),
                37,
                &opts,
                &|_, _| {},
                &|| false,
            )
            .unwrap()
        };
        let one = run(1, 37);
        assert_eq!(one, run(2, 5));
        assert_eq!(one, run(3, 1));
    }

    /// A RELU6 model over `width` elements: with `INLINE_WORK`, enough work per sample that more than one
    /// thread uses the pool.
    fn wide_relu6(width: usize) -> Graph {
        let mut g = relu6_model();
        for t in [0, 1] {
            g.tensor_mut(TensorId(t)).shape = Some(vec![1, width as i32]);
        }
        g
    }

    /// A source of `count` samples of `width` elements, element `k` of sample `s` being `value(k, s)`.
    fn wide_samples(
        width: usize,
        count: usize,
        value: impl Fn(usize, usize) -> f32,
    ) -> impl FnMut(usize) -> Result<Vec<Sample>, String> {
        let mut i = 0;
        move |n: usize| {
            let start = i;
            i = (i + n).min(count);
            Ok((start..i)
                .map(|s| {
                    let v = (0..width).map(|k| value(k, s)).collect();
                    vec![ArrayD::from_shape_vec(IxDyn(&[1, width]), v).expect("shape")]
                })
                .collect())
        }
    }

    #[test]
    fn samples_large_enough_for_workers_give_the_same_ranges_on_any_thread_count() {
        let width = INLINE_WORK;
        let g = wide_relu6(width);
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        assert!(interp.work_per_sample() >= INLINE_WORK);
        let run = |threads, batch| {
            let mut samples = wide_samples(width, 9, |k, s| {
                ((k * 31 + s * 17) % 1000) as f32 * 0.01 - 3.0 + s as f32
            });
            let opts = CalibrateOptions {
                threads,
                batch,
                ..Default::default()
            };
            calibrate(&g, &mut samples, 9, &opts, &|_, _| {}, &|| false).unwrap()
        };
        let one = run(1, 9);
        assert_eq!(one.get(&TensorId(1)), Some(&(-3.0, 14.99)));
        assert_eq!(one, run(2, 5));
        assert_eq!(one, run(3, 2));
    }

    #[test]
    fn histogram_methods_give_the_same_ranges_on_any_thread_count_and_batch_size() {
        // Wide samples (the pool is used) whose range grows from sample to sample, so histograms of
        // different tasks have different bin widths when merged.
        let width = INLINE_WORK;
        let g = wide_relu6(width);
        let run = |method, threads, batch| {
            let mut samples = wide_samples(width, 11, |k, s| {
                let x = ((k * 7919 + s * 104_729) % 10_007) as f32 / 10_007.0 - 0.5;
                x * x * x * (1 + s * s) as f32
            });
            let opts = CalibrateOptions {
                threads,
                batch,
                method,
                ..Default::default()
            };
            calibrate(&g, &mut samples, 11, &opts, &|_, _| {}, &|| false).unwrap()
        };
        let minmax = run(RangeMethod::MinMax, 1, 11);
        for method in [
            RangeMethod::Percentile(99.9),
            RangeMethod::Mse(QuantGrid::Int8Asymmetric),
            RangeMethod::Entropy(QuantGrid::Int8Asymmetric),
        ] {
            let one = run(method, 1, 11);
            assert_eq!(one, run(method, 2, 5), "{method:?}");
            assert_eq!(one, run(method, 3, 2), "{method:?}");
            let (lo, hi) = one[&TensorId(1)];
            let (min, max) = minmax[&TensorId(1)];
            assert!(
                min < lo && hi < max,
                "{method:?} clips the rare extremes: {lo} {hi} of {min} {max}"
            );
        }
    }

    #[test]
    fn a_sample_of_the_wrong_shape_is_reported_with_its_index() {
        let g = relu6_model();
        let mut n = 0;
        let mut samples = move |_: usize| {
            n += 1;
            let shape: &[usize] = if n == 1 { &[1, 3] } else { &[] };
            if shape.is_empty() {
                return Ok(vec![]);
            }
            Ok((0..6)
                .map(|i| vec![ArrayD::zeros(IxDyn(if i == 5 { &[1, 2] } else { shape }))])
                .collect())
        };
        let err = calibrate(
            &g,
            &mut samples,
            6,
            &CalibrateOptions::default(),
            &|_, _| {},
            &|| false,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CalibError::Data {
                    sample: Some(5),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn cancellation_stops_calibration() {
        let g = relu6_model();
        let err = calibrate(
            &g,
            &mut stream(vec![[0.0; 3]; 4]),
            4,
            &CalibrateOptions::default(),
            &|_, _| {},
            &|| true,
        )
        .unwrap_err();
        assert_eq!(err, CalibError::Cancelled);
    }

    #[test]
    fn an_empty_dataset_is_an_error() {
        let g = relu6_model();
        let err = calibrate(
            &g,
            &mut stream(vec![]),
            0,
            &CalibrateOptions::default(),
            &|_, _| {},
            &|| false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no samples"), "{err}");
    }
}
