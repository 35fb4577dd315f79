//! Data movement on quantized tensors, codes copied unchanged (the quantization rules give every output the
//! parameters of its input, and every joined input the output's): EXPAND_DIMS, SLICE, SPLIT, SPLIT_V, PACK,
//! UNPACK, TILE, BROADCAST_TO, GATHER, DEPTH_TO_SPACE, SPACE_TO_DEPTH; and MAXIMUM / MINIMUM, which compare
//! raw codes (`maximum_minimum.cc`: inputs on the output's parameters), with broadcasting.
//!
//! The rest of the data-movement ops (STRIDED_SLICE, REVERSE_V2, GATHER_ND, MIRROR_PAD, SPACE_TO_BATCH_ND,
//! BATCH_TO_SPACE_ND, RESIZE_NEAREST_NEIGHBOR) run their element-generic kernel of the float model on the
//! codes ([`on_codes`]): one implementation for every element type, as LiteRT's templated kernels are.

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

fn ints(ctx: &OpCtx<'_>, i: usize, what: &str) -> Result<Vec<i64>, String> {
    ctx.input(i)?
        .data
        .to_i64()
        .ok_or_else(|| format!("{what} is not an integer tensor"))
}

fn axis_of(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Outer size, axis size and inner size of `shape` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn out(ctx: &OpCtx<'_>, i: usize, shape: Vec<usize>, v: Vec<i32>) -> Result<Tensor, String> {
    from_codes(shape, ctx.output_type(i)?, v)
}

/// EXPAND_DIMS: the declared output shape over the same codes.
pub(crate) fn expand_dims(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let shape = ctx.output_shape(0)?;
    if shape.iter().product::<usize>() != input.len() {
        return Err(format!(
            "the declared output shape {shape:?} does not hold the input's {} elements",
            input.len()
        ));
    }
    Ok(vec![Tensor::new(shape, input.data.clone())?])
}

/// SLICE: `begin` and `size` (-1: to the end) per dim.
pub(crate) fn slice(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let (begin, size) = (ints(ctx, 1, "begin")?, ints(ctx, 2, "size")?);
    let rank = input.shape.len();
    if begin.len() != rank || size.len() != rank {
        return Err(format!(
            "begin {begin:?} and size {size:?} must have {rank} entries"
        ));
    }
    let mut starts = Vec::with_capacity(rank);
    let mut shape = Vec::with_capacity(rank);
    for d in 0..rank {
        let dim = input.shape[d] as i64;
        let b = begin[d];
        let s = if size[d] == -1 { dim - b } else { size[d] };
        if b < 0 || s < 0 || b + s > dim {
            return Err(format!(
                "slice [{b}, +{s}) is outside dim {d} of size {dim}"
            ));
        }
        starts.push(b as usize);
        shape.push(s as usize);
    }
    let x = codes(input)?;
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * input.shape[d + 1];
    }
    let n: usize = shape.iter().product();
    let mut v = Vec::with_capacity(n);
    let mut index = vec![0usize; rank];
    for _ in 0..n {
        let offset: usize = (0..rank).map(|d| (starts[d] + index[d]) * strides[d]).sum();
        v.push(x[offset]);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(vec![out(ctx, 0, shape, v)?])
}

/// Splits `input` along `axis` into pieces of the given sizes.
fn split_sizes(
    ctx: &OpCtx<'_>,
    input: &Tensor,
    axis: usize,
    sizes: &[usize],
) -> Result<Vec<Tensor>, String> {
    let (outer, dim, inner) = around(&input.shape, axis);
    if sizes.iter().sum::<usize>() != dim {
        return Err(format!("split sizes {sizes:?} do not add up to dim {dim}"));
    }
    let x = codes(input)?;
    let mut result = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (k, &s) in sizes.iter().enumerate() {
        let mut v = Vec::with_capacity(outer * s * inner);
        for o in 0..outer {
            let base = (o * dim + start) * inner;
            v.extend_from_slice(&x[base..base + s * inner]);
        }
        let mut shape = input.shape.clone();
        shape[axis] = s;
        result.push(out(ctx, k, shape, v)?);
        start += s;
    }
    Ok(result)
}

/// SPLIT: `(axis, value)` into `num_splits` equal pieces.
pub(crate) fn split(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(1)?;
    let axis = ints(ctx, 0, "axis")?;
    let axis = axis_of(*axis.first().ok_or("axis is empty")?, input.shape.len())?;
    let n = ctx.output_ids.len();
    let dim = input.shape[axis];
    if n == 0 || dim % n != 0 {
        return Err(format!("dim {dim} does not split into {n} equal pieces"));
    }
    split_sizes(ctx, input, axis, &vec![dim / n; n])
}

/// SPLIT_V: `(value, size_splits, axis)`; one size may be -1 (the rest).
pub(crate) fn split_v(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let sizes = ints(ctx, 1, "size_splits")?;
    let axis = ints(ctx, 2, "axis")?;
    let axis = axis_of(*axis.first().ok_or("axis is empty")?, input.shape.len())?;
    let dim = input.shape[axis] as i64;
    let known: i64 = sizes.iter().filter(|&&s| s >= 0).sum();
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| if s == -1 { dim - known } else { s })
        .map(|s| usize::try_from(s).map_err(|_| format!("bad split size {s}")))
        .collect::<Result<_, _>>()?;
    split_sizes(ctx, input, axis, &sizes)
}

