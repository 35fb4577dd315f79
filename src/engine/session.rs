//! Building jobs through the cache and `quantize.lock`: the one way the CLI, watch and build.rs run a plan.

use super::cache::{Cache, CacheEntry};
use super::digest::{settings_digest, sha256_file, sha256_hex, FORMAT_VERSION};
use super::job::{produce, read_file, write_outputs, JobError, RunOptions};
use super::lockfile::{
    display_relative, ranges_to_lock, EntryDefect, FileDigest, LockEntry, LockFile, TensorRange,
};
use super::{write_atomically, Artifact, Job, LockPolicy, Plan};
use crate::dataset;
use crate::quantize::{self, Ranges};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Where an artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Taken from the cache: nothing was calibrated or quantized.
    Hit,
    /// Built, then stored in the cache.
    Miss,
    /// Built; the session has no cache.
    Off,
}

/// A job built by a [`Session`].
#[derive(Debug, Clone)]
pub struct Built {
    /// The artifact and its report.
    pub artifact: Artifact,
    /// Cache hit or miss.
    pub cache: CacheStatus,
    /// Whether the ranges came from `quantize.lock`.
    pub from_lock: bool,
    /// Things the user should know (a stale lock entry, an unusable cache), one line each.
    pub warnings: Vec<String>,
}

/// Runs the jobs of one plan with a cache and a lock policy; collects lock entries for [`write_lock`].
///
/// [`write_lock`]: Session::write_lock
#[derive(Debug)]
pub struct Session {
    policy: LockPolicy,
    base_dir: PathBuf,
    lock_path: PathBuf,
    cache: Option<Cache>,
    lock: Option<LockFile>,
    built: Mutex<BTreeMap<(String, String), LockEntry>>,
}

/// The digests of a job's inputs, as the lock records them.
struct Inputs {
    source_bytes: Vec<u8>,
    source: FileDigest,
    settings: String,
    /// Dataset files present now.
    dataset: Vec<FileDigest>,
    /// Dataset files the job names that do not exist (a locked build may lack them).
    missing: Vec<PathBuf>,
    /// Evaluation dataset files present now (their digests key the cached report's accuracy).
    eval: Vec<FileDigest>,
}

