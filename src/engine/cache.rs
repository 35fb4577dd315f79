//! The content-addressed artifact cache shared by the CLI, `litequant watch` and build.rs.
//!
//! An entry is keyed by a SHA-256 of everything that determines the artifact (source bytes, resolved settings,
//! dataset bytes or locked ranges, the engine's format version) and holds the artifact, its report and the
//! ranges it was quantized with. Entries are written to a temp folder and renamed into place, so readers never
//! see half an entry; a per-key advisory file lock keeps two concurrent builds from computing the same entry
//! twice.
//!
//! Nothing is served unverified: `entry.json` records the artifact's SHA-256, and `entry.sha256` holds the
//! SHA-256 of the key and `entry.json`'s exact bytes, so the artifact, the report (with its evaluation
//! results) and the ranges are all covered. An entry that does not match, or whose ranges are not finite, is
//! treated as missing, removed and rebuilt.

use super::digest::{sha256_hex, FORMAT_VERSION};
use super::lockfile::TensorRange;
use super::report::Report;
use crate::config::Config;
use fs4::FileExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the cache folder (and `[settings] cache`).
pub const CACHE_DIR_ENV: &str = "LITEQUANT_CACHE_DIR";

/// A cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
}

/// What a cache entry holds.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The artifact bytes.
    pub artifact: Vec<u8>,
    /// The report of the job that produced it.
    pub report: Report,
    /// The ranges it was quantized with (calibrated modes).
    pub ranges: Vec<TensorRange>,
}

#[derive(Serialize, Deserialize)]
struct EntryMeta {
    format_version: u32,
    artifact_sha256: String,
    report: Report,
    ranges: Vec<(usize, u32, u32)>,
}

/// Holds a key's advisory lock until dropped.
#[derive(Debug)]
pub struct KeyLock {
    file: std::fs::File,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

impl Cache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The cache a config uses: `LITEQUANT_CACHE_DIR`, else `[settings] cache`, else
    /// `<cargo target dir>/litequant-cache` when the config sits in a cargo project (found with
    /// `cargo metadata`), else `.litequant-cache` beside the config.
    pub fn locate(config: &Config) -> Cache {
        if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
            return Cache::new(dir);
        }
        if let Some(dir) = &config.settings.cache {
            return Cache::new(dir);
        }
        match cargo_target_dir(&config.base_dir) {
            Some(target) => Cache::new(target.join("litequant-cache")),
            None => Cache::new(config.base_dir.join(".litequant-cache")),
        }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn root(&self) -> PathBuf {
        self.dir.join(format!("v{FORMAT_VERSION}"))
    }

    /// Takes the key's advisory lock (blocking until another process releases it).
    pub fn lock(&self, key: &str) -> std::io::Result<KeyLock> {
        let locks = self.root().join("locks");
        std::fs::create_dir_all(&locks)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(locks.join(format!("{key}.lock")))?;
        FileExt::lock(&file)?;
        Ok(KeyLock { file })
    }

    /// The entry for `key`, if present and intact. A damaged entry is removed and reported as missing.
    pub fn get(&self, key: &str) -> Option<CacheEntry> {
        let dir = self.root().join(key);
        let meta = std::fs::read(dir.join(ENTRY)).ok();
        let artifact = std::fs::read(dir.join(ARTIFACT)).ok();
        let digest = std::fs::read(dir.join(DIGEST)).ok();
        match (meta, artifact, digest) {
            (Some(meta), Some(artifact), Some(digest)) => {
                if let Some(entry) = verified(key, &meta, artifact, &digest) {
                    return Some(entry);
                }
            }
            (None, None, None) if !dir.exists() => return None,
            _ => {}
        }
        // Damaged (truncated, edited, half-deleted): drop it so it is rebuilt.
        self.remove(key);
        None
    }