/// PACK: every input stacked along a new `axis`.
pub(crate) fn pack(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let fb::BuiltinOptionsT::PackOptions(o) = ctx.options() else {
        return Err("missing PackOptions".into());
    };
    let first = ctx.input(0)?;
    let axis = axis_of(i64::from(o.axis), first.shape.len() + 1)?;
    let n = ctx.inputs.len();
    let (outer, inner) = (
        first.shape[..axis].iter().product::<usize>(),
        first.shape[axis..].iter().product::<usize>(),
    );
    let parts: Vec<Vec<i32>> = (0..n)
        .map(|i| {
            let t = ctx.input(i)?;
            if t.shape != first.shape {
                return Err(format!(
                    "input {i} has shape {:?}, not {:?}",
                    t.shape, first.shape
                ));
            }
            codes(t)
        })
        .collect::<Result<_, _>>()?;
    let mut v = Vec::with_capacity(outer * n * inner);
    for o in 0..outer {
        for p in &parts {
            v.extend_from_slice(&p[o * inner..(o + 1) * inner]);
        }
    }
    let mut shape = first.shape.clone();
    shape.insert(axis, n);
    Ok(vec![out(ctx, 0, shape, v)?])
}

/// UNPACK: one output per index along `axis`, that dim removed.
pub(crate) fn unpack(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let fb::BuiltinOptionsT::UnpackOptions(o) = ctx.options() else {
        return Err("missing UnpackOptions".into());
    };
    let input = ctx.input(0)?;
    let axis = axis_of(i64::from(o.axis), input.shape.len())?;
    let (outer, dim, inner) = around(&input.shape, axis);
    let x = codes(input)?;
    let mut shape = input.shape.clone();
    shape.remove(axis);
    (0..dim)
        .map(|k| {
            let mut v = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                let base = (o * dim + k) * inner;
                v.extend_from_slice(&x[base..base + inner]);
            }
            out(ctx, k, shape.clone(), v)
        })
        .collect()
}

/// Repeats `x` of `shape` into `target` (each target dim a multiple of the source dim).
fn repeat(x: &[i32], shape: &[usize], target: &[usize]) -> Vec<i32> {
    let rank = target.len();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let n: usize = target.iter().product();
    let mut v = Vec::with_capacity(n);
    let mut index = vec![0usize; rank];
    for _ in 0..n {
        let offset: usize = (0..rank)
            .map(|d| (index[d] % shape[d].max(1)) * strides[d])
            .sum();
        v.push(x[offset]);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < target[d] {
                break;
            }
            index[d] = 0;
        }
    }
    v
}

/// TILE: each dim repeated `multiples[d]` times.
pub(crate) fn tile(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let multiples = ints(ctx, 1, "multiples")?;
    if multiples.len() != input.shape.len() || multiples.iter().any(|&m| m < 0) {
        return Err(format!(
            "multiples {multiples:?} do not fit shape {:?}",
            input.shape
        ));
    }
    let target: Vec<usize> = input
        .shape
        .iter()
        .zip(&multiples)
        .map(|(&d, &m)| d * m as usize)
        .collect();
    let v = repeat(&codes(input)?, &input.shape, &target);
    Ok(vec![out(ctx, 0, target, v)?])
}

/// BROADCAST_TO: the input broadcast to the `shape` input.
pub(crate) fn broadcast_to(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let target: Vec<usize> = ints(ctx, 1, "shape")?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    if target.len() < input.shape.len() {
        return Err(format!("cannot broadcast {:?} to {target:?}", input.shape));
    }
    let mut shape = vec![1; target.len() - input.shape.len()];
    shape.extend_from_slice(&input.shape);
    if shape.iter().zip(&target).any(|(&s, &t)| s != t && s != 1) {
        return Err(format!("cannot broadcast {:?} to {target:?}", input.shape));
    }
    let v = repeat(&codes(input)?, &shape, &target);
    Ok(vec![out(ctx, 0, target, v)?])
}

