//! Which jobs read which file: the map a file change is looked up in.

use crate::dataset::{DatasetFormat, DatasetSpec};
use crate::engine::{Job, Plan};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File -> jobs (by [`Job::id`]) of one plan, plus the config file itself.
///
/// Image datasets are folders: a file appearing in one is an input of its jobs too, so folders map to jobs as
/// well as the image files listed at plan time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyMap {
    config: PathBuf,
    files: BTreeMap<PathBuf, BTreeSet<String>>,
    folders: BTreeMap<PathBuf, BTreeSet<String>>,
}

impl DependencyMap {
    /// The map of `plan`, whose config is `config` (the paths are normalized, see [`normalize`]).
    pub fn new(plan: &Plan, config: &Path) -> DependencyMap {
        let mut map = DependencyMap {
            config: normalize(config),
            ..DependencyMap::default()
        };
        for job in &plan.jobs {
            let id = job.id();
            for file in job.inputs() {
                map.files
                    .entry(normalize(&file))
                    .or_default()
                    .insert(id.clone());
            }
            for folder in image_folders(job) {
                map.folders
                    .entry(normalize(&folder))
                    .or_default()
                    .insert(id.clone());
            }
        }
        map
    }

    /// A map that knows only the config (no plan yet: the config was broken from the start).
    pub fn config_only(config: &Path) -> DependencyMap {
        DependencyMap {
            config: normalize(config),
            ..DependencyMap::default()
        }
    }

    /// The config file, normalized.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Whether `path` (normalized) is the config file.
    pub fn is_config(&self, path: &Path) -> bool {
        path == self.config
    }

    /// Whether `path` (normalized) is exactly one of the files jobs read.
    pub fn is_input_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// The jobs that read `path` (normalized): jobs listing the file, jobs whose image folder is `path` or
    /// holds it, and jobs reading anything inside `path` when it is a folder (deleted, moved or recreated
    /// whole: the OS then reports the folder, not each file).
    pub fn jobs_for(&self, path: &Path) -> BTreeSet<String> {
        let mut jobs = BTreeSet::new();
        for (file, ids) in &self.files {
            if file.starts_with(path) {
                jobs.extend(ids.iter().cloned());
            }
        }
        for (folder, ids) in &self.folders {
            if folder.starts_with(path) || path.parent() == Some(folder.as_path()) {
                jobs.extend(ids.iter().cloned());
            }
        }
        jobs
    }

    /// The folders to watch (non-recursively): the parent of every input and of the config, every image
    /// folder and its parent. Watching parents, not files, keeps rename-saves and delete/recreate visible.
    pub fn watch_dirs(&self) -> BTreeSet<PathBuf> {
        let parents = self
            .files
            .keys()
            .chain(self.folders.keys())
            .chain(std::iter::once(&self.config))
            .filter_map(|p| p.parent().map(Path::to_path_buf));
        let mut dirs: BTreeSet<PathBuf> = parents.collect();
        dirs.extend(self.folders.keys().cloned());
        dirs
    }

    /// How many files and folders the jobs read.
    pub fn input_count(&self) -> usize {
        self.files.len() + self.folders.len()
    }
}

/// The image-folder datasets a job calibrates on (its own, and those its `inputs` table names).
fn image_folders(job: &Job) -> Vec<PathBuf> {
    if !job.mode.needs_calibration() {
        return Vec::new();
    }
    let Some(own) = &job.dataset else {
        return Vec::new();
    };
    let referenced = own.feeds.values();
    std::iter::once(own)
        .chain(referenced)
        .filter(|spec: &&DatasetSpec| spec.format == DatasetFormat::Images)
        .filter_map(|spec| spec.path.clone())
        .collect()
}

/// An absolute path with its folder resolved through symlinks, so paths from the config and from file events
/// compare equal. The last component is kept as is: the file may be gone (deleted, mid-rename).
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn plan_of(dir: &Path, text: &str) -> Plan {
        let path = dir.join("quantize.toml");
        std::fs::write(&path, text).unwrap();
        let config = config::load(&path).unwrap();
        Plan::new(&config, None)
    }

    const TWO_MODELS: &str = r#"
[datasets.digits]
format = "npz"
path = "data/digits.npz"

[datasets.photos]
format = "images"
path = "photos"
resize = [28, 28]

[models.a]
source = "models/a.tflite"
modes = ["dynamic", "int8"]
dataset = "digits"

[models.b]
source = "models/b.tflite"
modes = ["dynamic", "int8"]
dataset = "photos"
"#;

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_model_file_maps_to_every_job_of_that_model_only() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        let a = normalize(&dir.path().join("models/a.tflite"));
        assert_eq!(map.jobs_for(&a), ids(&["a.dynamic", "a.int8"]));
    }

    #[test]
    fn a_dataset_maps_only_to_the_calibrated_jobs_using_it() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        let npz = normalize(&dir.path().join("data/digits.npz"));
        assert_eq!(map.jobs_for(&npz), ids(&["a.int8"]));
    }

    #[test]
    fn a_new_image_in_a_dataset_folder_maps_to_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        let image = normalize(&dir.path().join("photos/cat.png"));
        assert_eq!(map.jobs_for(&image), ids(&["b.int8"]));
        let folder = normalize(&dir.path().join("photos"));
        assert_eq!(map.jobs_for(&folder), ids(&["b.int8"]));
        assert!(map.watch_dirs().contains(&folder));
    }

    #[test]
    fn a_folder_holding_inputs_maps_to_the_jobs_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        let models = normalize(&dir.path().join("models"));
        assert_eq!(
            map.jobs_for(&models),
            ids(&["a.dynamic", "a.int8", "b.dynamic", "b.int8"])
        );
        let data = normalize(&dir.path().join("data"));
        assert_eq!(map.jobs_for(&data), ids(&["a.int8"]));
    }

    #[test]
    fn unrelated_files_and_the_config_map_to_no_job() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        assert!(map
            .jobs_for(&normalize(&dir.path().join("models/c.tflite")))
            .is_empty());
        let config = normalize(&dir.path().join("quantize.toml"));
        assert!(map.is_config(&config));
        assert!(map.jobs_for(&config).is_empty());
    }

    #[test]
    fn parents_of_inputs_and_config_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        let plan = plan_of(dir.path(), TWO_MODELS);
        let map = DependencyMap::new(&plan, &plan.config);
        let dirs = map.watch_dirs();
        assert!(dirs.contains(&normalize(&dir.path().join("models"))));
        assert!(dirs.contains(&dir.path().canonicalize().unwrap()));
    }
}
