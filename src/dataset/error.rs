//! What can go wrong reading a dataset, said in the user's terms.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::config::Location;

/// Where a dataset's table and keys are written in `quantize.toml`, so data errors can point at the line that
/// declares what is wrong. Empty for a [`DatasetSpec`](super::DatasetSpec) built in code.
///
/// Always compares equal: where a key is written does not change what the dataset is (watch compares jobs,
/// and moving a line must not rebuild them).
#[derive(Debug, Clone, Default)]
pub struct DatasetOrigin {
    /// The config file.
    pub config: PathBuf,
    /// The table's key path (`datasets.digits`).
    pub table: String,
    /// Where the table starts.
    pub at: Option<Location>,
    /// Where each key's value is written, by key relative to the table (`label_output`, `inputs.x`).
    pub keys: BTreeMap<String, Location>,
}

impl PartialEq for DatasetOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The config key a [`DatasetError`] is about: the file, where the key (or its table) is written, its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    /// The config file.
    pub config: PathBuf,
    /// Line and column of the key's value (or of the table, for a key left at its default).
    pub location: Option<Location>,
    /// The full key path (`datasets.eval.label_output`, or the table `datasets.eval`).
    pub key: String,
}

/// A dataset that cannot feed the model.
///
/// `Display` starts, for datasets declared in a config, with the config line and key the problem traces back
/// to (`quantize.toml:9:8: key `datasets.digits.path`: `), then names the dataset, then, when known, the file,
/// the model input and the sample index, then what was expected:
/// `dataset `digits` (file /data/calib.npz), input `serving_default_x:0`, sample 3: ...`.
#[derive(Debug, thiserror::Error)]
pub struct DatasetError {
    /// The config line and key the problem traces back to, when the dataset was declared in a config (boxed:
    /// errors travel in `Result`s).
    pub config: Option<Box<ConfigKey>>,
    /// The `[datasets.NAME]` table whose data is at fault.
    pub dataset: String,
    /// The model input being fed, when the problem concerns one.
    pub input: Option<String>,
    /// The sample index (0-based, in file order), when the problem concerns one sample.
    pub sample: Option<usize>,
    /// The file or folder being read, when there is one.
    pub file: Option<PathBuf>,
    /// What went wrong (boxed: the context fields already make the error large, and it travels in `Result`s).
    #[source]
    pub kind: Box<DatasetErrorKind>,
}

impl DatasetError {
    /// An error of `dataset` with no input, sample or file attached yet.
    pub fn new(dataset: impl Into<String>, kind: DatasetErrorKind) -> Self {
        DatasetError {
            config: None,
            dataset: dataset.into(),
            input: None,
            sample: None,
            file: None,
            kind: Box::new(kind),
        }
    }

    /// Attaches the model input being fed.
    pub fn with_input(mut self, input: impl Into<String>) -> Self {
        self.input = Some(input.into());
        self
    }

    /// Attaches the sample index.
    pub fn with_sample(mut self, sample: usize) -> Self {
        self.sample = Some(sample);
        self
    }

