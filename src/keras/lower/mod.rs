//! Lowering the Keras layer graph to the float32 TFLite graph TF's converter writes for it.
//!
//! Layers are lowered in config order. Each Keras tensor becomes a [`Value`]; what TF's converter fuses is
//! fused here the same way: an activation into the op before it, BatchNormalization into the preceding
//! convolution or Dense, ZeroPadding2D into a following `valid` convolution when it equals `same` padding,
//! and a 1-D layer's tensors stay in the `[1, 1, W, C]` layout of the CONV_2D that implements Conv1D until a
//! layer needs the 3-D tensor.

mod activation;
mod attention;
mod builder;
mod conv;
mod dense;
mod fold;
mod merge;
mod norm;
mod pool;
mod preprocess;
mod recurrent;
mod recurrent_loop;
mod resize;
mod shape;

use std::collections::HashMap;

use super::config::{LayerCall, ModelConfig, TensorRef};
use super::error::KerasErrorKind;
use super::weights::{VarList, Weights};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::fb;
use builder::Builder;

/// A Keras tensor in the graph being built.
#[derive(Debug, Clone)]
pub struct Value {
    /// The TFLite tensor holding it.
    pub tensor: TensorId,
    /// The Keras shape, batch 1.
    pub shape: Vec<usize>,
    /// A rank-3 Keras tensor `[1, W, C]` held as `[1, 1, W, C]` (the layout of Conv1D's CONV_2D).
    pub expanded: bool,
    /// ZeroPadding2D not yet written: `[[top, bottom], [left, right]]` around `tensor`.
    pub pad: Option<[[usize; 2]; 2]>,
}

impl Value {
    /// The TFLite tensor's shape.
    pub fn tfl_shape(&self) -> Vec<usize> {
        if self.expanded {
            let mut s = self.shape.clone();
            s.insert(1, 1);
            s
        } else {
            self.shape.clone()
        }
    }
}

/// What produced a tensor, for the fusions that rewrite the producing op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerKind {
    /// CONV_2D or TRANSPOSE_CONV: weights `[O, ...]`.
    Conv,
    /// DEPTHWISE_CONV_2D: weights `[1, H, W, C]`.
    Depthwise,
    /// FULLY_CONNECTED: weights `[O, I]`.
    Dense,
    /// ADD, SUB or MUL (an activation fuses, nothing folds).
    Elementwise,
}

/// The op behind a tensor and its constants.
#[derive(Debug, Clone, Copy)]
pub struct Producer {
    op: OpIndex,
    kind: ProducerKind,
    weights: Option<TensorId>,
    bias: Option<TensorId>,
}

/// The state of one lowering.
pub struct Lowering<'w> {
    b: Builder,
    weights: &'w Weights,
    values: HashMap<TensorRef, Value>,
    /// How many layer calls (and model outputs) read each Keras tensor.
    readers: HashMap<TensorRef, usize>,
    producers: HashMap<TensorId, Producer>,
    /// Reshaped copies already written: (tensor, expanded?) -> tensor.
    layouts: HashMap<(TensorId, bool), TensorId>,
    /// Each layer's key in the weights file.
    weight_keys: HashMap<String, String>,
    /// Scalar affines a following Dense or convolution may absorb, by output tensor.
    scalars: HashMap<TensorId, fold::ScalarAffine>,
    /// Recurrent layers' step sequences `[1, T, U]`: the time-major list `[T, 1, U]` and the RESHAPE between
    /// them, which a following recurrent layer reading the list directly takes out again (as TF does).
    sequences: HashMap<TensorId, (TensorId, OpIndex)>,
    /// The model was saved by Keras 2 / tf_keras (TF fuses its LSTM).
    tf_keras: bool,
}

