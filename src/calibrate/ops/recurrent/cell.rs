//! What the recurrent kernels share, float and hybrid alike: weights that are float or int8 (dynamic mode),
//! the operands they multiply (quantized on the fly per batch row by a hybrid kernel, as LiteRT's
//! `BatchQuantizeFloats`), the inputs of an op read from calibration values or interpreter tensors, and
//! the sequence layout.

use crate::calibrate::ops::fast_math;
use crate::calibrate::ops::matmul::matmul_slices_weights_t;
use crate::calibrate::KernelError;
use crate::interp::kernels::hybrid::{asymmetric_quantize, symmetric_quantize, Quantized};
use crate::tflite::fb;
use std::borrow::Cow;

/// A weight matrix or vector of a recurrent op: float, or int8 codes with one scale (dynamic mode's
/// symmetric per-tensor weights).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Weights<'a> {
    /// Float weights.
    F32(&'a [f32]),
    /// int8 weights: `real = code * scale`.
    I8 {
        /// The codes.
        codes: &'a [i8],
        /// The tensor's scale.
        scale: f32,
    },
}

impl Weights<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::I8 { codes, .. } => codes.len(),
        }
    }

    /// Whether these are int8 weights (the op then runs its hybrid kernel).
    pub fn is_int8(&self) -> bool {
        matches!(self, Weights::I8 { .. })
    }

    /// Element `i` as float (int8 times scale, LiteRT's `VectorScalarMultiply` of peephole weights).
    pub fn value(&self, i: usize) -> f32 {
        match self {
            Weights::F32(w) => w[i],
            Weights::I8 { codes, scale } => f32::from(codes[i]) * scale,
        }
    }

    /// Every element as float.
    pub fn to_f32(self) -> Vec<f32> {
        (0..self.len()).map(|i| self.value(i)).collect()
    }

    /// `out[r] = row r · v` for every row of the `[rows, cols]` matrix: float weights through the blocked,
    /// lane-parallel dot products of the dense kernels ([`matmul_slices_weights_t`]: a fixed summation order,
    /// so the same bits on every run and thread count), int8 weights row by row as [`Weights::row_dot`].
    pub fn mat_vec(&self, rows: usize, cols: usize, v: &Operand<'_>, out: &mut [f32]) {
        if let Weights::F32(w) = self {
            let (w, x) = (w.get(..rows * cols), v.values.get(..cols));
            if let (Some(w), Some(x), Some(dst)) = (w, x, out.get_mut(..rows)) {
                if cols > 0 && matmul_slices_weights_t(x, w, cols, dst).is_ok() {
                    return;
                }
            }
        }
        for (r, o) in out.iter_mut().enumerate().take(rows) {
            *o = self.row_dot(r, cols, v);
        }
    }

    /// Row `r` of the `[rows, cols]` matrix times `v`. int8 weights take the operand's int8 codes: the
    /// int32 dot product (minus the zero point times the row sum) times input scale times weight scale,
    /// LiteRT's `MatrixBatchVectorMultiplyAccumulate` with scaling factors.
    pub fn row_dot(&self, r: usize, cols: usize, v: &Operand<'_>) -> f32 {
        let range = r * cols..(r + 1) * cols;
        match (self, &v.quantized) {
            (Weights::F32(w), _) => w[range].iter().zip(v.values).map(|(a, b)| a * b).sum(),
            (Weights::I8 { codes, scale }, Some(q)) => {
                let dot: i32 = codes[range]
                    .iter()
                    .zip(&q.codes)
                    .map(|(&w, &x)| i32::from(w) * (x - q.offset))
                    .sum();
                dot as f32 * (q.scale * scale)
            }
            (Weights::I8 { .. }, None) => range.zip(v.values).map(|(i, x)| self.value(i) * x).sum(),
        }
    }
}

/// How a hybrid kernel quantizes its float operands (the op's `asymmetric_quantize_inputs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputQuantization {
    /// `SymmetricQuantizeFloats`: [-127, 127], zero point 0.
    Symmetric,
    /// `AsymmetricQuantizeFloats`: [-128, 127] with a zero point.
    Asymmetric,
}

