//! Turning a config into jobs.

use crate::config::{AccuracyTarget, Calibration, Config};
use crate::dataset::{self, DatasetSpec};
use crate::quantize::{Mode, QuantOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How `quantize.lock` takes part in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockPolicy {
    /// The lock is neither read nor written: every calibrated job calibrates (through the cache).
    #[default]
    Ignore,
    /// Read, never written (build.rs in development): jobs that match their entry take its ranges; a stale
    /// entry gives a warning and a fresh calibration.
    Use,
    /// Read and written (`litequant build`, `litequant watch`): matching entries give their ranges, drifted
    /// jobs calibrate afresh and their entries are replaced.
    Update,
    /// Required (`litequant build --locked`, release builds): every job must match its entry exactly and is
    /// rebuilt from its ranges; any drift fails the job, listing what drifted.
    Locked,
}

/// One artifact to produce: a model quantized in one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The model's name in the config (`[models.NAME]`).
    pub model: String,
    /// The mode.
    pub mode: Mode,
    /// The float source model.
    pub source: PathBuf,
    /// The calibration dataset (integer modes), with the datasets its `inputs` map points at resolved in it.
    pub dataset: Option<DatasetSpec>,
    /// Resolved quantization options.
    pub options: QuantOptions,
    /// Calibration method.
    pub calibration: Calibration,
    /// The evaluation dataset: the report measures the artifact's accuracy on it.
    pub eval: Option<DatasetSpec>,
    /// The accuracy the artifact must reach on `eval` (integer modes), keeping ops float as needed.
    pub target: Option<AccuracyTarget>,
    /// Where the `.tflite` artifact goes.
    pub artifact: PathBuf,
    /// Where the JSON report goes.
    pub report: PathBuf,
}

impl Job {
    /// `model.mode`, the job's name in output and file names.
    pub fn id(&self) -> String {
        format!("{}.{}", self.model, self.mode)
    }

    /// Every file this job reads: the source model, for calibrated modes the dataset files, and the
    /// evaluation dataset's files.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut files = vec![self.source.clone()];
        if self.mode.needs_calibration() {
            if let Some(ds) = &self.dataset {
                files.extend(dataset::digest_files(ds));
            }
        }
        for file in self.eval_files() {
            if !files.contains(&file) {
                files.push(file);
            }
        }
        files
    }

    /// The evaluation dataset's files (none without `eval`).
    pub fn eval_files(&self) -> Vec<PathBuf> {
        self.eval
            .as_ref()
            .map(dataset::digest_files)
            .unwrap_or_default()
    }
}

/// Every job of a config, in a stable order (models by name, modes as listed).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The config file the plan came from.
    pub config: PathBuf,
    /// Output folder of the artifacts.
    pub out_dir: PathBuf,
    /// The jobs.
    pub jobs: Vec<Job>,
    /// How the lock is used.
    pub lock: LockPolicy,
    /// The folder relative paths are recorded against in the lock (the config's folder).
    pub base_dir: PathBuf,
    /// `quantize.lock` (`[settings] lock`).
    pub lock_file: PathBuf,
    /// Every `(model, mode)` the config declares, also after [`retain_models`](Self::retain_models): lock
    /// entries of other pairs are dropped when the lock is written.
    pub declared: BTreeSet<(String, String)>,
}

impl Plan {
    /// Builds the plan of a config; `out_dir` overrides `[settings] out_dir` (build.rs passes `OUT_DIR`).
    pub fn new(config: &Config, out_dir: Option<&Path>) -> Plan {
        let out_dir = out_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| config.settings.out_dir.clone());
        let mut jobs = Vec::new();
        for (name, m) in &config.models {
            for &mode in &m.modes {
                let dataset = m
                    .dataset
                    .as_ref()
                    .and_then(|d| config.datasets.get(d))
                    .cloned();
                jobs.push(Job {
                    model: name.clone(),
                    mode,
                    source: m.source.clone(),
                    dataset,
                    options: m.quant_options(mode),
                    calibration: m.calibration,
                    eval: m
                        .eval
                        .as_ref()
                        .and_then(|d| config.datasets.get(d))
                        .cloned(),
                    target: m.target.filter(|_| mode.needs_calibration()),
                    artifact: out_dir.join(format!("{name}.{mode}.tflite")),
                    report: out_dir.join(format!("{name}.{mode}.json")),
                });
            }
        }
        let declared = jobs
            .iter()
            .map(|j| (j.model.clone(), j.mode.to_string()))
            .collect();
        Plan {
            config: config.path.clone(),
            out_dir,
            jobs,
            lock: LockPolicy::default(),
            base_dir: config.base_dir.clone(),
            lock_file: config.settings.lock.clone(),
            declared,
        }
    }

    /// Every file the plan reads (config, models, datasets), sorted and without duplicates.
    pub fn inputs(&self) -> BTreeSet<PathBuf> {
        let mut all: BTreeSet<PathBuf> = self.jobs.iter().flat_map(Job::inputs).collect();
        all.insert(self.config.clone());
        all
    }

    /// Keeps only the jobs of the named models.
    pub fn retain_models(&mut self, models: &[String]) {
        self.jobs.retain(|j| models.contains(&j.model));
    }
}
