//! Which job runs next: one at a time, in plan order, each once its inputs have settled; a job whose inputs
//! change while it runs is cancelled and queued again, so the latest input always wins.

use crate::engine::CancellationToken;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

/// Why a job is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The changed files, as shown to a person (relative to the config's folder when inside it); empty for
    /// the initial build.
    pub files: BTreeSet<PathBuf>,
    /// When the latest of these changes happened (the file event's time).
    pub changed_at: Instant,
}

impl Trigger {
    /// The build every watch starts with.
    pub fn initial(at: Instant) -> Trigger {
        Trigger {
            files: BTreeSet::new(),
            changed_at: at,
        }
    }

    /// A change of `file` at `at`.
    pub fn file(file: PathBuf, at: Instant) -> Trigger {
        Trigger {
            files: [file].into(),
            changed_at: at,
        }
    }

    /// File events were lost (the OS queue overflowed): every input may have changed.
    pub fn rescan(at: Instant) -> Trigger {
        Trigger::file(PathBuf::from(RESCAN), at)
    }

    /// Both reasons: every file, the latest time.
    pub(crate) fn merge(&mut self, other: &Trigger) {
        self.files.extend(other.files.iter().cloned());
        self.changed_at = self.changed_at.max(other.changed_at);
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.files.is_empty() {
            return f.write_str("initial build");
        }
        let names: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        write!(f, "{} changed", names.join(", "))
    }
}

/// What a rescan trigger shows instead of a file name.
const RESCAN: &str = "(file events lost: every input)";

#[derive(Debug)]
struct Pending {
    trigger: Trigger,
    not_before: Instant,
}

/// The job being built.
#[derive(Debug)]
pub(crate) struct Running {
    pub id: String,
    pub trigger: Trigger,
    pub cancel: CancellationToken,
}

/// Pending jobs and the one running.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    order: Vec<String>,
    pending: BTreeMap<String, Pending>,
    running: Option<Running>,
}

impl Schedule {
    /// Jobs start in this order (the plan's).
    pub fn set_order(&mut self, ids: Vec<String>) {
        self.order = ids;
    }

    /// Queues job `id` for `trigger`, to start no earlier than `not_before`. If it is the job running, its
    /// token is cancelled: it stops, and runs again from the new input.
    pub fn mark(&mut self, id: &str, trigger: &Trigger, not_before: Instant) {
        match self.pending.get_mut(id) {
            Some(p) => {
                p.trigger.merge(trigger);
                p.not_before = p.not_before.max(not_before);
            }
            None => {
                self.pending.insert(
                    id.to_string(),
                    Pending {
                        trigger: trigger.clone(),
                        not_before,
                    },
                );
            }
        }
        if let Some(r) = &self.running {
            if r.id == id {
                r.cancel.cancel();
            }
        }
    }

    /// Forgets every job not in `keep` (a config edit removed it); cancels the running one if so.
    pub fn retain(&mut self, keep: &BTreeSet<String>) {
        self.pending.retain(|id, _| keep.contains(id));
        if let Some(r) = &self.running {
            if !keep.contains(&r.id) {
                r.cancel.cancel();
            }
        }
    }

    /// The first pending job (plan order) whose time has come, taken off the queue, when none is running.
    pub fn take_ready(&mut self, now: Instant) -> Option<(String, Trigger)> {
        if self.running.is_some() {
            return None;
        }
        let id = self
            .order
            .iter()
            .find(|id| self.pending.get(*id).is_some_and(|p| p.not_before <= now))?
            .clone();
        let p = self.pending.remove(&id)?;
        Some((id, p.trigger))
    }

    /// Puts a job taken by [`take_ready`](Self::take_ready) back, to start at `not_before` (its inputs are
    /// still being written).
    pub fn defer(&mut self, id: &str, trigger: &Trigger, not_before: Instant) {
        self.mark(id, trigger, not_before);
    }