/// GATHER: `(params, indices)` with `axis` and `batch_dims` (`reference_ops::Gather`).
pub(crate) fn gather(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let fb::BuiltinOptionsT::GatherOptions(o) = ctx.options() else {
        return Err("missing GatherOptions".into());
    };
    let params = ctx.input(0)?;
    let indices_t = ctx.input(1)?;
    let indices = ints(ctx, 1, "indices")?;
    let rank = params.shape.len();
    let axis = axis_of(i64::from(o.axis), rank)?;
    let batch_dims = if o.batch_dims < 0 {
        o.batch_dims + indices_t.shape.len() as i32
    } else {
        o.batch_dims
    };
    let batch_dims = usize::try_from(batch_dims).map_err(|_| "bad batch_dims".to_string())?;
    if batch_dims > axis || batch_dims > indices_t.shape.len() {
        return Err(format!(
            "batch_dims {batch_dims} exceeds axis {axis} or the indices' rank"
        ));
    }
    let batch: usize = params.shape[..batch_dims].iter().product();
    let outer: usize = params.shape[batch_dims..axis].iter().product();
    let axis_size = params.shape[axis];
    let inner: usize = params.shape[axis + 1..].iter().product();
    let coords: usize = indices_t.shape[batch_dims..].iter().product();
    let x = codes(params)?;
    let mut v = Vec::with_capacity(batch * outer * coords * inner);
    for b in 0..batch {
        for o in 0..outer {
            for i in 0..coords {
                let k = indices[b * coords + i];
                if k < 0 || k >= axis_size as i64 {
                    return Err(format!("index {k} is outside [0, {axis_size})"));
                }
                let base = (((b * outer) + o) * axis_size + k as usize) * inner;
                v.extend_from_slice(&x[base..base + inner]);
            }
        }
    }
    let mut shape = params.shape[..axis].to_vec();
    shape.extend_from_slice(&indices_t.shape[batch_dims..]);
    shape.extend_from_slice(&params.shape[axis + 1..]);
    Ok(vec![out(ctx, 0, shape, v)?])
}

/// DEPTH_TO_SPACE (`to_space`) and SPACE_TO_DEPTH on NHWC with `block_size`.
pub(crate) fn depth_space(ctx: &OpCtx<'_>, to_space: bool) -> Result<Vec<Tensor>, String> {
    let block = match ctx.options() {
        fb::BuiltinOptionsT::DepthToSpaceOptions(o) => o.block_size,
        fb::BuiltinOptionsT::SpaceToDepthOptions(o) => o.block_size,
        _ => return Err("missing block size options".into()),
    };
    let bs = usize::try_from(block)
        .ok()
        .filter(|&b| b > 0)
        .ok_or("bad block size")?;
    let input = ctx.input(0)?;
    let [n, h, w, c] = <[usize; 4]>::try_from(input.shape.as_slice())
        .map_err(|_| format!("input {:?} must be 4-D", input.shape))?;
    let x = codes(input)?;
    let (oh, ow, oc) = if to_space {
        if c % (bs * bs) != 0 {
            return Err(format!("depth {c} is not a multiple of {}", bs * bs));
        }
        (h * bs, w * bs, c / (bs * bs))
    } else {
        if h % bs != 0 || w % bs != 0 {
            return Err(format!("{h}x{w} is not a multiple of the block {bs}"));
        }
        (h / bs, w / bs, c * bs * bs)
    };
    let mut v = vec![0i32; n * oh * ow * oc];
    for b in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for ch in 0..c {
                    let src = ((b * h + y) * w + xx) * c + ch;
                    let dst = if to_space {
                        let (by, rest) = (ch / (bs * oc), ch % (bs * oc));
                        let (bx, oc_i) = (rest / oc, rest % oc);
                        ((b * oh + y * bs + by) * ow + xx * bs + bx) * oc + oc_i
                    } else {
                        let (by, bx) = (y % bs, xx % bs);
                        ((b * oh + y / bs) * ow + xx / bs) * oc + (by * bs + bx) * c + ch
                    };
                    v[dst] = x[src];
                }
            }
        }
    }
    Ok(vec![out(ctx, 0, vec![n, oh, ow, oc], v)?])
}

/// MAXIMUM / MINIMUM of raw codes with broadcasting.
pub(crate) fn max_min(ctx: &OpCtx<'_>, maximum: bool) -> Result<Vec<Tensor>, String> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let (xa, xb) = (codes(a)?, codes(b)?);
    let (shape, ia, ib) = broadcast(&a.shape, &b.shape)?;
    let v = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| {
            if maximum {
                xa[i].max(xb[j])
            } else {
                xa[i].min(xb[j])
            }
        })
        .collect();
    Ok(vec![out(ctx, 0, shape, v)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_tiles_and_broadcasts() {
        // [1, 2] tiled x3 along dim 1 of a [1, 2] shape.
        assert_eq!(
            repeat(&[1, 2], &[1, 2], &[2, 4]),
            vec![1, 2, 1, 2, 1, 2, 1, 2]
        );
        assert_eq!(repeat(&[5, 6], &[2, 1], &[2, 3]), vec![5, 5, 5, 6, 6, 6]);
    }
}
