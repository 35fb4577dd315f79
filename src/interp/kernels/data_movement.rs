//! Data movement on quantized tensors, codes copied unchanged (the quantization rules give every output the
//! parameters of its input, and every joined input the output's): EXPAND_DIMS, SLICE, STRIDED_SLICE,
//! REVERSE_V2, SPLIT, SPLIT_V, PACK, UNPACK, TILE, BROADCAST_TO, FILL, GATHER, GATHER_ND, MIRROR_PAD,
//! DEPTH_TO_SPACE, SPACE_TO_DEPTH, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND, RESIZE_NEAREST_NEIGHBOR, SELECT,
//! SELECT_V2 and ARG_MAX / ARG_MIN run their element-generic kernel of the float model on the codes
//! ([`on_codes`]): one implementation for every element type, as LiteRT's templated kernels are. MAXIMUM /
//! MINIMUM compare raw codes (`maximum_minimum.cc`: inputs on the output's parameters), with broadcasting.

use super::arithmetic::broadcast;
use super::{codes, from_codes, OpCtx};
use crate::calibrate::{self, Value};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;
use ndarray::{ArrayD, IxDyn};

/// Runs a data-movement op's element-generic kernel (`calibrate::ops`) on quantized codes.
///
/// Quantized inputs (INT8, UINT8, INT16) enter as INT32 codes relative to the output's zero point and leave
/// with it added back, so a copied code is unchanged and a padded element is the zero point, as LiteRT's
/// quantized SPACE_TO_BATCH_ND pads (`output_offset`); its Prepare requires the input's params to equal
/// the output's. Index, shape and axis inputs pass through as they are.
pub(crate) fn on_codes(ctx: &OpCtx<'_>, kernel: calibrate::Kernel) -> Result<Vec<Tensor>, String> {
    // ARG_MAX's INT32 output has no params: its codes need no shift.
    let zp = ctx.output_quant(0).map_or(0, |q| q.zero_point0());
    let values: Vec<Option<Value>> = ctx
        .inputs
        .iter()
        .map(|t| t.map(|t| code_value(t, zp)).transpose())
        .collect::<Result<_, _>>()?;
    let outs = on_values(ctx, &values, kernel)?;
    outs.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let shape = v.shape().to_vec();
            match (v, ctx.output_type(i)?) {
                (
                    Value::I32(a),
                    ty @ (fb::TensorType::INT8 | fb::TensorType::UINT8 | fb::TensorType::INT16),
                ) => from_codes(shape, ty, a.iter().map(|&c| c + zp).collect()),
                (Value::I32(a), fb::TensorType::INT32) => {
                    Tensor::new(shape, TensorData::I32(a.iter().copied().collect()))
                }
                (Value::I64(a), _) => {
                    Tensor::new(shape, TensorData::I64(a.iter().copied().collect()))
                }
                (Value::Bool(a), _) => {
                    Tensor::new(shape, TensorData::Bool(a.iter().copied().collect()))
                }
                (other, ty) => Err(format!(
                    "the kernel produced {} for a {} output",
                    other.type_name(),
                    crate::tflite::type_name(ty)
                )),
            }
        })
        .collect()
}

/// Runs the float model's kernel of the op on `values` (one per input, `None` for omitted ones).
pub(crate) fn on_values(
    ctx: &OpCtx<'_>,
    values: &[Option<Value>],
    kernel: calibrate::Kernel,
) -> Result<Vec<Value>, String> {
    let float_ctx = calibrate::OpContext {
        graph: ctx.graph,
        op: ctx.op,
        inputs: values.iter().map(Option::as_ref).collect(),
        // Data movement and comparisons run no subgraph.
        calls: None,
    };
    kernel(&float_ctx).map_err(|e| e.to_string())
}

/// A tensor as a value of the float model's kernels: quantized codes as INT32 less `zp`, the rest as is.
fn code_value(t: &Tensor, zp: i32) -> Result<Value, String> {
    let shape = IxDyn(&t.shape);
    let err = |e: ndarray::ShapeError| e.to_string();
    Ok(match &t.data {
        TensorData::I8(_) | TensorData::U8(_) | TensorData::I16(_) => Value::I32(
            ArrayD::from_shape_vec(shape, codes(t)?.into_iter().map(|c| c - zp).collect())
                .map_err(err)?,
        ),
        TensorData::I32(v) => Value::I32(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::I64(v) => Value::I64(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::Bool(v) => Value::Bool(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::F32(v) => Value::F32(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        other => {
            return Err(format!(
                "a data-movement op cannot read {}",
                crate::tflite::type_name(other.tensor_type())
            ))
        }
    })
}

fn out(ctx: &OpCtx<'_>, i: usize, shape: Vec<usize>, v: Vec<i32>) -> Result<Tensor, String> {
    from_codes(shape, ctx.output_type(i)?, v)
}

/// MAXIMUM / MINIMUM of raw codes with broadcasting.
pub(crate) fn max_min(ctx: &OpCtx<'_>, maximum: bool) -> Result<Vec<Tensor>, String> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let (xa, xb) = (codes(a)?, codes(b)?);
    let (shape, pairs) = broadcast(&a.shape, &b.shape)?;
    let v = pairs
        .map(|(i, j)| {
            if maximum {
                xa[i].max(xb[j])
            } else {
                xa[i].min(xb[j])
            }
        })
        .collect();
    Ok(vec![out(ctx, 0, shape, v)?])
}
