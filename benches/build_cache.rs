//! Whole `litequant build` runs of a 10-model config: calibrating from scratch, rebuilding from
//! `quantize.lock` without a cache, and hitting the cache — outside and inside a cargo project (where the
//! cache location comes from `cargo metadata`).
//!
//! `cargo bench --bench build_cache` (release profile). Each number is the median wall time of 5 runs of the
//! release binary as a separate process, as a user or build script sees it. Targets (DESIGN.md): a cache-hit
//! build of a 10-model config under 100 ms (floor), 20 ms or less (goal).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const LITEQUANT_BIN: &str = env!("CARGO_BIN_EXE_litequant");
const RUNS: usize = 5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// 10 models (5 variants each of the digits MLP and CNN fixtures), modes dynamic + int8: 20 jobs.
fn config() -> String {
    let f = fixtures();
    let mut s = format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.mlp]\nformat = \"npz\"\npath = {:?}\n\n[datasets.cnn]\nformat = \"npz\"\npath = {:?}\n",
        f.join("data/digits_mlp_calib.npz").display().to_string(),
        f.join("data/digits_cnn_calib.npz").display().to_string()
    );
    let variants = [
        "",
        "per_channel = false\n",
        "per_channel_dense = false\n",
        "inference_input_type = \"int8\"\ninference_output_type = \"int8\"\n",
        "op_sets = [\"TFLITE_BUILTINS_INT8\"]\n",
    ];
    for (model, data) in [("mlp", "digits_mlp"), ("cnn", "digits_cnn")] {
        for (i, extra) in variants.iter().enumerate() {
            s.push_str(&format!(
                "\n[models.{model}{i}]\nsource = {:?}\nmodes = [\"dynamic\", \"int8\"]\ndataset = \"{model}\"\n{extra}",
                f.join(format!("models/{data}.tflite")).display().to_string()
            ));
        }
    }
    s
}

fn run(dir: &Path, args: &[&str]) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new(LITEQUANT_BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("LITEQUANT_CACHE_DIR")
        .output()
        .map_err(|e| e.to_string())?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (cold, locked without cache, cache hit) medians for a project in `dir`.
fn measure(dir: &Path, cache: &Path) -> Result<[Duration; 3], String> {
    let clear = |lock: bool| {
        let _ = std::fs::remove_dir_all(cache);
        let _ = std::fs::remove_dir_all(dir.join("out"));
        if lock {
            let _ = std::fs::remove_file(dir.join("quantize.lock"));
        }
    };
    let mut cold = Vec::new();
    for _ in 0..RUNS {
        clear(true);
        cold.push(run(dir, &["build"])?);
    }
    let mut locked = Vec::new();
    for _ in 0..RUNS {
        clear(false);
        locked.push(run(dir, &["build", "--locked"])?);
    }
    let mut hit = Vec::new();
    run(dir, &["build"])?;
    for _ in 0..RUNS {
        hit.push(run(dir, &["build"])?);
    }
    Ok([median(cold), median(locked), median(hit)])
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() -> ExitCode {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plain = tmp.path().join("plain");
    let cargo = tmp.path().join("cargo-project");
    for dir in [&plain, &cargo] {
        if let Err(e) = std::fs::create_dir_all(dir.join("src"))
            .and_then(|_| std::fs::write(dir.join("quantize.toml"), config()))
        {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let manifest = "[package]\nname = \"bench-consumer\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n";
    if let Err(e) = std::fs::write(cargo.join("Cargo.toml"), manifest)
        .and_then(|_| std::fs::write(cargo.join("src/lib.rs"), ""))
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!("litequant: {LITEQUANT_BIN}");
    println!("10 models x (dynamic, int8) = 20 jobs; median of {RUNS} process runs, ms\n");
    println!("| project | cold (calibrate, empty cache) | --locked (no cache) | cache hit |");
    println!("|---|---:|---:|---:|");
    let cases = [
        ("plain folder", &plain, plain.join(".litequant-cache")),
        (
            "cargo project",
            &cargo,
            cargo.join("target/litequant-cache"),
        ),
    ];
    for (name, dir, cache) in cases {
        match measure(dir, &cache) {
            Ok([cold, locked, hit]) => {
                println!("| {name} | {} | {} | {} |", ms(cold), ms(locked), ms(hit))
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