    /// Removes the entry for `key` (a damaged one, or one that does not fit the job asking for it).
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_dir_all(self.root().join(key));
    }

    /// Stores the entry for `key` atomically (temp folder, then rename). An entry already there is kept.
    pub fn put(&self, key: &str, entry: &CacheEntry) -> std::io::Result<()> {
        let root = self.root();
        std::fs::create_dir_all(&root)?;
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(&root)?;
        let meta = EntryMeta {
            format_version: FORMAT_VERSION,
            artifact_sha256: sha256_hex(&entry.artifact),
            report: entry.report.clone(),
            ranges: entry
                .ranges
                .iter()
                .map(|r| (r.tensor, r.min, r.max))
                .collect(),
        };
        std::fs::write(tmp.path().join(ARTIFACT), &entry.artifact)?;
        let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
        std::fs::write(tmp.path().join(ENTRY), &json)?;
        std::fs::write(tmp.path().join(DIGEST), entry_digest(key, &json))?;
        let dest = root.join(key);
        let tmp_path = tmp.keep();
        match std::fs::rename(&tmp_path, &dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.join(ENTRY).exists() => {
                // Another process stored the same key first: its entry is as good as ours.
                let _ = std::fs::remove_dir_all(&tmp_path);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp_path);
                Err(e)
            }
        }
    }
}

/// The artifact of an entry.
const ARTIFACT: &str = "artifact.tflite";
/// The report, ranges and the artifact's SHA-256 of an entry.
const ENTRY: &str = "entry.json";
/// SHA-256 of the key and `entry.json`'s bytes.
const DIGEST: &str = "entry.sha256";

/// What `entry.sha256` holds for `json` stored under `key`: binding the key means an entry copied under another
/// key is not served either.
fn entry_digest(key: &str, json: &[u8]) -> String {
    let mut covered = format!("litequant cache entry\n{key}\n").into_bytes();
    covered.extend_from_slice(json);
    sha256_hex(&covered)
}

/// The entry stored as `meta` (the bytes of `entry.json`), `artifact` and `digest`, if every byte checks out.
fn verified(key: &str, meta: &[u8], artifact: Vec<u8>, digest: &[u8]) -> Option<CacheEntry> {
    if std::str::from_utf8(digest).ok()?.trim() != entry_digest(key, meta) {
        return None;
    }
    let meta: EntryMeta = serde_json::from_slice(meta).ok()?;
    if meta.format_version != FORMAT_VERSION || sha256_hex(&artifact) != meta.artifact_sha256 {
        return None;
    }
    let ranges: Vec<TensorRange> = meta
        .ranges
        .into_iter()
        .map(|(tensor, min, max)| TensorRange { tensor, min, max })
        .collect();
    let sane = ranges.iter().all(|r| {
        let (lo, hi) = (f32::from_bits(r.min), f32::from_bits(r.max));
        lo.is_finite() && hi.is_finite() && lo <= hi
    });
    sane.then_some(CacheEntry {
        artifact,
        report: meta.report,
        ranges,
    })
}

/// The target directory of the cargo project holding `dir`, if any. In a build script it is read off
/// `OUT_DIR` (`<target>/[<triple>/]<profile>/build/<package>/out`: the outermost of those folders that holds
/// cargo's `CACHEDIR.TAG`), so no `cargo` runs; elsewhere an absolute `CARGO_TARGET_DIR` is taken as is, and
/// otherwise (feature `workspace`) `cargo metadata` runs from the nearest `Cargo.toml` up the tree (so
/// `.cargo/config.toml` and workspaces are honoured).
pub fn cargo_target_dir(dir: &Path) -> Option<PathBuf> {
    if let Some(target) =
        std::env::var_os("OUT_DIR").and_then(|out| target_of_out_dir(Path::new(&out)))
    {
        return Some(target);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|t| t.is_absolute())
    {
        return Some(target);
    }
    metadata_target_dir(dir)
}

/// The target folder above a build script's `OUT_DIR`: of the profile folder and the two above it, the
/// outermost that holds cargo's `CACHEDIR.TAG`.
fn target_of_out_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .skip(3)
        .take(3)
        .filter(|d| d.join("CACHEDIR.TAG").is_file())
        .last()
        .map(Path::to_path_buf)
}

#[cfg(feature = "workspace")]
fn metadata_target_dir(dir: &Path) -> Option<PathBuf> {
    let manifest = dir
        .ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| m.is_file())?;
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&manifest)
        .no_deps()
        .exec()
        .ok()?;
    Some(metadata.target_directory.into_std_path_buf())
}

