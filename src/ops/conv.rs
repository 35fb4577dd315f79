//! Convolutions with weights and bias: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV.

use super::{DynamicWeights, OpDef, OpTable, WeightKernel};
use crate::calibrate::ops::{conv as f, transpose_conv};
use crate::graph::{Graph, OpIndex};
use crate::interp::kernels::transpose_conv as i_transpose_conv;
use crate::interp::kernels::{conv as i, hybrid};
use crate::quantize::rules::{OpRule, PerChannelSwitch, WeightRule};
use crate::quantize::QuantOptions;
use crate::tflite::fb::BuiltinOperator as Op;

/// OHWI filters: output channels on axis 0.
const CONV_WEIGHTS: WeightRule = WeightRule {
    input: 1,
    axis: 0,
    per_channel: PerChannelSwitch::Conv,
};

/// 1HWO depthwise filters: output channels on axis 3.
const DEPTHWISE_WEIGHTS: WeightRule = WeightRule {
    input: 1,
    axis: 3,
    per_channel: PerChannelSwitch::Conv,
};

pub(super) fn register(t: &mut OpTable) {
    t.add(
        OpDef::new(Op::CONV_2D)
            .float(f::conv_2d)
            .quantize(OpRule::weighted(&[0], CONV_WEIGHTS, 2, 3))
            .integer(i::conv)
            .dynamic(DynamicWeights {
                per_channel: Some((PerChannelSwitch::Conv, 0)),
                ..DynamicWeights::hybrid(&[1], false)
            })
            .hybrid(hybrid::conv),
    );
    t.add(
        OpDef::new(Op::DEPTHWISE_CONV_2D)
            .float(f::depthwise_conv_2d)
            .quantize(OpRule::weighted(&[0], DEPTHWISE_WEIGHTS, 2, 3))
            .integer(i::depthwise)
            .dynamic(DynamicWeights {
                per_channel: Some((PerChannelSwitch::Conv, 3)),
                condition: Some(depthwise_per_channel),
                ..DynamicWeights::hybrid(&[1], false)
            })
            .hybrid(hybrid::depthwise),
    );
    // TRANSPOSE_CONV reads (output_shape, weights, input, bias).
    t.add(
        OpDef::new(Op::TRANSPOSE_CONV)
            .float(transpose_conv::transpose_conv)
            .quantize(OpRule::weighted(&[2], CONV_WEIGHTS, 3, 3))
            .integer(i_transpose_conv::transpose_conv)
            .dynamic(DynamicWeights {
                inputs: &[1],
                per_channel: Some((PerChannelSwitch::Conv, 0)),
                kernel: WeightKernel::WeightOnly,
                asymmetric_inputs: false,
                condition: None,
            })
            .no_hybrid(
                "LiteRT has no hybrid TRANSPOSE_CONV kernel: a DEQUANTIZE feeds the float kernel",
            ),
    );
}

fn depthwise_per_channel(_: &Graph, _: OpIndex, opts: &QuantOptions) -> Result<(), String> {
    if opts.per_channel {
        Ok(())
    } else {
        Err(
            "the hybrid DEPTHWISE_CONV_2D kernel needs per-channel weights (per_channel = false)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn depthwise_weights_are_per_channel_on_axis_3() {
        let rule = table()
            .get(Op::DEPTHWISE_CONV_2D)
            .unwrap()
            .rule(Int8)
            .unwrap();
        let w = rule.weights.unwrap();
        assert_eq!((w.input, w.axis), (1, 3));
    }

    #[test]
    fn transpose_conv_activation_is_input_2_and_bias_input_3() {
        let rule = table().get(Op::TRANSPOSE_CONV).unwrap().rule(Int8).unwrap();
        assert!(rule.activations.contains(2, 4) && !rule.activations.contains(0, 4));
        assert_eq!(rule.bias, Some(3));
    }
}
