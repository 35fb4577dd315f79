//! `float16` mode: float32 constants stored as FLOAT16, each behind one DEQUANTIZE.
//!
//! By default every float constant, as TF's converter does. With `float16_weights_only`, only the ops'
//! weights, as ai-edge-quantizer's float casting does: which inputs are weights is the op table's answer
//! ([`crate::ops::OpDef::float16_weights`]: the operands dynamic mode makes int8), and biases and every other
//! constant stay float32 (a small part of the bytes; on the corpus +1.1 dB on mobilenetv2, +1.6 dB on a
//! small vision transformer, -1.2 dB on digits_unet: README, float16). Either way a constant the source
//! already stored as FLOAT16 stays FLOAT16 whatever reads it.
//! Every op still computes in float32 on CPU (the DEQUANTIZE runs once, its output is cached as a constant);
//! delegates such as the GPU one read the fp16 weights directly. Values beyond fp16's range are clamped to
//! +-65504, as TF does. Like TF, the model gets `reduced_precision_support = "fp16accfp32"`.

use super::dynamic::insert_ops_before;
use super::metadata::{self, OptimizationMode};
use super::{versions, ExcludeSet, FloatOp, QuantError, QuantOptions, QuantSummary};
use crate::graph::{fold_fp16_constants, Graph, OpIndex, TensorId};
use crate::tflite::fb;
use half::f16;

/// Largest finite float16 value.
const F16_MAX: f32 = 65504.0;

/// Converts float32 weights to float16 storage (clamped to the fp16 range, NaN kept).
pub fn to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            f16::from_f32(if v.is_nan() {
                v
            } else {
                v.clamp(-F16_MAX, F16_MAX)
            })
            .to_le_bytes()
        })
        .collect()
}

/// Quantizes `graph` in float16 mode.
///
/// Every float32 constant is stored as FLOAT16; with `float16_weights_only`, only those some op reads as a
/// weight or that the source stored as FLOAT16. Constants read only by excluded ops stay float32; a constant
/// shared by excluded and other ops is kept float32 for the excluded ones, and every other op reading it
/// reads the fp16 copy. Writes op versions, `min_runtime_version`, `reduced_precision_support` and
/// `CONVERSION_METADATA`.
pub fn quantize_float16(
    graph: &mut Graph,
    opts: &QuantOptions,
) -> Result<QuantSummary, QuantError> {
    let exclude = ExcludeSet::new(&opts.exclude);
    let mut summary = QuantSummary {
        warnings: exclude.unmatched_warnings(graph),
        ..QuantSummary::default()
    };
    // Every subgraph: a loop body's constants are weights too.
    for sg in 0..graph.subgraph_count() {
        graph.focus(sg);
        // Already-fp16 models: fold to float32 first so every constant goes through the same path once;
        // what the source stored as fp16 stays fp16 (it loses nothing and keeps the source's size).
        let stored_fp16 = fold_fp16_constants(graph);
        let keep = |graph: &Graph, t: TensorId, readers: &[OpIndex]| {
            !opts.float16_weights_only
                || stored_fp16.contains(&t)
                || readers.iter().any(|&o| reads_as_weight(graph, o, t))
        };
        float16_subgraph(graph, &exclude, keep, &mut summary);
        graph.remove_unused_tensors();
    }
    graph.focus(0);
    graph.remove_unused_buffers();
    graph.set_metadata(
        metadata::REDUCED_PRECISION_KEY,
        metadata::FP16_ACC_FP32.to_vec(),
    );
    metadata::set_conversion_metadata(graph, OptimizationMode::PtqFloat16);
    versions::finalize(graph, opts.target_runtime.as_deref())?;
    Ok(summary)
}