    /// Records that `id` started with `cancel` as its token.
    pub fn start(&mut self, id: String, trigger: Trigger, cancel: CancellationToken) {
        self.running = Some(Running {
            id,
            trigger,
            cancel,
        });
    }

    /// The running job finished (or stopped); returns it.
    pub fn finish(&mut self) -> Option<Running> {
        self.running.take()
    }

    /// The running job, if any.
    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// Whether job `id` is queued (again).
    #[cfg(test)]
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// When the next pending job may start, if one is waiting and none runs.
    pub fn next_start(&self) -> Option<Instant> {
        if self.running.is_some() {
            return None;
        }
        self.pending.values().map(|p| p.not_before).min()
    }

    /// Nothing pending, nothing running.
    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn schedule(ids: &[&str]) -> Schedule {
        let mut s = Schedule::default();
        s.set_order(ids.iter().map(|s| s.to_string()).collect());
        s
    }

    #[test]
    fn jobs_start_one_at_a_time_in_plan_order() {
        let now = Instant::now();
        let mut s = schedule(&["a.dynamic", "b.dynamic"]);
        let t = Trigger::initial(now);
        s.mark("b.dynamic", &t, now);
        s.mark("a.dynamic", &t, now);
        let (first, _) = s.take_ready(now).unwrap();
        assert_eq!(first, "a.dynamic");
        s.start(first, t.clone(), CancellationToken::new());
        assert!(s.take_ready(now).is_none(), "one job at a time");
        s.finish();
        assert_eq!(s.take_ready(now).unwrap().0, "b.dynamic");
        assert!(s.is_idle());
    }

    #[test]
    fn a_change_to_the_running_job_cancels_it_and_queues_it_again() {
        let now = Instant::now();
        let mut s = schedule(&["a.dynamic"]);
        s.mark("a.dynamic", &Trigger::initial(now), now);
        let (id, trigger) = s.take_ready(now).unwrap();
        let token = CancellationToken::new();
        s.start(id, trigger, token.clone());
        s.mark("a.dynamic", &Trigger::file("a.tflite".into(), now), now);
        assert!(token.is_cancelled());
        assert!(s.is_pending("a.dynamic"));
    }

    #[test]
    fn a_change_to_another_job_leaves_the_running_one_alone() {
        let now = Instant::now();
        let mut s = schedule(&["a.dynamic", "b.dynamic"]);
        s.mark("a.dynamic", &Trigger::initial(now), now);
        let (id, trigger) = s.take_ready(now).unwrap();
        let token = CancellationToken::new();
        s.start(id, trigger, token.clone());
        s.mark("b.dynamic", &Trigger::file("b.tflite".into(), now), now);
        assert!(!token.is_cancelled());
    }

    #[test]
    fn a_job_waits_until_its_inputs_settle_and_triggers_merge() {
        let now = Instant::now();
        let later = now + Duration::from_millis(50);
        let mut s = schedule(&["a.int8"]);
        s.mark("a.int8", &Trigger::file("a.tflite".into(), now), later);
        s.mark("a.int8", &Trigger::file("digits.npz".into(), now), now);
        assert!(s.take_ready(now).is_none());
        assert_eq!(s.next_start(), Some(later));
        let (_, trigger) = s.take_ready(later).unwrap();
        assert_eq!(trigger.to_string(), "a.tflite, digits.npz changed");
    }

    #[test]
    fn removing_the_running_job_from_the_plan_cancels_it() {
        let now = Instant::now();
        let mut s = schedule(&["a.dynamic", "b.dynamic"]);
        s.mark("a.dynamic", &Trigger::initial(now), now);
        s.mark("b.dynamic", &Trigger::initial(now), now);
        let (id, trigger) = s.take_ready(now).unwrap();
        let token = CancellationToken::new();
        s.start(id, trigger, token.clone());
        s.retain(&["b.dynamic".to_string()].into());
        assert!(token.is_cancelled());
        s.retain(&BTreeSet::new());
        assert!(!s.is_pending("b.dynamic"));
    }
}
