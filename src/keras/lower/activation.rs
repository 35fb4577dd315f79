//! Activations: fused into the op before them where TF fuses them (RELU, RELU6), else their own op (or TF's
//! few-op pattern: swish as LOGISTIC and MUL, hard_sigmoid as ADD 3 with RELU6 and MUL 1/6); the activation
//! layers (ReLU, LeakyReLU, ELU, PReLU, Softmax); the InputLayer and the layers that are the identity at
//! inference.

use serde::Deserialize;
use serde_json::Value as Json;

use super::fold::ScalarAffine;
use super::{Lowering, ProducerKind, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

/// A Keras activation litequant lowers.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// `leaky_relu` (slope 0.2) or a LeakyReLU layer: LEAKY_RELU.
    LeakyRelu(f32),
    /// `elu` (alpha 1): ELU.
    Elu,
    /// `hard_sigmoid`: `relu6(x + 3) / 6`, as ADD (RELU6 fused, or the 3 folded into the bias before it) and MUL.
    HardSigmoid,
    /// `hard_silu` / `hard_swish`: HARD_SWISH.
    HardSwish,
    /// `silu` / `swish`: LOGISTIC, then MUL by the input.
    Swish,
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
            "leaky_relu" => Ok(Activation::LeakyRelu(0.2)),
            "elu" => Ok(Activation::Elu),
            "hard_sigmoid" => Ok(Activation::HardSigmoid),
            "hard_silu" | "hard_swish" => Ok(Activation::HardSwish),
            "silu" | "swish" => Ok(Activation::Swish),
            other => Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                format!(
                    "activation {other:?} is not lowered (linear, relu, relu6, sigmoid, tanh, softmax, gelu, \
                     leaky_relu, elu, hard_sigmoid, hard_silu, silu are)"
                ),
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
struct LeakyReluOptions {
    /// Keras 3 writes `negative_slope`, Keras 2 `alpha`.
    #[serde(alias = "alpha", default = "leaky_default")]
    negative_slope: f32,
}

fn leaky_default() -> f32 {
    0.3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EluOptions {
    #[serde(default = "unit")]
    alpha: f32,
}

fn unit() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PReluOptions {
    #[serde(default)]
    shared_axes: Option<Vec<i64>>,
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
        let type_ = input_type(call)?;
        let tensor = self
            .b
            .computed(&format!("serving_default_{}:0", call.name), &shape, type_);
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

    /// `Activation`, `ReLU`, `LeakyReLU`, `ELU` and `Softmax` layers.
    pub(super) fn activation_layer(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let act = match call.class.as_str() {
            "LeakyReLU" => {
                let o: LeakyReluOptions = call.options()?;
                Activation::LeakyRelu(o.negative_slope)
            }
            "ELU" => {
                let o: EluOptions = call.options()?;
                if o.alpha != 1.0 {
                    let input = self.inputs(call, 1)?.remove(0);
                    return Ok(self.scaled_elu(call, input, o.alpha));
                }
                Activation::Elu
            }
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
                self.scalars.remove(&v.tensor);
                return v;
            }
        }
        match act {
            Activation::Swish => return self.swish(call, v),
            Activation::HardSigmoid => return self.hard_sigmoid(call, v, fusable),
            _ => {}
        }
        let (code, name) = match act {
            Activation::Relu => (fb::BuiltinOperator::RELU, "Relu"),
            Activation::Relu6 => (fb::BuiltinOperator::RELU6, "Relu6"),
            Activation::Sigmoid => (fb::BuiltinOperator::LOGISTIC, "Sigmoid"),
            Activation::Tanh => (fb::BuiltinOperator::TANH, "Tanh"),
            Activation::Gelu => (fb::BuiltinOperator::GELU, "Gelu"),
            Activation::LeakyRelu(_) => (fb::BuiltinOperator::LEAKY_RELU, "LeakyRelu"),
            Activation::Elu => (fb::BuiltinOperator::ELU, "Elu"),
            Activation::HardSwish => (fb::BuiltinOperator::HARD_SWISH, "HardSwish"),
            _ => (fb::BuiltinOperator::SOFTMAX, "Softmax"),
        };
        let v = if act == Activation::Softmax {
            self.plain(v, &call.name)
        } else {
            v
        };
        let options = match act {
            Activation::Softmax => {
                fb::BuiltinOptionsT::SoftmaxOptions(Box::new(fb::SoftmaxOptionsT { beta: 1.0 }))
            }
            Activation::Gelu => fb::BuiltinOptionsT::GeluOptions(Box::default()),
            Activation::LeakyRelu(alpha) => {
                fb::BuiltinOptionsT::LeakyReluOptions(Box::new(fb::LeakyReluOptionsT { alpha }))
            }
            _ => fb::BuiltinOptionsT::NONE,
        };
        let out = self.emit(call, code, name, &[v.tensor], &v.tfl_shape(), options);
        Value { tensor: out, ..v }
    }

    /// ELU with `alpha != 1`, as TF writes `where(x > 0, elu(x), alpha * elu(x))`: ELU, MUL, GREATER,
    /// SELECT.
    fn scaled_elu(&mut self, call: &LayerCall, v: Value, alpha: f32) -> Value {
        use fb::BuiltinOperator as Op;
        let shape = v.tfl_shape();
        let none = || fb::BuiltinOptionsT::NONE;
        let elu = self.emit(call, Op::ELU, "Elu", &[v.tensor], &shape, none());
        let a = self
            .b
            .constant_f32(&format!("{}/mul/x", call.name), &[], &[alpha]);
        let scaled = self.emit(
            call,
            Op::MUL,
            "mul",
            &[elu, a],
            &shape,
            fb::BuiltinOptionsT::MulOptions(Box::default()),
        );
        let zero = self
            .b
            .constant_f32(&format!("{}/Greater/y", call.name), &[], &[0.0]);
        let positive = self.b.computed(
            &format!("{}/Greater", call.name),
            &shape,
            fb::TensorType::BOOL,
        );
        self.b.op(
            Op::GREATER,
            1,
            &[Some(v.tensor), Some(zero)],
            &[positive],
            none(),
        );
        let out = self.emit(
            call,
            Op::SELECT,
            "SelectV2",
            &[positive, elu, scaled],
            &shape,
            fb::BuiltinOptionsT::SelectOptions(Box::default()),
        );
        Value { tensor: out, ..v }
    }

    /// PReLU: PRELU with the layer's alpha as TF writes it (the Keras shape, 1 on the shared axes).
    pub(super) fn prelu(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: PReluOptions = call.options()?;
        let input = self.inputs(call, 1)?.remove(0);
        let v = self.plain(input, &call.name);
        let mut alpha_shape = v.shape[1..].to_vec();
        for &axis in o.shared_axes.iter().flatten() {
            let i = usize::try_from(axis - 1)
                .ok()
                .filter(|&i| i < alpha_shape.len())
                .ok_or_else(|| {
                    KerasErrorKind::unsupported(
                        &call.name,
                        &call.class,
                        format!("shared_axes entry {axis}"),
                    )
                })?;
            alpha_shape[i] = 1;
        }
        let mut vars = self.vars(call)?;
        let alpha = vars.next("alpha", &alpha_shape)?;
        vars.finish()?;
        let alpha = self
            .b
            .constant_f32(&format!("{}/alpha", call.name), &alpha_shape, &alpha.data);
        let out = self.emit(
            call,
            fb::BuiltinOperator::PRELU,
            "PRelu",
            &[v.tensor, alpha],
            &v.shape,
            fb::BuiltinOptionsT::NONE,
        );
        Ok(Value { tensor: out, ..v })
    }

    /// swish / silu: `x * sigmoid(x)` as LOGISTIC and MUL.
    fn swish(&mut self, call: &LayerCall, v: Value) -> Value {
        let shape = v.tfl_shape();
        let sigmoid = self.emit(
            call,
            fb::BuiltinOperator::LOGISTIC,
            "Sigmoid",
            &[v.tensor],
            &shape,
            fb::BuiltinOptionsT::NONE,
        );
        let out = self.emit(
            call,
            fb::BuiltinOperator::MUL,
            "mul_1",
            &[v.tensor, sigmoid],
            &shape,
            fb::BuiltinOptionsT::MulOptions(Box::default()),
        );
        Value { tensor: out, ..v }
    }

    /// hard_sigmoid: `relu6(x + 3) * (1 / 6)`. TF folds the `+ 3` into the bias of a convolution or Dense
    /// before it (fusing RELU6 there); otherwise it is an ADD with RELU6 fused.
    fn hard_sigmoid(&mut self, call: &LayerCall, v: Value, fusable: bool) -> Value {
        let shape = v.tfl_shape();
        let producer = self.producers.get(&v.tensor).copied();
        let folded = match producer {
            Some(p) if fusable && folds_batch_norm(p.kind) => {
                let channels = shape[shape.len() - 1];
                let fused = set_fused(
                    &mut self.b.graph.op_mut(p.op).builtin_options,
                    fb::ActivationFunctionType::RELU6,
                );
                if fused {
                    self.fold_batch_norm(call, p, &vec![1.0; channels], &vec![3.0; channels]);
                    self.producers.remove(&v.tensor);
                }
                fused
            }
            _ => false,
        };
        let x = if folded {
            v.tensor
        } else {
            let three = self
                .b
                .constant_f32(&format!("{}/add/y", call.name), &[], &[3.0]);
            let options = fb::AddOptionsT {
                fused_activation_function: fb::ActivationFunctionType::RELU6,
                pot_scale_int16: true,
            };
            self.emit(
                call,
                fb::BuiltinOperator::ADD,
                "Relu6",
                &[v.tensor, three],
                &shape,
                fb::BuiltinOptionsT::AddOptions(Box::new(options)),
            )
        };
        let sixth = self
            .b
            .constant_f32(&format!("{}/truediv/y", call.name), &[], &[1.0 / 6.0]);
        let out = self.emit(
            call,
            fb::BuiltinOperator::MUL,
            "truediv",
            &[x, sixth],
            &shape,
            fb::BuiltinOptionsT::MulOptions(Box::default()),
        );
        let mul = self.last_op();
        self.scalars.insert(
            out,
            ScalarAffine {
                input: x,
                scale: 1.0 / 6.0,
                offset: 0.0,
                ops: vec![mul],
            },
        );
        Value { tensor: out, ..v }
    }
}

/// An InputLayer's tensor type from its `dtype` (a name, or a dtype policy): float32, or int32 for ids.
fn input_type(call: &LayerCall) -> Result<fb::TensorType, KerasErrorKind> {
    let dtype = match call.config.get("dtype") {
        None | Some(Json::Null) => "float32",
        Some(Json::String(s)) => s.as_str(),
        Some(policy) => policy
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Json::as_str)
            .unwrap_or(""),
    };
    match dtype {
        "float32" => Ok(fb::TensorType::FLOAT32),
        "int32" => Ok(fb::TensorType::INT32),
        other => Err(KerasErrorKind::unsupported(
            &call.name,
            &call.class,
            format!("dtype {other:?} (float32 inputs, or int32 ids)"),
        )),
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
