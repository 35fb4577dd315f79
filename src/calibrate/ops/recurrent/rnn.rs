//! The basic RNN cell and the ops over it (RNN, UNIDIRECTIONAL_SEQUENCE_RNN, BIDIRECTIONAL_SEQUENCE_RNN
//! without auxiliary input), float and hybrid: LiteRT's `kernel_utils.cc` `RnnBatchStep`,
//! `h = act(b + W x + R h)`. The hybrid step quantizes `x` and `h` per batch row and multiplies them with
//! the int8 weights in int32 ([`Weights::row_dot`]).

use super::cell::{
    activate, FloatOutput, InputQuantization, Operand, OutputSlot, RecurrentInputs, Sequence,
    Weights,
};
use crate::calibrate::KernelError;
use crate::tflite::fb;

/// One RNN direction's constant inputs.
pub(crate) struct RnnParams<'a> {
    /// Input weights `[units, n_input]`.
    pub input_w: Weights<'a>,
    /// Recurrent weights `[units, units]`.
    pub recurrent_w: Weights<'a>,
    /// Bias `[units]`.
    pub bias: &'a [f32],
    /// The fused activation.
    pub activation: fb::ActivationFunctionType,
    /// How operands are quantized (`Some` when the weights are int8: the hybrid kernel).
    pub quantize: Option<InputQuantization>,
    /// Input features.
    pub n_input: usize,
    /// Units.
    pub units: usize,
}

/// The options the RNN ops share: activation, time-major, `asymmetric_quantize_inputs`.
fn rnn_options(
    options: &fb::BuiltinOptionsT,
) -> Result<(fb::ActivationFunctionType, bool, bool), KernelError> {
    use fb::BuiltinOptionsT as O;
    Ok(match options {
        O::RNNOptions(o) => (
            o.fused_activation_function,
            false,
            o.asymmetric_quantize_inputs,
        ),
        O::SequenceRNNOptions(o) => (
            o.fused_activation_function,
            o.time_major,
            o.asymmetric_quantize_inputs,
        ),
        O::BidirectionalSequenceRNNOptions(o) => (
            o.fused_activation_function,
            o.time_major,
            o.asymmetric_quantize_inputs,
        ),
        _ => return Err(KernelError::Invalid("the op has no RNN options".into())),
    })
}

impl<'a> RnnParams<'a> {
    /// Weights at `base`, recurrent weights at `base + 1`, bias at `base + 2`.
    fn read(
        ins: &impl RecurrentInputs<'a>,
        base: usize,
        n_input: usize,
        activation: fb::ActivationFunctionType,
        asymmetric: bool,
    ) -> Result<RnnParams<'a>, KernelError> {
        let input_w = ins.required_weights(base)?;
        let recurrent_w = ins.required_weights(base + 1)?;
        let bias = ins
            .float_vector(base + 2)?
            .ok_or_else(|| KernelError::Invalid("the RNN has no bias".into()))?;
        let units = bias.len();
        if input_w.len() != units * n_input || recurrent_w.len() != units * units {
            return Err(KernelError::Invalid(format!(
                "weights {} / recurrent weights {} do not fit {units} units of {n_input} inputs",
                input_w.len(),
                recurrent_w.len()
            )));
        }
        let hybrid = input_w.is_int8() || recurrent_w.is_int8();
        Ok(RnnParams {
            input_w,
            recurrent_w,
            bias,
            activation,
            quantize: InputQuantization::of(hybrid, asymmetric),
            n_input,
            units,
        })
    }

    /// One step of one batch row: `h = act(b + W x + R h)`.
    fn step(&self, x: &[f32], h: &mut [f32]) {
        let units = self.units;
        let (mut wx, mut rh) = (vec![0.0; units], vec![0.0; units]);
        {
            let xo = Operand::new(x, self.quantize);
            let ho = Operand::new(h, self.quantize);
            self.input_w.mat_vec(units, self.n_input, &xo, &mut wx);
            self.recurrent_w.mat_vec(units, units, &ho, &mut rh);
        }
        for (u, (hv, (x, r))) in h.iter_mut().zip(wx.into_iter().zip(rh)).enumerate() {
            let mut acc = self.bias[u];
            acc += x;
            acc += r;
            *hv = activate(acc, self.activation);
        }
    }

    /// Runs a whole sequence forward or backward in time from the hidden state `h0` (`[batch, units]`);
    /// returns the final hidden state.
    fn sequence(
        &self,
        input: &[f32],
        seq: Sequence,
        forward: bool,
        h0: &[f32],
        out: OutputSlot<'_>,
    ) -> Result<Vec<f32>, KernelError> {
        let (ni, nu) = (self.n_input, self.units);
        if h0.len() != seq.batch * nu || input.len() != seq.batch * seq.time * ni {
            return Err(KernelError::Invalid(format!(
                "state of {} and input of {} values do not fit batch {} x time {} x {ni} inputs, {nu} units",
                h0.len(),
                input.len(),
                seq.batch,
                seq.time
            )));
        }
        let mut h = h0.to_vec();
        for b in 0..seq.batch {
            for s in 0..seq.time {
                let row = seq.row(b, seq.time_at(s, forward));
                let hb = &mut h[b * nu..(b + 1) * nu];
                self.step(&input[row * ni..(row + 1) * ni], hb);
                let at = row * out.stride + out.offset;
                out.out[at..at + nu].copy_from_slice(hb);
            }
        }
        Ok(h)
    }

    /// [`Self::sequence`] `repeats` times, each run from the state the previous one ended in (LiteRT's
    /// hybrid time-major BIDIRECTIONAL_SEQUENCE_RNN, see [`bidirectional`]); the last run's outputs stay.
    fn repeated_sequence(
        &self,
        input: &[f32],
        seq: Sequence,
        forward: bool,
        h0: &[f32],
        out: OutputSlot<'_>,
        repeats: usize,
    ) -> Result<(), KernelError> {
        let mut h = h0.to_vec();
        for _ in 0..repeats.max(1) {
            let slot = OutputSlot::part(&mut *out.out, out.stride, out.offset);
            h = self.sequence(input, seq, forward, &h, slot)?;
        }
        Ok(())
    }
}

