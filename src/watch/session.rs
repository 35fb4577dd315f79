//! The watch loop: file events in, jobs scheduled, cancelled and restarted, events out to a [`Reporter`].

use super::classify::{classify, is_change, Change, OwnWrites};
use super::deps::{normalize, DependencyMap};
use super::diff::PlanDiff;
use super::notifier::{self, FolderWatcher};
use super::schedule::{Schedule, Trigger};
use super::worker;
use super::{RebuildError, Reporter, WatchError, WatchEvent, WatchOptions};
use crate::config;
use crate::engine::{Artifact, Cache, CancellationToken, Job, LockPolicy, Plan};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Longest wait for a file whose modification time lies in the future (clock skew on network file systems).
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// What the loop receives.
enum Msg {
    Files(DebounceEventResult),
    JobDone {
        id: String,
        // Boxed: a report is large next to the other messages.
        result: Box<Result<Artifact, RebuildError>>,
    },
    Stop,
}

/// Stops a running [`Watch`] from another thread (a Ctrl-C handler): the running job is cancelled and waited
/// for, so no temp file is left behind.
#[derive(Debug, Clone)]
pub struct StopHandle(Sender<Msg>);

impl StopHandle {
    /// Asks the watch to stop; [`Watch::run`] returns once the running job has stopped.
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Files(_) => "Files",
            Msg::JobDone { .. } => "JobDone",
            Msg::Stop => "Stop",
        })
    }
}

/// A watch of one config, ready to [`run`](Watch::run).
#[derive(Debug)]
pub struct Watch {
    config: PathBuf,
    options: WatchOptions,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl Watch {
    /// A watch of the config file `config`.
    pub fn new(config: &Path, options: WatchOptions) -> Watch {
        let (tx, rx) = channel();
        Watch {
            config: config.to_path_buf(),
            options,
            tx,
            rx,
        }
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.tx.clone())
    }

    /// Builds every job, then rebuilds what each change touches, until stopped. Errors in the config, the
    /// models or the data are reported to `reporter`; only failing to set up notifications is an error here.
    pub fn run(self, reporter: &mut dyn Reporter) -> Result<(), WatchError> {
        let notifier = notifier::start(
            self.options.debounce,
            self.options.poll,
            notifier::forward(self.tx.clone(), Msg::Files),
        )?;
        let config_path = normalize(&self.config);
        let base_dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut session = Session {
            deps: DependencyMap::config_only(&config_path),
            own: OwnWrites::default(),
            config_path,
            base_dir,
            options: self.options,
            plan: None,
            engine: None,
            schedule: Schedule::default(),
            watched: BTreeMap::new(),
            notifier,
            tx: self.tx,
            reporter,
            idle: false,
            config_due: None,
        };
        // The config's folder is watched before the config is read, and every input's folder before any job
        // reads it: no change can fall between reading and watching.
        session.sync_watches(false);
        session.reload_config(None);
        session.sync_watches(false);
        session.reporter.report(WatchEvent::Watching {
            inputs: session.deps.input_count(),
        });
        session.run(&self.rx);
        Ok(())
    }
}

struct Session<'r> {
    config_path: PathBuf,
    base_dir: PathBuf,
    options: WatchOptions,
    /// The last good plan (`None` while the config has never been valid).
    plan: Option<Plan>,
    /// The engine session of that plan (cache, `quantize.lock`), shared with the job threads.
    engine: Option<(Arc<crate::engine::Session>, Arc<Plan>)>,
    deps: DependencyMap,
    own: OwnWrites,
    schedule: Schedule,
    /// Watched folders and which folder each was (a folder deleted and recreated must be watched anew).
    watched: BTreeMap<PathBuf, Option<FolderId>>,
    notifier: Box<dyn FolderWatcher>,
    tx: Sender<Msg>,
    reporter: &'r mut dyn Reporter,
    /// `Idle` was reported and nothing happened since.
    idle: bool,
    /// The config changed: read it again at this time (once it has settled), for a change at the second.
    config_due: Option<(Instant, Instant)>,
}