    /// Attaches the file or folder being read.
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Attaches the config key `key` (relative to the table, `label_output`) of the dataset declared at
    /// `origin`; `None`, or a key not written, points at the table. Keeps a key attached before.
    pub(crate) fn with_key(mut self, origin: &DatasetOrigin, key: Option<&str>) -> Self {
        if self.config.is_some() || origin.config.as_os_str().is_empty() {
            return self;
        }
        let written = key.and_then(|k| Some((k, *origin.keys.get(k)?)));
        self.config = Some(Box::new(match written {
            Some((k, location)) => ConfigKey {
                config: origin.config.clone(),
                location: Some(location),
                key: format!("{}.{k}", origin.table),
            },
            None => ConfigKey {
                config: origin.config.clone(),
                location: origin.at,
                key: origin.table.clone(),
            },
        }));
        self
    }
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(config) = &self.config {
            write!(f, "{}", config.config.display())?;
            if let Some(at) = config.location {
                write!(f, ":{}:{}", at.line, at.column)?;
            }
            write!(f, ": key `{}`: ", config.key)?;
        }
        write!(f, "dataset `{}`", self.dataset)?;
        if let Some(file) = &self.file {
            write!(f, " (file {})", file.display())?;
        }
        if let Some(input) = &self.input {
            write!(f, ", input `{input}`")?;
        }
        if let Some(sample) = self.sample {
            write!(f, ", sample {sample}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// The specific problem behind a [`DatasetError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetErrorKind {
    /// The file or folder could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The `.npz` file is not a readable zip archive.
    #[error("not a readable npz (zip) archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// An archive member uses a compression method other than stored or deflated.
    #[error("array `{array}` is compressed with {method}; expected stored or deflated (numpy.savez / savez_compressed)")]
    CompressionMethod {
        /// The array (archive member without `.npy`).
        array: String,
        /// The method found.
        method: String,
    },
    /// An archive member is encrypted.
    #[error("array `{array}` is encrypted; expected a plain npz archive")]
    Encrypted {
        /// The array (archive member without `.npy`).
        array: String,
    },
    /// An archive member's bytes do not match its recorded CRC-32.
    #[error("array `{array}` is corrupt: its CRC-32 is {found:#010x}, the archive records {expected:#010x}")]
    Checksum {
        /// The array (archive member without `.npy`).
        array: String,
        /// CRC-32 of the bytes read.
        found: u32,
        /// CRC-32 recorded in the archive.
        expected: u32,
    },
    /// The `.npy` header is malformed.
    #[error("not a valid .npy array: {0}")]
    NpyHeader(String),
    /// The array's element type is not one litequant converts.
    #[error("array dtype `{found}` is not supported; expected one of f2, f4, f8, u1, u2, u4, u8, i1, i2, i4, i8, b1 (either byte order)")]
    UnsupportedDtype {
        /// The numpy `descr` found in the header.
        found: String,
    },
    /// The array is stored in Fortran (column-major) order.
    #[error(
        "array is stored in Fortran order; expected C order (save numpy.ascontiguousarray(x))"
    )]
    FortranOrder,
    /// The array is 0-d: it has no axis that indexes samples.
    #[error("array is 0-d; expected a first axis that indexes samples, [samples, ...input shape]")]
    NoSampleAxis,
    /// A sample's shape differs from the model input's.
    #[error("a sample has shape {found:?}; expected {expected:?} (the model input's shape, with or without its leading batch 1)")]
    ShapeMismatch {
        /// Shape of one sample in the data (the array's shape without its first axis, or the image's NHWC shape).
        found: Vec<usize>,
        /// The model input's shape.
        expected: Vec<usize>,
    },
    /// The data's element type cannot feed the model input's type.
    #[error("data of type {found} cannot feed an input of type {input_type}; expected {expected}")]
    DtypeMismatch {
        /// The data's type (numpy `descr`, `images` or `random`).
        found: String,
        /// The model input's TFLite type.
        input_type: String,
        /// What would fit.
        expected: String,
    },
    /// The model input has dynamic dimensions other than the batch.
    #[error("the input's shape_signature {shape_signature:?} has dynamic dimensions besides the batch; expected a static sample shape")]
    DynamicShape {
        /// The input's `shape_signature`.
        shape_signature: Vec<i32>,
    },
    /// The data ends before the number of samples its header promises.
    #[error("data ends after {complete} complete samples; the header promises {expected}")]
    Truncated {
        /// Complete samples present.
        complete: usize,
        /// Samples the header declares.
        expected: usize,
    },
    /// A value is NaN or infinite.
    #[error("value {value} at position {position:?} is not finite; expected finite numbers only")]
    NotFinite {
        /// The offending value.
        value: f32,
        /// Its index within the sample (model input shape).
        position: Vec<usize>,
    },
    /// No array of the archive feeds this input.
    #[error("no array feeds this input (arrays: {available:?}); expected an array named after the input (with or without `serving_default_` and `:0`) or an `inputs = {{ \"<input>\" = \"<array>\" }}` entry")]
    InputNotFed {
        /// Arrays in the archive.
        available: Vec<String>,
    },
    /// Several arrays match this input's name once prefixes and suffixes are dropped.
    #[error("arrays {candidates:?} all match this input; map one explicitly with `inputs`")]
    AmbiguousArrays {
        /// The matching arrays.
        candidates: Vec<String>,
    },
    /// An `inputs` entry names an array the archive does not hold.
    #[error("`inputs` maps this input to array `{array}`, which the archive does not hold (arrays: {available:?})")]
    ArrayNotFound {
        /// The array named in `inputs`.
        array: String,
        /// Arrays in the archive.
        available: Vec<String>,
    },
    /// An `inputs` key is not an input of the model.
    #[error(
        "`inputs` names `{key}`, which is not an input of the model (inputs: {model_inputs:?})"
    )]
    UnknownInput {
        /// The key in `inputs`.
        key: String,
        /// The model's input tensor names.
        model_inputs: Vec<String>,
    },
    /// An `inputs` entry of an npy, images or random dataset names no dataset.
    #[error(
        "`inputs` maps this input to `{target}`, which is not a dataset (datasets: {datasets:?})"
    )]
    UnknownDataset {
        /// The value in `inputs`.
        target: String,
        /// Declared datasets.
        datasets: Vec<String>,
    },
    /// A single-source dataset would have to feed several inputs.
    #[error("a {format} dataset feeds one input; expected `inputs` to map every other model input to a dataset")]
    OneInputPerDataset {
        /// The dataset's format.
        format: String,
    },
    /// The inputs' sources hold different numbers of samples.
    #[error("inputs have different numbers of samples ({counts:?}); expected equal counts, or `samples` at most the smallest")]
    SampleCountMismatch {
        /// Input name and sample count, model input order.
        counts: Vec<(String, usize)>,
    },
    /// The dataset yields no sample at all.
    #[error("the dataset holds no samples; expected at least one")]
    Empty,
    /// An image folder holds no png or jpeg files.
    #[error("the folder holds no .png, .jpg or .jpeg file; expected at least one image")]
    EmptyFolder,
    /// An image file could not be decoded.
    #[error("cannot decode image: {0}")]
    Image(String),
    /// An image folder, in a litequant built without its `images` feature (the image decoders).
    #[error("image folders need litequant's `images` feature (in a build script: `litequant-build = {{ version = \"...\", features = [\"images\"] }}`); or convert the images to an .npz")]
    ImagesFeatureOff,
    /// An image's size differs from the input's and no `resize` is given.
    #[error("image is {found:?} (height, width); the input needs {expected:?}: set `resize = [{h}, {w}]`", h = .expected[0], w = .expected[1])]
    ImageSize {
        /// The image's `[height, width]`.
        found: [u32; 2],
        /// The input's `[height, width]`.
        expected: [u32; 2],
    },
    /// `resize` differs from the input's height and width.
    #[error("`resize = {resize:?}` differs from the input's [height, width] {expected:?}")]
    ResizeMismatch {
        /// The configured `[height, width]`.
        resize: [u32; 2],
        /// The input's `[height, width]`.
        expected: [u32; 2],
    },
    /// The input is not an NHWC image tensor with 1 or 3 channels.
    #[error("an images dataset feeds NHWC inputs [1, height, width, 1 or 3]; the input's shape is {shape:?}")]
    ImageInputShape {
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// `mean`/`std` do not fit the input's channels.
    #[error("{0}")]
    Normalization(String),
    /// `range` of a random dataset is unusable.
    #[error("`range = {range:?}` is not a finite [low, high] with low <= high")]
    BadRange {
        /// The configured range.
        range: [f32; 2],
    },
    /// An npy, npz or images dataset has no `path`.
    #[error("no `path`; expected the {format} file or folder to read")]
    MissingPath {
        /// The dataset's format.
        format: String,
    },
    /// `labels` names an array the archive does not hold.
    #[error("`labels` names array `{array}`, which the archive does not hold (arrays: {available:?}); expected the array of class labels")]
    LabelsNotFound {
        /// The array named by `labels`.
        array: String,
        /// Arrays in the archive.
        available: Vec<String>,
    },
    /// The labels array holds fewer labels than the dataset has samples.
    #[error("array `{array}` holds {labels} labels for {samples} samples; expected one label per sample")]
    LabelCount {
        /// The labels array.
        array: String,
        /// Labels it holds.
        labels: usize,
        /// Samples the dataset yields.
        samples: usize,
    },
    /// The model output the labels refer to does not exist.
    #[error("{source_of_index} says the labels refer to output {output}, and the model has {outputs} output(s); expected an index from 0 to {last}", last = outputs.saturating_sub(1))]
    LabelOutput {
        /// The output index.
        output: usize,
        /// Outputs the model has.
        outputs: usize,
        /// Where the index comes from (`` `label_output` `` or the archive's `` `label_output_index` ``).
        source_of_index: String,
    },
    /// A label is no class of the output it refers to.
    #[error("array `{array}` holds label {label}, and output `{output}` has {classes} classes; expected a class index from 0 to {last}", last = classes.saturating_sub(1))]
    LabelOutOfRange {
        /// The labels array.
        array: String,
        /// The label.
        label: i64,
        /// The output's name.
        output: String,
        /// Classes of the output (its last dimension).
        classes: usize,
    },
}

