//! Integer and hybrid kernel bodies, one module per op family; the op table ([`crate::ops`]) says which op
//! runs which.
//!
//! A kernel gets the op's input tensors (LiteRT's tensor layouts, row-major) and returns every output.
//! Requantization parameters are derived from the tensors' quantization exactly as LiteRT's `Prepare` does.

pub(crate) mod activation;
pub(crate) mod arithmetic;
pub(crate) mod batch_matmul;
pub(crate) mod batch_matmul_quantized;
pub(crate) mod compare;
pub(crate) mod conv;
pub(crate) mod conv_int8;
pub(crate) mod data_movement;
pub(crate) mod elementwise;
pub(crate) mod fully_connected;
pub(crate) mod gelu;
pub(crate) mod gemm;
pub(crate) mod hybrid;
pub(crate) mod leaky_relu;
pub(crate) mod lstm;
pub(crate) mod lut;
pub(crate) mod normalization;
pub(crate) mod pool;
pub(crate) mod quantize;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod requantize;
pub(crate) mod resize;
pub(crate) mod rsqrt;
pub(crate) mod shape;
pub(crate) mod sigmoid_table;
pub(crate) mod softmax;
pub(crate) mod squared_difference;
pub(crate) mod transpose;
pub(crate) mod transpose_conv;

use super::tensor::{QuantParams, Tensor, TensorData};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::{self, fb};
use std::any::Any;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

/// What a kernel sees: the op, its inputs (in op order, `None` for omitted optional ones) and its outputs.
pub(crate) struct OpCtx<'a> {
    pub graph: &'a Graph,
    pub op: OpIndex,
    pub inputs: &'a [Option<&'a Tensor>],
    pub input_ids: &'a [Option<TensorId>],
    pub output_ids: &'a [TensorId],
    /// The interpreter's state for this op across invokes (`None`: a one-off evaluation keeps nothing).
    pub cache: Option<&'a OpCache>,
}

/// What an interpreter keeps for one op across invokes: what its kernel derives from the op's constant
/// inputs and quantization once (packed weights, multipliers), and scratch buffers it reuses.
#[derive(Default)]
pub(crate) struct OpCache {
    prepared: OnceCell<Box<dyn Any>>,
    scratch: RefCell<Scratch>,
}

/// Scratch buffers a kernel reuses from one invoke to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Offset activations.
    pub activations: Vec<i16>,
    /// Gathered patches (im2col rows).
    pub patches: Vec<i16>,
    /// Accumulators; results of elementwise ops.
    pub sums: Vec<i32>,
    /// Prepared values of an elementwise op's first input.
    pub lhs: Vec<i32>,
    /// Prepared values of an elementwise op's second input.
    pub rhs: Vec<i32>,
}

/// A kernel's prepared state: the interpreter's cached copy, or one made for a single evaluation.
pub(crate) enum Prepared<'a, T> {
    Cached(&'a T),
    Fresh(T),
}

impl<T> std::ops::Deref for Prepared<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Prepared::Cached(t) => t,
            Prepared::Fresh(t) => t,
        }
    }
}

