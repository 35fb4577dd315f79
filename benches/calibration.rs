//! Calibration speed on the corpus models, next to LiteRT and TensorFlow's converter.
//!
//! Run with `cargo bench --bench calibration [-- MODEL ...]` (release profile). For each corpus model
//! (`LITEQUANT_CORPUS`, default `tests/corpus`) and 1 and 2 threads it prints, in one table:
//! * calibration samples/s: `calibrate()` over the 100 samples of `calib.npz`, preloaded into memory (file
//!   reading and copying excluded), repeated until >= 1 s of calibration, median of 3 such measurements;
//! * LiteRT's float rate (set inputs + `invoke()`) for the same model, samples and threads, without delegate
//!   (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`) and with the default XNNPACK delegate, from `benches/litert_rate.py`
//!   run by `LITEQUANT_TEST_PYTHON` (default `.venv/bin/python`);
//! * the wall time of a whole int8 job (`litequant build` on a temporary config, 100 samples, same threads,
//!   the release binary as a separate process) next to TF's `process_s` for `int_float_fallback` from
//!   `anchors.jsonl`.
//!
//! Where calibration is slower than LiteRT without delegate, a per-op-type profile of the float interpreter
//! follows the table. Speed is only measured here, never asserted in tests: the machine is shared and noisy.
//!
//! `-- --calibration-only` measures our calibration rate alone (no LiteRT, no job: quick while tuning kernels)
//! and `-- --profile` prints the per-op profile of every model, slower than LiteRT or not.

use litequant::calibrate::{
    calibrate, CalibrateOptions, FloatInterpreter, MinMaxObserver, RangeObserver, Registry, Value,
};
use litequant::dataset::{self, DatasetFormat, DatasetSpec, Sample};
use litequant::engine::{input_specs, load_source};
use litequant::graph::{Graph, OpIndex, TensorId};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod common;
use common::{find_python, machine_line, median, print_aligned, rate_cell};

/// Calibration samples per model (all of calib.npz in the corpus).
const SAMPLES: usize = 100;
/// Each measurement runs calibration at least this long.
const MIN_MEASURE: Duration = Duration::from_secs(1);
/// Measurements per number; the median is reported.
const MEASUREMENTS: usize = 3;
/// Thread counts measured (the target machine has 2 cores).
const THREADS: [usize; 2] = [1, 2];
/// The LiteRT side of the benchmark.
const LITERT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/litert_rate.py");
/// The CLI binary cargo built for this benchmark (release profile).
const LITEQUANT_BIN: &str = env!("CARGO_BIN_EXE_litequant");

/// A corpus model with its calibration samples in memory.
struct CorpusModel {
    name: String,
    model: PathBuf,
    calib: PathBuf,
    graph: Graph,
    samples: Vec<Sample>,
}

/// One row of the table.
struct Row {
    model: String,
    threads: usize,
    calibration: Result<f64, String>,
    litert: LiteRtRates,
    job_seconds: Result<f64, String>,
    tf_process_seconds: Option<f64>,
}

/// LiteRT float rates in samples/s, or why there is none.
#[derive(Clone)]
struct LiteRtRates {
    no_delegate: Result<f64, String>,
    xnnpack: Result<f64, String>,
}

