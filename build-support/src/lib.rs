//! `litequant-build`: quantize TensorFlow Lite models from a crate's `build.rs` and embed them.
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     litequant_build::compile("quantize.toml");
//! }
//! ```
//! ```ignore
//! // src/main.rs
//! include!(concat!(env!("OUT_DIR"), "/quantized_models.rs"));
//! let model: &[u8] = &digits::INT8; // 16-byte aligned .tflite bytes
//! let input = digits::INT8.inputs[0]; // name, shape, dtype, scale, zero point
//! ```
//!
//! Paths in the config are relative to the config's folder; the config itself to `CARGO_MANIFEST_DIR`.
//! Artifacts go to `OUT_DIR` as `<model>.<mode>.tflite` (with a JSON report beside each), and
//! `OUT_DIR/quantized_models.rs` defines one module per model with one static per mode (`core` only, so
//! `no_std` firmware can embed models). Every file and environment variable read is declared to cargo, so an
//! untouched tree does not re-run the build script and any real change does.
//!
//! `quantize.lock` is read, never written, here: with `LITEQUANT_LOCKED=1`, or in a release build when the
//! lock exists, every artifact is rebuilt from the lock's ranges and any drift fails the build; in a dev build a
//! matching lock is used and a stale one gives a warning and a fresh calibration. Artifacts are cached (see
//! [`litequant::engine::Cache::locate`]) and shared with `litequant build` and `litequant watch`.
//!
//! Build scripts compile their dependencies unoptimised: calibration then runs ~30x slower. Add to the
//! consumer's `Cargo.toml`:
//! ```toml
//! [profile.dev.build-override]
//! opt-level = 3
//! [profile.release.build-override]
//! opt-level = 3
//! ```

#![deny(missing_docs)]
// The crate docs show a whole build.rs, `fn main` included.
#![allow(clippy::needless_doctest_main)]

mod module;

use litequant::engine::workspace::{manifest_config, manifest_declares_config};
pub use litequant::engine::LockPolicy;
use litequant::engine::{Cache, CacheStatus, JobError, Plan, Report, RunOptions, Session};
use std::path::{Path, PathBuf};

/// The environment variables litequant-build reads (each declared with `rerun-if-env-changed`).
pub const ENV_VARS: &[&str] = &[
    "LITEQUANT_LOCKED",
    "LITEQUANT_CACHE_DIR",
    "LITEQUANT_THREADS",
    "DOCS_RS",
];

/// The engine version this build crate drives.
pub fn engine_version() -> &'static str {
    litequant::VERSION
}

/// Why quantization in a build script failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable cargo sets for build scripts is missing: not running from build.rs.
    #[error("{0} is not set: litequant_build runs from a build script (build.rs), or set the paths with Builder::config and Builder::out_dir")]
    NotInBuildScript(&'static str),
    /// `Cargo.toml`'s `[package.metadata.litequant]` is unusable.
    #[error(transparent)]
    Manifest(#[from] litequant::engine::workspace::WorkspaceError),
    /// The config cannot be read or is invalid (file, line, key).
    #[error(transparent)]
    Config(#[from] litequant::config::ConfigError),
    /// A subset names a model the config does not declare.
    #[error("{config}: no model `{model}`")]
    UnknownModel {
        /// The config file.
        config: PathBuf,
        /// The missing model.
        model: String,
    },
    /// The lock is required and missing, or unreadable.
    #[error(transparent)]
    Lock(JobError),
    /// Jobs failed: each with its `model.mode` and cause.
    #[error("{}", .0.iter().map(|(job, e)| format!("{job}: {e}")).collect::<Vec<_>>().join("\n"))]
    Jobs(Vec<(String, JobError)>),
    /// The generated module could not be written or described.
    #[error("quantized_models.rs: {0}")]
    Module(String),
    /// `LITEQUANT_THREADS` is not a thread count litequant accepts.
    #[error("LITEQUANT_THREADS={0:?}: expected 0 (one per core) to {max}", max = litequant::engine::MAX_THREADS)]
    Threads(String),
}

/// Calibration threads from `LITEQUANT_THREADS`, else cargo's `NUM_JOBS`, else 0 (one per core). An explicit
/// `LITEQUANT_THREADS` outside 0..=[`MAX_THREADS`](litequant::engine::MAX_THREADS) is refused, as the CLI
/// refuses it; `NUM_JOBS` (a machine's core count) is only bounded.
fn threads_from(
    litequant_threads: Option<String>,
    num_jobs: Option<String>,
) -> Result<usize, Error> {
    let max = litequant::engine::MAX_THREADS;
    match litequant_threads {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Error::Threads(v)),
        },
        None => Ok(num_jobs
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(0, |n| n.min(max))),
    }
}

