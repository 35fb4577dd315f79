//! Integer-interpreter speed on the corpus models' int8 artifacts, next to LiteRT.
//!
//! Run with `cargo bench --bench interp_rate [-- MODEL ...]` (release profile). `LITEQUANT_CORPUS` names
//! the corpus folders, `:`-separated (default `tests/corpus`). For each model with `model.tflite`,
//! `calib.npz` and `eval.npz` it builds the int8 artifact once (`litequant build`, float I/O, float fallback
//! allowed, 100 calibration samples) and prints, for 1 and 2 threads, in one table:
//! * litequant: eval samples/s of [`litequant::Interpreter`] (set every input, `invoke()`) over the samples of
//!   `eval.npz` preloaded into memory, split over the threads (one interpreter each, built and warmed up
//!   before the clock starts), repeated until >= 1 s, median of 3 such measurements;
//! * LiteRT's rate for the same artifact, samples and threads, without delegate
//!   (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`) and with the default XNNPACK delegate (`benches/litert_rate.py`,
//!   run by `LITEQUANT_TEST_PYTHON`, default `.venv/bin/python`), and litequant's rate over each.
//!
//! Then, when mobilenetv2_035_96 is among the models, the wall time of its accuracy-target job (target: 2 dB
//! above the fully quantized output SQNR, its 200 eval samples) next to one plain int8 job with the same
//! evaluation, both at 1 thread through the release binary. `-- --no-target` skips that part. Speed is only
//! measured here, never asserted in tests.

use litequant::dataset::{DatasetFormat, DatasetSpec};
use litequant::engine::load_source;
use litequant::eval::EvalData;
use litequant::Interpreter;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Barrier;
use std::time::{Duration, Instant};

mod common;
use common::{find_python, machine_line, median, print_aligned, rate_cell};

/// Each measurement runs at least this long.
const MIN_MEASURE: Duration = Duration::from_secs(1);
/// Measurements per number; the median is reported.
const MEASUREMENTS: usize = 3;
/// Thread counts measured (the target machine has 2 cores).
const THREADS: [usize; 2] = [1, 2];
/// Calibration samples of the int8 artifacts.
const CALIBRATION_SAMPLES: usize = 100;
/// The model of the accuracy-target timing, and how far above its fully quantized SQNR the target is.
const TARGET_MODEL: &str = "mobilenetv2_035_96";
const TARGET_MARGIN_DB: f64 = 2.0;
const LITERT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/litert_rate.py");
const LITEQUANT_BIN: &str = env!("CARGO_BIN_EXE_litequant");

