//! Checking a quantized graph before it is written.
//!
//! LiteRT catches some mistakes at load time (scale counts) but not others: an int8 bias with the wrong scale
//! loads and silently computes wrong numbers. Every rule the quantizer follows is checked here again on the
//! result, so a bug fails the job instead of shipping a broken model.

use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::params::{ActivationType, QuantParams};
use crate::quantize::rules::{OpRule, OutputRule, RuleRegistry};
use crate::tflite::fb;

/// Relative tolerance on the bias scale (`input_scale * weight_scale` is computed in float32).
const BIAS_SCALE_TOLERANCE: f64 = 1e-5;

/// Checks every quantized tensor and every op quantized to `ty` in the main subgraph.
///
/// Returns a message naming the op and tensor of the first violation.
pub fn check_integer(
    graph: &Graph,
    ty: ActivationType,
    rules: &RuleRegistry,
) -> Result<(), String> {
    for i in 0..graph.tensors().len() {
        check_tensor_params(graph, TensorId(i))?;
    }
    for i in 0..graph.ops().len() {
        let op = OpIndex(i);
        let Some(rule) = rules.get(graph.op_code(op)) else {
            continue;
        };
        check_op(graph, op, rule, ty).map_err(|e| {
            let out = graph
                .op_outputs(op)
                .first()
                .map_or(String::new(), |&t| graph.tensor_name(t).to_string());
            format!("op #{i} {} ({out}): {e}", graph.op_type_name(op))
        })?;
    }
    Ok(())
}

/// Scale and zero-point lists the interpreter accepts: equal lengths, positive scales, one per slice.
fn check_tensor_params(graph: &Graph, t: TensorId) -> Result<(), String> {
    let tensor = graph.tensor(t);
    let Some(q) = tensor.quantization.as_deref() else {
        return Ok(());
    };
    let Some(scale) = q.scale.as_deref() else {
        return Ok(());
    };
    let name = graph.tensor_name(t);
    let params = QuantParams::from_fb(q).ok_or_else(|| {
        format!(
            "tensor {name}: {} scales, {:?} zero points, or a scale that is not positive",
            scale.len(),
            q.zero_point.as_ref().map(Vec::len)
        )
    })?;
    if !params.is_per_tensor() {
        let shape = graph.shape(t);
        let dim = usize::try_from(params.quantized_dimension())
            .ok()
            .and_then(|d| shape.get(d));
        match dim {
            Some(&d) if d as usize == scale.len() => {}
            _ => {
                return Err(format!(
                    "tensor {name}: {} scales on quantized_dimension {} of shape {shape:?}",
                    scale.len(),
                    params.quantized_dimension()
                ))
            }
        }
    }
    Ok(())
}

fn params(graph: &Graph, t: TensorId) -> Result<QuantParams, String> {
    graph
        .tensor(t)
        .quantization
        .as_deref()
        .and_then(QuantParams::from_fb)
        .ok_or_else(|| format!("tensor {} has no quantization params", graph.tensor_name(t)))
}

fn check_activation(graph: &Graph, t: TensorId, ty: ActivationType) -> Result<QuantParams, String> {
    let p = params(graph, t)?;
    let name = graph.tensor_name(t);
    if graph.tensor(t).type_ != ty.tensor_type() {
        return Err(format!(
            "tensor {name} is {:?}, expected {:?}",
            graph.tensor(t).type_,
            ty.tensor_type()
        ));
    }
    if !p.is_per_tensor() {
        return Err(format!("activation {name} has per-axis params"));
    }
    let zp = p.zero_point()[0];
    let ok = match ty {
        ActivationType::Int8 => (-128..=127).contains(&zp),
        ActivationType::Int16 => zp == 0,
    };
    if !ok {
        return Err(format!(
            "activation {name} has zero point {zp}, outside what {ty:?} allows"
        ));
    }
    Ok(p)
}

