//! Deciding, op by op, what the integer modes do: quantize it, keep it float (and why), pass it through
//! (custom/Flex ops under `SELECT_TF_OPS`), or leave it alone (ops that compute on integers already).

use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::params::ActivationType;
use crate::quantize::rules::{CustomRule, OpRule, RuleRegistry};
use crate::quantize::{ExcludeSet, FloatOp, QuantError, QuantOptions, Ranges};
use crate::tflite::fb;
use std::collections::BTreeSet;

/// What happens to one op.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Quantized with this rule.
    Quantize(OpRule),
    /// Stays float for this reason.
    Float(String),
    /// A custom or Flex op carried untouched (`SELECT_TF_OPS`); it computes in float.
    PassThrough,
    /// No float tensor is involved (integer shape arithmetic and the like): nothing to do.
    Untouched,
}

/// Whether a custom op is a TensorFlow (Flex) op.
fn is_flex(custom_code: Option<&str>) -> bool {
    custom_code.is_some_and(|c| c.starts_with("Flex"))
}

/// Decides every op of the main subgraph, in execution order.
///
/// `src_types` are the tensor types of the float source. Fails when a custom op appears without
/// `SELECT_TF_OPS`, or when a float activation the op needs has no calibrated range and does not depend on a
/// pass-through op.
pub(crate) fn decide(
    graph: &Graph,
    ty: ActivationType,
    opts: &QuantOptions,
    rules: &RuleRegistry,
    ranges: &Ranges,
    src_types: &[fb::TensorType],
) -> Result<Vec<Decision>, QuantError> {
    let exclude = ExcludeSet::new(&opts.exclude);
    // Tensors computed by (or downstream of) pass-through ops: calibration could not run them.
    let mut tainted: BTreeSet<TensorId> = BTreeSet::new();
    let mut out = Vec::with_capacity(graph.ops().len());
    let is_float = |t: TensorId| src_types.get(t.0) == Some(&fb::TensorType::FLOAT32);
    for i in 0..graph.ops().len() {
        let op = OpIndex(i);
        let code = graph.op_code(op);
        let inputs = graph.op_inputs(op);
        let outputs = graph.op_outputs(op);
        let name = graph.op_type_name(op);
        if code == fb::BuiltinOperator::CUSTOM
            || is_flex(graph.op_code_entry(op).custom_code.as_deref())
        {
            if !opts.select_tf_ops {
                return Err(QuantError::Unsupported(format!(
                    "op #{i} {name} ({}) is a custom/Flex op: add \"SELECT_TF_OPS\" to op_sets to pass it through",
                    outputs.first().map_or("", |&t| graph.tensor_name(t))
                )));
            }
            tainted.extend(outputs.iter().copied());
            out.push(Decision::PassThrough);
            continue;
        }
        let touches_float = inputs
            .iter()
            .flatten()
            .chain(outputs.iter())
            .any(|&t| is_float(t) && !graph.is_constant(t));
        let upstream = inputs.iter().flatten().find(|t| tainted.contains(t));
        if let Some(&t) = upstream {
            tainted.extend(outputs.iter().copied());
            out.push(Decision::Float(format!(
                "depends on a pass-through custom/Flex op (tensor {}), which calibration cannot run",
                graph.tensor_name(t)
            )));
            continue;
        }
        if !touches_float {
            out.push(Decision::Untouched);
            continue;
        }
        if opts.keep_float_ops.contains(&i) {
            out.push(Decision::Float(
                "kept float to meet the accuracy target".into(),
            ));
            continue;
        }
        if exclude.matches(graph, op) {
            out.push(Decision::Float("excluded by `exclude`".into()));
            continue;
        }
        if let Some(why) = crate::quantize::rules::kept_float_in_every_op_set(code) {
            out.push(Decision::Float(why.into()));
            continue;
        }
        let rule = match rules.for_type(code, ty) {
            Ok(rule) => rule,
            Err(why) => {
                let why = why.unwrap_or("litequant does not know this op");
                out.push(Decision::Float(format!("{name} stays float: {why}")));
                continue;
            }
        };
        let custom = match rule.custom {
            Some(CustomRule::Lstm) => super::rewrite::lstm_refusal(graph, op, ranges),
            Some(CustomRule::Loop) | None => None,
        };
        if let Some(why) = custom {
            out.push(Decision::Float(format!("{name} stays float: {why}")));
            continue;
        }
        match check_operands(graph, op, rule, ranges, &is_float) {
            Ok(()) => out.push(Decision::Quantize(rule.clone())),
            Err(Operands::NotFloat) => out.push(Decision::Untouched),
            Err(Operands::Float(why)) => out.push(Decision::Float(why)),
            Err(Operands::NoRange(t)) => {
                return Err(QuantError::MissingRange(format!(
                    "{} (op #{i} {name}): calibration recorded no range for it",
                    graph.tensor_name(t)
                )))
            }
        }
    }
    Ok(out)
}

