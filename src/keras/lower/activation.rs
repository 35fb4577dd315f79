//! Activations: fused into the op before them where TF fuses them (RELU, RELU6), else their own op; the
//! InputLayer and the layers that are the identity at inference.

use serde::Deserialize;
use serde_json::Value as Json;

use super::{Lowering, ProducerKind, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

/// A Keras activation litequant lowers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `linear` / `None`: nothing.
    Linear,
    /// `relu`: fused RELU or a RELU op.
    Relu,
    /// `relu6` or `ReLU(max_value=6)`: fused RELU6 or a RELU6 op.
    Relu6,
    /// `sigmoid`: LOGISTIC.
    Sigmoid,
    /// `tanh`: TANH.
    Tanh,
    /// `softmax` on the last axis: SOFTMAX.
    Softmax,
    /// `gelu` (exact, Keras' default): GELU with `approximate = false`.
    Gelu,
}

impl Activation {
    /// Parses an `activation` option: a name, or Keras' serialized function object.
    pub fn parse(call: &LayerCall, v: Option<&Json>) -> Result<Activation, KerasErrorKind> {
        let name = match v {
            None | Some(Json::Null) => "linear",
            Some(Json::String(s)) => s.as_str(),
            Some(Json::Object(m)) => m
                .get("config")
                .and_then(Json::as_str)
                .or_else(|| m.get("class_name").and_then(Json::as_str))
                .unwrap_or(""),
            Some(_) => "",
        };
        match name {
            "linear" => Ok(Activation::Linear),
            "relu" => Ok(Activation::Relu),
            "relu6" => Ok(Activation::Relu6),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            "softmax" => Ok(Activation::Softmax),
            "gelu" => Ok(Activation::Gelu),
            other => Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                format!("activation {other:?} is not lowered (linear, relu, relu6, sigmoid, tanh, softmax, gelu are)"),
            )),
        }
    }

    fn fused(self) -> Option<fb::ActivationFunctionType> {
        match self {
            Activation::Relu => Some(fb::ActivationFunctionType::RELU),
            Activation::Relu6 => Some(fb::ActivationFunctionType::RELU6),
            _ => None,
        }
    }
}

