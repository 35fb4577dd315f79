//! UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite's 8x8_16 integer scheme, as TF's converter writes it
//! (`operator_property.cc`, the LSTM rows; `quantize_model.cc`):
//! * input and output int8 from their calibrated ranges; the output state (input 18) a variable int8 tensor
//!   on the output's params (the kernel copies one into the other);
//! * gate, recurrent and projection weights int8 symmetric per tensor; peephole and layer-norm coefficients
//!   int16 symmetric;
//! * gate biases int32 at `input_scale * input_weight_scale` (layer norm: `layer_norm_scale * 2^-10`), the
//!   projection bias at `projection_weight_scale * hidden_scale`;
//! * the cell state (input 19) a variable int16 tensor with a power-of-two scale covering the cell clip
//!   (`extend_to_power_of_two`);
//! * five intermediates: the gates' (int16, from their calibrated values, with layer norm; otherwise float
//!   and unused, as TF writes them) and the hidden state's (int8: the output's params without projection,
//!   its calibrated range with one).

use super::Rewriter;
use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::integer::constants;
use crate::quantize::params::{symmetric, ActivationType, QuantParams};
use crate::quantize::rules::OpRule;
use crate::quantize::{QuantError, Ranges};
use crate::tflite::fb;

/// Gate and recurrent weights, and the projection weights.
const WEIGHTS_INT8: [usize; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 16];
/// Peephole weights and layer-norm coefficients.
const WEIGHTS_INT16: [usize; 7] = [9, 10, 11, 20, 21, 22, 23];

fn present(graph: &Graph, op: OpIndex, i: usize) -> Option<TensorId> {
    graph.op_inputs(op).get(i).copied().flatten()
}

fn options(graph: &Graph, op: OpIndex) -> Option<&fb::UnidirectionalSequenceLSTMOptionsT> {
    graph
        .op(op)
        .builtin_options
        .as_unidirectional_sequence_lstmoptions()
}

fn layer_norm(graph: &Graph, op: OpIndex) -> bool {
    present(graph, op, 21).is_some()
}

fn projection(graph: &Graph, op: OpIndex) -> bool {
    present(graph, op, 16).is_some()
}

/// The power of two `2^pot >= max(|min|, |max|)`, `pot` in `0..=10` (`GetPowerOfTwoScale`).
fn power_of_two_scale(min: f32, max: f32) -> i32 {
    let range = min.abs().max(max.abs());
    let mut pot = 0;
    for _ in 0..10 {
        if 2f64.powi(pot) < f64::from(range) {
            pot += 1;
        }
    }
    pot
}

/// Gives every layer-norm or projection UNIDIRECTIONAL_SEQUENCE_LSTM of the main subgraph that records no
/// intermediates five float ones (appended tensors: existing tensor ids stay), so that calibration observes
/// the gate values and the hidden state the 8x8_16 kernel needs params for (the float kernel writes them).
/// Other ops, and LSTMs that need none, are left as they are. Returns how many ops got them.
pub fn record_lstm_intermediates(graph: &mut Graph) -> usize {
    let mut added = 0;
    for i in 0..graph.ops().len() {
        let op = OpIndex(i);
        if graph.op_code(op) != fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM
            || graph
                .op(op)
                .intermediates
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || !(layer_norm(graph, op) || projection(graph, op))
        {
            continue;
        }
        let base = graph
            .op_outputs(op)
            .first()
            .map_or_else(|| format!("op{i}"), |&t| graph.tensor_name(t).to_string());
        let ids: Vec<i32> = (0..5)
            .map(|k| {
                graph
                    .add_tensor(fb::TensorT {
                        shape: Some(vec![0]),
                        type_: fb::TensorType::FLOAT32,
                        name: Some(format!("{base}/recorded_intermediate_{k}")),
                        ..Default::default()
                    })
                    .0 as i32
            })
            .collect();
        graph.op_mut(op).intermediates = Some(ids);
        added += 1;
    }
    added
}