/// A corpus model, its int8 artifact and its evaluation samples (flat, one vector per input).
struct Model {
    name: String,
    dir: PathBuf,
    artifact: Vec<u8>,
    artifact_path: PathBuf,
    samples: Vec<Vec<Vec<f32>>>,
}

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let no_target = std::env::args().any(|a| a == "--no-target");
    let corpora: Vec<PathBuf> = std::env::var("LITEQUANT_CORPUS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus").into())
        .split(':')
        // Absolute: the artifacts are built from a temporary folder's config.
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p)))
        .collect();
    let work = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: temporary folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dirs = model_dirs(&corpora, &filters);
    if dirs.is_empty() {
        eprintln!("error: no model with model.tflite, calib.npz and eval.npz in {corpora:?}");
        return ExitCode::FAILURE;
    }
    let python = find_python();
    println!("{}", machine_line());
    println!("corpus: {corpora:?}");
    match &python {
        Ok(p) => println!("LiteRT: {} {}", p.display(), LITERT_SCRIPT),
        Err(why) => println!("LiteRT: n/a ({why})"),
    }
    println!("litequant: {LITEQUANT_BIN}\n");

    let mut table = vec![[
        "model",
        "threads",
        "eval samples",
        "litequant /s",
        "LiteRT no delegate /s",
        "LiteRT XNNPACK /s",
        "vs no delegate",
        "vs XNNPACK",
    ]
    .map(String::from)
    .to_vec()];
    for dir in &dirs {
        let model = match prepare(dir, work.path()) {
            Ok(m) => m,
            Err(e) => {
                println!("{}: n/a: {e}", dir.display());
                continue;
            }
        };
        for threads in THREADS {
            eprintln!("measuring {} with {threads} thread(s)...", model.name);
            let ours = interpreter_rate(&model, threads);
            let (none, xnn) = match &python {
                Ok(p) => litert_rates(p, &model, threads),
                Err(why) => (Err(why.clone()), Err(why.clone())),
            };
            let ratio = |theirs: &Result<f64, String>| match (&ours, theirs) {
                (Ok(a), Ok(b)) => format!("{:.2}x", a / b),
                _ => "n/a".into(),
            };
            if let Err(e) = &ours {
                eprintln!("{}: {e}", model.name);
            }
            table.push(vec![
                model.name.clone(),
                threads.to_string(),
                model.samples.len().to_string(),
                rate_cell(&ours),
                rate_cell(&none),
                rate_cell(&xnn),
                ratio(&none),
                ratio(&xnn),
            ]);
        }
    }
    print_aligned(&table);

    let target_dir = dirs
        .iter()
        .find(|d| d.file_name().is_some_and(|n| n == TARGET_MODEL));
    if let (Some(dir), false) = (target_dir, no_target) {
        println!();
        match target_timing(dir, work.path()) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => println!("accuracy target on {TARGET_MODEL}: n/a: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// Every model folder of the corpora with a model, calibration and evaluation data, sorted by name.
fn model_dirs(corpora: &[PathBuf], filters: &[String]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = corpora
        .iter()
        .filter_map(|c| std::fs::read_dir(c).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            ["model.tflite", "calib.npz", "eval.npz"]
                .iter()
                .all(|f| p.join(f).is_file())
        })
        .filter(|p| {
            filters.is_empty()
                || p.file_name()
                    .is_some_and(|n| filters.iter().any(|f| n == f.as_str()))
        })
        .collect();
    dirs.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    dirs
}

/// The int8 artifact of a model and its evaluation samples.
fn prepare(dir: &Path, work: &Path) -> Result<Model, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = work.join(&name);
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    build(dir, &name, &out, None, 1)?;
    let artifact_path = out.join("out").join(format!("{name}.int8.tflite"));
    let artifact =
        std::fs::read(&artifact_path).map_err(|e| format!("{}: {e}", artifact_path.display()))?;
    let (graph, _) = load_source(&dir.join("model.tflite")).map_err(|e| e.to_string())?;
    let data = EvalData::load(&eval_spec(dir), &graph).map_err(|e| e.to_string())?;
    let samples = data
        .samples
        .iter()
        .map(|s| s.iter().map(|a| a.iter().copied().collect()).collect())
        .collect();
    Ok(Model {
        name,
        dir: dir.to_path_buf(),
        artifact,
        artifact_path,
        samples,
    })
}

fn eval_spec(dir: &Path) -> DatasetSpec {
    DatasetSpec {
        name: "eval".into(),
        format: DatasetFormat::Npz,
        path: Some(dir.join("eval.npz")),
        samples: None,
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
    }
}

/// Runs `litequant build --json` on a one-model int8 config in `out` (with the eval data and an SQNR
/// target when `target` is given); returns the job's report and the wall time.
fn build(
    dir: &Path,
    name: &str,
    out: &Path,
    target: Option<Option<f64>>,
    threads: usize,
) -> Result<(serde_json::Value, f64), String> {
    let quoted = |p: PathBuf| toml::Value::String(p.to_string_lossy().into_owned()).to_string();
    let mut text = format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.calib]\nformat = \"npz\"\npath = {}\nsamples = {CALIBRATION_SAMPLES}\n\n\
         [datasets.eval]\nformat = \"npz\"\npath = {}\n\n\
         [models.{}]\nsource = {}\nmodes = [\"int8\"]\ndataset = \"calib\"\nop_sets = [\"TFLITE_BUILTINS\"]\n",
        quoted(dir.join("calib.npz")),
        quoted(dir.join("eval.npz")),
        toml::Value::String(name.to_string()),
        quoted(dir.join("model.tflite")),
    );
    match target {
        Some(Some(db)) => text.push_str(&format!("eval = \"eval\"\ntarget_sqnr_db = {db}\n")),
        Some(None) => text.push_str("eval = \"eval\"\n"),
        None => {}
    }
    let config = out.join("quantize.toml");
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let start = Instant::now();
    let output = Command::new(LITEQUANT_BIN)
        .args([
            "build",
            "--json",
            "--no-cache",
            "--threads",
            &threads.to_string(),
            "-c",
        ])
        .arg(&config)
        .env_remove("LITEQUANT_CACHE_DIR")
        .output()
        .map_err(|e| format!("cannot run {LITEQUANT_BIN}: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "litequant build of {name} failed: {}",
            stderr.trim()
        ));
    }
    let reports: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("build --json: {e}"))?;
    let report = reports
        .get(0)
        .cloned()
        .ok_or("build --json printed no report")?;
    Ok((report, seconds))
}

