//! Tensor values of the integer interpreter: typed flat data with a shape, and quantization parameters.

use crate::tflite::{self, fb};

/// The elements of a tensor, in row-major order, in the tensor's own element type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// FLOAT32.
    F32(Vec<f32>),
    /// FLOAT16 (constant weights in float16 models).
    F16(Vec<half::f16>),
    /// INT8 (quantized activations and weights).
    I8(Vec<i8>),
    /// UINT8 (uint8 model I/O).
    U8(Vec<u8>),
    /// INT16 (16x8 activations).
    I16(Vec<i16>),
    /// INT32 (biases, shapes, axes).
    I32(Vec<i32>),
    /// INT64 (16x8 biases).
    I64(Vec<i64>),
    /// BOOL.
    Bool(Vec<bool>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The TFLite element type.
    pub fn tensor_type(&self) -> fb::TensorType {
        use fb::TensorType as T;
        match self {
            TensorData::F32(_) => T::FLOAT32,
            TensorData::F16(_) => T::FLOAT16,
            TensorData::I8(_) => T::INT8,
            TensorData::U8(_) => T::UINT8,
            TensorData::I16(_) => T::INT16,
            TensorData::I32(_) => T::INT32,
            TensorData::I64(_) => T::INT64,
            TensorData::Bool(_) => T::BOOL,
        }
    }

    /// Integer elements widened to i64 (None for float and bool data).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match self {
            TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I64(v) => v.clone(),
            _ => return None,
        })
    }

    /// Elements as f64 (integers as their codes, bools as 0/1): for comparing tensors of any type.
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F16(v) => v.iter().map(|x| f64::from(x.to_f32())).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            other => other
                .to_i64()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        }
    }
}

/// A tensor value: shape and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions (row-major).
    pub shape: Vec<usize>,
    /// Elements; `data.len()` is the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor, checking that the data fills the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, String> {
        let count: usize = shape.iter().product();
        if count != data.len() {
            return Err(format!(
                "shape {shape:?} holds {count} elements, the data has {}",
                data.len()
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// A FLOAT32 tensor.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, String> {
        Tensor::new(shape, TensorData::F32(data))
    }

    /// The TFLite element type.
    pub fn tensor_type(&self) -> fb::TensorType {
        self.data.tensor_type()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Real values: float data as is, integer codes dequantized with `quant` (per tensor or per channel),
    /// unquantized integers as their values.
    pub fn to_real(&self, quant: Option<&QuantParams>) -> Vec<f32> {
        let mut out = Vec::new();
        self.to_real_into(quant, &mut out);
        out
    }

    /// [`to_real`](Self::to_real) into `out` (cleared first), reusing its allocation.
    pub fn to_real_into(&self, quant: Option<&QuantParams>, out: &mut Vec<f32>) {
        out.clear();
        // One scale: the common int8 case, without widening the codes first (same arithmetic).
        let one = |c: i64, q: &QuantParams| {
            let zp = q.zero_point.first().copied().unwrap_or(0);
            (f64::from(q.scale[0]) * (c - zp) as f64) as f32
        };
        match (&self.data, quant) {
            (TensorData::F32(v), _) => {
                out.extend_from_slice(v);
                return;
            }
            (TensorData::I8(v), Some(q)) if q.scale.len() == 1 => {
                // `one`'s arithmetic, element by element in vector lanes.
                let zp = q.zero_point.first().copied().unwrap_or(0);
                out.resize(v.len(), 0.0);
                dequantize_codes(v, f64::from(q.scale[0]), zp as f64, out);
                return;
            }
            (TensorData::I16(v), Some(q)) if q.scale.len() == 1 => {
                out.extend(v.iter().map(|&c| one(i64::from(c), q)));
                return;
            }
            _ => {}
        }
        out.extend(match (&self.data, quant) {
            (TensorData::F32(v), _) => v.clone(),
            (TensorData::F16(v), _) => v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>(),
            (data, Some(q)) => {
                let codes = data.to_i64().unwrap_or_default();
                let inner = q.inner_size(&self.shape);
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| {
                        let ch = q.channel_of(i, inner);
                        let scale = f64::from(q.scale.get(ch).copied().unwrap_or(1.0));
                        let zp = q.zero_point.get(ch).copied().unwrap_or(0);
                        (scale * (c - zp) as f64) as f32
                    })
                    .collect()
            }
            (data, None) => data.to_f64().into_iter().map(|x| x as f32).collect(),
        });
    }
}

/// Affine quantization parameters of a tensor: `real = (q - zero_point) * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantParams {
    /// One scale per tensor, or per slice along `quantized_dimension`.
    pub scale: Vec<f32>,
    /// One zero point per scale.
    pub zero_point: Vec<i64>,
    /// The axis of per-channel scales.
    pub quantized_dimension: usize,
}

