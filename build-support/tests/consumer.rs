//! End to end: a consumer crate (examples/digits-classifier) whose build.rs quantizes with litequant-build,
//! built with the real cargo. Checks what the build.rs issue promises: artifacts embedded; no re-run on an
//! untouched tree; a re-run when a model or dataset changes; identical bytes from two clean builds with
//! different thread counts; locked builds from quantize.lock, failing on a changed dataset, naming it. And
//! what the interpreter issue promises: the example classifies its eval digits with `litequant::Interpreter`
//! exactly as LiteRT classifies them with the same artifacts (needs `LITEQUANT_TEST_PYTHON`).
//!
//! The consumer's dependencies compile once into `target/consumer-tests` (shared across runs); each test
//! builds its own copy of the crate (its own `OUT_DIR`) with its own cache folder.

use litequant::engine::digest::FORMAT_VERSION;
use litequant::engine::{Cache, LockPolicy, Plan, RunOptions, Session};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// The copies share one target dir, and cargo gives a path package the same `OUT_DIR` wherever it sits:
/// the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("build-support sits in the repository")
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "quantize.lock" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A copy of the example crate in a temp folder, its build-dependency pointing at this repository.
struct Consumer {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
}

impl Consumer {
    fn new() -> Consumer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("digits-classifier");
        copy_dir(&repo().join("examples/digits-classifier"), &dir);
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap()
            .replace(
                "path = \"../../build-support\"",
                &format!(
                    "path = {:?}",
                    repo().join("build-support").display().to_string()
                ),
            )
            .replace(
                "path = \"../..\"",
                &format!("path = {:?}", repo().display().to_string()),
            );
        std::fs::write(&manifest, text).unwrap();
        let cache = tmp.path().join("cache");
        Consumer {
            _tmp: tmp,
            dir,
            cache,
        }
    }

    fn cargo(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", repo().join("target/consumer-tests"))
            .env("LITEQUANT_CACHE_DIR", &self.cache)
            .env_remove("LITEQUANT_LOCKED")
            .env_remove("LITEQUANT_THREADS")
            .env_remove("RUSTFLAGS");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `cargo build`; panics with cargo's output when it fails. Returns the build script's OUT_DIR.
    fn build(&self, envs: &[(&str, &str)]) -> PathBuf {
        let out = self.cargo(&["build", "--message-format=json"], envs);
        assert!(
            out.status.success(),
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir(&out)
    }
}

fn out_dir(out: &Output) -> PathBuf {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "build-script-executed")
        .filter(|m| {
            m["package_id"]
                .as_str()
                .is_some_and(|p| p.contains("digits-classifier"))
        })
        .find_map(|m| m["out_dir"].as_str().map(PathBuf::from))
        .expect("cargo reports the consumer's build script")
}

/// When the build script last ran: cargo rewrites `<build dir>/output` on every run.
fn last_run(out_dir: &Path) -> SystemTime {
    std::fs::metadata(out_dir.parent().unwrap().join("output"))
        .and_then(|m| m.modified())
        .unwrap()
}

