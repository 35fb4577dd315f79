//! `float16` mode: constant float32 tensors stored as FLOAT16, each behind one DEQUANTIZE.
//!
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
/// Constants read only by excluded ops stay float32; a constant shared by excluded and other ops is kept
/// float32 for the excluded ones. Writes op versions, `min_runtime_version`, `reduced_precision_support`
/// and `CONVERSION_METADATA`.
pub fn quantize_float16(
    graph: &mut Graph,
    opts: &QuantOptions,
) -> Result<QuantSummary, QuantError> {
    // Already-fp16 models: fold to float32 first so every constant goes through the same path once.
    fold_fp16_constants(graph);
    let exclude = ExcludeSet::new(&opts.exclude);
    let mut summary = QuantSummary::default();
    for p in exclude.unmatched(graph) {
        summary
            .warnings
            .push(format!("exclude pattern {p:?} matches no op of the model"));
    }
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
        let Some(values) = graph.const_f32(t) else {
            continue;
        };
        let source = graph.tensor(t).clone();
        let buffer = graph.add_buffer(to_f16_bytes(&values));
        let half = graph.add_tensor(fb::TensorT {
            shape: source.shape.clone(),
            type_: fb::TensorType::FLOAT16,
            buffer,
            name: source.name.clone(),
            shape_signature: source.shape_signature.clone(),
            has_rank: source.has_rank,
            ..Default::default()
        });
        let float = graph.add_tensor(fb::TensorT {
            shape: source.shape.clone(),
            type_: fb::TensorType::FLOAT32,
            name: Some(format!(
                "{}_dequantized",
                source.name.as_deref().unwrap_or("")
            )),
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
    graph.remove_unused_tensors();
    graph.remove_unused_buffers();
    graph.set_metadata(
        metadata::REDUCED_PRECISION_KEY,
        metadata::FP16_ACC_FP32.to_vec(),
    );
    metadata::set_conversion_metadata(graph, OptimizationMode::PtqFloat16);
    versions::finalize(graph, opts.target_runtime.as_deref())?;
    Ok(summary)
}
