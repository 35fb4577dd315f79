//! `litequant build`.

use super::progress::Bars;
use super::{print_error, print_warning, EXIT_BAD_INPUT, EXIT_FAILED};
use litequant::engine::{run_job, Plan, RunOptions};
use std::path::PathBuf;

/// Arguments of `litequant build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The config file.
    #[arg(short, long, default_value = "quantize.toml")]
    config: PathBuf,
    /// Write artifacts here instead of `[settings] out_dir`.
    #[arg(long)]
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
}

pub fn run(args: &BuildArgs) -> i32 {
    let config = match litequant::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    let mut plan = Plan::new(&config, args.out_dir.as_deref());
    if !args.models.is_empty() {
        for m in &args.models {
            if !config.models.contains_key(m) {
                print_error(&format!("no model `{m}` in {}", args.config.display()));
                return EXIT_BAD_INPUT;
            }
        }
        plan.retain_models(&args.models);
    }
    let bars = Bars::new();
    let opts = RunOptions {
        threads: args.threads,
        progress: Some(&bars),
        ..Default::default()
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    let mut bad_input = false;
    for job in &plan.jobs {
        match run_job(job, &opts) {
            Ok(artifact) => {
                bars.finish(&job.id());
                for w in &artifact.report.quantization.warnings {
                    print_warning(&format!("{}: {w}", job.id()));
                }
                if !args.json {
                    println!("{}", artifact.summary_line());
                }
                reports.push(artifact.report);
            }
            Err(e) => {
                bars.finish(&job.id());
                bad_input |= e.is_bad_input();
                print_error(&format!("{}: {e}", job.id()));
                failed.push(job.id());
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    }
    if failed.is_empty() {
        0
    } else {
        print_error(&format!(
            "{} of {} jobs failed: {}",
            failed.len(),
            plan.jobs.len(),
            failed.join(", ")
        ));
        if bad_input {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILED
        }
    }
}
