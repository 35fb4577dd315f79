//! What a `[datasets.NAME]` table declares, resolved (paths absolute).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::DatasetOrigin;

/// The file format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// One `.npy` array whose first axis indexes samples (single-input models).
    Npy,
    /// An `.npz` archive: one array per model input, first axis indexes samples.
    Npz,
    /// A folder of png/jpeg images, sorted by name.
    Images,
    /// Seeded uniform random data (smoke tests only).
    Random,
}

/// A dataset declared in `quantize.toml`, resolved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetSpec {
    /// The table name (`digits` in `[datasets.digits]`).
    pub name: String,
    /// File format.
    pub format: DatasetFormat,
    /// File or folder, absolute (`None` only for `random`).
    pub path: Option<PathBuf>,
    /// Use at most this many samples, in file order.
    pub samples: Option<usize>,
    /// Images: `[height, width]` to resize to.
    pub resize: Option<[u32; 2]>,
    /// Images: per-channel (or one for all) mean subtracted from pixel values.
    pub mean: Vec<f32>,
    /// Images: per-channel (or one for all) divisor.
    pub std: Vec<f32>,
    /// `inputs` as written: model input tensor name -> npz array name, or -> another dataset's name (the
    /// dataset feeding that input of a multi-input model; for a non-npz dataset, its own name means itself).
    pub inputs: BTreeMap<String, String>,
    /// The `inputs` entries that name another dataset, resolved once at config validation: `inputs` key ->
    /// the dataset that feeds that input. A referenced dataset's own entry for the same input is followed
    /// (`a.inputs.x = "b"`, `b.inputs.x = "c"`: `c` feeds `x`; a cycle is a config error), so the dataset
    /// here reads the input itself; its own `feeds` are empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feeds: BTreeMap<String, DatasetSpec>,
    /// Random: uniform range `[lo, hi]` (default `[0, 1]`).
    pub range: Option<[f32; 2]>,
    /// Random: seed.
    pub seed: u64,
    /// Npz evaluation sets: the array holding one class label per sample (default `labels`, when present).
    pub labels: Option<String>,
    /// Npz evaluation sets: the model output (index) the labels refer to (default: the archive's
    /// `label_output_index`, else the first classifier output).
    pub label_output: Option<usize>,
    /// Where the table is written in the config, for errors (empty for a spec built in code).
    #[serde(skip)]
    pub origin: DatasetOrigin,
}
