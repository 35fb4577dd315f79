//! Helpers shared by build-support's test binaries.

use std::path::{Path, PathBuf};

/// A file under the repository's `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}
