//! Rewriting the graph once every op is decided: integer tensors, quantized constants, QUANTIZE and
//! DEQUANTIZE ops between float and integer regions and at the model boundary.

mod lstm;
pub(crate) use lstm::lstm_refusal;
pub use lstm::{drop_recorded_intermediates, record_lstm_intermediates};

use super::constants::{self, QuantizedWeights};
use super::plan::Decision;
use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::params::{ActivationType, QuantParams};
use crate::quantize::rules::{CustomRule, OpRule, OutputRule, PerChannelSwitch};
use crate::quantize::{bias, rounding, IoType, QuantError, QuantOptions, Ranges};
use crate::tflite::fb;
use std::collections::{BTreeMap, BTreeSet};

/// The graph being rewritten and what is known so far.
pub(crate) struct Rewriter<'a> {
    g: &'a mut Graph,
    ty: ActivationType,
    opts: &'a QuantOptions,
    ranges: &'a Ranges,
    /// Ops of the new execution order.
    new_ops: Vec<fb::OperatorT>,
    /// Float tensors of the source now holding integers (written by quantized ops, or integer model inputs).
    int_in_place: BTreeSet<TensorId>,
    /// Float tensor -> its integer copy (a QUANTIZE output).
    int_of: BTreeMap<TensorId, TensorId>,
    /// Integer tensor -> its float copy (a DEQUANTIZE output).
    float_of: BTreeMap<TensorId, TensorId>,
    /// Model inputs and outputs replaced by new boundary tensors.
    io_replace: BTreeMap<TensorId, TensorId>,
    /// A loop body or cond called by quantized WHILEs: its float inputs and outputs are integers on their
    /// calibrated params (the loop variables'), whatever the model's I/O types.
    integer_boundary: bool,
    /// With `integer_boundary`: new output tensors by output position.
    boundary_outputs: BTreeMap<usize, TensorId>,
    /// Number of weight tensors stored as int8.
    pub(crate) weights_quantized: usize,
}

fn unsupported(graph: &Graph, op: OpIndex, what: impl std::fmt::Display) -> QuantError {
    let out = graph
        .op_outputs(op)
        .first()
        .map_or(String::new(), |&t| graph.tensor_name(t).to_string());
    QuantError::Unsupported(format!(
        "op #{} {} ({out}): {what}",
        op.0,
        graph.op_type_name(op)
    ))
}

impl<'a> Rewriter<'a> {
    /// A rewriter for `g` quantizing activations to `ty`.
    pub(crate) fn new(
        g: &'a mut Graph,
        ty: ActivationType,
        opts: &'a QuantOptions,
        ranges: &'a Ranges,
    ) -> Self {
        Rewriter {
            g,
            ty,
            opts,
            ranges,
            new_ops: Vec::new(),
            int_in_place: BTreeSet::new(),
            int_of: BTreeMap::new(),
            float_of: BTreeMap::new(),
            io_replace: BTreeMap::new(),
            integer_boundary: false,
            boundary_outputs: BTreeMap::new(),
            weights_quantized: 0,
        }
    }

    /// Makes the subgraph's float inputs and outputs integers on their calibrated params (the subgraph
    /// of a quantized WHILE).
    pub(crate) fn with_integer_boundary(mut self) -> Self {
        self.integer_boundary = true;
        self
    }

    /// Rewrites every op following `decisions` (one per op, in execution order).
    pub(crate) fn run(
        &mut self,
        decisions: &[Decision],
        src_types: &[fb::TensorType],
    ) -> Result<(), QuantError> {
        let is_float = |t: TensorId| src_types.get(t.0) == Some(&fb::TensorType::FLOAT32);
        for t in self.g.inputs() {
            if is_float(t) {
                if self.integer_boundary {
                    let params = self.range_params(t)?;
                    self.set_int(t, self.ty.tensor_type(), &params);
                } else {
                    self.model_input(t)?;
                }
            }
        }
        for (i, d) in decisions.iter().enumerate() {
            let op = OpIndex(i);
            match d {
                Decision::Quantize(rule) => self.quantize_op(op, rule)?,
                Decision::Float(_) | Decision::PassThrough | Decision::Untouched => {
                    self.keep_op(op)
                }
            }
        }
        for (k, t) in self.g.outputs().into_iter().enumerate() {
            if !is_float(t) {
                continue;
            }
            if self.integer_boundary {
                self.boundary_output(k, t)?;
            } else {
                self.model_output(t)?;
            }
        }
        self.finish();
        Ok(())
    }