impl<'a> OpCtx<'a> {
    /// Input `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a Tensor, String> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("missing input {i}"))
    }

    /// Input `i` if present.
    pub fn optional(&self, i: usize) -> Option<&'a Tensor> {
        self.inputs.get(i).copied().flatten()
    }

    /// Quantization of input `i`, required.
    pub fn input_quant(&self, i: usize) -> Result<QuantParams, String> {
        let id = self
            .input_ids
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("missing input {i}"))?;
        QuantParams::of(self.graph.tensor(id)).ok_or_else(|| {
            format!(
                "input {i} ({:?}) has no quantization parameters",
                self.graph.tensor_name(id)
            )
        })
    }

    /// Quantization of output `i`, required.
    pub fn output_quant(&self, i: usize) -> Result<QuantParams, String> {
        let id = self.output_id(i)?;
        QuantParams::of(self.graph.tensor(id)).ok_or_else(|| {
            format!(
                "output {i} ({:?}) has no quantization parameters",
                self.graph.tensor_name(id)
            )
        })
    }

    fn output_id(&self, i: usize) -> Result<TensorId, String> {
        self.output_ids
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing output {i}"))
    }

    /// Declared type of output `i`.
    pub fn output_type(&self, i: usize) -> Result<fb::TensorType, String> {
        Ok(self.graph.tensor(self.output_id(i)?).type_)
    }

    /// Declared static shape of output `i` (negative dims as 0).
    pub fn output_shape(&self, i: usize) -> Result<Vec<usize>, String> {
        Ok(self
            .graph
            .shape(self.output_id(i)?)
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect())
    }

    /// The op's builtin options.
    pub fn options(&self) -> &'a fb::BuiltinOptionsT {
        &self.graph.op(self.op).builtin_options
    }

    /// Whether input `i` is present and a constant of the model (its value is the same on every invoke).
    pub fn is_constant(&self, i: usize) -> bool {
        self.input_ids
            .get(i)
            .copied()
            .flatten()
            .is_some_and(|id| self.graph.buffer_data(id).is_some())
    }

    /// The state `make` derives from the op's quantization and its `constant` inputs: made once and kept by
    /// the interpreter when those inputs are model constants (or omitted), made afresh otherwise.
    pub fn prepared<T: Any>(
        &self,
        constant: &[usize],
        make: impl FnOnce() -> Result<T, String>,
    ) -> Result<Prepared<'a, T>, String> {
        let fixed = |i: usize| self.optional(i).is_none() || self.is_constant(i);
        let cache = match self.cache {
            Some(c) if constant.iter().all(|&i| fixed(i)) => c,
            _ => return make().map(Prepared::Fresh),
        };
        if cache.prepared.get().is_none() {
            // Set only here, and the cell was empty: it cannot be full already.
            let _ = cache.prepared.set(Box::new(make()?));
        }
        cache
            .prepared
            .get()
            .and_then(|b| b.downcast_ref::<T>())
            .map(Prepared::Cached)
            .ok_or_else(|| "the op's prepared state has another kernel's type".to_string())
    }

    /// Runs `f` with the op's scratch buffers (fresh ones for a one-off evaluation).
    pub fn with_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        match self.cache.map(|c| c.scratch.try_borrow_mut()) {
            Some(Ok(mut s)) => f(&mut s),
            _ => f(&mut Scratch::default()),
        }
    }
}

