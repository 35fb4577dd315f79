//! Why a Keras file could not be lowered: the file, the layer and what is wrong, in the user's terms.

use std::path::PathBuf;

/// The hint every unsupported-layer error ends with: the route that always works.
pub const FLOAT_TFLITE_ROUTE: &str =
    "export a float .tflite with TensorFlow's converter and use it as the source instead";

/// A Keras file litequant cannot lower, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", file.display())]
pub struct KerasError {
    /// The `.keras` / `.h5` file.
    pub file: PathBuf,
    /// What is wrong.
    pub kind: KerasErrorKind,
}

/// What is wrong inside a [`KerasError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KerasErrorKind {
    /// A `.h5` file that is not a readable Keras 2 model (truncated, not HDF5, weights only).
    #[error("not a readable Keras .h5 model: {0}")]
    H5(String),
    /// The `model_config` attribute of a `.h5` model is not the layer graph Keras writes.
    #[error("model_config: {0}")]
    ModelConfig(String),
    /// Not a zip archive, or a truncated or corrupt one.
    #[error("not a readable .keras archive (a .keras file is a zip): {0}")]
    Archive(String),
    /// The archive lacks a member every `.keras` file has.
    #[error("not a Keras model: the archive has no `{0}`")]
    MissingMember(String),
    /// A member's bytes do not match its checksum, or it cannot be inflated.
    #[error("archive member `{member}` is corrupt: {reason}")]
    CorruptMember {
        /// The member's name.
        member: String,
        /// What the reader saw.
        reason: String,
    },
    /// `config.json` is not the model description Keras writes.
    #[error("config.json: {0}")]
    Config(String),
    /// The weights file could not be read as HDF5.
    #[error("model.weights.h5: {0}")]
    Weights(String),
    /// A layer's weight is missing or has the wrong shape.
    #[error("layer `{layer}`: {message}")]
    Weight {
        /// The layer's name.
        layer: String,
        /// What is wrong with its weights.
        message: String,
    },
    /// A layer class, or an option of a layer, that litequant does not lower.
    #[error("layer `{layer}` ({class}): {message}; {FLOAT_TFLITE_ROUTE}")]
    Unsupported {
        /// The layer's name.
        layer: String,
        /// Its Keras class (`Conv2D`, `LSTM`, ...).
        class: String,
        /// The class or option and why.
        message: String,
    },
    /// The layer graph is inconsistent (a layer reads a tensor no layer produces, shapes that do not fit).
    #[error("layer `{layer}`: {message}")]
    Graph {
        /// The layer's name.
        layer: String,
        /// What does not fit.
        message: String,
    },
}

impl KerasErrorKind {
    /// An unsupported class or option of `layer`.
    pub(crate) fn unsupported(layer: &str, class: &str, message: impl Into<String>) -> Self {
        KerasErrorKind::Unsupported {
            layer: layer.to_string(),
            class: class.to_string(),
            message: message.into(),
        }
    }

    /// An inconsistency at `layer`.
    pub(crate) fn graph(layer: &str, message: impl Into<String>) -> Self {
        KerasErrorKind::Graph {
            layer: layer.to_string(),
            message: message.into(),
        }
    }
}