    fn range_params(&self, t: TensorId) -> Result<QuantParams, QuantError> {
        let &(min, max) = self
            .ranges
            .get(&t)
            .ok_or_else(|| QuantError::MissingRange(self.g.tensor_name(t).to_string()))?;
        self.ty
            .params_for_range(min, max)
            .map_err(|e| QuantError::Unsupported(format!("tensor {}: {e}", self.g.tensor_name(t))))
    }

    fn params_of(&self, t: TensorId) -> Option<QuantParams> {
        self.g
            .tensor(t)
            .quantization
            .as_deref()
            .and_then(QuantParams::from_fb)
    }

    /// A new tensor shaped like `like`, with its own name, type and params.
    fn tensor_like(
        &mut self,
        like: TensorId,
        name: String,
        ty: fb::TensorType,
        params: Option<&QuantParams>,
    ) -> TensorId {
        let src = self.g.tensor(like);
        let t = fb::TensorT {
            shape: src.shape.clone(),
            shape_signature: src.shape_signature.clone(),
            has_rank: src.has_rank,
            type_: ty,
            name: Some(name),
            quantization: params.map(|p| Box::new(p.to_fb())),
            ..Default::default()
        };
        self.g.add_tensor(t)
    }

    fn emit(&mut self, code: fb::BuiltinOperator, version: i32, input: TensorId, output: TensorId) {
        let op = self.g.new_op(code, version, &[input], &[output]);
        self.new_ops.push(op);
    }

    fn set_int(&mut self, t: TensorId, ty: fb::TensorType, params: &QuantParams) {
        let tensor = self.g.tensor_mut(t);
        tensor.type_ = ty;
        tensor.quantization = Some(Box::new(params.to_fb()));
        self.int_in_place.insert(t);
    }

    fn rename(&mut self, t: TensorId, suffix: &str) -> String {
        let name = self.g.tensor_name(t).to_string();
        self.g.tensor_mut(t).name = Some(format!("{name}{suffix}"));
        name
    }

    /// The integer version of a float activation, quantizing it here if needed.
    fn int_input(&mut self, t: TensorId) -> Result<TensorId, QuantError> {
        if self.int_in_place.contains(&t) {
            return Ok(t);
        }
        if let Some(&q) = self.int_of.get(&t) {
            return Ok(q);
        }
        let params = self.range_params(t)?;
        let name = format!("{}{}", self.g.tensor_name(t), self.ty.suffix());
        let q = self.tensor_like(t, name, self.ty.tensor_type(), Some(&params));
        self.emit(fb::BuiltinOperator::QUANTIZE, 1, t, q);
        self.int_of.insert(t, q);
        Ok(q)
    }

    /// The float version of a tensor a float op reads, dequantizing it here if it now holds integers.
    fn float_input(&mut self, t: TensorId) -> TensorId {
        if !self.int_in_place.contains(&t) {
            return t;
        }
        if let Some(&f) = self.float_of.get(&t) {
            return f;
        }
        let name = format!("{}_float", self.g.tensor_name(t));
        let f = self.tensor_like(t, name, fb::TensorType::FLOAT32, None);
        self.emit(fb::BuiltinOperator::DEQUANTIZE, 2, t, f);
        self.float_of.insert(t, f);
        f
    }

    /// A quantized copy of a float constant, with `params` or params from its own values.
    fn const_activation(
        &mut self,
        op: OpIndex,
        t: TensorId,
        params: Option<&QuantParams>,
    ) -> Result<TensorId, QuantError> {
        let values = self
            .g
            .const_f32(t)
            .ok_or_else(|| unsupported(self.g, op, "a constant input is not float32"))?;
        let params = match params {
            Some(p) => p.clone(),
            None => constants::constant_activation_params(&values, self.ty)
                .map_err(|e| unsupported(self.g, op, e))?,
        };
        let q = constants::quantize_with(&values, &params, self.ty);
        let width = if self.ty == ActivationType::Int8 {
            1
        } else {
            2
        };
        let name = self.g.tensor_name(t).to_string();
        let new = self.tensor_like(t, name, self.ty.tensor_type(), Some(&params));
        self.g.set_tensor_data(new, constants::to_bytes(&q, width));
        Ok(new)
    }

