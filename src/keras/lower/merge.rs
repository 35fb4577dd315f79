//! Merge layers: Add, Subtract, Multiply, Maximum, Minimum, Average (element-wise ops chained over the inputs)
//! and Concatenate (CONCATENATION).

use serde::Deserialize;

use super::fold::ScalarAffine;
use super::{Lowering, Producer, ProducerKind, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeOptions {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcatOptions {
    #[serde(default = "last")]
    axis: i64,
}

fn last() -> i64 {
    -1
}

/// The broadcast shape of two shapes of one rank, or `None`.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.len() != b.len() {
        return None;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

impl Lowering<'_> {
    /// Inputs in one layout: expanded when all are, else plain.
    fn same_layout(&mut self, call: &LayerCall, values: Vec<Value>) -> Vec<Value> {
        if values.iter().all(|v| v.expanded) {
            return values;
        }
        values
            .into_iter()
            .map(|v| self.plain(v, &call.name))
            .collect()
    }

    /// Add, Subtract, Multiply, Maximum, Minimum, Average.
    pub(super) fn merge(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let _: MergeOptions = call.options()?;
        let n = if call.class == "Subtract" { 2 } else { 0 };
        let values = self.inputs(call, n)?;
        let values = self.same_layout(call, values);
        let (code, what) = match call.class.as_str() {
            "Add" | "Average" => (fb::BuiltinOperator::ADD, "Add"),
            "Subtract" => (fb::BuiltinOperator::SUB, "Sub"),
            "Multiply" => (fb::BuiltinOperator::MUL, "Mul"),
            "Maximum" => (fb::BuiltinOperator::MAXIMUM, "Maximum"),
            _ => (fb::BuiltinOperator::MINIMUM, "Minimum"),
        };
        let mut acc = values[0].clone();
        for v in &values[1..] {
            // TF turns Keras 3's ADD of two `[1, .., 1, n]` tensors into a bias add: the second operand reshaped
            // to `[n]` (not tf_keras' ADD).
            let n = v.shape.len();
            let bias_add = code == fb::BuiltinOperator::ADD
                && !self.tf_keras
                && n >= 2
                && v.shape[..n - 1].iter().all(|&d| d == 1)
                && acc.shape == v.shape;
            let operand = if bias_add {
                // Row-major order is the same in either layout.
                self.reshape_tensor(call, v.tensor, &v.shape[n - 1..], "Squeeze")
            } else {
                v.tensor
            };
            let shape = broadcast(&acc.shape, &v.shape).ok_or_else(|| {
                KerasErrorKind::graph(
                    &call.name,
                    format!("shapes {:?} and {:?} do not broadcast", acc.shape, v.shape),
                )
            })?;
            let next = Value {
                shape,
                ..acc.clone()
            };
            let out = self.out(call, what, &next.tfl_shape());
            let options = binary_options(code);
            let op = self
                .b
                .op(code, 1, &[Some(acc.tensor), Some(operand)], &[out], options);
            if code != fb::BuiltinOperator::MAXIMUM && code != fb::BuiltinOperator::MINIMUM {
                self.producers.insert(
                    out,
                    Producer {
                        op,
                        kind: ProducerKind::Elementwise,
                        weights: None,
                        bias: None,
                    },
                );
            }
            acc = Value {
                tensor: out,
                ..next
            };
        }
        if call.class == "Average" {
            let k = self.b.constant_f32(
                &format!("{}/truediv", call.name),
                &[],
                &[1.0 / values.len() as f32],
            );
            let out = self.out(call, "Mean", &acc.tfl_shape());
            let mul = self.b.op(
                fb::BuiltinOperator::MUL,
                1,
                &[Some(acc.tensor), Some(k)],
                &[out],
                fb::BuiltinOptionsT::MulOptions(Box::default()),
            );
            self.scalars.insert(
                out,
                ScalarAffine {
                    input: acc.tensor,
                    scale: 1.0 / values.len() as f32,
                    offset: 0.0,
                    ops: vec![mul],
                },
            );
            acc = Value { tensor: out, ..acc };
        }
        Ok(acc)
    }

    /// Concatenate: CONCATENATION along the Keras axis (TF keeps a negative axis as written).
    pub(super) fn concatenate(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: ConcatOptions = call.options()?;
        let values = self.inputs(call, 0)?;
        let values = self.same_layout(call, values);
        let rank = values[0].shape.len() as i64;
        let axis = if o.axis < 0 { o.axis + rank } else { o.axis };
        if !(0..rank).contains(&axis) || axis == 0 {
            return Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                format!("axis {}", o.axis),
            ));
        }
        let mut shape = values[0].shape.clone();
        let a = axis as usize;
        shape[a] = 0;
        for v in &values {
            let fits = v.shape.len() == shape.len()
                && v.shape
                    .iter()
                    .zip(&values[0].shape)
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !fits {
                return Err(KerasErrorKind::graph(
                    &call.name,
                    format!(
                        "cannot concatenate shape {:?} with {:?}",
                        v.shape, values[0].shape
                    ),
                ));
            }
            shape[a] += v.shape[a];
        }
        let expanded = values[0].expanded;
        let tfl_axis = if o.axis < 0 {
            o.axis
        } else if expanded {
            o.axis + 1
        } else {
            o.axis
        };
        let result = Value {
            tensor: values[0].tensor,
            shape,
            expanded,
            pad: None,
        };
        let out = self.out(call, "concat", &result.tfl_shape());
        let inputs: Vec<_> = values.iter().map(|v| Some(v.tensor)).collect();
        let options = fb::ConcatenationOptionsT {
            axis: tfl_axis as i32,
            ..Default::default()
        };
        self.b.op(
            fb::BuiltinOperator::CONCATENATION,
            1,
            &inputs,
            &[out],
            fb::BuiltinOptionsT::ConcatenationOptions(Box::new(options)),
        );
        Ok(Value {
            tensor: out,
            ..result
        })
    }
}

/// The options TF writes for an element-wise binary op: ADD and SUB with `pot_scale_int16`, MUL's defaults,
/// none for the others (MAXIMUM, MINIMUM).
pub(super) fn binary_options(code: fb::BuiltinOperator) -> fb::BuiltinOptionsT {
    match code {
        fb::BuiltinOperator::ADD => fb::BuiltinOptionsT::AddOptions(Box::new(fb::AddOptionsT {
            pot_scale_int16: true,
            ..Default::default()
        })),
        fb::BuiltinOperator::SUB => fb::BuiltinOptionsT::SubOptions(Box::new(fb::SubOptionsT {
            pot_scale_int16: true,
            ..Default::default()
        })),
        fb::BuiltinOperator::MUL => fb::BuiltinOptionsT::MulOptions(Box::default()),
        _ => fb::BuiltinOptionsT::NONE,
    }
}
