//! The LSTM cell and the LSTM ops over it (LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM
//! without auxiliary input), float and hybrid: LiteRT's `lstm_eval.cc` `LstmStepFloat` and
//! `LstmStepHybrid`. The two differ only in the weight products: a hybrid step quantizes the input, the
//! output state and the hidden value per batch row and multiplies them with int8 weights in int32
//! ([`Weights::row_dot`]); biases, layer norm, peephole products, cell and clipping stay float.

use super::cell::{
    activate_all, FloatOutput, InputQuantization, Operand, OutputSlot, RecurrentInputs, Sequence,
    Weights,
};
use crate::calibrate::ops::matmul::matmul_slices_weights_t;
use crate::calibrate::KernelError;
use crate::tflite::fb;

/// One LSTM direction's constant inputs.
pub(crate) struct LstmParams<'a> {
    /// input_to_{input,forget,cell,output} weights, `[n_cell, n_input]` (input gate absent with CIFG).
    pub input_w: [Option<Weights<'a>>; 4],
    /// recurrent_to_{input,forget,cell,output} weights, `[n_cell, n_output]`, or `[n_cell]` when diagonal.
    pub recurrent_w: [Option<Weights<'a>>; 4],
    /// cell_to_{input,forget,output} peephole weights, `[n_cell]`.
    pub peephole: [Option<Weights<'a>>; 3],
    /// {input,forget,cell,output} gate biases, `[n_cell]`.
    pub bias: [Option<&'a [f32]>; 4],
    /// Projection weights `[n_output, n_cell]`.
    pub projection: Option<Weights<'a>>,
    /// Projection bias `[n_output]`.
    pub projection_bias: Option<&'a [f32]>,
    /// Layer-norm coefficients of the four gates, `[n_cell]`.
    pub layer_norm: [Option<&'a [f32]>; 4],
    /// Whether each gate's recurrent weights are diagonal (rank 1, `diagonal_recurrent_tensors`).
    pub diagonal: [bool; 4],
    /// The options.
    pub options: LstmOptions,
    /// How operands are quantized (`Some` when the weights are int8: the hybrid kernel).
    pub quantize: Option<InputQuantization>,
    /// Input features.
    pub n_input: usize,
    /// Cells.
    pub n_cell: usize,
    /// Output units.
    pub n_output: usize,
}

/// The options the LSTM ops share.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LstmOptions {
    /// The activation of the cell gate and of the cell state on output.
    pub activation: fb::ActivationFunctionType,
    /// Cell clip (0: none).
    pub cell_clip: f32,
    /// Projection clip (0: none).
    pub proj_clip: f32,
    /// Whether the sequence input is time-major.
    pub time_major: bool,
    /// `asymmetric_quantize_inputs` (hybrid kernels).
    pub asymmetric: bool,
}

impl LstmOptions {
    /// The options of an LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM or BIDIRECTIONAL_SEQUENCE_LSTM op.
    pub fn of(options: &fb::BuiltinOptionsT) -> Result<LstmOptions, KernelError> {
        use fb::BuiltinOptionsT as O;
        let o = match options {
            O::LSTMOptions(o) => {
                if o.kernel_type == fb::LSTMKernelType::BASIC {
                    return Err(KernelError::Invalid(
                        "the basic-kernel LSTM (4 inputs of one concatenated weight matrix, 4 outputs) \
                         is not supported"
                            .into(),
                    ));
                }
                (o.fused_activation_function, o.cell_clip, o.proj_clip, false)
                    .into_options(o.asymmetric_quantize_inputs)
            }
            O::UnidirectionalSequenceLSTMOptions(o) => (
                o.fused_activation_function,
                o.cell_clip,
                o.proj_clip,
                o.time_major,
            )
                .into_options(o.asymmetric_quantize_inputs),
            O::BidirectionalSequenceLSTMOptions(o) => (
                o.fused_activation_function,
                o.cell_clip,
                o.proj_clip,
                o.time_major,
            )
                .into_options(o.asymmetric_quantize_inputs),
            _ => return Err(KernelError::Invalid("the op has no LSTM options".into())),
        };
        Ok(o)
    }
}

trait IntoOptions {
    fn into_options(self, asymmetric: bool) -> LstmOptions;
}

impl IntoOptions for (fb::ActivationFunctionType, f32, f32, bool) {
    fn into_options(self, asymmetric: bool) -> LstmOptions {
        let (activation, cell_clip, proj_clip, time_major) = self;
        LstmOptions {
            activation,
            cell_clip,
            proj_clip,
            time_major,
            asymmetric,
        }
    }
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

impl<'a> LstmParams<'a> {
    /// One direction's inputs: the UNIDIRECTIONAL layout from `base` (weights at base+0.., biases at
    /// base+11.., projection at base+15/16) and the layer-norm coefficients from `ln`.
    pub fn read(
        ins: &impl RecurrentInputs<'a>,
        base: usize,
        ln: Option<usize>,
        n_input: usize,
        options: LstmOptions,
    ) -> Result<LstmParams<'a>, KernelError> {
        let w = |i: usize| ins.weights(base + i);
        let f = |i: usize| ins.float_vector(base + i);
        let input_w = [w(0)?, w(1)?, w(2)?, w(3)?];
        let recurrent_w = [w(4)?, w(5)?, w(6)?, w(7)?];
        let peephole = [w(8)?, w(9)?, w(10)?];
        let projection = w(15)?;
        let layer_norm = match ln {
            Some(l) => [
                ins.float_vector(l)?,
                ins.float_vector(l + 1)?,
                ins.float_vector(l + 2)?,
                ins.float_vector(l + 3)?,
            ],
            None => [None; 4],
        };
        let diagonal =
            std::array::from_fn(|g| ins.shape(base + 4 + g).is_some_and(|s| s.len() == 1));
        let n_cell = input_w[3]
            .map(|w| w.len() / n_input.max(1))
            .ok_or_else(|| KernelError::Invalid("missing input_to_output weights".into()))?;
        let rec_out = recurrent_w[3]
            .ok_or_else(|| KernelError::Invalid("missing recurrent weights".into()))?;
        let n_output = if diagonal[3] {
            n_cell
        } else {
            rec_out.len() / n_cell.max(1)
        };
        let hybrid = input_w
            .iter()
            .chain(&recurrent_w)
            .chain(&peephole)
            .chain([&projection])
            .flatten()
            .any(Weights::is_int8);
        let p = LstmParams {
            input_w,
            recurrent_w,
            peephole,
            bias: [f(11)?, f(12)?, f(13)?, f(14)?],
            projection,
            projection_bias: f(16)?,
            layer_norm,
            diagonal,
            options,
            quantize: InputQuantization::of(hybrid, options.asymmetric),
            n_input,
            n_cell,
            n_output,
        };
        p.check()?;
        Ok(p)
    }

    /// Checks every present tensor's length against the sizes.
    fn check(&self) -> Result<(), KernelError> {
        let (ni, nc, no) = (self.n_input, self.n_cell, self.n_output);
        let bad = |what: &str, got: usize, want: usize| {
            Err(KernelError::Invalid(format!(
                "{what} has {got} values, expected {want}"
            )))
        };
        for (g, w) in self.input_w.iter().enumerate() {
            if let Some(w) = w {
                if w.len() != nc * ni {
                    return bad(&format!("input weights of gate {g}"), w.len(), nc * ni);
                }
            }
        }
        for (g, w) in self.recurrent_w.iter().enumerate() {
            if let Some(w) = w {
                let want = if self.diagonal[g] { nc } else { nc * no };
                if w.len() != want {
                    return bad(&format!("recurrent weights of gate {g}"), w.len(), want);
                }
            }
        }
        let vectors = self.peephole.iter().flatten().map(Weights::len);
        let floats = self.bias.iter().chain(&self.layer_norm).flatten();
        if let Some(n) = vectors.chain(floats.map(|v| v.len())).find(|&n| n != nc) {
            return bad("a per-cell vector", n, nc);
        }
        match self.projection {
            Some(p) if p.len() != no * nc => return bad("projection weights", p.len(), no * nc),
            None if no != nc => {
                return Err(KernelError::Invalid(format!(
                    "without projection the output size {no} must equal the cell count {nc}"
                )))
            }
            _ => {}
        }
        if let Some(b) = self.projection_bias {
            if b.len() != no {
                return bad("projection bias", b.len(), no);
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

    /// One gate for one batch row: `act(W x + R h + p .* c + b)` (layer norm before the bias when present),
    /// LiteRT's `CalculateLstmGateFloat` / `CalculateLstmGateHybrid`, from the step's products `W x`
    /// (`wx`) and `R h` (`rh`), each `n_cell` long.
    #[allow(clippy::too_many_arguments)]
    fn gate(
        &self,
        g: usize,
        peephole: Option<Weights<'_>>,
        wx: &[f32],
        rh: &[f32],
        c: &[f32],
        act: Option<fb::ActivationFunctionType>,
        out: &mut [f32],
        record: Option<&mut Vec<f32>>,
    ) {
        let nc = self.n_cell;
        let ln = self.layer_norm[g];
        // The sum in LiteRT's order: bias, input product, recurrent product, peephole.
        for (r, o) in out.iter_mut().enumerate().take(nc) {
            let mut acc = match (ln, self.bias[g]) {
                (None, Some(b)) => b[r],
                _ => 0.0,
            };
            acc += wx[r];
            acc += rh[r];
            if let Some(p) = peephole {
                acc += p.value(r) * c[r];
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
        activate_all(&mut out[..nc], act);
    }

    /// The four gates' recurrent weights stacked, `[4 * n_cell, n_output]` (an absent input gate's rows
    /// zero), when all are float and full: one product per step instead of four.
    fn stacked_recurrent(&self) -> Option<Vec<f32>> {
        let (nc, no) = (self.n_cell, self.n_output);
        if self.diagonal.iter().any(|&d| d) {
            return None;
        }
        let mut stacked = vec![0.0; 4 * nc * no];
        for (g, w) in self.recurrent_w.iter().enumerate() {
            match w {
                Some(Weights::F32(w)) => stacked[g * nc * no..][..nc * no].copy_from_slice(w),
                Some(Weights::I8 { .. }) => return None,
                None => {}
            }
        }
        Some(stacked)
    }

    /// The recurrent products `R h` of the four gates (`rh`, gate-major, `4 * n_cell`).
    fn recurrent_products(&self, h: &[f32], stacked: Option<&[f32]>, rh: &mut [f32]) {
        let (nc, no) = (self.n_cell, self.n_output);
        if let Some(w) = stacked {
            if no > 0 && matmul_slices_weights_t(h, w, no, rh).is_ok() {
                return;
            }
        }
        let ho = Operand::new(h, self.quantize);
        for (g, (w, out)) in self
            .recurrent_w
            .iter()
            .zip(rh.chunks_exact_mut(nc.max(1)))
            .enumerate()
        {
            match w {
                Some(w) if self.diagonal[g] => {
                    for (r, o) in out.iter_mut().enumerate() {
                        *o = w.value(r) * h[r];
                    }
                }
                Some(w) => w.mat_vec(nc, no, &ho, out),
                None => out.fill(0.0),
            }
        }
    }

    /// One time step of one batch row from its input products `wx` (gate-major, `4 * n_cell`): updates `h`
    /// (`n_output`) and `c` (`n_cell`) in place.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        wx: &[f32],
        stacked: Option<&[f32]>,
        h: &mut [f32],
        c: &mut [f32],
        scratch: &mut [Vec<f32>; 5],
        mut record: Option<&mut LstmRecord>,
    ) {
        let nc = self.n_cell;
        let cifg = self.input_w[0].is_none();
        let [ig, fg, cg, og, rh] = scratch;
        let act = self.options.activation;
        self.recurrent_products(h, stacked, rh);
        {
            let mut gate = |g: usize, p: Option<Weights<'_>>, a, out: &mut Vec<f32>, c: &[f32]| {
                let rec = record.as_deref_mut().map(|r| &mut r.gates[g]);
                let products = (&wx[g * nc..][..nc], &rh[g * nc..][..nc]);
                self.gate(g, p, products.0, products.1, c, a, out, rec);
            };
            if !cifg {
                gate(0, self.peephole[0], None, ig, c);
            }
            gate(1, self.peephole[1], None, fg, c);
            gate(2, None, Some(act), cg, c);
            for r in 0..nc {
                let i = if cifg { 1.0 - fg[r] } else { ig[r] };
                let mut v = fg[r] * c[r] + i * cg[r];
                if self.options.cell_clip > 0.0 {
                    v = v.clamp(-self.options.cell_clip, self.options.cell_clip);
                }
                c[r] = v;
            }
            gate(3, self.peephole[2], None, og, c);
        }
        let mut hidden = c[..nc].to_vec();
        activate_all(&mut hidden, Some(act));
        for (v, o) in hidden.iter_mut().zip(og.iter()) {
            *v *= o;
        }
        if let Some(r) = record {
            r.hidden.extend_from_slice(&hidden);
        }
        let Some(p) = self.projection else {
            h.copy_from_slice(&hidden);
            return;
        };
        let hidden = Operand::new(&hidden, self.quantize);
        let clip = self.options.proj_clip;
        let no = self.n_output;
        let mut projected = vec![0.0; no];
        p.mat_vec(no, nc, &hidden, &mut projected);
        for (o, (hv, dot)) in h.iter_mut().zip(projected).enumerate() {
            let mut acc = self.projection_bias.map_or(0.0, |b| b[o]);
            acc += dot;
            if clip > 0.0 {
                acc = acc.clamp(-clip, clip);
            }
            *hv = acc;
        }
    }

    /// The input products `W x` of every step of one batch row (`xs`: the row's inputs in step order,
    /// `[steps, n_input]`) into `wx` (`[steps, 4 * n_cell]`, gate-major within a step): float weights as
    /// one matrix product per gate over all steps, int8 weights per step (each step's input quantized on
    /// its own, as the hybrid kernel does).
    fn input_products(&self, xs: &[f32], steps: usize, wx: &mut [f32]) -> Result<(), KernelError> {
        let (ni, nc) = (self.n_input, self.n_cell);
        // Each step's input as an operand (quantized once, for every gate, when the weights are int8).
        let operands: Vec<Operand<'_>> = if self.quantize.is_some() {
            (0..steps)
                .map(|s| Operand::new(&xs[s * ni..][..ni], self.quantize))
                .collect()
        } else {
            Vec::new()
        };
        let mut per_gate = vec![0.0; steps * nc];
        for (g, w) in self.input_w.iter().enumerate() {
            match w {
                Some(Weights::F32(w)) if ni > 0 => {
                    matmul_slices_weights_t(xs, w, ni, &mut per_gate)
                        .map_err(|e| KernelError::Invalid(format!("internal: {e}")))?;
                }
                Some(w) => {
                    for (s, out) in per_gate.chunks_exact_mut(nc.max(1)).enumerate() {
                        match operands.get(s) {
                            Some(x) => w.mat_vec(nc, ni, x, out),
                            None => {
                                w.mat_vec(nc, ni, &Operand::new(&xs[s * ni..][..ni], None), out)
                            }
                        }
                    }
                }
                None => per_gate.fill(0.0),
            }
            for (s, chunk) in per_gate.chunks_exact(nc.max(1)).enumerate() {
                wx[s * 4 * nc + g * nc..][..nc].copy_from_slice(chunk);
            }
        }
        Ok(())
    }

    /// Runs a whole sequence forward or backward in time from the initial states `h0` (`[batch, n_output]`)
    /// and `c0` (`[batch, n_cell]`), writing each step's output into `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sequence(
        &self,
        input: &[f32],
        seq: Sequence,
        forward: bool,
        h0: &[f32],
        c0: &[f32],
        out: OutputSlot<'_>,
        mut record: Option<&mut LstmRecord>,
    ) -> Result<(), KernelError> {
        let (ni, nc, no) = (self.n_input, self.n_cell, self.n_output);
        let batch = seq.batch;
        if h0.len() != batch * no || c0.len() != batch * nc {
            return Err(KernelError::Invalid(format!(
                "state sizes {} and {} do not match batch {batch} x output {no} / cell {nc}",
                h0.len(),
                c0.len()
            )));
        }
        if input.len() != batch * seq.time * ni || out.out.len() < batch * seq.time * out.stride {
            return Err(KernelError::Invalid(format!(
                "{} input values do not fit batch {batch} x time {} x {ni} features",
                input.len(),
                seq.time
            )));
        }
        let mut scratch = [nc, nc, nc, nc, 4 * nc].map(|n| vec![0.0; n]);
        let stacked = self.stacked_recurrent();
        let mut h = h0.to_vec();
        let mut c = c0.to_vec();
        let mut xs = vec![0.0; seq.time * ni];
        let mut wx = vec![0.0; seq.time * 4 * nc];
        for b in 0..batch {
            let rows: Vec<usize> = (0..seq.time)
                .map(|s| seq.row(b, seq.time_at(s, forward)))
                .collect();
            for (x, &row) in xs.chunks_exact_mut(ni.max(1)).zip(&rows) {
                x.copy_from_slice(&input[row * ni..(row + 1) * ni]);
            }
            self.input_products(&xs, seq.time, &mut wx)?;
            for (s, &row) in rows.iter().enumerate() {
                let (hb, cb) = (&mut h[b * no..(b + 1) * no], &mut c[b * nc..(b + 1) * nc]);
                let step_wx = &wx[s * 4 * nc..][..4 * nc];
                let rec = record.as_deref_mut();
                self.step(step_wx, stacked.as_deref(), hb, cb, &mut scratch, rec);
                let at = row * out.stride + out.offset;
                out.out[at..at + no].copy_from_slice(hb);
            }
        }
        Ok(())
    }
}

/// LSTM (the full kernel) and UNIDIRECTIONAL_SEQUENCE_LSTM: one direction over inputs 0-19 (20-23: layer
/// norm when the op has 24 inputs). LSTM's input is `[batch, n_input]`, one step.
pub(crate) fn unidirectional<'a>(
    ins: &impl RecurrentInputs<'a>,
    options: &fb::BuiltinOptionsT,
    record: Option<&mut LstmRecord>,
) -> Result<FloatOutput, KernelError> {
    let o = LstmOptions::of(options)?;
    let input = ins.required_floats(0)?;
    let shape = ins.shape(0).unwrap_or_default();
    let (seq, n_input) = Sequence::of(shape, o.time_major)?;
    let ln = (ins.count() == 24).then_some(20);
    let p = LstmParams::read(ins, 1, ln, n_input, o)?;
    let h0 = ins.state(18, seq.batch * p.n_output)?;
    let c0 = ins.state(19, seq.batch * p.n_cell)?;
    let mut values = vec![0.0; seq.batch * seq.time * p.n_output];
    let out = OutputSlot::whole(&mut values, p.n_output);
    p.sequence(&input, seq, true, &h0, &c0, out, record)?;
    Ok(FloatOutput {
        shape: seq.output_shape(p.n_output),
        values,
    })
}

/// BIDIRECTIONAL_SEQUENCE_LSTM without auxiliary input: the forward direction from input 1, the backward
/// one from input 18, states at 35-38; one merged output or one per direction.
pub(crate) fn bidirectional<'a>(
    ins: &impl RecurrentInputs<'a>,
    options: &fb::BuiltinOptionsT,
) -> Result<Vec<FloatOutput>, KernelError> {
    let merge = match options {
        fb::BuiltinOptionsT::BidirectionalSequenceLSTMOptions(o) => o.merge_outputs,
        _ => false,
    };
    if ins.shape(39).is_some() {
        return Err(KernelError::Invalid(
            "an auxiliary input is not supported".into(),
        ));
    }
    let o = LstmOptions::of(options)?;
    let input = ins.required_floats(0)?;
    let (seq, n_input) = Sequence::of(ins.shape(0).unwrap_or_default(), o.time_major)?;
    let fw = LstmParams::read(ins, 1, None, n_input, o)?;
    let bw = LstmParams::read(ins, 18, None, n_input, o)?;
    let (fo, bo) = (fw.n_output, bw.n_output);
    let states = [
        (
            ins.state(35, seq.batch * fo)?,
            ins.state(36, seq.batch * fw.n_cell)?,
        ),
        (
            ins.state(37, seq.batch * bo)?,
            ins.state(38, seq.batch * bw.n_cell)?,
        ),
    ];
    let rows = seq.batch * seq.time;
    let run = |p: &LstmParams<'_>, forward: bool, out: OutputSlot<'_>| {
        let (h0, c0) = &states[usize::from(!forward)];
        p.sequence(&input, seq, forward, h0, c0, out, None)
    };
    if merge {
        let stride = fo + bo;
        let mut values = vec![0.0; rows * stride];
        run(&fw, true, OutputSlot::whole(&mut values, stride))?;
        run(&bw, false, OutputSlot::part(&mut values, stride, fo))?;
        return Ok(vec![FloatOutput {
            shape: seq.output_shape(stride),
            values,
        }]);
    }
    let mut f = vec![0.0; rows * fo];
    let mut b = vec![0.0; rows * bo];
    run(&fw, true, OutputSlot::whole(&mut f, fo))?;
    run(&bw, false, OutputSlot::whole(&mut b, bo))?;
    Ok(vec![
        FloatOutput {
            shape: seq.output_shape(fo),
            values: f,
        },
        FloatOutput {
            shape: seq.output_shape(bo),
            values: b,
        },
    ])
}
