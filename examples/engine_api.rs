//! Using the engine as a library: load a config, look at the plan, run every job.
//!
//! ```sh
//! cargo run --example engine_api -- quantize.toml.example
//! ```

use litequant::engine::{run_job, CancellationToken, Plan, RunOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quantize.toml.example".to_string());
    let config = match litequant::config::load(std::path::Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let out_dir = std::env::temp_dir().join("litequant-engine-api-example");
    let plan = Plan::new(&config, Some(&out_dir));
    println!(
        "{} jobs read {} files:",
        plan.jobs.len(),
        plan.inputs().len()
    );
    for file in plan.inputs() {
        println!("  {}", file.display());
    }
    // A watcher would keep this token and cancel it when an input changes mid-job.
    let opts = RunOptions {
        threads: 0,
        cancel: CancellationToken::new(),
        progress: None,
    };
    let mut failed = false;
    for job in &plan.jobs {
        match run_job(job, &opts) {
            Ok(artifact) => println!("{}", artifact.summary_line()),
            Err(e) => {
                eprintln!("{}: {e}", job.id());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
