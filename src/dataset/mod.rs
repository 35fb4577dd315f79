//! Representative data: `.npy`, `.npz`, image folders and seeded random data, streamed sample by sample.
//!
//! ## Brief overview
//! * [`open`] matches a [`DatasetSpec`] to the model's inputs ([`InputSpec`]) and returns a [`SampleStream`]
//!   that yields, per sample, one f32 array per model input, shaped exactly as that input with batch 1.
//! * `npy`: one array whose first axis indexes samples; each sample has the input's shape with or without
//!   its leading batch 1. `npz`: one such array per input, matched by tensor name (also without a
//!   `serving_default_` prefix or `:0` suffix) or through `inputs = { tensor = "array" }`; a single array
//!   feeds a single input; arrays that feed no input (`labels`) are ignored. Both are read a sample at a
//!   time; npz members are inflated on the fly. Element types f2/f4/f8, u1..u8, i1..i8 and b1 become f32.
//! * `images`: png/jpeg files sorted by name, RGB (or grayscale for 1-channel inputs), resized with a
//!   triangle filter to `resize`, then `(pixel - mean[c]) / std[c]`, NHWC. A multi-input model takes one
//!   dataset per input through `inputs = { tensor = "other_dataset" }`.
//! * `random`: uniform in `range` from a ChaCha8 generator seeded with `seed`; [`SampleStream::is_synthetic`]
//!   marks it so reports can say the run is a smoke test.
//! * [`digest_files`] lists every file a dataset reads, for cache keys and rebuild triggers.
//!
//! Every problem is a [`DatasetError`] naming the dataset, the file, the input and the sample.

mod array;
mod error;
#[cfg(feature = "images")]
mod images;
mod labels;
mod npy;
mod npz;
mod random;
mod source;
mod spec;
mod stream;

pub use error::{ConfigKey, DatasetError, DatasetErrorKind, DatasetOrigin};
pub use labels::{read_labels, Labels, OutputSpec, DEFAULT_LABELS_ARRAY, LABEL_OUTPUT_ARRAY};
pub use spec::{DatasetFormat, DatasetSpec};
pub use stream::{
    digest_files, mapping_key_matches, open, Sample, SampleStream, DEFAULT_RANDOM_SAMPLES,
};

use crate::tflite::fb;

/// What the dataset must feed: one model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// Tensor name (`serving_default_x:0`).
    pub name: String,
    /// Static shape, batch included (`[1, 96, 96, 3]`).
    pub shape: Vec<i32>,
    /// `shape_signature` when present: -1 marks a dynamic dimension.
    pub shape_signature: Option<Vec<i32>>,
    /// Element type of the float model's input (FLOAT32 for models litequant quantizes).
    pub dtype: fb::TensorType,
}

#[cfg(test)]
mod tests;

/// The image files of `folder`: extensions png, jpg or jpeg (any case), sorted by file name.
/// Other files and sub-folders are ignored.
pub(crate) fn list_images(folder: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let is_image = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| {
                ["png", "jpg", "jpeg"]
                    .iter()
                    .any(|known| ext.eq_ignore_ascii_case(known))
            });
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    // Sorted by file name (bytes), so the order is the same on every file system.
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