    fn model_input(&mut self, t: TensorId) -> Result<(), QuantError> {
        match self.opts.inference_input_type {
            IoType::Float32 => {}
            IoType::Int8 | IoType::Int16 => {
                let params = self.range_params(t)?;
                self.set_int(t, self.ty.tensor_type(), &params);
            }
            IoType::Uint8 => {
                let params = self.range_params(t)?;
                self.set_int(t, self.ty.tensor_type(), &params);
                let name = self.rename(t, self.ty.suffix());
                let u =
                    self.tensor_like(t, name, fb::TensorType::UINT8, Some(&params.shifted(128)));
                self.emit(fb::BuiltinOperator::QUANTIZE, 2, u, t);
                self.io_replace.insert(t, u);
            }
        }
        Ok(())
    }

    fn model_output(&mut self, t: TensorId) -> Result<(), QuantError> {
        let is_int = self.int_in_place.contains(&t);
        match (is_int, self.opts.inference_output_type) {
            (true, IoType::Float32) => {
                let name = self.rename(t, self.ty.suffix());
                let f = self.tensor_like(t, name, fb::TensorType::FLOAT32, None);
                self.emit(fb::BuiltinOperator::DEQUANTIZE, 2, t, f);
                self.io_replace.insert(t, f);
            }
            (true, IoType::Uint8) => {
                let params = self
                    .params_of(t)
                    .ok_or_else(|| QuantError::SelfCheck("output lost its params".into()))?;
                let name = self.rename(t, self.ty.suffix());
                let u =
                    self.tensor_like(t, name, fb::TensorType::UINT8, Some(&params.shifted(128)));
                self.emit(fb::BuiltinOperator::QUANTIZE, 2, t, u);
                self.io_replace.insert(t, u);
            }
            (true, _) | (false, IoType::Float32) => {}
            (false, IoType::Uint8) => {
                let params = self.range_params(t)?.shifted(128);
                let name = format!("{}_uint8", self.g.tensor_name(t));
                let u = self.tensor_like(t, name, fb::TensorType::UINT8, Some(&params));
                self.emit(fb::BuiltinOperator::QUANTIZE, 1, t, u);
                self.io_replace.insert(t, u);
            }
            (false, _) => {
                let q = self.int_input(t)?;
                self.io_replace.insert(t, q);
            }
        }
        Ok(())
    }

    /// Output `k` of a loop body or cond: an integer on the tensor's calibrated params, requantized or
    /// quantized here when it is not one already.
    fn boundary_output(&mut self, k: usize, t: TensorId) -> Result<(), QuantError> {
        let params = self.range_params(t)?;
        let q = if self.int_in_place.contains(&t) {
            t
        } else {
            self.int_input(t)?
        };
        let q = self.requantized(t, q, &params);
        if q != t {
            self.boundary_outputs.insert(k, q);
        }
        Ok(())
    }

    /// `q` (the integer form of `t`) on `params`: itself, or a QUANTIZE (requantize) of it.
    fn requantized(&mut self, t: TensorId, q: TensorId, params: &QuantParams) -> TensorId {
        if self.params_of(q).as_ref() == Some(params) {
            return q;
        }
        let name = format!("{}_requantized", self.g.tensor_name(t));
        let r = self.tensor_like(t, name, self.ty.tensor_type(), Some(params));
        self.emit(fb::BuiltinOperator::QUANTIZE, 2, q, r);
        r
    }

