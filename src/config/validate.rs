//! From the file as written ([`RawConfig`]) to a [`Config`]: defaults, resolved paths, and every rule that
//! relates values to each other, each failure pointing at the value that breaks it.

use super::error::{join_key, ConfigError, ConfigErrorKind};
use super::locate::KeyIndex;
use super::raw::{RawConfig, RawDataset, RawModel, RawSettings};
use super::{io_type_fits, Calibration, Config, ModelConfig, OpSet, Settings};
use crate::dataset::{DatasetFormat, DatasetSpec};
use crate::quantize::{IoType, Mode};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Modes in the order error messages list them.
const MODES: [Mode; 4] = [Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8];
const FORMATS: [(&str, DatasetFormat); 4] = [
    ("npy", DatasetFormat::Npy),
    ("npz", DatasetFormat::Npz),
    ("images", DatasetFormat::Images),
    ("random", DatasetFormat::Random),
];
const IO_TYPES: [(&str, IoType); 4] = [
    ("float32", IoType::Float32),
    ("int8", IoType::Int8),
    ("uint8", IoType::Uint8),
    ("int16", IoType::Int16),
];
const CALIBRATIONS_LATER: [&str; 3] = ["percentile", "mse", "entropy"];

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

    /// Model and dataset names end up in file names.
    fn name(&mut self, name: &str, table: &str, what: &str) -> bool {
        let usable = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !usable {
            self.fail_table(
                table,
                table.to_string(),
                ConfigErrorKind::InvalidValue,
                format!("{what} name {name:?} is not usable in file names; expected a non-empty name of letters, digits, `_`, `.` and `-`"),
            );
        }
        usable
    }

    fn settings(&mut self, raw: Option<&RawSettings>) -> Settings {
        let (out_dir, lock) = match raw {
            Some(raw) => (raw.out_dir.as_ref(), raw.lock.as_ref()),
            None => (None, None),
        };
        let out_dir = out_dir.and_then(|v| self.path_value(v, "settings.out_dir".into()));
        let lock = lock.and_then(|v| self.path_value(v, "settings.lock".into()));
        Settings {
            out_dir: out_dir.unwrap_or_else(|| self.base_dir.join("target/quantized")),
            lock: lock.unwrap_or_else(|| self.base_dir.join("quantize.lock")),
        }
    }

    fn dataset(&mut self, name: &str, raw: &RawDataset, datasets: &[&str]) -> Option<DatasetSpec> {
        let table = join_key("datasets", name);
        let key = |k: &str| join_key(&table, k);
        let errors_before = self.errors.len();
        self.name(name, &table, "dataset");

        let format = match FORMATS.iter().find(|(n, _)| n == raw.format.get_ref()) {
            Some(&(_, format)) => Some(format),
            None => {
                let expected = one_of(FORMATS.iter().map(|(n, _)| *n));
                let message = format!("expected {expected}, found `{}`", raw.format.get_ref());
                self.fail(
                    raw.format.span(),
                    key("format"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                None
            }
        };
        let format_name = raw.format.get_ref();

        let path = match (&raw.path, format) {
            (Some(p), Some(DatasetFormat::Random)) => {
                let message = "`random` datasets generate their data; `path` does not apply";
                self.fail(p.span(), key("path"), ConfigErrorKind::Conflict, message);
                None
            }
            (Some(p), _) => self.path_value(p, key("path")),
            (None, Some(DatasetFormat::Random)) | (None, None) => None,
            (None, Some(_)) => {
                let message = format!(
                    "required key is missing: a `{format_name}` dataset reads a file or folder"
                );
                self.fail_table(&table, key("path"), ConfigErrorKind::MissingKey, message);
                None
            }
        };

        let samples = raw
            .samples
            .as_ref()
            .and_then(|s| match usize::try_from(*s.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    let message = format!("expected an integer >= 1, found {}", s.get_ref());
                    self.fail(
                        s.span(),
                        key("samples"),
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                    None
                }
            });

        // Keys that only one format reads are errors elsewhere: they would be silently ignored.
        let only_for = |this: &mut Self,
                        value: Option<Range<usize>>,
                        k: &str,
                        wanted: DatasetFormat,
                        wanted_name: &str| {
            if let (Some(value), Some(format)) = (value, format) {
                if format != wanted {
                    let message = format!("`{k}` applies only to `{wanted_name}` datasets, this one is `{format_name}`");
                    this.fail(value, key(k), ConfigErrorKind::Conflict, message);
                    return false;
                }
            }
            true
        };
        let images = DatasetFormat::Images;
        let random = DatasetFormat::Random;

        let mut resize = None;
        if only_for(
            self,
            raw.resize.as_ref().map(Spanned::span),
            "resize",
            images,
            "images",
        ) {
            resize = raw
                .resize
                .as_ref()
                .and_then(|r| self.resize(r, key("resize")));
            if raw.resize.is_none() && format == Some(images) {
                let message =
                    "required key is missing: `images` datasets are resized to the model's input, \
                               expected `resize = [height, width]`";
                self.fail_table(&table, key("resize"), ConfigErrorKind::MissingKey, message);
            }
        }
        let mut mean = Vec::new();
        if only_for(
            self,
            raw.mean.as_ref().map(Spanned::span),
            "mean",
            images,
            "images",
        ) {
            mean = raw
                .mean
                .as_ref()
                .map_or_else(Vec::new, |m| self.normalization(m, key("mean"), false));
        }
        let mut std = Vec::new();
        if only_for(
            self,
            raw.std.as_ref().map(Spanned::span),
            "std",
            images,
            "images",
        ) {
            std = raw
                .std
                .as_ref()
                .map_or_else(Vec::new, |s| self.normalization(s, key("std"), true));
        }
        let mut range = None;
        if only_for(
            self,
            raw.range.as_ref().map(Spanned::span),
            "range",
            random,
            "random",
        ) {
            range = raw.range.as_ref().and_then(|r| self.range(r, key("range")));
        }
        let mut seed = 0;
        if only_for(
            self,
            raw.seed.as_ref().map(Spanned::span),
            "seed",
            random,
            "random",
        ) {
            if let Some(s) = &raw.seed {
                match u64::try_from(*s.get_ref()) {
                    Ok(v) => seed = v,
                    Err(_) => {
                        let message = format!("expected an integer >= 0, found {}", s.get_ref());
                        self.fail(
                            s.span(),
                            key("seed"),
                            ConfigErrorKind::InvalidValue,
                            message,
                        );
                    }
                }
            }
        }

        let mut inputs = BTreeMap::new();
        for (input, target) in &raw.inputs {
            let entry_key = join_key(&key("inputs"), input);
            if input.is_empty() || target.get_ref().is_empty() {
                let message = "expected a model input name mapped to a non-empty name";
                self.fail(
                    target.span(),
                    entry_key,
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                continue;
            }
            // npz archives map inputs to their arrays; the single-array formats map other inputs to datasets.
            if format.is_some_and(|f| f != DatasetFormat::Npz)
                && !datasets.contains(&target.get_ref().as_str())
            {
                let message = format!(
                    "a `{format_name}` dataset maps other model inputs to datasets, and `{}` is not one; expected {}",
                    target.get_ref(),
                    defined("dataset", datasets)
                );
                self.fail(
                    target.span(),
                    entry_key,
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                continue;
            }
            inputs.insert(input.clone(), target.get_ref().clone());
        }

        if self.errors.len() > errors_before {
            return None;
        }
        Some(DatasetSpec {
            name: name.to_string(),
            format: format?,
            path,
            samples,
            resize,
            mean,
            std,
            inputs,
            range,
            seed,
        })
    }

    fn resize(&mut self, raw: &Spanned<Vec<Spanned<i64>>>, key: String) -> Option<[u32; 2]> {
        let [height, width] = raw.get_ref().as_slice() else {
            let message = format!(
                "expected [height, width], found {} values",
                raw.get_ref().len()
            );
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return None;
        };
        let mut size = [0u32; 2];
        for (i, v) in [height, width].into_iter().enumerate() {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => size[i] = n,
                _ => {
                    let message = format!("expected a size >= 1 in pixels, found {}", v.get_ref());
                    self.fail(
                        v.span(),
                        format!("{key}[{i}]"),
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                    return None;
                }
            }
        }
        Some(size)
    }

    /// `mean` or `std`: one value for all channels or one per RGB channel (grayscale images take one).
    fn normalization(
        &mut self,
        raw: &Spanned<Vec<Spanned<f64>>>,
        key: String,
        divisor: bool,
    ) -> Vec<f32> {
        let values = raw.get_ref();
        if !matches!(values.len(), 1 | 3) {
            let message = format!(
                "expected 1 value (all channels) or 3 (per channel), found {}",
                values.len()
            );
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let x = *v.get_ref() as f32;
            if !x.is_finite() || (divisor && x == 0.0) {
                let expected = if divisor {
                    "a finite, non-zero divisor"
                } else {
                    "a finite number"
                };
                let message = format!("expected {expected}, found {}", v.get_ref());
                self.fail(
                    v.span(),
                    format!("{key}[{i}]"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                return Vec::new();
            }
            out.push(x);
        }
        out
    }

    fn range(&mut self, raw: &Spanned<Vec<Spanned<f64>>>, key: String) -> Option<[f32; 2]> {
        let [lo, hi] = raw.get_ref().as_slice() else {
            let message = format!("expected [low, high], found {} values", raw.get_ref().len());
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return None;
        };
        let (lo, hi) = (*lo.get_ref() as f32, *hi.get_ref() as f32);
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            let message =
                format!("expected finite [low, high] with low <= high, found [{lo}, {hi}]");
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return None;
        }
        Some([lo, hi])
    }

    fn model(&mut self, name: &str, raw: &RawModel, datasets: &[&str]) -> Option<ModelConfig> {
        let table = join_key("models", name);
        let key = |k: &str| join_key(&table, k);
        let errors_before = self.errors.len();
        self.name(name, &table, "model");

        let source = self.path_value(&raw.source, key("source"));
        let modes = self.modes(&raw.modes, key("modes"));

        let needs_dataset = raw
            .modes
            .get_ref()
            .iter()
            .find(|m| m.get_ref() == "int8" || m.get_ref() == "int16x8");
        let dataset = match (&raw.dataset, needs_dataset) {
            (Some(d), _) if !datasets.contains(&d.get_ref().as_str()) => {
                let message = format!(
                    "`{}` is not a dataset; expected {}",
                    d.get_ref(),
                    defined("dataset", datasets)
                );
                self.fail(
                    d.span(),
                    key("dataset"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                None
            }
            (Some(d), _) => Some(d.get_ref().clone()),
            (None, Some(mode)) => {
                let message = format!(
                    "required because `modes` lists `{}`, which calibrates on representative data; expected {}",
                    mode.get_ref(),
                    defined("dataset", datasets)
                );
                self.fail(
                    mode.span(),
                    key("dataset"),
                    ConfigErrorKind::MissingKey,
                    message,
                );
                None
            }
            (None, None) => None,
        };

        let op_sets = self.op_sets(raw.op_sets.as_ref(), &modes, key("op_sets"));
        let input_type = self.io_type(
            raw.inference_input_type.as_ref(),
            &modes,
            key("inference_input_type"),
        );
        let output_type = self.io_type(
            raw.inference_output_type.as_ref(),
            &modes,
            key("inference_output_type"),
        );
        let calibration = self.calibration(raw.calibration.as_ref(), key("calibration"));

        let mut exclude = Vec::new();
        for (i, pattern) in raw.exclude.iter().enumerate() {
            if pattern.get_ref().is_empty() {
                let message =
                    "expected an op type (`SOFTMAX`) or a tensor-name glob, found an empty string";
                self.fail(
                    pattern.span(),
                    format!("{}[{i}]", key("exclude")),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
            }
            exclude.push(pattern.get_ref().clone());
        }

        let target_runtime = raw.target_runtime.as_ref().map(|t| {
            if !is_runtime_version(t.get_ref()) {
                let message = format!(
                    "expected a LiteRT version like \"2.14\" or \"2.17.1\", found {:?}",
                    t.get_ref()
                );
                self.fail(
                    t.span(),
                    key("target_runtime"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
            }
            t.get_ref().clone()
        });

        if self.errors.len() > errors_before {
            return None;
        }
        Some(ModelConfig {
            name: name.to_string(),
            source: source?,
            modes,
            dataset,
            op_sets,
            inference_input_type: input_type,
            inference_output_type: output_type,
            per_channel: raw.per_channel.unwrap_or(true),
            per_channel_dense: raw.per_channel_dense.unwrap_or(true),
            calibration,
            exclude,
            target_runtime,
        })
    }

    fn modes(&mut self, raw: &Spanned<Vec<Spanned<String>>>, key: String) -> Vec<Mode> {
        if raw.get_ref().is_empty() {
            let message = format!(
                "expected at least one mode of {}, found none",
                one_of(MODES.iter().map(|m| m.as_str()))
            );
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return Vec::new();
        }
        let mut modes = Vec::new();
        for (i, value) in raw.get_ref().iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match MODES.iter().find(|m| m.as_str() == value.get_ref()) {
                Some(&mode) if modes.contains(&mode) => {
                    let message =
                        format!("`{mode}` is listed twice; expected each mode at most once");
                    self.fail(
                        value.span(),
                        item_key,
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                }
                Some(&mode) => modes.push(mode),
                None => {
                    let expected = one_of(MODES.iter().map(|m| m.as_str()));
                    let message = format!("expected {expected}, found `{}`", value.get_ref());
                    self.fail(
                        value.span(),
                        item_key,
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                }
            }
        }
        modes
    }

    fn op_sets(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        modes: &[Mode],
        key: String,
    ) -> Vec<OpSet> {
        let Some(raw) = raw else {
            return vec![OpSet::TfliteBuiltins];
        };
        if raw.get_ref().is_empty() {
            let message = format!(
                "expected at least one op set of {}, found none",
                one_of(OpSet::ALL.iter().map(|s| s.as_str()))
            );
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            return Vec::new();
        }
        let mut sets = Vec::new();
        for (i, value) in raw.get_ref().iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match OpSet::ALL.iter().find(|s| s.as_str() == value.get_ref()) {
                Some(&set) if sets.contains(&set) => {
                    let message =
                        format!("`{set}` is listed twice; expected each op set at most once");
                    self.fail(
                        value.span(),
                        item_key,
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                }
                Some(&OpSet::TfliteBuiltinsInt8)
                    if !modes.iter().any(|m| m.needs_calibration()) && !modes.is_empty() =>
                {
                    let message = "`TFLITE_BUILTINS_INT8` acts on the integer modes, and `modes` lists neither \
                                   `int8` nor `int16x8`";
                    self.fail(value.span(), item_key, ConfigErrorKind::Conflict, message);
                }
                Some(&set) => sets.push(set),
                None => {
                    let expected = one_of(OpSet::ALL.iter().map(|s| s.as_str()));
                    let message = format!("expected {expected}, found `{}`", value.get_ref());
                    self.fail(
                        value.span(),
                        item_key,
                        ConfigErrorKind::InvalidValue,
                        message,
                    );
                }
            }
        }
        sets
    }

    fn io_type(&mut self, raw: Option<&Spanned<String>>, modes: &[Mode], key: String) -> IoType {
        let Some(raw) = raw else {
            return IoType::Float32;
        };
        // What the listed modes can use; with no valid mode (already an error) anything known passes.
        let usable: Vec<&str> = IO_TYPES
            .iter()
            .filter(|(_, io)| modes.is_empty() || modes.iter().any(|&m| io_type_fits(*io, m)))
            .map(|(n, _)| *n)
            .collect();
        match IO_TYPES.iter().find(|(n, _)| n == raw.get_ref()) {
            Some(&(name, io)) if usable.contains(&name) => io,
            Some(&(name, _)) => {
                let needs = if name == "int16" { "int16x8" } else { "int8" };
                let listed = modes
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "`{name}` I/O needs the `{needs}` mode, which `modes` does not list (modes: {listed}); expected {}",
                    one_of(usable.iter().copied())
                );
                self.fail(raw.span(), key, ConfigErrorKind::Conflict, message);
                IoType::Float32
            }
            None => {
                let message = format!(
                    "expected {}, found `{}`",
                    one_of(IO_TYPES.iter().map(|(n, _)| *n)),
                    raw.get_ref()
                );
                self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
                IoType::Float32
            }
        }
    }

    fn calibration(&mut self, raw: Option<&Spanned<String>>, key: String) -> Calibration {
        let Some(raw) = raw else {
            return Calibration::MinMax;
        };
        let name = raw.get_ref().as_str();
        if name == Calibration::MinMax.as_str() {
            return Calibration::MinMax;
        }
        if CALIBRATIONS_LATER.contains(&name) {
            let message = format!("calibration `{name}` is not supported yet; expected `minmax`");
            self.fail(raw.span(), key, ConfigErrorKind::Unsupported, message);
        } else {
            let message = format!("expected `minmax`, found `{name}`");
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
        }
        Calibration::MinMax
    }
}

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

/// `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`, digits only.
fn is_runtime_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    matches!(parts.len(), 2 | 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}