/// An artifact produced (or found in the cache) by a build script.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The model name in the config.
    pub model: String,
    /// The mode.
    pub mode: String,
    /// The `.tflite` file in `OUT_DIR`.
    pub path: PathBuf,
    /// What the job did (also written as JSON beside the artifact).
    pub report: Report,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Whether its ranges came from `quantize.lock`.
    pub from_lock: bool,
}

/// Configures quantization in a build script; [`compile`] is the one-line form.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Option<PathBuf>,
    models: Vec<String>,
    lock: Option<LockPolicy>,
    out_dir: Option<PathBuf>,
    module: bool,
}

/// Quantizes every model of `config` (relative to `CARGO_MANIFEST_DIR`) into `OUT_DIR` and writes
/// `quantized_models.rs`. On error prints `cargo::error=` lines naming each failed job and its cause and exits
/// the build script with status 1 (no panic backtrace).
pub fn compile(config: impl AsRef<Path>) {
    Builder::new().config(config).compile();
}

impl Builder {
    /// A builder with the defaults: `[package.metadata.litequant] config`, else `quantize.toml` beside
    /// `Cargo.toml`; every model; the lock policy from the profile and `LITEQUANT_LOCKED`; `OUT_DIR`.
    pub fn new() -> Builder {
        Builder {
            module: true,
            ..Builder::default()
        }
    }

    /// The config file, relative to `CARGO_MANIFEST_DIR` unless absolute.
    pub fn config(&mut self, path: impl AsRef<Path>) -> &mut Builder {
        self.config = Some(path.as_ref().to_path_buf());
        self
    }