    /// A WHILE: each float loop variable takes its output's calibrated params (the union of its ranges
    /// over the iterations, the params the body and cond see); inputs on other params are requantized.
    fn quantize_loop(&mut self, op: OpIndex, rule: &OpRule) -> Result<(), QuantError> {
        let inputs = self.g.op_inputs(op);
        let outputs = self.g.op_outputs(op);
        let mut new_inputs: Vec<i32> = inputs
            .iter()
            .map(|t| t.map_or(-1, |t| t.0 as i32))
            .collect();
        for (k, (&i, &o)) in inputs.iter().zip(&outputs).enumerate() {
            let Some(i) = i else { continue };
            if self.g.tensor(o).type_ != fb::TensorType::FLOAT32 {
                continue;
            }
            let params = self.range_params(o)?;
            let q = if self.g.is_constant(i) {
                self.const_activation(op, i, Some(&params))?
            } else {
                self.int_input(i)?
            };
            new_inputs[k] = self.requantized(i, q, &params).0 as i32;
            self.set_int(o, self.ty.tensor_type(), &params);
        }
        let mut new = self.g.op(op).clone();
        new.inputs = Some(new_inputs);
        if let Some(code) = self
            .g
            .model
            .operator_codes
            .as_mut()
            .and_then(|c| c.get_mut(new.opcode_index as usize))
        {
            code.version = code.version.max(rule.version);
        }
        self.new_ops.push(new);
        Ok(())
    }

    /// Keeps an op as it is; inputs that now hold integers are dequantized for it.
    fn keep_op(&mut self, op: OpIndex) {
        let mut new = self.g.op(op).clone();
        let inputs: Vec<i32> = new.inputs.clone().unwrap_or_default();
        let mapped = inputs
            .iter()
            .map(|&t| {
                if t >= 0 {
                    self.float_input(TensorId(t as usize)).0 as i32
                } else {
                    t
                }
            })
            .collect();
        new.inputs = Some(mapped);
        self.new_ops.push(new);
    }

