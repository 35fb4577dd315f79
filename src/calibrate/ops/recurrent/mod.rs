//! Fused recurrent ops, as LiteRT's kernels compute them: LSTM (full kernel), UNIDIRECTIONAL_SEQUENCE_LSTM,
//! BIDIRECTIONAL_SEQUENCE_LSTM (`lstm_eval.cc`), RNN, UNIDIRECTIONAL_SEQUENCE_RNN,
//! BIDIRECTIONAL_SEQUENCE_RNN (`kernel_utils.cc` `RnnBatchStep`), the bidirectional ones without auxiliary
//! input. One body per op serves the float kernel (calibration values) and the hybrid kernel of the
//! integer interpreter (int8 weights, [`crate::interp::kernels::recurrent`]), through [`RecurrentInputs`].
//!
//! The state inputs are variable tensors: the interpreter gives them their initial value (zero, or their
//! buffer) on every sample, so a sample starts from the state LiteRT has after `reset_all_variables()`.
//! The kernels never write them back: one invoke is one sample.
//!
//! An LSTM op that carries `intermediates` (TF's full-integer LSTM records five: the four gate
//! pre-activations and the hidden value before projection) gets their values returned after its outputs,
//! so calibration observes them.

pub(crate) mod cell;
pub(crate) mod lstm;
pub(crate) mod rnn;

use super::kernel_args::array;
use crate::calibrate::{KernelError, OpContext, Value};
use cell::{FloatOutput, RecurrentInputs, Weights};
use lstm::LstmRecord;
use std::borrow::Cow;

impl<'a> RecurrentInputs<'a> for OpContext<'a> {
    fn count(&self) -> usize {
        self.inputs.len()
    }

    fn shape(&self, i: usize) -> Option<&'a [usize]> {
        self.inputs.get(i).copied().flatten().map(Value::shape)
    }

    fn weights(&self, i: usize) -> Result<Option<Weights<'a>>, KernelError> {
        match self.inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(Value::F32(a)) => a.as_slice().map(|v| Some(Weights::F32(v))).ok_or_else(|| {
                KernelError::Invalid(format!("input {i}: weights are not contiguous"))
            }),
            Some(other) => Err(KernelError::Invalid(format!(
                "input {i} is {}, expected FLOAT32",
                other.type_name()
            ))),
        }
    }

    fn floats(&self, i: usize) -> Result<Option<Cow<'a, [f32]>>, KernelError> {
        match self.inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(Value::F32(a)) => Ok(Some(match a.as_slice() {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(a.iter().copied().collect()),
            })),
            Some(other) => Err(KernelError::Invalid(format!(
                "input {i} is {}, expected FLOAT32",
                other.type_name()
            ))),
        }
    }
}

fn value(o: FloatOutput) -> Result<Value, KernelError> {
    array(&o.shape, o.values).map(Value::F32)
}

/// The values returned for the op's intermediates (when it declares five), after its outputs.
fn intermediates(ctx: &OpContext<'_>, record: LstmRecord) -> Result<Vec<Value>, KernelError> {
    let n = ctx.operator().intermediates.as_ref().map_or(0, |v| v.len());
    if n == 0 {
        return Ok(Vec::new());
    }
    if n != 5 {
        return Err(KernelError::Invalid(format!(
            "the op has {n} intermediates; litequant records 0 or 5"
        )));
    }
    let LstmRecord { gates, hidden } = record;
    gates
        .into_iter()
        .chain([hidden])
        .map(|v| {
            let n = v.len();
            array(&[n], v).map(Value::F32)
        })
        .collect()
}

/// LSTM (full kernel; one step) and UNIDIRECTIONAL_SEQUENCE_LSTM (float), with their intermediates.
pub(crate) fn lstm(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let mut record = LstmRecord::default();
    let out = lstm::unidirectional(ctx, &ctx.operator().builtin_options, Some(&mut record))?;
    let mut outs = vec![value(out)?];
    outs.extend(intermediates(ctx, record)?);
    Ok(outs)
}

/// BIDIRECTIONAL_SEQUENCE_LSTM (float), without auxiliary input.
pub(crate) fn bidirectional_sequence_lstm(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    lstm::bidirectional(ctx, &ctx.operator().builtin_options)?
        .into_iter()
        .map(value)
        .collect()
}

/// RNN (one step) and UNIDIRECTIONAL_SEQUENCE_RNN (float): `h = act(W x + R h + b)` per step.
pub(crate) fn rnn(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![value(rnn::unidirectional(
        ctx,
        &ctx.operator().builtin_options,
    )?)?])
}

