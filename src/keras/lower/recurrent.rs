//! Recurrent layers as TF's converter writes them: a tf_keras LSTM as one fused `UNIDIRECTIONAL_SEQUENCE_LSTM`
//! (the Keras kernel split into four gate matrices, two variable state tensors); a Keras 3 GRU or LSTM as a
//! WHILE loop over the time steps (see [`super::recurrent_loop`]).

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::activation::{Activation, ActivationOption};
use super::{Lowering, Value};
use crate::graph::TensorId;
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::keras::weights::{Array, VarList};
use crate::tflite::fb;

/// The options of LSTM and GRU (tf_keras' and Keras 3's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the IgnoredAny fields: initialization, training or backend choices
pub(super) struct RecurrentOptions {
    pub units: usize,
    pub activation: ActivationOption,
    pub recurrent_activation: ActivationOption,
    pub use_bias: bool,
    #[serde(default)]
    pub return_sequences: bool,
    #[serde(default)]
    pub return_state: bool,
    #[serde(default)]
    pub go_backwards: bool,
    #[serde(default)]
    pub stateful: bool,
    #[serde(default)]
    pub unroll: bool,
    #[serde(default)]
    pub time_major: bool,
    /// GRU only: the recurrent bias added after the reset gate (Keras' default) or before.
    #[serde(default)]
    pub reset_after: Option<bool>,
    #[serde(default)]
    unit_forget_bias: IgnoredAny,
    #[serde(default)]
    dropout: IgnoredAny,
    #[serde(default)]
    recurrent_dropout: IgnoredAny,
    #[serde(default)]
    implementation: IgnoredAny,
    #[serde(default)]
    zero_output_for_mask: IgnoredAny,
    #[serde(default)]
    use_cudnn: IgnoredAny,
}

/// A recurrent layer's parsed call: options, input `[1, T, F]` and Keras weights.
pub(super) struct Recurrent {
    pub o: RecurrentOptions,
    pub input: Value,
    /// `[F, G * U]`, gates side by side (LSTM: i, f, c, o; GRU: z, r, h).
    pub kernel: Array,
    /// `[U, G * U]`.
    pub recurrent: Array,
    /// `[G * U]` (GRU with `reset_after`: `[2, G * U]`, input bias then recurrent bias), zeros without bias.
    pub bias: Array,
}

