//! Accuracy targets (`target_sqnr_db`, `max_top1_drop`): which op to keep float next, and what it cost.
//!
//! The search is greedy, as TFLite's quantization debugger suggests doing by hand: quantize, evaluate, and
//! while the target is missed keep float the op that adds the most error of its own, the op whose output's
//! noise-to-signal ratio exceeds its inputs' by the most (an op that only passes its input's error on, such as
//! a reshape or a pooling, adds none); repeat. Every step is one more op in float.

use super::{Accuracy, TensorAccuracy};
use crate::config::AccuracyTarget;
use crate::graph::{Graph, OpIndex};
use crate::tflite::{self, fb};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What meeting the target took, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetOutcome {
    /// The target's output SQNR in dB, if set.
    pub target_sqnr_db: Option<f64>,
    /// The target's largest top-1 agreement drop, if set.
    pub max_top1_drop: Option<f64>,
    /// Output SQNR with every op quantized (before any was kept float).
    pub sqnr_db_fully_quantized: Option<f64>,
    /// Top-1 agreement with every op quantized.
    pub top1_agreement_fully_quantized: Option<f64>,
    /// Ops kept float, in the order they were chosen.
    pub kept_float: Vec<KeptOp>,
    /// Artifact size with every op quantized.
    pub bytes_fully_quantized: u64,
    /// Share of the model's multiply-adds (per sample) that run in float because of `kept_float`.
    pub float_mac_share: f64,
}

/// One op kept float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptOp {
    /// Index in the source model.
    pub op_index: usize,
    /// Op type.
    pub op: String,
    /// Its (first) output tensor.
    pub tensor: String,
    /// Its output SQNR when it was chosen.
    pub sqnr_db: Option<f64>,
    /// The model's output SQNR once it is float.
    pub output_sqnr_db_after: Option<f64>,
}

/// Whether `acc` meets `target`; `Err` when the target cannot be measured on this model.
pub fn meets(target: &AccuracyTarget, acc: &Accuracy) -> Result<bool, String> {
    let mut ok = true;
    if let Some(t) = target.sqnr_db {
        ok &= acc.sqnr_db.is_none_or(|s| s >= t);
    }
    if let Some(d) = target.max_top1_drop {
        let agreement = acc.top1_agreement.ok_or_else(|| {
            "`max_top1_drop` needs a classifier output (rows of probabilities) or labels in the evaluation \
             dataset, and this model has neither"
                .to_string()
        })?;
        ok &= 1.0 - agreement <= d + 1e-12;
    }
    Ok(ok)
}

/// Noise-to-signal ratio of a tensor (0 when identical).
fn noise_ratio(t: &TensorAccuracy) -> f64 {
    t.sqnr_db.map_or(0.0, |db| 10f64.powf(-db / 10.0))
}

/// A round keeps float, with the most damaging op, every op whose damage is at least this share of its.
const BATCH_SHARE: f64 = 0.5;

/// The ops of `float` to keep float next: among the ops computing an integer tensor, the one whose output's
/// noise-to-signal ratio most exceeds its worst input's, and with it every op whose excess is at least
/// [`BATCH_SHARE`] of that one's (ops equally to blame are kept float in one round, not one evaluation each),
/// most damaging first. Empty when no integer op is left.
pub fn most_damaging(float: &Graph, acc: &Accuracy, kept: &[usize]) -> Vec<usize> {
    let by_name: HashMap<&str, &TensorAccuracy> =
        acc.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut damages: Vec<(f64, usize)> = Vec::new();
    for t in &acc.tensors {
        let Some(op) = t.op_index else { continue };
        if kept.contains(&op) || t.dtype == "float32" || t.dtype == "float16" {
            continue;
        }
        let input_ratio = float
            .op_inputs(OpIndex(op))
            .into_iter()
            .flatten()
            .filter_map(|i| by_name.get(float.tensor_name(i)))
            .map(|i| noise_ratio(i))
            .fold(0.0f64, f64::max);
        let damage = noise_ratio(t) - input_ratio;
        if !damages.iter().any(|&(_, o)| o == op) {
            damages.push((damage, op));
        }
    }
    // Most damaging first; ties (and NaN) in op order, so the choice never depends on the tensors' order.
    damages.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let Some(&(top, _)) = damages.first() else {
        return Vec::new();
    };
    damages
        .iter()
        .take_while(|(d, _)| *d >= top * BATCH_SHARE || top <= 0.0)
        .take(if top <= 0.0 { 1 } else { usize::MAX })
        .map(|&(_, op)| op)
        .collect()
}

