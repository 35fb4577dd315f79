//! `litequant build`.

use super::progress::Bars;
use super::{print_error, print_warning, EXIT_BAD_INPUT, EXIT_FAILED};
use litequant::engine::workspace::workspace_configs;
use litequant::engine::{Cache, LockPolicy, Plan, Report, RunOptions, Session};
use std::path::{Path, PathBuf};

/// Arguments of `litequant build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The config file.
    #[arg(short, long, default_value = "quantize.toml")]
    config: PathBuf,
    /// Write artifacts here instead of `[settings] out_dir`.
    #[arg(long, conflicts_with = "workspace")]
    out_dir: Option<PathBuf>,
    /// Only these models (repeatable).
    #[arg(long = "model")]
    models: Vec<String>,
    /// Calibration threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the reports as JSON (one array) on stdout instead of summary lines.
    #[arg(long)]
    json: bool,
    /// Rebuild every artifact from `quantize.lock` without calibrating; fail, listing what drifted, if an
    /// input, a setting or the engine's format version differs from the lock.
    #[arg(long)]
    locked: bool,
    /// Build the config of every member of the cargo workspace around the current folder
    /// (`[package.metadata.litequant] config`, else the member's `quantize.toml`).
    #[arg(long, conflicts_with = "config")]
    workspace: bool,
    /// Neither read nor write the artifact cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Default)]
struct Outcome {
    reports: Vec<Report>,
    failed: Vec<String>,
    jobs: usize,
    bad_input: bool,
}

pub fn run(args: &BuildArgs) -> i32 {
    let configs = if args.workspace {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        match workspace_configs(&cwd) {
            Ok(c) if c.is_empty() => {
                print_error(&format!(
                    "{}: no workspace member declares a config (`[package.metadata.litequant] config` or a quantize.toml beside Cargo.toml)",
                    cwd.display()
                ));
                return EXIT_BAD_INPUT;
            }
            Ok(c) => c.into_iter().map(|(_, path)| path).collect(),
            Err(e) => {
                print_error(&e.to_string());
                return EXIT_BAD_INPUT;
            }
        }
    } else {
        vec![args.config.clone()]
    };
    let bars = Bars::new();
    let mut outcome = Outcome::default();
    for config in &configs {
        if let Err(code) = build_config(config, args, &bars, &mut outcome) {
            return code;
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome.reports).unwrap_or_default()
        );
    }
    if outcome.failed.is_empty() {
        0
    } else {
        print_error(&format!(
            "{} of {} jobs failed: {}",
            outcome.failed.len(),
            outcome.jobs,
            outcome.failed.join(", ")
        ));
        if outcome.bad_input {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILED
        }
    }
}

/// Builds one config; `Err(exit code)` when it cannot start at all.
fn build_config(
    path: &Path,
    args: &BuildArgs,
    bars: &Bars,
    outcome: &mut Outcome,
) -> Result<(), i32> {
    let config = litequant::config::load(path).map_err(|e| {
        print_error(&e.to_string());
        EXIT_BAD_INPUT
    })?;
    let mut plan = Plan::new(&config, args.out_dir.as_deref());
    if !args.models.is_empty() {
        let missing: Vec<&String> = args
            .models
            .iter()
            .filter(|m| !config.models.contains_key(*m))
            .collect();
        if !args.workspace || missing.len() == args.models.len() {
            if let Some(m) = missing.first() {
                print_error(&format!("no model `{m}` in {}", path.display()));
                return Err(EXIT_BAD_INPUT);
            }
        }
        plan.retain_models(&args.models);
    }
    plan.lock = if args.locked {
        LockPolicy::Locked
    } else {
        LockPolicy::Update
    };
    let cache = (!args.no_cache).then(|| Cache::locate(&config));
    let session = Session::new(&plan, cache).map_err(|e| {
        print_error(&e.to_string());
        EXIT_BAD_INPUT
    })?;
    let opts = RunOptions {
        threads: args.threads,
        progress: Some(bars),
        ..Default::default()
    };
    outcome.jobs += plan.jobs.len();
    for job in &plan.jobs {
        match session.build(job, &opts) {
            Ok(built) => {
                bars.finish(&job.id());
                for w in built
                    .warnings
                    .iter()
                    .chain(&built.artifact.report.quantization.warnings)
                {
                    print_warning(&format!("{}: {w}", job.id()));
                }
                if !args.json {
                    println!("{}", built.artifact.summary_line());
                }
                outcome.reports.push(built.artifact.report);
            }
            Err(e) => {
                bars.finish(&job.id());
                outcome.bad_input |= e.is_bad_input();
                print_error(&format!("{}: {e}", job.id()));
                outcome.failed.push(job.id());
            }
        }
    }
    match session.write_lock(&plan) {
        Ok(true) if !args.json => eprintln!("wrote {}", plan.lock_file.display()),
        Ok(_) => {}
        Err(e) => {
            print_error(&e.to_string());
            outcome.failed.push(plan.lock_file.display().to_string());
        }
    }
    Ok(())
}
