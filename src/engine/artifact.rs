//! Artifacts on disk: written through a temp file and a rename, so a reader never sees half a file.

use super::report::Report;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A finished job's output.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// `model.mode`.
    pub job: String,
    /// The `.tflite` file.
    pub path: PathBuf,
    /// What the job did, as written to the JSON report beside the artifact.
    pub report: Report,
}

impl Artifact {
    /// The one-line human summary: name, size, ratio, ops quantized / float, time.
    pub fn summary_line(&self) -> String {
        self.report.summary_line()
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, synced, then renamed over `path`.
///
/// Creates the folder if needed. On any error the temp file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    // Held while the file is written: [`remove_stale_temps`] leaves a temp file alone while a writer holds it.
    #[cfg(unix)]
    let _ = fs4::FileExt::try_lock(tmp.as_file());
    tmp.write_all(bytes)?;
    // tempfile creates files readable by the owner only; artifacts are ordinary files (rw-r--r--).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

const TEMP_SUFFIX: &str = ".tmp";

/// How old a temp file must be before it counts as stale: a writer locks its temp file right after creating
/// it, and this closes the moment in between.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes temp files [`write_atomically`] left for `path` (`.<name>.XXXXXX.tmp` beside it) when their writer is
/// gone (killed mid-write): files no process holds a lock on, older than a moment. Returns how many it removed.
///
/// On platforms without advisory locks here, only files older than an hour are removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in listing.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        // Exactly our naming: the prefix, a random part of letters and digits, the suffix.
        let Some(random) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        else {
            continue;
        };
        if random.is_empty() || !random.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let candidate = entry.path();
        if is_stale(&candidate) && std::fs::remove_file(&candidate).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn is_stale(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    #[cfg(unix)]
    {
        if age < STALE_AFTER {
            return false;
        }
        let Ok(file) = std::fs::OpenOptions::new().read(true).open(path) else {
            return false;
        };
        // A writer still holds it: not stale.
        fs4::FileExt::try_lock(&file).is_ok()
    }
    #[cfg(not(unix))]
    {
        age >= STALE_AFTER.max(std::time::Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_of_our_naming_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("m.int8.tflite");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let make = |name: &str| {
            let path = dir.path().join(name);
            let f = std::fs::File::create(&path).unwrap();
            f.set_modified(old).unwrap();
            path
        };
        let stale = make(".m.int8.tflite.a1B2c3.tmp");
        let other_job = make(".m.dynamic.tflite.a1B2c3.tmp");
        let not_ours = make(".m.int8.tflite.a-b.tmp");
        let fresh = dir.path().join(".m.int8.tflite.zzzzzz.tmp");
        std::fs::write(&fresh, b"being written").unwrap();
        let held = make(".m.int8.tflite.held00.tmp");
        let holder = std::fs::OpenOptions::new().write(true).open(&held).unwrap();
        fs4::FileExt::try_lock(&holder).unwrap();
        assert_eq!(remove_stale_temps(&artifact), 1);
        assert!(!stale.exists());
        assert!(other_job.exists() && not_ours.exists() && fresh.exists() && held.exists());
        drop(holder);
        assert_eq!(remove_stale_temps(&artifact), 1);
        assert!(!held.exists());
        // A write in progress holds its temp file; once done, nothing is left.
        write_atomically(&artifact, b"x").unwrap();
        assert_eq!(std::fs::read(&artifact).unwrap(), b"x");
    }
}