impl InputQuantization {
    /// The scheme a hybrid kernel uses (`None`: float weights, nothing to quantize).
    pub fn of(hybrid: bool, asymmetric: bool) -> Option<InputQuantization> {
        hybrid.then_some(if asymmetric {
            InputQuantization::Asymmetric
        } else {
            InputQuantization::Symmetric
        })
    }
}

/// A float vector (one batch row) that weights multiply, with its int8 codes when a hybrid kernel
/// quantizes it.
pub(crate) struct Operand<'a> {
    values: &'a [f32],
    quantized: Option<Quantized>,
}

impl<'a> Operand<'a> {
    /// `values`, quantized under `scheme` when there is one.
    pub fn new(values: &'a [f32], scheme: Option<InputQuantization>) -> Operand<'a> {
        let quantized = scheme.map(|s| match s {
            InputQuantization::Symmetric => symmetric_quantize(values),
            InputQuantization::Asymmetric => asymmetric_quantize(values),
        });
        Operand { values, quantized }
    }
}

/// A fused activation as LiteRT's `ApplyActivationToVector` applies it.
pub(crate) fn activate(x: f32, act: fb::ActivationFunctionType) -> f32 {
    use fb::ActivationFunctionType as A;
    match act {
        A::RELU => x.max(0.0),
        A::RELU_N1_TO_1 => x.clamp(-1.0, 1.0),
        A::RELU6 => x.clamp(0.0, 6.0),
        A::TANH => fast_math::tanh(x),
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

/// [`activate`] on every value: TANH through the vectorized rational form (Eigen's, which LiteRT's
/// `ApplyTanhToVector` runs), `None` the logistic function (`ApplySigmoidToVector`).
pub(crate) fn activate_all(values: &mut [f32], act: Option<fb::ActivationFunctionType>) {
    match act {
        None => fast_math::logistic_in_place(values),
        Some(fb::ActivationFunctionType::TANH) => fast_math::tanh_in_place(values),
        Some(a) => values.iter_mut().for_each(|v| *v = activate(*v, a)),
    }
}

/// The inputs of a recurrent op, read from calibration values (float kernels) or from the interpreter's
/// tensors (hybrid kernels): one kernel body serves both.
pub(crate) trait RecurrentInputs<'a> {
    /// The op's input count (omitted inputs included).
    fn count(&self) -> usize;
    /// The shape of input `i`, `None` when it is omitted.
    fn shape(&self, i: usize) -> Option<&'a [usize]>;
    /// Input `i` as weights (float or int8), `None` when it is omitted.
    fn weights(&self, i: usize) -> Result<Option<Weights<'a>>, KernelError>;
    /// Input `i` as float values in row-major order, `None` when it is omitted.
    fn floats(&self, i: usize) -> Result<Option<Cow<'a, [f32]>>, KernelError>;

    /// Input `i`, which must be present, as float values.
    fn required_floats(&self, i: usize) -> Result<Cow<'a, [f32]>, KernelError> {
        self.floats(i)?
            .ok_or_else(|| KernelError::Invalid(format!("input {i} is missing")))
    }

    /// Input `i`, which must be present, as weights.
    fn required_weights(&self, i: usize) -> Result<Weights<'a>, KernelError> {
        self.weights(i)?
            .ok_or_else(|| KernelError::Invalid(format!("input {i} is missing")))
    }