/// Eval samples/s of the integer interpreter: median of [`MEASUREMENTS`].
fn interpreter_rate(m: &Model, threads: usize) -> Result<f64, String> {
    let once =
        |passes: usize| -> Result<(f64, Duration), String> { run_passes(m, threads, passes) };
    let (_, elapsed) = once(1)?;
    let passes = (MIN_MEASURE.as_secs_f64() / elapsed.as_secs_f64().max(1e-6)).ceil() as usize;
    let mut rates = Vec::with_capacity(MEASUREMENTS);
    for _ in 0..MEASUREMENTS {
        let (count, elapsed) = once(passes.max(1))?;
        rates.push(count / elapsed.as_secs_f64());
    }
    Ok(median(rates))
}

/// `passes` passes over the samples, split over `threads` (one interpreter each, warmed up on its share
/// before the clock starts): samples run and the time from the start barrier to the last thread's end.
fn run_passes(m: &Model, threads: usize, passes: usize) -> Result<(f64, Duration), String> {
    let share = m.samples.len().div_ceil(threads.max(1)).max(1);
    let chunks: Vec<&[Vec<Vec<f32>>]> = m.samples.chunks(share).collect();
    let barrier = Barrier::new(chunks.len() + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(), String> {
                    let prepared = Interpreter::new(&m.artifact).map_err(|e| e.to_string());
                    let mut interp = match prepared {
                        Ok(i) => Some(i),
                        Err(e) => {
                            barrier.wait();
                            return Err(e);
                        }
                    };
                    let warm = interp.as_mut().map(|i| run_samples(i, chunk));
                    barrier.wait();
                    warm.transpose()?;
                    for _ in 0..passes {
                        if let Some(i) = interp.as_mut() {
                            run_samples(i, chunk)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for w in workers {
            w.join().map_err(|_| "a worker panicked".to_string())??;
        }
        Ok(((m.samples.len() * passes) as f64, start.elapsed()))
    })
}

fn run_samples(interp: &mut Interpreter, samples: &[Vec<Vec<f32>>]) -> Result<(), String> {
    for sample in samples {
        for (i, x) in sample.iter().enumerate() {
            interp.set_input_f32(i, x).map_err(|e| e.to_string())?;
        }
        interp.invoke().map_err(|e| e.to_string())?;
        std::hint::black_box(interp.output(0));
    }
    Ok(())
}

/// LiteRT's rates (no delegate, XNNPACK) on the artifact with the evaluation samples.
fn litert_rates(
    python: &Path,
    m: &Model,
    threads: usize,
) -> (Result<f64, String>, Result<f64, String>) {
    let output = Command::new(python)
        .arg(LITERT_SCRIPT)
        .arg(&m.artifact_path)
        .arg(m.dir.join("eval.npz"))
        .arg(threads.to_string())
        .output();
    let json: Result<serde_json::Value, String> = output.map_err(|e| e.to_string()).and_then(|o| {
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'));
        line.and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| {
                let stderr = String::from_utf8_lossy(&o.stderr);
                stderr.lines().last().unwrap_or("no output").to_string()
            })
    });
    let rate = |key: &str| -> Result<f64, String> {
        let json = json.as_ref().map_err(Clone::clone)?;
        json.get(key)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| {
                json.get(format!("{key}_error"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("no rate reported")
                    .to_string()
            })
    };
    (rate("no_delegate"), rate("xnnpack"))
}

/// The accuracy-target job on [`TARGET_MODEL`] next to a plain int8 job with one evaluation.
fn target_timing(dir: &Path, work: &Path) -> Result<Vec<String>, String> {
    let out = work.join("target");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let (plain, plain_s) = build(dir, TARGET_MODEL, &out, Some(None), 1)?;
    let sqnr = plain
        .pointer("/accuracy/sqnr_db")
        .and_then(serde_json::Value::as_f64)
        .ok_or("the plain job's report has no output SQNR")?;
    let goal = sqnr + TARGET_MARGIN_DB;
    let (targeted, target_s) = build(dir, TARGET_MODEL, &out, Some(Some(goal)), 1)?;
    let kept = targeted
        .pointer("/target/kept_float")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    let reached = targeted
        .pointer("/accuracy/sqnr_db")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN);
    Ok(vec![
        format!("accuracy target on {TARGET_MODEL} (1 thread, 100 calibration samples, eval.npz):"),
        format!("  plain int8 job + one evaluation: {plain_s:.2} s (output SQNR {sqnr:.2} dB)"),
        format!(
            "  target_sqnr_db = {goal:.2}: {target_s:.2} s, {kept} op(s) kept float, reached {reached:.2} dB ({:.2}x the plain job)",
            target_s / plain_s
        ),
    ])
}
