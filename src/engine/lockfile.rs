//! `quantize.lock`: per artifact, the digests of its inputs and settings, the calibrated ranges as exact float
//! bits, and the digest of the artifact. Written by `litequant build` and `litequant watch`, never by build.rs.
//!
//! With the lock, an artifact is rebuilt from the recorded ranges instead of calibrating, so a release build
//! needs no dataset, is fast, and gives the same bytes on any CPU.

use super::digest::{sha256_hex, FORMAT_VERSION};
use crate::graph::TensorId;
use crate::quantize::Ranges;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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

/// One calibrated range: a tensor of the source model (flat id: the main subgraph's tensors, then each further
/// subgraph's) and its `[min, max]` as f32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRange {
    /// Flat tensor id in the source model (the main subgraph's index for one-subgraph models).
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

/// SHA-256 of an entry's ranges as the lock records them (`ranges_sha256`): a range edited, added or removed by
/// hand no longer matches it, and reads as a lock edit rather than as an engine change.
pub fn ranges_digest(ranges: &[TensorRange]) -> String {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.tensor);
    let mut text = String::from("litequant lock ranges\n");
    for r in &sorted {
        let _ = writeln!(text, "{} {:08x} {:08x}", r.tensor, r.min, r.max);
    }
    sha256_hex(text.as_bytes())
}

/// Why one entry of a lock file cannot be trusted, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDefect {
    /// 1-based line in the lock file (of the offending range, else of the entry's `model` key).
    pub line: usize,
    /// What is wrong, in the user's terms.
    pub message: String,
}

/// Where an entry's lines are: its `model` key and each range by tensor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EntryLines {
    entry: usize,
    ranges: BTreeMap<usize, usize>,
}

/// The whole lock: entries by `(model, mode)`.
///
/// Entries that cannot be trusted (a non-finite or inverted range, a tensor listed twice, ranges that do not
/// match their `ranges_sha256`, an entry listed twice) are not in [`entries`](Self::entries): they are
/// reported by [`defect`](Self::defect) with their line, so a build can refuse or recalibrate them.
#[derive(Debug, Clone, Default)]
pub struct LockFile {
    /// The usable entries.
    pub entries: BTreeMap<(String, String), LockEntry>,
    defects: BTreeMap<(String, String), EntryDefect>,
    lines: BTreeMap<(String, String), EntryLines>,
}

impl PartialEq for LockFile {
    fn eq(&self, other: &LockFile) -> bool {
        self.entries == other.entries && self.defects == other.defects
    }
}

impl Eq for LockFile {}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The 1-based line the problem is on, when it is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: toml::Spanned<u32>,
    #[serde(default)]
    artifact: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    model: toml::Spanned<String>,
    mode: String,
    format_version: u32,
    settings: String,
    output: String,
    source: FileDigest,
    #[serde(default)]
    dataset: Vec<FileDigest>,
    #[serde(default)]
    ranges_sha256: Option<String>,
    #[serde(default)]
    ranges: Vec<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    tensor: toml::Spanned<usize>,
    min: String,
    max: String,
}