enum Operands {
    /// The op computes on non-float tensors: nothing to quantize.
    NotFloat,
    /// The op cannot be quantized as it stands.
    Float(String),
    /// A tensor needs a calibrated range and has none.
    NoRange(TensorId),
}

fn check_operands(
    graph: &Graph,
    op: OpIndex,
    rule: &OpRule,
    ranges: &Ranges,
    is_float: &dyn Fn(TensorId) -> bool,
) -> Result<(), Operands> {
    if rule.custom == Some(CustomRule::Loop) {
        return check_loop(graph, op, ranges, is_float);
    }
    let inputs = graph.op_inputs(op);
    let n = inputs.len();
    let mut any_activation = false;
    for (p, t) in inputs.iter().enumerate() {
        let Some(t) = *t else { continue };
        if rule.activations.contains(p, n) {
            if !is_float(t) {
                return Err(Operands::NotFloat);
            }
            any_activation = true;
            if !graph.is_constant(t) && !ranges.contains_key(&t) {
                return Err(Operands::NoRange(t));
            }
        }
    }
    if !any_activation {
        return Err(Operands::NotFloat);
    }
    if let Some(w) = rule.weights {
        match inputs.get(w.input).copied().flatten() {
            Some(t) if is_float(t) && graph.is_constant(t) => {}
            _ => {
                return Err(Operands::Float(
                    "its weights are not a constant float tensor".into(),
                ))
            }
        }
    }
    if let Some(b) = rule.bias {
        if let Some(t) = inputs.get(b).copied().flatten() {
            if !(is_float(t) && graph.is_constant(t)) {
                return Err(Operands::Float(
                    "its bias is not a constant float tensor".into(),
                ));
            }
        }
    }
    for &p in rule.same_as_input {
        if let Some(t) = inputs.get(p).copied().flatten() {
            if !(is_float(t) && graph.is_constant(t)) {
                return Err(Operands::Float(format!(
                    "its input {p} is not a constant float tensor"
                )));
            }
        }
    }
    for t in graph.op_outputs(op) {
        if rule.output == crate::quantize::rules::OutputRule::NotQuantized {
            continue;
        }
        if !is_float(t) {
            return Err(Operands::Float("an output is not float".into()));
        }
        if !ranges.contains_key(&t) {
            return Err(Operands::NoRange(t));
        }
    }
    Ok(())
}

/// A WHILE: input `k` and output `k` are one loop variable; float ones need their output's range.
fn check_loop(
    graph: &Graph,
    op: OpIndex,
    ranges: &Ranges,
    is_float: &dyn Fn(TensorId) -> bool,
) -> Result<(), Operands> {
    let inputs = graph.op_inputs(op);
    let outputs = graph.op_outputs(op);
    if inputs.len() != outputs.len() {
        return Err(Operands::Float(format!(
            "{} inputs for {} outputs: not loop variables",
            inputs.len(),
            outputs.len()
        )));
    }
    let mut any = false;
    for (i, &o) in inputs.iter().zip(&outputs) {
        let Some(i) = *i else {
            return Err(Operands::Float("an omitted loop variable".into()));
        };
        if is_float(i) != is_float(o) {
            return Err(Operands::Float(format!(
                "loop variable {} changes type",
                graph.tensor_name(o)
            )));
        }
        if !is_float(o) {
            continue;
        }
        any = true;
        if !ranges.contains_key(&o) {
            return Err(Operands::NoRange(o));
        }
    }
    if any {
        Ok(())
    } else {
        Err(Operands::NotFloat)
    }
}

/// The ops that stay float (pass-through ops included, with their reason) for the report.
pub(crate) fn float_ops(graph: &Graph, decisions: &[Decision]) -> Vec<FloatOp> {
    decisions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let reason = match d {
                Decision::Float(why) => why.clone(),
                Decision::PassThrough => "custom/Flex op passed through (SELECT_TF_OPS)".into(),
                _ => return None,
            };
            let op = OpIndex(i);
            Some(FloatOp {
                subgraph: graph.focused(),
                index: i,
                op: graph.op_type_name(op),
                output: graph
                    .op_outputs(op)
                    .first()
                    .map_or(String::new(), |&t| graph.tensor_name(t).to_string()),
                reason,
            })
        })
        .collect()
}
