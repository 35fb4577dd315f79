//! `[models.NAME]`: modes, dataset, op sets, I/O types and the rules relating them.

use super::{defined, one_of, Checker};
use crate::config::error::{join_key, ConfigErrorKind};
use crate::config::raw::RawModel;
use crate::config::{io_type_fits, AccuracyTarget, Calibration, ModelConfig, OpSet, Percentile};
use crate::quantize::{IoType, Mode};
use toml::Spanned;

/// The most `exclude` patterns a model may list.
pub(crate) const MAX_EXCLUDE_PATTERNS: usize = 1000;
/// The longest `exclude` pattern, in bytes.
pub(crate) const MAX_EXCLUDE_PATTERN_LEN: usize = 1024;

/// Modes in the order error messages list them.
const MODES: [Mode; 4] = [Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8];
/// Model I/O types as written in `quantize.toml`.
const IO_TYPES: [(&str, IoType); 4] = [
    ("float32", IoType::Float32),
    ("int8", IoType::Int8),
    ("uint8", IoType::Uint8),
    ("int16", IoType::Int16),
];

impl Checker<'_> {
    /// Checks one model table; `None` when it has errors (they are recorded).
    pub(super) fn model(
        &mut self,
        name: &str,
        raw: &RawModel,
        datasets: &[&str],
    ) -> Option<ModelConfig> {
        let table = join_key("models", name);
        let key = |k: &str| join_key(&table, k);
        let errors_before = self.errors.len();
        self.name(name, &table, "model");

        let source = self.path_value(&raw.source, key("source"));
        let modes = self.modes(&raw.modes, key("modes"));

        let needs_dataset = raw.modes.get_ref().iter().find(|m| {
            MODES
                .iter()
                .any(|mode| mode.needs_calibration() && mode.as_str() == m.get_ref())
        });
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
        let calibration = self.calibration(
            raw.calibration.as_ref(),
            raw.percentile.as_ref(),
            key("calibration"),
            key("percentile"),
        );

        let mut exclude = Vec::new();
        if raw.exclude.len() > MAX_EXCLUDE_PATTERNS {
            let message = format!(
                "{} patterns; expected at most {MAX_EXCLUDE_PATTERNS} (an op type such as `SOFTMAX` covers every op \
                 of that type, a glob such as `*/head/*` many tensors)",
                raw.exclude.len()
            );
            let span = raw.exclude[MAX_EXCLUDE_PATTERNS].span();
            self.fail(span, key("exclude"), ConfigErrorKind::InvalidValue, message);
        }
        for (i, pattern) in raw
            .exclude
            .iter()
            .enumerate()
            .take(MAX_EXCLUDE_PATTERNS + 1)
        {
            if pattern.get_ref().len() > MAX_EXCLUDE_PATTERN_LEN {
                let message = format!(
                    "a pattern of {} bytes; expected at most {MAX_EXCLUDE_PATTERN_LEN} (an op type or a tensor-name glob)",
                    pattern.get_ref().len()
                );
                self.fail(
                    pattern.span(),
                    format!("{}[{i}]", key("exclude")),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                continue;
            }
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

        let eval = raw.eval.as_ref().and_then(|e| {
            if datasets.contains(&e.get_ref().as_str()) {
                Some(e.get_ref().clone())
            } else {
                let message = format!(
                    "`{}` is not a dataset; expected {}",
                    e.get_ref(),
                    defined("dataset", datasets)
                );
                self.fail(
                    e.span(),
                    key("eval"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                None
            }
        });
        let target = self.target(raw, &modes, &table);

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
            eval,
            target,
            equalize: raw.equalize.unwrap_or(false),
            adaptive_rounding: raw.adaptive_rounding.unwrap_or(false),
            bias_correction: raw.bias_correction.unwrap_or(false),
            float16_weights_only: raw.float16_weights_only.unwrap_or(false),
            output_aware: raw.output_aware.unwrap_or(false),
        })
    }

    /// `target_sqnr_db` and `max_top1_drop`: finite, in range, with an `eval` dataset to measure them on and an
    /// integer mode to act on.
    fn target(&mut self, raw: &RawModel, modes: &[Mode], table: &str) -> Option<AccuracyTarget> {
        let key = |k: &str| join_key(table, k);
        let sqnr = raw.target_sqnr_db.as_ref().map(|v| {
            let ok = v.get_ref().is_finite() && *v.get_ref() > 0.0 && *v.get_ref() < 200.0;
            if !ok {
                let message = format!(
                    "expected an output SQNR in dB between 0 and 200 (30 is a typical int8 target), found {}",
                    v.get_ref()
                );
                self.fail(v.span(), key("target_sqnr_db"), ConfigErrorKind::InvalidValue, message);
            }
            (v.span(), *v.get_ref())
        });
        let drop = raw.max_top1_drop.as_ref().map(|v| {
            let ok = (0.0..=1.0).contains(v.get_ref());
            if !ok {
                let message = format!(
                    "expected a fraction of samples between 0 and 1 (0.01 = 1%), found {}",
                    v.get_ref()
                );
                self.fail(
                    v.span(),
                    key("max_top1_drop"),
                    ConfigErrorKind::InvalidValue,
                    message,
                );
            }
            (v.span(), *v.get_ref())
        });
        let span = sqnr.as_ref().or(drop.as_ref()).map(|(s, _)| s.clone())?;
        let which = if sqnr.is_some() {
            "target_sqnr_db"
        } else {
            "max_top1_drop"
        };
        if raw.eval.is_none() {
            let message = format!(
                "`{which}` is measured on an evaluation dataset; add `eval = \"NAME\"` naming a [datasets.NAME] table"
            );
            self.fail(
                span.clone(),
                key("eval"),
                ConfigErrorKind::MissingKey,
                message,
            );
        }
        if !modes.iter().any(|m| m.needs_calibration()) {
            let message = format!(
                "`{which}` keeps ops float in the integer modes (int8, int16x8), and `modes` lists neither"
            );
            self.fail(span, key(which), ConfigErrorKind::Conflict, message);
        }
        Some(AccuracyTarget {
            sqnr_db: sqnr.map(|(_, v)| v),
            max_top1_drop: drop.map(|(_, v)| v),
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

    fn calibration(
        &mut self,
        raw: Option<&Spanned<String>>,
        percentile: Option<&Spanned<f64>>,
        key: String,
        percentile_key: String,
    ) -> Calibration {
        let name = raw.map_or(Calibration::MinMax.as_str(), |r| r.get_ref().as_str());
        let calibration = match name {
            "minmax" => Calibration::MinMax,
            "percentile" => Calibration::Percentile(Percentile::DEFAULT),
            "mse" => Calibration::Mse,
            "entropy" => Calibration::Entropy,
            "auto" => Calibration::Auto,
            _ => {
                let message = format!(
                    "expected {}, found `{name}`",
                    one_of(Calibration::NAMES.iter().copied())
                );
                if let Some(raw) = raw {
                    self.fail(raw.span(), key, ConfigErrorKind::InvalidValue, message);
                }
                Calibration::MinMax
            }
        };
        let Some(p) = percentile else {
            return calibration;
        };
        if !matches!(calibration, Calibration::Percentile(_)) {
            let message = format!(
                "`percentile` is the parameter of `calibration = \"percentile\"`, and the calibration is `{name}`{}",
                if raw.is_none() { " (the default)" } else { "" }
            );
            self.fail(p.span(), percentile_key, ConfigErrorKind::Conflict, message);
            return calibration;
        }
        match Percentile::new(*p.get_ref()) {
            Some(p) => Calibration::Percentile(p),
            None => {
                let message = format!(
                    "expected a percentile in (0, 100] such as 99.99, found {}",
                    p.get_ref()
                );
                self.fail(
                    p.span(),
                    percentile_key,
                    ConfigErrorKind::InvalidValue,
                    message,
                );
                calibration
            }
        }
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