fn main() -> ExitCode {
    // cargo passes `--bench` to harness-less benchmarks; other words select models.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let flag = |name: &str| std::env::args().skip(1).any(|a| a == name);
    let (calibration_only, always_profile) = (flag("--calibration-only"), flag("--profile"));
    let corpus = PathBuf::from(
        std::env::var("LITEQUANT_CORPUS")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus").into()),
    );
    let models = match corpus_models(&corpus, &filters) {
        Ok(m) if m.is_empty() => {
            eprintln!(
                "error: no model with model.tflite and calib.npz under {}",
                corpus.display()
            );
            return ExitCode::FAILURE;
        }
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let python = find_python();
    let anchors = tf_process_seconds(&corpus.join("anchors.jsonl"));

    println!("{}", machine_line());
    println!("corpus: {}", corpus.display());
    match &python {
        Ok(p) => println!("LiteRT: {} {}", p.display(), LITERT_SCRIPT),
        Err(why) => println!("LiteRT: n/a ({why})"),
    }
    if let Err(why) = &anchors {
        println!("TF anchors: n/a ({why})");
    }
    println!("litequant: {LITEQUANT_BIN}");
    println!();

    let mut rows = Vec::new();
    for m in &models {
        for threads in THREADS {
            eprintln!("measuring {} with {threads} thread(s)...", m.name);
            let calibration = calibration_rate(m, threads);
            let skipped = || Err("not measured (--calibration-only)".to_string());
            let litert = match &python {
                _ if calibration_only => LiteRtRates {
                    no_delegate: skipped(),
                    xnnpack: skipped(),
                },
                Ok(p) => litert_rates(p, m, threads),
                Err(why) => LiteRtRates {
                    no_delegate: Err(why.clone()),
                    xnnpack: Err(why.clone()),
                },
            };
            let job_seconds = if calibration_only {
                skipped()
            } else {
                job_wall_seconds(m, threads)
            };
            let tf_process_seconds = anchors.as_ref().ok().and_then(|a| a.get(&m.name).copied());
            rows.push(Row {
                model: m.name.clone(),
                threads,
                calibration,
                litert,
                job_seconds,
                tf_process_seconds,
            });
        }
    }
    print_table(&rows);
    print_verdicts(&rows);
    print_failures(&rows);

    let slow: Vec<&CorpusModel> = models
        .iter()
        .filter(|m| {
            always_profile
                || rows.iter().any(|r| {
                r.model == m.name
                    && matches!((&r.calibration, &r.litert.no_delegate), (Ok(ours), Ok(theirs)) if ours < theirs)
            })
        })
        .collect();
    for m in slow {
        match op_profile(m) {
            Ok(profile) => print_profile(&m.name, &profile),
            Err(e) => println!("\nprofile of {}: failed: {e}", m.name),
        }
    }
    ExitCode::SUCCESS
}

/// Every corpus folder with a model and calibration data, sorted by name, samples preloaded.
fn corpus_models(corpus: &Path, filters: &[String]) -> Result<Vec<CorpusModel>, String> {
    let entries = std::fs::read_dir(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("model.tflite").is_file() && p.join("calib.npz").is_file())
        .collect();
    dirs.sort();
    let mut models = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !filters.is_empty() && !filters.contains(&name) {
            continue;
        }
        let model = dir.join("model.tflite");
        let calib = dir.join("calib.npz");
        let (graph, _) = load_source(&model).map_err(|e| e.to_string())?;
        let samples = preload(&graph, &calib)?;
        models.push(CorpusModel {
            name,
            model,
            calib,
            graph,
            samples,
        });
    }
    Ok(models)
}

/// Reads the first [`SAMPLES`] samples of an npz dataset through litequant's own reader.
fn preload(graph: &Graph, calib: &Path) -> Result<Vec<Sample>, String> {
    let spec = DatasetSpec {
        name: "calib".into(),
        format: DatasetFormat::Npz,
        path: Some(calib.to_path_buf()),
        samples: Some(SAMPLES),
        resize: None,
        mean: Vec::new(),
        std: Vec::new(),
        inputs: BTreeMap::new(),
        feeds: BTreeMap::new(),
        range: None,
        seed: 0,
        labels: None,
        label_output: None,
        origin: Default::default(),
    };
    let mut stream = dataset::open(&spec, &input_specs(graph)).map_err(|e| e.to_string())?;
    let samples = stream.next_batch(SAMPLES).map_err(|e| e.to_string())?;
    if samples.is_empty() {
        return Err(format!("{}: no samples", calib.display()));
    }
    Ok(samples)
}