fn parse_bits(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

impl LockFile {
    /// Reads a lock file; `Ok(None)` when it does not exist. A lock path that is a folder is an error saying
    /// so (`[settings] lock` names a file).
    pub fn read(path: &Path) -> Result<Option<LockFile>, LockError> {
        let error = |line, message: String| LockError {
            path: path.to_path_buf(),
            line,
            message,
        };
        if path.is_dir() {
            return Err(error(
                None,
                "is a folder; `[settings] lock` must name the lock file (e.g. \"quantize.lock\")"
                    .into(),
            ));
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error(None, e.to_string())),
        };
        LockFile::parse_located(&text)
            .map(Some)
            .map_err(|(line, message)| error(line, message))
    }

    /// Parses the text of a lock file.
    pub fn parse(text: &str) -> Result<LockFile, String> {
        LockFile::parse_located(text).map_err(|(line, message)| match line {
            Some(l) => format!("line {l}: {message}"),
            None => message,
        })
    }

    /// Parses the text of a lock file; an error carries the line it is on, when it is on one.
    fn parse_located(text: &str) -> Result<LockFile, (Option<usize>, String)> {
        let line_of = |offset: usize| line_at(text, offset);
        let raw: RawLock = toml::from_str(text).map_err(|e| {
            (
                e.span().map(|s| line_of(s.start)),
                format!(
                    "not a readable quantize.lock ({}); delete it and run `litequant build` to write a new one",
                    e.message().trim_end()
                ),
            )
        })?;
        if *raw.version.get_ref() != LOCK_VERSION {
            return Err((
                Some(line_of(raw.version.span().start)),
                format!(
                    "lock file version {} is not supported (this litequant reads version {LOCK_VERSION})",
                    raw.version.get_ref()
                ),
            ));
        }
        let mut lock = LockFile::default();
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in raw.artifact {
            let entry_line = line_of(e.model.span().start);
            let model = e.model.into_inner();
            let key = (model.clone(), e.mode.clone());
            let id = format!("{}.{}", model, e.mode);
            if let Some(first) = seen.insert(key.clone(), entry_line) {
                lock.entries.remove(&key);
                lock.defects.insert(
                    key,
                    EntryDefect {
                        line: entry_line,
                        message: format!(
                            "entry `{id}` is listed twice (lines {first} and {entry_line}); the lock holds one \
                             entry per artifact"
                        ),
                    },
                );
                continue;
            }
            let mut lines = EntryLines {
                entry: entry_line,
                ranges: BTreeMap::new(),
            };
            let mut ranges = Vec::with_capacity(e.ranges.len());
            let mut defect = None;
            let mut tensors = BTreeSet::new();
            for r in &e.ranges {
                let tensor = *r.tensor.get_ref();
                let line = line_of(r.tensor.span().start);
                lines.ranges.entry(tensor).or_insert(line);
                let problem = match (parse_bits(&r.min), parse_bits(&r.max)) {
                    (Some(min), Some(max)) => {
                        let (lo, hi) = (f32::from_bits(min), f32::from_bits(max));
                        if !tensors.insert(tensor) {
                            Some(format!("tensor {tensor} has two ranges"))
                        } else if !lo.is_finite() || !hi.is_finite() {
                            Some(format!("the range of tensor {tensor} is [{lo}, {hi}], which is not finite"))
                        } else if lo > hi {
                            Some(format!("the range of tensor {tensor} is [{lo}, {hi}]: its minimum exceeds its maximum"))
                        } else {
                            ranges.push(TensorRange { tensor, min, max });
                            None
                        }
                    }
                    _ => Some(format!(
                        "the range of tensor {tensor} is not two `0x`-prefixed f32 bit patterns (found min = {:?}, max = {:?})",
                        r.min, r.max
                    )),
                };
                if let (None, Some(message)) = (&defect, problem) {
                    defect = Some(EntryDefect { line, message });
                }
            }
            ranges.sort_by_key(|r| r.tensor);
            if defect.is_none() {
                let message = match &e.ranges_sha256 {
                    Some(recorded) if *recorded != ranges_digest(&ranges) => Some(
                        "its ranges do not match its `ranges_sha256`: the ranges were edited by hand (only \
                         `litequant build` writes them)",
                    ),
                    None if !ranges.is_empty() => Some(
                        "it records ranges without their `ranges_sha256` (written by an older litequant, or \
                         edited by hand)",
                    ),
                    _ => None,
                };
                defect = message.map(|m| EntryDefect {
                    line: entry_line,
                    message: m.into(),
                });
            }
            let defect = defect.map(|d| EntryDefect {
                line: d.line,
                message: format!("entry `{id}`: {}", d.message),
            });
            lock.lines.insert(key.clone(), lines);
            match defect {
                Some(d) => {
                    lock.defects.insert(key, d);
                }
                None => {
                    let entry = LockEntry {
                        model,
                        mode: e.mode,
                        format_version: e.format_version,
                        settings: e.settings,
                        source: e.source,
                        dataset: e.dataset,
                        output: e.output,
                        ranges,
                    };
                    lock.entries.insert(key, entry);
                }
            }
        }
        Ok(lock)
    }

    /// Why the entry of `(model, mode)` cannot be used, when it was read and found wrong.
    pub fn defect(&self, model: &str, mode: &str) -> Option<&EntryDefect> {
        self.defects.get(&(model.to_string(), mode.to_string()))
    }

    /// The line of an entry (its `model` key), or of one of its ranges when `tensor` is given and listed.
    pub fn line_of(&self, model: &str, mode: &str, tensor: Option<usize>) -> Option<usize> {
        let lines = self.lines.get(&(model.to_string(), mode.to_string()))?;
        Some(
            tensor
                .and_then(|t| lines.ranges.get(&t).copied())
                .unwrap_or(lines.entry),
        )
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
                let _ = writeln!(s, "ranges_sha256 = {}", quote(&ranges_digest(&e.ranges)));
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

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
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
        let err = LockFile::parse("version = 1\n[[artifact]]\nmodel = 3\n").unwrap_err();
        assert!(err.starts_with("line 3: "), "{err}");
    }

    /// The defect of the entry `digits "v2".int8` after `edit` of the lock text.
    fn defect_after(edit: impl Fn(&str) -> String) -> EntryDefect {
        let lock = LockFile::parse(&edit(&entry_text())).unwrap();
        assert!(lock.entries.is_empty(), "the damaged entry is not usable");
        lock.defect("digits \"v2\"", "int8").unwrap().clone()
    }

    #[test]
    fn damaged_entries_are_set_aside_naming_their_line() {
        let text = entry_text();
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let bits = defect_after(|t| t.replace("0xbfc00000", "-1.5"));
        assert!(bits.message.contains("tensor 7"), "{bits:?}");
        assert_eq!(bits.line, line_of("tensor = 7"));
        let nan = defect_after(|t| t.replace("0x4bf7f490", "0x7fc00000"));
        assert!(nan.message.contains("not finite"), "{nan:?}");
        assert!(
            nan.message.contains("entry `digits \"v2\".int8`"),
            "{nan:?}"
        );
        let inverted = defect_after(|t| t.replace("0xbfc00000", "0x7f000000"));
        assert!(
            inverted.message.contains("exceeds its maximum"),
            "{inverted:?}"
        );
        let twice = defect_after(|t| {
            let line = t.lines().find(|l| l.contains("tensor = 7")).unwrap();
            t.replace(line, &format!("{line}\n{line}"))
        });
        assert!(
            twice.message.contains("tensor 7 has two ranges"),
            "{twice:?}"
        );
        // A range that parses and is finite, but is not what the build wrote.
        let edited = defect_after(|t| t.replace("0xbfc00000", "0xbfc00001"));
        assert!(edited.message.contains("edited by hand"), "{edited:?}");
        assert_eq!(edited.line, line_of("model = "));
        let removed = defect_after(|t| {
            let line = t.lines().find(|l| l.contains("tensor = 7")).unwrap();
            t.replace(&format!("{line}\n"), "")
        });
        assert!(removed.message.contains("edited by hand"), "{removed:?}");
        // The same entry twice: neither is used.
        let body = text.split_once("[[artifact]]").unwrap().1;
        let doubled = format!("{text}\n[[artifact]]{body}");
        let lock = LockFile::parse(&doubled).unwrap();
        assert!(lock.entries.is_empty());
        let d = lock.defect("digits \"v2\"", "int8").unwrap();
        assert!(d.message.contains("listed twice"), "{d:?}");
        // Ranges without `ranges_sha256` cannot be told from edited ones.
        let unsigned = defect_after(|t| {
            t.lines()
                .filter(|l| !l.starts_with("ranges_sha256"))
                .map(|l| format!("{l}\n"))
                .collect()
        });
        assert!(
            unsigned.message.contains("without their `ranges_sha256`"),
            "{unsigned:?}"
        );
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
