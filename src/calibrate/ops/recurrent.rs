//! Fused recurrent ops: UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM (without auxiliary input)
//! and UNIDIRECTIONAL_SEQUENCE_RNN, as LiteRT's float kernels compute them (`lstm_eval.cc` `EvalFloat`,
//! `kernel_utils.cc` `RnnBatchStep`).
//!
//! The state inputs are variable tensors: the interpreter gives them their initial value (zero, or their
//! buffer) on every sample, so a sample starts from the state LiteRT has after `reset_all_variables()`.
//! The kernels never write them back: one invoke is one sample.
//!
//! An LSTM op that carries `intermediates` (TF's full-integer LSTM records five: the four gate
//! pre-activations and the hidden value before projection) gets their values returned after its outputs,
//! so calibration observes them.

use super::kernel_args::{array, missing_options, optional_f32};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;

/// One LSTM direction's constant inputs, as row-major slices.
pub(crate) struct LstmParams<'a> {
    /// input_to_{input,forget,cell,output} weights, `[n_cell, n_input]` (input gate absent with CIFG).
    pub input_w: [Option<&'a [f32]>; 4],
    /// recurrent_to_{input,forget,cell,output} weights, `[n_cell, n_output]`, or `[n_cell]` when diagonal.
    pub recurrent_w: [Option<&'a [f32]>; 4],
    /// cell_to_{input,forget,output} peephole weights, `[n_cell]`.
    pub peephole: [Option<&'a [f32]>; 3],
    /// {input,forget,cell,output} gate biases, `[n_cell]`.
    pub bias: [Option<&'a [f32]>; 4],
    /// Projection weights `[n_output, n_cell]` and bias `[n_output]`.
    pub projection: Option<&'a [f32]>,
    /// Projection bias.
    pub projection_bias: Option<&'a [f32]>,
    /// Layer-norm coefficients of the four gates, `[n_cell]`.
    pub layer_norm: [Option<&'a [f32]>; 4],
    /// Whether each gate's recurrent weights are diagonal (rank 1, `diagonal_recurrent_tensors`).
    pub diagonal: [bool; 4],
    /// The activation of the cell gate and of the cell state on output.
    pub activation: fb::ActivationFunctionType,
    /// Cell clip (0: none).
    pub cell_clip: f32,
    /// Projection clip (0: none).
    pub proj_clip: f32,
    /// Sizes.
    pub n_input: usize,
    /// Cells.
    pub n_cell: usize,
    /// Output units.
    pub n_output: usize,
}

/// Gate values recorded for calibration: the four gates' pre-activations (before layer norm) and the hidden
/// value before projection, over every step.
#[derive(Default)]
pub(crate) struct LstmRecord {
    /// Input, forget, cell, output gate accumulations.
    pub gates: [Vec<f32>; 4],
    /// `output_gate * act(cell)`.
    pub hidden: Vec<f32>,
}

fn activate(x: f32, act: fb::ActivationFunctionType) -> f32 {
    use fb::ActivationFunctionType as A;
    match act {
        A::RELU => x.max(0.0),
        A::RELU_N1_TO_1 => x.clamp(-1.0, 1.0),
        A::RELU6 => x.clamp(0.0, 6.0),
        A::TANH => x.tanh(),
        A::SIGN_BIT => {
            if x.is_sign_negative() {
                1.0
            } else {
                0.0
            }
        }
        _ => x,
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl LstmParams<'_> {
    /// Checks every present tensor's length against the sizes.
    fn check(&self) -> Result<(), KernelError> {
        let (ni, nc, no) = (self.n_input, self.n_cell, self.n_output);
        let bad = |what: &str, got: usize, want: usize| {
            KernelError::Invalid(format!("{what} has {got} values, expected {want}"))
        };
        for (g, w) in self.input_w.iter().enumerate() {
            if let Some(w) = w {
                if w.len() != nc * ni {
                    return Err(bad(&format!("input weights of gate {g}"), w.len(), nc * ni));
                }
            }
        }
        for (g, w) in self.recurrent_w.iter().enumerate() {
            if let Some(w) = w {
                let want = if self.diagonal[g] { nc } else { nc * no };
                if w.len() != want {
                    return Err(bad(
                        &format!("recurrent weights of gate {g}"),
                        w.len(),
                        want,
                    ));
                }
            }
        }
        for v in self
            .peephole
            .iter()
            .chain(&self.bias)
            .chain(&self.layer_norm)
            .flatten()
        {
            if v.len() != nc {
                return Err(bad("a per-cell vector", v.len(), nc));
            }
        }
        if let Some(p) = self.projection {
            if p.len() != no * nc {
                return Err(bad("projection weights", p.len(), no * nc));
            }
        } else if no != nc {
            return Err(KernelError::Invalid(format!(
                "without projection the output size {no} must equal the cell count {nc}"
            )));
        }
        if let Some(b) = self.projection_bias {
            if b.len() != no {
                return Err(bad("projection bias", b.len(), no));
            }
        }
        for g in [1, 2, 3] {
            if self.input_w[g].is_none() || self.recurrent_w[g].is_none() {
                return Err(KernelError::Invalid(format!(
                    "gate {g} lacks its input or recurrent weights"
                )));
            }
        }
        Ok(())
    }

    /// One gate for one batch row: `act(W x + R h + p .* c + b)` (layer norm before the bias when present).
    #[allow(clippy::too_many_arguments)]
    fn gate(
        &self,
        g: usize,
        peephole: Option<&[f32]>,
        x: &[f32],
        h: &[f32],
        c: &[f32],
        act: Option<fb::ActivationFunctionType>,
        out: &mut [f32],
        record: Option<&mut Vec<f32>>,
    ) {
        let (ni, nc, no) = (self.n_input, self.n_cell, self.n_output);
        let ln = self.layer_norm[g];
        let (Some(wi), Some(wr)) = (self.input_w[g], self.recurrent_w[g]) else {
            return;
        };
        for (r, o) in out.iter_mut().enumerate().take(nc) {
            let mut acc = match (ln, self.bias[g]) {
                (None, Some(b)) => b[r],
                _ => 0.0,
            };
            acc += wi[r * ni..(r + 1) * ni]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f32>();
            if self.diagonal[g] {
                acc += wr[r] * h[r];
            } else {
                acc += wr[r * no..(r + 1) * no]
                    .iter()
                    .zip(h)
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            }
            if let Some(p) = peephole {
                acc += p[r] * c[r];
            }
            *o = acc;
        }
        if let Some(rec) = record {
            rec.extend_from_slice(&out[..nc]);
        }
        if let Some(coeff) = ln {
            let mean = out.iter().sum::<f32>() / nc as f32;
            let var = out.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / nc as f32;
            let inv = 1.0 / (var + 1e-8).sqrt();
            for (r, o) in out.iter_mut().enumerate() {
                *o = (*o - mean) * inv * coeff[r] + self.bias[g].map_or(0.0, |b| b[r]);
            }
        }
        for o in out.iter_mut() {
            *o = match act {
                None => sigmoid(*o),
                Some(a) => activate(*o, a),
            };
        }
    }

    /// One time step of one batch row: updates `h` (`n_output`) and `c` (`n_cell`) in place.
    fn step(
        &self,
        x: &[f32],
        h: &mut [f32],
        c: &mut [f32],
        scratch: &mut [Vec<f32>; 4],
        mut record: Option<&mut LstmRecord>,
    ) {
        let nc = self.n_cell;
        let cifg = self.input_w[0].is_none();
        let [ig, fg, cg, og] = scratch;
        if !cifg {
            self.gate(
                0,
                self.peephole[0],
                x,
                h,
                c,
                None,
                ig,
                record.as_deref_mut().map(|r| &mut r.gates[0]),
            );
        }
        self.gate(
            1,
            self.peephole[1],
            x,
            h,
            c,
            None,
            fg,
            record.as_deref_mut().map(|r| &mut r.gates[1]),
        );
        self.gate(
            2,
            None,
            x,
            h,
            c,
            Some(self.activation),
            cg,
            record.as_deref_mut().map(|r| &mut r.gates[2]),
        );
        for r in 0..nc {
            let i = if cifg { 1.0 - fg[r] } else { ig[r] };
            let mut v = fg[r] * c[r] + i * cg[r];
            if self.cell_clip > 0.0 {
                v = v.clamp(-self.cell_clip, self.cell_clip);
            }
            c[r] = v;
        }
        self.gate(
            3,
            self.peephole[2],
            x,
            h,
            c,
            None,
            og,
            record.as_deref_mut().map(|r| &mut r.gates[3]),
        );
        let hidden: Vec<f32> = (0..nc)
            .map(|r| og[r] * activate(c[r], self.activation))
            .collect();
        if let Some(r) = record {
            r.hidden.extend_from_slice(&hidden);
        }
        match self.projection {
            Some(p) => {
                for (o, hv) in h.iter_mut().enumerate() {
                    let mut acc = self.projection_bias.map_or(0.0, |b| b[o]);
                    acc += p[o * nc..(o + 1) * nc]
                        .iter()
                        .zip(&hidden)
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                    if self.proj_clip > 0.0 {
                        acc = acc.clamp(-self.proj_clip, self.proj_clip);
                    }
                    *hv = acc;
                }
            }
            None => h.copy_from_slice(&hidden),
        }
    }

    /// Runs a whole sequence. `input` is `[batch, time, n_input]` (`[time, batch, n_input]` when
    /// `time_major`); the output has the same leading layout with `n_output` values, written at
    /// `out_offset` within rows of `out_stride`. `h0`/`c0` are the initial states `[batch, n_output]` and
    /// `[batch, n_cell]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sequence(
        &self,
        input: &[f32],
        batch: usize,
        time: usize,
        time_major: bool,
        forward: bool,
        h0: &[f32],
        c0: &[f32],
        out: &mut [f32],
        out_stride: usize,
        out_offset: usize,
        mut record: Option<&mut LstmRecord>,
    ) -> Result<(), KernelError> {
        self.check()?;
        let (ni, nc, no) = (self.n_input, self.n_cell, self.n_output);
        if h0.len() != batch * no || c0.len() != batch * nc {
            return Err(KernelError::Invalid(format!(
                "state sizes {} and {} do not match batch {batch} x output {no} / cell {nc}",
                h0.len(),
                c0.len()
            )));
        }
        let mut scratch = [vec![0.0; nc], vec![0.0; nc], vec![0.0; nc], vec![0.0; nc]];
        let mut h = h0.to_vec();
        let mut c = c0.to_vec();
        for b in 0..batch {
            for s in 0..time {
                let t = if forward { s } else { time - 1 - s };
                let row = if time_major {
                    t * batch + b
                } else {
                    b * time + t
                };
                let x = &input[row * ni..(row + 1) * ni];
                let (hb, cb) = (&mut h[b * no..(b + 1) * no], &mut c[b * nc..(b + 1) * nc]);
                self.step(x, hb, cb, &mut scratch, record.as_deref_mut());
                let at = row * out_stride + out_offset;
                out[at..at + no].copy_from_slice(hb);
            }
        }
        Ok(())
    }
}

/// A row-major copy of an optional float input.
fn opt_vec(ctx: &OpContext<'_>, i: usize) -> Result<Option<Vec<f32>>, KernelError> {
    Ok(optional_f32(ctx, i)?.map(|a| a.iter().copied().collect()))
}

/// Reads one direction's constant inputs from `base` (the UNIDIRECTIONAL layout: weights at base+0..,
/// biases at base+11.., projection at base+15/16) and the layer-norm coefficients at `ln`.
fn read_direction(
    ctx: &OpContext<'_>,
    base: usize,
    ln: Option<usize>,
) -> Result<Vec<Option<Vec<f32>>>, KernelError> {
    let mut v = Vec::with_capacity(21);
    for i in 0..17 {
        v.push(opt_vec(ctx, base + i)?);
    }
    for g in 0..4 {
        v.push(match ln {
            Some(l) => opt_vec(ctx, l + g)?,
            None => None,
        });
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn params<'a>(
    v: &'a [Option<Vec<f32>>],
    diagonal: [bool; 4],
    n_input: usize,
    activation: fb::ActivationFunctionType,
    cell_clip: f32,
    proj_clip: f32,
) -> Result<LstmParams<'a>, KernelError> {
    let s = |i: usize| v[i].as_deref();
    let n_cell = s(3)
        .map(|w| w.len() / n_input.max(1))
        .ok_or_else(|| KernelError::Invalid("missing input_to_output weights".into()))?;
    let rec_out = s(7).ok_or_else(|| KernelError::Invalid("missing recurrent weights".into()))?;
    let n_output = if diagonal[3] {
        n_cell
    } else {
        rec_out.len() / n_cell.max(1)
    };
    Ok(LstmParams {
        input_w: [s(0), s(1), s(2), s(3)],
        recurrent_w: [s(4), s(5), s(6), s(7)],
        peephole: [s(8), s(9), s(10)],
        bias: [s(11), s(12), s(13), s(14)],
        projection: s(15),
        projection_bias: s(16),
        layer_norm: [s(17), s(18), s(19), s(20)],
        diagonal,
        activation,
        cell_clip,
        proj_clip,
        n_input,
        n_cell,
        n_output,
    })
}

/// Whether the recurrent weights at `first..first + 4` are rank 1 (diagonal).
fn diagonal(ctx: &OpContext<'_>, first: usize) -> [bool; 4] {
    std::array::from_fn(|g| {
        ctx.inputs
            .get(first + g)
            .copied()
            .flatten()
            .is_some_and(|v| v.shape().len() == 1)
    })
}

/// `(batch, time, n_input)` of a sequence input.
fn sequence_dims(shape: &[usize], time_major: bool) -> Result<(usize, usize, usize), KernelError> {
    match *shape {
        [b, n] => Ok((b, 1, n)),
        [a, b, n] => Ok(if time_major { (b, a, n) } else { (a, b, n) }),
        _ => Err(KernelError::Invalid(format!(
            "input has shape {shape:?}, expected rank 2 or 3"
        ))),
    }
}

/// A state input: its value, or zeros of `len` when it is omitted.
fn state(ctx: &OpContext<'_>, i: usize, len: usize) -> Result<Vec<f32>, KernelError> {
    let v = opt_vec(ctx, i)?.unwrap_or_else(|| vec![0.0; len]);
    if v.len() != len {
        return Err(KernelError::Invalid(format!(
            "state input {i} has {} values, expected {len}",
            v.len()
        )));
    }
    Ok(v)
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

/// UNIDIRECTIONAL_SEQUENCE_LSTM (float).
pub(crate) fn unidirectional_sequence_lstm(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_unidirectional_sequence_lstmoptions()
        .ok_or_else(|| missing_options("UnidirectionalSequenceLSTMOptions"))?;
    let input = ctx.input_f32(0)?;
    let (batch, time, n_input) = sequence_dims(input.shape(), o.time_major)?;
    let ln = (ctx.inputs.len() == 24).then_some(20);
    let v = read_direction(ctx, 1, ln)?;
    let p = params(
        &v,
        diagonal(ctx, 5),
        n_input,
        o.fused_activation_function,
        o.cell_clip,
        o.proj_clip,
    )?;
    let h0 = state(ctx, 18, batch * p.n_output)?;
    let c0 = state(ctx, 19, batch * p.n_cell)?;
    let x: Vec<f32> = input.iter().copied().collect();
    let mut out = vec![0.0; batch * time * p.n_output];
    let mut record = LstmRecord::default();
    p.sequence(
        &x,
        batch,
        time,
        o.time_major,
        true,
        &h0,
        &c0,
        &mut out,
        p.n_output,
        0,
        Some(&mut record),
    )?;
    let shape = match input.shape().len() {
        2 => vec![batch, p.n_output],
        _ if o.time_major => vec![time, batch, p.n_output],
        _ => vec![batch, time, p.n_output],
    };
    let mut outs = vec![Value::F32(array(&shape, out)?)];
    outs.extend(intermediates(ctx, record)?);
    Ok(outs)
}

/// BIDIRECTIONAL_SEQUENCE_LSTM (float), without auxiliary input.
pub(crate) fn bidirectional_sequence_lstm(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_bidirectional_sequence_lstmoptions()
        .ok_or_else(|| missing_options("BidirectionalSequenceLSTMOptions"))?;
    if ctx.inputs.get(39).copied().flatten().is_some() {
        return Err(KernelError::Invalid(
            "an auxiliary input is not supported".into(),
        ));
    }
    let input = ctx.input_f32(0)?;
    let (batch, time, n_input) = sequence_dims(input.shape(), o.time_major)?;
    let x: Vec<f32> = input.iter().copied().collect();
    let fw_v = read_direction(ctx, 1, None)?;
    let bw_v = read_direction(ctx, 18, None)?;
    let act = o.fused_activation_function;
    let fw = params(
        &fw_v,
        diagonal(ctx, 5),
        n_input,
        act,
        o.cell_clip,
        o.proj_clip,
    )?;
    let bw = params(
        &bw_v,
        diagonal(ctx, 22),
        n_input,
        act,
        o.cell_clip,
        o.proj_clip,
    )?;
    let (fo, bo) = (fw.n_output, bw.n_output);
    let fw_h = state(ctx, 35, batch * fo)?;
    let fw_c = state(ctx, 36, batch * fw.n_cell)?;
    let bw_h = state(ctx, 37, batch * bo)?;
    let bw_c = state(ctx, 38, batch * bw.n_cell)?;
    let lead = |n: usize| match input.shape().len() {
        2 => vec![batch, n],
        _ if o.time_major => vec![time, batch, n],
        _ => vec![batch, time, n],
    };
    let rows = batch * time;
    if o.merge_outputs {
        let stride = fo + bo;
        let mut out = vec![0.0; rows * stride];
        fw.sequence(
            &x,
            batch,
            time,
            o.time_major,
            true,
            &fw_h,
            &fw_c,
            &mut out,
            stride,
            0,
            None,
        )?;
        bw.sequence(
            &x,
            batch,
            time,
            o.time_major,
            false,
            &bw_h,
            &bw_c,
            &mut out,
            stride,
            fo,
            None,
        )?;
        Ok(vec![Value::F32(array(&lead(stride), out)?)])
    } else {
        let mut f = vec![0.0; rows * fo];
        let mut b = vec![0.0; rows * bo];
        fw.sequence(
            &x,
            batch,
            time,
            o.time_major,
            true,
            &fw_h,
            &fw_c,
            &mut f,
            fo,
            0,
            None,
        )?;
        bw.sequence(
            &x,
            batch,
            time,
            o.time_major,
            false,
            &bw_h,
            &bw_c,
            &mut b,
            bo,
            0,
            None,
        )?;
        Ok(vec![
            Value::F32(array(&lead(fo), f)?),
            Value::F32(array(&lead(bo), b)?),
        ])
    }
}

/// UNIDIRECTIONAL_SEQUENCE_RNN (float): `h = act(W x + R h + b)` per step.
pub(crate) fn unidirectional_sequence_rnn(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let o = ctx
        .operator()
        .builtin_options
        .as_sequence_rnnoptions()
        .ok_or_else(|| missing_options("SequenceRNNOptions"))?;
    let input = ctx.input_f32(0)?;
    let (batch, time, n_input) = sequence_dims(input.shape(), o.time_major)?;
    let w: Vec<f32> = ctx.input_f32(1)?.iter().copied().collect();
    let r: Vec<f32> = ctx.input_f32(2)?.iter().copied().collect();
    let b: Vec<f32> = ctx.input_f32(3)?.iter().copied().collect();
    let units = b.len();
    if w.len() != units * n_input || r.len() != units * units {
        return Err(KernelError::Invalid(format!(
            "weights {} / recurrent weights {} do not fit {units} units of {n_input} inputs",
            w.len(),
            r.len()
        )));
    }
    let mut h = state(ctx, 4, batch * units)?;
    let x: Vec<f32> = input.iter().copied().collect();
    let mut out = vec![0.0; batch * time * units];
    let mut next = vec![0.0; units];
    for bi in 0..batch {
        for t in 0..time {
            let row = if o.time_major {
                t * batch + bi
            } else {
                bi * time + t
            };
            let xs = &x[row * n_input..(row + 1) * n_input];
            let hs = &h[bi * units..(bi + 1) * units];
            for (u, nv) in next.iter_mut().enumerate() {
                let mut acc = b[u];
                acc += w[u * n_input..(u + 1) * n_input]
                    .iter()
                    .zip(xs)
                    .map(|(a, c)| a * c)
                    .sum::<f32>();
                acc += r[u * units..(u + 1) * units]
                    .iter()
                    .zip(hs)
                    .map(|(a, c)| a * c)
                    .sum::<f32>();
                *nv = activate(acc, o.fused_activation_function);
            }
            h[bi * units..(bi + 1) * units].copy_from_slice(&next);
            out[row * units..(row + 1) * units].copy_from_slice(&next);
        }
    }
    let shape = match input.shape().len() {
        2 => vec![batch, units],
        _ if o.time_major => vec![time, batch, units],
        _ => vec![batch, time, units],
    };
    Ok(vec![Value::F32(array(&shape, out)?)])
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
}