/// Calibration samples/s: the median of [`MEASUREMENTS`] runs of at least [`MIN_MEASURE`] each.
fn calibration_rate(m: &CorpusModel, threads: usize) -> Result<f64, String> {
    let opts = CalibrateOptions {
        threads,
        // Samples requested per batch, as `engine::run_job` does.
        batch: litequant::calibrate::batch_for_graph(&m.graph),
        ..Default::default()
    };
    // Times one `calibrate()` over a fresh copy of the samples; the copy is made before the clock starts.
    let once = || -> Result<Duration, String> {
        let mut rest = m.samples.clone().into_iter();
        let mut next =
            |n: usize| -> Result<Vec<Sample>, String> { Ok(rest.by_ref().take(n).collect()) };
        let start = Instant::now();
        let ranges = calibrate(
            &m.graph,
            &mut next,
            m.samples.len(),
            &opts,
            &|_, _| {},
            &|| false,
        )
        .map_err(|e| format!("{}: {e}", m.model.display()))?;
        let elapsed = start.elapsed();
        if ranges.is_empty() {
            return Err(format!(
                "{}: calibration recorded no range",
                m.model.display()
            ));
        }
        black_box(ranges);
        Ok(elapsed)
    };
    once()?; // warm-up: page in the code and the allocator's arenas
    let mut rates = Vec::with_capacity(MEASUREMENTS);
    for _ in 0..MEASUREMENTS {
        let (mut total, mut calls) = (Duration::ZERO, 0usize);
        while total < MIN_MEASURE {
            total += once()?;
            calls += 1;
        }
        rates.push((calls * m.samples.len()) as f64 / total.as_secs_f64());
    }
    Ok(median(rates))
}

/// LiteRT float rates of the model on the same samples and threads, from `litert_rate.py`.
fn litert_rates(python: &Path, m: &CorpusModel, threads: usize) -> LiteRtRates {
    let failed = |why: String| LiteRtRates {
        no_delegate: Err(why.clone()),
        xnnpack: Err(why),
    };
    let output = match Command::new(python)
        .arg(LITERT_SCRIPT)
        .arg(&m.model)
        .arg(&m.calib)
        .arg(threads.to_string())
        .output()
    {
        Ok(o) => o,
        Err(e) => return failed(format!("cannot run {}: {e}", python.display())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let parsed: Option<serde_json::Value> = line.and_then(|l| serde_json::from_str(l).ok());
    let Some(json) = parsed.filter(|_| output.status.success()) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return failed(format!("litert_rate.py failed on {}: {last}", m.name));
    };
    let rate = |key: &str| match json.get(key).and_then(serde_json::Value::as_f64) {
        Some(r) => Ok(r),
        None => {
            let why = json
                .get(format!("{key}_error"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no rate reported");
            Err(format!("LiteRT {key} on {}: {why}", m.name))
        }
    };
    LiteRtRates {
        no_delegate: rate("no_delegate"),
        xnnpack: rate("xnnpack"),
    }
}

/// Wall time of `litequant build` of the model in int8 mode (float I/O, float fallback allowed, as TF's
/// `int_float_fallback`), median of [`MEASUREMENTS`] runs, each in a fresh folder so no cache can answer.
fn job_wall_seconds(m: &CorpusModel, threads: usize) -> Result<f64, String> {
    let mut times = Vec::with_capacity(MEASUREMENTS);
    for _ in 0..MEASUREMENTS {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        let config = dir.path().join("quantize.toml");
        let quoted = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned()).to_string();
        let text = format!(
            "[settings]\nout_dir = \"out\"\n\n[datasets.calib]\nformat = \"npz\"\npath = {}\nsamples = {SAMPLES}\n\n\
             [models.{}]\nsource = {}\nmodes = [\"int8\"]\ndataset = \"calib\"\nop_sets = [\"TFLITE_BUILTINS\"]\n",
            quoted(&m.calib),
            toml::Value::String(m.name.clone()),
            quoted(&m.model),
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let start = Instant::now();
        let output = Command::new(LITEQUANT_BIN)
            .arg("build")
            .arg("-c")
            .arg(&config)
            .args(["--threads", &threads.to_string(), "--no-cache"])
            .env_remove("LITEQUANT_CACHE_DIR")
            .output()
            .map_err(|e| format!("cannot run {LITEQUANT_BIN}: {e}"))?;
        let elapsed = start.elapsed();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "litequant build of {} failed: {}",
                m.name,
                stderr.trim()
            ));
        }
        times.push(elapsed.as_secs_f64());
    }
    Ok(median(times))
}

