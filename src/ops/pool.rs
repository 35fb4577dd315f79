//! Pooling: AVERAGE_POOL_2D, MAX_POOL_2D. The kernels do not rescale: the output reuses the input's params.

use super::{OpDef, OpTable};
use crate::calibrate::ops::pool as f;
use crate::interp::kernels::pool as i;
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

pub(super) fn register(t: &mut OpTable) {
    t.add(
        OpDef::weightless(Op::AVERAGE_POOL_2D)
            .float(f::average_pool_2d)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| i::pool(c, false)),
    );
    t.add(
        OpDef::weightless(Op::MAX_POOL_2D)
            .float(f::max_pool_2d)
            .quantize(OpRule::same_scale(&[0], 2))
            .integer(|c| i::pool(c, true)),
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::table;
    use crate::quantize::params::ActivationType::Int8;
    use crate::quantize::rules::OutputRule;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn pooling_output_reuses_input_params() {
        for op in [Op::AVERAGE_POOL_2D, Op::MAX_POOL_2D] {
            let rule = table().get(op).unwrap().rule(Int8).unwrap();
            assert_eq!(rule.output, OutputRule::SameAsInput);
        }
    }
}
