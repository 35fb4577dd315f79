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
        .suffix(".tmp")
        .tempfile_in(dir)?;
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
