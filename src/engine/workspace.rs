//! Configs in cargo projects: `[package.metadata.litequant] config = "..."` and workspace members.

use std::path::{Path, PathBuf};

/// Why the configs of a workspace could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct WorkspaceError {
    /// The manifest or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The config a package declares: `[package.metadata.litequant] config` (relative to the manifest's folder),
/// else `quantize.toml` beside the manifest when it exists. `Ok(None)` when neither.
pub fn package_config(
    manifest: &Path,
    metadata: &serde_json::Value,
) -> Result<Option<PathBuf>, WorkspaceError> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    match metadata.get("litequant").and_then(|l| l.get("config")) {
        Some(serde_json::Value::String(rel)) => Ok(Some(dir.join(rel))),
        Some(other) => Err(WorkspaceError {
            path: manifest.to_path_buf(),
            message: format!(
                "`package.metadata.litequant.config` must be a path string, found {other}"
            ),
        }),
        None => {
            let default = dir.join("quantize.toml");
            Ok(default.is_file().then_some(default))
        }
    }
}

/// The config of the package whose manifest is `manifest`, read from the manifest itself (no `cargo`
/// run): what build.rs uses. `Ok(None)` when the package declares none and has no `quantize.toml`.
pub fn manifest_config(manifest: &Path) -> Result<Option<PathBuf>, WorkspaceError> {
    let text = std::fs::read_to_string(manifest).map_err(|e| WorkspaceError {
        path: manifest.to_path_buf(),
        message: e.to_string(),
    })?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| WorkspaceError {
        path: manifest.to_path_buf(),
        message: format!("not a readable Cargo.toml: {}", e.message()),
    })?;
    let metadata = value
        .get("package")
        .and_then(|p| p.get("metadata"))
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .unwrap_or_default();
    package_config(manifest, &metadata)
}

/// Whether the manifest declares `[package.metadata.litequant]` (so build.rs must watch `Cargo.toml`).
pub fn manifest_declares_config(manifest: &Path) -> bool {
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
        .is_some_and(|v| {
            v.get("package")
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get("litequant"))
                .is_some()
        })
}

#[cfg(feature = "workspace")]
/// Every workspace member's config, for the workspace holding `dir` (found with `cargo metadata`), in the
/// order cargo lists members, each with the member's name.
pub fn workspace_configs(dir: &Path) -> Result<Vec<(String, PathBuf)>, WorkspaceError> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(dir)
        .no_deps()
        .exec()
        .map_err(|e| WorkspaceError {
            path: dir.to_path_buf(),
            message: format!("not in a cargo workspace ({e})"),
        })?;
    let mut configs = Vec::new();
    for package in metadata.workspace_packages() {
        let manifest = package.manifest_path.as_std_path();
        if let Some(config) = package_config(manifest, &package.metadata)? {
            configs.push((package.name.to_string(), config));
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_config_is_relative_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[package.metadata.litequant]\nconfig = \"q/models.toml\"\n",
        )
        .unwrap();
        assert_eq!(
            manifest_config(&manifest).unwrap(),
            Some(dir.path().join("q/models.toml"))
        );
        assert!(manifest_declares_config(&manifest));
    }

    #[test]
    fn default_config_only_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "[package]\nname = \"x\"\nversion = \"0.1.0\"\n").unwrap();
        assert_eq!(manifest_config(&manifest).unwrap(), None);
        std::fs::write(dir.path().join("quantize.toml"), "").unwrap();
        assert_eq!(
            manifest_config(&manifest).unwrap(),
            Some(dir.path().join("quantize.toml"))
        );
        assert!(!manifest_declares_config(&manifest));
    }

    #[test]
    fn a_non_string_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[package.metadata.litequant]\nconfig = 3\n",
        )
        .unwrap();
        let err = manifest_config(&manifest).unwrap_err().to_string();
        assert!(err.contains("must be a path string"), "{err}");
    }
}
