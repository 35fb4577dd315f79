//! `[datasets.NAME]`: the format, the keys each format takes, and the values they allow.

use super::{defined, one_of, Checker};
use crate::config::error::{join_key, ConfigErrorKind};
use crate::config::raw::RawDataset;
use crate::config::Location;
use crate::dataset::{mapping_key_matches, DatasetFormat, DatasetOrigin, DatasetSpec};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// Formats in the order error messages list them.
const FORMATS: [(&str, DatasetFormat); 4] = [
    ("npy", DatasetFormat::Npy),
    ("npz", DatasetFormat::Npz),
    ("images", DatasetFormat::Images),
    ("random", DatasetFormat::Random),
];

/// What a file system entry is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    if meta.file_type().is_file() {
        return "a regular file";
    }
    crate::regular_file::special_kind(meta).unwrap_or("neither a file nor a folder")
}

/// The name of `format` in `quantize.toml`.
fn format_name(format: DatasetFormat) -> &'static str {
    FORMATS
        .iter()
        .find(|(_, f)| *f == format)
        .map_or("?", |(n, _)| n)
}

impl Checker<'_> {
    /// Checks one dataset table; `None` when it has errors (they are recorded).
    pub(super) fn dataset(
        &mut self,
        name: &str,
        raw: &RawDataset,
        datasets: &[&str],
    ) -> Option<DatasetSpec> {
        let table = join_key("datasets", name);
        let key = |k: &str| join_key(&table, k);
        let errors_before = self.errors.len();
        self.name(name, &table, "dataset");
        let format = self.format(&raw.format, key("format"));
        if let Some(format) = format {
            self.keys_of_other_formats(raw, format, &table);
        }
        let path = self.dataset_path(raw.path.as_ref(), format, &table);
        let samples = raw
            .samples
            .as_ref()
            .and_then(|s| self.samples(s, key("samples")));

        let images = format == Some(DatasetFormat::Images);
        let random = format == Some(DatasetFormat::Random);
        let resize = match &raw.resize {
            Some(r) if images => self.resize(r, key("resize")),
            None if images => {
                let message =
                    "required key is missing: `images` datasets are resized to the model's \
                               input, expected `resize = [height, width]`";
                self.fail_table(&table, key("resize"), ConfigErrorKind::MissingKey, message);
                None
            }
            _ => None,
        };
        let mean = match &raw.mean {
            Some(m) if images => self.normalization(m, key("mean"), false),
            _ => Vec::new(),
        };
        let std = match &raw.std {
            Some(s) if images => self.normalization(s, key("std"), true),
            _ => Vec::new(),
        };
        let range = match &raw.range {
            Some(r) if random => self.range(r, key("range")),
            _ => None,
        };
        let seed = match &raw.seed {
            Some(s) if random => self.seed(s, key("seed")),
            _ => 0,
        };
        let inputs = self.inputs(&raw.inputs, format, &key("inputs"), datasets);
        let labels = raw.labels.as_ref().map(|l| {
            if l.get_ref().is_empty() {
                let message = "expected the name of the npz array holding the class labels, found an empty string";
                self.fail(l.span(), key("labels"), ConfigErrorKind::InvalidValue, message);
            }
            l.get_ref().clone()
        });
        let label_output = raw.label_output.as_ref().and_then(|o| {
            let index = usize::try_from(*o.get_ref()).ok();
            if index.is_none() {
                let message = format!(
                    "expected the index of the model output the labels refer to (0, 1, ...), found {}",
                    o.get_ref()
                );
                self.fail(o.span(), key("label_output"), ConfigErrorKind::InvalidValue, message);
            }
            index
        });

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
            feeds: BTreeMap::new(),
            range,
            seed,
            labels,
            label_output,
            origin: self.origin(&table, raw),
        })
    }

    /// Where the table and each of its keys are written, for data errors found later.
    fn origin(&self, table: &str, raw: &RawDataset) -> DatasetOrigin {
        let location = |span: Range<usize>| Location::of_offset(self.text, span.start);
        let mut keys = BTreeMap::new();
        for k in [
            "format",
            "path",
            "samples",
            "resize",
            "mean",
            "std",
            "range",
            "seed",
            "labels",
            "label_output",
        ] {
            if let Some(span) = self.keys.span_of(&join_key(table, k)) {
                keys.insert(k.to_string(), location(span));
            }
        }
        for (input, target) in &raw.inputs {
            keys.insert(join_key("inputs", input), location(target.span()));
        }
        DatasetOrigin {
            config: self.path.to_path_buf(),
            table: table.to_string(),
            at: self.keys.span_of(table).map(location),
            keys,
        }
    }

    /// Resolves, once for every job, each `inputs` entry naming another dataset into
    /// [`DatasetSpec::feeds`]: the dataset at the end of the chain of entries for that input. A chain that
    /// comes back to a dataset already on it is an error at the entry that starts it.
    pub(super) fn resolve_feeds(
        &mut self,
        raw: &BTreeMap<String, RawDataset>,
        datasets: &mut BTreeMap<String, DatasetSpec>,
    ) {
        let mut resolved: Vec<(String, String, DatasetSpec)> = Vec::new();
        for (name, spec) in datasets.iter() {
            for (input, target) in &spec.inputs {
                if target == name || !datasets.contains_key(target) {
                    continue; // this dataset itself, or an npz array
                }
                let mut chain = vec![name.as_str(), target.as_str()];
                let mut end = &datasets[target];
                let cycle = loop {
                    let next = end
                        .inputs
                        .iter()
                        .find(|(key, _)| mapping_key_matches(key, input))
                        .map(|(_, next)| next.as_str())
                        .filter(|next| *next != end.name && datasets.contains_key(*next));
                    let Some(next) = next else { break false };
                    let looped = chain.contains(&next);
                    chain.push(next);
                    if looped {
                        break true;
                    }
                    end = &datasets[next];
                };
                if cycle {
                    let path = chain
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" -> ");
                    let message = format!(
                        "input `{input}` is mapped from dataset to dataset in a cycle ({path}); expected                          the chain to end at a dataset that reads the input itself"
                    );
                    let span = raw
                        .get(name)
                        .and_then(|r| r.inputs.get(input))
                        .map(Spanned::span);
                    let key = join_key(&join_key(&join_key("datasets", name), "inputs"), input);
                    match span {
                        Some(span) => self.fail(span, key, ConfigErrorKind::Conflict, message),
                        None => self.fail_table(
                            &join_key("datasets", name),
                            key,
                            ConfigErrorKind::Conflict,
                            message,
                        ),
                    }
                    continue;
                }
                let mut feed = end.clone();
                feed.feeds.clear();
                resolved.push((name.clone(), input.clone(), feed));
            }
        }
        for (name, input, feed) in resolved {
            if let Some(spec) = datasets.get_mut(&name) {
                spec.feeds.insert(input, feed);
            }
        }
    }

    fn format(&mut self, raw: &Spanned<String>, key: String) -> Option<DatasetFormat> {
        let found = FORMATS.iter().find(|(n, _)| n == raw.get_ref());
        if found.is_none() {
            let expected = one_of(FORMATS.iter().map(|(n, _)| *n));
            let message = format!("expected {expected}, found `{}`", raw.get_ref());
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
        }
        found.map(|&(_, format)| format)
    }

    /// Keys that one format reads are errors in the others: silently ignoring them would hide a mistake.
    fn keys_of_other_formats(&mut self, raw: &RawDataset, format: DatasetFormat, table: &str) {
        let format_only = [
            (
                "resize",
                raw.resize.as_ref().map(Spanned::span),
                DatasetFormat::Images,
            ),
            (
                "mean",
                raw.mean.as_ref().map(Spanned::span),
                DatasetFormat::Images,
            ),
            (
                "std",
                raw.std.as_ref().map(Spanned::span),
                DatasetFormat::Images,
            ),
            (
                "range",
                raw.range.as_ref().map(Spanned::span),
                DatasetFormat::Random,
            ),
            (
                "seed",
                raw.seed.as_ref().map(Spanned::span),
                DatasetFormat::Random,
            ),
            (
                "labels",
                raw.labels.as_ref().map(Spanned::span),
                DatasetFormat::Npz,
            ),
            (
                "label_output",
                raw.label_output.as_ref().map(Spanned::span),
                DatasetFormat::Npz,
            ),
        ];
        for (k, span, owner) in format_only {
            if let (Some(span), true) = (span, owner != format) {
                let message = format!(
                    "`{k}` applies only to `{}` datasets, this one is `{}`",
                    format_name(owner),
                    format_name(format)
                );
                self.fail(span, join_key(table, k), ConfigErrorKind::Conflict, message);
            }
        }
    }

    /// `path`: required by the file formats, meaningless for `random`.
    fn dataset_path(
        &mut self,
        raw: Option<&Spanned<String>>,
        format: Option<DatasetFormat>,
        table: &str,
    ) -> Option<PathBuf> {
        let key = join_key(table, "path");
        match (raw, format) {
            (Some(p), Some(DatasetFormat::Random)) => {
                let message = "`random` datasets generate their data; `path` does not apply";
                self.fail(p.span(), key, ConfigErrorKind::Conflict, message);
                None
            }
            (Some(p), format) => {
                let path = self.path_value(p, key.clone())?;
                if let Some(format) = format {
                    self.dataset_path_kind(p, &path, format, key);
                }
                Some(path)
            }
            (None, Some(DatasetFormat::Random)) | (None, None) => None,
            (None, Some(format)) => {
                let message = format!(
                    "required key is missing: a `{}` dataset reads a file or folder",
                    format_name(format)
                );
                self.fail_table(table, key, ConfigErrorKind::MissingKey, message);
                None
            }
        }
    }

    /// A dataset path that exists must be what the format reads: a regular file (npy, npz) or a folder
    /// (images). Checked here, without opening anything, so a FIFO or a device is refused at its line before
    /// any job runs (the readers refuse them again when they open the path).
    fn dataset_path_kind(
        &mut self,
        raw: &Spanned<String>,
        path: &std::path::Path,
        format: DatasetFormat,
        key: String,
    ) {
        let Ok(meta) = std::fs::metadata(path) else {
            return; // missing: `check` and `build` report it when they open the dataset
        };
        let (fits, expected) = match format {
            DatasetFormat::Images => (meta.is_dir(), "a folder of images"),
            _ => (meta.is_file(), "a regular file"),
        };
        if !fits {
            let message = format!(
                "{} is {}; a `{}` dataset reads {expected}",
                path.display(),
                kind_of(&meta),
                format_name(format)
            );
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
        }
    }

    fn samples(&mut self, raw: &Spanned<i64>, key: String) -> Option<usize> {
        match usize::try_from(*raw.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                let message = format!("expected an integer >= 1, found {}", raw.get_ref());
                self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
                None
            }
        }
    }

    fn seed(&mut self, raw: &Spanned<i64>, key: String) -> u64 {
        u64::try_from(*raw.get_ref()).unwrap_or_else(|_| {
            let message = format!("expected an integer >= 0, found {}", raw.get_ref());
            self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
            0
        })
    }

    /// `inputs`: model input -> npz array, or (single-array formats) other model input -> dataset.
    fn inputs(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
        format: Option<DatasetFormat>,
        key: &str,
        datasets: &[&str],
    ) -> BTreeMap<String, String> {
        let mut inputs = BTreeMap::new();
        for (input, target) in raw {
            let entry_key = join_key(key, input);
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
            if let Some(format) = format.filter(|f| *f != DatasetFormat::Npz) {
                if !datasets.contains(&target.get_ref().as_str()) {
                    let message = format!(
                        "a `{}` dataset maps other model inputs to datasets, and `{}` is not one; \
                         expected {}",
                        format_name(format),
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
            }
            inputs.insert(input.clone(), target.get_ref().clone());
        }
        inputs
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
}
