//! SHA-256 digests of files and of a job's resolved settings: what the cache keys on and the lock records.

use super::Job;
use crate::dataset::DatasetSpec;
use crate::quantize::Mode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// The version of what the engine writes for given inputs. Bump it whenever the artifact bytes for the same
/// inputs and ranges change (a new rule, a different op version, a writer change): cache entries and lock
/// entries of another format version are not reused, and `--locked` reports the difference.
pub const FORMAT_VERSION: u32 = 1;

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 of a file's contents, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let (mut file, _) =
        crate::regular_file::open(path, crate::regular_file::UNBOUNDED, "a data file")?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A dataset's settings without its name and location: what changes the samples the model sees.
#[derive(Serialize)]
struct DatasetSettings<'a> {
    format: &'a crate::dataset::DatasetFormat,
    samples: Option<usize>,
    resize: Option<[u32; 2]>,
    mean: &'a [f32],
    std: &'a [f32],
    inputs: Vec<(&'a str, Option<DatasetSettingsRef<'a>>)>,
    range: Option<[f32; 2]>,
    seed: u64,
}

/// An input mapping: the array name, or, for image datasets feeding several inputs, the referenced dataset.
#[derive(Serialize)]
enum DatasetSettingsRef<'a> {
    Array(&'a str),
    Dataset(Box<DatasetSettings<'a>>),
}

fn dataset_settings(spec: &DatasetSpec, depth: usize) -> DatasetSettings<'_> {
    let inputs = spec
        .inputs
        .iter()
        .map(|(input, target)| {
            let referenced = spec.feeds.get(input).filter(|_| depth == 0);
            let r = match referenced {
                Some(other) => {
                    DatasetSettingsRef::Dataset(Box::new(dataset_settings(other, depth + 1)))
                }
                None => DatasetSettingsRef::Array(target.as_str()),
            };
            (input.as_str(), Some(r))
        })
        .collect();
    DatasetSettings {
        format: &spec.format,
        samples: spec.samples,
        resize: spec.resize,
        mean: &spec.mean,
        std: &spec.std,
        inputs,
        range: spec.range,
        seed: spec.seed,
    }
}

/// SHA-256 of what an evaluation dataset's settings change in an accuracy report besides its files: its
/// sample cap, `inputs` map and the like, and which labels it scores against which output.
pub fn eval_settings_digest(spec: &DatasetSpec) -> String {
    let settings = (
        dataset_settings(spec, 0),
        spec.labels.as_deref(),
        spec.label_output,
    );
    sha256_hex(
        serde_json::to_string(&settings)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Everything of a job's resolved settings that determines its artifact, minus file contents and locations.
#[derive(Serialize)]
struct JobSettings<'a> {
    format_version: u32,
    mode: Mode,
    options: &'a crate::quantize::QuantOptions,
    calibration: &'static str,
    /// Only for `calibration = "percentile"`: absent otherwise, so other jobs keep their digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    percentile: Option<f64>,
    dataset: Option<DatasetSettings<'a>>,
    /// Only with an accuracy target (it and its evaluation data decide which ops stay float); left out
    /// otherwise so digests of models without one are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<(
        &'a crate::config::AccuracyTarget,
        Option<DatasetSettings<'a>>,
    )>,
}

/// SHA-256 of the job's resolved settings (mode, options, calibration method and its percentile, dataset
/// parameters): two jobs
/// with the same digest, the same source bytes and the same ranges produce the same artifact. Paths and names
/// are left out, so moving a project or renaming a model keeps its digests.
pub fn settings_digest(job: &Job) -> String {
    let calibrated = job.mode.needs_calibration();
    let settings = JobSettings {
        format_version: FORMAT_VERSION,
        mode: job.mode,
        options: &job.options,
        calibration: if calibrated {
            job.calibration.as_str()
        } else {
            ""
        },
        percentile: job
            .calibration
            .percentile()
            .filter(|_| calibrated)
            .map(|p| p.value()),
        dataset: job
            .dataset
            .as_ref()
            .filter(|_| calibrated)
            .map(|d| dataset_settings(d, 0)),
        target: job
            .target
            .as_ref()
            .filter(|_| calibrated)
            .map(|t| (t, job.eval.as_ref().map(|d| dataset_settings(d, 0)))),
    };
    // Serializing plain data cannot fail; JSON float output is exact and deterministic (shortest round trip).
    sha256_hex(
        serde_json::to_string(&settings)
            .unwrap_or_default()
            .as_bytes(),
    )
}
