//! Recurrent ops: LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM, RNN,
//! UNIDIRECTIONAL_SEQUENCE_RNN, BIDIRECTIONAL_SEQUENCE_RNN, SVDF. Dynamic mode gives them int8 weights, read
//! by their hybrid kernels (the float kernels' bodies over int8 weights); int8 mode quantizes
//! UNIDIRECTIONAL_SEQUENCE_LSTM (the 8x8_16 integer kernel).

use super::{DynamicWeights, OpDef, OpTable, KEPT_FLOAT_BY_TF, NO_RULE_YET};
use crate::calibrate::ops::recurrent as f;
use crate::calibrate::Kernel as FloatKernel;
use crate::graph::{Graph, OpIndex};
use crate::interp::kernels::lstm as i;
use crate::interp::kernels::recurrent as h;
use crate::interp::IntegerKernel;
use crate::quantize::rules::{CustomRule, OpRule};
use crate::quantize::QuantOptions;
use crate::tflite::fb::{self, BuiltinOperator as Op};

/// Gate, cell and projection weights of the LSTM input layout (inputs 1-11 and 16).
const LSTM_WEIGHTS: &[usize] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16];
/// Both directions' weights of BIDIRECTIONAL_SEQUENCE_LSTM (the backward ones from input 18).
const BIDIRECTIONAL_LSTM_WEIGHTS: &[usize] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 33,
];

/// LiteRT's UNIDIRECTIONAL_SEQUENCE_LSTM has no int16-activation kernel.
const NO_INT16_LSTM: &str =
    "LiteRT 2.3's UNIDIRECTIONAL_SEQUENCE_LSTM has no int16-activation kernel \
     (its integer path is the 8x8_16 one: int8 input and output, int16 cell state)";

pub(super) fn register(t: &mut OpTable) {
    let recurrent = |code, rule_reason, weights: DynamicWeights| {
        let def = OpDef::new(code);
        let (float, hybrid): (FloatKernel, IntegerKernel) = match code {
            Op::LSTM | Op::UNIDIRECTIONAL_SEQUENCE_LSTM => (f::lstm, h::lstm),
            Op::BIDIRECTIONAL_SEQUENCE_LSTM => (
                f::bidirectional_sequence_lstm,
                h::bidirectional_sequence_lstm,
            ),
            Op::RNN | Op::UNIDIRECTIONAL_SEQUENCE_RNN => (f::rnn, h::rnn),
            Op::BIDIRECTIONAL_SEQUENCE_RNN => {
                (f::bidirectional_sequence_rnn, h::bidirectional_sequence_rnn)
            }
            _ => (crate::calibrate::ops::svdf::svdf, h::svdf),
        };
        def.float(float)
            .float_only(rule_reason)
            .dynamic(weights)
            .hybrid(hybrid)
    };
    t.add(recurrent(
        Op::LSTM,
        NO_RULE_YET,
        DynamicWeights {
            condition: Some(not_basic_lstm),
            ..DynamicWeights::hybrid(LSTM_WEIGHTS, true)
        },
    ));
    t.add(
        recurrent(
            Op::UNIDIRECTIONAL_SEQUENCE_LSTM,
            NO_RULE_YET,
            DynamicWeights::hybrid(LSTM_WEIGHTS, true),
        )
        .quantize_int8(OpRule::custom(&[0], CustomRule::Lstm, 1), NO_INT16_LSTM)
        // Declared for both activation types because the interpreter picks the int16 kernel of an op with
        // any int16 tensor, and the 8x8_16 LSTM keeps its cell state in int16; the kernel itself takes
        // int8 input only (LiteRT has no int16-activation LSTM: `NO_INT16_LSTM`).
        .integer(i::unidirectional_sequence_lstm),
    );
    t.add(recurrent(
        Op::BIDIRECTIONAL_SEQUENCE_LSTM,
        KEPT_FLOAT_BY_TF,
        DynamicWeights::hybrid(BIDIRECTIONAL_LSTM_WEIGHTS, true),
    ));
    for code in [Op::SVDF, Op::RNN, Op::UNIDIRECTIONAL_SEQUENCE_RNN] {
        let reason = if code == Op::SVDF {
            NO_RULE_YET
        } else {
            KEPT_FLOAT_BY_TF
        };
        t.add(recurrent(
            code,
            reason,
            DynamicWeights::hybrid(&[1, 2], true),
        ));
    }
    // Forward weights 1-2, backward weights 5-6, auxiliary-input weights 10-11 (inputs 4 and 8 are the
    // states).
    t.add(recurrent(
        Op::BIDIRECTIONAL_SEQUENCE_RNN,
        KEPT_FLOAT_BY_TF,
        DynamicWeights {
            condition: Some(not_time_major_rnn),
            ..DynamicWeights::hybrid(&[1, 2, 5, 6, 10, 11], true)
        },
    ));
}

/// LiteRT 2.3's hybrid time-major BIDIRECTIONAL_SEQUENCE_RNN (`EvalHybrid`) runs each direction over the whole
/// sequence once per time step, carrying the state: its output is not the op's. Such an op keeps float
/// weights in dynamic mode (the hybrid kernel here mirrors LiteRT, so `eval` of a model quantized elsewhere
/// still reports what LiteRT computes).
fn not_time_major_rnn(graph: &Graph, op: OpIndex, _: &QuantOptions) -> Result<(), String> {
    let time_major = graph
        .op(op)
        .builtin_options
        .as_bidirectional_sequence_rnnoptions()
        .is_some_and(|o| o.time_major);
    if time_major {
        Err("LiteRT 2.3's hybrid time-major BIDIRECTIONAL_SEQUENCE_RNN repeats the sequence once per step \
             (wrong outputs): kept float"
            .into())
    } else {
        Ok(())
    }
}

fn not_basic_lstm(graph: &Graph, op: OpIndex, _: &QuantOptions) -> Result<(), String> {
    let basic = graph
        .op(op)
        .builtin_options
        .as_lstmoptions()
        .is_some_and(|o| o.kernel_type == fb::LSTMKernelType::BASIC);
    if basic {
        Err("the basic-kernel LSTM has no hybrid kernel".into())
    } else {
        Ok(())
    }
}