/// Stores the float32 constants of the focused subgraph that `cast(graph, tensor, readers)` chooses in
/// float16 behind DEQUANTIZE ops.
fn float16_subgraph(
    graph: &mut Graph,
    exclude: &ExcludeSet,
    cast: impl Fn(&Graph, TensorId, &[OpIndex]) -> bool,
    summary: &mut QuantSummary,
) {
    let sg = graph.focused();
    let n_ops = graph.ops().len();
    let excluded: Vec<bool> = (0..n_ops)
        .map(|i| exclude.matches(graph, OpIndex(i)))
        .collect();
    for i in (0..n_ops).map(OpIndex) {
        let reason = if excluded[i.0] {
            "excluded by the exclude list: constants stay float32"
        } else {
            "float16 mode stores weights in fp16; ops compute in float32"
        };
        summary.ops_float.push(FloatOp {
            subgraph: sg,
            index: i.0,
            op: graph.op_type_name(i),
            output: graph
                .op_outputs(i)
                .first()
                .map(|&t| graph.tensor_name(t).to_string())
                .unwrap_or_default(),
            reason: reason.into(),
        });
    }

    let consumers = graph.consumers();
    let mut inserts: Vec<(OpIndex, fb::OperatorT)> = Vec::new();
    for t in (0..graph.tensors().len()).map(TensorId) {
        let tensor = graph.tensor(t);
        if tensor.type_ != fb::TensorType::FLOAT32 || tensor.is_variable || !graph.is_constant(t) {
            continue;
        }
        let readers: Vec<OpIndex> = consumers
            .get(t.0)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .copied()
            .filter(|o| !excluded[o.0])
            .collect();
        let Some(&first) = readers.first() else {
            continue;
        };
        if !cast(graph, t, &readers) {
            continue;
        }
        let Some(values) = graph.const_f32(t) else {
            continue;
        };
        let source = graph.tensor(t).clone();
        let buffer = graph.add_buffer(to_f16_bytes(&values));
        let half = graph.add_tensor(fb::TensorT {
            shape: source.shape.clone(),
            type_: fb::TensorType::FLOAT16,
            buffer,
            name: Some(format!("{}_fp16", source.name.as_deref().unwrap_or(""))),
            shape_signature: source.shape_signature.clone(),
            has_rank: source.has_rank,
            ..Default::default()
        });
        let float = graph.add_tensor(fb::TensorT {
            shape: source.shape.clone(),
            type_: fb::TensorType::FLOAT32,
            // Consumers read this tensor: it keeps the constant's name (and a re-run gives the same names).
            name: source.name.clone(),
            shape_signature: source.shape_signature.clone(),
            has_rank: source.has_rank,
            ..Default::default()
        });
        let op = graph.new_op(fb::BuiltinOperator::DEQUANTIZE, 3, &[half], &[float]);
        inserts.push((first, op));
        graph.redirect_reads(t, float, &readers);
        summary.weights_quantized += 1;
    }
    insert_ops_before(graph, inserts);
}

