//! WHILE loops in the integer modes: a loop variable is one value seen through five tensors (the WHILE's
//! input and output, the cond's input, the body's input and output), which must carry the same type and
//! params, since LiteRT hands the bytes from one to the next without rescaling.

use super::plan::Decision;
use crate::graph::{Graph, TensorId};
use crate::quantize::params::QuantParams;
use crate::quantize::{QuantError, Ranges};
use crate::tflite::{self, fb};

/// A WHILE op: where it is, and the subgraphs it runs.
struct Loop {
    subgraph: usize,
    op: usize,
    cond: usize,
    body: usize,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
}

/// Every op of every subgraph that runs other subgraphs: (subgraph, op index, op code, called subgraphs).
fn calls(model: &fb::ModelT) -> Vec<(usize, usize, fb::BuiltinOperator, Vec<usize>)> {
    let codes = model.operator_codes.as_deref().unwrap_or(&[]);
    let mut out = Vec::new();
    for (s, sg) in model.subgraphs.as_deref().unwrap_or(&[]).iter().enumerate() {
        for (i, op) in sg.operators.as_deref().unwrap_or(&[]).iter().enumerate() {
            let Some(code) = codes.get(op.opcode_index as usize).map(tflite::op_code) else {
                continue;
            };
            let called = crate::graph::called_subgraphs(op);
            if called.is_empty() {
                continue;
            }
            out.push((s, i, code, called));
        }
    }
    out
}

fn loops(model: &fb::ModelT) -> Vec<Loop> {
    let subgraphs = model.subgraphs.as_deref().unwrap_or(&[]);
    calls(model)
        .into_iter()
        .filter(|(_, _, code, called)| *code == fb::BuiltinOperator::WHILE && called.len() == 2)
        .filter_map(|(s, i, _, called)| {
            let op = subgraphs.get(s)?.operators.as_deref()?.get(i)?;
            Some(Loop {
                subgraph: s,
                op: i,
                cond: called[0],
                body: called[1],
                inputs: op.inputs.clone().unwrap_or_default(),
                outputs: op.outputs.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// Tensor `k` of a subgraph's input (or output) list.
fn io(model: &fb::ModelT, s: usize, k: usize, outputs: bool) -> Option<usize> {
    let sg = model.subgraphs.as_deref()?.get(s)?;
    let list = if outputs { &sg.outputs } else { &sg.inputs };
    list.as_deref()?
        .get(k)
        .and_then(|&t| usize::try_from(t).ok())
}

/// The tensors of loop variable `k` that take its params: (subgraph, tensor) of the WHILE's output, the
/// cond's input, the body's input and output. The WHILE's own input is requantized if it differs.
fn variable(model: &fb::ModelT, l: &Loop, k: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::with_capacity(4);
    if let Some(&o) = l.outputs.get(k) {
        if let Ok(o) = usize::try_from(o) {
            v.push((l.subgraph, o));
        }
    }
    v.extend(io(model, l.cond, k, false).map(|t| (l.cond, t)));
    v.extend(io(model, l.body, k, false).map(|t| (l.body, t)));
    v.extend(io(model, l.body, k, true).map(|t| (l.body, t)));
    v
}

/// The calibrated ranges with every loop variable's tensors on the union of their ranges (over every
/// iteration: the body's tensors were observed at each one), nested loops included.
pub(super) fn unify_loop_ranges(graph: &Graph, offsets: &[usize], ranges: &Ranges) -> Ranges {
    let model = &graph.model;
    let loops = loops(model);
    let mut out = ranges.clone();
    let flat = |(s, t): (usize, usize)| offsets.get(s).map(|o| TensorId(o + t));
    // A nested loop's variables are its outer body's tensors: repeat until nothing widens.
    for _ in 0..=loops.len() {
        let mut changed = false;
        for l in &loops {
            for k in 0..l.outputs.len() {
                let members: Vec<TensorId> =
                    variable(model, l, k).into_iter().filter_map(flat).collect();
                let input = l
                    .inputs
                    .get(k)
                    .and_then(|&t| usize::try_from(t).ok())
                    .and_then(|t| flat((l.subgraph, t)));
                let union = members
                    .iter()
                    .chain(input.iter())
                    .filter_map(|t| out.get(t))
                    .fold(None, |acc: Option<(f32, f32)>, &(lo, hi)| {
                        Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
                    });
                let Some(union) = union else { continue };
                for m in members {
                    if out.get(&m) != Some(&union) {
                        out.insert(m, union);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// Per subgraph: whether its float inputs and outputs are integers (the cond and body of a quantized
/// WHILE). A subgraph run by a quantized WHILE and by an op that stays float cannot be both.
pub(super) fn integer_boundaries(
    graph: &Graph,
    decisions: &[Vec<Decision>],
) -> Result<Vec<bool>, QuantError> {
    let n = graph.subgraph_count();
    let mut state: Vec<Option<bool>> = vec![None; n];
    for (s, i, code, called) in calls(&graph.model) {
        let quantized = code == fb::BuiltinOperator::WHILE
            && matches!(
                decisions.get(s).and_then(|d| d.get(i)),
                Some(Decision::Quantize(_))
            );
        for c in called {
            let Some(slot) = state.get_mut(c) else {
                continue;
            };
            match slot {
                Some(prev) if *prev != quantized => {
                    return Err(QuantError::Unsupported(format!(
                        "subgraph {c} is run by a quantized WHILE and by an op that stays float \
                         (subgraph {s} op #{i} {}): it cannot have both integer and float inputs",
                        tflite::op_name(code)
                    )))
                }
                _ => *slot = Some(quantized),
            }
        }
    }
    Ok(state.into_iter().map(|q| q.unwrap_or(false)).collect())
}

/// Checks every loop variable's five tensors carry one type and one set of params.
pub(super) fn check_loops(graph: &Graph) -> Result<(), String> {
    let model = &graph.model;
    let subgraphs = model.subgraphs.as_deref().unwrap_or(&[]);
    let describe =
        |(s, t): (usize, usize)| -> Option<(String, fb::TensorType, Option<QuantParams>)> {
            let tensor = subgraphs.get(s)?.tensors.as_deref()?.get(t)?;
            Some((
                format!(
                    "subgraph {s} tensor {t} ({})",
                    tensor.name.as_deref().unwrap_or("")
                ),
                tensor.type_,
                tensor
                    .quantization
                    .as_deref()
                    .and_then(QuantParams::from_fb),
            ))
        };
    for l in loops(model) {
        for k in 0..l.outputs.len() {
            let mut tensors = Vec::new();
            if let Some(i) = l.inputs.get(k).and_then(|&t| usize::try_from(t).ok()) {
                tensors.push((l.subgraph, i));
            }
            tensors.extend(variable(model, &l, k));
            let described: Vec<_> = tensors.into_iter().filter_map(describe).collect();
            let Some((first_name, ty, params)) = described.first() else {
                continue;
            };
            for (name, t, p) in &described[1..] {
                if t != ty || p != params {
                    return Err(format!(
                        "WHILE (subgraph {} op #{}) loop variable {k}: {name} is {t:?} {p:?}, \
                         {first_name} is {ty:?} {params:?}",
                        l.subgraph, l.op
                    ));
                }
            }
        }
    }
    Ok(())
}