/// The `activation` option parsed by serde (the value is checked by [`Activation::parse`]).
pub type ActivationOption = Option<Json>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationOptions {
    activation: ActivationOption,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReluOptions {
    max_value: Option<f32>,
    #[serde(default)]
    negative_slope: f32,
    #[serde(default)]
    threshold: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftmaxOptions {
    #[serde(default = "last_axis")]
    axis: AxisOption,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AxisOption {
    One(i64),
    Many(Vec<i64>),
}

fn last_axis() -> AxisOption {
    AxisOption::One(-1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputOptions {
    #[serde(alias = "batch_input_shape")]
    batch_shape: Vec<Option<usize>>,
    #[serde(default)]
    sparse: bool,
    #[serde(default)]
    ragged: bool,
    #[serde(default)]
    optional: bool,
}

impl Lowering<'_> {
    /// An InputLayer: a float32 input tensor, batch 1.
    pub(super) fn input_layer(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: InputOptions = call.options()?;
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if o.sparse || o.ragged || o.optional {
            return Err(unsupported(
                "sparse, ragged and optional inputs are not lowered",
            ));
        }
        let mut shape = Vec::with_capacity(o.batch_shape.len());
        for (i, d) in o.batch_shape.iter().enumerate() {
            match (i, d) {
                (0, _) => shape.push(1),
                (_, Some(d)) => shape.push(*d),
                (_, None) => {
                    return Err(unsupported(&format!(
                    "dimension {i} of batch_shape is unknown (None); litequant needs fixed shapes"
                )))
                }
            }
        }
        let tensor = self
            .b
            .activation(&format!("serving_default_{}:0", call.name), &shape);
        Ok(Value {
            tensor,
            shape,
            expanded: false,
            pad: None,
        })
    }

    /// Dropout and noise layers: the identity at inference.
    pub(super) fn identity(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        // Their options (rate, noise_shape, seed, stddev) only act in training.
        Ok(self.raw_inputs(call, 1)?.remove(0))
    }

    /// `Activation`, `ReLU` and `Softmax` layers.
    pub(super) fn activation_layer(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let act = match call.class.as_str() {
            "Activation" => {
                let o: ActivationOptions = call.options()?;
                Activation::parse(call, o.activation.as_ref())?
            }
            "ReLU" => {
                let o: ReluOptions = call.options()?;
                match (o.max_value, o.negative_slope, o.threshold) {
                    (None, s, t) if s == 0.0 && t == 0.0 => Activation::Relu,
                    (Some(m), s, t) if m == 6.0 && s == 0.0 && t == 0.0 => Activation::Relu6,
                    _ => {
                        return Err(KerasErrorKind::unsupported(
                            &call.name,
                            &call.class,
                            "ReLU with negative_slope, threshold or a max_value other than 6",
                        ))
                    }
                }
            }
            _ => {
                let o: SoftmaxOptions = call.options()?;
                let rank = self.raw_inputs(call, 1)?[0].shape.len() as i64;
                match o.axis {
                    AxisOption::One(a) if a == -1 || a == rank - 1 => Activation::Softmax,
                    AxisOption::Many(v) if v.len() == 1 && (v[0] == -1 || v[0] == rank - 1) => {
                        Activation::Softmax
                    }
                    _ => {
                        return Err(KerasErrorKind::unsupported(
                            &call.name,
                            &call.class,
                            "softmax over an axis other than the last",
                        ))
                    }
                }
            }
        };
        let fusable = self.sole_reader(call);
        let input = self.inputs(call, 1)?.remove(0);
        Ok(self.activate(call, input, act, fusable))
    }

    /// Applies an activation to `v`: fused into its producer when `fusable` and the producer takes it, else
    /// as an op of its own.
    pub(super) fn activate(
        &mut self,
        call: &LayerCall,
        v: Value,
        act: Activation,
        fusable: bool,
    ) -> Value {
        if act == Activation::Linear {
            return v;
        }
        if let (true, Some(fused), Some(p)) = (fusable, act.fused(), self.producers.get(&v.tensor))
        {
            let op = p.op;
            if set_fused(&mut self.b.graph.op_mut(op).builtin_options, fused) {
                self.producers.remove(&v.tensor);
                return v;
            }
        }
        let (code, name) = match act {
            Activation::Relu => (fb::BuiltinOperator::RELU, "Relu"),
            Activation::Relu6 => (fb::BuiltinOperator::RELU6, "Relu6"),
            Activation::Sigmoid => (fb::BuiltinOperator::LOGISTIC, "Sigmoid"),
            Activation::Tanh => (fb::BuiltinOperator::TANH, "Tanh"),
            Activation::Gelu => (fb::BuiltinOperator::GELU, "Gelu"),
            Activation::Softmax | Activation::Linear => (fb::BuiltinOperator::SOFTMAX, "Softmax"),
        };
        let v = if act == Activation::Softmax {
            self.plain(v, &call.name)
        } else {
            v
        };
        let out = self.out(call, name, &v.tfl_shape());
        let options = match act {
            Activation::Softmax => {
                fb::BuiltinOptionsT::SoftmaxOptions(Box::new(fb::SoftmaxOptionsT { beta: 1.0 }))
            }
            Activation::Gelu => fb::BuiltinOptionsT::GeluOptions(Box::default()),
            _ => fb::BuiltinOptionsT::NONE,
        };
        self.b.op(code, 1, &[Some(v.tensor)], &[out], options);
        Value { tensor: out, ..v }
    }
}

/// Sets the fused activation of an op whose options have one and hold none yet; whether it did.
fn set_fused(options: &mut fb::BuiltinOptionsT, act: fb::ActivationFunctionType) -> bool {
    let slot = match options {
        fb::BuiltinOptionsT::Conv2DOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::DepthwiseConv2DOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::FullyConnectedOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::TransposeConvOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::AddOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::SubOptions(o) => &mut o.fused_activation_function,
        fb::BuiltinOptionsT::MulOptions(o) => &mut o.fused_activation_function,
        _ => return false,
    };
    if *slot != fb::ActivationFunctionType::NONE {
        return false;
    }
    *slot = act;
    true
}

/// Whether a producer kind is one BatchNormalization folds into.
pub(super) fn folds_batch_norm(kind: ProducerKind) -> bool {
    kind != ProducerKind::Elementwise
}
