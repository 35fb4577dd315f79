//! Shape layers: Flatten and Reshape (RESHAPE), ZeroPadding2D (PAD, or absorbed by the next convolution).

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

/// `padding` of ZeroPadding2D: an int, `[h, w]`, or `[[top, bottom], [left, right]]`.
fn parse_pads(v: &serde_json::Value) -> Option<[[usize; 2]; 2]> {
    let n = |v: &serde_json::Value| v.as_u64().and_then(|x| usize::try_from(x).ok());
    if let Some(x) = n(v) {
        return Some([[x, x], [x, x]]);
    }
    let items = v.as_array()?;
    let [h, w] = items.as_slice() else {
        return None;
    };
    let pair = |v: &serde_json::Value| -> Option<[usize; 2]> {
        if let Some(x) = n(v) {
            return Some([x, x]);
        }
        match v.as_array()?.as_slice() {
            [a, b] => Some([n(a)?, n(b)?]),
            _ => None,
        }
    };
    Some([pair(h)?, pair(w)?])
}