/// Whether `op` reads `t` at one of its weight inputs (the op table's float16 weights).
fn reads_as_weight(graph: &Graph, op: OpIndex, t: TensorId) -> bool {
    let Some(def) = crate::ops::table().get(graph.op_code(op)) else {
        return false;
    };
    let inputs = graph.op_inputs(op);
    def.float16_weights()
        .iter()
        .any(|&slot| inputs.get(slot).copied().flatten() == Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::versions::testing::{metadata, round_trip, version_of, ModelBuilder};
    use fb::BuiltinOperator as Op;
    use fb::BuiltinOptionsT as O;
    use fb::TensorType as T;

    /// x -> FC(w, b) -> ADD(offset) -> RESHAPE(shape) -> y
    fn model() -> Graph {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 4]);
        let w = b.weights("w", &[2, 4], |i| i as f32 * 0.25 - 1.0);
        let bias = b.weights("b", &[2], |i| if i == 0 { 1e6 } else { -0.5 });
        let h = b.tensor("h", T::FLOAT32, &[1, 2]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), Some(bias)],
            &[h],
            O::FullyConnectedOptions(Box::<fb::FullyConnectedOptionsT>::default()),
        );
        let offset = b.weights("offset", &[2], |i| i as f32 * 0.1 + 0.3);
        let a = b.tensor("a", T::FLOAT32, &[1, 2]);
        b.op(
            Op::ADD,
            &[Some(h), Some(offset)],
            &[a],
            O::AddOptions(Box::<fb::AddOptionsT>::default()),
        );
        let shape = b.constant("shape", T::INT32, &[1], 2i32.to_le_bytes().to_vec());
        let y = b.tensor("y", T::FLOAT32, &[2]);
        b.op(Op::RESHAPE, &[Some(a), Some(shape)], &[y], O::NONE);
        b.output(y);
        b.build()
    }

    /// The type of the constant `op` reads at `slot`: through a DEQUANTIZE, the type of its source.
    fn stored_type(g: &Graph, op: usize, slot: usize) -> T {
        let t = g.op_inputs(OpIndex(op))[slot].unwrap();
        match g.producers()[t.0] {
            Some(p) if g.op_code(p) == Op::DEQUANTIZE => g.tensor(g.op_inputs(p)[0].unwrap()).type_,
            _ => g.tensor(t).type_,
        }
    }

    /// `float16_weights_only = true`.
    fn weights_only() -> QuantOptions {
        QuantOptions {
            float16_weights_only: true,
            ..Default::default()
        }
    }

    #[test]
    fn by_default_every_float_constant_becomes_fp16_as_tf_does() {
        let mut g = model();
        let summary = quantize_float16(&mut g, &QuantOptions::default()).unwrap();
        let g = round_trip(&g);
        let fc = (0..g.ops().len())
            .find(|&i| g.op_code(OpIndex(i)) == Op::FULLY_CONNECTED)
            .unwrap();
        let add = (0..g.ops().len())
            .find(|&i| g.op_code(OpIndex(i)) == Op::ADD)
            .unwrap();
        assert_eq!(
            stored_type(&g, fc, 1),
            T::FLOAT16,
            "FULLY_CONNECTED weights"
        );
        assert_eq!(stored_type(&g, fc, 2), T::FLOAT16, "bias");
        assert_eq!(stored_type(&g, add, 1), T::FLOAT16, "ADD operand");
        assert_eq!(summary.weights_quantized, 3);
    }

    #[test]
    fn weights_only_stores_weights_in_fp16_behind_one_dequantize_and_other_constants_in_float32() {
        let mut g = model();
        let summary = quantize_float16(&mut g, &weights_only()).unwrap();
        let g = round_trip(&g);
        let codes: Vec<Op> = (0..g.ops().len()).map(|i| g.op_code(OpIndex(i))).collect();
        assert_eq!(
            codes,
            vec![Op::DEQUANTIZE, Op::FULLY_CONNECTED, Op::ADD, Op::RESHAPE]
        );
        assert!(!g.is_constant(g.op_outputs(OpIndex(0))[0]));
        assert_eq!(stored_type(&g, 1, 1), T::FLOAT16, "FULLY_CONNECTED weights");
        assert_eq!(stored_type(&g, 1, 2), T::FLOAT32, "bias stays float32");
        assert_eq!(
            g.const_f32(g.op_inputs(OpIndex(1))[2].unwrap()),
            Some(vec![1e6, -0.5]),
            "bias values untouched (not clamped to the fp16 range)"
        );
        assert_eq!(
            stored_type(&g, 2, 1),
            T::FLOAT32,
            "an ADD operand is no weight"
        );
        assert_eq!(
            stored_type(&g, 3, 1),
            T::INT32,
            "int32 constants stay as they are"
        );
        assert_eq!(summary.weights_quantized, 1);
        assert_eq!(version_of(&g, Op::DEQUANTIZE), Some(3));
        assert_eq!(
            metadata(&g, "reduced_precision_support"),
            Some(b"fp16accfp32".to_vec())
        );
        let mut runtime = b"1.15.0".to_vec();
        runtime.resize(16, 0);
        assert_eq!(metadata(&g, "min_runtime_version"), Some(runtime));
    }

    #[test]
    fn a_weight_shared_with_another_reader_is_stored_once_in_fp16() {
        // x -> FC(w) -> h; w also feeds a MUL: both read the one DEQUANTIZE's output.
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 4]);
        let w = b.weights("w", &[2, 4], |i| i as f32 * 0.3 - 1.0);
        let h = b.tensor("h", T::FLOAT32, &[1, 2]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), None],
            &[h],
            O::FullyConnectedOptions(Box::<fb::FullyConnectedOptionsT>::default()),
        );
        let m = b.tensor("m", T::FLOAT32, &[2, 4]);
        b.op(
            Op::MUL,
            &[Some(w), Some(w)],
            &[m],
            O::MulOptions(Box::<fb::MulOptionsT>::default()),
        );
        b.output(h);
        b.output(m);
        let mut g = b.build();
        quantize_float16(&mut g, &QuantOptions::default()).unwrap();
        let g = round_trip(&g);
        assert_eq!(g.op_code(OpIndex(0)), Op::DEQUANTIZE);
        let deq = g.op_outputs(OpIndex(0))[0];
        assert_eq!(g.op_inputs(OpIndex(1))[1], Some(deq));
        assert_eq!(g.op_inputs(OpIndex(2)), vec![Some(deq), Some(deq)]);
    }

    #[test]
    fn a_bias_the_source_stored_as_fp16_stays_fp16() {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 4]);
        let w = b.weights("w", &[2, 4], |i| i as f32 * 0.3 - 1.0);
        let bias16 = b.constant("b_fp16", T::FLOAT16, &[2], to_f16_bytes(&[0.5, -0.25]));
        let bias = b.tensor("b", T::FLOAT32, &[2]);
        b.op(Op::DEQUANTIZE, &[Some(bias16)], &[bias], O::NONE);
        let h = b.tensor("h", T::FLOAT32, &[1, 2]);
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), Some(bias)],
            &[h],
            O::FullyConnectedOptions(Box::<fb::FullyConnectedOptionsT>::default()),
        );
        b.output(h);
        let mut g = b.build();
        let summary = quantize_float16(&mut g, &weights_only()).unwrap();
        let g = round_trip(&g);
        let fc = (0..g.ops().len())
            .find(|&i| g.op_code(OpIndex(i)) == Op::FULLY_CONNECTED)
            .unwrap();
        assert_eq!(stored_type(&g, fc, 1), T::FLOAT16);
        assert_eq!(stored_type(&g, fc, 2), T::FLOAT16);
        assert_eq!(summary.weights_quantized, 2);
    }

    #[test]
    fn values_beyond_the_fp16_range_are_clamped() {
        let bytes = to_f16_bytes(&[1e6, -1e6, 0.5]);
        let back: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert_eq!(back, vec![65504.0, -65504.0, 0.5]);
    }

    #[test]
    fn constants_of_excluded_ops_stay_float32() {
        let mut g = model();
        let opts = QuantOptions {
            exclude: vec!["FULLY_CONNECTED".into(), "ADD".into()],
            ..Default::default()
        };
        let summary = quantize_float16(&mut g, &opts).unwrap();
        assert_eq!(summary.weights_quantized, 0);
        assert!(g
            .ops()
            .iter()
            .enumerate()
            .all(|(i, _)| g.op_code(OpIndex(i)) != Op::DEQUANTIZE));
    }

    #[test]
    fn fp16_model_round_trips_to_the_same_structure() {
        let mut once = model();
        quantize_float16(&mut once, &QuantOptions::default()).unwrap();
        let mut twice = round_trip(&once);
        quantize_float16(&mut twice, &QuantOptions::default()).unwrap();
        assert_eq!(once.ops().len(), twice.ops().len());
        assert_eq!(once.to_bytes(), twice.to_bytes());
    }
}