/// Multiply-adds of op `i` per sample, from shapes: output elements times the depth of a constant weight
/// (conv, depthwise, fully connected, batch matmul), else output elements.
fn macs(g: &Graph, i: OpIndex) -> f64 {
    let elements = |t: crate::graph::TensorId| -> f64 {
        g.tensor(t)
            .shape
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&d| d.max(1) as f64)
            .product()
    };
    let out: f64 = g.op_outputs(i).into_iter().map(elements).sum();
    let weights = g.op_inputs(i).get(1).copied().flatten();
    let depth = match (g.op_code(i), weights) {
        (fb::BuiltinOperator::CONV_2D | fb::BuiltinOperator::FULLY_CONNECTED, Some(w)) => {
            let shape = g.tensor(w).shape.clone().unwrap_or_default();
            shape.iter().skip(1).map(|&d| d.max(1) as f64).product()
        }
        (fb::BuiltinOperator::DEPTHWISE_CONV_2D, Some(w)) => {
            let shape = g.tensor(w).shape.clone().unwrap_or_default();
            shape
                .iter()
                .skip(1)
                .take(2)
                .map(|&d| d.max(1) as f64)
                .product()
        }
        (fb::BuiltinOperator::BATCH_MATMUL, Some(w)) => {
            let shape = g.tensor(w).shape.clone().unwrap_or_default();
            shape.iter().rev().nth(1).map_or(1.0, |&d| d.max(1) as f64)
        }
        _ => 1.0,
    };
    out * depth
}

/// The share of the model's multiply-adds that `kept` ops compute.
pub fn mac_share(g: &Graph, kept: &[usize]) -> f64 {
    let total: f64 = (0..g.ops().len()).map(|i| macs(g, OpIndex(i))).sum();
    let kept: f64 = kept.iter().map(|&i| macs(g, OpIndex(i))).sum();
    if total > 0.0 {
        kept / total
    } else {
        0.0
    }
}

/// `KeptOp` for op `i` of `g`, chosen at SQNR `sqnr_db`.
pub fn kept_op(g: &Graph, i: usize, sqnr_db: Option<f64>) -> KeptOp {
    let op = OpIndex(i);
    KeptOp {
        op_index: i,
        op: tflite::op_name(g.op_code(op)),
        tensor: g
            .op_outputs(op)
            .first()
            .map(|&t| g.tensor_name(t).to_string())
            .unwrap_or_default(),
        sqnr_db,
        output_sqnr_db_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(sqnr: Option<f64>, top1: Option<f64>) -> Accuracy {
        Accuracy {
            dataset: "eval".into(),
            samples: 10,
            sqnr_db: sqnr,
            max_abs_error: 0.0,
            mean_abs_error: 0.0,
            top1_agreement: top1,
            label_output: None,
            accuracy_float: None,
            accuracy_quant: None,
            outputs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    #[test]
    fn sqnr_target_is_met_at_or_above_it_and_by_identical_outputs() {
        let t = AccuracyTarget {
            sqnr_db: Some(30.0),
            max_top1_drop: None,
        };
        assert_eq!(meets(&t, &acc(Some(30.0), None)), Ok(true));
        assert_eq!(meets(&t, &acc(Some(29.9), None)), Ok(false));
        assert_eq!(meets(&t, &acc(None, None)), Ok(true));
    }

    #[test]
    fn top1_drop_needs_a_classifier_and_compares_disagreement() {
        let t = AccuracyTarget {
            sqnr_db: None,
            max_top1_drop: Some(0.01),
        };
        assert_eq!(meets(&t, &acc(Some(20.0), Some(0.99))), Ok(true));
        assert_eq!(meets(&t, &acc(Some(20.0), Some(0.985))), Ok(false));
        assert!(meets(&t, &acc(Some(20.0), None)).is_err());
    }
}