impl Session {
    /// A session for `plan` (its [`LockPolicy`] decides how the lock is used). Reads the lock unless the
    /// policy ignores it; a locked session without a lock file is an error.
    pub fn new(plan: &Plan, cache: Option<Cache>) -> Result<Session, JobError> {
        let lock = match plan.lock {
            LockPolicy::Ignore => None,
            _ => LockFile::read(&plan.lock_file)?,
        };
        if plan.lock == LockPolicy::Locked && lock.is_none() {
            return Err(JobError::NoLock {
                path: plan.lock_file.clone(),
            });
        }
        Ok(Session {
            policy: plan.lock,
            base_dir: plan.base_dir.clone(),
            lock_path: plan.lock_file.clone(),
            cache,
            lock,
            built: Mutex::new(BTreeMap::new()),
        })
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Whether a lock file was read.
    pub fn has_lock(&self) -> bool {
        self.lock.is_some()
    }

    fn digest(&self, path: &std::path::Path) -> Result<FileDigest, JobError> {
        Ok(FileDigest {
            path: display_relative(path, &self.base_dir),
            sha256: sha256_file(path).map_err(|source| JobError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        })
    }

    fn inputs(&self, job: &Job) -> Result<Inputs, JobError> {
        let source_bytes = read_file(&job.source)?;
        let source = FileDigest {
            path: display_relative(&job.source, &self.base_dir),
            sha256: sha256_hex(&source_bytes),
        };
        let mut dataset = Vec::new();
        let mut missing = Vec::new();
        if job.mode.needs_calibration() {
            if let Some(spec) = &job.dataset {
                for file in dataset::digest_files(spec) {
                    if file.exists() {
                        dataset.push(self.digest(&file)?);
                    } else {
                        missing.push(file);
                    }
                }
                // A folder that is gone lists no files: say so instead of recording an empty dataset.
                if let Some(path) = spec.path.as_ref().filter(|p| !p.exists()) {
                    missing.push(path.clone());
                }
            }
        }
        let mut eval = Vec::new();
        for file in job.eval_files() {
            if file.exists() {
                let digest = self.digest(&file)?;
                // An accuracy target makes the artifact depend on the evaluation data: the lock records it.
                if job.target.is_some() && !dataset.contains(&digest) {
                    dataset.push(digest.clone());
                }
                eval.push(digest);
            }
        }
        Ok(Inputs {
            source_bytes,
            source,
            settings: settings_digest(job),
            dataset,
            missing,
            eval,
        })
    }

    /// What differs between the lock's entry for `job` and its inputs now; empty when it matches.
    fn drift(&self, job: &Job, inputs: &Inputs) -> Option<Vec<String>> {
        let lock = self.lock.as_ref()?;
        let Some(entry) = lock.entries.get(&(job.model.clone(), job.mode.to_string())) else {
            return Some(vec![format!(
                "no entry for {} (a model or mode added since the lock was written)",
                job.id()
            )]);
        };
        let mut drift = Vec::new();
        if entry.format_version != FORMAT_VERSION {
            drift.push(format!(
                "the engine's output format changed (lock: version {}, this litequant: {FORMAT_VERSION})",
                entry.format_version
            ));
        }
        if entry.settings != inputs.settings {
            drift.push(format!(
                "the settings of model `{}` (mode {}) changed in the config",
                job.model, job.mode
            ));
        }
        if entry.source.sha256 != inputs.source.sha256 {
            drift.push(format!(
                "{} changed (sha256 {} in the lock, {} now)",
                inputs.source.path,
                short(&entry.source.sha256),
                short(&inputs.source.sha256)
            ));
        } else if entry.source.path != inputs.source.path {
            drift.push(format!(
                "the source moved from {} to {}",
                entry.source.path, inputs.source.path
            ));
        }
        // Datasets are checked only where present: a locked build may run without them.
        let recorded: BTreeMap<&str, &str> = entry
            .dataset
            .iter()
            .map(|d| (d.path.as_str(), d.sha256.as_str()))
            .collect();
        let partial = !inputs.missing.is_empty();
        for d in &inputs.dataset {
            match recorded.get(d.path.as_str()) {
                Some(&sha) if sha == d.sha256 => {}
                Some(&sha) => drift.push(format!(
                    "{} changed (sha256 {} in the lock, {} now)",
                    d.path,
                    short(sha),
                    short(&d.sha256)
                )),
                None => drift.push(format!("{} is new in the dataset", d.path)),
            }
        }
        if !partial {
            for path in recorded.keys() {
                if !inputs.dataset.iter().any(|d| d.path == *path) {
                    drift.push(format!("{path} was removed from the dataset"));
                }
            }
        }
        Some(drift)
    }

    /// Builds one job: from the cache when an identical build is there, else calibrating (or taking the
    /// lock's ranges) and quantizing, then storing it. Writes the artifact (only if its bytes changed) and the
    /// report.
    ///
    /// A lock entry that cannot be trusted (a range that is not finite, names a tensor the model lacks, is
    /// listed twice or was edited by hand, a range the model needs missing) fails a locked build naming the
    /// lock's line; any other build warns the same way and calibrates afresh, so the entry it writes back is a
    /// fresh one.
    pub fn build(&self, job: &Job, opts: &RunOptions<'_>) -> Result<Built, JobError> {
        let start = Instant::now();
        let inputs = self.inputs(job)?;
        let mut warnings = Vec::new();
        let calibrated = job.mode.needs_calibration();
        let entry = self
            .lock
            .as_ref()
            .and_then(|l| l.entries.get(&(job.model.clone(), job.mode.to_string())));
        let drift = self.drift(job, &inputs);
        let mut defect: Option<EntryDefect> = match (self.policy, &self.lock) {
            (LockPolicy::Ignore, _) | (_, None) => None,
            (_, Some(lock)) => lock.defect(&job.model, &job.mode.to_string()).cloned(),
        };
        if let (None, Some(e), Some(d)) = (&defect, entry, &drift) {
            if d.is_empty() && calibrated && self.policy != LockPolicy::Ignore {
                defect = self.check_ranges(job, &inputs, e);
            }
        }
        let lock_ranges: Option<Ranges> = match (self.policy, &drift, entry) {
            (LockPolicy::Ignore, _, _) => None,
            _ if defect.is_some() => None,
            (LockPolicy::Locked, Some(d), _) if !d.is_empty() => {
                return Err(JobError::Drift {
                    job: job.id(),
                    lock: self.lock_path.clone(),
                    drift: d.clone(),
                })
            }
            // Modes without calibration take nothing from the lock (its entry only records their output).
            (_, Some(d), Some(e)) if d.is_empty() => calibrated.then(|| e.ranges()),
            (LockPolicy::Use, Some(d), _) => {
                warnings.push(format!(
                    "{} is stale for {} ({}); calibrating afresh (run `litequant build` to refresh it)",
                    self.lock_path.display(),
                    job.id(),
                    d.join("; ")
                ));
                None
            }
            _ => None,
        };
        if let Some(d) = defect {
            self.lock_entry_problem(d, &mut warnings)?;
        }
        let attempt = self.produce_cached(
            job,
            &inputs,
            lock_ranges.clone(),
            opts,
            start,
            &mut warnings,
        );
        let (from_lock, (status, bytes, mut report, ranges)) = match attempt {
            // The lock's entry lacks a range the model needs: a lock problem, not an engine failure.
            Err(JobError::Quantize {
                source: quantize::QuantError::MissingRange(what),
                ..
            }) if lock_ranges.is_some() => {
                let line = self
                    .lock
                    .as_ref()
                    .and_then(|l| l.line_of(&job.model, &job.mode.to_string(), None))
                    .unwrap_or(0);
                let d = EntryDefect {
                    line,
                    message: format!(
                        "entry `{}`: the model needs a range the entry does not record: {what}",
                        job.id()
                    ),
                };
                self.lock_entry_problem(d, &mut warnings)?;
                (
                    false,
                    self.produce_cached(job, &inputs, None, opts, start, &mut warnings)?,
                )
            }
            other => (lock_ranges.is_some(), other?),
        };
        if status == CacheStatus::Hit {
            // The cached report is of an identical build, possibly of another model name or folder.
            report.model = job.model.clone();
            report.source = job.source.display().to_string();
            report.artifact = job.artifact.display().to_string();
            report.seconds = start.elapsed().as_secs_f64();
            report.cache = "hit".into();
        }
        let output = sha256_hex(&bytes);
        // The lock's entry matched this job: its recorded output must be what was built (for modes without
        // calibration too: their bytes follow from the source and settings alone).
        let matched = entry.filter(|_| {
            self.policy != LockPolicy::Ignore && drift.as_ref().is_some_and(|d| d.is_empty())
        });
        let checked = from_lock || (!calibrated && matched.is_some());
        if let (true, Some(e)) = (checked, matched) {
            if e.output != output {
                let what = format!(
                    "the artifact {} differs from the one it records (sha256 {} in the lock, {} now): the entry's `output` was edited, or the engine's output changed without a format version change",
                    if from_lock { "rebuilt from the lock's ranges" } else { "built from the same inputs" },
                    short(&e.output),
                    short(&output)
                );
                if self.policy == LockPolicy::Locked {
                    return Err(JobError::Drift {
                        job: job.id(),
                        lock: self.lock_path.clone(),
                        drift: vec![what],
                    });
                }
                warnings.push(what);
            }
        }
        if opts.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        write_outputs(job, &bytes, &report)?;
        if self.policy == LockPolicy::Update {
            let mut dataset = inputs.dataset.clone();
            if from_lock {
                // Files a locked rebuild did not see keep their recorded digests.
                if let Some(e) = entry {
                    for d in &e.dataset {
                        if !dataset.iter().any(|x| x.path == d.path) {
                            dataset.push(d.clone());
                        }
                    }
                }
            }
            dataset.sort();
            let entry = LockEntry {
                model: job.model.clone(),
                mode: job.mode.to_string(),
                format_version: FORMAT_VERSION,
                settings: inputs.settings.clone(),
                source: inputs.source.clone(),
                dataset,
                output,
                ranges,
            };
            if let Ok(mut built) = self.built.lock() {
                built.insert((entry.model.clone(), entry.mode.clone()), entry);
            }
        }
        Ok(Built {
            artifact: Artifact {
                job: job.id(),
                path: job.artifact.clone(),
                report,
            },
            cache: status,
            from_lock,
            warnings,
        })
    }

    /// A lock entry that cannot be used: an error in a locked build, else a warning (the job calibrates).
    fn lock_entry_problem(
        &self,
        defect: EntryDefect,
        warnings: &mut Vec<String>,
    ) -> Result<(), JobError> {
        if self.policy == LockPolicy::Locked {
            return Err(JobError::LockEntry {
                lock: self.lock_path.clone(),
                line: defect.line,
                message: defect.message,
            });
        }
        let rewrite = if self.policy == LockPolicy::Update {
            " and rewriting the entry"
        } else {
            ""
        };
        warnings.push(format!(
            "{}:{}: {}; calibrating afresh{rewrite}",
            self.lock_path.display(),
            defect.line,
            defect.message
        ));
        Ok(())
    }

    /// Checks a lock entry's ranges against the model: every tensor exists (flat id over all subgraphs) and is a
    /// float32 tensor. `None` when they fit (or the model cannot be read: the build reports that itself).
    fn check_ranges(&self, job: &Job, inputs: &Inputs, entry: &LockEntry) -> Option<EntryDefect> {
        let graph = super::job::source_graph(&job.source, &inputs.source_bytes).ok()?;
        // Ranges are keyed by flat id: the main subgraph's tensors, then each further subgraph's.
        let tensors: Vec<&crate::tflite::fb::TensorT> = graph
            .model
            .subgraphs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .flat_map(|sg| sg.tensors.as_deref().unwrap_or(&[]))
            .collect();
        for r in &entry.ranges {
            let problem = match tensors.get(r.tensor).copied() {
                None => format!(
                    "tensor {} has a range, but the model's subgraphs have tensors 0..{}",
                    r.tensor,
                    tensors.len()
                ),
                Some(t) if t.type_ != crate::tflite::fb::TensorType::FLOAT32 => format!(
                    "tensor {} ({:?}) has a range, but it is {}, not a float32 activation",
                    r.tensor,
                    t.name.as_deref().unwrap_or(""),
                    crate::tflite::type_name(t.type_)
                ),
                Some(_) => continue,
            };
            let line = self
                .lock
                .as_ref()
                .and_then(|l| l.line_of(&job.model, &job.mode.to_string(), Some(r.tensor)))
                .unwrap_or(0);
            return Some(EntryDefect {
                line,
                message: format!("entry `{}`: {problem}", job.id()),
            });
        }
        None
    }

    /// The artifact, report and ranges of `job`: from the cache when an identical build is stored and intact,
    /// else produced (calibrating unless `lock_ranges` are given) and stored.
    fn produce_cached(
        &self,
        job: &Job,
        inputs: &Inputs,
        lock_ranges: Option<Ranges>,
        opts: &RunOptions<'_>,
        start: Instant,
        warnings: &mut Vec<String>,
    ) -> Result<(CacheStatus, Vec<u8>, super::Report, Vec<TensorRange>), JobError> {
        let from_lock = lock_ranges.is_some();
        if job.mode.needs_calibration() && !from_lock && !inputs.missing.is_empty() {
            // Calibration needs every dataset file: let the dataset reader name the missing one.
            let mut missing = inputs.missing.clone();
            missing.sort();
            return Err(JobError::Io {
                path: missing[0].clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "calibration dataset file not found",
                ),
            });
        }
        let key = self.cache_key(job, inputs, lock_ranges.as_ref());
        let expected = lock_ranges.as_ref().map(ranges_to_lock);
        // A hit is served only when it is what this job would build: the entry's digests were checked by
        // the cache; here its ranges (the lock's, when they key it), mode and artifact size must match too.
        let usable = |cache: &Cache, hit: CacheEntry| -> Option<CacheEntry> {
            let fits = hit.report.mode == job.mode.as_str()
                && hit.report.artifact_bytes == hit.artifact.len() as u64
                && expected.as_ref().is_none_or(|r| *r == hit.ranges)
                && (job.mode.needs_calibration() || hit.ranges.is_empty());
            if fits {
                Some(hit)
            } else {
                cache.remove(&key);
                None
            }
        };

        let mut status = CacheStatus::Off;
        let mut _guard = None;
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(&key).and_then(|h| usable(cache, h)) {
                return Ok((CacheStatus::Hit, hit.artifact, hit.report, hit.ranges));
            }
            match cache.lock(&key) {
                Ok(guard) => {
                    _guard = Some(guard);
                    // Another build may have stored it while we waited for the lock.
                    if let Some(hit) = cache.get(&key).and_then(|h| usable(cache, h)) {
                        return Ok((CacheStatus::Hit, hit.artifact, hit.report, hit.ranges));
                    }
                    status = CacheStatus::Miss;
                }
                Err(e) => warnings.push(format!(
                    "cache {} is not usable ({e}); building without it",
                    cache.dir().display()
                )),
            }
        }
        let produced = produce(job, &inputs.source_bytes, lock_ranges, opts, start)?;
        let ranges = produced
            .ranges
            .as_ref()
            .map(ranges_to_lock)
            .unwrap_or_default();
        let mut report = produced.report;
        report.cache = match status {
            CacheStatus::Miss => "miss",
            _ => "off",
        }
        .into();
        if let (CacheStatus::Miss, Some(cache)) = (status, &self.cache) {
            let entry = CacheEntry {
                artifact: produced.bytes.clone(),
                report: report.clone(),
                ranges: ranges.clone(),
            };
            let mut keys = vec![key.clone()];
            // Freshly calibrated: the same artifact is what a rebuild from these ranges (the lock this build
            // writes) gives, so store it under that key too.
            if let (false, Some(r)) = (from_lock, &produced.ranges) {
                keys.push(self.cache_key(job, inputs, Some(r)));
            }
            for k in &keys {
                if let Err(e) = cache.put(k, &entry) {
                    warnings.push(format!(
                        "could not store {} in cache {}: {e}",
                        job.id(),
                        cache.dir().display()
                    ));
                    break;
                }
            }
        }
        Ok((status, produced.bytes, report, ranges))
    }

