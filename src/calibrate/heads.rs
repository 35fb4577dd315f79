//! Output heads (`output_aware = true`): the range of a tensor that reaches a model output only through a
//! SOFTMAX, LOGISTIC or TANH is chosen by the error it causes at that output, not by its own extent.
//!
//! The int8 forms of these ops have a fixed output grid (1/256 from -128 for SOFTMAX and LOGISTIC, 1/128 for
//! TANH: the quantization spec), so the one choice left is their input's. Its minmax range is set by values
//! the output cannot tell apart: a logit far below a sample's largest one gives the same probability (0) at
//! any value, an input of LOGISTIC beyond +-8 the same 0 or 1. Narrowing the range towards where the output
//! moves buys a finer step where it matters (a SOFTMAX's lower bound only: its largest inputs are the
//! winners'); how far is measured: every candidate range quantizes the
//! calibration samples' input values, the op's float function runs on them, its output is rounded to its
//! int8 grid, and the range with the least squared error against the float output wins (ties: the wider).
//! For a classifier's SOFTMAX this is the model's output error itself, as far as its input's rounding
//! causes it.

use std::collections::{BTreeMap, HashSet};

use crate::graph::{Graph, OpIndex, TensorId};
use crate::quantize::params::asymmetric_int8;
use crate::tflite::fb;

/// Candidate bounds per side: the minmax bound scaled by `1 - k / STEPS` towards 0.
const STEPS: usize = 32;

/// Values of a head's input the choice is measured on, at most (the first calibration samples' whole
/// tensors): 4 MiB per head, and a bounded search on a head as large as a segmentation mask.
pub const MAX_VALUES: usize = 1 << 20;

/// The op a head's input passes through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadOp {
    /// SOFTMAX over the last axis with `beta`.
    Softmax {
        /// The logits' multiplier.
        beta: f32,
    },
    /// LOGISTIC, element-wise.
    Logistic,
    /// TANH, element-wise.
    Tanh,
}

impl HeadOp {
    /// The output grid of the op's int8 form: `(scale, zero point)`.
    fn grid(self) -> (f32, f32) {
        match self {
            HeadOp::Softmax { .. } | HeadOp::Logistic => (1.0 / 256.0, -128.0),
            HeadOp::Tanh => (1.0 / 128.0, 0.0),
        }
    }

    /// The float function on one row (the last axis for SOFTMAX, any run of values otherwise).
    fn apply(self, x: &[f32], out: &mut [f32]) {
        match self {
            HeadOp::Softmax { beta } => {
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0f32;
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = (beta * (v - max)).exp();
                    sum += *o;
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
            }
            HeadOp::Logistic => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = 1.0 / (1.0 + (-v).exp());
                }
            }
            HeadOp::Tanh => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v.tanh();
                }
            }
        }
    }
}

/// A tensor that reaches a model output only through one op of [`HeadOp`].
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The op (in the graph [`heads`] read).
    pub index: OpIndex,
    /// The op's input, whose range is chosen.
    pub input: TensorId,
    /// The op.
    pub op: HeadOp,
    /// Length of a row the op works on (the last axis for SOFTMAX).
    pub row: usize,
}

/// The heads of the main subgraph: SOFTMAX, LOGISTIC and TANH ops whose output is a model output and whose
/// float input is read by no other op (its range then changes nothing else) and is not a model input.
pub fn heads(graph: &Graph) -> Vec<Head> {
    let outputs: HashSet<TensorId> = graph.outputs().into_iter().collect();
    let inputs: HashSet<TensorId> = graph.inputs().into_iter().collect();
    let consumers = graph.consumers();
    (0..graph.ops().len())
        .map(OpIndex)
        .filter_map(|op| {
            let output = *graph.op_outputs(op).first()?;
            let input = (*graph.op_inputs(op).first()?)?;
            if !outputs.contains(&output)
                || inputs.contains(&input)
                || consumers.get(input.0).is_none_or(|c| c.len() != 1)
                || graph.tensor(input).type_ != fb::TensorType::FLOAT32
            {
                return None;
            }
            let last = graph.shape(input).last().copied().unwrap_or(1);
            let head_op = match graph.op_code(op) {
                fb::BuiltinOperator::SOFTMAX => HeadOp::Softmax {
                    beta: graph.op(op).builtin_options.as_softmax_options()?.beta,
                },
                fb::BuiltinOperator::LOGISTIC => HeadOp::Logistic,
                fb::BuiltinOperator::TANH => HeadOp::Tanh,
                _ => return None,
            };
            let row = match head_op {
                HeadOp::Softmax { .. } => usize::try_from(last).ok().filter(|&r| r > 0)?,
                _ => 1,
            };
            Some(Head {
                index: op,
                input,
                op: head_op,
                row,
            })
        })
        .collect()
}

