//! Ops with weights and bias: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED; and BATCH_MATMUL.

use super::{ActivationInputs, OpRule, OutputRule, PerChannelSwitch, RuleRegistry, WeightRule};
use crate::tflite::fb::BuiltinOperator as Op;

const fn weighted(activation: usize, weights: WeightRule, bias: usize, version: i32) -> OpRule {
    OpRule {
        activations: ActivationInputs::Indices(match activation {
            0 => &[0],
            _ => &[2],
        }),
        weights: Some(weights),
        bias: Some(bias),
        output: OutputRule::Calibrated,
        inputs_match_output: false,
        same_as_input: &[],
        int16: true,
        version,
    }
}

pub(super) fn register(r: &mut RuleRegistry) {
    let conv = WeightRule {
        input: 1,
        axis: 0,
        per_channel: PerChannelSwitch::Conv,
    };
    r.register(Op::CONV_2D, weighted(0, conv, 2, 3));
    let depthwise = WeightRule {
        input: 1,
        axis: 3,
        per_channel: PerChannelSwitch::Conv,
    };
    r.register(Op::DEPTHWISE_CONV_2D, weighted(0, depthwise, 2, 3));
    // TRANSPOSE_CONV reads (output_shape, weights, input, bias).
    r.register(Op::TRANSPOSE_CONV, weighted(2, conv, 3, 3));
    let dense = WeightRule {
        input: 1,
        axis: 0,
        per_channel: PerChannelSwitch::Dense,
    };
    r.register(Op::FULLY_CONNECTED, weighted(0, dense, 2, 4));
    // Both operands are activations; a constant one is quantized like an activation.
    r.register(Op::BATCH_MATMUL, OpRule::activation(&[0, 1], 2));
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn depthwise_weights_are_per_channel_on_axis_3() {
        let r = RuleRegistry::with_all_rules();
        let w = r
            .get(Op::DEPTHWISE_CONV_2D)
            .and_then(|r| r.weights)
            .unwrap();
        assert_eq!((w.input, w.axis), (1, 3));
    }

    #[test]
    fn fully_connected_per_channel_follows_the_dense_switch() {
        let r = RuleRegistry::with_all_rules();
        let rule = r.get(Op::FULLY_CONNECTED).unwrap();
        assert_eq!(rule.weights.unwrap().per_channel, PerChannelSwitch::Dense);
        assert_eq!(rule.bias, Some(2));
    }

    #[test]
    fn transpose_conv_activation_is_input_2_and_bias_input_3() {
        let r = RuleRegistry::with_all_rules();
        let rule = r.get(Op::TRANSPOSE_CONV).unwrap();
        assert!(rule.activations.contains(2, 4) && !rule.activations.contains(0, 4));
        assert_eq!(rule.bias, Some(3));
    }
}
