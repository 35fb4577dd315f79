//! Representative data: `.npy`, `.npz`, image folders and seeded random data, streamed sample by sample.

mod spec;

pub use spec::{DatasetFormat, DatasetSpec};

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