/// Drops the intermediates [`record_lstm_intermediates`] added from LSTMs that stayed float (float input):
/// only the integer kernel reads them.
pub fn drop_recorded_intermediates(graph: &mut Graph) {
    for i in 0..graph.ops().len() {
        let op = OpIndex(i);
        if graph.op_code(op) != fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM {
            continue;
        }
        let float_input =
            present(graph, op, 0).is_some_and(|t| graph.tensor(t).type_ == fb::TensorType::FLOAT32);
        let recorded = graph
            .op(op)
            .intermediates
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|&t| {
                usize::try_from(t).ok().is_some_and(|t| {
                    graph
                        .tensor_name(TensorId(t))
                        .contains("/recorded_intermediate_")
                })
            });
        if float_input && recorded {
            graph.op_mut(op).intermediates = None;
        }
    }
}

/// Why this LSTM cannot be quantized to the 8x8_16 kernel (it then stays float), or `None`.
pub(crate) fn lstm_refusal(graph: &Graph, op: OpIndex, ranges: &Ranges) -> Option<String> {
    let inputs = graph.op_inputs(op);
    if inputs.len() != 20 && inputs.len() != 24 {
        return Some(format!("it has {} inputs, expected 20 or 24", inputs.len()));
    }
    let Some(o) = options(graph, op) else {
        return Some("it has no UnidirectionalSequenceLSTMOptions".into());
    };
    if o.diagonal_recurrent_tensors {
        return Some("LiteRT's integer LSTM has no diagonal recurrent weights".into());
    }
    if o.fused_activation_function != fb::ActivationFunctionType::TANH {
        return Some(format!(
            "its activation is {:?}; LiteRT's integer LSTM always applies tanh",
            o.fused_activation_function
        ));
    }
    if o.cell_clip <= 0.0 {
        return Some(
            "it has no cell clip, so the int16 cell state's power-of-two range is unbounded \
             (TF's converter derives it from the clip)"
                .into(),
        );
    }
    if power_of_two_scale(-o.cell_clip, o.cell_clip) > 6 {
        return Some(format!(
            "its cell clip {} needs a cell state range above 2^6, beyond LiteRT's integer tanh",
            o.cell_clip
        ));
    }
    let is_float_const = |i: usize| {
        present(graph, op, i).is_none_or(|t| {
            graph.tensor(t).type_ == fb::TensorType::FLOAT32 && graph.is_constant(t)
        })
    };
    for i in (1..=17).chain(20..inputs.len()) {
        if !is_float_const(i) {
            return Some(format!("its input {i} is not a constant float tensor"));
        }
    }
    for i in [2, 3, 4, 6, 7, 8, 13, 14, 15] {
        if present(graph, op, i).is_none() {
            return Some(format!("its required input {i} is missing"));
        }
    }
    for i in [18, 19] {
        match present(graph, op, i) {
            Some(t) if graph.tensor(t).is_variable && !graph.is_constant(t) => {}
            _ => return Some(format!("its state input {i} is not a variable tensor")),
        }
    }
    let recorded = graph.op(op).intermediates.as_deref().unwrap_or(&[]);
    let has_range = |k: usize| {
        recorded
            .get(k)
            .and_then(|&t| usize::try_from(t).ok())
            .is_some_and(|t| ranges.contains_key(&TensorId(t)))
    };
    let cifg = present(graph, op, 1).is_none();
    if layer_norm(graph, op) {
        let first = usize::from(cifg);
        if !(first..4).all(has_range) {
            return Some(
                "a layer-norm LSTM needs the calibrated gate values (its five intermediates), which \
                 the float model does not record"
                    .into(),
            );
        }
    }
    if projection(graph, op) && !has_range(4) {
        return Some(
            "a projection LSTM needs the calibrated hidden state (intermediate 4), which the float \
             model does not record"
                .into(),
        );
    }
    None
}