/// An integer kernel.
pub(crate) type Kernel = fn(&OpCtx<'_>) -> Result<Vec<Tensor>, String>;

/// The integer and hybrid kernels of the op table ([`crate::ops`]), keyed by builtin op code.
#[derive(Default)]
pub(crate) struct Registry {
    int8: HashMap<i32, Kernel>,
    int16: HashMap<i32, Kernel>,
    hybrid: HashMap<i32, Kernel>,
}

impl Registry {
    pub fn with_all_ops() -> Registry {
        use crate::ops::Face;
        let mut r = Registry::default();
        for def in crate::ops::table().iter() {
            let code = def.code().0;
            if let Face::Has(k) = def.int8_kernel {
                r.int8.insert(code, k);
            }
            if let Face::Has(k) = def.int16_kernel {
                r.int16.insert(code, k);
            }
            if let Face::Has(k) = def.hybrid {
                r.hybrid.insert(code, k);
            }
        }
        r
    }

    /// The integer kernel of an op code for int16 activations (`int16`) or int8/uint8 ones.
    pub fn get_integer(&self, code: fb::BuiltinOperator, int16: bool) -> Option<Kernel> {
        let map = if int16 { &self.int16 } else { &self.int8 };
        map.get(&code.0).copied()
    }

    pub fn get_hybrid(&self, code: fb::BuiltinOperator) -> Option<Kernel> {
        self.hybrid.get(&code.0).copied()
    }
}

/// Integer elements of a quantized tensor as i32 (INT8, UINT8, INT16).
pub(crate) fn codes(t: &Tensor) -> Result<Vec<i32>, String> {
    Ok(match &t.data {
        TensorData::I8(v) => v.iter().map(|&x| i32::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| i32::from(x)).collect(),
        TensorData::I16(v) => v.iter().map(|&x| i32::from(x)).collect(),
        TensorData::I32(v) => v.clone(),
        other => {
            return Err(format!(
                "expected quantized integer data, got {}",
                tflite::type_name(other.tensor_type())
            ))
        }
    })
}

/// The value range of a quantized integer type.
pub(crate) fn type_range(t: fb::TensorType) -> Result<(i32, i32), String> {
    use fb::TensorType as T;
    Ok(match t {
        T::INT8 => (-128, 127),
        T::UINT8 => (0, 255),
        T::INT16 => (-32768, 32767),
        T::INT32 => (i32::MIN, i32::MAX),
        other => {
            return Err(format!(
                "{} is not a quantized integer type",
                tflite::type_name(other)
            ))
        }
    })
}

/// Packs clamped codes into a tensor of the given integer type.
pub(crate) fn from_codes(
    shape: Vec<usize>,
    t: fb::TensorType,
    v: Vec<i32>,
) -> Result<Tensor, String> {
    if t == fb::TensorType::INT32 {
        return Tensor::new(shape, TensorData::I32(v));
    }
    from_code_slice(shape, t, &v)
}

/// Like [`from_codes`], from borrowed codes.
pub(crate) fn from_code_slice(
    shape: Vec<usize>,
    t: fb::TensorType,
    v: &[i32],
) -> Result<Tensor, String> {
    use fb::TensorType as T;
    let data = match t {
        T::INT8 => TensorData::I8(v.iter().map(|&x| x.clamp(-128, 127) as i8).collect()),
        T::UINT8 => TensorData::U8(v.iter().map(|&x| x.clamp(0, 255) as u8).collect()),
        T::INT16 => TensorData::I16(v.iter().map(|&x| x.clamp(-32768, 32767) as i16).collect()),
        T::INT32 => TensorData::I32(v.to_vec()),
        other => return Err(format!("cannot produce {} codes", tflite::type_name(other))),
    };
    Tensor::new(shape, data)
}

/// Bias values as i64 (INT32 or INT64 biases), or zeros when the bias is omitted.
pub(crate) fn bias_i64(t: Option<&Tensor>, n: usize) -> Result<Vec<i64>, String> {
    match t {
        None => Ok(vec![0; n]),
        Some(b) => {
            let v = b.data.to_i64().ok_or("the bias is not an integer tensor")?;
            if v.len() != n {
                return Err(format!("the bias has {} values, expected {n}", v.len()));
            }
            Ok(v)
        }
    }
}

/// Float data of a tensor.
pub(crate) fn floats(t: &Tensor) -> Result<&[f32], String> {
    match &t.data {
        TensorData::F32(v) => Ok(v),
        other => Err(format!(
            "expected FLOAT32 data, got {}",
            tflite::type_name(other.tensor_type())
        )),
    }
}

/// A dimension of a shape, as an error when the rank is too small.
pub(crate) fn dim(shape: &[usize], i: usize, what: &str) -> Result<usize, String> {
    shape.get(i).copied().ok_or_else(|| {
        format!(
            "{what} has shape {shape:?}, expected at least {} dims",
            i + 1
        )
    })
}

/// The per-channel (or broadcast per-tensor) scales of a filter with `channels` output channels.
pub(crate) fn channel_scales(q: &QuantParams, channels: usize) -> Result<Vec<f32>, String> {
    match q.scale.len() {
        1 => Ok(vec![q.scale[0]; channels]),
        n if n == channels => Ok(q.scale.clone()),
        n => Err(format!(
            "the filter has {n} scales for {channels} output channels"
        )),
    }
}

/// Output size and leading padding of one spatial dim (TFLite's `ComputePaddingHeightWidth`).
pub(crate) fn padding(
    padding: fb::Padding,
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
) -> Result<(usize, usize), String> {
    if stride == 0 || dilation == 0 || filter == 0 {
        return Err("stride, dilation and filter size must be positive".into());
    }
    let effective = (filter - 1) * dilation + 1;
    let out = if padding == fb::Padding::SAME {
        input.div_ceil(stride)
    } else {
        if input < effective {
            return Err(format!(
                "input size {input} is smaller than the filter's {effective}"
            ));
        }
        (input - effective + stride) / stride
    };
    let needed = ((out.max(1) - 1) * stride + effective) as i64 - input as i64;
    Ok((out, (needed.max(0) / 2) as usize))
}
