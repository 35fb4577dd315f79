//! `ConfigError`: what is wrong in `quantize.toml`, where (file, line, column) and under which key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A 1-based position in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, counted from 1.
    pub line: usize,
    /// Column in characters (not bytes), counted from 1.
    pub column: usize,
}

impl Location {
    /// The line and column of byte offset `offset` in `text` (clamped to the text, and to a character
    /// boundary, so a span from any source never panics).
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid TOML.
    Syntax,
    /// A key litequant does not know (a typo, or a key from a newer version).
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value has the wrong TOML type (a string where a boolean belongs, ...).
    WrongType,
    /// A value has the right type but is not allowed (an unknown mode, `samples = 0`, ...).
    InvalidValue,
    /// Values that are fine alone but contradict each other (int8 mode without a dataset, ...).
    Conflict,
    /// A value litequant knows but does not implement yet.
    Unsupported,
}

/// An error in `quantize.toml`.
///
/// Displays as `path:line:col: key `models.m.modes[2]`: expected ..., found ...`; the location and key are
/// left out when they do not apply (an unreadable file has neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// Where in the file, when the error points at text.
    pub location: Option<Location>,
    /// The full key path (`models.classifier.modes[2]`), when the error concerns one key.
    pub key: Option<String>,
    /// What kind of mistake it is.
    pub kind: ConfigErrorKind,
    /// What is wrong and what was expected, in the user's terms.
    pub message: String,
}

impl ConfigError {
    /// An error at byte span `span` of `text` (the config file's contents).
    pub(crate) fn at(
        path: &Path,
        text: &str,
        span: Option<Range<usize>>,
        key: Option<String>,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            location: span.map(|s| Location::of_offset(text, s.start)),
            key,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(loc) = self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Renders one key of a key path, quoted when TOML would need quotes (`inputs."serving_default_x:0"`).
pub(crate) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// `parent.key`, quoting `key` as TOML would; `key` alone at the root.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key_segment(key)
    } else {
        format!("{parent}.{}", key_segment(key))
    }
}