impl DatasetErrorKind {
    /// The key of the dataset's table (relative, `label_output`) that decides what went wrong, when one does.
    pub(crate) fn config_key(&self) -> Option<String> {
        use DatasetErrorKind as K;
        Some(match self {
            K::UnknownInput { key, .. } => crate::config::join_key("inputs", key),
            K::ResizeMismatch { .. } | K::ImageSize { .. } => "resize".into(),
            K::BadRange { .. } => "range".into(),
            K::LabelsNotFound { .. } | K::LabelCount { .. } | K::LabelOutOfRange { .. } => {
                "labels".into()
            }
            K::LabelOutput {
                source_of_index, ..
            } if source_of_index.contains("`label_output`") => "label_output".into(),
            K::Io(_)
            | K::Zip(_)
            | K::CompressionMethod { .. }
            | K::Encrypted { .. }
            | K::Checksum { .. }
            | K::NpyHeader(_)
            | K::UnsupportedDtype { .. }
            | K::FortranOrder
            | K::NoSampleAxis
            | K::ShapeMismatch { .. }
            | K::DtypeMismatch { .. }
            | K::Truncated { .. }
            | K::NotFinite { .. }
            | K::EmptyFolder
            | K::Image(_)
            | K::ImagesFeatureOff
            | K::InputNotFed { .. }
            | K::AmbiguousArrays { .. }
            | K::Empty => "path".into(),
            _ => return None,
        })
    }
}