/// Lowers a parsed model with its weights to a float graph.
pub fn lower(model: &ModelConfig, weights: &Weights) -> Result<Graph, KerasErrorKind> {
    let mut readers: HashMap<TensorRef, usize> = HashMap::new();
    for r in model
        .calls
        .iter()
        .flat_map(|c| &c.inputs)
        .chain(model.outputs.iter().map(|(_, r)| r))
    {
        *readers.entry(r.clone()).or_default() += 1;
    }
    let mut l = Lowering {
        b: Builder::new(),
        weights,
        values: HashMap::new(),
        readers,
        producers: HashMap::new(),
        layouts: HashMap::new(),
        scalars: HashMap::new(),
        sequences: HashMap::new(),
        weight_keys: super::weights::layer_keys(
            model
                .calls
                .iter()
                .filter(|c| !model.nested_keys.contains_key(&c.name))
                .map(|c| (c.name.as_str(), c.class.as_str())),
        ),
        tf_keras: model.tf_keras,
    };
    l.weight_keys.extend(model.nested_keys.clone());
    let mut inputs = Vec::new();
    for call in &model.calls {
        let out = l.layer(call)?;
        if call.class == "InputLayer" {
            inputs.push((call.name.clone(), out.tensor));
        }
        l.values.insert(
            TensorRef {
                layer: call.name.clone(),
                node: call.node,
                index: 0,
            },
            out,
        );
    }
    // The subgraph's inputs in the model's order.
    let mut ordered_inputs = Vec::new();
    for r in &model.inputs {
        let found = inputs.iter().find(|(name, _)| *name == r.layer).cloned();
        ordered_inputs.push(found.ok_or_else(|| {
            KerasErrorKind::graph(&r.layer, "listed as a model input but is not an InputLayer")
        })?);
    }
    let mut outputs = Vec::new();
    for (i, (name, r)) in model.outputs.iter().enumerate() {
        let v = l.value(r, &r.layer)?;
        let v = l.plain(v, &r.layer);
        let t = l.b.graph.tensor_mut(v.tensor);
        t.name = Some(format!("StatefulPartitionedCall:{i}"));
        outputs.push((name.clone(), v.tensor));
    }
    Ok(l.b.finish(&ordered_inputs, &outputs))
}

impl Lowering<'_> {
    /// Lowers one layer call and returns its (single) output.
    fn layer(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        match call.class.as_str() {
            "InputLayer" => self.input_layer(call),
            "Dense" => self.dense(call),
            "Conv1D" | "Conv2D" => self.conv(call),
            "DepthwiseConv2D" => self.depthwise(call),
            "SeparableConv2D" => self.separable(call),
            "Conv2DTranspose" => self.conv_transpose(call),
            "BatchNormalization" => self.batch_norm(call),
            "LayerNormalization" => self.layer_norm(call),
            "MultiHeadAttention" => self.attention(call),
            "Activation" | "ReLU" | "Softmax" | "LeakyReLU" | "ELU" => self.activation_layer(call),
            "PReLU" => self.prelu(call),
            "MaxPooling1D" | "MaxPooling2D" | "AveragePooling1D" | "AveragePooling2D" => {
                self.pool(call)
            }
            "GlobalAveragePooling1D"
            | "GlobalAveragePooling2D"
            | "GlobalMaxPooling1D"
            | "GlobalMaxPooling2D" => self.global_pool(call),
            "Add" | "Subtract" | "Multiply" | "Maximum" | "Minimum" | "Average" => self.merge(call),
            "Concatenate" => self.concatenate(call),
            "Flatten" => self.flatten(call),
            "Reshape" => self.reshape(call),
            "ZeroPadding2D" => self.zero_padding(call),
            "ZeroPadding1D" => self.zero_padding_1d(call),
            "Cropping1D" | "Cropping2D" => self.cropping(call),
            "Permute" => self.permute(call),
            "UpSampling2D" => self.upsampling(call),
            "Rescaling" => self.rescaling(call),
            "Normalization" => self.normalization(call),
            "Embedding" => self.embedding(call),
            "Dropout" | "SpatialDropout1D" | "SpatialDropout2D" | "GaussianNoise"
            | "GaussianDropout" | "AlphaDropout" | "SpatialDropout3D" | "Identity" => {
                self.identity(call)
            }
            "LSTM" | "GRU" => self.recurrent(call),
            "SimpleRNN" | "Bidirectional" | "RNN" => Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                "recurrent layers are not lowered yet",
            )),
            _ => Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                "this layer class is not lowered",
            )),
        }
    }

    /// The value of a Keras tensor read by `layer`.
    fn value(&self, r: &TensorRef, layer: &str) -> Result<Value, KerasErrorKind> {
        self.values.get(r).cloned().ok_or_else(|| {
            KerasErrorKind::graph(
                layer,
                format!(
                    "reads output {} of call {} of `{}`, which no earlier layer produces",
                    r.index, r.node, r.layer
                ),
            )
        })
    }

    /// The `n` inputs of a call, padding written out (every layer but the convolutions wants that).
    fn inputs(&mut self, call: &LayerCall, n: usize) -> Result<Vec<Value>, KerasErrorKind> {
        let values = self.raw_inputs(call, n)?;
        Ok(values
            .into_iter()
            .map(|v| self.resolve_pad(v, &call.name))
            .collect())
    }

    /// The inputs as they are (a pending ZeroPadding2D included); `n == 0` means any number above one.
    fn raw_inputs(&self, call: &LayerCall, n: usize) -> Result<Vec<Value>, KerasErrorKind> {
        let count_ok = if n == 0 {
            call.inputs.len() >= 2
        } else {
            call.inputs.len() == n
        };
        if !count_ok {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!(
                    "reads {} tensors, a {} reads {}",
                    call.inputs.len(),
                    call.class,
                    if n == 0 {
                        "two or more".to_string()
                    } else {
                        n.to_string()
                    }
                ),
            ));
        }
        call.inputs
            .iter()
            .map(|r| self.value(r, &call.name))
            .collect()
    }

    /// Whether the call's only input is read by this call alone (so its producer may be rewritten).
    fn sole_reader(&self, call: &LayerCall) -> bool {
        call.inputs.len() == 1 && self.readers.get(&call.inputs[0]).copied() == Some(1)
    }

    /// The layer's weights, checked in order by the caller.
    fn vars(&self, call: &LayerCall) -> Result<VarList, KerasErrorKind> {
        self.vars_under(call, &[])
    }

    /// The layer's weights, under its key followed by the groups `inner` (a recurrent layer's `cell`).
    fn vars_under(&self, call: &LayerCall, inner: &[&str]) -> Result<VarList, KerasErrorKind> {
        let key = self
            .weight_keys
            .get(&call.name)
            .map_or(call.name.as_str(), String::as_str);
        let path: Vec<&str> = std::iter::once(key).chain(inner.iter().copied()).collect();
        Ok(VarList::new(
            &call.name,
            self.weights.vars(&call.name, &path)?,
        ))
    }

    /// The op appended last.
    fn last_op(&self) -> OpIndex {
        OpIndex(self.b.graph.ops().len().saturating_sub(1))
    }

    /// A float tensor named after the layer.
    fn out(&mut self, call: &LayerCall, what: &str, shape: &[usize]) -> TensorId {
        self.b.activation(&format!("{}/{what}", call.name), shape)
    }

    /// The value in the plain (not expanded) layout.
    fn plain(&mut self, v: Value, layer: &str) -> Value {
        let v = self.resolve_pad(v, layer);
        if !v.expanded {
            return v;
        }
        let tensor = self.relayout(&v, false, layer);
        Value {
            tensor,
            expanded: false,
            ..v
        }
    }

    /// A rank-3 value in the expanded `[1, 1, W, C]` layout.
    fn expanded(&mut self, v: Value, layer: &str) -> Value {
        let v = self.resolve_pad(v, layer);
        if v.expanded {
            return v;
        }
        let tensor = self.relayout(&v, true, layer);
        Value {
            tensor,
            expanded: true,
            ..v
        }
    }

    /// A RESHAPE between the two layouts (written once per tensor and layout).
    fn relayout(&mut self, v: &Value, expand: bool, layer: &str) -> TensorId {
        if let Some(&t) = self.layouts.get(&(v.tensor, expand)) {
            return t;
        }
        let target = Value {
            expanded: expand,
            ..v.clone()
        }
        .tfl_shape();
        let what = if expand { "ExpandDims" } else { "Squeeze" };
        let shape = self.b.constant_i32(
            &format!("{layer}/{what}/shape"),
            &[target.len()],
            &builder::dims(&target),
        );
        let out = self.b.activation(&format!("{layer}/{what}"), &target);
        self.b.op(
            fb::BuiltinOperator::RESHAPE,
            1,
            &[Some(v.tensor), Some(shape)],
            &[out],
            fb::BuiltinOptionsT::NONE,
        );
        self.layouts.insert((v.tensor, expand), out);
        out
    }
}

