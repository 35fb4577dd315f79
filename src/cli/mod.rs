//! The clap front end: `build`, `watch`, `check`, `convert`, `inspect`.

mod build;
mod check;
mod convert;
mod inspect;
mod progress;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit code for a bad input (unreadable file, corrupt model, config error).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code when a job could not do what was asked.
pub const EXIT_FAILED: i32 = 1;

/// litequant: post-training quantization of TensorFlow Lite models, declared in quantize.toml.
#[derive(Parser, Debug)]
#[command(name = "litequant", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Quantize every model x mode of a config into `<out_dir>/<model>.<mode>.tflite` (+ a JSON report).
    Build(build::BuildArgs),
    /// Build, then keep the artifacts current: rebuild exactly what a change to the config, a model or a
    /// dataset touches.
    Watch(watch::WatchArgs),
    /// Build (through the cache), then show what quantization cost on each model's `eval` dataset: output
    /// SQNR, top-1 agreement, accuracy, and the SQNR of every tensor, worst first.
    Eval(EvalArgs),
    /// Validate a config without building: keys, sources, datasets, exclude patterns.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "quantize.toml")]
        config: PathBuf,
    },
    /// Write the float32 .tflite graph of a Keras model (`.keras`), as TF's converter would.
    Convert {
        /// The Keras model.
        model: PathBuf,
        /// Where to write the .tflite model.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Describe a .tflite model (or the float graph of a .keras one): I/O, ops, parameters, metadata, what
    /// litequant can quantize.
    Inspect {
        /// The model.
        model: PathBuf,
        /// Machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `litequant eval`.
#[derive(clap::Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    build: build::BuildArgs,
    /// Also write `<out_dir>/<model>.<mode>.html`: a self-contained page with a per-tensor SQNR chart.
    #[arg(long)]
    html: bool,
    /// Rows of the worst-tensor table.
    #[arg(long, default_value_t = 10)]
    worst: usize,
    /// Every tensor in the table.
    #[arg(long, conflicts_with = "worst")]
    all: bool,
}

/// Runs the CLI and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => build::run(&args),
        Command::Eval(args) => build::run_with(
            &args.build,
            Some(&build::EvalView {
                worst: if args.all { usize::MAX } else { args.worst },
                html: args.html,
            }),
        ),
        Command::Watch(args) => watch::run(&args),
        Command::Check { config } => check::run(&config),
        Command::Convert { model, output } => convert::run(&model, &output),
        Command::Inspect { model, json } => inspect::run(&model, json),
    }
}

/// The environment variable that sets the calibration threads when `--threads` is not given.
pub const THREADS_ENV: &str = "LITEQUANT_THREADS";

/// The calibration threads: `--threads`, else `LITEQUANT_THREADS`, else 0 (one per core); more than
/// [`litequant::engine::MAX_THREADS`] is refused, naming where the number came from.
pub fn resolve_threads(arg: Option<usize>) -> Result<usize, String> {
    let max = litequant::engine::MAX_THREADS;
    let (n, from) = match arg {
        Some(n) => (n, format!("--threads {n}")),
        None => match std::env::var(THREADS_ENV) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) => (n, format!("{THREADS_ENV}={v}")),
                Err(_) => {
                    return Err(format!(
                        "{THREADS_ENV}={v:?}: expected a number of calibration threads from 0 (one per core) to {max}"
                    ))
                }
            },
            _ => (0, String::new()),
        },
    };
    if n > max {
        return Err(format!(
            "{from}: at most {max} calibration threads are allowed (0 = one per core)"
        ));
    }
    Ok(n)
}

/// Prints an error for a person (red on a terminal).
pub fn print_error(msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;31merror\x1b[0m: {msg}");
    } else {
        eprintln!("error: {msg}");
    }
}

/// Prints a warning for a person (yellow on a terminal).
pub fn print_warning(msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;33mwarning\x1b[0m: {msg}");
    } else {
        eprintln!("warning: {msg}");
    }
}
