//! `dynamic` mode (TFLite dynamic range): int8 symmetric weights, float activations.
//!
//! Which ops get int8 weights is each op's dynamic face in the op table ([`crate::ops`]).
//! Ops with a hybrid kernel (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, BATCH_MATMUL, the RNN/LSTM family,
//! SVDF, EMBEDDING_LOOKUP) read int8 weights directly and quantize their float input on the fly
//! (`asymmetric_quantize_inputs`, TF's updated hybrid scheme). GATHER and TRANSPOSE_CONV have no hybrid
//! kernel: their weights are stored int8 and a DEQUANTIZE feeds the float kernel. Weights under
//! [`MIN_WEIGHT_ELEMENTS`] elements stay float, as in TF. Biases stay float.

use super::metadata::{self, OptimizationMode};
use super::weights::{quantize_weights_symmetric, SymmetricWeights};
use super::{versions, ExcludeSet, FloatOp, QuantError, QuantOptions, QuantSummary};
use crate::graph::{fold_fp16_constants, Graph, OpIndex, TensorId};
use crate::ops::WeightKernel as Kernel;
use crate::tflite::fb;
use fb::BuiltinOperator as Op;
use std::collections::BTreeMap;

/// Weights with fewer elements stay float (TF's `minimum_elements_for_weights`).
pub const MIN_WEIGHT_ELEMENTS: usize = 1024;

/// Which inputs of an op get int8 weights, on which axis, and how the op uses them.
#[derive(Debug, Clone)]
struct WeightRule {
    slots: &'static [usize],
    axis: Option<usize>,
    kernel: Kernel,
    /// Set `asymmetric_quantize_inputs` (ops whose options carry the flag).
    asymmetric_inputs: bool,
}

/// The weight rule of an op (its dynamic face in the op table), or why the op keeps float weights.
fn weight_rule(graph: &Graph, i: OpIndex, opts: &QuantOptions) -> Result<WeightRule, String> {
    let name = graph.op_type_name(i);
    let weights = crate::ops::table()
        .get(graph.op_code(i))
        .ok_or_else(|| format!("{name} has no int8-weight kernel; it computes in float"))?
        .dynamic_weights()
        .map_err(|why| format!("{name} keeps float weights: {why}"))?;
    if let Some(condition) = weights.condition {
        condition(graph, i, opts)?;
    }
    Ok(WeightRule {
        slots: weights.inputs,
        axis: weights.axis(opts),
        kernel: weights.kernel,
        asymmetric_inputs: weights.asymmetric_inputs,
    })
}

/// An op that gets int8 weights: its rule and the (input slot, tensor) pairs to quantize.
type Plan = (OpIndex, WeightRule, Vec<(usize, TensorId)>);

/// What makes two weight tensors quantize to the same bytes: buffer, shape and quantized axis.
type WeightKey = (u32, Vec<i32>, Option<usize>);

/// A float32 constant an op reads as weights: candidate for int8.
fn float_weight(graph: &Graph, t: TensorId) -> bool {
    let tensor = graph.tensor(t);
    tensor.type_ == fb::TensorType::FLOAT32 && !tensor.is_variable && graph.is_constant(t)
}

/// Quantizes `graph` in dynamic-range mode.
///
/// Float16-stored constants are folded first, so fp16 models come out like float ones. Ops in
/// `opts.exclude` keep float weights. Writes op versions, `min_runtime_version` and `CONVERSION_METADATA`.
pub fn quantize_dynamic(
    graph: &mut Graph,
    opts: &QuantOptions,
) -> Result<QuantSummary, QuantError> {
    let exclude = ExcludeSet::new(&opts.exclude);
    let mut summary = QuantSummary {
        warnings: exclude.unmatched_warnings(graph),
        ..QuantSummary::default()
    };
    // Quantized once per (buffer, shape, axis) across the model: tied weights share one int8 buffer.
    let mut int8_buffers: BTreeMap<WeightKey, (u32, SymmetricWeights)> = BTreeMap::new();
    // Every subgraph: a loop body's weights are weights too.
    for sg in 0..graph.subgraph_count() {
        graph.focus(sg);
        fold_fp16_constants(graph);
        quantize_subgraph(graph, opts, &exclude, &mut int8_buffers, &mut summary)?;
        graph.remove_unused_tensors();
    }
    graph.focus(0);
    summary.ops_float.sort_by_key(|o| (o.subgraph, o.index));
    graph.remove_unused_buffers();
    metadata::set_conversion_metadata(graph, OptimizationMode::PtqDynamicRange);
    versions::finalize(graph, opts.target_runtime.as_deref())?;
    Ok(summary)
}

