//! Jobs run on their own thread, so the watch loop keeps receiving file events and can cancel them.

use super::RebuildError;
use crate::engine::{Artifact, CancellationToken, Job, Plan, RunOptions, Session};
use std::sync::Arc;

/// Runs `job` on a new thread and hands its result (a panic included, as an error) to `done`.
pub(crate) fn spawn<F>(
    job: Job,
    engine: (Arc<Session>, Arc<Plan>),
    threads: usize,
    cancel: CancellationToken,
    done: F,
) -> std::io::Result<()>
where
    F: FnOnce(String, Result<Artifact, RebuildError>) + Send + 'static,
{
    let name = format!("litequant {}", job.id());
    std::thread::Builder::new().name(name).spawn(move || {
        let run = std::panic::catch_unwind(|| rebuild_job(&job, &engine, threads, cancel));
        let result = run.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(RebuildError::Panicked(what))
        });
        done(job.id(), result);
    })?;
    Ok(())
}

/// Runs one job through the engine session (cache and lock), then records it in `quantize.lock`.
fn rebuild_job(
    job: &Job,
    (session, plan): &(Arc<Session>, Arc<Plan>),
    threads: usize,
    cancel: CancellationToken,
) -> Result<Artifact, RebuildError> {
    let opts = RunOptions {
        threads,
        cancel,
        progress: None,
    };
    let built = session.build(job, &opts)?;
    session.write_lock(plan)?;
    Ok(built.artifact)
}