/// The TFLite padding of a Keras `padding` option.
fn padding(call: &LayerCall, padding: &str) -> Result<fb::Padding, KerasErrorKind> {
    match padding {
        "same" => Ok(fb::Padding::SAME),
        "valid" => Ok(fb::Padding::VALID),
        other => Err(KerasErrorKind::unsupported(
            &call.name,
            &call.class,
            format!("padding = \"{other}\" (only \"same\" and \"valid\")"),
        )),
    }
}

/// Checks `data_format` is channels_last (the only layout TFLite ops take).
fn channels_last(call: &LayerCall, data_format: Option<&str>) -> Result<(), KerasErrorKind> {
    match data_format {
        None | Some("channels_last") => Ok(()),
        Some(other) => Err(KerasErrorKind::unsupported(
            &call.name,
            &call.class,
            format!("data_format = \"{other}\" (only \"channels_last\")"),
        )),
    }
}

/// Output length of a convolution or pooling window along one axis.
fn window_out(
    input: usize,
    window: usize,
    stride: usize,
    dilation: usize,
    pad: fb::Padding,
) -> usize {
    let effective = (window - 1) * dilation + 1;
    let stride = stride.max(1);
    if pad == fb::Padding::SAME {
        input.div_ceil(stride)
    } else {
        (input + stride).saturating_sub(effective) / stride
    }
}