impl Lowering<'_> {
    /// LSTM and GRU.
    pub(super) fn recurrent(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let gates = if call.class == "LSTM" { 4 } else { 3 };
        let r = self.recurrent_call(call, gates)?;
        if call.class == "LSTM" && self.tf_keras {
            Ok(self.fused_lstm(call, &r))
        } else {
            self.recurrent_loop(call, &r)
        }
    }

    /// Parses and checks the options, the input and the weights.
    fn recurrent_call(
        &mut self,
        call: &LayerCall,
        gates: usize,
    ) -> Result<Recurrent, KerasErrorKind> {
        let o: RecurrentOptions = call.options()?;
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        let options = [
            (o.return_state, "return_state"),
            (o.go_backwards, "go_backwards"),
            (o.stateful, "stateful"),
            (o.unroll, "unroll"),
            (o.time_major, "time_major"),
        ];
        if let Some((_, name)) = options.iter().find(|(on, _)| *on) {
            return Err(unsupported(&format!("{name} = true is not lowered")));
        }
        let act = Activation::parse(call, o.activation.as_ref())?;
        let rec = Activation::parse(call, o.recurrent_activation.as_ref())?;
        if act != Activation::Tanh || rec != Activation::Sigmoid {
            return Err(unsupported(
                "only activation \"tanh\" with recurrent_activation \"sigmoid\" is lowered",
            ));
        }
        let input = self.inputs(call, 1)?.remove(0);
        let input = self.plain(input, &call.name);
        if input.shape.len() != 3 {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!(
                    "reads a tensor of shape {:?}, a recurrent layer reads [batch, time, features]",
                    input.shape
                ),
            ));
        }
        let (features, u) = (input.shape[2], o.units);
        let reset_after = call.class == "GRU" && o.reset_after.unwrap_or(true);
        let mut vars = self.recurrent_vars(call)?;
        let kernel = vars.next("kernel", &[features, gates * u])?;
        let recurrent = vars.next("recurrent_kernel", &[u, gates * u])?;
        let bias_shape = if reset_after {
            vec![2, gates * u]
        } else {
            vec![gates * u]
        };
        let bias = if o.use_bias {
            vars.next("bias", &bias_shape)?
        } else {
            Array {
                data: vec![0.0; bias_shape.iter().product()],
                shape: bias_shape,
            }
        };
        vars.finish()?;
        Ok(Recurrent {
            o,
            input,
            kernel,
            recurrent,
            bias,
        })
    }

    /// The weights of a recurrent layer: Keras 3 keeps them in the layer's `cell`.
    fn recurrent_vars(&self, call: &LayerCall) -> Result<VarList, KerasErrorKind> {
        self.vars_under(call, &["cell"])
    }

    /// tf_keras' LSTM: `UNIDIRECTIONAL_SEQUENCE_LSTM` (cell clip 10, tanh), then the last step when the layer
    /// returns only it.
    fn fused_lstm(&mut self, call: &LayerCall, r: &Recurrent) -> Value {
        let (steps, features, u) = (r.input.shape[1], r.input.shape[2], r.o.units);
        let name = |what: &str| format!("{}/{what}", call.name);
        let mut inputs: Vec<Option<TensorId>> = vec![Some(r.input.tensor)];
        for (g, gate) in ["input", "forget", "cell", "output"].iter().enumerate() {
            let w = gate_matrix(&r.kernel, g, u);
            let t = self
                .b
                .constant_f32(&name(&format!("{gate}_weights")), &[u, features], &w);
            inputs.push(Some(t));
        }
        for (g, gate) in ["input", "forget", "cell", "output"].iter().enumerate() {
            let w = gate_matrix(&r.recurrent, g, u);
            let t = self
                .b
                .constant_f32(&name(&format!("{gate}_recurrent_weights")), &[u, u], &w);
            inputs.push(Some(t));
        }
        inputs.extend([None, None, None]); // no peepholes
        for (g, gate) in ["input", "forget", "cell", "output"].iter().enumerate() {
            let b = &r.bias.data[g * u..(g + 1) * u];
            let t = self
                .b
                .constant_f32(&name(&format!("{gate}_gate_bias")), &[u], b);
            inputs.push(Some(t));
        }
        inputs.extend([None, None]); // no projection
        let output_state = self.state(&name("output_state"), &[1, u]);
        let cell_state = self.state(&name("cell_state"), &[1, u]);
        inputs.extend([Some(output_state), Some(cell_state)]);
        inputs.extend([None, None, None, None]); // no layer normalization
        let shape = vec![1, steps, u];
        let out = self.out(call, "lstm", &shape);
        let options = fb::UnidirectionalSequenceLSTMOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            cell_clip: 10.0,
            proj_clip: 0.0,
            time_major: false,
            asymmetric_quantize_inputs: false,
            diagonal_recurrent_tensors: false,
        };
        self.b.op(
            fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM,
            1,
            &inputs,
            &[out],
            fb::BuiltinOptionsT::UnidirectionalSequenceLSTMOptions(Box::new(options)),
        );
        let sequence = Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        };
        if r.o.return_sequences {
            return sequence;
        }
        // x[:, -1, :] as TF writes it: begin [0, -1, 0], end [0, 0, 0], masks on axes 0 and 2, axis 1 shrunk.
        self.strided_slice(
            call,
            "strided_slice",
            &sequence,
            [[0, -1, 0], [0, 0, 0], [1, 1, 1]],
            [5, 5, 2],
            vec![1, u],
        )
    }

    /// A variable float32 tensor (recurrent state kept between invocations), zero at the start.
    fn state(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.b.graph.add_tensor(fb::TensorT {
            shape: Some(super::builder::dims(shape)),
            type_: fb::TensorType::FLOAT32,
            buffer: 0,
            name: Some(name.to_string()),
            is_variable: true,
            ..Default::default()
        })
    }

    /// A rank-3 STRIDED_SLICE of `v` with constant `[begin, end, strides]` and `[begin, end, shrink]` masks.
    pub(super) fn strided_slice(
        &mut self,
        call: &LayerCall,
        what: &str,
        v: &Value,
        bounds: [[i32; 3]; 3],
        masks: [i32; 3],
        shape: Vec<usize>,
    ) -> Value {
        let mut operands = vec![Some(v.tensor)];
        for (k, b) in ["begin", "end", "strides"].iter().zip(bounds) {
            let name = format!("{}/{what}/{k}", call.name);
            operands.push(Some(self.b.constant_i32(&name, &[3], &b)));
        }
        let out = self.out(call, what, &shape);
        let options = fb::StridedSliceOptionsT {
            begin_mask: masks[0],
            end_mask: masks[1],
            shrink_axis_mask: masks[2],
            ..Default::default()
        };
        self.b.op(
            fb::BuiltinOperator::STRIDED_SLICE,
            1,
            &operands,
            &[out],
            fb::BuiltinOptionsT::StridedSliceOptions(Box::new(options)),
        );
        Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        }
    }
}

/// Gate `g` of a Keras kernel `[rows, G * u]` as TFLite weights `[u, rows]` (row `j` = the gate's unit `j`).
pub(super) fn gate_matrix(kernel: &Array, g: usize, u: usize) -> Vec<f32> {
    let (rows, cols) = (kernel.shape[0], kernel.shape[1]);
    let mut out = Vec::with_capacity(u * rows);
    for j in 0..u {
        for i in 0..rows {
            out.push(kernel.data[i * cols + g * u + j]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_matrix_takes_a_gates_columns_transposed() {
        // rows = 2, 2 gates of 2 units: columns [g0u0, g0u1, g1u0, g1u1].
        let kernel = Array {
            shape: vec![2, 4],
            data: vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0],
        };
        assert_eq!(gate_matrix(&kernel, 0, 2), [0.0, 10.0, 1.0, 11.0]);
        assert_eq!(gate_matrix(&kernel, 1, 2), [2.0, 12.0, 3.0, 13.0]);
    }
}
