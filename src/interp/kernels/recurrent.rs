//! Hybrid kernels of the recurrent ops (dynamic mode: int8 weights, float activations, state and output):
//! LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM, RNN, UNIDIRECTIONAL_SEQUENCE_RNN,
//! BIDIRECTIONAL_SEQUENCE_RNN and SVDF. The op bodies are the float kernels' (`calibrate::ops::recurrent`,
//! `calibrate::ops::svdf`), read here from the interpreter's tensors: int8 weights make them quantize their
//! operands per batch row (`asymmetric_quantize_inputs` picks the scheme) as LiteRT's hybrid paths do.
//!
//! The state inputs hold their reset value on every invoke (the interpreter gives variable tensors their
//! initial value), as LiteRT after `reset_all_variables()`.

use super::OpCtx;
use crate::calibrate::ops::recurrent::cell::{FloatOutput, RecurrentInputs, Weights};
use crate::calibrate::ops::recurrent::{lstm as lstm_op, rnn as rnn_op};
use crate::calibrate::ops::svdf;
use crate::calibrate::KernelError;
use crate::interp::tensor::{Tensor, TensorData};
use std::borrow::Cow;

impl<'a> RecurrentInputs<'a> for OpCtx<'a> {
    fn count(&self) -> usize {
        self.inputs.len()
    }

    fn shape(&self, i: usize) -> Option<&'a [usize]> {
        self.optional(i).map(|t| t.shape.as_slice())
    }

    fn weights(&self, i: usize) -> Result<Option<Weights<'a>>, KernelError> {
        let Some(t) = self.optional(i) else {
            return Ok(None);
        };
        match &t.data {
            TensorData::F32(v) => Ok(Some(Weights::F32(v))),
            TensorData::I8(codes) => {
                let q = self.input_quant(i).map_err(KernelError::Invalid)?;
                match (q.scale.as_slice(), q.zero_point.as_slice()) {
                    ([scale], [] | [0]) => Ok(Some(Weights::I8 {
                        codes,
                        scale: *scale,
                    })),
                    _ => Err(KernelError::Invalid(format!(
                        "input {i}: the hybrid kernel takes symmetric per-tensor int8 weights, got {} scales",
                        q.scale.len()
                    ))),
                }
            }
            other => Err(KernelError::Invalid(format!(
                "input {i} is {}, expected FLOAT32 or INT8 weights",
                crate::tflite::type_name(other.tensor_type())
            ))),
        }
    }

    fn floats(&self, i: usize) -> Result<Option<Cow<'a, [f32]>>, KernelError> {
        match self.optional(i).map(|t| &t.data) {
            None => Ok(None),
            Some(TensorData::F32(v)) => Ok(Some(Cow::Borrowed(v))),
            Some(other) => Err(KernelError::Invalid(format!(
                "input {i} is {}, expected FLOAT32",
                crate::tflite::type_name(other.tensor_type())
            ))),
        }
    }
}

fn tensors(outs: Result<Vec<FloatOutput>, KernelError>) -> Result<Vec<Tensor>, String> {
    outs.map_err(|e| e.to_string())?
        .into_iter()
        .map(|o| Tensor::new(o.shape, TensorData::F32(o.values)))
        .collect()
}

/// LSTM and UNIDIRECTIONAL_SEQUENCE_LSTM, hybrid (`lstm_eval.cc` `EvalHybrid`).
pub(crate) fn lstm(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    tensors(lstm_op::unidirectional(ctx, ctx.options(), None).map(|o| vec![o]))
}

/// BIDIRECTIONAL_SEQUENCE_LSTM, hybrid, without auxiliary input.
pub(crate) fn bidirectional_sequence_lstm(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    tensors(lstm_op::bidirectional(ctx, ctx.options()))
}

/// RNN and UNIDIRECTIONAL_SEQUENCE_RNN, hybrid (`kernel_utils.cc` `RnnBatchStep` with int8 weights).
pub(crate) fn rnn(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    tensors(rnn_op::unidirectional(ctx, ctx.options()).map(|o| vec![o]))
}

/// BIDIRECTIONAL_SEQUENCE_RNN, hybrid, without auxiliary input.
pub(crate) fn bidirectional_sequence_rnn(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    tensors(rnn_op::bidirectional(ctx, ctx.options()))
}

/// SVDF, hybrid (`svdf.h` `EvalHybridSVDF`).
pub(crate) fn svdf(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    tensors(svdf::eval(ctx, ctx.options()).map(|o| vec![o]))
}
