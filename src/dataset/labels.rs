//! Class labels of an evaluation dataset: an integer array beside the inputs of an `.npz` archive.

use super::error::{DatasetError, DatasetErrorKind};
use super::npz::NpzArchive;
use super::stream::locate;
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
    /// The array the labels were read from.
    pub array: String,
    /// Whether [`output`](Self::output) comes from the config's `label_output` (else from the archive's
    /// `label_output_index`, or nowhere).
    pub output_from_config: bool,
}

/// The labels of `spec`: for npz archives, the array named by `labels` (default `labels`, when present) and
/// the output named by `label_output` (default: a 0-d `label_output_index` array, when present). `None` when
/// the dataset has no labels.
pub fn read_labels(spec: &DatasetSpec) -> Result<Option<Labels>, DatasetError> {
    read(spec).map_err(|e| locate(e, spec))
}

fn read(spec: &DatasetSpec) -> Result<Option<Labels>, DatasetError> {
    if spec.format != DatasetFormat::Npz {
        return Ok(None);
    }
    let Some(path) = spec.path.as_deref() else {
        return Ok(None);
    };
    let fail = |kind| DatasetError::new(spec.name.clone(), kind).with_file(path);
    let mut npz = NpzArchive::open(&spec.name, path)?;
    let array = match &spec.labels {
        Some(name) if !npz.has(name) => {
            return Err(fail(DatasetErrorKind::LabelsNotFound {
                array: name.clone(),
                available: npz.array_names(),
            }))
        }
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
    Ok(Some(Labels {
        classes,
        output,
        array,
        output_from_config: spec.label_output.is_some(),
    }))
}

/// A model output as labels are checked against it: its tensor name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// Tensor name.
    pub name: String,
    /// Static shape; the last dimension is the number of classes of a classifier output.
    pub shape: Vec<i32>,
}

impl Labels {
    /// Checks there is a label for each of the `samples` samples `spec` yields.
    pub fn check_count(&self, spec: &DatasetSpec, samples: usize) -> Result<(), DatasetError> {
        if self.classes.len() >= samples {
            return Ok(());
        }
        let error = self.error(
            spec,
            DatasetErrorKind::LabelCount {
                array: self.array.clone(),
                labels: self.classes.len(),
                samples,
            },
        );
        Err(locate(error, spec))
    }

    /// Checks that `output` (the output the labels are scored against) is one of the model's `outputs`, and
    /// that every label is a class of it: below its last dimension.
    pub fn check_output(
        &self,
        spec: &DatasetSpec,
        output: usize,
        outputs: &[OutputSpec],
    ) -> Result<(), DatasetError> {
        let Some(out) = outputs.get(output) else {
            let source_of_index = if self.output_from_config {
                "`label_output`".to_string()
            } else {
                format!("the archive's `{LABEL_OUTPUT_ARRAY}`")
            };
            let kind = DatasetErrorKind::LabelOutput {
                output,
                outputs: outputs.len(),
                source_of_index,
            };
            return Err(locate(self.error(spec, kind), spec));
        };
        let classes = out
            .shape
            .last()
            .and_then(|&c| usize::try_from(c).ok())
            .unwrap_or(0);
        // A scalar or dynamic output has no class count to check against.
        if classes == 0 {
            return Ok(());
        }
        let beyond = self
            .classes
            .iter()
            .enumerate()
            .find(|(_, &label)| usize::try_from(label).map_or(true, |l| l >= classes));
        if let Some((sample, &label)) = beyond {
            let kind = DatasetErrorKind::LabelOutOfRange {
                array: self.array.clone(),
                label,
                output: out.name.clone(),
                classes,
            };
            return Err(locate(self.error(spec, kind).with_sample(sample), spec));
        }
        Ok(())
    }

    fn error(&self, spec: &DatasetSpec, kind: DatasetErrorKind) -> DatasetError {
        let error = DatasetError::new(spec.name.clone(), kind);
        match &spec.path {
            Some(path) => error.with_file(path),
            None => error,
        }
    }
}