    fn quantize_op(&mut self, op: OpIndex, rule: &OpRule) -> Result<(), QuantError> {
        match rule.custom {
            Some(CustomRule::Loop) => return self.quantize_loop(op, rule),
            Some(CustomRule::Lstm) => return self.quantize_lstm(op, rule),
            None => {}
        }
        let ty = self.ty;
        let inputs = self.g.op_inputs(op);
        let outputs = self.g.op_outputs(op);
        let n = inputs.len();
        let mut new_inputs: Vec<i32> = inputs
            .iter()
            .map(|t| t.map_or(-1, |t| t.0 as i32))
            .collect();

        // Output params first: ops whose inputs must match their output need them for the inputs.
        let fixed = match rule.output {
            OutputRule::Fixed { int8, int16 } => {
                let (scale, zp) = if ty == ActivationType::Int8 {
                    int8
                } else {
                    int16
                };
                Some(QuantParams::per_tensor(scale, zp).map_err(|e| unsupported(self.g, op, e))?)
            }
            _ => None,
        };
        let same_as_input = matches!(rule.output, OutputRule::SameAsInput)
            || (rule.output == OutputRule::SameAsInputInt16 && ty == ActivationType::Int16);
        let mut out_params: Vec<Option<QuantParams>> = Vec::with_capacity(outputs.len());
        for &t in &outputs {
            out_params.push(match (&fixed, same_as_input) {
                _ if rule.output == OutputRule::NotQuantized => None,
                (Some(p), _) => Some(p.clone()),
                (None, true) => None,
                (None, false) => Some(self.range_params(t)?),
            });
        }

        let mut first_params: Option<QuantParams> = None;
        for (p, t) in inputs.iter().enumerate() {
            let Some(t) = *t else { continue };
            if !rule.activations.contains(p, n) {
                continue;
            }
            let target = if rule.inputs_match_output {
                out_params.first().cloned().flatten()
            } else {
                None
            };
            let mut q = if self.g.is_constant(t) {
                self.const_activation(op, t, target.as_ref())?
            } else {
                self.int_input(t)?
            };
            if let Some(target) = &target {
                if self.params_of(q).as_ref() != Some(target) {
                    let name = format!("{}_requantized", self.g.tensor_name(t));
                    let r = self.tensor_like(t, name, ty.tensor_type(), Some(target));
                    self.emit(fb::BuiltinOperator::QUANTIZE, 2, q, r);
                    q = r;
                }
            }
            if first_params.is_none() {
                first_params = self.params_of(q);
            }
            new_inputs[p] = q.0 as i32;
        }
        let first_params =
            first_params.ok_or_else(|| unsupported(self.g, op, "no activation input"))?;
        for &p in rule.same_as_input {
            if let Some(Some(t)) = inputs.get(p) {
                let q = self.const_activation(op, *t, Some(&first_params))?;
                new_inputs[p] = q.0 as i32;
            }
        }

        if let Some(w) = rule.weights {
            let wt = inputs
                .get(w.input)
                .copied()
                .flatten()
                .ok_or_else(|| unsupported(self.g, op, "weights are missing"))?;
            let bias = rule.bias.and_then(|b| inputs.get(b).copied().flatten());
            let qw = self.quantize_weights(
                op,
                wt,
                w.axis,
                w.per_channel,
                bias,
                first_params.scale()[0],
            )?;
            let weight_scales = qw.params.scale().to_vec();
            let name = self.g.tensor_name(wt).to_string();
            let new = self.tensor_like(wt, name, fb::TensorType::INT8, Some(&qw.params));
            self.g
                .set_tensor_data(new, qw.values.iter().map(|&v| v as u8).collect());
            new_inputs[w.input] = new.0 as i32;
            self.weights_quantized += 1;
            if let (Some(b), Some(bt)) = (rule.bias, bias) {
                let mut values = self
                    .g
                    .const_f32(bt)
                    .ok_or_else(|| unsupported(self.g, op, "bias is not float32"))?;
                if let Some(shift) = self.bias_shift(op, wt, &qw, values.len()) {
                    for (v, s) in values.iter_mut().zip(shift) {
                        *v += s;
                    }
                }
                let wide = ty == ActivationType::Int16;
                let (q, params) = constants::quantize_bias(
                    &values,
                    first_params.scale()[0],
                    &weight_scales,
                    wide,
                )
                .map_err(|e| unsupported(self.g, op, e))?;
                let (bias_ty, width) = if wide {
                    (fb::TensorType::INT64, 8)
                } else {
                    (fb::TensorType::INT32, 4)
                };
                let name = self.g.tensor_name(bt).to_string();
                let new = self.tensor_like(bt, name, bias_ty, Some(&params));
                self.g.set_tensor_data(new, constants::to_bytes(&q, width));
                new_inputs[b] = new.0 as i32;
            }
        }

        for (t, params) in outputs.iter().zip(out_params) {
            if rule.output == OutputRule::NotQuantized {
                continue;
            }
            let params = params.unwrap_or_else(|| first_params.clone());
            self.set_int(*t, ty.tensor_type(), &params);
        }

        let mut new = self.g.op(op).clone();
        new.inputs = Some(new_inputs);
        if ty == ActivationType::Int16 {
            set_int16_options(&mut new, self.g.op_code(op));
        }
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

    fn quantize_weights(
        &self,
        op: OpIndex,
        wt: TensorId,
        axis: usize,
        switch: PerChannelSwitch,
        bias: Option<TensorId>,
        input_scale: f32,
    ) -> Result<QuantizedWeights, QuantError> {
        let values = self
            .g
            .const_f32(wt)
            .ok_or_else(|| unsupported(self.g, op, "weights are not float32"))?;
        let shape: Vec<usize> = self
            .g
            .shape(wt)
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect();
        if shape.iter().product::<usize>() != values.len() {
            return Err(unsupported(
                self.g,
                op,
                format!(
                    "weights hold {} values but their shape is {shape:?}",
                    values.len()
                ),
            ));
        }
        let per_channel = match switch {
            PerChannelSwitch::Conv => self.opts.per_channel,
            PerChannelSwitch::Dense => self.opts.per_channel_dense,
        };
        let axis = (per_channel && axis < shape.len()).then_some(axis);
        let mut scales = constants::weight_scales(&values, &shape, axis);
        if let Some(b) = bias.and_then(|b| self.g.const_f32(b)) {
            constants::widen_for_bias(&mut scales, &b, input_scale);
        }
        let adaptive = self.gram(op).and_then(|gram| {
            let qmax = constants::WEIGHT_MAX.into();
            rounding::adaptive_codes(&values, &shape, axis, &scales, gram, qmax, input_scale)
        });
        let mut weights = constants::quantize_weights(&values, &shape, axis, scales)
            .map_err(|e| unsupported(self.g, op, e))?;
        if let Some(codes) = adaptive {
            weights.values = codes;
        }
        Ok(weights)
    }

    /// The input second moments of a main-subgraph op, when adaptive rounding measured them.
    fn gram(&self, op: OpIndex) -> Option<&crate::calibrate::gram::Gram> {
        let grams = self.opts.grams.as_deref()?;
        if self.g.focused() != 0 {
            return None;
        }
        grams.get(self.g.op_outputs(op).first()?)
    }

    /// The output shift bias correction removes from op `op` (weights `wt` quantized as `qw`, `outputs`
    /// channels), when the op's mean input row was measured.
    fn bias_shift(
        &self,
        op: OpIndex,
        wt: TensorId,
        qw: &QuantizedWeights,
        outputs: usize,
    ) -> Option<Vec<f32>> {
        let sums = self.opts.row_sums.as_deref()?;
        if self.g.focused() != 0 {
            return None;
        }
        let mean = sums.get(self.g.op_outputs(op).first()?)?.mean();
        let layout = match self.g.op_code(op) {
            fb::BuiltinOperator::DEPTHWISE_CONV_2D => {
                let input = self.g.op_inputs(op).first().copied().flatten()?;
                let channels = usize::try_from(*self.g.shape(input).last()?).ok()?;
                bias::Layout::Depthwise { channels }
            }
            fb::BuiltinOperator::CONV_2D | fb::BuiltinOperator::FULLY_CONNECTED => {
                bias::Layout::Rows
            }
            _ => return None,
        };
        let weights = self.g.const_f32(wt)?;
        let scales = qw.params.scale();
        bias::shifts(&weights, &qw.values, scales, outputs, layout, &mean)
    }

    /// Installs the new op list and points the model boundary and signatures at the new I/O tensors.
    fn finish(&mut self) {
        let ops = std::mem::take(&mut self.new_ops);
        let replace = std::mem::take(&mut self.io_replace);
        let focus = self.g.focused();
        let sg = self.g.main_mut();
        sg.operators = Some(ops);
        let map = |ids: &mut Option<Vec<i32>>| {
            for t in ids.as_deref_mut().unwrap_or(&mut []) {
                if let Some(new) = usize::try_from(*t)
                    .ok()
                    .and_then(|i| replace.get(&TensorId(i)))
                {
                    *t = new.0 as i32;
                }
            }
        };
        map(&mut sg.inputs);
        map(&mut sg.outputs);
        let boundary = std::mem::take(&mut self.boundary_outputs);
        for (k, t) in boundary {
            if let Some(slot) = sg.outputs.as_mut().and_then(|o| o.get_mut(k)) {
                *slot = t.0 as i32;
            }
        }
        for sig in self
            .g
            .model
            .signature_defs
            .as_deref_mut()
            .unwrap_or(&mut [])
        {
            if sig.subgraph_index as usize != focus {
                continue;
            }
            for m in sig
                .inputs
                .iter_mut()
                .chain(sig.outputs.iter_mut())
                .flatten()
            {
                if let Some(new) = replace.get(&TensorId(m.tensor_index as usize)) {
                    m.tensor_index = new.0 as u32;
                }
            }
        }
    }
}

/// 16x8 options TF writes: int64 bias declared on CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV, and the
/// general int16 ADD/SUB kernel (`pot_scale_int16 = false`) since calibrated scales are not powers of two.
fn set_int16_options(op: &mut fb::OperatorT, code: fb::BuiltinOperator) {
    // Options left out of the file read as defaults, and the default is `pot_scale_int16 = true`.
    if matches!(op.builtin_options, fb::BuiltinOptionsT::NONE) {
        if code == fb::BuiltinOperator::ADD {
            op.builtin_options = fb::BuiltinOptionsT::AddOptions(Box::default());
        } else if code == fb::BuiltinOperator::SUB {
            op.builtin_options = fb::BuiltinOptionsT::SubOptions(Box::default());
        }
    }
    match &mut op.builtin_options {
        fb::BuiltinOptionsT::Conv2DOptions(o) => o.quantized_bias_type = fb::TensorType::INT64,
        fb::BuiltinOptionsT::FullyConnectedOptions(o) => {
            o.quantized_bias_type = fb::TensorType::INT64
        }
        fb::BuiltinOptionsT::TransposeConvOptions(o) => {
            o.quantized_bias_type = fb::TensorType::INT64
        }
        fb::BuiltinOptionsT::AddOptions(o) => o.pot_scale_int16 = false,
        fb::BuiltinOptionsT::SubOptions(o) => o.pot_scale_int16 = false,
        _ => {}
    }
}
