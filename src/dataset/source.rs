//! One stream of samples for one model input, whatever the format behind it.

use std::path::PathBuf;

use ndarray::{ArrayD, Dimension};

use super::error::{DatasetError, DatasetErrorKind};
use super::InputSpec;
use crate::tflite::fb;

/// What one model input needs from a dataset: its name, its position among the model inputs, the exact
/// shape of one sample (batch 1) and its element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputLayout {
    /// Tensor name.
    pub name: String,
    /// Position among the model's inputs.
    pub index: usize,
    /// Shape of one sample, batch 1 included.
    pub shape: Vec<usize>,
    /// The model input's element type.
    pub dtype: fb::TensorType,
}

impl InputLayout {
    /// The layout of `input`, with a dynamic batch (`shape_signature[0] == -1`) fixed to 1.
    pub fn new(input: &InputSpec, index: usize) -> Result<InputLayout, DatasetErrorKind> {
        let signature = input.shape_signature.as_deref().unwrap_or(&input.shape);
        let dynamic_beyond_batch = signature.iter().skip(1).any(|&d| d < 0);
        if dynamic_beyond_batch || signature.len() != input.shape.len() {
            return Err(DatasetErrorKind::DynamicShape {
                shape_signature: signature.to_vec(),
            });
        }
        let shape = input
            .shape
            .iter()
            .zip(signature)
            .enumerate()
            .map(|(axis, (&dim, &sig))| {
                if axis == 0 && (sig < 0 || dim < 0) {
                    Ok(1)
                } else {
                    usize::try_from(dim).map_err(|_| DatasetErrorKind::DynamicShape {
                        shape_signature: signature.to_vec(),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InputLayout {
            name: input.name.clone(),
            index,
            shape,
            dtype: input.dtype,
        })
    }

    /// Number of elements in one sample.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether data of any numeric type converts to this input exactly enough (float inputs), or only integer
    /// data does (integer inputs, where a fractional value would be silently truncated by the runtime).
    /// Errors when the input's type is one no dataset can feed.
    pub fn check_feed(&self, found: &str, data_is_integer: bool) -> Result<(), DatasetErrorKind> {
        let float_input = matches!(
            self.dtype,
            fb::TensorType::FLOAT32 | fb::TensorType::FLOAT16 | fb::TensorType::FLOAT64
        );
        let integer_input = matches!(
            self.dtype,
            fb::TensorType::INT8
                | fb::TensorType::UINT8
                | fb::TensorType::INT16
                | fb::TensorType::UINT16
                | fb::TensorType::INT32
                | fb::TensorType::UINT32
                | fb::TensorType::INT64
                | fb::TensorType::UINT64
                | fb::TensorType::BOOL
        );
        if float_input || (integer_input && data_is_integer) {
            return Ok(());
        }
        let expected = if integer_input {
            "integer data (an npy/npz array of an integer or bool dtype)"
        } else {
            "a float or integer model input"
        };
        Err(DatasetErrorKind::DtypeMismatch {
            found: found.to_string(),
            input_type: self
                .dtype
                .variant_name()
                .map_or_else(|| format!("type {}", self.dtype.0), str::to_string),
            expected: expected.to_string(),
        })
    }
}

/// A sequential reader of samples for one model input.
pub(crate) trait InputSource: Send {
    /// The dataset this source reads (which may be another dataset than the one opened, through `inputs`).
    fn dataset(&self) -> &str;

    /// Samples this source can yield, after its own dataset's `samples` cap; `None` when unbounded (random).
    fn available(&self) -> Option<usize>;

    /// Whether the data is synthetic (random).
    fn is_synthetic(&self) -> bool {
        false
    }

    /// The file sample `index` comes from, for error messages.
    fn file_of(&self, index: usize) -> Option<PathBuf>;

    /// What the data is converted from on its way to the input, when the user should know (one line).
    fn conversion(&self) -> Option<String> {
        None
    }

    /// Reads the next `count` samples, each shaped as the input's layout.
    fn read_next(&mut self, count: usize) -> Result<Vec<ArrayD<f32>>, DatasetError>;
}

/// Drops a `serving_default_` prefix and a `:0` suffix, the decorations TF's converter adds to input names.
pub(crate) fn bare_name(name: &str) -> &str {
    let name = name.strip_prefix("serving_default_").unwrap_or(name);
    name.strip_suffix(":0").unwrap_or(name)
}

/// The position of the first non-finite value in `sample`, with the value.
pub(crate) fn first_non_finite(sample: &ArrayD<f32>) -> Option<(Vec<usize>, f32)> {
    // The common case (all finite) is a plain scan; positions are only computed for the report.
    if sample.iter().all(|v| v.is_finite()) {
        return None;
    }
    sample
        .indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(index, &v)| (index.slice().to_vec(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[i32], signature: Option<&[i32]>) -> InputSpec {
        InputSpec {
            name: "x".into(),
            shape: shape.to_vec(),
            shape_signature: signature.map(<[i32]>::to_vec),
            dtype: fb::TensorType::FLOAT32,
        }
    }

    #[test]
    fn dynamic_batch_input_is_fed_batch_one_samples() {
        let layout = InputLayout::new(&spec(&[1, 4, 3], Some(&[-1, 4, 3])), 0).unwrap();
        assert_eq!(layout.shape, vec![1, 4, 3]);
        let layout = InputLayout::new(&spec(&[-1, 4], Some(&[-1, 4])), 0).unwrap();
        assert_eq!(layout.shape, vec![1, 4]);
    }

    #[test]
    fn dynamic_dimensions_beyond_batch_are_rejected() {
        let err = InputLayout::new(&spec(&[1, 1, 40], Some(&[-1, -1, 40])), 0).unwrap_err();
        assert!(matches!(err, DatasetErrorKind::DynamicShape { .. }));
    }

    #[test]
    fn float_data_cannot_feed_integer_inputs() {
        let mut input = spec(&[1, 4], None);
        input.dtype = fb::TensorType::INT32;
        let layout = InputLayout::new(&input, 0).unwrap();
        assert!(layout.check_feed("<i8", true).is_ok());
        assert!(matches!(
            layout.check_feed("<f4", false),
            Err(DatasetErrorKind::DtypeMismatch { .. })
        ));
        input.dtype = fb::TensorType::STRING;
        let layout = InputLayout::new(&input, 0).unwrap();
        assert!(layout.check_feed("<i8", true).is_err());
    }

    #[test]
    fn bare_name_drops_converter_decorations() {
        assert_eq!(bare_name("serving_default_img:0"), "img");
        assert_eq!(bare_name("img"), "img");
        assert_eq!(
            bare_name("StatefulPartitionedCall:1"),
            "StatefulPartitionedCall:1"
        );
    }
}
