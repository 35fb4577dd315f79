//! Shape layers: Flatten and Reshape (RESHAPE), Permute (TRANSPOSE), ZeroPadding1D (PAD), ZeroPadding2D (PAD,
//! or absorbed by the next convolution), Cropping1D/2D (STRIDED_SLICE).

use serde::Deserialize;

use super::{channels_last, Lowering, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlattenOptions {
    data_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReshapeOptions {
    target_shape: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZeroPaddingOptions {
    padding: serde_json::Value,
    data_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermuteOptions {
    dims: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window1dOptions {
    #[serde(alias = "cropping")]
    padding: serde_json::Value,
    data_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CroppingOptions {
    cropping: serde_json::Value,
    data_format: Option<String>,
}

impl Lowering<'_> {
    /// A RESHAPE of `v` (any layout: row-major order is the same) to the Keras shape `shape`.
    fn reshape_to(&mut self, call: &LayerCall, v: &Value, shape: Vec<usize>) -> Value {
        let target = self.b.constant_i32(
            &format!("{}/shape", call.name),
            &[shape.len()],
            &super::builder::dims(&shape),
        );
        let out = self.out(call, "Reshape", &shape);
        self.b.op(
            fb::BuiltinOperator::RESHAPE,
            1,
            &[Some(v.tensor), Some(target)],
            &[out],
            fb::BuiltinOptionsT::NONE,
        );
        Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        }
    }

    /// Flatten: RESHAPE to `[1, n]`.
    pub(super) fn flatten(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: FlattenOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let v = self.inputs(call, 1)?.remove(0);
        if v.shape.len() <= 2 {
            return Ok(v);
        }
        let n = v.shape.iter().product();
        Ok(self.reshape_to(call, &v, vec![1, n]))
    }

    /// Reshape: RESHAPE to `[1, target_shape...]` (one -1 inferred).
    pub(super) fn reshape(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: ReshapeOptions = call.options()?;
        let v = self.inputs(call, 1)?.remove(0);
        let total: usize = v.shape.iter().product();
        let known: i64 = o.target_shape.iter().filter(|&&d| d > 0).product();
        let mut shape = vec![1];
        for &d in &o.target_shape {
            shape.push(if d < 0 {
                total / (known.max(1) as usize)
            } else {
                d as usize
            });
        }
        if shape.iter().product::<usize>() != total {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!("cannot reshape {:?} to {:?}", v.shape, o.target_shape),
            ));
        }
        Ok(self.reshape_to(call, &v, shape))
    }

    /// ZeroPadding2D: pending when one layer reads it (a `valid` convolution may absorb it), else PAD.
    pub(super) fn zero_padding(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: ZeroPaddingOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let pads = parse_pads(&o.padding).ok_or_else(|| {
            KerasErrorKind::unsupported(&call.name, &call.class, format!("padding {}", o.padding))
        })?;
        let v = self.inputs(call, 1)?.remove(0);
        if v.shape.len() != 4 {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!("input of shape {:?}", v.shape),
            ));
        }
        let mut shape = v.shape.clone();
        shape[1] += pads[0][0] + pads[0][1];
        shape[2] += pads[1][0] + pads[1][1];
        let pending = Value {
            shape,
            pad: Some(pads),
            ..v
        };
        let readers = self
            .readers
            .get(&super::TensorRef {
                layer: call.name.clone(),
                node: call.node,
                index: 0,
            })
            .copied();
        if readers == Some(1) {
            return Ok(pending);
        }
        Ok(self.resolve_pad(pending, &call.name))
    }

    /// Permute: TRANSPOSE by `[0, dims...]`.
    pub(super) fn permute(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: PermuteOptions = call.options()?;
        let input = self.inputs(call, 1)?.remove(0);
        let v = self.plain(input, &call.name);
        let mut perm = vec![0];
        perm.extend(&o.dims);
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..v.shape.len()).collect::<Vec<_>>() {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!(
                    "dims {:?} do not permute a tensor of shape {:?}",
                    o.dims, v.shape
                ),
            ));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| v.shape[p]).collect();
        let perm_t = self.b.constant_i32(
            &format!("{}/transpose/perm", call.name),
            &[perm.len()],
            &super::builder::dims(&perm),
        );
        let out = self.emit(
            call,
            fb::BuiltinOperator::TRANSPOSE,
            "transpose",
            &[v.tensor, perm_t],
            &shape,
            fb::BuiltinOptionsT::NONE,
        );
        Ok(Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        })
    }

    /// ZeroPadding1D: PAD of the steps axis (TF never folds it into a Conv1D).
    pub(super) fn zero_padding_1d(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: Window1dOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let [left, right] = parse_pair(&o.padding).ok_or_else(|| {
            KerasErrorKind::unsupported(&call.name, &call.class, format!("padding {}", o.padding))
        })?;
        let v = self.rank_input(call, 3)?;
        let paddings = [0, 0, left, right, 0, 0].map(|x| x as i32);
        let pads = self
            .b
            .constant_i32(&format!("{}/Const", call.name), &[3, 2], &paddings);
        let mut shape = v.shape.clone();
        shape[1] += left + right;
        let out = self.emit(
            call,
            fb::BuiltinOperator::PAD,
            "Pad",
            &[v.tensor, pads],
            &shape,
            fb::BuiltinOptionsT::PadOptions(Box::default()),
        );
        Ok(Value {
            tensor: out,
            shape,
            ..v
        })
    }

    /// Cropping1D and Cropping2D: STRIDED_SLICE of the spatial axes (Keras' `x[:, a:-b, ...]`).
    pub(super) fn cropping(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let bad = |v: &serde_json::Value| {
            KerasErrorKind::unsupported(&call.name, &call.class, format!("cropping {v}"))
        };
        let (crops, rank) = if call.class == "Cropping1D" {
            let o: Window1dOptions = call.options()?;
            channels_last(call, o.data_format.as_deref())?;
            (
                vec![parse_pair(&o.padding).ok_or_else(|| bad(&o.padding))?],
                3,
            )
        } else {
            let o: CroppingOptions = call.options()?;
            channels_last(call, o.data_format.as_deref())?;
            (
                parse_pads(&o.cropping)
                    .ok_or_else(|| bad(&o.cropping))?
                    .to_vec(),
                4,
            )
        };
        let v = self.rank_input(call, rank)?;
        let mut shape = v.shape.clone();
        let (mut begin, mut end) = (vec![0i32; rank], vec![0i32; rank]);
        // The batch and channel axes are whole (`:`); a spatial axis without an end crop runs to its end.
        let whole = 1 | 1 << (rank - 1);
        let mut end_mask = whole;
        for (i, [a, b]) in crops.iter().copied().enumerate() {
            let axis = i + 1;
            if a + b >= shape[axis] {
                return Err(KerasErrorKind::graph(
                    &call.name,
                    format!("cropping {a} + {b} of an axis of {}", shape[axis]),
                ));
            }
            shape[axis] -= a + b;
            begin[axis] = a as i32;
            end[axis] = -(b as i32);
            if b == 0 {
                end_mask |= 1 << axis;
            }
        }
        let name = &call.name;
        let begin = self
            .b
            .constant_i32(&format!("{name}/strided_slice/stack"), &[rank], &begin);
        let end = self
            .b
            .constant_i32(&format!("{name}/strided_slice/stack_1"), &[rank], &end);
        let strides = self.b.constant_i32(
            &format!("{name}/strided_slice/stack_2"),
            &[rank],
            &vec![1; rank],
        );
        let options = fb::StridedSliceOptionsT {
            begin_mask: whole,
            end_mask,
            ..Default::default()
        };
        let out = self.emit(
            call,
            fb::BuiltinOperator::STRIDED_SLICE,
            "strided_slice",
            &[v.tensor, begin, end, strides],
            &shape,
            fb::BuiltinOptionsT::StridedSliceOptions(Box::new(options)),
        );
        Ok(Value {
            tensor: out,
            shape,
            ..v
        })
    }

    /// The single input in the plain layout, which must have `rank`.
    pub(super) fn rank_input(
        &mut self,
        call: &LayerCall,
        rank: usize,
    ) -> Result<Value, KerasErrorKind> {
        let input = self.inputs(call, 1)?.remove(0);
        let v = self.plain(input, &call.name);
        if v.shape.len() != rank {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!(
                    "input of shape {:?}, a {} takes rank {rank}",
                    v.shape, call.class
                ),
            ));
        }
        Ok(v)
    }

    /// Writes a pending ZeroPadding2D as a PAD op.
    pub(super) fn resolve_pad(&mut self, v: Value, layer: &str) -> Value {
        let Some(p) = v.pad else {
            return v;
        };
        let paddings = [0, 0, p[0][0], p[0][1], p[1][0], p[1][1], 0, 0].map(|x| x as i32);
        let pads = self
            .b
            .constant_i32(&format!("{layer}/Pad/paddings"), &[4, 2], &paddings);
        let out = self.b.activation(&format!("{layer}/Pad"), &v.shape);
        self.b.op(
            fb::BuiltinOperator::PAD,
            1,
            &[Some(v.tensor), Some(pads)],
            &[out],
            fb::BuiltinOptionsT::PadOptions(Box::default()),
        );
        Value {
            tensor: out,
            pad: None,
            ..v
        }
    }
}

/// `padding` of ZeroPadding2D (or `cropping` of Cropping2D): an int, `[h, w]`, or
/// `[[top, bottom], [left, right]]`.
fn parse_pads(v: &serde_json::Value) -> Option<[[usize; 2]; 2]> {
    if let Some(x) = count(v) {
        return Some([[x, x], [x, x]]);
    }
    let items = v.as_array()?;
    let [h, w] = items.as_slice() else {
        return None;
    };
    Some([parse_pair(h)?, parse_pair(w)?])
}

/// One axis' `[before, after]`: an int or a pair.
fn parse_pair(v: &serde_json::Value) -> Option<[usize; 2]> {
    if let Some(x) = count(v) {
        return Some([x, x]);
    }
    match v.as_array()?.as_slice() {
        [a, b] => Some([count(a)?, count(b)?]),
        _ => None,
    }
}

fn count(v: &serde_json::Value) -> Option<usize> {
    v.as_u64().and_then(|x| usize::try_from(x).ok())
}
