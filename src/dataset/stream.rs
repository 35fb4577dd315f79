//! Matching a dataset to the model's inputs, and the stream of samples that results.

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;

use super::array::open_npy;
use super::error::{DatasetError, DatasetErrorKind};
#[cfg(feature = "images")]
use super::images::ImageSource;
use super::list_images;
use super::npz::NpzArchive;
use super::random::RandomSource;
use super::source::{bare_name, first_non_finite, InputLayout, InputSource};
use super::{DatasetFormat, DatasetSpec, InputSpec};

/// Samples a random dataset yields when it states no `samples`.
pub const DEFAULT_RANDOM_SAMPLES: usize = 100;

/// One sample: one f32 array per model input, in model input order, each shaped as that input (batch 1).
pub type Sample = Vec<ArrayD<f32>>;

/// Samples of a dataset, matched to a model's inputs and read on demand.
///
/// Created by [`open`]. Holds one reader per input, never the whole dataset. After an error the stream is
/// finished: further calls to [`SampleStream::next_batch`] return no samples.
pub struct SampleStream {
    dataset: String,
    inputs: Vec<String>,
    sources: Vec<Box<dyn InputSource>>,
    len: usize,
    next: usize,
}

impl fmt::Debug for SampleStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleStream")
            .field("dataset", &self.dataset)
            .field("inputs", &self.inputs)
            .field("len", &self.len)
            .field("next", &self.next)
            .field("synthetic", &self.is_synthetic())
            .finish()
    }
}

impl SampleStream {
    /// Number of samples the stream yields in all (after the `samples` cap), including those already read.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the stream yields no samples at all (never true for a stream [`open`] returned).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any input is fed random data: such runs are smoke tests, and reports must say so.
    pub fn is_synthetic(&self) -> bool {
        self.sources.iter().any(|source| source.is_synthetic())
    }

    /// The dataset this stream was opened from.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// What the data was converted from to feed the model, one line per input where it matters: float64
    /// arrays narrowed to float32, and (a warning) integer arrays fed unscaled to float inputs.
    pub fn conversions(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter_map(|source| source.conversion())
            .collect()
    }

    /// Reads up to `max` further samples, in dataset order; an empty vector means the stream is done.
    /// Every value is checked to be finite.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Sample>, DatasetError> {
        let count = max.min(self.len - self.next);
        if count == 0 {
            return Ok(Vec::new());
        }
        let batch = self.read(count);
        // A failed stream stays finished rather than yielding samples out of step across inputs.
        self.next = if batch.is_ok() {
            self.next + count
        } else {
            self.len
        };
        batch
    }

    fn read(&mut self, count: usize) -> Result<Vec<Sample>, DatasetError> {
        let mut batch: Vec<Sample> = (0..count)
            .map(|_| Vec::with_capacity(self.sources.len()))
            .collect();
        for (source, input) in self.sources.iter_mut().zip(&self.inputs) {
            let samples = source.read_next(count)?;
            if samples.len() != count {
                let kind = DatasetErrorKind::Truncated {
                    complete: self.next + samples.len(),
                    expected: self.len,
                };
                return Err(DatasetError::new(source.dataset(), kind).with_input(input.clone()));
            }
            for (offset, (sample, slot)) in samples.into_iter().zip(batch.iter_mut()).enumerate() {
                if let Some((position, value)) = first_non_finite(&sample) {
                    let index = self.next + offset;
                    let mut error = DatasetError::new(
                        source.dataset(),
                        DatasetErrorKind::NotFinite { value, position },
                    )
                    .with_input(input.clone())
                    .with_sample(index);
                    if let Some(file) = source.file_of(index) {
                        error = error.with_file(file);
                    }
                    return Err(error);
                }
                slot.push(sample);
            }
        }
        Ok(batch)
    }
}

/// Opens `spec` to feed a model with `inputs`: one stream yielding, per sample, one f32 array per model input
/// (model input order), each shaped exactly as that input with batch 1.
///
/// `inputs` entries naming another dataset were resolved into [`DatasetSpec::feeds`] when the config was
/// validated: each such dataset feeds the input it is mapped from.
///
/// Errors name the config line and key they trace back to when `spec` came from a config.
pub fn open(spec: &DatasetSpec, inputs: &[InputSpec]) -> Result<SampleStream, DatasetError> {
    match_inputs(spec, inputs).map_err(|e| locate(e, spec))
}

