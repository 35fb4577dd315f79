//! `litequant watch`: one line per rebuilt artifact on stdout; notes, warnings and errors on stderr.

use super::{print_error, print_warning, EXIT_FAILED};
use litequant::watch::{Watch, WatchEvent, WatchOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `litequant watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The config file.
    #[arg(short, long, default_value = "quantize.toml")]
    config: PathBuf,
    /// Poll for changes every MS milliseconds instead of OS notifications (network and container file
    /// systems).
    #[arg(long, value_name = "MS")]
    poll: Option<u64>,
    /// Quiet time in milliseconds: writes closer than this are one change.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    debounce: u64,
    /// Write artifacts here instead of `[settings] out_dir`.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Calibration threads (0: one per core; default: `LITEQUANT_THREADS`, else 0).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: &WatchArgs) -> i32 {
    let threads = match super::resolve_threads(args.threads) {
        Ok(t) => t,
        Err(e) => {
            print_error(&e);
            return super::EXIT_BAD_INPUT;
        }
    };
    let options = WatchOptions {
        out_dir: args.out_dir.clone(),
        poll: args.poll.map(Duration::from_millis),
        debounce: Duration::from_millis(args.debounce),
        threads,
        ..WatchOptions::default()
    };
    let watch = Watch::new(&args.config, options);
    let stop = watch.stop_handle();
    // Ctrl-C (and SIGTERM) stop the running job and wait for it: no temp file is left behind. A second one
    // exits at once, for a job that does not stop soon enough.
    let presses = std::sync::atomic::AtomicUsize::new(0);
    let on_interrupt = move || {
        if presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            eprintln!("stopping (Ctrl-C again to exit at once)");
            stop.stop();
        } else {
            std::process::exit(130);
        }
    };
    if let Err(e) = ctrlc::set_handler(on_interrupt) {
        print_warning(&format!("Ctrl-C will not stop cleanly: {e}"));
    }
    let config = args.config.display().to_string();
    match watch.run(&mut |event| show(&config, event)) {
        Ok(()) => 0,
        Err(e) => {
            print_error(&e.to_string());
            EXIT_FAILED
        }
    }
}

fn show(config: &str, event: WatchEvent) {
    match event {
        WatchEvent::Watching { inputs } => {
            eprintln!("watching {config} and {inputs} input files and folders (Ctrl-C to stop)")
        }
        WatchEvent::Built {
            trigger,
            artifact,
            latency,
        } => {
            for w in &artifact.report.quantization.warnings {
                print_warning(&format!("{}: {w}", artifact.job));
            }
            let after = if trigger.files.is_empty() {
                String::new()
            } else {
                format!("  [{} after the change]", litequant::engine::human_time(latency.as_secs_f64()))
            };
            println!("{trigger} -> {}{after}", artifact.summary_line());
            if let Some(acc) = &artifact.report.accuracy {
                println!("  {}", acc.summary_line());
            }
        }
        WatchEvent::Failed {
            trigger,
            job,
            error,
        } => print_error(&format!(
            "{trigger} -> {job} failed: {error} (its last good artifact stays; watching for the fix)"
        )),
        WatchEvent::ConfigInvalid(e) => print_error(&format!(
            "{e} (the last good artifacts stay; watching for the fix)"
        )),
        WatchEvent::ConfigReloaded { diff } => {
            let mut what = Vec::new();
            if !diff.changed.is_empty() {
                what.push(format!("rebuilding {}", diff.changed.join(", ")));
            }
            if !diff.removed.is_empty() {
                what.push(format!("no longer building {}", diff.removed.join(", ")));
            }
            if what.is_empty() {
                what.push("no job affected".to_string());
            }
            eprintln!("{config} changed: {}", what.join("; "));
        }
        WatchEvent::Warning(w) => print_warning(&w),
        _ => {}
    }
}
