//! From the file as written ([`RawConfig`]) to a [`Config`]: defaults, resolved paths, and every rule that
//! relates values to each other, each failure pointing at the value that breaks it.

mod dataset;
mod model;

use super::error::{ConfigError, ConfigErrorKind};
use super::locate::KeyIndex;
use super::raw::{RawConfig, RawSettings};
use super::{Config, Settings};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Validates `raw` (parsed from `text`, the file at `path`) into a [`Config`]; reports the first problem in
/// file order.
pub(crate) fn validate(
    raw: RawConfig,
    keys: &KeyIndex,
    text: &str,
    path: &Path,
) -> Result<Config, ConfigError> {
    let base_dir = base_dir(path);
    let mut check = Checker {
        path,
        text,
        keys,
        base_dir: &base_dir,
        errors: Vec::new(),
    };
    let settings = check.settings(raw.settings.as_ref());
    let dataset_names: Vec<&str> = raw.datasets.keys().map(String::as_str).collect();
    let mut datasets = BTreeMap::new();
    for (name, dataset) in &raw.datasets {
        if let Some(spec) = check.dataset(name, dataset, &dataset_names) {
            datasets.insert(name.clone(), spec);
        }
    }
    check.resolve_feeds(&raw.datasets, &mut datasets);
    let mut models = BTreeMap::new();
    for (name, model) in &raw.models {
        if let Some(model) = check.model(name, model, &dataset_names) {
            models.insert(name.clone(), model);
        }
    }
    if raw.models.is_empty() {
        check.errors.push(ConfigError::at(
            path,
            text,
            None,
            Some("models".into()),
            ConfigErrorKind::MissingKey,
            "no models declared; expected at least one `[models.NAME]` table",
        ));
    }
    // Errors without a location concern the whole file: they come first, then the rest in file order.
    match check.errors.into_iter().min_by_key(|e| e.location) {
        Some(first) => Err(first),
        None => Ok(Config {
            path: path.to_path_buf(),
            base_dir,
            settings,
            datasets,
            models,
        }),
    }
}

/// The folder of the config file, absolute when the working directory is known.
fn base_dir(path: &Path) -> PathBuf {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

struct Checker<'a> {
    path: &'a Path,
    keys: &'a KeyIndex,
    text: &'a str,
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn fail(
        &mut self,
        span: Range<usize>,
        key: String,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError::at(
            self.path,
            self.text,
            Some(span),
            Some(key),
            kind,
            message,
        ));
    }

    /// An error about a whole table (`models.m`): located where the table starts.
    fn fail_table(
        &mut self,
        table: &str,
        key: String,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) {
        let span = self.keys.span_of(table);
        self.errors.push(ConfigError::at(
            self.path,
            self.text,
            span,
            Some(key),
            kind,
            message,
        ));
    }

    /// A path value: non-empty, joined to the config's folder unless absolute.
    fn path_value(&mut self, value: &Spanned<String>, key: String) -> Option<PathBuf> {
        if value.get_ref().is_empty() {
            self.fail(
                value.span(),
                key,
                ConfigErrorKind::InvalidValue,
                "expected a path, found an empty string",
            );
            return None;
        }
        Some(self.base_dir.join(value.get_ref()))
    }

    /// Model and dataset names end up in file names (`<out_dir>/<model>.<mode>.tflite`): a safe file stem.
    fn name(&mut self, name: &str, table: &str, what: &str) -> bool {
        let usable = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && !name.starts_with('.')
            && !name.contains("..")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !usable {
            self.fail_table(
                table,
                table.to_string(),
                ConfigErrorKind::InvalidValue,
                format!(
                    "{what} name {name:?} is not usable in file names; expected 1 to {MAX_NAME_LEN} ASCII letters, \
                     digits, `_`, `-` and `.`, not starting with `.` and without `..`"
                ),
            );
        }
        usable
    }

    /// A settings path that exists must be of the kind the key names: a folder, or a file.
    fn path_kind(&mut self, value: Option<&Spanned<String>>, path: &Path, key: &str, folder: bool) {
        let (Some(value), Ok(meta)) = (value, std::fs::metadata(path)) else {
            return;
        };
        let message = match (folder, meta.is_dir()) {
            (true, false) => "expected a folder (it is created when missing), found a file",
            (false, true) => {
                "expected the path of the lock file (e.g. \"quantize.lock\"), found a folder"
            }
            _ => return,
        };
        self.fail(
            value.span(),
            key.to_string(),
            ConfigErrorKind::InvalidValue,
            format!("{}: {message}", path.display()),
        );
    }

    fn settings(&mut self, raw: Option<&RawSettings>) -> Settings {
        let (out_dir, lock, cache) = match raw {
            Some(raw) => (raw.out_dir.as_ref(), raw.lock.as_ref(), raw.cache.as_ref()),
            None => (None, None, None),
        };
        let (out_raw, lock_raw, cache_raw) = (out_dir, lock, cache);
        let out_dir = out_dir.and_then(|v| self.path_value(v, "settings.out_dir".into()));
        let lock = lock.and_then(|v| self.path_value(v, "settings.lock".into()));
        let cache = cache.and_then(|v| self.path_value(v, "settings.cache".into()));
        if let Some(p) = &out_dir {
            self.path_kind(out_raw, p, "settings.out_dir", true);
        }
        if let Some(p) = &lock {
            self.path_kind(lock_raw, p, "settings.lock", false);
        }
        if let Some(p) = &cache {
            self.path_kind(cache_raw, p, "settings.cache", true);
        }
        Settings {
            cache,
            out_dir: out_dir.unwrap_or_else(|| self.base_dir.join("target/quantized")),
            lock: lock.unwrap_or_else(|| self.base_dir.join("quantize.lock")),
        }
    }
}

/// The longest model or dataset name (file names on common file systems stop at 255 bytes).
const MAX_NAME_LEN: usize = 128;

/// "one of `a`, `b`, `c`" (or "`a`" alone).
fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", names.join(", ")),
    }
}

/// How to name a defined table in "expected ..." ("one of `a`, `b`" or "a `[datasets.NAME]` table").
fn defined(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        format!("the name of a `[{what}s.NAME]` table (none is defined)")
    } else {
        format!("a {what} name: {}", one_of(names.iter().copied()))
    }
}
