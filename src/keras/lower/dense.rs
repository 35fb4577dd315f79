//! Dense (FULLY_CONNECTED, weights `[O, I]`) and BatchNormalization (folded into the convolution or Dense
//! before it, as TF folds it; MUL and ADD when it stands alone).

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::activation::{folds_batch_norm, Activation, ActivationOption};
use super::conv::permute;
use super::fold::absorb_into_kernel;
use super::{Lowering, Producer, ProducerKind, Value};
use crate::graph::TensorId;
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::keras::weights::Array;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenseOptions {
    units: usize,
    activation: ActivationOption,
    use_bias: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchNormOptions {
    #[serde(default = "last")]
    axis: serde_json::Value,
    #[serde(default)]
    #[allow(dead_code)] // training only
    momentum: IgnoredAny,
    epsilon: f32,
    center: bool,
    scale: bool,
    #[serde(default)]
    synchronized: bool,
    #[serde(default)]
    renorm: bool,
    #[serde(default)]
    #[allow(dead_code)] // training only
    renorm_clipping: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)] // training only
    renorm_momentum: IgnoredAny,
}

fn last() -> serde_json::Value {
    serde_json::Value::from(-1)
}

impl Lowering<'_> {
    /// Dense: FULLY_CONNECTED on the last axis (`keep_num_dims` on inputs of rank 3 and more, as TF writes it).
    pub(super) fn dense(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: DenseOptions = call.options()?;
        let act = Activation::parse(call, o.activation.as_ref())?;
        let input = self.inputs(call, 1)?.remove(0);
        let mut input = self.plain(input, &call.name);
        let mut vars = self.vars(call)?;
        let mut kernel = vars.next("kernel", &[input.shape[input.shape.len() - 1], o.units])?;
        let mut bias = if o.use_bias {
            Some(vars.next("bias", &[o.units])?.data)
        } else {
            None
        };
        vars.finish()?;
        if let Some(affine) = self.absorb_scalar(call, &input) {
            bias = absorb_into_kernel(&mut kernel.data, bias, o.units, &affine);
            input.tensor = affine.input;
        }
        let v = self.fully_connected(call, "MatMul", &input, &kernel, bias.as_deref());
        Ok(self.activate(call, v, act, true))
    }

    /// A FULLY_CONNECTED of `input` with a Keras kernel `[in, out]` (weights written `[out, in]`).
    pub(super) fn fully_connected(
        &mut self,
        call: &LayerCall,
        what: &str,
        input: &Value,
        kernel: &Array,
        bias: Option<&[f32]>,
    ) -> Value {
        let (in_units, units) = (kernel.shape[0], kernel.shape[1]);
        let weights = self.b.constant_f32(
            &format!("{}/{what}/kernel", call.name),
            &[units, in_units],
            &permute(kernel, &[1, 0]),
        );
        let bias = bias.map(|b| {
            self.b
                .constant_f32(&format!("{}/{what}/bias", call.name), &[units], b)
        });
        let mut shape = input.shape.clone();
        let last = shape.len() - 1;
        shape[last] = units;
        let out = self.out(call, what, &shape);
        let options = fb::FullyConnectedOptionsT {
            keep_num_dims: shape.len() > 2,
            ..Default::default()
        };
        let op = self.b.op(
            fb::BuiltinOperator::FULLY_CONNECTED,
            1,
            &[Some(input.tensor), Some(weights), bias],
            &[out],
            fb::BuiltinOptionsT::FullyConnectedOptions(Box::new(options)),
        );
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Dense,
                weights: Some(weights),
                bias,
            },
        );
        Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        }
    }

    /// BatchNormalization over the last axis (inference: moving mean and variance).
    pub(super) fn batch_norm(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: BatchNormOptions = call.options()?;
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if o.synchronized || o.renorm {
            return Err(unsupported("renorm and synchronized are not lowered"));
        }
        let input = self.raw_inputs(call, 1)?.remove(0);
        let rank = input.shape.len() as i64;
        let axis = match &o.axis {
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_i64(),
            v => v.as_i64(),
        };
        if !(axis == Some(-1) || axis == Some(rank - 1)) {
            return Err(unsupported(
                "axis other than the last (channels_last) is not lowered",
            ));
        }
        let channels = input.shape[input.shape.len() - 1];
        let mut vars = self.vars(call)?;
        let gamma = if o.scale {
            Some(vars.next("gamma", &[channels])?.data)
        } else {
            None
        };
        let beta = if o.center {
            Some(vars.next("beta", &[channels])?.data)
        } else {
            None
        };
        let mean = vars.next("moving_mean", &[channels])?.data;
        let variance = vars.next("moving_variance", &[channels])?.data;
        vars.finish()?;
        // tf.nn.batch_normalization: inv = rsqrt(var + eps) * gamma; y = x * inv + (beta - mean * inv).
        let inv: Vec<f32> = (0..channels)
            .map(|c| {
                let r = 1.0 / (variance[c] + o.epsilon).sqrt();
                gamma.as_ref().map_or(r, |g| r * g[c])
            })
            .collect();
        let offset: Vec<f32> = (0..channels)
            .map(|c| beta.as_ref().map_or(0.0, |b| b[c]) - mean[c] * inv[c])
            .collect();
        let producer = self.producers.get(&input.tensor).copied();
        if let (true, None, Some(p)) = (self.sole_reader(call), input.pad, producer) {
            if folds_batch_norm(p.kind) {
                self.fold_batch_norm(call, p, &inv, &offset);
                return Ok(input);
            }
        }
        let input = self.resolve_pad(input, &call.name);
        let shape = input.tfl_shape();
        let scale = self
            .b
            .constant_f32(&format!("{}/mul", call.name), &[channels], &inv);
        let scaled = self.out(call, "mul_1", &shape);
        self.b.op(
            fb::BuiltinOperator::MUL,
            1,
            &[Some(input.tensor), Some(scale)],
            &[scaled],
            fb::BuiltinOptionsT::MulOptions(Box::default()),
        );
        let shift = self
            .b
            .constant_f32(&format!("{}/sub", call.name), &[channels], &offset);
        let out = self.out(call, "add_1", &shape);
        let op = self.b.op(
            fb::BuiltinOperator::ADD,
            1,
            &[Some(scaled), Some(shift)],
            &[out],
            fb::BuiltinOptionsT::AddOptions(Box::new(fb::AddOptionsT {
                pot_scale_int16: true,
                ..Default::default()
            })),
        );
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Elementwise,
                weights: None,
                bias: None,
            },
        );
        Ok(Value {
            tensor: out,
            ..input
        })
    }

    /// Scales the producer's weights per output channel by `inv` and sets its bias to `bias * inv + offset`.
    pub(super) fn fold_batch_norm(
        &mut self,
        call: &LayerCall,
        p: Producer,
        inv: &[f32],
        offset: &[f32],
    ) {
        let channels = inv.len();
        if let Some(w) = p.weights {
            let mut data = self.b.f32_values(w);
            let per = data.len() / channels.max(1);
            for (i, v) in data.iter_mut().enumerate() {
                let c = match p.kind {
                    ProducerKind::Depthwise => i % channels,
                    _ => i / per.max(1),
                };
                *v *= inv[c];
            }
            self.b.set_f32_values(w, &data);
        }
        let old: Vec<f32> = p
            .bias
            .map_or_else(|| vec![0.0; channels], |b| self.b.f32_values(b));
        let folded: Vec<f32> = (0..channels).map(|c| old[c] * inv[c] + offset[c]).collect();
        let bias = match p.bias {
            Some(b) => {
                self.b.set_f32_values(b, &folded);
                b
            }
            None => self.new_bias(call, p, &folded),
        };
        if let Some(entry) = self.producers.values_mut().find(|q| q.op == p.op) {
            entry.bias = Some(bias);
        }
    }

    /// Adds a bias operand to a producer that had none.
    fn new_bias(&mut self, call: &LayerCall, p: Producer, values: &[f32]) -> TensorId {
        let bias = self
            .b
            .constant_f32(&format!("{}/bias", call.name), &[values.len()], values);
        let slot = match self.b.graph.op_code(p.op) {
            fb::BuiltinOperator::TRANSPOSE_CONV => 3,
            _ => 2,
        };
        if let Some(inputs) = self.b.graph.op_mut(p.op).inputs.as_mut() {
            if inputs.len() <= slot {
                inputs.resize(slot + 1, -1);
            }
            inputs[slot] = bias.0 as i32;
        }
        bias
    }
}
