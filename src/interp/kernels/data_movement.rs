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
use std::cell::RefCell;
use std::rc::Rc;

/// Runs a data-movement op's element-generic kernel (`calibrate::ops`) on quantized codes.
///
/// Quantized inputs (INT8, UINT8, INT16) enter as INT32 codes relative to the output's zero point and leave
/// with it added back, so a copied code is unchanged and a padded element is the zero point, as LiteRT's
/// quantized SPACE_TO_BATCH_ND pads (`output_offset`); its Prepare requires the input's params to equal
/// the output's. Index, shape and axis inputs pass through as they are.
pub(crate) fn on_codes(ctx: &OpCtx<'_>, kernel: calibrate::Kernel) -> Result<Vec<Tensor>, String> {
    if let Some(outs) = by_index_map(ctx, kernel)? {
        return Ok(outs);
    }
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

/// Index maps kept per op: at most this many (keyed by data shapes and index values) before starting over.
const MAX_MAPS: usize = 32;
/// Non-data inputs (indices, shapes, axes, conditions) with more elements than this are not memo keys.
const MAX_KEY_ELEMENTS: usize = 64;

/// One input of an index-map key: a data input by its shape, any other input by its value.
#[derive(PartialEq)]
enum KeyPart {
    Omitted,
    Data(Vec<usize>),
    Other(Tensor),
}

/// Where each output's elements come from: per output, its shape and its runs in order, each
/// `(start, length)`: `start` 0 for padding (the output's zero point), else `1 +` the position of the run's
/// first element in the data inputs laid end to end (a run copies consecutive elements).
type IndexMaps = Vec<(Vec<usize>, Vec<(usize, usize)>)>;

/// The index maps an op computed, by key (most recent last).
#[derive(Default)]
struct MapMemo(RefCell<Vec<(Vec<KeyPart>, Rc<IndexMaps>)>>);

/// When every output is quantized data of the data inputs' type (every op but ARG_MAX / ARG_MIN), each
/// output element is a copy of one input element or padding: the kernel runs on element positions instead
/// of codes, once per distinct data shapes and index values (kept by the interpreter), and the outputs are
/// gathered from the codes as they are. `None`: the op's tensors don't qualify.
fn by_index_map(ctx: &OpCtx<'_>, kernel: calibrate::Kernel) -> Result<Option<Vec<Tensor>>, String> {
    let Some(ty) = data_type(ctx)? else {
        return Ok(None);
    };
    let keyed = ctx
        .inputs
        .iter()
        .flatten()
        .all(|t| t.tensor_type() == ty || t.len() <= MAX_KEY_ELEMENTS);
    let memo = match (keyed, ctx.cache) {
        (true, Some(_)) => Some(ctx.prepared(&[], || Ok(MapMemo::default()))?),
        _ => None,
    };
    let found = memo.as_ref().and_then(|m| {
        m.0.borrow()
            .iter()
            .rev()
            .find(|(k, _)| key_matches(k, ctx.inputs, ty))
            .map(|(_, maps)| Rc::clone(maps))
    });
    let maps = match found {
        Some(maps) => maps,
        None => {
            let Some(maps) = index_maps(ctx, ty, kernel)? else {
                return Ok(None);
            };
            let maps = Rc::new(maps);
            if let Some(m) = &memo {
                let mut entries = m.0.borrow_mut();
                if entries.len() >= MAX_MAPS {
                    entries.clear();
                }
                entries.push((key_of(ctx.inputs, ty), Rc::clone(&maps)));
            }
            maps
        }
    };
    let zp = ctx.output_quant(0).map_or(0, |q| q.zero_point0());
    let sources: Vec<&TensorData> = ctx
        .inputs
        .iter()
        .flatten()
        .filter(|t| t.tensor_type() == ty)
        .map(|t| &t.data)
        .collect();
    maps.iter()
        .map(|(shape, runs)| Tensor::new(shape.clone(), gather_codes(&sources, runs, zp)?))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The memo key of an op's inputs (`ty`: the data type).
fn key_of(inputs: &[Option<&Tensor>], ty: fb::TensorType) -> Vec<KeyPart> {
    inputs
        .iter()
        .map(|t| match t {
            None => KeyPart::Omitted,
            Some(t) if t.tensor_type() == ty => KeyPart::Data(t.shape.clone()),
            Some(t) => KeyPart::Other((*t).clone()),
        })
        .collect()
}

/// Whether `key` is the key of `inputs`, compared in place.
fn key_matches(key: &[KeyPart], inputs: &[Option<&Tensor>], ty: fb::TensorType) -> bool {
    key.len() == inputs.len()
        && key.iter().zip(inputs).all(|(k, t)| match (k, t) {
            (KeyPart::Omitted, None) => true,
            (KeyPart::Data(shape), Some(t)) => t.tensor_type() == ty && t.shape == *shape,
            (KeyPart::Other(v), Some(t)) => v == *t,
            _ => false,
        })
}

/// The quantized type every output and every data input shares, if the op has one (and some data input).
fn data_type(ctx: &OpCtx<'_>) -> Result<Option<fb::TensorType>, String> {
    use fb::TensorType as T;
    let ty = ctx.output_type(0)?;
    if !matches!(ty, T::INT8 | T::UINT8 | T::INT16) {
        return Ok(None);
    }
    for i in 1..ctx.output_ids.len() {
        if ctx.output_type(i)? != ty {
            return Ok(None);
        }
    }
    let types = || ctx.inputs.iter().flatten().map(|t| t.tensor_type());
    let quantized = |t: T| matches!(t, T::INT8 | T::UINT8 | T::INT16);
    let agree = types().filter(|&t| quantized(t)).all(|t| t == ty);
    Ok((agree && types().any(|t| t == ty)).then_some(ty))
}

/// Runs the kernel on element positions (`1 +` the position in the data inputs laid end to end) in place of
/// the data inputs' codes; `None` when there are too many elements to number in INT32.
fn index_maps(
    ctx: &OpCtx<'_>,
    ty: fb::TensorType,
    kernel: calibrate::Kernel,
) -> Result<Option<IndexMaps>, String> {
    let total: usize = ctx
        .inputs
        .iter()
        .flatten()
        .filter(|t| t.tensor_type() == ty)
        .map(|t| t.len())
        .sum();
    if i32::try_from(total).is_err() {
        return Ok(None);
    }
    let mut next = 1;
    let mut values = Vec::with_capacity(ctx.inputs.len());
    for t in ctx.inputs {
        values.push(match t {
            None => None,
            Some(t) if t.tensor_type() == ty => {
                let positions = (next..next + t.len() as i32).collect();
                next += t.len() as i32;
                Some(Value::I32(
                    ArrayD::from_shape_vec(IxDyn(&t.shape), positions)
                        .map_err(|e| e.to_string())?,
                ))
            }
            Some(t) => Some(code_value(t, 0)?),
        });
    }
    on_values(ctx, &values, kernel)?
        .into_iter()
        .map(|v| match v {
            Value::I32(a) => {
                let mut runs: Vec<(usize, usize)> = Vec::new();
                for &p in &a {
                    let p = usize::try_from(p)
                        .ok()
                        .filter(|&p| p <= total)
                        .ok_or("the kernel produced an element that is no input position")?;
                    match runs.last_mut() {
                        Some((0, len)) if p == 0 => *len += 1,
                        Some((start, len)) if *start != 0 && p == *start + *len => *len += 1,
                        _ => runs.push((p, 1)),
                    }
                }
                Ok((a.shape().to_vec(), runs))
            }
            other => Err(format!(
                "the kernel produced {} for a quantized output",
                other.type_name()
            )),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The elements `runs` name in `sources` (data of one type, laid end to end), `zp` for padding.
fn gather_codes(
    sources: &[&TensorData],
    runs: &[(usize, usize)],
    zp: i32,
) -> Result<TensorData, String> {
    fn pick<T: Copy>(
        sources: Vec<&[T]>,
        runs: &[(usize, usize)],
        pad: T,
    ) -> Result<Vec<T>, String> {
        let joined;
        let all = match sources.as_slice() {
            [one] => *one,
            _ => {
                joined = sources.concat();
                &joined
            }
        };
        let mut out = Vec::with_capacity(runs.iter().map(|r| r.1).sum());
        for &(start, len) in runs {
            match start.checked_sub(1) {
                None => out.resize(out.len() + len, pad),
                Some(s) => out.extend_from_slice(
                    all.get(s..s + len)
                        .ok_or("an index map runs past the data inputs")?,
                ),
            }
        }
        Ok(out)
    }
    let mismatch = || "data inputs of different types".to_string();
    Ok(match sources.first() {
        Some(TensorData::I8(_)) => {
            let s = sources.iter().map(|d| match d {
                TensorData::I8(v) => Ok(v.as_slice()),
                _ => Err(mismatch()),
            });
            TensorData::I8(pick(s.collect::<Result<_, _>>()?, runs, zp as i8)?)
        }
        Some(TensorData::U8(_)) => {
            let s = sources.iter().map(|d| match d {
                TensorData::U8(v) => Ok(v.as_slice()),
                _ => Err(mismatch()),
            });
            TensorData::U8(pick(s.collect::<Result<_, _>>()?, runs, zp as u8)?)
        }
        Some(TensorData::I16(_)) => {
            let s = sources.iter().map(|d| match d {
                TensorData::I16(v) => Ok(v.as_slice()),
                _ => Err(mismatch()),
            });
            TensorData::I16(pick(s.collect::<Result<_, _>>()?, runs, zp as i16)?)
        }
        _ => return Err("no quantized data input".into()),
    })
}

#[cfg(test)]
mod tests {
    use crate::graph::Graph;
    use crate::interp::{Interpreter, Tensor, TensorData};
    use crate::tflite::fb;

    /// A tensor of `shape` reading `buffer` (0: none); int8 ones on scale 0.5 and `zp`.
    fn tensor(shape: &[i32], type_: fb::TensorType, zp: i64, buffer: u32) -> fb::TensorT {
        let quantization = (type_ == fb::TensorType::INT8).then(|| {
            Box::new(fb::QuantizationParametersT {
                scale: Some(vec![0.5]),
                zero_point: Some(vec![zp]),
                ..Default::default()
            })
        });
        fb::TensorT {
            shape: Some(shape.to_vec()),
            type_,
            buffer,
            quantization,
            ..Default::default()
        }
    }

    /// A one-op model: `tensors` (constants' data in `buffers`, from buffer 1), `inputs` the model inputs,
    /// the last tensor the output.
    fn model(
        code: fb::BuiltinOperator,
        options: fb::BuiltinOptionsT,
        tensors: Vec<fb::TensorT>,
        buffers: Vec<Vec<u8>>,
        inputs: &[i32],
        op_inputs: &[i32],
    ) -> Interpreter {
        let out = tensors.len() as i32 - 1;
        let tensors = tensors
            .into_iter()
            .enumerate()
            .map(|(i, t)| fb::TensorT {
                name: Some(format!("t{i}")),
                ..t
            })
            .collect();
        let graph = Graph::from_model(fb::ModelT {
            version: 3,
            operator_codes: Some(vec![fb::OperatorCodeT {
                deprecated_builtin_code: code.0 as i8,
                version: 1,
                builtin_code: code,
                ..Default::default()
            }]),
            subgraphs: Some(vec![fb::SubGraphT {
                tensors: Some(tensors),
                inputs: Some(inputs.to_vec()),
                outputs: Some(vec![out]),
                operators: Some(vec![fb::OperatorT {
                    opcode_index: 0,
                    inputs: Some(op_inputs.to_vec()),
                    outputs: Some(vec![out]),
                    builtin_options: options,
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            buffers: Some(
                std::iter::once(fb::BufferT::default())
                    .chain(buffers.into_iter().map(|data| fb::BufferT {
                        data: Some(data),
                        ..Default::default()
                    }))
                    .collect(),
            ),
            ..Default::default()
        });
        Interpreter::new(&graph.to_bytes()).expect("the model loads")
    }

    fn i32_bytes(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn gather_rows_stay_right_as_the_index_changes_past_the_memo_size() {
        const T: fb::TensorType = fb::TensorType::INT8;
        let rows = (super::MAX_MAPS + 8) as i32;
        let table: Vec<i8> = (0..rows * 2).map(|i| (i * 3 - 100) as i8).collect();
        let mut interp = model(
            fb::BuiltinOperator::GATHER,
            fb::BuiltinOptionsT::GatherOptions(Box::default()),
            vec![
                tensor(&[rows, 2], T, 3, 1),
                tensor(&[1], fb::TensorType::INT32, 0, 0),
                tensor(&[1, 2], T, 3, 0),
            ],
            vec![table.iter().map(|&c| c as u8).collect()],
            &[1],
            &[0, 1],
        );
        for pass in 0..2 {
            for r in (0..rows).rev() {
                let index = Tensor::new(vec![1], TensorData::I32(vec![r])).expect("index");
                interp.set_input(0, index).expect("sets");
                interp.invoke().expect("runs");
                let want = &table[2 * r as usize..2 * r as usize + 2];
                let got = interp.output(0).map(|t| t.data.clone());
                assert_eq!(
                    got,
                    Some(TensorData::I8(want.to_vec())),
                    "row {r}, pass {pass}"
                );
            }
        }
    }

    #[test]
    fn space_to_batch_pads_with_the_zero_point_and_pack_joins_inputs_in_order() {
        const T: fb::TensorType = fb::TensorType::INT8;
        let zp = -7;
        let mut s2b = model(
            fb::BuiltinOperator::SPACE_TO_BATCH_ND,
            fb::BuiltinOptionsT::NONE,
            vec![
                tensor(&[1, 2, 2, 1], T, zp, 0),
                tensor(&[2], fb::TensorType::INT32, 0, 1),
                tensor(&[2, 2], fb::TensorType::INT32, 0, 2),
                tensor(&[4, 2, 1, 1], T, zp, 0),
            ],
            vec![i32_bytes(&[2, 2]), i32_bytes(&[0, 2, 0, 0])],
            &[0],
            &[0, 1, 2],
        );
        for _ in 0..2 {
            let x = Tensor::new(vec![1, 2, 2, 1], TensorData::I8(vec![1, 2, 3, 4])).expect("x");
            s2b.set_input(0, x).expect("sets");
            s2b.invoke().expect("runs");
            let got = s2b.output(0).map(|t| t.data.clone());
            let p = zp as i8;
            assert_eq!(got, Some(TensorData::I8(vec![1, p, 2, p, 3, p, 4, p])));
        }

        let mut pack = model(
            fb::BuiltinOperator::PACK,
            fb::BuiltinOptionsT::PackOptions(Box::new(fb::PackOptionsT {
                values_count: 2,
                axis: 1,
            })),
            vec![
                tensor(&[2], T, 0, 0),
                tensor(&[2], T, 0, 1),
                tensor(&[2, 2], T, 0, 0),
            ],
            vec![vec![9, 8]],
            &[0],
            &[0, 1],
        );
        let x = Tensor::new(vec![2], TensorData::I8(vec![-1, -2])).expect("x");
        pack.set_input(0, x).expect("sets");
        pack.invoke().expect("runs");
        let got = pack.output(0).map(|t| t.data.clone());
        assert_eq!(got, Some(TensorData::I8(vec![-1, 9, -2, 8])));
    }
}