/// TF's `process_s` for `int_float_fallback` (int8 with float I/O), by model.
fn tf_process_seconds(anchors: &Path) -> Result<HashMap<String, f64>, String> {
    let text =
        std::fs::read_to_string(anchors).map_err(|e| format!("{}: {e}", anchors.display()))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", anchors.display(), i + 1))?;
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        if field("tool") == Some("tf") && field("mode") == Some("int_float_fallback") {
            if let (Some(model), Some(s)) = (
                field("model"),
                v.get("process_s").and_then(serde_json::Value::as_f64),
            ) {
                out.insert(model.to_string(), s);
            }
        }
    }
    Ok(out)
}

/// Time per sample spent in each op type (and in min/max observation) by the float interpreter.
struct Profile {
    /// (op type, op count, seconds per sample), slowest first.
    ops: Vec<(String, usize, f64)>,
    /// Min/max observation of every activation, seconds per sample.
    observe: f64,
    /// Ops inside subgraphs that control flow (WHILE, IF, CALL_ONCE) runs, seconds per sample.
    subgraphs: f64,
    /// `FloatInterpreter::new` (constant decoding, plan), seconds, once per `calibrate()`.
    setup: f64,
}

/// Runs every sample once on one thread, timing the gap between consecutive reported activations: the time
/// of the op that produced it (ops whose outputs are not float, and freeing tensors, count towards the next
/// reported op). Observation is timed separately.
fn op_profile(m: &CorpusModel) -> Result<Profile, String> {
    let registry = Registry::with_all_ops();
    let start = Instant::now();
    let interp = FloatInterpreter::new(&m.graph, &registry).map_err(|e| e.to_string())?;
    let setup = start.elapsed().as_secs_f64();
    let producers = m.graph.producers();
    let mut per_op: HashMap<OpIndex, f64> = HashMap::new();
    let mut observe_seconds = 0.0;
    let mut subgraph_seconds = 0.0;
    let mut observers: HashMap<TensorId, MinMaxObserver> = HashMap::new();
    for sample in &m.samples {
        let mut last = Instant::now();
        let mut observe = |t: TensorId, v: &Value| {
            let now = Instant::now();
            match producers.get(t.0) {
                Some(Some(op)) => *per_op.entry(*op).or_default() += (now - last).as_secs_f64(),
                Some(None) => {}
                // Flat ids past the main graph's tensors belong to the subgraphs control flow runs.
                None => subgraph_seconds += (now - last).as_secs_f64(),
            }
            if let Value::F32(a) = v {
                let o = observers.entry(t).or_default();
                match a.as_slice_memory_order() {
                    Some(values) => o.observe(values),
                    None => o.observe(&a.iter().copied().collect::<Vec<_>>()),
                }
            }
            last = Instant::now();
            observe_seconds += (last - now).as_secs_f64();
        };
        interp
            .run(sample, &mut observe)
            .map_err(|e| e.to_string())?;
    }
    black_box(observers);
    let n = m.samples.len() as f64;
    let mut by_type: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for i in 0..m.graph.ops().len() {
        let entry = by_type.entry(m.graph.op_type_name(OpIndex(i))).or_default();
        entry.0 += 1;
        entry.1 += per_op.get(&OpIndex(i)).copied().unwrap_or(0.0) / n;
    }
    let mut ops: Vec<(String, usize, f64)> =
        by_type.into_iter().map(|(k, (c, s))| (k, c, s)).collect();
    ops.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Profile {
        ops,
        observe: observe_seconds / n,
        subgraphs: subgraph_seconds / n,
        setup,
    })
}

