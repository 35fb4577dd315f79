//! The engine: a [`Plan`] of jobs (model x mode) built from a config, run into artifacts.
//!
//! This is the API the three front doors share (CLI, `litequant watch`, `build.rs`): every job lists the files it
//! reads ([`Job::inputs`]) so build.rs can declare them to cargo and watch knows what to rebuild; a
//! [`CancellationToken`] lets watch abandon a job whose inputs changed again; the [`LockPolicy`] says whether
//! `quantize.lock` is consulted. The engine is the only place that writes artifacts, always atomically.

mod artifact;
pub mod cache;
pub mod digest;
mod job;
pub mod lockfile;
mod plan;
mod report;
mod session;
pub mod workspace;

pub use artifact::{remove_stale_temps, write_atomically, Artifact};
pub use cache::Cache;
pub use job::{
    input_specs, load_source, read_file, run_job, source_graph, JobError, Progress, RunOptions,
};
pub use plan::{Job, LockPolicy, Plan};
pub use report::{human_size, human_time, Report};
pub use session::{Built, CacheStatus, Session};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The most calibration and evaluation threads a job runs ([`RunOptions::threads`] above it is bounded to it;
/// the CLI refuses more).
pub const MAX_THREADS: usize = 256;

/// A shared flag that asks running jobs to stop at the next sample or stage.
#[derive(Debug, Clone, Default)]
pub struct CancellationToken(Arc<AtomicBool>);

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> CancellationToken {
        CancellationToken::default()
    }

    /// Asks every job holding a clone of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