fn check_op(graph: &Graph, op: OpIndex, rule: &OpRule, ty: ActivationType) -> Result<(), String> {
    let inputs = graph.op_inputs(op);
    let n = inputs.len();
    let activations: Vec<TensorId> = inputs
        .iter()
        .enumerate()
        .filter(|(p, _)| rule.activations.contains(*p, n))
        .filter_map(|(_, t)| *t)
        .collect();
    // Only ops that were quantized: their activations now hold integers of the mode's type.
    let Some(&first) = activations.first() else {
        return Ok(());
    };
    if graph.tensor(first).type_ != ty.tensor_type() {
        return Ok(());
    }
    let input_params = check_activation(graph, first, ty)?;
    let mut outputs = Vec::new();
    for t in graph.op_outputs(op) {
        // BOOL and index outputs keep their type and carry no params.
        if rule.output != OutputRule::NotQuantized {
            outputs.push((t, check_activation(graph, t, ty)?));
        }
    }
    for &t in &activations[1..] {
        check_activation(graph, t, ty)?;
    }
    match rule.output {
        OutputRule::SameAsInput => same_params(
            graph,
            &outputs,
            &input_params,
            "output must reuse the input's params",
        )?,
        OutputRule::SameAsInputInt16 if ty == ActivationType::Int16 => same_params(
            graph,
            &outputs,
            &input_params,
            "int16 output must reuse the input's params",
        )?,
        OutputRule::Fixed { int8, int16 } => {
            let (scale, zp) = if ty == ActivationType::Int8 {
                int8
            } else {
                int16
            };
            for (t, p) in &outputs {
                if p.scale()[0] != scale || p.zero_point()[0] != zp {
                    return Err(format!(
                        "output {} has ({}, {}), the kernel needs ({scale}, {zp})",
                        graph.tensor_name(*t),
                        p.scale()[0],
                        p.zero_point()[0]
                    ));
                }
            }
        }
        _ => {}
    }
    if rule.inputs_match_output {
        if let Some((_, out)) = outputs.first() {
            for &t in &activations {
                if params(graph, t)? != *out {
                    return Err(format!(
                        "input {} must carry the output's params exactly",
                        graph.tensor_name(t)
                    ));
                }
            }
        }
    }
    for &p in rule.same_as_input {
        if let Some(Some(t)) = inputs.get(p) {
            if params(graph, *t)? != input_params {
                return Err(format!(
                    "input {} must carry the first input's params",
                    graph.tensor_name(*t)
                ));
            }
        }
    }
    if let Some(w) = rule.weights {
        let wt = inputs
            .get(w.input)
            .copied()
            .flatten()
            .ok_or("weights are missing")?;
        let wp = params(graph, wt)?;
        if graph.tensor(wt).type_ != fb::TensorType::INT8 || wp.zero_point().iter().any(|&z| z != 0)
        {
            return Err(format!(
                "weights {} must be int8 with zero point 0",
                graph.tensor_name(wt)
            ));
        }
        if let Some(bt) = rule.bias.and_then(|b| inputs.get(b).copied().flatten()) {
            check_bias(graph, bt, &input_params, &wp, ty)?;
        }
    }
    Ok(())
}

fn same_params(
    graph: &Graph,
    outputs: &[(TensorId, QuantParams)],
    input: &QuantParams,
    why: &str,
) -> Result<(), String> {
    for (t, p) in outputs {
        if p != input {
            return Err(format!("{why}: {} differs", graph.tensor_name(*t)));
        }
    }
    Ok(())
}

/// Bias: int32 (int64 for int16 activations), zero point 0, `scale[c] = input_scale * weight_scale[c]`.
fn check_bias(
    graph: &Graph,
    bt: TensorId,
    input: &QuantParams,
    weights: &QuantParams,
    ty: ActivationType,
) -> Result<(), String> {
    let name = graph.tensor_name(bt);
    let bp = params(graph, bt)?;
    let expected_type = match ty {
        ActivationType::Int8 => fb::TensorType::INT32,
        ActivationType::Int16 => fb::TensorType::INT64,
    };
    if graph.tensor(bt).type_ != expected_type {
        return Err(format!(
            "bias {name} is {:?}, expected {expected_type:?}",
            graph.tensor(bt).type_
        ));
    }
    if bp.scale().len() != weights.scale().len() {
        return Err(format!(
            "bias {name} has {} scales, the weights {}",
            bp.scale().len(),
            weights.scale().len()
        ));
    }
    for (c, (b, w)) in bp.scale().iter().zip(weights.scale()).enumerate() {
        let expected = f64::from(input.scale()[0]) * f64::from(*w);
        if (f64::from(*b) - expected).abs() > expected * BIAS_SCALE_TOLERANCE {
            return Err(format!("bias {name} channel {c} has scale {b}, expected input_scale * weight_scale = {expected}"));
        }
    }
    if bp.zero_point().iter().any(|&z| z != 0) {
        return Err(format!("bias {name} has a non-zero zero point"));
    }
    Ok(())
}