fn touch(path: &Path) {
    std::thread::sleep(Duration::from_millis(20));
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn artifacts(out_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn consumer_crate_embeds_artifacts_and_rebuilds_exactly_when_inputs_change() {
    let _serial = serial();
    let c = Consumer::new();
    let started = std::time::Instant::now();
    let out = c.build(&[]);
    eprintln!(
        "cold build (deps already compiled or not): {:?}",
        started.elapsed()
    );
    let files = artifacts(&out);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["digits.dynamic.tflite", "digits.int8.tflite"]);
    assert!(out.join("quantized_models.rs").is_file());

    // The binary sees the embedded models, aligned, with the artifact's bytes and parameters.
    let run = c.cargo(&["run", "--quiet"], &[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let int8 = &files[1].1;
    assert!(
        stdout.contains(&format!(
            "digits.int8: {} bytes, 16-byte aligned: true, TFLite identifier: TFL3",
            int8.len()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Int8 scale ["), "{stdout}");

    // Untouched tree: the build script does not run again.
    let ran = last_run(&out);
    let started = std::time::Instant::now();
    assert_eq!(c.build(&[]), out);
    eprintln!("no-op rebuild: {:?}", started.elapsed());
    assert_eq!(
        last_run(&out),
        ran,
        "an untouched tree re-ran the build script"
    );

    // A model or a dataset touched: it runs again (and, the bytes being the same, the cache answers).
    touch(&c.dir.join("models/digits.keras"));
    c.build(&[]);
    let after_model = last_run(&out);
    assert!(
        after_model > ran,
        "touching the model did not re-run the build script"
    );
    touch(&c.dir.join("data/digits_calib.npz"));
    c.build(&[]);
    assert!(
        last_run(&out) > after_model,
        "touching the dataset did not re-run the build script"
    );
    assert_eq!(artifacts(&out), files);

    // A clean build of another copy (OUT_DIR and build-script state removed, its own empty cache),
    // calibrating on one thread: the same bytes.
    let d = Consumer::new();
    let clean = d.cargo(&["clean", "-p", "digits-classifier"], &[]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(!out.exists(), "cargo clean -p left {}", out.display());
    let out_d = d.build(&[("LITEQUANT_THREADS", "1")]);
    assert!(
        d.cache.join(format!("v{FORMAT_VERSION}")).is_dir(),
        "the clean build did not fill its own cache"
    );
    assert_eq!(
        artifacts(&out_d),
        files,
        "two clean builds gave different artifacts"
    );
}

#[test]
fn locked_consumer_builds_rebuild_from_the_lock_and_fail_on_a_changed_dataset() {
    let _serial = serial();
    let c = Consumer::new();
    // What `litequant build` does: build with the lock policy Update, write quantize.lock.
    let config = litequant::config::load(&c.dir.join("quantize.toml")).unwrap();
    let mut plan = Plan::new(&config, Some(&c.dir.join("target/quantized")));
    plan.lock = LockPolicy::Update;
    let session = Session::new(&plan, Some(Cache::new(c.dir.join("cli-cache")))).unwrap();
    for job in &plan.jobs {
        session.build(job, &RunOptions::default()).unwrap();
    }
    assert!(session.write_lock(&plan).unwrap());
    let cli_int8 = std::fs::read(c.dir.join("target/quantized/digits.int8.tflite")).unwrap();

    // Locked: rebuilt from the lock's ranges, the same bytes as the CLI's.
    let out = c.build(&[("LITEQUANT_LOCKED", "1")]);
    assert_eq!(
        std::fs::read(out.join("digits.int8.tflite")).unwrap(),
        cli_int8
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("digits.int8.json")).unwrap()).unwrap();
    assert_eq!(report["ranges_from"], "lock");

    // A changed dataset fails the locked build, naming the file.
    let data = c.dir.join("data/digits_calib.npz");
    let samples = ndarray::Array2::from_shape_fn((50, 64), |(i, j)| ((i * 7 + j) % 17) as f32);
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&data).unwrap());
    npz.add_array("input_layer", &samples).unwrap();
    npz.finish().unwrap();
    let failed = c.cargo(&["build"], &[("LITEQUANT_LOCKED", "1")]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "a drifted locked build passed:\n{stderr}"
    );
    assert!(stderr.contains("data/digits_calib.npz changed"), "{stderr}");
    assert!(stderr.contains("refresh the lock"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Without LITEQUANT_LOCKED, a dev build warns about the stale lock and calibrates afresh.
    let warned = c.cargo(&["build"], &[]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert!(stderr.contains("is stale for digits.int8"), "{stderr}");
}

/// The Python that runs LiteRT; the LiteRT comparison fails, not skips, without it.
fn litert_python() -> String {
    std::env::var("LITEQUANT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "this test compares with LiteRT: set LITEQUANT_TEST_PYTHON to a Python with ai-edge-litert and numpy, e.g.\n  \
             LITEQUANT_TEST_PYTHON=/work/venv/bin/python cargo test -p litequant-build --test consumer"
        )
    })
}

/// What the example prints for one model: `<model>.<mode>: accuracy A on N eval samples` and
/// `<model>.<mode> predictions: c0 c1 ...`.
fn printed_predictions(stdout: &str, model: &str) -> (f64, Vec<usize>) {
    let accuracy = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{model}: accuracy ")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no accuracy line for {model}:\n{stdout}"));
    let predictions = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{model} predictions: ")))
        .unwrap_or_else(|| panic!("no predictions line for {model}:\n{stdout}"))
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    (accuracy, predictions)
}

fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(predictions.len(), labels.len());
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    correct as f64 / labels.len() as f64
}

#[test]
fn consumer_classifies_eval_digits_exactly_as_litert_does_with_the_same_artifacts() {
    let python = litert_python();
    let _serial = serial();
    let c = Consumer::new();
    let out = c.build(&[]);
    let started = std::time::Instant::now();
    let run = c.cargo(&["run", "--quiet", "--", "--predictions"], &[]);
    eprintln!("example run (build already done): {:?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let eval = c.dir.join("data/digits_eval.npz");
    for mode in ["int8", "dynamic"] {
        let model = format!("digits.{mode}");
        let (printed_accuracy, ours) = printed_predictions(&stdout, &model);
        let litert = Command::new(&python)
            .arg(repo().join("tests/litert/classify.py"))
            .arg(out.join(format!("{model}.tflite")))
            .arg(&eval)
            .args(["input_layer", "labels"])
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        assert!(
            litert.status.success(),
            "classify.py failed on {model}:\n{}",
            String::from_utf8_lossy(&litert.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&litert.stdout).unwrap();
        let classes = |key: &str| -> Vec<usize> {
            serde_json::from_value(result[key].clone())
                .unwrap_or_else(|e| panic!("{key} in classify.py's output: {e}"))
        };
        let (reference, xnnpack, labels) = (
            classes("builtin_ref"),
            classes("xnnpack"),
            classes("labels"),
        );
        assert_eq!(labels.len(), 400, "the example's eval set has 400 digits");
        let ours_accuracy = accuracy(&ours, &labels);
        let differ = |other: &[usize]| ours.iter().zip(other).filter(|(a, b)| a != b).count();
        eprintln!(
            "{model}: accuracy ours {ours_accuracy:.4}, LiteRT reference kernels {:.4} ({} predictions differ), \
             LiteRT XNNPACK {:.4} ({} differ)",
            accuracy(&reference, &labels),
            differ(&reference),
            accuracy(&xnnpack, &labels),
            differ(&xnnpack),
        );
        assert!(
            (printed_accuracy - ours_accuracy).abs() < 5e-5,
            "{model}: the example printed accuracy {printed_accuracy}, its predictions give {ours_accuracy}"
        );
        assert_eq!(
            ours, reference,
            "{model}: the example's predictions differ from LiteRT's reference kernels"
        );
        // XNNPACK computes in its own order (and its own dynamic-range quantization): where it disagrees on
        // a sample, it must still reach the same accuracy.
        if xnnpack != ours {
            assert_eq!(
                accuracy(&xnnpack, &labels),
                ours_accuracy,
                "{model}: LiteRT with XNNPACK reaches another accuracy than the example"
            );
        }
    }
}