/// The squared output error of quantizing `values` (rows of `head.row`) to the int8 range `[lo, hi]`
/// before `head`'s op, against the op on the float values; `None` for a range without int8 params.
fn error(head: &Head, values: &[f32], reference: &[f32], lo: f32, hi: f32) -> Option<f64> {
    let params = asymmetric_int8(lo, hi).ok()?;
    let (scale, zero) = (
        *params.scale().first()?,
        *params.zero_point().first()? as f32,
    );
    let (out_scale, out_zero) = head.op.grid();
    let mut x = vec![0.0f32; head.row];
    let mut y = vec![0.0f32; head.row];
    let mut total = 0.0f64;
    for (row, want) in values
        .chunks_exact(head.row)
        .zip(reference.chunks_exact(head.row))
    {
        for (q, &v) in x.iter_mut().zip(row) {
            *q = ((v / scale).round() + zero).clamp(-128.0, 127.0);
            *q = (*q - zero) * scale;
        }
        head.op.apply(&x, &mut y);
        for (&got, &want) in y.iter().zip(want) {
            let code = ((got / out_scale).round() + out_zero).clamp(-128.0, 127.0);
            let e = f64::from((code - out_zero) * out_scale - want);
            total += e * e;
        }
    }
    Some(total)
}

/// The range of `head`'s input chosen on `values` (every calibration sample's input values, in sample order)
/// from the minmax range `(lo, hi)`: first the lower bound, then (LOGISTIC, TANH: both tails saturate) the
/// upper, each among [`STEPS`] candidates from the minmax bound towards 0, by [`error`]. The minmax range
/// when nothing does better.
pub fn choose(head: &Head, values: &[f32], (lo, hi): (f32, f32)) -> (f32, f32) {
    let rows = values.len() / head.row.max(1);
    if rows == 0 || !(lo.is_finite() && hi.is_finite()) {
        return (lo, hi);
    }
    let values = &values[..rows * head.row];
    let mut reference = vec![0.0f32; values.len()];
    for (x, y) in values
        .chunks_exact(head.row)
        .zip(reference.chunks_exact_mut(head.row))
    {
        head.op.apply(x, y);
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let Some(mut best) = error(head, values, &reference, lo, hi) else {
        return (lo, hi);
    };
    let mut chosen = (lo, hi);
    let shrink = |bound: f32, k: usize| bound * (1.0 - k as f32 / STEPS as f32);
    for k in 1..STEPS {
        let candidate = (shrink(lo, k), hi);
        if let Some(e) = error(head, values, &reference, candidate.0, candidate.1) {
            if e < best {
                (best, chosen) = (e, candidate);
            }
        }
    }
    // A SOFTMAX keeps its upper bound: the largest logits are the winners', where the output moves most.
    if matches!(head.op, HeadOp::Softmax { .. }) {
        return chosen;
    }
    let low = chosen.0;
    for k in 1..STEPS {
        let candidate = (low, shrink(hi, k));
        if let Some(e) = error(head, values, &reference, candidate.0, candidate.1) {
            if e < best {
                (best, chosen) = (e, candidate);
            }
        }
    }
    chosen
}

/// `ranges` with each head's input range chosen on its `captured` values ([`choose`]); heads without values
/// or range keep theirs.
pub fn refine(
    ranges: &mut BTreeMap<TensorId, (f32, f32)>,
    heads: &[Head],
    captured: &BTreeMap<TensorId, Vec<f32>>,
) {
    for head in heads {
        if let (Some(range), Some(values)) =
            (ranges.get_mut(&head.input), captured.get(&head.input))
        {
            *range = choose(head, values, *range);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_far_below_the_winner_stop_setting_the_range() {
        // Ten classes: one winner near 4, the others around -20 (softmax 0 at any of those values) except a
        // runner-up near 3: minmax spends most of its 256 steps on the -20s.
        let mut values = Vec::new();
        for s in 0..50 {
            let t = s as f32 / 50.0;
            values.push(4.0 + t);
            values.push(3.0 + 0.5 * t);
            values.extend((0..8).map(|c| -20.0 - c as f32 * 0.3 + t));
        }
        let head = Head {
            index: OpIndex(0),
            input: TensorId(0),
            op: HeadOp::Softmax { beta: 1.0 },
            row: 10,
        };
        let minmax = (-22.1, 5.0);
        let (lo, hi) = choose(&head, &values, minmax);
        assert!(lo > -22.0 && hi == 5.0, "{lo} {hi}");
        let reference: Vec<f32> = values
            .chunks(10)
            .flat_map(|x| {
                let mut y = vec![0.0; 10];
                head.op.apply(x, &mut y);
                y
            })
            .collect();
        let (narrow, wide) = (
            error(&head, &values, &reference, lo, hi).unwrap(),
            error(&head, &values, &reference, minmax.0, minmax.1).unwrap(),
        );
        assert!(narrow < wide, "{narrow} {wide}");
        // Deterministic.
        assert_eq!(choose(&head, &values, minmax), (lo, hi));
    }

    #[test]
    fn a_range_every_value_needs_is_kept() {
        // Inputs of LOGISTIC spread evenly over [-1, 1]: clipping any of them costs more than it gains.
        let values: Vec<f32> = (0..=200).map(|i| -1.0 + i as f32 / 100.0).collect();
        let head = Head {
            index: OpIndex(0),
            input: TensorId(0),
            op: HeadOp::Logistic,
            row: 1,
        };
        let (lo, hi) = choose(&head, &values, (-1.0, 1.0));
        assert!(lo <= -0.9 && hi >= 0.9, "{lo} {hi}");
    }

    #[test]
    fn no_values_keep_the_range() {
        let head = Head {
            index: OpIndex(0),
            input: TensorId(0),
            op: HeadOp::Tanh,
            row: 1,
        };
        assert_eq!(choose(&head, &[], (-3.0, 2.0)), (-3.0, 2.0));
    }
}
