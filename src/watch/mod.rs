//! `litequant watch`: keep every artifact of a config current while models, data and the config change.
//!
//! ## Brief overview
//! * [`DependencyMap`] maps each file (and image folder) a job reads to the jobs reading it; a change
//!   rebuilds exactly those jobs. A config edit rebuilds the jobs whose resolved settings changed
//!   ([`PlanDiff`]).
//! * [`classify`] tells the config, job inputs and everything else apart; [`OwnWrites`] (artifacts, reports,
//!   temp files, the lock, the cache) never trigger a rebuild, so the tool cannot feed itself.
//! * File events come from `notify` through `notify-debouncer-full` (renames stitched, bursts merged), from
//!   the parent folders of inputs so rename-saves and delete/recreate stay visible. A job also waits until
//!   its inputs have not been written for twice [`WatchOptions::debounce`], so a model written in chunks is
//!   read once, complete.
//! * One job runs at a time; a change to its inputs while it runs cancels it and queues it again: the latest
//!   input wins. A failing job (a half-written model) or a broken config is reported, the last good artifacts
//!   stay, and watching goes on.
//!
//! ```no_run
//! use litequant::watch::{Watch, WatchEvent, WatchOptions};
//! let watch = Watch::new("quantize.toml".as_ref(), WatchOptions::default());
//! let stop = watch.stop_handle(); // call stop.stop() from a Ctrl-C handler
//! watch.run(&mut |event: WatchEvent| println!("{event:?}")).expect("file notifications are available");
//! ```

mod classify;
mod deps;
mod diff;
mod notifier;
mod schedule;
mod session;
#[cfg(test)]
mod tests;
mod worker;

pub use classify::{classify, is_change, Change, OwnWrites};
pub use deps::{normalize, DependencyMap};
pub use diff::PlanDiff;
pub use schedule::Trigger;
pub use session::{StopHandle, Watch};

use crate::config::ConfigError;
use crate::engine::{Artifact, JobError};
use std::path::PathBuf;
use std::time::Duration;

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Write artifacts here instead of `[settings] out_dir`.
    pub out_dir: Option<PathBuf>,
    /// Poll the file system at this interval instead of OS notifications (network and container file
    /// systems, where notifications do not arrive).
    pub poll: Option<Duration>,
    /// Quiet time: events closer than this are one change, and a job starts only once its inputs have not
    /// been written for twice this long.
    pub debounce: Duration,
    /// Calibration threads (0: one per core).
    pub threads: usize,
    /// More folders litequant writes to (the cache), ignored like the output folder.
    pub ignore: Vec<PathBuf>,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            out_dir: None,
            poll: None,
            debounce: Duration::from_millis(50),
            threads: 0,
            ignore: Vec::new(),
        }
    }
}

/// What happened while watching, for a person or a test to follow.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent {
    /// Notifications are set up; `inputs` files and folders are watched besides the config.
    Watching {
        /// Files and image folders the jobs read.
        inputs: usize,
    },
    /// A job started (it may still be cancelled and restarted if its inputs change again).
    Started {
        /// The job (`model.mode`).
        job: String,
        /// Why it runs.
        trigger: Trigger,
    },
    /// A job rebuilt its artifact.
    Built {
        /// Why it ran.
        trigger: Trigger,
        /// What it wrote.
        artifact: Box<Artifact>,
        /// From the (latest) file change to the artifact in place.
        latency: Duration,
    },
    /// A job failed; its previous artifact, if any, is untouched.
    Failed {
        /// Why it ran.
        trigger: Trigger,
        /// The job (`model.mode`).
        job: String,
        /// What went wrong.
        error: RebuildError,
    },
    /// The config cannot be used; the last good plan stays in force until it is fixed.
    ConfigInvalid(ConfigError),
    /// The config was read again; `diff` says which jobs it changed.
    ConfigReloaded {
        /// Jobs new or changed (they are queued) and jobs gone.
        diff: PlanDiff,
    },
    /// Something a person should know that does not stop watching (a folder that cannot be watched).
    Warning(String),
    /// Every queued job has run: the artifacts are current.
    Idle,
}

/// Receives [`WatchEvent`]s, on the thread running [`Watch::run`].
pub trait Reporter {
    /// One event.
    fn report(&mut self, event: WatchEvent);
}

impl<F: FnMut(WatchEvent)> Reporter for F {
    fn report(&mut self, event: WatchEvent) {
        self(event)
    }
}

/// Why a rebuild failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError {
    /// The engine reported an error (bad input, unsupported op, ...).
    #[error(transparent)]
    Job(#[from] JobError),
    /// The job panicked: a bug in litequant, reported instead of stopping the watch.
    #[error("internal error (please report it): {0}")]
    Panicked(String),
    /// No thread could be started for the job.
    #[error("cannot start the job: {0}")]
    Thread(std::io::Error),
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The OS file notifications (or the poller) could not be set up.
    #[error("cannot watch files: {0} (try --poll)")]
    Notify(#[from] notify::Error),
}
