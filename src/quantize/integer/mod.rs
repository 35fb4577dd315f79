//! The full-integer modes: `int8` (int8 activations and weights, int32 bias) and `int16x8` (int16 activations,
//! int8 weights, int64 bias), with float fallback, op sets and model I/O types as TF's converter means them.
//!
//! Steps: fold float16-stored weights, decide every op ([`plan`]), rewrite the graph ([`rewrite`]), drop
//! what became unused, and check the result ([`crate::quantize::check`]) before anyone writes it.

mod constants;
mod loops;
mod plan;
mod rewrite;

use crate::graph::{fold_fp16_constants, Graph, OpIndex, TensorId};
use crate::quantize::metadata::{self, OptimizationMode};
use crate::quantize::params::ActivationType;
use crate::quantize::rules::RuleRegistry;
use crate::quantize::{
    check, versions, IoType, Mode, QuantError, QuantOptions, QuantSummary, Ranges,
};
use crate::tflite::fb;
use plan::Decision;
pub use rewrite::record_lstm_intermediates;

/// Quantizes `graph` in place to a full-integer mode (`Mode::Int8` or `Mode::Int16x8`).
///
/// `ranges` holds the calibrated `(min, max)` of every float activation of the source graph (as read, before
/// float16 folding). Ops that cannot be quantized stay float between DEQUANTIZE and QUANTIZE ops when
/// `opts.allow_float_fallback` is set, and fail the job otherwise, listing each of them.
pub fn quantize_integer(
    graph: &mut Graph,
    mode: Mode,
    opts: &QuantOptions,
    ranges: &Ranges,
) -> Result<QuantSummary, QuantError> {
    let ty = match mode {
        Mode::Int8 => ActivationType::Int8,
        Mode::Int16x8 => ActivationType::Int16,
        other => {
            return Err(QuantError::Unsupported(format!(
                "mode {other} is not a full-integer mode"
            )))
        }
    };
    check_io_types(mode, opts)?;
    let rules = RuleRegistry::with_all_rules();
    let n_sub = graph.subgraph_count();
    // Calibrated ranges are keyed by flat id (subgraph `s`'s tensor `t` is `offsets[s] + t`, main first).
    let mut offsets = Vec::with_capacity(n_sub);
    let mut next = 0;
    for s in 0..n_sub {
        graph.focus(s);
        offsets.push(next);
        next += graph.tensors().len();
    }
    let ranges = loops::unify_loop_ranges(graph, &offsets, ranges);
    let sub_ranges: Vec<Ranges> = (0..n_sub)
        .map(|s| {
            graph.focus(s);
            let (lo, n) = (offsets[s], graph.tensors().len());
            ranges
                .range(TensorId(lo)..TensorId(lo + n))
                .map(|(t, r)| (TensorId(t.0 - lo), *r))
                .collect()
        })
        .collect();

    // Decide every op of every subgraph first: a subgraph's boundary follows its callers' decisions.
    let mut decisions = Vec::with_capacity(n_sub);
    let mut src_types = Vec::with_capacity(n_sub);
    let mut ops_float = Vec::new();
    for (s, sub) in sub_ranges.iter().enumerate() {
        graph.focus(s);
        // Folding keeps tensor ids, so the source's ranges still apply.
        fold_fp16_constants(graph);
        let types: Vec<fb::TensorType> = graph.tensors().iter().map(|t| t.type_).collect();
        // `keep_float_ops` holds main-subgraph op indices (the accuracy target's search).
        let sub_opts;
        let o = if s == 0 {
            opts
        } else {
            sub_opts = QuantOptions {
                keep_float_ops: Vec::new(),
                ..opts.clone()
            };
            &sub_opts
        };
        let d = plan::decide(graph, ty, o, &rules, sub, &types)?;
        let floats = plan::float_ops(graph, &d);
        if !opts.allow_float_fallback {
            let blocking: Vec<_> = d
                .iter()
                .zip(0..)
                .filter(|(d, _)| matches!(d, Decision::Float(_)))
                // Ops TF keeps float under TFLITE_BUILTINS_INT8 too do not block a strict build.
                .filter(|(_, i)| {
                    crate::quantize::rules::kept_float_in_every_op_set(graph.op_code(OpIndex(*i)))
                        .is_none()
                })
                .filter_map(|(_, i)| floats.iter().find(|f| f.index == i).cloned())
                .collect();
            if !blocking.is_empty() {
                return Err(QuantError::NotQuantizable {
                    mode,
                    ops: blocking,
                });
            }
        }
        ops_float.extend(floats);
        decisions.push(d);
        src_types.push(types);
    }
    let integer_boundary = loops::integer_boundaries(graph, &decisions)?;

    graph.focus(0);
    let mut warnings = crate::quantize::ExcludeSet::new(&opts.exclude).unmatched_warnings(graph);
    warnings.extend(graph.warnings.iter().cloned());
    let ops_quantized = decisions
        .iter()
        .flatten()
        .filter(|d| matches!(d, Decision::Quantize(_)))
        .count();
    let mut weights_quantized = 0;
    for (s, sub) in sub_ranges.iter().enumerate() {
        graph.focus(s);
        let mut rewriter = rewrite::Rewriter::new(graph, ty, opts, sub);
        if integer_boundary[s] {
            rewriter = rewriter.with_integer_boundary();
        }
        rewriter.run(&decisions[s], &src_types[s])?;
        weights_quantized += rewriter.weights_quantized;
        rewrite::drop_recorded_intermediates(graph);
        graph.remove_unused_tensors();
    }
    graph.focus(0);
    graph.remove_unused_buffers();
    for s in 0..n_sub {
        graph.focus(s);
        check::check_integer(graph, ty, &rules)
            .map_err(|e| QuantError::SelfCheck(in_subgraph(s, e)))?;
    }
    graph.focus(0);
    loops::check_loops(graph).map_err(QuantError::SelfCheck)?;
    let optimization = match ty {
        ActivationType::Int8 => OptimizationMode::PtqFullInteger,
        ActivationType::Int16 => OptimizationMode::PtqInt16,
    };
    metadata::set_conversion_metadata(graph, optimization);
    versions::finalize(graph, opts.target_runtime.as_deref())?;
    Ok(QuantSummary {
        ops_quantized,
        ops_float,
        weights_quantized,
        warnings,
    })
}

fn in_subgraph(s: usize, e: String) -> String {
    if s == 0 {
        e
    } else {
        format!("subgraph {s}: {e}")
    }
}

fn check_io_types(mode: Mode, opts: &QuantOptions) -> Result<(), QuantError> {
    let allowed: &[IoType] = match mode {
        Mode::Int16x8 => &[IoType::Float32, IoType::Int16],
        _ => &[IoType::Float32, IoType::Int8, IoType::Uint8],
    };
    for (what, t) in [
        ("inference_input_type", opts.inference_input_type),
        ("inference_output_type", opts.inference_output_type),
    ] {
        if !allowed.contains(&t) {
            return Err(QuantError::Unsupported(format!(
                "{what} {t:?} is not available in mode {mode} (expected one of {allowed:?})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