impl Rewriter<'_> {
    fn lstm_error(&self, op: OpIndex, what: impl std::fmt::Display) -> QuantError {
        super::unsupported(self.g, op, what)
    }

    /// A new constant tensor shaped like `like` holding `bytes`.
    fn lstm_constant(
        &mut self,
        like: TensorId,
        ty: fb::TensorType,
        params: &QuantParams,
        bytes: Vec<u8>,
    ) -> TensorId {
        let name = self.g.tensor_name(like).to_string();
        let t = self.tensor_like(like, name, ty, Some(params));
        self.g.set_tensor_data(t, bytes);
        t
    }

    fn lstm_values(&self, op: OpIndex, t: TensorId) -> Result<Vec<f32>, QuantError> {
        self.g
            .const_f32(t)
            .ok_or_else(|| self.lstm_error(op, "a constant input is not float32"))
    }

    /// Quantizes one LSTM as described in the module doc.
    pub(super) fn quantize_lstm(&mut self, op: OpIndex, rule: &OpRule) -> Result<(), QuantError> {
        if self.ty != ActivationType::Int8 {
            return Err(self.lstm_error(op, "the integer LSTM takes int8 activations only"));
        }
        let inputs = self.g.op_inputs(op);
        let output = *self
            .g
            .op_outputs(op)
            .first()
            .ok_or_else(|| self.lstm_error(op, "it has no output"))?;
        let o = options(self.g, op)
            .cloned()
            .ok_or_else(|| self.lstm_error(op, "it has no options"))?;
        let use_ln = layer_norm(self.g, op);
        let use_proj = projection(self.g, op);
        let mut new_inputs: Vec<i32> = inputs
            .iter()
            .map(|t| t.map_or(-1, |t| t.0 as i32))
            .collect();
        let at = |i: usize| inputs.get(i).copied().flatten();

        let x = at(0).ok_or_else(|| self.lstm_error(op, "the input is missing"))?;
        let xq = self.int_input(x)?;
        let input_scale = self
            .params_of(xq)
            .ok_or_else(|| self.lstm_error(op, "the input lost its params"))?
            .scale()[0];
        new_inputs[0] = xq.0 as i32;
        let out_params = self.range_params(output)?;

        // int8 weights, symmetric per tensor.
        let mut scale = [1.0f32; 24];
        for i in WEIGHTS_INT8 {
            let Some(t) = at(i) else { continue };
            let values = self.lstm_values(op, t)?;
            let scales = constants::weight_scales(&values, &[values.len()], None);
            let q = constants::quantize_weights(&values, &[values.len()], None, scales)
                .map_err(|e| self.lstm_error(op, e))?;
            scale[i] = q.params.scale()[0];
            let bytes = q.values.iter().map(|&v| v as u8).collect();
            new_inputs[i] = self
                .lstm_constant(t, fb::TensorType::INT8, &q.params, bytes)
                .0 as i32;
            self.weights_quantized += 1;
        }
        // int16 peephole weights and layer-norm coefficients, symmetric.
        for i in WEIGHTS_INT16 {
            let Some(t) = at(i) else { continue };
            let values = self.lstm_values(op, t)?;
            let bound = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let params = symmetric(-bound, bound, 32767).map_err(|e| self.lstm_error(op, e))?;
            scale[i] = params.scale()[0];
            let q = constants::quantize_with(&values, &params, ActivationType::Int16);
            let bytes = constants::to_bytes(&q, 2);
            new_inputs[i] = self
                .lstm_constant(t, fb::TensorType::INT16, &params, bytes)
                .0 as i32;
        }
        // Intermediates: the hidden state's params (projection: calibrated; else the output's).
        let recorded: Vec<Option<TensorId>> = (0..5)
            .map(|k| {
                self.g
                    .op(op)
                    .intermediates
                    .as_deref()
                    .and_then(|v| v.get(k))
                    .and_then(|&t| usize::try_from(t).ok())
                    .map(TensorId)
            })
            .collect();
        let hidden_params = match (use_proj, recorded[4]) {
            (true, Some(t)) => self.range_params(t)?,
            (true, None) => return Err(self.lstm_error(op, "the hidden state has no range")),
            (false, _) => out_params.clone(),
        };
        // int32 biases.
        for g in 0..4 {
            let Some(t) = at(12 + g) else { continue };
            let values = self.lstm_values(op, t)?;
            let (a, b) = if use_ln {
                (scale[20 + g], 2f32.powi(-10))
            } else {
                (input_scale, scale[1 + g])
            };
            let (q, params) = constants::quantize_bias(&values, a, &[b], false)
                .map_err(|e| self.lstm_error(op, e))?;
            let bytes = constants::to_bytes(&q, 4);
            new_inputs[12 + g] = self
                .lstm_constant(t, fb::TensorType::INT32, &params, bytes)
                .0 as i32;
        }
        if let Some(t) = at(17) {
            let values = self.lstm_values(op, t)?;
            let (q, params) =
                constants::quantize_bias(&values, scale[16], &[hidden_params.scale()[0]], false)
                    .map_err(|e| self.lstm_error(op, e))?;
            let bytes = constants::to_bytes(&q, 4);
            new_inputs[17] = self
                .lstm_constant(t, fb::TensorType::INT32, &params, bytes)
                .0 as i32;
        }
        // Variable states: int8 output state on the output's params, int16 cell state on 2^pot / 32768.
        let pot = power_of_two_scale(-o.cell_clip, o.cell_clip);
        let cell_params = QuantParams::per_tensor((2f64.powi(pot) / 32768.0) as f32, 0)
            .map_err(|e| self.lstm_error(op, e))?;
        for (i, ty, params) in [
            (18, fb::TensorType::INT8, &out_params),
            (19, fb::TensorType::INT16, &cell_params),
        ] {
            let t = at(i).ok_or_else(|| self.lstm_error(op, "a state input is missing"))?;
            let name = self.g.tensor_name(t).to_string();
            let s = self.tensor_like(t, name, ty, Some(params));
            self.g.tensor_mut(s).is_variable = true;
            new_inputs[i] = s.0 as i32;
        }
        // The five intermediates.
        let mut intermediates = Vec::with_capacity(5);
        let names = [
            "input_to_input_intermediate",
            "input_to_forget_intermediate",
            "input_to_cell_intermediate",
            "input_to_output_intermediate",
            "effective_hidden_scale_intermediate",
        ];
        // A CIFG layer-norm LSTM has no input gate, yet LiteRT reads all four gate intermediates' params:
        // the unused input gate's takes the forget gate's.
        let gate_range = |k: usize| {
            recorded[k]
                .filter(|_| use_ln)
                .and_then(|t| self.ranges.get(&t))
                .copied()
        };
        for (k, name) in names.iter().enumerate() {
            let range = gate_range(k).or_else(|| if k == 0 { gate_range(1) } else { None });
            let (ty, params) = if k == 4 {
                (fb::TensorType::INT8, Some(hidden_params.clone()))
            } else if let Some((min, max)) = range {
                let p = symmetric(min, max, 32767).map_err(|e| self.lstm_error(op, e))?;
                (fb::TensorType::INT16, Some(p))
            } else {
                (fb::TensorType::FLOAT32, None)
            };
            let t = self.g.add_tensor(fb::TensorT {
                shape: Some(vec![0]),
                type_: ty,
                name: Some(format!("{}/{name}", self.g.tensor_name(output))),
                quantization: params.map(|p| Box::new(p.to_fb())),
                ..Default::default()
            });
            intermediates.push(t.0 as i32);
        }
        self.set_int(output, fb::TensorType::INT8, &out_params);

        let mut new = self.g.op(op).clone();
        new.inputs = Some(new_inputs);
        new.intermediates = Some(intermediates);
        let code_index = new.opcode_index as usize;
        if let Some(code) = self
            .g
            .model
            .operator_codes
            .as_mut()
            .and_then(|c| c.get_mut(code_index))
        {
            code.version = code.version.max(rule.version);
        }
        self.new_ops.push(new);
        Ok(())
    }
}