    /// Builds only these models (call again to add more).
    pub fn models<I, S>(&mut self, names: I) -> &mut Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models.extend(names.into_iter().map(Into::into));
        self
    }

    /// Overrides the lock policy ([`LockPolicy::Update`] is not available here: build scripts never write
    /// the lock; it acts as [`LockPolicy::Use`]).
    pub fn lock_policy(&mut self, policy: LockPolicy) -> &mut Builder {
        self.lock = Some(policy);
        self
    }

    /// Writes artifacts and the module here instead of `OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl AsRef<Path>) -> &mut Builder {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether to write `quantized_models.rs` (default true).
    pub fn module(&mut self, write: bool) -> &mut Builder {
        self.module = write;
        self
    }

    /// Runs [`try_compile`](Self::try_compile); on error prints `cargo::error=` lines and exits with status 1.
    pub fn compile(&self) {
        if let Err(e) = self.try_compile() {
            let syntax = Syntax::detect();
            for line in e.to_string().lines() {
                syntax.error(&format!("litequant: {line}"));
            }
            eprintln!("litequant: {e}");
            std::process::exit(1);
        }
    }

    /// Quantizes the models and writes the module; returns the artifacts.
    pub fn try_compile(&self) -> Result<Vec<Artifact>, Error> {
        let syntax = Syntax::detect();
        for var in ENV_VARS {
            syntax.directive("rerun-if-env-changed", var);
        }
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let out_dir = match (&self.out_dir, std::env::var_os("OUT_DIR")) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => PathBuf::from(d),
            (None, None) => return Err(Error::NotInBuildScript("OUT_DIR")),
        };
        let config_path = match (&self.config, &manifest_dir) {
            (Some(c), Some(m)) => m.join(c),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => {
                let manifest = m.join("Cargo.toml");
                if manifest_declares_config(&manifest) {
                    syntax.rerun_if_changed(&manifest);
                }
                manifest_config(&manifest)?.unwrap_or_else(|| m.join("quantize.toml"))
            }
            (None, None) => return Err(Error::NotInBuildScript("CARGO_MANIFEST_DIR")),
        };
        syntax.rerun_if_changed(&config_path);
        let config = litequant::config::load(&config_path)?;
        let mut plan = Plan::new(&config, Some(&out_dir));
        if !self.models.is_empty() {
            if let Some(m) = self.models.iter().find(|m| !config.models.contains_key(*m)) {
                return Err(Error::UnknownModel {
                    config: config_path,
                    model: m.clone(),
                });
            }
            plan.retain_models(&self.models);
        }
        for input in plan.inputs().iter().filter(|i| **i != config_path) {
            syntax.rerun_if_changed(input);
        }
        for job in &plan.jobs {
            // An image folder: declared so that added or removed images re-run the script.
            if let Some(folder) = job.dataset.as_ref().and_then(|d| d.path.as_ref()) {
                if folder.is_dir() {
                    syntax.rerun_if_changed(folder);
                }
            }
        }
        let lock_exists = plan.lock_file.is_file();
        if lock_exists {
            syntax.rerun_if_changed(&plan.lock_file);
        }

        if std::env::var_os("DOCS_RS").is_some() {
            // docs.rs: no calibration, no quantization; a module with empty models still compiles.
            let embedded = plan
                .jobs
                .iter()
                .map(|j| module::Embedded {
                    model: j.model.clone(),
                    mode: j.mode.to_string(),
                    file: file_name(&j.artifact),
                    bytes: None,
                })
                .collect::<Vec<_>>();
            self.write_module(&out_dir, &embedded)?;
            return Ok(Vec::new());
        }

        let locked_env = std::env::var("LITEQUANT_LOCKED").is_ok_and(|v| v == "1" || v == "true");
        let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
        plan.lock = match self.lock {
            Some(LockPolicy::Update) => LockPolicy::Use,
            Some(p) => p,
            None if locked_env => LockPolicy::Locked,
            None if release && lock_exists => LockPolicy::Locked,
            None if lock_exists => LockPolicy::Use,
            None => LockPolicy::Ignore,
        };
        if release && !lock_exists && !locked_env && self.lock.is_none() {
            syntax.warning(&format!(
                "litequant: no {}: this release build calibrates, so its artifacts may differ in the last bits between machines; run `litequant build` and commit the lock for reproducible releases",
                plan.lock_file.display()
            ));
        }
        let session = Session::new(&plan, Some(Cache::locate(&config))).map_err(Error::Lock)?;
        let threads = threads_from(
            std::env::var("LITEQUANT_THREADS").ok(),
            std::env::var("NUM_JOBS").ok(),
        )?;
        let opts = RunOptions {
            threads,
            ..Default::default()
        };
        let mut artifacts = Vec::new();
        let mut failed = Vec::new();
        let mut warned_unoptimized = false;
        for job in &plan.jobs {
            match session.build(job, &opts) {
                Ok(built) => {
                    for w in built
                        .warnings
                        .iter()
                        .chain(&built.artifact.report.quantization.warnings)
                    {
                        syntax.warning(&format!("litequant: {}: {w}", job.id()));
                    }
                    let calibrated = built.cache != CacheStatus::Hit
                        && built.artifact.report.ranges_from == "dataset";
                    if calibrated && !warned_unoptimized && unoptimized() {
                        warned_unoptimized = true;
                        syntax.warning("litequant: calibration ran in an unoptimised build script (about 30x slower); add `[profile.dev.build-override]` and `[profile.release.build-override]` with `opt-level = 3` to Cargo.toml");
                    }
                    artifacts.push(Artifact {
                        model: job.model.clone(),
                        mode: job.mode.to_string(),
                        path: job.artifact.clone(),
                        report: built.artifact.report,
                        cached: built.cache == CacheStatus::Hit,
                        from_lock: built.from_lock,
                    });
                }
                Err(e) => failed.push((job.id(), e)),
            }
        }
        if !failed.is_empty() {
            return Err(Error::Jobs(failed));
        }
        let mut embedded = Vec::new();
        for a in &artifacts {
            let bytes = std::fs::read(&a.path)
                .map_err(|e| Error::Module(format!("{}: {e}", a.path.display())))?;
            embedded.push(module::Embedded {
                model: a.model.clone(),
                mode: a.mode.clone(),
                file: file_name(&a.path),
                bytes: Some(bytes),
            });
        }
        if self.module {
            self.write_module(&out_dir, &embedded)?;
        }
        Ok(artifacts)
    }

    fn write_module(&self, out_dir: &Path, embedded: &[module::Embedded]) -> Result<(), Error> {
        let text = module::generate(embedded).map_err(Error::Module)?;
        let path = out_dir.join("quantized_models.rs");
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        litequant::engine::write_atomically(&path, text.as_bytes())
            .map_err(|e| Error::Module(format!("{}: {e}", path.display())))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether this crate (and so, in the usual profile setup, the engine) was compiled without optimisation.
fn unoptimized() -> bool {
    env!("LITEQUANT_BUILD_OPT_LEVEL") == "0"
}

/// Which build-script directive syntax the consumer's toolchain accepts: `cargo::` from Rust 1.77, where
/// `cargo:` still works; a `rust-version` below 1.77 makes `cargo::` a hard error, so use `cargo:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    DoubleColon,
    SingleColon,
}