/// Points `error` at the config key behind it: the key its kind names (or the table), in the table of the
/// dataset at fault: `spec`, or a dataset `spec` maps an input to.
pub(crate) fn locate(error: DatasetError, spec: &DatasetSpec) -> DatasetError {
    let origin = if error.dataset == spec.name {
        &spec.origin
    } else {
        spec.feeds
            .values()
            .find(|feed| feed.name == error.dataset)
            .map_or(&spec.origin, |feed| &feed.origin)
    };
    let key = error.kind.config_key();
    error.with_key(origin, key.as_deref())
}

fn match_inputs(spec: &DatasetSpec, inputs: &[InputSpec]) -> Result<SampleStream, DatasetError> {
    let fail = |kind| DatasetError::new(spec.name.clone(), kind);
    let model_inputs: Vec<String> = inputs.iter().map(|input| input.name.clone()).collect();
    for key in spec.inputs.keys() {
        if !inputs
            .iter()
            .any(|input| mapping_key_matches(key, &input.name))
        {
            return Err(fail(DatasetErrorKind::UnknownInput {
                key: key.clone(),
                model_inputs,
            }));
        }
    }
    let layouts = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            InputLayout::new(input, index).map_err(|kind| fail(kind).with_input(input.name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unmapped = layouts
        .iter()
        .filter(|layout| mapped_target(spec, &layout.name).is_none())
        .count();
    let self_mapped = spec.inputs.values().any(|target| *target == spec.name);
    let mut archive = match spec.format {
        DatasetFormat::Npz => Some(NpzArchive::open(&spec.name, path_of(spec)?)?),
        _ => None,
    };

    let mut sources: Vec<Box<dyn InputSource>> = Vec::with_capacity(layouts.len());
    for layout in &layouts {
        let target = mapped_target(spec, &layout.name);
        let fail_input = |kind| fail(kind).with_input(layout.name.clone());
        let feed = mapped_key(spec, &layout.name).and_then(|key| spec.feeds.get(key));
        let source = match (archive.as_mut(), target, feed) {
            // An entry naming another dataset: that dataset (resolved through chains) feeds this input.
            (_, _, Some(feed)) => open_single(feed, layout)?,
            (Some(npz), target, None) => {
                let array = npz
                    .array_for(&layout.name, target, layouts.len() == 1)
                    .map_err(|kind| {
                        let key = mapped_key(spec, &layout.name)
                            .map(|key| crate::config::join_key("inputs", key));
                        fail_input(kind)
                            .with_file(path_of(spec).map(Path::to_path_buf).unwrap_or_default())
                            .with_key(&spec.origin, key.as_deref())
                    })?;
                Box::new(npz.open_array(&array, layout, spec.samples)?)
            }
            (None, Some(target), None) if *target == spec.name => open_single(spec, layout)?,
            (None, Some(target), None) => {
                return Err(fail_input(DatasetErrorKind::UnknownDataset {
                    target: target.to_string(),
                    datasets: spec.feeds.values().map(|d| d.name.clone()).collect(),
                }))
            }
            // Random data has no natural input: it feeds every input not mapped elsewhere.
            (None, None, None) if spec.format == DatasetFormat::Random => {
                open_single(spec, layout)?
            }
            (None, None, None) if unmapped == 1 && !self_mapped => open_single(spec, layout)?,
            (None, None, None) => {
                let format = format_name(spec.format).to_string();
                return Err(fail_input(DatasetErrorKind::OneInputPerDataset { format }));
            }
        };
        sources.push(source);
    }

    let len = stream_len(spec, &layouts, &sources)?;
    Ok(SampleStream {
        dataset: spec.name.clone(),
        inputs: layouts.into_iter().map(|l| l.name).collect(),
        sources,
        len,
        next: 0,
    })
}

/// The number of samples every input can be fed: equal across inputs unless `samples` caps below the smallest.
fn stream_len(
    spec: &DatasetSpec,
    layouts: &[InputLayout],
    sources: &[Box<dyn InputSource>],
) -> Result<usize, DatasetError> {
    let bounded: Vec<(String, usize)> = layouts
        .iter()
        .zip(sources)
        .filter_map(|(layout, source)| Some((layout.name.clone(), source.available()?)))
        .collect();
    let smallest = bounded.iter().map(|(_, n)| *n).min();
    let largest = bounded.iter().map(|(_, n)| *n).max();
    let len = match (smallest, largest) {
        (Some(smallest), Some(largest)) => {
            if smallest != largest && spec.samples.is_none_or(|cap| cap > smallest) {
                return Err(DatasetError::new(
                    spec.name.clone(),
                    DatasetErrorKind::SampleCountMismatch { counts: bounded },
                ));
            }
            spec.samples.map_or(smallest, |cap| cap.min(smallest))
        }
        _ if sources.is_empty() => 0,
        _ => spec.samples.unwrap_or(DEFAULT_RANDOM_SAMPLES),
    };
    if len == 0 {
        let error = DatasetError::new(spec.name.clone(), DatasetErrorKind::Empty);
        return Err(match &spec.path {
            Some(path) => error.with_file(path),
            None => error,
        });
    }
    Ok(len)
}

/// Opens `dataset` as the source of the one input `layout`.
fn open_single(
    dataset: &DatasetSpec,
    layout: &InputLayout,
) -> Result<Box<dyn InputSource>, DatasetError> {
    Ok(match dataset.format {
        DatasetFormat::Npy => Box::new(open_npy(
            &dataset.name,
            path_of(dataset)?,
            layout,
            dataset.samples,
        )?),
        DatasetFormat::Npz => {
            let path = path_of(dataset)?;
            let mut archive = NpzArchive::open(&dataset.name, path)?;
            let array = archive
                .array_for(&layout.name, mapped_target(dataset, &layout.name), true)
                .map_err(|kind| {
                    DatasetError::new(dataset.name.clone(), kind)
                        .with_input(layout.name.clone())
                        .with_file(path)
                })?;
            Box::new(archive.open_array(&array, layout, dataset.samples)?)
        }
        #[cfg(feature = "images")]
        DatasetFormat::Images => Box::new(ImageSource::open(dataset, path_of(dataset)?, layout)?),
        #[cfg(not(feature = "images"))]
        DatasetFormat::Images => {
            return Err(DatasetError::new(
                dataset.name.clone(),
                DatasetErrorKind::ImagesFeatureOff,
            ))
        }
        DatasetFormat::Random => Box::new(RandomSource::open(dataset, layout)?),
    })
}

/// The `inputs` entry for the model input `input`: keyed by its exact name, else by its bare name.
fn mapped_target<'a>(spec: &'a DatasetSpec, input: &str) -> Option<&'a String> {
    mapped_key(spec, input).and_then(|key| spec.inputs.get(key))
}