    /// Input `i` as float values that must be float (a bias or a layer-norm coefficient).
    fn float_vector(&self, i: usize) -> Result<Option<&'a [f32]>, KernelError> {
        match self.weights(i)? {
            None => Ok(None),
            Some(Weights::F32(v)) => Ok(Some(v)),
            Some(Weights::I8 { .. }) => Err(KernelError::Invalid(format!(
                "input {i} is int8; the kernel takes it float"
            ))),
        }
    }

    /// A state input (a variable tensor): its value, or zeros of `len` when it is omitted.
    fn state(&self, i: usize, len: usize) -> Result<Vec<f32>, KernelError> {
        let v = self
            .floats(i)?
            .map_or_else(|| vec![0.0; len], Cow::into_owned);
        if v.len() != len {
            return Err(KernelError::Invalid(format!(
                "state input {i} has {} values, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }
}

/// The layout of a sequence input: `[batch, time, n]`, `[time, batch, n]` when time-major, or `[batch, n]`
/// (one step).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sequence {
    /// Batch rows.
    pub batch: usize,
    /// Time steps.
    pub time: usize,
    /// Whether time is the leading dim.
    pub time_major: bool,
    /// Input rank (2 or 3).
    rank: usize,
}

impl Sequence {
    /// The layout of `shape`, and its feature count.
    pub fn of(shape: &[usize], time_major: bool) -> Result<(Sequence, usize), KernelError> {
        let (batch, time, n) = match *shape {
            [b, n] => (b, 1, n),
            [a, b, n] if time_major => (b, a, n),
            [a, b, n] => (a, b, n),
            _ => {
                return Err(KernelError::Invalid(format!(
                    "input has shape {shape:?}, expected rank 2 or 3"
                )))
            }
        };
        let seq = Sequence {
            batch,
            time,
            time_major,
            rank: shape.len(),
        };
        Ok((seq, n))
    }

    /// The row (of `batch * time`) of batch `b` at time `t`.
    pub fn row(&self, b: usize, t: usize) -> usize {
        if self.time_major {
            t * self.batch + b
        } else {
            b * self.time + t
        }
    }

    /// The time of step `s` when running forward or backward.
    pub fn time_at(&self, s: usize, forward: bool) -> usize {
        if forward {
            s
        } else {
            self.time - 1 - s
        }
    }

    /// The shape of an output with `n` features per row, in the input's layout.
    pub fn output_shape(&self, n: usize) -> Vec<usize> {
        match self.rank {
            2 => vec![self.batch, n],
            _ if self.time_major => vec![self.time, self.batch, n],
            _ => vec![self.batch, self.time, n],
        }
    }
}

/// Where a sequence kernel writes each step's output: rows of `stride` values, at `offset` within a row
/// (a bidirectional op with merged outputs writes both directions into one tensor).
pub(crate) struct OutputSlot<'o> {
    /// The output buffer, `batch * time` rows.
    pub out: &'o mut [f32],
    /// Values per row.
    pub stride: usize,
    /// First value of this direction in a row.
    pub offset: usize,
}

impl<'o> OutputSlot<'o> {
    /// All of `out`, rows of `stride` values.
    pub fn whole(out: &'o mut [f32], stride: usize) -> OutputSlot<'o> {
        OutputSlot {
            out,
            stride,
            offset: 0,
        }
    }

    /// Values `offset..` of each `stride`-value row of `out`.
    pub fn part(out: &'o mut [f32], stride: usize, offset: usize) -> OutputSlot<'o> {
        OutputSlot {
            out,
            stride,
            offset,
        }
    }
}

/// A kernel output: shape and row-major float values.
pub(crate) struct FloatOutput {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_row_dot_subtracts_the_asymmetric_zero_point_exactly() {
        let x = [0.5f32, -0.25, 1.0];
        let codes = [10i8, -20, 30, 1, 2, 3];
        let w = Weights::I8 {
            codes: &codes,
            scale: 0.01,
        };
        let op = Operand::new(&x, Some(InputQuantization::Asymmetric));
        let q = asymmetric_quantize(&x);
        let dot: i32 = codes[3..]
            .iter()
            .zip(&q.codes)
            .map(|(&w, &c)| i32::from(w) * c)
            .sum::<i32>()
            - 6 * q.offset;
        assert_eq!(w.row_dot(1, 3, &op), dot as f32 * (q.scale * 0.01));
        let float: f32 = (0..3).map(|c| w.value(3 + c) * x[c]).sum();
        assert!((w.row_dot(1, 3, &op) - float).abs() < 0.01);
    }
}