impl QuantParams {
    /// The parameters of a tensor, if it has at least one scale.
    pub fn of(t: &fb::TensorT) -> Option<QuantParams> {
        let q = t.quantization.as_deref()?;
        let scale = q.scale.clone().filter(|s| !s.is_empty())?;
        let mut zero_point = q.zero_point.clone().unwrap_or_default();
        zero_point.resize(scale.len(), 0);
        Some(QuantParams {
            scale,
            zero_point,
            quantized_dimension: usize::try_from(q.quantized_dimension).unwrap_or(0),
        })
    }

    /// The per-tensor scale (the first one).
    pub fn scale0(&self) -> f32 {
        self.scale.first().copied().unwrap_or(1.0)
    }

    /// The per-tensor zero point (the first one).
    pub fn zero_point0(&self) -> i32 {
        self.zero_point.first().copied().unwrap_or(0) as i32
    }

    /// Elements per step of the quantized dimension (the product of the dims after it).
    fn inner_size(&self, shape: &[usize]) -> usize {
        shape
            .iter()
            .skip(self.quantized_dimension + 1)
            .product::<usize>()
            .max(1)
    }

    fn channel_of(&self, flat: usize, inner: usize) -> usize {
        if self.scale.len() <= 1 {
            0
        } else {
            (flat / inner) % self.scale.len()
        }
    }
}

/// What a model input or output is: name, shape, type and quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Index of the tensor in the main subgraph.
    pub id: crate::graph::TensorId,
    /// Tensor name.
    pub name: String,
    /// Static shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: fb::TensorType,
    /// Quantization, when the tensor is quantized.
    pub quant: Option<QuantParams>,
}

impl TensorInfo {
    /// The element type's TFLite name (`INT8`, `FLOAT32`, ...).
    pub fn type_name(&self) -> String {
        tflite::type_name(self.dtype)
    }
}

/// Decodes a constant buffer into a tensor of the declared type.
pub(crate) fn decode(
    bytes: &[u8],
    shape: Vec<usize>,
    dtype: fb::TensorType,
) -> Result<Tensor, String> {
    use fb::TensorType as T;
    let count: usize = shape.iter().product();
    let width = match dtype {
        T::FLOAT32 | T::INT32 => 4,
        T::INT64 => 8,
        T::FLOAT16 | T::INT16 => 2,
        T::INT8 | T::UINT8 | T::BOOL => 1,
        other => {
            return Err(format!(
                "constants of type {} are not supported",
                tflite::type_name(other)
            ))
        }
    };
    if bytes.len() != count * width {
        return Err(format!(
            "constant data has {} bytes, shape {shape:?} of {} needs {}",
            bytes.len(),
            tflite::type_name(dtype),
            count * width
        ));
    }
    let data = match dtype {
        T::FLOAT32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        T::INT32 => TensorData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        T::INT64 => TensorData::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        T::FLOAT16 => TensorData::F16(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        T::INT16 => TensorData::I16(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        T::INT8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        T::UINT8 => TensorData::U8(bytes.to_vec()),
        _ => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
    };
    Tensor::new(shape, data)
}

#[inline(always)]
fn dequantize_codes_body(codes: &[i8], scale: f64, zero_point: f64, out: &mut [f32]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = (scale * (f64::from(c) - zero_point)) as f32;
    }
}

crate::calibrate::vector::wide_vectors! {
    /// `out[i] = (scale * (codes[i] - zero_point)) as f32` in double precision, with AVX2 where the CPU has
    /// it (the same operations per element).
    fn dequantize_codes(codes: &[i8], scale: f64, zero_point: f64, out: &mut [f32]) => dequantize_codes_body;
}