#[cfg(not(feature = "workspace"))]
fn metadata_target_dir(_: &Path) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_read_off_out_dir() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        for triple in [false, true] {
            let profile = if triple {
                target.join("x86_64-unknown-linux-gnu").join("debug")
            } else {
                target.join("debug")
            };
            let out = profile.join("build").join("app-0123").join("out");
            std::fs::create_dir_all(&out).unwrap();
            assert_eq!(target_of_out_dir(&out), None, "no CACHEDIR.TAG yet");
            std::fs::write(
                target.join("CACHEDIR.TAG"),
                "Signature: 8a477f597d28d172789f06886806bc55",
            )
            .unwrap();
            assert_eq!(target_of_out_dir(&out), Some(target.clone()));
            std::fs::remove_file(target.join("CACHEDIR.TAG")).unwrap();
        }
    }
    use crate::quantize::QuantSummary;

    fn report() -> Report {
        Report {
            litequant: "0".into(),
            model: "m".into(),
            mode: "int8".into(),
            source: "s".into(),
            artifact: "a".into(),
            source_bytes: 4,
            artifact_bytes: 3,
            size_ratio: 0.75,
            source_ops: 1,
            calibration_samples: 2,
            synthetic_calibration_data: false,
            quantization: QuantSummary::default(),
            seconds: 0.5,
            cache: String::new(),
            ranges_from: String::new(),
            accuracy: None,
            target: None,
        }
    }

    fn entry() -> CacheEntry {
        CacheEntry {
            artifact: vec![1, 2, 3],
            report: report(),
            ranges: vec![TensorRange {
                tensor: 2,
                min: 1,
                max: 2,
            }],
        }
    }

    #[test]
    fn entries_round_trip_and_missing_keys_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.get("k").is_none());
        cache.put("k", &entry()).unwrap();
        let back = cache.get("k").unwrap();
        assert_eq!(back.artifact, vec![1, 2, 3]);
        assert_eq!(back.ranges, entry().ranges);
        assert_eq!(back.report.model, "m");
        // A second put of the same key keeps the first entry and succeeds.
        cache.put("k", &entry()).unwrap();
    }

    #[test]
    fn a_corrupt_entry_is_a_miss_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.put("k", &entry()).unwrap();
        let artifact = cache.root().join("k").join("artifact.tflite");
        std::fs::write(&artifact, [9, 9]).unwrap();
        assert!(cache.get("k").is_none());
        assert!(!cache.root().join("k").exists());
        cache.put("k", &entry()).unwrap();
        std::fs::write(cache.root().join("k").join("entry.json"), "{").unwrap();
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn any_edit_of_an_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.put("k", &entry()).unwrap();
        let json = cache.root().join("k").join(ENTRY);
        let text = std::fs::read_to_string(&json).unwrap();
        // The range [1, 2] as bits; one digit changed, everything else intact.
        assert!(text.contains("[[2,1,2]]"), "{text}");
        std::fs::write(&json, text.replace("[[2,1,2]]", "[[2,1,3]]")).unwrap();
        assert!(cache.get("k").is_none());
        assert!(!cache.root().join("k").exists());
        // The report is covered too, and an entry moved under another key is not served.
        cache.put("k", &entry()).unwrap();
        let text = std::fs::read_to_string(&json).unwrap();
        std::fs::write(&json, text.replace("\"seconds\":0.5", "\"seconds\":0.6")).unwrap();
        assert!(cache.get("k").is_none());
        cache.put("k", &entry()).unwrap();
        std::fs::rename(cache.root().join("k"), cache.root().join("other")).unwrap();
        assert!(cache.get("other").is_none());
        cache.put("k", &entry()).unwrap();
        std::fs::remove_file(cache.root().join("k").join(DIGEST)).unwrap();
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn key_locks_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let held = cache.lock("k").unwrap();
        let path = cache.root().join("locks").join("k.lock");
        let other = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        assert!(FileExt::try_lock(&other).is_err() || !cfg!(unix));
        drop(held);
        assert!(FileExt::try_lock(&other).is_ok());
    }
}
