//! Folding float16-stored constants (FLOAT16 constant -> DEQUANTIZE) into float32 constants.

use super::{Graph, OpIndex, TensorId};
use crate::tflite::fb;

/// Replaces every `DEQUANTIZE` of a constant FLOAT16 tensor in the main subgraph by a FLOAT32 constant.
///
/// Models already stored in fp16 keep their weights behind such ops; folding them first lets every mode
/// treat them as ordinary float weights. Returns the folded tensors (FLOAT32 constants now). Tensor ids do
/// not change; the folded FLOAT16 tensors are left unused (see [`Graph::remove_unused_tensors`]).
pub fn fold_fp16_constants(g: &mut Graph) -> Vec<TensorId> {
    let mut remove = Vec::new();
    let mut folded = Vec::new();
    for i in 0..g.ops().len() {
        let op = OpIndex(i);
        if g.op_code(op) != fb::BuiltinOperator::DEQUANTIZE {
            continue;
        }
        let (Some(Some(src)), Some(&dst)) =
            (g.op_inputs(op).first().copied(), g.op_outputs(op).first())
        else {
            continue;
        };
        if g.tensor(src).type_ != fb::TensorType::FLOAT16
            || g.tensor(dst).type_ != fb::TensorType::FLOAT32
        {
            continue;
        }
        let Some(data) = g.buffer_data(src) else {
            continue;
        };
        let values: Vec<u8> = data
            .chunks_exact(2)
            .flat_map(|c| {
                half::f16::from_le_bytes([c[0], c[1]])
                    .to_f32()
                    .to_le_bytes()
            })
            .collect();
        g.set_tensor_data(dst, values);
        folded.push(dst);
        remove.push(op);
    }
    for op in remove.into_iter().rev() {
        g.main_mut()
            .operators
            .get_or_insert_with(Vec::new)
            .remove(op.0);
    }
    // The FLOAT16 tensors stay (unused) so tensor ids keep their meaning: calibrated ranges are keyed by the
    // source's ids. Every mode drops unused tensors and buffers when it is done.
    folded
}
