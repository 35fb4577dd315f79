//! `quantize.lock`: per artifact, the digests of its inputs and settings, the calibrated ranges as exact float
//! bits, and the digest of the artifact. Written by `litequant build` and `litequant watch`, never by build.rs.
//!
//! With the lock, an artifact is rebuilt from the recorded ranges instead of calibrating, so a release build
//! needs no dataset, is fast, and gives the same bytes on any CPU.

use super::digest::FORMAT_VERSION;
use crate::graph::TensorId;
use crate::quantize::Ranges;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The lock file format version (of the file layout, not of the artifacts: see [`FORMAT_VERSION`]).
pub const LOCK_VERSION: u32 = 1;

/// A file and its SHA-256, the path relative to the config's folder with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Path relative to the config's folder (absolute if outside it).
    pub path: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// One calibrated range: a tensor of the source model's main subgraph and its `[min, max]` as f32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRange {
    /// Tensor index in the source model's main subgraph.
    pub tensor: usize,
    /// `f32::to_bits` of the minimum.
    pub min: u32,
    /// `f32::to_bits` of the maximum.
    pub max: u32,
}

/// What the lock records for one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Model name in the config.
    pub model: String,
    /// Mode name.
    pub mode: String,
    /// The engine's output-format version that wrote the artifact.
    pub format_version: u32,
    /// SHA-256 of the job's resolved settings.
    pub settings: String,
    /// The source model.
    pub source: FileDigest,
    /// The dataset files (calibrated modes).
    pub dataset: Vec<FileDigest>,
    /// SHA-256 of the artifact.
    pub output: String,
    /// Calibrated ranges (calibrated modes), sorted by tensor.
    pub ranges: Vec<TensorRange>,
}

impl LockEntry {
    /// `model.mode`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.model, self.mode)
    }

    /// The recorded ranges as the quantizer takes them.
    pub fn ranges(&self) -> Ranges {
        self.ranges
            .iter()
            .map(|r| {
                (
                    TensorId(r.tensor),
                    (f32::from_bits(r.min), f32::from_bits(r.max)),
                )
            })
            .collect()
    }
}

/// Ranges as the lock records them.
pub fn ranges_to_lock(ranges: &Ranges) -> Vec<TensorRange> {
    ranges
        .iter()
        .map(|(t, &(min, max))| TensorRange {
            tensor: t.0,
            min: min.to_bits(),
            max: max.to_bits(),
        })
        .collect()
}

/// The whole lock: entries by `(model, mode)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFile {
    /// The entries.
    pub entries: BTreeMap<(String, String), LockEntry>,
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: u32,
    #[serde(default)]
    artifact: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    model: String,
    mode: String,
    format_version: u32,
    settings: String,
    output: String,
    source: FileDigest,
    #[serde(default)]
    dataset: Vec<FileDigest>,
    #[serde(default)]
    ranges: Vec<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    tensor: usize,
    min: String,
    max: String,
}