    fn cache_key(&self, job: &Job, inputs: &Inputs, lock_ranges: Option<&Ranges>) -> String {
        let mut key = format!(
            "litequant-cache\nformat {FORMAT_VERSION}\nsettings {}\nsource {}\n",
            inputs.settings, inputs.source.sha256
        );
        if job.mode.needs_calibration() {
            match lock_ranges {
                Some(r) => {
                    key.push_str("ranges lock\n");
                    for t in ranges_to_lock(r) {
                        key.push_str(&format!("{} {:08x} {:08x}\n", t.tensor, t.min, t.max));
                    }
                }
                None => {
                    key.push_str("ranges dataset\n");
                    for d in &inputs.dataset {
                        key.push_str(&format!("{} {}\n", d.path, d.sha256));
                    }
                }
            }
        }
        if let Some(eval) = &job.eval {
            // The cached report carries the accuracy on this data, read with these settings.
            key.push_str(&format!(
                "eval {} {} {}\n",
                crate::eval::EVAL_VERSION,
                crate::VERSION,
                super::digest::eval_settings_digest(eval)
            ));
            for d in &inputs.eval {
                key.push_str(&format!("{} {}\n", d.path, d.sha256));
            }
        }
        sha256_hex(key.as_bytes())
    }

    /// Writes `quantize.lock` with the entries of the jobs built so far (policy [`LockPolicy::Update`] only),
    /// keeping other entries of `plan`'s config and dropping entries of models or modes it no longer declares.
    /// The file is rewritten only when its text changes; returns whether it was.
    pub fn write_lock(&self, plan: &Plan) -> Result<bool, JobError> {
        if self.policy != LockPolicy::Update {
            return Ok(false);
        }
        let mut lock = self.lock.clone().unwrap_or_default();
        lock.entries.retain(|k, _| plan.declared.contains(k));
        // Held until the file is written: jobs finishing on several threads (watch) write one at a time, each
        // with every entry built so far.
        let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        for (k, e) in built.iter() {
            lock.entries.insert(k.clone(), e.clone());
        }
        let text = lock.to_text();
        super::artifact::remove_stale_temps(&self.lock_path);
        let old = std::fs::read_to_string(&self.lock_path).ok();
        if old.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        if lock.entries.is_empty() && old.is_none() {
            return Ok(false);
        }
        write_atomically(&self.lock_path, text.as_bytes()).map_err(|source| JobError::Io {
            path: self.lock_path.clone(),
            source,
        })?;
        Ok(true)
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