impl Session<'_> {
    fn run(&mut self, rx: &Receiver<Msg>) {
        loop {
            self.reload_config_when_due();
            self.start_ready_job();
            if self.schedule.is_idle() && self.config_due.is_none() && !self.idle {
                self.idle = true;
                self.reporter.report(WatchEvent::Idle);
            }
            let wake = [
                self.schedule.next_start(),
                self.config_due.map(|(due, _)| due),
            ];
            let msg = match wake.into_iter().flatten().min() {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Files(Ok(events))) => self.on_file_events(&events),
                Ok(Msg::Files(Err(errors))) => {
                    for e in errors {
                        self.reporter
                            .report(WatchEvent::Warning(format!("file notification: {e}")));
                    }
                }
                Ok(Msg::JobDone { id, result }) => self.on_job_done(id, *result),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.stop(rx);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Cancels the running job and waits for it, so its temp files are gone before we return.
    fn stop(&mut self, rx: &Receiver<Msg>) {
        let Some(running) = self.schedule.running() else {
            return;
        };
        running.cancel.cancel();
        while let Ok(msg) = rx.recv() {
            if let Msg::JobDone { id, result } = msg {
                self.on_job_done(id, *result);
                return;
            }
        }
    }

    fn job(&self, id: &str) -> Option<&Job> {
        self.plan.as_ref()?.jobs.iter().find(|j| j.id() == id)
    }

    fn start_ready_job(&mut self) {
        let now = Instant::now();
        while let Some((id, trigger)) = self.schedule.take_ready(now) {
            let Some(job) = self.job(&id).cloned() else {
                continue;
            };
            // Inputs still being written (a training run saving in chunks): wait for the burst to end.
            let wait = self.settle_wait(&job.inputs());
            if !wait.is_zero() {
                self.schedule.defer(&id, &trigger, now + wait);
                continue;
            }
            let cancel = CancellationToken::new();
            self.reporter.report(WatchEvent::Started {
                job: id.clone(),
                trigger: trigger.clone(),
            });
            let id_for_error = id.clone();
            self.schedule.start(id, trigger, cancel.clone());
            self.idle = false;
            let tx = self.tx.clone();
            let done = move |id: String, result: Result<Artifact, RebuildError>| {
                let _ = tx.send(Msg::JobDone {
                    id,
                    result: Box::new(result),
                });
            };
            let Some(engine) = self.engine.clone() else {
                continue;
            };
            if let Err(e) = worker::spawn(job, engine, self.options.threads, cancel, done) {
                let running = self.schedule.finish();
                self.reporter.report(WatchEvent::Failed {
                    trigger: running.map_or_else(|| Trigger::initial(now), |r| r.trigger),
                    job: id_for_error,
                    error: RebuildError::Thread(e),
                });
                continue;
            }
            return;
        }
    }

    /// Reads the config again once it is due and has settled (an editor saving in place truncates first).
    fn reload_config_when_due(&mut self) {
        let Some((due, changed_at)) = self.config_due else {
            return;
        };
        let now = Instant::now();
        if due > now {
            return;
        }
        let wait = self.settle_wait(std::slice::from_ref(&self.config_path));
        if !wait.is_zero() {
            self.config_due = Some((now + wait, changed_at));
            return;
        }
        self.config_due = None;
        self.reload_config(Some(changed_at));
        self.sync_watches(true);
    }

    /// How long until none of `files` has been written for twice the debounce time (zero if settled).
    ///
    /// Twice: the debouncer hands over an event once it is a window old, so the events of the last writes of
    /// a burst arrive up to a window (and a tick) after the writes; the job must not have run by then.
    fn settle_wait(&self, files: &[PathBuf]) -> Duration {
        let wall = SystemTime::now();
        let quiet = 2 * self.options.debounce;
        files
            .iter()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .filter_map(|modified| wall.duration_since(modified).ok())
            .filter_map(|age| quiet.checked_sub(age))
            .max()
            .unwrap_or_default()
            .min(MAX_SETTLE)
    }

    fn on_job_done(&mut self, id: String, result: Result<Artifact, RebuildError>) {
        let Some(running) = self.schedule.finish() else {
            return;
        };
        let trigger = running.trigger;
        match result {
            Ok(artifact) => {
                let latency = trigger.changed_at.elapsed();
                self.reporter.report(WatchEvent::Built {
                    trigger,
                    artifact: Box::new(artifact),
                    latency,
                });
            }
            // Cancelled because its inputs changed again (it is queued) or the watch is stopping.
            Err(RebuildError::Job(crate::engine::JobError::Cancelled)) => {}
            Err(error) => self.reporter.report(WatchEvent::Failed {
                trigger,
                job: id,
                error,
            }),
        }
    }

    fn on_file_events(&mut self, events: &[DebouncedEvent]) {
        let relevant: Vec<&DebouncedEvent> = events.iter().filter(|e| is_change(&e.kind)).collect();
        let config_at = relevant
            .iter()
            .filter(|e| e.paths.iter().any(|p| self.deps.is_config(&normalize(p))))
            .map(|e| e.time)
            .max();
        if let Some(at) = config_at {
            let changed_at = self.config_due.map_or(at, |(_, before)| before.max(at));
            self.config_due = Some((Instant::now(), changed_at));
            self.idle = false;
        }
        if relevant.iter().any(|e| e.need_rescan()) {
            // Events were lost: every job may be stale.
            let trigger = Trigger::rescan(Instant::now());
            let ids: Vec<String> = self.plan_ids();
            for id in ids {
                self.mark(&id, &trigger);
            }
        }
        let mut dirty: BTreeMap<String, Trigger> = BTreeMap::new();
        for event in &relevant {
            for path in &event.paths {
                let path = normalize(path);
                if let Change::Inputs(jobs) = classify(&path, &self.deps, &self.own) {
                    let trigger = Trigger::file(self.shown(&path), event.time);
                    for id in jobs {
                        merge_into(&mut dirty, id, &trigger);
                    }
                }
            }
        }
        for (id, trigger) in dirty {
            self.mark(&id, &trigger);
        }
        self.sync_watches(true);
    }

    fn mark(&mut self, id: &str, trigger: &Trigger) {
        let wait = self
            .job(id)
            .map(|j| self.settle_wait(&j.inputs()))
            .unwrap_or_default();
        let at = Instant::now() + wait;
        self.schedule.mark(id, trigger, at);
        self.idle = false;
    }

    fn plan_ids(&self) -> Vec<String> {
        self.plan
            .as_ref()
            .map(|p| p.jobs.iter().map(Job::id).collect())
            .unwrap_or_default()
    }

    /// Reads the config again (`changed_at` is `None` for the initial build) and queues the jobs it changed.
    /// A broken config is reported and the last good plan stays.
    fn reload_config(&mut self, changed_at: Option<Instant>) {
        let config = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                self.idle = false;
                self.reporter.report(WatchEvent::ConfigInvalid(e));
                return;
            }
        };
        let plan = Plan::new(&config, self.options.out_dir.as_deref());
        let diff = match &self.plan {
            Some(old) => PlanDiff::between(old, &plan),
            None => PlanDiff {
                changed: plan.jobs.iter().map(Job::id).collect(),
                removed: Vec::new(),
            },
        };
        self.deps = DependencyMap::new(&plan, &self.config_path);
        // Builds go through the cache and keep quantize.lock current, as `litequant build` does.
        let mut locked_plan = plan.clone();
        locked_plan.lock = LockPolicy::Update;
        let cache = Cache::locate(&config);
        let engine = match crate::engine::Session::new(&locked_plan, Some(cache.clone())) {
            Ok(e) => e,
            Err(e) => {
                self.reporter.report(WatchEvent::Warning(format!(
                    "{e}; building without the lock until it is fixed"
                )));
                locked_plan.lock = LockPolicy::Ignore;
                match crate::engine::Session::new(&locked_plan, Some(cache.clone())) {
                    Ok(e) => e,
                    Err(_) => return,
                }
            }
        };
        self.engine = Some((Arc::new(engine), Arc::new(locked_plan)));
        let mut ignore = self.options.ignore.clone();
        ignore.push(cache.dir().to_path_buf());
        self.own = OwnWrites::new(&plan.out_dir, &config.settings.lock, &ignore);
        let ids: Vec<String> = plan.jobs.iter().map(Job::id).collect();
        self.schedule.retain(&ids.iter().cloned().collect());
        self.schedule.set_order(ids);
        self.plan = Some(plan);
        let trigger = match changed_at {
            Some(at) => Trigger::file(self.shown(&self.config_path), at),
            None => Trigger::initial(Instant::now()),
        };
        for id in &diff.changed {
            self.mark(id, &trigger);
        }
        if changed_at.is_some() {
            self.idle = false;
            self.reporter.report(WatchEvent::ConfigReloaded { diff });
        }
    }

    /// Watches the folders the plan needs (the nearest existing ancestor of a missing one), drops the others.
    /// `rescan`: inputs already present in a newly watched folder (a folder moved in) are rebuilt.
    fn sync_watches(&mut self, rescan: bool) {
        let wanted: BTreeSet<PathBuf> = self
            .deps
            .watch_dirs()
            .into_iter()
            .filter_map(|d| d.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf))
            .collect();
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, id)| !wanted.contains(*dir) || folder_id(dir) != **id)
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            // A folder that is gone cannot be unwatched; it is no longer watched either way.
            let _ = self.notifier.unwatch(&dir);
            self.watched.remove(&dir);
        }
        for dir in wanted {
            if self.watched.contains_key(&dir) {
                continue;
            }
            match self.notifier.watch(&dir) {
                Ok(()) => {
                    self.watched.insert(dir.clone(), folder_id(&dir));
                    if rescan {
                        self.rebuild_inputs_in(&dir);
                    }
                }
                Err(e) => self.reporter.report(WatchEvent::Warning(format!(
                    "cannot watch {}: {e}",
                    dir.display()
                ))),
            }
        }
    }

    fn rebuild_inputs_in(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let now = Instant::now();
        for entry in entries.flatten() {
            let path = normalize(&entry.path());
            if let Change::Inputs(jobs) = classify(&path, &self.deps, &self.own) {
                let trigger = Trigger::file(self.shown(&path), now);
                for id in jobs {
                    self.mark(&id, &trigger);
                }
            }
        }
    }

    /// `path` as a person reads it: relative to the config's folder when inside it.
    fn shown(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.base_dir) {
            // The config's folder itself (a folder-level event) reads better as `.` than as nothing.
            Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from("."),
            Ok(rel) => rel.to_path_buf(),
            Err(_) => path.to_path_buf(),
        }
    }
}

fn merge_into(dirty: &mut BTreeMap<String, Trigger>, id: String, trigger: &Trigger) {
    match dirty.get_mut(&id) {
        Some(t) => t.merge(trigger),
        None => {
            dirty.insert(id, trigger.clone());
        }
    }
}

/// Which folder a path is (device and inode), to tell a recreated folder from the one watched before.
type FolderId = (u64, u64);

#[cfg(unix)]
fn folder_id(dir: &Path) -> Option<FolderId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Elsewhere a folder that exists counts as the same one.
#[cfg(not(unix))]
fn folder_id(dir: &Path) -> Option<FolderId> {
    dir.is_dir().then_some((0, 0))
}