fn print_profile(model: &str, p: &Profile) {
    let total: f64 = p.ops.iter().map(|o| o.2).sum::<f64>() + p.observe + p.subgraphs;
    println!(
        "\nprofile of {model} (1 thread, float interpreter, per sample; \
         FloatInterpreter::new once per calibrate(): {:.2} ms)",
        p.setup * 1e3
    );
    let mut rows = vec![vec![
        "op type".to_string(),
        "ops".into(),
        "us/sample".into(),
        "share".into(),
    ]];
    let share = |s: f64| {
        if total > 0.0 {
            format!("{:.1}%", 100.0 * s / total)
        } else {
            "-".into()
        }
    };
    for (name, count, s) in &p.ops {
        rows.push(vec![
            name.clone(),
            count.to_string(),
            format!("{:.1}", s * 1e6),
            share(*s),
        ]);
    }
    if p.subgraphs > 0.0 {
        rows.push(vec![
            "(ops in control-flow subgraphs)".into(),
            "-".into(),
            format!("{:.1}", p.subgraphs * 1e6),
            share(p.subgraphs),
        ]);
    }
    rows.push(vec![
        "(min/max observation)".into(),
        "-".into(),
        format!("{:.1}", p.observe * 1e6),
        share(p.observe),
    ]);
    print_aligned(&rows);
}

fn print_table(rows: &[Row]) {
    let mut table = vec![[
        "model",
        "threads",
        "calib samples/s",
        "LiteRT no-delegate/s",
        "LiteRT XNNPACK/s",
        "vs no-delegate",
        "vs XNNPACK",
        "int8 job s",
        "TF process s",
        "job speedup",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        let ratio = |ours: &Result<f64, String>, theirs: &Result<f64, String>| match (ours, theirs)
        {
            (Ok(a), Ok(b)) if *b > 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".into(),
        };
        let speedup = match (&r.job_seconds, r.tf_process_seconds) {
            (Ok(ours), Some(tf)) if *ours > 0.0 => format!("{:.0}x", tf / ours),
            _ => "n/a".into(),
        };
        table.push(vec![
            r.model.clone(),
            r.threads.to_string(),
            rate_cell(&r.calibration),
            rate_cell(&r.litert.no_delegate),
            rate_cell(&r.litert.xnnpack),
            ratio(&r.calibration, &r.litert.no_delegate),
            ratio(&r.calibration, &r.litert.xnnpack),
            r.job_seconds
                .as_ref()
                .map_or("n/a".into(), |s| format!("{s:.3}")),
            r.tf_process_seconds
                .map_or("n/a".into(), |s| format!("{s:.1}")),
            speedup,
        ]);
    }
    print_aligned(&table);
}

/// Floors and goals of DESIGN.md's targets, row by row.
fn print_verdicts(rows: &[Row]) {
    let count = |f: &dyn Fn(&Row) -> Option<bool>| {
        let judged: Vec<bool> = rows.iter().filter_map(f).collect();
        format!(
            "{}/{}",
            judged.iter().filter(|&&ok| ok).count(),
            judged.len()
        )
    };
    let vs = |r: &Row, theirs: &Result<f64, String>| match (&r.calibration, theirs) {
        (Ok(a), Ok(b)) => Some(a >= b),
        _ => None,
    };
    let speedup = |r: &Row, factor: f64| match (&r.job_seconds, r.tf_process_seconds) {
        (Ok(ours), Some(tf)) => Some(tf >= factor * ours),
        _ => None,
    };
    println!();
    println!(
        "floor: calibration >= LiteRT no-delegate: {} rows",
        count(&|r| vs(r, &r.litert.no_delegate))
    );
    println!(
        "floor: int8 job >= 10x faster than TF's process: {} rows",
        count(&|r| speedup(r, 10.0))
    );
    println!(
        "goal:  calibration >= LiteRT XNNPACK: {} rows",
        count(&|r| vs(r, &r.litert.xnnpack))
    );
    println!(
        "goal:  int8 job >= 50x faster than TF's process: {} rows",
        count(&|r| speedup(r, 50.0))
    );
}

/// Why cells say n/a, once per distinct reason.
fn print_failures(rows: &[Row]) {
    let mut seen = Vec::new();
    for r in rows {
        for e in [
            &r.calibration,
            &r.litert.no_delegate,
            &r.litert.xnnpack,
            &r.job_seconds,
        ]
        .into_iter()
        .filter_map(|x| x.as_ref().err())
        {
            if !seen.contains(e) {
                seen.push(e.clone());
            }
        }
    }
    for e in seen {
        println!("n/a: {e}");
    }
}