/// RNN (`[batch, n_input]`, one step) and UNIDIRECTIONAL_SEQUENCE_RNN: weights 1-3, hidden state 4.
pub(crate) fn unidirectional<'a>(
    ins: &impl RecurrentInputs<'a>,
    options: &fb::BuiltinOptionsT,
) -> Result<FloatOutput, KernelError> {
    let (act, time_major, asymmetric) = rnn_options(options)?;
    let input = ins.required_floats(0)?;
    let (seq, n_input) = Sequence::of(ins.shape(0).unwrap_or_default(), time_major)?;
    let p = RnnParams::read(ins, 1, n_input, act, asymmetric)?;
    let h0 = ins.state(4, seq.batch * p.units)?;
    let mut values = vec![0.0; seq.batch * seq.time * p.units];
    p.sequence(
        &input,
        seq,
        true,
        &h0,
        OutputSlot::whole(&mut values, p.units),
    )?;
    Ok(FloatOutput {
        shape: seq.output_shape(p.units),
        values,
    })
}

/// BIDIRECTIONAL_SEQUENCE_RNN without auxiliary input: forward weights 1-3 and state 4, backward weights
/// 5-7 and state 8; one merged output or one per direction.
///
/// LiteRT's hybrid kernel on a time-major input (`bidirectional_sequence_rnn.cc` `EvalHybrid`, LiteRT
/// 2.3) wraps both passes in a loop over time: each direction runs the whole sequence `time` times, every
/// run from the hidden state the previous one ended in, and the last run's outputs remain. The hybrid
/// kernel here does the same, so that eval reports what LiteRT computes; its float kernel runs each
/// sequence once.
pub(crate) fn bidirectional<'a>(
    ins: &impl RecurrentInputs<'a>,
    options: &fb::BuiltinOptionsT,
) -> Result<Vec<FloatOutput>, KernelError> {
    let merge = match options {
        fb::BuiltinOptionsT::BidirectionalSequenceRNNOptions(o) => o.merge_outputs,
        _ => false,
    };
    if ins.shape(9).is_some() {
        return Err(KernelError::Invalid(
            "an auxiliary input is not supported".into(),
        ));
    }
    let (act, time_major, asymmetric) = rnn_options(options)?;
    let input = ins.required_floats(0)?;
    let (seq, n_input) = Sequence::of(ins.shape(0).unwrap_or_default(), time_major)?;
    let fw = RnnParams::read(ins, 1, n_input, act, asymmetric)?;
    let bw = RnnParams::read(ins, 5, n_input, act, asymmetric)?;
    let fw_h = ins.state(4, seq.batch * fw.units)?;
    let bw_h = ins.state(8, seq.batch * bw.units)?;
    let rows = seq.batch * seq.time;
    let (fu, bu) = (fw.units, bw.units);
    let hybrid = fw.quantize.is_some() || bw.quantize.is_some();
    let repeats = if hybrid && time_major { seq.time } else { 1 };
    if merge {
        let stride = fu + bu;
        let mut values = vec![0.0; rows * stride];
        let fw_out = OutputSlot::whole(&mut values, stride);
        fw.repeated_sequence(&input, seq, true, &fw_h, fw_out, repeats)?;
        let bw_out = OutputSlot::part(&mut values, stride, fu);
        bw.repeated_sequence(&input, seq, false, &bw_h, bw_out, repeats)?;
        return Ok(vec![FloatOutput {
            shape: seq.output_shape(stride),
            values,
        }]);
    }
    let mut f = vec![0.0; rows * fu];
    let mut b = vec![0.0; rows * bu];
    let fw_out = OutputSlot::whole(&mut f, fu);
    fw.repeated_sequence(&input, seq, true, &fw_h, fw_out, repeats)?;
    let bw_out = OutputSlot::whole(&mut b, bu);
    bw.repeated_sequence(&input, seq, false, &bw_h, bw_out, repeats)?;
    Ok(vec![
        FloatOutput {
            shape: seq.output_shape(fu),
            values: f,
        },
        FloatOutput {
            shape: seq.output_shape(bu),
            values: b,
        },
    ])
}