/// BIDIRECTIONAL_SEQUENCE_RNN (float), without auxiliary input.
pub(crate) fn bidirectional_sequence_rnn(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    rnn::bidirectional(ctx, &ctx.operator().builtin_options)?
        .into_iter()
        .map(value)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, run_f32, Arg};
    use crate::tflite::fb;

    fn weights(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 101) % 23) as f32 - 11.0) / 20.0)
            .collect()
    }

    /// One direction's 17 constant inputs (after the sequence input): 4 cells, 3 features, no peephole or
    /// projection.
    fn direction(seed: usize) -> Vec<Arg> {
        let (c, n) = (4, 3);
        let mut v = Vec::new();
        for g in 0..4 {
            v.push(Arg::f32(&[c, n], weights(c * n, seed + g)));
        }
        for g in 0..4 {
            v.push(Arg::f32(&[c, c], weights(c * c, seed + 10 + g)));
        }
        for _ in 0..3 {
            v.push(Arg::Omitted);
        }
        for g in 0..4 {
            v.push(Arg::f32(&[c], weights(c, seed + 20 + g)));
        }
        v.push(Arg::Omitted);
        v.push(Arg::Omitted);
        v
    }

    fn input(t: usize, reversed: bool) -> Arg {
        let mut x = weights(t * 3, 7);
        if reversed {
            let rows: Vec<Vec<f32>> = x.chunks(3).rev().map(<[f32]>::to_vec).collect();
            x = rows.concat();
        }
        Arg::f32(&[1, t, 3], x)
    }

    fn unidirectional(seed: usize, reversed: bool) -> Vec<f32> {
        let mut args = vec![input(5, reversed)];
        args.extend(direction(seed));
        args.push(Arg::Omitted); // output state: zero
        args.push(Arg::Omitted); // cell state: zero
        let o = fb::UnidirectionalSequenceLSTMOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            cell_clip: 10.0,
            ..Default::default()
        };
        run_f32(
            fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM,
            fb::BuiltinOptionsT::UnidirectionalSequenceLSTMOptions(Box::new(o)),
            args,
        )
        .1
    }

    #[test]
    fn bidirectional_lstm_is_a_forward_and_a_time_reversed_unidirectional_lstm() {
        let mut args = vec![input(5, false)];
        args.extend(direction(1));
        args.extend(direction(50));
        for _ in 35..48 {
            args.push(Arg::Omitted);
        }
        let o = fb::BidirectionalSequenceLSTMOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            cell_clip: 10.0,
            merge_outputs: true,
            // The schema's default is time-major.
            time_major: false,
            ..Default::default()
        };
        let (shape, y) = run_f32(
            fb::BuiltinOperator::BIDIRECTIONAL_SEQUENCE_LSTM,
            fb::BuiltinOptionsT::BidirectionalSequenceLSTMOptions(Box::new(o)),
            args,
        );
        assert_eq!(shape, vec![1, 5, 8]);
        let fw = unidirectional(1, false);
        let bw_reversed = unidirectional(50, true);
        assert_merged_directions(&y, &fw, &bw_reversed);
    }

    /// A merged bidirectional output of 5 steps x 4 units per direction: the forward run, then the
    /// backward run (computed on the time-reversed input) read back to front.
    fn assert_merged_directions(y: &[f32], fw: &[f32], bw_reversed: &[f32]) {
        for t in 0..5 {
            assert_close(&y[t * 8..t * 8 + 4], &fw[t * 4..t * 4 + 4], 1e-6);
            let r = 4 - t;
            assert_close(
                &y[t * 8 + 4..t * 8 + 8],
                &bw_reversed[r * 4..r * 4 + 4],
                1e-6,
            );
        }
    }

    #[test]
    fn sequence_rnn_carries_its_state_from_step_to_step() {
        let o = fb::SequenceRNNOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            ..Default::default()
        };
        let (shape, y) = run_f32(
            fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_RNN,
            fb::BuiltinOptionsT::SequenceRNNOptions(Box::new(o)),
            vec![
                Arg::f32(&[1, 2, 1], vec![0.5, -1.0]),
                Arg::f32(&[1, 1], vec![2.0]),
                Arg::f32(&[1, 1], vec![0.5]),
                Arg::f32(&[1], vec![0.1]),
                Arg::Omitted,
            ],
        );
        assert_eq!(shape, vec![1, 2, 1]);
        let h1 = 1.1f32.tanh();
        let h2 = (-2.0 + 0.5 * h1 + 0.1f32).tanh();
        assert_close(&y, &[h1, h2], 1e-6);
    }

    fn rnn_args(time: usize, seed: usize, reversed: bool) -> Vec<Arg> {
        let (n, u) = (3, 4);
        let mut x = weights(time * n, seed);
        if reversed {
            x = x.chunks(n).rev().flatten().copied().collect();
        }
        let shape: Vec<usize> = if time == 0 {
            vec![1, n]
        } else {
            vec![1, time, n]
        };
        let x = if time == 0 { weights(n, seed) } else { x };
        vec![
            Arg::f32(&shape, x),
            Arg::f32(&[u, n], weights(u * n, seed + 1)),
            Arg::f32(&[u, u], weights(u * u, seed + 2)),
            Arg::f32(&[u], weights(u, seed + 3)),
            Arg::Omitted,
        ]
    }

    fn sequence_rnn(time: usize, seed: usize, reversed: bool) -> Vec<f32> {
        let o = fb::SequenceRNNOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            ..Default::default()
        };
        run_f32(
            fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_RNN,
            fb::BuiltinOptionsT::SequenceRNNOptions(Box::new(o)),
            rnn_args(time, seed, reversed),
        )
        .1
    }

    #[test]
    fn rnn_is_one_step_of_the_sequence_rnn() {
        let o = fb::RNNOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            ..Default::default()
        };
        let (shape, y) = run_f32(
            fb::BuiltinOperator::RNN,
            fb::BuiltinOptionsT::RNNOptions(Box::new(o)),
            rnn_args(0, 3, false),
        );
        assert_eq!(shape, vec![1, 4]);
        assert_close(&y, &sequence_rnn(0, 3, false), 0.0);
        assert!(y.iter().any(|v| v.abs() > 0.05), "{y:?}");
    }

    #[test]
    fn bidirectional_rnn_is_a_forward_and_a_time_reversed_sequence_rnn() {
        let mut args = rnn_args(5, 1, false);
        let backward = rnn_args(5, 20, false);
        args.extend(backward.into_iter().skip(1));
        let o = fb::BidirectionalSequenceRNNOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            merge_outputs: true,
            ..Default::default()
        };
        let (shape, y) = run_f32(
            fb::BuiltinOperator::BIDIRECTIONAL_SEQUENCE_RNN,
            fb::BuiltinOptionsT::BidirectionalSequenceRNNOptions(Box::new(o)),
            args,
        );
        assert_eq!(shape, vec![1, 5, 8]);
        let fw = sequence_rnn(5, 1, false);
        // The backward weights with the forward input reversed in time.
        let mut bw_args = rnn_args(5, 20, false);
        bw_args[0] = rnn_args(5, 1, true).remove(0);
        let o = fb::SequenceRNNOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            ..Default::default()
        };
        let bw_reversed = run_f32(
            fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_RNN,
            fb::BuiltinOptionsT::SequenceRNNOptions(Box::new(o)),
            bw_args,
        )
        .1;
        assert_merged_directions(&y, &fw, &bw_reversed);
    }

    #[test]
    fn lstm_is_one_step_of_the_sequence_lstm() {
        let mut args = vec![Arg::f32(&[1, 3], weights(3, 7))];
        args.extend(direction(1));
        args.push(Arg::Omitted);
        args.push(Arg::Omitted);
        let o = fb::LSTMOptionsT {
            fused_activation_function: fb::ActivationFunctionType::TANH,
            cell_clip: 10.0,
            ..Default::default()
        };
        let (shape, y) = run_f32(
            fb::BuiltinOperator::LSTM,
            fb::BuiltinOptionsT::LSTMOptions(Box::new(o)),
            args,
        );
        assert_eq!(shape, vec![1, 4]);
        assert_close(&y, &unidirectional(1, false)[..4], 1e-6);
    }

    #[test]
    fn the_basic_lstm_kernel_is_refused_with_its_name() {
        let o = fb::LSTMOptionsT {
            kernel_type: fb::LSTMKernelType::BASIC,
            ..Default::default()
        };
        let err = super::super::testing::try_run_op(
            fb::BuiltinOperator::LSTM,
            fb::BuiltinOptionsT::LSTMOptions(Box::new(o)),
            vec![Arg::f32(&[1, 3], weights(3, 7))],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("basic-kernel LSTM"), "{err}");
    }
}
