//! What a changed path means: the config, inputs of some jobs, or nothing (our own writes, unrelated files).

use super::deps::DependencyMap;
use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files and folders litequant itself writes while watching: never a reason to rebuild.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnWrites {
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl OwnWrites {
    /// Our writes for artifacts in `out_dir`, the lock file `lock`, and `extra` folders (the cache).
    ///
    /// Paths are normalized like the [`DependencyMap`]'s.
    pub fn new(out_dir: &Path, lock: &Path, extra: &[PathBuf]) -> OwnWrites {
        let mut folders = vec![super::deps::normalize(out_dir)];
        folders.extend(extra.iter().map(|p| super::deps::normalize(p)));
        OwnWrites {
            folders,
            files: vec![super::deps::normalize(lock)],
        }
    }

    /// Whether `path` (normalized) is something we write: a temp file of an atomic write (`.NAME.XXXX.tmp`),
    /// the lock, or anything in the output or cache folders.
    pub fn contains(&self, path: &Path) -> bool {
        is_temp_file(path)
            || self.files.iter().any(|f| f == path)
            || self.folders.iter().any(|d| path.starts_with(d))
    }
}

/// `.NAME.XXXXXX.tmp`, the temp files of atomic writes (ours, and many editors' and tools').
fn is_temp_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
}

/// What one changed path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The config file changed: reload it and rebuild the jobs whose settings changed.
    Config,
    /// Inputs of these jobs (by id) changed.
    Inputs(BTreeSet<String>),
    /// Nothing to do: our own write, a temp file, or a file no job reads.
    Ignored,
}

/// Classifies a changed `path` (normalized). An exact job input wins over the own-writes rule (a model may
/// live in the output folder); temp files never count.
pub fn classify(path: &Path, deps: &DependencyMap, own: &OwnWrites) -> Change {
    if is_temp_file(path) {
        return Change::Ignored;
    }
    if deps.is_config(path) {
        return Change::Config;
    }
    if own.contains(path) && !deps.is_input_file(path) {
        return Change::Ignored;
    }
    let jobs = deps.jobs_for(path);
    if jobs.is_empty() {
        Change::Ignored
    } else {
        Change::Inputs(jobs)
    }
}

/// Whether an event can mean new content. Opening or reading a file (the jobs themselves read every input)
/// and access-time or permission updates cannot.
pub fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
            | MetadataKind::Permissions
            | MetadataKind::Ownership
            | MetadataKind::Extended,
        )) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::engine::Plan;

    struct Setup {
        dir: tempfile::TempDir,
        deps: DependencyMap,
        own: OwnWrites,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quantize.toml");
        let text = "[settings]\nout_dir = \"out\"\n\n[models.a]\nsource = \"a.tflite\"\nmodes = [\"dynamic\"]\n";
        std::fs::write(&path, text).unwrap();
        let config = config::load(&path).unwrap();
        let plan = Plan::new(&config, None);
        let deps = DependencyMap::new(&plan, &path);
        let own = OwnWrites::new(&plan.out_dir, &config.settings.lock, &[]);
        Setup { dir, deps, own }
    }

    fn at(s: &Setup, rel: &str) -> PathBuf {
        super::super::deps::normalize(&s.dir.path().join(rel))
    }

    #[test]
    fn artifacts_reports_and_their_temp_files_are_ignored() {
        let s = setup();
        std::fs::create_dir(s.dir.path().join("out")).unwrap();
        for rel in [
            "out/a.dynamic.tflite",
            "out/a.dynamic.json",
            "out/.a.dynamic.tflite.Ab12Cd.tmp",
        ] {
            assert_eq!(
                classify(&at(&s, rel), &s.deps, &s.own),
                Change::Ignored,
                "{rel}"
            );
        }
    }

    #[test]
    fn the_lock_and_temp_files_beside_inputs_are_ignored() {
        let s = setup();
        assert_eq!(
            classify(&at(&s, "quantize.lock"), &s.deps, &s.own),
            Change::Ignored
        );
        assert_eq!(
            classify(&at(&s, ".a.tflite.x1y2.tmp"), &s.deps, &s.own),
            Change::Ignored
        );
    }

    #[test]
    fn reading_an_input_is_not_a_change_but_writing_it_is() {
        use notify::event::{CreateKind, DataChange, RemoveKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::Any)));
    }

    #[test]
    fn the_config_and_a_model_are_recognized() {
        let s = setup();
        assert_eq!(
            classify(&at(&s, "quantize.toml"), &s.deps, &s.own),
            Change::Config
        );
        let expected: BTreeSet<String> = ["a.dynamic".to_string()].into();
        assert_eq!(
            classify(&at(&s, "a.tflite"), &s.deps, &s.own),
            Change::Inputs(expected)
        );
    }

    #[test]
    fn an_input_inside_the_output_folder_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quantize.toml");
        let text = "[settings]\nout_dir = \".\"\n\n[models.a]\nsource = \"a.tflite\"\nmodes = [\"dynamic\"]\n";
        std::fs::write(&path, text).unwrap();
        let config = config::load(&path).unwrap();
        let plan = Plan::new(&config, None);
        let deps = DependencyMap::new(&plan, &path);
        let own = OwnWrites::new(&plan.out_dir, &config.settings.lock, &[]);
        let model = super::super::deps::normalize(&dir.path().join("a.tflite"));
        assert!(matches!(classify(&model, &deps, &own), Change::Inputs(_)));
        let artifact = super::super::deps::normalize(&dir.path().join("a.dynamic.tflite"));
        assert_eq!(classify(&artifact, &deps, &own), Change::Ignored);
    }
}
