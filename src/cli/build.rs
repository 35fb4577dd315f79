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
    /// Calibration threads (0: one per core; default: `LITEQUANT_THREADS`, else 0).
    #[arg(long)]
    threads: Option<usize>,
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

/// What `litequant eval` adds to a build: the accuracy tables, and HTML pages.
#[derive(Debug, Clone, Default)]
pub struct EvalView {
    /// Rows of the worst-tensor table per artifact.
    pub worst: usize,
    /// Write `<out_dir>/<model>.<mode>.html` beside each artifact.
    pub html: bool,
}

#[derive(Default)]
struct Outcome {
    reports: Vec<Report>,
    failed: Vec<String>,
    jobs: usize,
    bad_input: bool,
    /// Output folders, in the order configs were built, each with how many artifacts went there.
    out_dirs: Vec<(PathBuf, usize)>,
}

/// Warnings printed per job; the rest are counted (they are all in the job's JSON report).
const WARNINGS_SHOWN: usize = 10;

pub fn run(args: &BuildArgs) -> i32 {
    run_with(args, None)
}

/// `build`, or with `view` `eval`: only models with an `eval` dataset, their accuracy printed in full.
pub fn run_with(args: &BuildArgs, view: Option<&EvalView>) -> i32 {
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
    let threads = match super::resolve_threads(args.threads) {
        Ok(t) => t,
        Err(e) => {
            print_error(&e);
            return EXIT_BAD_INPUT;
        }
    };
    let bars = Bars::new();
    let mut outcome = Outcome::default();
    for config in &configs {
        if let Err(code) = build_config(config, args, threads, view, &bars, &mut outcome) {
            return code;
        }
    }
    if !args.json {
        let places: Vec<String> = outcome
            .out_dirs
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(dir, n)| format!("{n} in {}", shown_path(dir)))
            .collect();
        let total: usize = outcome.out_dirs.iter().map(|(_, n)| n).sum();
        if !places.is_empty() {
            eprintln!(
                "{total} artifact{} written: {}",
                if total == 1 { "" } else { "s" },
                places.join(", ")
            );
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
    threads: usize,
    view: Option<&EvalView>,
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
    if view.is_some() {
        let with_eval: Vec<String> = config
            .models
            .values()
            .filter(|m| m.eval.is_some())
            .map(|m| m.name.clone())
            .collect();
        if with_eval.is_empty() && !args.workspace {
            print_error(&format!(
                "{}: no model names an evaluation dataset; add `eval = \"NAME\"` (a [datasets.NAME] table with \
                 held-out samples, and `labels` for accuracy) to a [models.NAME] table",
                path.display()
            ));
            return Err(EXIT_BAD_INPUT);
        }
        plan.retain_models(&with_eval);
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
    if plan.out_dir.exists() && !plan.out_dir.is_dir() {
        let key = if args.out_dir.is_some() {
            "--out-dir".to_string()
        } else {
            format!("`settings.out_dir` of {}", path.display())
        };
        print_error(&format!(
            "{}: {key} must be a folder for the artifacts, and this is a file",
            plan.out_dir.display()
        ));
        return Err(EXIT_BAD_INPUT);
    }
    let opts = RunOptions {
        threads,
        progress: Some(bars),
        ..Default::default()
    };
    outcome.jobs += plan.jobs.len();
    outcome.out_dirs.push((plan.out_dir.clone(), 0));
    for job in &plan.jobs {
        match session.build(job, &opts) {
            Ok(built) => {
                bars.finish(&job.id());
                if let Some((_, n)) = outcome.out_dirs.last_mut() {
                    *n += 1;
                }
                let warnings: Vec<&String> = built
                    .warnings
                    .iter()
                    .chain(&built.artifact.report.quantization.warnings)
                    .collect();
                for w in warnings.iter().take(WARNINGS_SHOWN) {
                    print_warning(&format!("{}: {w}", job.id()));
                }
                if warnings.len() > WARNINGS_SHOWN {
                    print_warning(&format!(
                        "{}: {} more warnings (every one is in {})",
                        job.id(),
                        warnings.len() - WARNINGS_SHOWN,
                        job.report.display()
                    ));
                }
                if !args.json {
                    println!("{}", built.artifact.summary_line());
                    print_accuracy(&built.artifact.report, view);
                }
                if let (Some(view), Some(acc)) = (view, &built.artifact.report.accuracy) {
                    if view.html {
                        let page_path = job.artifact.with_extension("html");
                        let page = litequant::eval::html::render(
                            &job.id(),
                            &html_details(&built.artifact.report),
                            acc,
                        );
                        match litequant::engine::write_atomically(&page_path, page.as_bytes()) {
                            Ok(()) if !args.json => println!("  wrote {}", page_path.display()),
                            Ok(()) => {}
                            Err(e) => {
                                print_error(&format!("{}: {e}", page_path.display()));
                                outcome.failed.push(job.id());
                            }
                        }
                    }
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

/// `path` relative to the working folder when it is inside it, else as it is.
fn shown_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".into(),
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

/// The accuracy lines under an artifact's summary: a short table for `build`, the full one for `eval`.
fn print_accuracy(report: &Report, view: Option<&EvalView>) {
    if let Some(t) = &report.target {
        if t.kept_float.is_empty() {
            println!(
                "  accuracy target met with every op quantized (SQNR {})",
                litequant::eval::db(t.sqnr_db_fully_quantized)
            );
        } else {
            const LISTED: usize = 6;
            let mut kept: Vec<String> = t
                .kept_float
                .iter()
                .take(LISTED)
                .map(|k| format!("#{} {}", k.op_index, k.op))
                .collect();
            if t.kept_float.len() > LISTED {
                kept.push(format!(
                    "{} more in the report",
                    t.kept_float.len() - LISTED
                ));
            }
            println!(
                "  accuracy target met by keeping {} op(s) float ({}): SQNR {} -> {}, size {} -> {}, {:.1}% of multiply-adds in float",
                t.kept_float.len(),
                kept.join(", "),
                litequant::eval::db(t.sqnr_db_fully_quantized),
                litequant::eval::db(report.accuracy.as_ref().and_then(|a| a.sqnr_db)),
                litequant::engine::human_size(t.bytes_fully_quantized),
                litequant::engine::human_size(report.artifact_bytes),
                t.float_mac_share * 100.0
            );
        }
    }
    if let Some(acc) = &report.accuracy {
        let worst = view.map_or(3, |v| v.worst);
        print!("{}", acc.table(worst));
    }
}

/// Header rows of the HTML page besides the accuracy numbers.
fn html_details(report: &Report) -> Vec<(String, String)> {
    let q = &report.quantization;
    let mut rows = vec![
        ("mode".to_string(), report.mode.clone()),
        ("source".to_string(), report.source.clone()),
        (
            "size".to_string(),
            format!(
                "{} ({:.2}x of {})",
                litequant::engine::human_size(report.artifact_bytes),
                report.size_ratio,
                litequant::engine::human_size(report.source_bytes)
            ),
        ),
        (
            "ops".to_string(),
            format!("{} quantized, {} float", q.ops_quantized, q.ops_float.len()),
        ),
    ];
    if let Some(t) = &report.target {
        rows.push((
            "kept float for the accuracy target".to_string(),
            if t.kept_float.is_empty() {
                "none".to_string()
            } else {
                t.kept_float
                    .iter()
                    .map(|k| format!("{} #{} ({})", k.op, k.op_index, k.tensor))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
    }
    rows
}
