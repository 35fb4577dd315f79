//! Keras models as sources: a `.keras` file lowered to the float32 graph TF's converter writes for it, without
//! TensorFlow.
//!
//! A `.keras` file is a zip holding `config.json` (the layer graph, Sequential or Functional) and
//! `model.weights.h5` (HDF5, read by a pure-Rust reader); a Keras 2 / tf_keras `.h5` model holds the same in
//! one HDF5 file (see [`h5`]). [`lower_keras`] parses either and lowers the layers
//! with TF's fusions (see [`lower`]); a layer or option outside the supported set is a
//! [`KerasErrorKind::Unsupported`] naming the layer, its class and the option.

mod archive;
mod config;
mod error;
mod h5;
mod lower;
mod weights;

use std::path::Path;

pub use error::{KerasError, KerasErrorKind, FLOAT_TFLITE_ROUTE};

use crate::graph::Graph;

/// Whether `path` names a Keras source (`.keras`, or a Keras 2 `.h5`) rather than a `.tflite` model.
pub fn is_keras_source(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["keras", "h5"].iter().any(|k| e.eq_ignore_ascii_case(k)))
}

/// Lowers the bytes of the `.keras` or `.h5` file at `path` (named in errors) to a float32 graph; a `.h5` name or
/// an HDF5 file is read as a Keras 2 `.h5` model.
pub fn lower_keras(path: &Path, bytes: &[u8]) -> Result<Graph, KerasError> {
    let fail = |kind| KerasError {
        file: path.to_path_buf(),
        kind,
    };
    let h5_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5"));
    if h5_name || bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        let (model, weights) = h5::read_h5(bytes.to_vec()).map_err(fail)?;
        return lower::lower(&model, &weights).map_err(fail);
    }
    let archive = archive::read_archive(bytes).map_err(fail)?;
    let model = config::parse_config(&archive.config).map_err(fail)?;
    let weights = weights::Weights::open(archive.weights).map_err(fail)?;
    lower::lower(&model, &weights).map_err(fail)
}
