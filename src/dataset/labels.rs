//! Class labels of an evaluation dataset: an integer array beside the inputs of an `.npz` archive.

use super::error::{DatasetError, DatasetErrorKind};
use super::npz::NpzArchive;
use super::{DatasetFormat, DatasetSpec};

/// The array an npz evaluation set keeps its labels in unless `labels` names another.
pub const DEFAULT_LABELS_ARRAY: &str = "labels";
/// The 0-d array naming which model output the labels refer to, unless `label_output` says.
pub const LABEL_OUTPUT_ARRAY: &str = "label_output_index";

/// Class labels for the samples of an evaluation dataset, in sample order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// One class index per sample (capped by the dataset's `samples`).
    pub classes: Vec<i64>,
    /// The model output (index, model output order) the labels refer to, when the data or config says.
    pub output: Option<usize>,
}

/// The labels of `spec`: for npz archives, the array named by `labels` (default `labels`, when present) and
/// the output named by `label_output` (default: a 0-d `label_output_index` array, when present). `None` when
/// the dataset has no labels.
pub fn read_labels(spec: &DatasetSpec) -> Result<Option<Labels>, DatasetError> {
    if spec.format != DatasetFormat::Npz {
        return Ok(None);
    }
    let Some(path) = spec.path.as_deref() else {
        return Ok(None);
    };
    let fail = |kind| DatasetError::new(spec.name.clone(), kind).with_file(path);
    let mut npz = NpzArchive::open(&spec.name, path)?;
    let array = match &spec.labels {
        Some(name) => name.clone(),
        None if npz.has(DEFAULT_LABELS_ARRAY) => DEFAULT_LABELS_ARRAY.to_string(),
        None => return Ok(None),
    };
    let (shape, values) = npz.read_small_array(&array)?;
    if shape.len() != 1 {
        return Err(fail(DatasetErrorKind::NpyHeader(format!(
            "labels array `{array}` has shape {shape:?}; expected [samples] (one class index per sample)"
        ))));
    }
    let mut classes = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 16_777_216.0) {
            return Err(fail(DatasetErrorKind::NpyHeader(format!(
                "labels array `{array}`: sample {i} holds {v}; expected a class index (an integer >= 0)"
            )))
            .with_sample(i));
        }
        classes.push(v as i64);
    }
    if let Some(cap) = spec.samples {
        classes.truncate(cap);
    }
    let output = match spec.label_output {
        Some(o) => Some(o),
        None if npz.has(LABEL_OUTPUT_ARRAY) => {
            let (shape, values) = npz.read_small_array(LABEL_OUTPUT_ARRAY)?;
            match values.as_slice() {
                [v] if shape.iter().product::<usize>() == 1 && *v >= 0.0 && v.fract() == 0.0 => {
                    Some(*v as usize)
                }
                _ => {
                    return Err(fail(DatasetErrorKind::NpyHeader(format!(
                        "`{LABEL_OUTPUT_ARRAY}` holds {values:?}; expected one output index (an integer >= 0)"
                    ))))
                }
            }
        }
        None => None,
    };
    Ok(Some(Labels { classes, output }))
}