/// Gives int8 weights to the ops of the focused subgraph that take them.
fn quantize_subgraph(
    graph: &mut Graph,
    opts: &QuantOptions,
    exclude: &ExcludeSet,
    int8_buffers: &mut BTreeMap<WeightKey, (u32, SymmetricWeights)>,
    summary: &mut QuantSummary,
) -> Result<(), QuantError> {
    let sg = graph.focused();
    // Decide per op which weight tensors become int8, before editing anything.
    let n_ops = graph.ops().len();
    let mut plans: Vec<Plan> = Vec::new();
    for i in (0..n_ops).map(OpIndex) {
        let float_op = |reason: String| FloatOp {
            subgraph: sg,
            index: i.0,
            op: graph.op_type_name(i),
            output: graph
                .op_outputs(i)
                .first()
                .map(|&t| graph.tensor_name(t).to_string())
                .unwrap_or_default(),
            reason,
        };
        if exclude.matches(graph, i) {
            summary
                .ops_float
                .push(float_op("excluded by the exclude list".into()));
            continue;
        }
        let rule = match weight_rule(graph, i, opts) {
            Ok(rule) => rule,
            Err(reason) => {
                summary.ops_float.push(float_op(reason));
                continue;
            }
        };
        let inputs = graph.op_inputs(i);
        // Hybrid kernels take float activations; an op already computing in integers is left alone.
        let float_activation = inputs
            .first()
            .copied()
            .flatten()
            .is_some_and(|t| graph.tensor(t).type_ == fb::TensorType::FLOAT32);
        let ids_input = graph.op_code(i) == Op::EMBEDDING_LOOKUP;
        if rule.kernel == Kernel::Hybrid && !ids_input && !float_activation {
            summary.ops_float.push(float_op(
                "its input is not float32: no hybrid kernel applies".into(),
            ));
            continue;
        }
        let weights: Vec<(usize, TensorId)> = rule
            .slots
            .iter()
            .filter_map(|&s| inputs.get(s).copied().flatten().map(|t| (s, t)))
            .filter(|&(_, t)| float_weight(graph, t))
            .collect();
        // Recurrent kernels take all their weights int8 or none: decide on the largest.
        let largest = weights
            .iter()
            .map(|&(_, t)| graph.num_elements(t))
            .max()
            .unwrap_or(0);
        if weights.is_empty() {
            summary
                .ops_float
                .push(float_op("no constant float weights".into()));
            continue;
        }
        if largest < MIN_WEIGHT_ELEMENTS {
            summary.ops_float.push(float_op(format!(
                "weights have {largest} elements, under the {MIN_WEIGHT_ELEMENTS} TFLite quantizes"
            )));
            continue;
        }
        plans.push((i, rule, weights));
    }

    let mut int8_tensors: BTreeMap<(TensorId, Option<usize>), TensorId> = BTreeMap::new();
    let mut dequantized: BTreeMap<TensorId, TensorId> = BTreeMap::new();
    let mut inserts: Vec<(OpIndex, fb::OperatorT)> = Vec::new();
    for (i, rule, weights) in plans {
        let mut quantized = Vec::new();
        let mut failure = None;
        for &(slot, t) in &weights {
            let shape = graph.shape(t).to_vec();
            let axis = rule.axis.filter(|&a| a < shape.len());
            let key = (graph.tensor(t).buffer, shape.clone(), axis);
            if !int8_buffers.contains_key(&key) {
                let values = graph.const_f32(t).unwrap_or_default();
                match quantize_weights_symmetric(&values, &shape, axis, 8) {
                    Ok(w) => {
                        let b = graph.add_buffer(w.bytes());
                        int8_buffers.insert(key.clone(), (b, w));
                    }
                    Err(e) => {
                        failure = Some(format!("weight tensor {:?}: {e}", graph.tensor_name(t)));
                        break;
                    }
                }
            }
            quantized.push((slot, t, axis, key));
        }
        if let Some(reason) = failure {
            summary.warnings.push(format!(
                "op #{} {} kept float: {reason}",
                i.0,
                graph.op_type_name(i)
            ));
            summary.ops_float.push(FloatOp {
                subgraph: sg,
                index: i.0,
                op: graph.op_type_name(i),
                output: graph
                    .op_outputs(i)
                    .first()
                    .map(|&t| graph.tensor_name(t).to_string())
                    .unwrap_or_default(),
                reason,
            });
            continue;
        }
        for (slot, t, axis, key) in quantized {
            let q = match int8_tensors.get(&(t, axis)) {
                Some(&q) => q,
                None => {
                    let Some((buffer, w)) = int8_buffers.get(&key) else {
                        continue;
                    };
                    let source = graph.tensor(t);
                    let tensor = fb::TensorT {
                        shape: source.shape.clone(),
                        type_: fb::TensorType::INT8,
                        buffer: *buffer,
                        name: source.name.clone(),
                        quantization: Some(Box::new(fb::QuantizationParametersT {
                            scale: Some(w.scales.clone()),
                            zero_point: Some(w.zero_points()),
                            quantized_dimension: axis.map_or(0, |a| a as i32),
                            ..Default::default()
                        })),
                        shape_signature: source.shape_signature.clone(),
                        has_rank: source.has_rank,
                        ..Default::default()
                    };
                    let q = graph.add_tensor(tensor);
                    int8_tensors.insert((t, axis), q);
                    summary.weights_quantized += 1;
                    q
                }
            };
            let read = match rule.kernel {
                Kernel::Hybrid => q,
                Kernel::WeightOnly => match dequantized.get(&q) {
                    Some(&f) => f,
                    None => {
                        let source = graph.tensor(t);
                        let f = graph.add_tensor(fb::TensorT {
                            shape: source.shape.clone(),
                            type_: fb::TensorType::FLOAT32,
                            name: Some(format!("{}_dequantized", graph.tensor_name(t))),
                            shape_signature: source.shape_signature.clone(),
                            has_rank: source.has_rank,
                            ..Default::default()
                        });
                        let op = graph.new_op(Op::DEQUANTIZE, 1, &[q], &[f]);
                        inserts.push((i, op));
                        dequantized.insert(q, f);
                        f
                    }
                },
            };
            set_input(graph, i, slot, read);
        }
        if rule.asymmetric_inputs {
            let code = graph.op_code(i);
            set_asymmetric_quantize_inputs(graph.op_mut(i), code);
        }
        match rule.kernel {
            Kernel::Hybrid => summary.ops_quantized += 1,
            Kernel::WeightOnly => summary.ops_float.push(FloatOp {
                subgraph: sg,
                index: i.0,
                op: graph.op_type_name(i),
                output: graph
                    .op_outputs(i)
                    .first()
                    .map(|&t| graph.tensor_name(t).to_string())
                    .unwrap_or_default(),
                reason: "no hybrid kernel: int8 weights are dequantized for the float kernel"
                    .into(),
            }),
        }
    }
    insert_ops_before(graph, inserts);
    Ok(())
}

