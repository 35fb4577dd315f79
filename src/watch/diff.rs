//! After a config edit: which jobs' resolved settings changed, which are new, which are gone.

use crate::engine::{Job, Plan};
use std::collections::{BTreeMap, BTreeSet};

/// How a new plan differs from the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDiff {
    /// Jobs that are new or whose resolved settings changed (by id, in the new plan's order).
    pub changed: Vec<String>,
    /// Jobs of the old plan that the new one does not have.
    pub removed: Vec<String>,
}

impl PlanDiff {
    /// Compares `old` and `new` job by job.
    pub fn between(old: &Plan, new: &Plan) -> PlanDiff {
        let before: BTreeMap<String, Job> = old
            .jobs
            .iter()
            .map(|j| (j.id(), relevant_settings(j)))
            .collect();
        let ids: BTreeSet<String> = new.jobs.iter().map(Job::id).collect();
        let changed = new
            .jobs
            .iter()
            .filter(|j| before.get(&j.id()) != Some(&relevant_settings(j)))
            .map(Job::id)
            .collect();
        let removed = old
            .jobs
            .iter()
            .map(Job::id)
            .filter(|id| !ids.contains(id))
            .collect();
        PlanDiff { changed, removed }
    }
}

/// The job with what cannot change its artifact cleared: for modes without calibration, its dataset (a job
/// carries only the datasets it reads, resolved at config validation). Comparing whole jobs keeps any field
/// the engine adds later in the comparison.
fn relevant_settings(job: &Job) -> Job {
    let mut job = job.clone();
    if !job.mode.needs_calibration() {
        job.dataset = None;
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    fn plan_of(dir: &Path, text: &str) -> Plan {
        let path = dir.join("quantize.toml");
        std::fs::write(&path, text).unwrap();
        Plan::new(&config::load(&path).unwrap(), None)
    }

    const BASE: &str = r#"
[datasets.digits]
format = "npz"
path = "digits.npz"

[datasets.other]
format = "npz"
path = "other.npz"

[models.a]
source = "a.tflite"
modes = ["dynamic", "int8"]
dataset = "digits"

[models.b]
source = "b.tflite"
modes = ["dynamic"]
"#;

    #[test]
    fn an_identical_config_changes_no_job() {
        let dir = tempfile::tempdir().unwrap();
        let old = plan_of(dir.path(), BASE);
        let new = plan_of(dir.path(), &format!("# a comment\n{BASE}"));
        assert_eq!(PlanDiff::between(&old, &new), PlanDiff::default());
    }

    #[test]
    fn a_per_model_setting_changes_only_that_models_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let old = plan_of(dir.path(), BASE);
        let edited = BASE.replace(
            "dataset = \"digits\"",
            "dataset = \"digits\"\nper_channel = false",
        );
        let new = plan_of(dir.path(), &edited);
        assert_eq!(
            PlanDiff::between(&old, &new).changed,
            vec!["a.dynamic", "a.int8"]
        );
    }

    #[test]
    fn a_dataset_edit_changes_only_the_calibrated_jobs_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = plan_of(dir.path(), BASE);
        let new = plan_of(dir.path(), &BASE.replace("digits.npz", "digits2.npz"));
        assert_eq!(PlanDiff::between(&old, &new).changed, vec!["a.int8"]);
        let new = plan_of(dir.path(), &BASE.replace("other.npz", "other2.npz"));
        assert!(PlanDiff::between(&old, &new).changed.is_empty());
    }

    #[test]
    fn added_and_removed_modes_show_up() {
        let dir = tempfile::tempdir().unwrap();
        let old = plan_of(dir.path(), BASE);
        let edited = BASE.replace("modes = [\"dynamic\"]\n", "modes = [\"float16\"]\n");
        let new = plan_of(dir.path(), &edited);
        let diff = PlanDiff::between(&old, &new);
        assert_eq!(diff.changed, vec!["b.float16"]);
        assert_eq!(diff.removed, vec!["b.dynamic"]);
    }

    #[test]
    fn a_new_output_folder_changes_every_job() {
        let dir = tempfile::tempdir().unwrap();
        let old = plan_of(dir.path(), BASE);
        let new = plan_of(
            dir.path(),
            &format!("[settings]\nout_dir = \"elsewhere\"\n{BASE}"),
        );
        assert_eq!(PlanDiff::between(&old, &new).changed.len(), 3);
    }
}