fn parse_bits(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

impl LockFile {
    /// Reads a lock file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<LockFile>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LockError {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        };
        LockFile::parse(&text)
            .map(Some)
            .map_err(|message| LockError {
                path: path.to_path_buf(),
                message,
            })
    }

    /// Parses the text of a lock file.
    pub fn parse(text: &str) -> Result<LockFile, String> {
        let raw: RawLock = toml::from_str(text).map_err(|e| {
            format!("not a readable quantize.lock ({}); delete it and run `litequant build` to write a new one", e.message())
        })?;
        if raw.version != LOCK_VERSION {
            return Err(format!(
                "lock file version {} is not supported (this litequant reads version {LOCK_VERSION})",
                raw.version
            ));
        }
        let mut entries = BTreeMap::new();
        for e in raw.artifact {
            let mut ranges = Vec::with_capacity(e.ranges.len());
            for r in &e.ranges {
                let (Some(min), Some(max)) = (parse_bits(&r.min), parse_bits(&r.max)) else {
                    return Err(format!(
                        "{}.{}: range of tensor {} is not two `0x`-prefixed f32 bit patterns",
                        e.model, e.mode, r.tensor
                    ));
                };
                ranges.push(TensorRange {
                    tensor: r.tensor,
                    min,
                    max,
                });
            }
            ranges.sort_by_key(|r| r.tensor);
            let entry = LockEntry {
                model: e.model,
                mode: e.mode,
                format_version: e.format_version,
                settings: e.settings,
                source: e.source,
                dataset: e.dataset,
                output: e.output,
                ranges,
            };
            entries.insert((entry.model.clone(), entry.mode.clone()), entry);
        }
        Ok(LockFile { entries })
    }

    /// The lock as text: stable order and layout, so the same entries give the same bytes.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str("# quantize.lock: written by `litequant build` and `litequant watch`. Commit it; do not edit.\n");
        s.push_str("# `litequant build --locked` (and release builds through litequant-build) rebuild every artifact\n");
        s.push_str("# from the ranges recorded here and fail if an input, a setting or the format version drifted.\n");
        let _ = writeln!(s, "version = {LOCK_VERSION}");
        for e in self.entries.values() {
            let _ = writeln!(s, "\n[[artifact]]");
            let _ = writeln!(s, "model = {}", quote(&e.model));
            let _ = writeln!(s, "mode = {}", quote(&e.mode));
            let _ = writeln!(s, "format_version = {}", e.format_version);
            let _ = writeln!(s, "settings = {}", quote(&e.settings));
            let _ = writeln!(s, "output = {}", quote(&e.output));
            let _ = writeln!(
                s,
                "source = {{ path = {}, sha256 = {} }}",
                quote(&e.source.path),
                quote(&e.source.sha256)
            );
            if !e.dataset.is_empty() {
                s.push_str("dataset = [\n");
                for d in &e.dataset {
                    let _ = writeln!(
                        s,
                        "  {{ path = {}, sha256 = {} }},",
                        quote(&d.path),
                        quote(&d.sha256)
                    );
                }
                s.push_str("]\n");
            }
            if !e.ranges.is_empty() {
                s.push_str("ranges = [\n");
                for r in &e.ranges {
                    let _ = writeln!(
                        s,
                        "  {{ tensor = {}, min = \"0x{:08x}\", max = \"0x{:08x}\" }},  # [{:e}, {:e}]",
                        r.tensor,
                        r.min,
                        r.max,
                        f32::from_bits(r.min),
                        f32::from_bits(r.max)
                    );
                }
                s.push_str("]\n");
            }
        }
        s
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `path` relative to `base` with `/` separators when it is inside `base`, else as given.
pub fn display_relative(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => path.display().to_string(),
    }
}

/// Checks that a format version matches this engine's.
pub fn same_format(entry: &LockEntry) -> bool {
    entry.format_version == FORMAT_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LockEntry {
        LockEntry {
            model: "digits \"v2\"".into(),
            mode: "int8".into(),
            format_version: FORMAT_VERSION,
            settings: "ab".repeat(32),
            source: FileDigest {
                path: "models/d.tflite".into(),
                sha256: "cd".repeat(32),
            },
            dataset: vec![FileDigest {
                path: "data/c.npz".into(),
                sha256: "ef".repeat(32),
            }],
            output: "01".repeat(32),
            ranges: vec![
                TensorRange {
                    tensor: 0,
                    min: (-0.0f32).to_bits(),
                    max: f32::MIN_POSITIVE.to_bits(),
                },
                TensorRange {
                    tensor: 7,
                    min: (-1.5f32).to_bits(),
                    max: 3.25e7f32.to_bits(),
                },
            ],
        }
    }

    #[test]
    fn lock_round_trips_exact_range_bits() {
        let e = entry();
        let mut lock = LockFile::default();
        lock.entries
            .insert((e.model.clone(), e.mode.clone()), e.clone());
        let text = lock.to_text();
        let back = LockFile::parse(&text).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.to_text(), text);
        let ranges = back.entries.values().next().unwrap().ranges();
        assert_eq!(ranges[&TensorId(0)].0.to_bits(), (-0.0f32).to_bits());
        assert_eq!(ranges[&TensorId(7)].1, 3.25e7);
    }

    #[test]
    fn malformed_lock_is_an_error_that_says_how_to_recover() {
        let err = LockFile::parse("version = 1\n[[artifact]]\nmodel = 3\n").unwrap_err();
        assert!(err.contains("delete it and run `litequant build`"), "{err}");
        let err = LockFile::parse("version = 9\n").unwrap_err();
        assert!(err.contains("version 9"), "{err}");
        let text = entry_text().replace("0xbfc00000", "-1.5");
        let err = LockFile::parse(&text).unwrap_err();
        assert!(err.contains("tensor 7"), "{err}");
    }

    fn entry_text() -> String {
        let e = entry();
        let mut lock = LockFile::default();
        lock.entries.insert((e.model.clone(), e.mode.clone()), e);
        lock.to_text()
    }

    #[test]
    fn paths_are_recorded_relative_to_the_config() {
        assert_eq!(
            display_relative(Path::new("/p/models/a.tflite"), Path::new("/p")),
            "models/a.tflite"
        );
        assert_eq!(
            display_relative(Path::new("/q/a.tflite"), Path::new("/p")),
            "/q/a.tflite"
        );
    }
}