/// The `inputs` key that maps the model input `input`: its exact name, else one with the same bare name.
fn mapped_key<'a>(spec: &'a DatasetSpec, input: &str) -> Option<&'a String> {
    spec.inputs
        .get_key_value(input)
        .map(|(key, _)| key)
        .or_else(|| {
            spec.inputs
                .keys()
                .find(|key| mapping_key_matches(key, input))
        })
}

/// Whether the `inputs` key `key` names the model input `input` (exactly, or both without the converter's
/// `serving_default_` prefix and `:0` suffix).
pub fn mapping_key_matches(key: &str, input: &str) -> bool {
    key == input || bare_name(key) == bare_name(input)
}

fn path_of(spec: &DatasetSpec) -> Result<&Path, DatasetError> {
    spec.path.as_deref().ok_or_else(|| {
        DatasetError::new(
            spec.name.clone(),
            DatasetErrorKind::MissingPath {
                format: format_name(spec.format).into(),
            },
        )
    })
}

fn format_name(format: DatasetFormat) -> &'static str {
    match format {
        DatasetFormat::Npy => "npy",
        DatasetFormat::Npz => "npz",
        DatasetFormat::Images => "images",
        DatasetFormat::Random => "random",
    }
}

/// Every file `spec` reads, with those of the datasets its `inputs` map points at: the `.npy`/`.npz` file, or
/// every image of an image folder (all of them, not only those under the `samples` cap, so a file added
/// before the cap changes the list). A folder that cannot be listed contributes nothing; [`open`] reports it.
pub fn digest_files(spec: &DatasetSpec) -> Vec<PathBuf> {
    let mut files = own_files(spec);
    for other in spec.feeds.values() {
        files.extend(own_files(other));
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|file| seen.insert(file.clone()));
    files
}

fn own_files(spec: &DatasetSpec) -> Vec<PathBuf> {
    match (spec.format, &spec.path) {
        (DatasetFormat::Npy | DatasetFormat::Npz, Some(path)) => vec![path.clone()],
        (DatasetFormat::Images, Some(folder)) => list_images(folder).unwrap_or_default(),
        _ => Vec::new(),
    }
}