impl Syntax {
    fn detect() -> Syntax {
        let msrv = std::env::var("CARGO_PKG_RUST_VERSION").unwrap_or_default();
        Syntax::for_rust_version(&msrv)
    }

    fn for_rust_version(msrv: &str) -> Syntax {
        let mut parts = msrv.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) if (major, minor) < (1, 77) => Syntax::SingleColon,
            _ => Syntax::DoubleColon,
        }
    }

    fn directive(self, key: &str, value: &str) {
        match self {
            Syntax::DoubleColon => println!("cargo::{key}={value}"),
            Syntax::SingleColon => println!("cargo:{key}={value}"),
        }
    }

    fn rerun_if_changed(self, path: &Path) {
        // Cargo re-runs a script forever when a declared path does not exist: declare only what exists.
        if path.exists() {
            self.directive("rerun-if-changed", &path.display().to_string());
        }
    }

    fn warning(self, msg: &str) {
        for line in msg.lines() {
            self.directive("warning", line);
        }
    }

    fn error(self, msg: &str) {
        match self {
            Syntax::DoubleColon => self.directive("error", msg),
            // `cargo:error` does not exist before 1.77; the exit status fails the build, the warning says why.
            Syntax::SingleColon => self.directive("warning", msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litequant_threads_outside_the_limit_is_refused_and_num_jobs_is_bounded() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(threads_from(s("4"), s("64")).unwrap(), 4);
        assert_eq!(threads_from(s("256"), None).unwrap(), 256);
        assert_eq!(
            threads_from(None, s("100000")).unwrap(),
            MAX_THREADS_FOR_TEST
        );
        assert_eq!(threads_from(None, None).unwrap(), 0);
        for bad in ["257", "100000", "-1", "four"] {
            let e = threads_from(s(bad), None).unwrap_err().to_string();
            assert!(e.contains("LITEQUANT_THREADS") && e.contains("256"), "{e}");
        }
    }

    const MAX_THREADS_FOR_TEST: usize = litequant::engine::MAX_THREADS;

    #[test]
    fn old_rust_versions_get_single_colon_directives() {
        assert_eq!(Syntax::for_rust_version("1.70"), Syntax::SingleColon);
        assert_eq!(Syntax::for_rust_version("1.76.0"), Syntax::SingleColon);
        assert_eq!(Syntax::for_rust_version("1.77"), Syntax::DoubleColon);
        assert_eq!(Syntax::for_rust_version("1.82.0"), Syntax::DoubleColon);
        assert_eq!(Syntax::for_rust_version(""), Syntax::DoubleColon);
    }
}