/// Points input `slot` of op `i` at tensor `t`.
fn set_input(graph: &mut Graph, i: OpIndex, slot: usize, t: TensorId) {
    if let Some(input) = graph
        .op_mut(i)
        .inputs
        .as_mut()
        .and_then(|v| v.get_mut(slot))
    {
        *input = t.0 as i32;
    }
}

/// Turns on TF's updated hybrid scheme (asymmetric per-row input quantization) in the op's options.
fn set_asymmetric_quantize_inputs(op: &mut fb::OperatorT, code: Op) {
    use fb::BuiltinOptionsT as O;
    match &mut op.builtin_options {
        O::FullyConnectedOptions(o) => o.asymmetric_quantize_inputs = true,
        O::BatchMatMulOptions(o) => o.asymmetric_quantize_inputs = true,
        O::SVDFOptions(o) => o.asymmetric_quantize_inputs = true,
        O::RNNOptions(o) => o.asymmetric_quantize_inputs = true,
        O::SequenceRNNOptions(o) => o.asymmetric_quantize_inputs = true,
        O::BidirectionalSequenceRNNOptions(o) => o.asymmetric_quantize_inputs = true,
        O::LSTMOptions(o) => o.asymmetric_quantize_inputs = true,
        O::UnidirectionalSequenceLSTMOptions(o) => o.asymmetric_quantize_inputs = true,
        O::BidirectionalSequenceLSTMOptions(o) => o.asymmetric_quantize_inputs = true,
        // Absent options mean all defaults; FULLY_CONNECTED and BATCH_MATMUL get them written out with the flag.
        O::NONE if code == Op::FULLY_CONNECTED => {
            op.builtin_options = O::FullyConnectedOptions(Box::new(fb::FullyConnectedOptionsT {
                asymmetric_quantize_inputs: true,
                ..Default::default()
            }));
        }
        O::NONE if code == Op::BATCH_MATMUL => {
            op.builtin_options = O::BatchMatMulOptions(Box::new(fb::BatchMatMulOptionsT {
                asymmetric_quantize_inputs: true,
                ..Default::default()
            }));
        }
        _ => {}
    }
}

