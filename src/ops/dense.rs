//! Matrix products: FULLY_CONNECTED, BATCH_MATMUL; and EMBEDDING_LOOKUP (a weight table read by index).

use super::{DynamicWeights, OpDef, OpTable, KEPT_FLOAT_BY_TF};
use crate::calibrate::ops::fully_connected as f;
use crate::graph::{Graph, OpIndex};
use crate::interp::kernels::{batch_matmul, batch_matmul_quantized, fully_connected as i, hybrid};
use crate::quantize::rules::{OpRule, PerChannelSwitch, WeightRule};
use crate::quantize::QuantOptions;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    let dense = WeightRule {
        input: 1,
        axis: 0,
        per_channel: PerChannelSwitch::Dense,
    };
    t.add(
        OpDef::new(Op::FULLY_CONNECTED)
            .float(f::fully_connected)
            .quantize(OpRule::weighted(&[0], dense, 2, 4))
            .integer(i::fully_connected)
            .dynamic(DynamicWeights {
                per_channel: Some((PerChannelSwitch::Dense, 0)),
                condition: Some(dense_weights),
                ..DynamicWeights::hybrid(&[1], true)
            })
            .hybrid(hybrid::fully_connected),
    );
    // Both operands are activations; a constant one is quantized like an activation.
    t.add(
        OpDef::new(Op::BATCH_MATMUL)
            .float(f::batch_matmul)
            .quantize(OpRule::activation(&[0, 1], 2))
            .integer(batch_matmul_quantized::batch_matmul)
            .dynamic(DynamicWeights::hybrid(&[1], true))
            .hybrid(batch_matmul::hybrid),
    );
    t.add(
        OpDef::new(Op::EMBEDDING_LOOKUP)
            .no_float(
                "litequant has no float EMBEDDING_LOOKUP kernel yet: calibration cannot run it",
            )
            .float_only(KEPT_FLOAT_BY_TF)
            .dynamic(DynamicWeights::hybrid(&[1], false))
            .no_hybrid("litequant's interpreter has no hybrid EMBEDDING_LOOKUP kernel yet"),
    );
}

fn dense_weights(graph: &Graph, op: OpIndex, _: &QuantOptions) -> Result<(), String> {
    let sparse = graph
        .op_inputs(op)
        .get(1)
        .copied()
        .flatten()
        .is_some_and(|w| graph.tensor(w).sparsity.is_some());
    if sparse {
        Err("sparse FULLY_CONNECTED weights are kept as they are".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::quantize::rules::PerChannelSwitch;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn fully_connected_per_channel_follows_the_dense_switch() {
        let rule = table()
            .get(Op::FULLY_CONNECTED)
            .unwrap()
            .rule(Int8)
            .unwrap();
        assert_eq!(rule.weights.unwrap().per_channel, PerChannelSwitch::Dense);
        assert_eq!(rule.bias, Some(2));
    }
}