/// Inserts each op right before the op it is paired with, keeping the order of the pairs.
///
/// Indices refer to the op list before any insertion.
pub(super) fn insert_ops_before(graph: &mut Graph, mut inserts: Vec<(OpIndex, fb::OperatorT)>) {
    if inserts.is_empty() {
        return;
    }
    inserts.sort_by_key(|(at, _)| *at);
    let old = graph.main_mut().operators.take().unwrap_or_default();
    let mut ops = Vec::with_capacity(old.len() + inserts.len());
    let mut pending = inserts.into_iter().peekable();
    for (i, op) in old.into_iter().enumerate() {
        while let Some((_, new)) = pending.next_if(|(at, _)| at.0 <= i) {
            ops.push(new);
        }
        ops.push(op);
    }
    ops.extend(pending.map(|(_, op)| op));
    graph.main_mut().operators = Some(ops);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::versions::testing::{metadata, round_trip, version_of, ModelBuilder};
    use fb::BuiltinOptionsT as O;
    use fb::TensorType as T;

    fn fc_options() -> O {
        O::FullyConnectedOptions(Box::<fb::FullyConnectedOptionsT>::default())
    }

    fn weight(i: usize) -> f32 {
        ((i * 7919) % 255) as f32 / 127.0 - 1.0
    }

    /// x[1, inputs] -> FC(units) -> y, weights `w`, bias `b`.
    fn mlp(units: i32, inputs: i32) -> Graph {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, inputs]);
        let w = b.weights("dense/MatMul", &[units, inputs], weight);
        let bias = b.weights("dense/BiasAdd", &[units], |i| i as f32);
        let y = b.tensor("y", T::FLOAT32, &[1, units]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), Some(bias)],
            &[y],
            fc_options(),
        );
        b.output(y);
        b.build()
    }

    fn input_of(g: &Graph, op: usize, slot: usize) -> &fb::TensorT {
        let t = g.op_inputs(OpIndex(op))[slot].unwrap();
        g.tensor(t)
    }

    #[test]
    fn fully_connected_gets_per_channel_int8_weights_and_asymmetric_inputs() {
        let mut g = mlp(32, 64);
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        let g = round_trip(&g);
        let w = input_of(&g, 0, 1);
        assert_eq!(w.type_, T::INT8);
        let q = w.quantization.as_ref().unwrap();
        assert_eq!(q.scale.as_ref().unwrap().len(), 32);
        assert_eq!(q.zero_point.as_ref().unwrap(), &vec![0; 32]);
        assert_eq!(q.quantized_dimension, 0);
        assert_eq!(input_of(&g, 0, 2).type_, T::FLOAT32, "bias stays float");
        assert!(
            g.op(OpIndex(0))
                .builtin_options
                .as_fully_connected_options()
                .unwrap()
                .asymmetric_quantize_inputs
        );
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(12));
        assert_eq!(summary.ops_quantized, 1);
        assert_eq!(summary.weights_quantized, 1);
        let mut runtime = b"2.17.0".to_vec();
        runtime.resize(16, 0);
        assert_eq!(metadata(&g, "min_runtime_version"), Some(runtime));
        let conversion = metadata(&g, metadata::CONVERSION_METADATA_KEY).unwrap();
        let parsed = metadata::ConversionMetadata::parse(&conversion).unwrap();
        assert_eq!(
            parsed.optimization_modes,
            vec![OptimizationMode::PtqDynamicRange as i32]
        );
    }

    #[test]
    fn weights_under_1024_elements_stay_float() {
        let mut g = mlp(10, 64);
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        assert_eq!(input_of(&g, 0, 1).type_, T::FLOAT32);
        assert_eq!(summary.ops_quantized, 0);
        assert!(
            summary.ops_float[0].reason.contains("640 elements"),
            "{:?}",
            summary.ops_float
        );
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(1));
    }

    #[test]
    fn dense_weights_are_per_tensor_when_per_channel_dense_is_off() {
        let mut g = mlp(32, 64);
        let opts = QuantOptions {
            per_channel_dense: false,
            ..Default::default()
        };
        quantize_dynamic(&mut g, &opts).unwrap();
        let w = input_of(&g, 0, 1);
        assert_eq!(
            w.quantization
                .as_ref()
                .unwrap()
                .scale
                .as_ref()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(9));
    }

    #[test]
    fn excluded_op_keeps_float_weights() {
        let mut g = mlp(32, 64);
        let opts = QuantOptions {
            exclude: vec!["y".into(), "nothing_matches".into()],
            ..Default::default()
        };
        let summary = quantize_dynamic(&mut g, &opts).unwrap();
        assert_eq!(input_of(&g, 0, 1).type_, T::FLOAT32);
        assert_eq!(summary.ops_float[0].reason, "excluded by the exclude list");
        assert!(summary
            .warnings
            .iter()
            .any(|w| w.contains("nothing_matches")));
    }

    #[test]
    fn conv_and_depthwise_weights_are_per_channel_on_axes_0_and_3() {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 8, 8, 8]);
        let wc = b.weights("conv/w", &[16, 3, 3, 8], weight);
        let bc = b.weights("conv/b", &[16], |_| 0.0);
        let h = b.tensor("h", T::FLOAT32, &[1, 8, 8, 16]);
        let conv = fb::Conv2DOptionsT {
            dilation_w_factor: 1,
            dilation_h_factor: 1,
            stride_w: 1,
            stride_h: 1,
            ..Default::default()
        };
        b.op(
            Op::CONV_2D,
            &[Some(x), Some(wc), Some(bc)],
            &[h],
            O::Conv2DOptions(Box::new(conv)),
        );
        let wd = b.weights("dw/w", &[1, 8, 8, 16], weight);
        let bd = b.weights("dw/b", &[16], |_| 0.0);
        let y = b.tensor("y", T::FLOAT32, &[1, 8, 8, 16]);
        let dw = fb::DepthwiseConv2DOptionsT {
            dilation_w_factor: 1,
            dilation_h_factor: 1,
            stride_w: 1,
            stride_h: 1,
            depth_multiplier: 1,
            ..Default::default()
        };
        b.op(
            Op::DEPTHWISE_CONV_2D,
            &[Some(h), Some(wd), Some(bd)],
            &[y],
            O::DepthwiseConv2DOptions(Box::new(dw)),
        );
        b.output(y);
        let mut g = b.build();
        quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        let qc = input_of(&g, 0, 1).quantization.clone().unwrap();
        assert_eq!((qc.scale.unwrap().len(), qc.quantized_dimension), (16, 0));
        let qd = input_of(&g, 1, 1).quantization.clone().unwrap();
        assert_eq!((qd.scale.unwrap().len(), qd.quantized_dimension), (16, 3));
        assert_eq!(version_of(&g, Op::CONV_2D), Some(5));
        assert_eq!(version_of(&g, Op::DEPTHWISE_CONV_2D), Some(6));
    }

    #[test]
    fn weights_shared_by_two_ops_are_quantized_once() {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 64]);
        let w = b.weights("tied", &[64, 64], weight);
        let h = b.tensor("h", T::FLOAT32, &[1, 64]);
        let y = b.tensor("y", T::FLOAT32, &[1, 64]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), None],
            &[h],
            fc_options(),
        );
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(h), Some(w), None],
            &[y],
            fc_options(),
        );
        b.output(y);
        let mut g = b.build();
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        assert_eq!(summary.weights_quantized, 1);
        assert_eq!(g.op_inputs(OpIndex(0))[1], g.op_inputs(OpIndex(1))[1]);
        let int8_bytes: usize = g
            .model
            .buffers
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|b| b.data.as_ref())
            .map(Vec::len)
            .sum();
        assert!(
            int8_bytes < 64 * 64 + 64,
            "the float copy is gone: {int8_bytes} bytes"
        );
    }

    #[test]
    fn fp16_stored_weights_are_folded_then_quantized_to_int8() {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 64]);
        let half: Vec<u8> = (0..32 * 64)
            .flat_map(|i| half::f16::from_f32(weight(i)).to_le_bytes())
            .collect();
        let w16 = b.constant("w_fp16", T::FLOAT16, &[32, 64], half);
        let w = b.tensor("w", T::FLOAT32, &[32, 64]);
        b.op(Op::DEQUANTIZE, &[Some(w16)], &[w], O::NONE);
        let y = b.tensor("y", T::FLOAT32, &[1, 32]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), None],
            &[y],
            fc_options(),
        );
        b.output(y);
        let mut g = b.build();
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        assert_eq!(g.ops().len(), 1, "the DEQUANTIZE is folded away");
        assert_eq!(input_of(&g, 0, 1).type_, T::INT8);
        assert_eq!(summary.ops_quantized, 1);
        assert_eq!(
            version_of(&g, Op::DEQUANTIZE),
            None,
            "no stale DEQUANTIZE code"
        );
    }

    #[test]
    fn gather_table_is_stored_int8_behind_a_dequantize() {
        let mut b = ModelBuilder::new();
        let ids = b.input("ids", &[4]);
        b.retype(ids, T::INT32);
        let table = b.weights("table", &[100, 16], weight);
        let y = b.tensor("y", T::FLOAT32, &[4, 16]);
        b.op(
            Op::GATHER,
            &[Some(table), Some(ids)],
            &[y],
            O::GatherOptions(Box::<fb::GatherOptionsT>::default()),
        );
        b.output(y);
        let mut g = b.build();
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        assert_eq!(g.op_code(OpIndex(0)), Op::DEQUANTIZE);
        assert_eq!(input_of(&g, 0, 0).type_, T::INT8);
        assert_eq!(input_of(&g, 1, 0).type_, T::FLOAT32);
        assert_eq!(version_of(&g, Op::DEQUANTIZE), Some(2));
        assert_eq!(summary.ops_quantized, 0);
        assert_eq!(summary.weights_quantized, 1);
    }

    #[test]
    fn non_finite_weights_keep_the_op_float_with_a_warning() {
        let mut g = mlp(32, 64);
        let w = g.op_inputs(OpIndex(0))[1].unwrap();
        let mut values = g.const_f32(w).unwrap();
        values[3] = f32::INFINITY;
        g.set_tensor_data(w, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        let summary = quantize_dynamic(&mut g, &QuantOptions::default()).unwrap();
        assert_eq!(input_of(&g, 0, 1).type_, T::FLOAT32);
        assert_eq!(summary.warnings.len(), 1);
    }
}
