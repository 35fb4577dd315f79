//! Adaptive weight rounding (`adaptive_rounding = true`): each weight is rounded up or down, and the error it
//! leaves is pushed onto the weights of its row not yet rounded, so that the op's output error on the
//! calibration data, `(w - q s) H (w - q s)^T` with `H` the input second moments
//! ([`crate::calibrate::gram`]), is small rather than each weight's own error. This is the closed-form,
//! one-pass version of the idea (optimal brain quantization as GPTQ does it: columns in order of decreasing
//! `H_jj`, the error of column `j` spread with row `j` of the upper Cholesky factor of `H^-1`), so it costs
//! a few milliseconds per op instead of AdaRound's gradient iterations. The scales are the quantizer's own:
//! only the integer codes change, so biases, checks and the format are as with round-to-nearest.

use rayon::prelude::*;

use crate::calibrate::gram::Gram;

/// Diagonal loading, as a fraction of the mean diagonal: keeps `H` well conditioned when inputs are
/// correlated or few.
const DAMPING: f64 = 0.01;

/// The integer codes of `values` (laid out in `shape`, quantized per slice of `axis` with `scales`, codes in
/// `[-qmax, qmax]`) rounded against `gram`; `None` when the gram does not fit the weights or is degenerate
/// (the caller then rounds to nearest).
///
/// `input_step` is the quantization step of the op's input (0 when it stays float). Its rounding noise, of
/// variance `step^2 / 12` per input, reaches the output through the rounded weights themselves, so it enters
/// `H` as a diagonal: error feedback then never buys a smaller weight error with weights that amplify the
/// noise of the integer input.
pub(crate) fn adaptive_codes(
    values: &[f32],
    shape: &[usize],
    axis: Option<usize>,
    scales: &[f32],
    gram: &Gram,
    qmax: f64,
    input_step: f32,
) -> Option<Vec<i8>> {
    let d = gram.dim;
    let noise = gram.rows as f64 * f64::from(input_step).powi(2) / 12.0;
    if d == 0 || values.len() % d != 0 || !values.iter().all(|v| v.is_finite()) {
        return None;
    }
    let scale_of = |channel: usize| -> Option<f64> {
        let s = if axis.is_some() {
            scales.get(channel)
        } else {
            scales.first()
        };
        s.map(|&s| f64::from(s)).filter(|s| *s > 0.0)
    };
    let mut codes = vec![0i8; values.len()];
    if gram.depthwise {
        // [1, kh, kw, channels * multiplier]: output channel `oc` reads input channel `oc / multiplier`.
        let oc = *shape.last()?;
        let inputs = gram.matrices.len();
        if shape.len() != 4
            || axis.is_some_and(|a| a != 3)
            || oc * d != values.len()
            || inputs == 0
            || oc % inputs != 0
        {
            return None;
        }
        let multiplier = oc / inputs;
        let solvers: Vec<Solver> = gram
            .matrices
            .iter()
            .map(|h| Solver::new(h, d, noise))
            .collect::<Option<_>>()?;
        for (c, solver) in (0..oc).map(|c| (c, &solvers[c / multiplier])) {
            let row: Vec<f64> = (0..d).map(|t| f64::from(values[t * oc + c])).collect();
            let q = solver.round(&row, scale_of(c)?, qmax);
            for (t, code) in q.into_iter().enumerate() {
                codes[t * oc + c] = code;
            }
        }
    } else {
        // Rows of `d` contiguous weights, one per output channel (axis 0).
        if axis.is_some_and(|a| a != 0) || gram.matrices.len() != 1 {
            return None;
        }
        let solver = Solver::new(gram.matrices.first()?, d, noise)?;
        // Rows are independent: spread over the workers, each written to its own place.
        let rows: Vec<Option<Vec<i8>>> = values
            .par_chunks_exact(d)
            .enumerate()
            .map(|(r, row)| {
                let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                Some(solver.round(&row, scale_of(r)?, qmax))
            })
            .collect();
        for (out, row) in codes.chunks_exact_mut(d).zip(rows) {
            out.copy_from_slice(&row?);
        }
    }
    Some(codes)
}

/// The column order and the upper Cholesky factor of `H^-1` (in that order) one row is rounded with.
struct Solver {
    order: Vec<usize>,
    /// Row-major `d x d` upper triangle.
    upper: Vec<f64>,
    d: usize,
}

impl Solver {
    /// `h` row-major `d x d`; `noise` is added to its diagonal besides the damping.
    fn new(h: &[f64], d: usize, noise: f64) -> Option<Solver> {
        if h.len() != d * d || !h.iter().all(|v| v.is_finite()) || !noise.is_finite() {
            return None;
        }
        let mean = (0..d).map(|i| h[i * d + i]).sum::<f64>() / d as f64;
        if mean <= 0.0 {
            return None;
        }
        // Columns in order of decreasing energy (stable: ties keep their index order).
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| h[b * d + b].total_cmp(&h[a * d + a]));
        // The permuted matrix, reversed (`J P H P^T J`): its lower Cholesky factor L gives the upper factor of
        // the inverse without inverting H: with R = J L J (upper), H = R R^T, so H^-1 = R^-T R^-1 and
        // U = R^-1 = J L^-1 J.
        let mut p = vec![0.0; d * d];
        for (i, &a) in order.iter().rev().enumerate() {
            for (j, &b) in order.iter().rev().enumerate() {
                p[i * d + j] = h[a * d + b];
            }
            // An input that is always zero: its weights round to nearest and carry no error onward.
            if p[i * d + i] == 0.0 {
                p[i * d + i] = 1.0;
            }
            p[i * d + i] += DAMPING * mean + noise;
        }
        let inverse = lower_inverse(&cholesky(&p, d)?, d);
        let mut upper = vec![0.0; d * d];
        for i in 0..d {
            for j in i..d {
                upper[i * d + j] = inverse[(d - 1 - i) * d + (d - 1 - j)];
            }
        }
        Some(Solver { order, upper, d })
    }

    /// Rounds one row (`scale` per code), spreading each column's error over the columns after it.
    fn round(&self, row: &[f64], scale: f64, qmax: f64) -> Vec<i8> {
        let d = self.d;
        let mut w: Vec<f64> = self.order.iter().map(|&j| row[j]).collect();
        let mut codes = vec![0i8; d];
        for j in 0..d {
            let q = (w[j] / scale).round().clamp(-qmax, qmax);
            codes[self.order[j]] = q as i8;
            let err = (w[j] - q * scale) / self.upper[j * d + j];
            let u = &self.upper[j * d..][..d];
            for k in j + 1..d {
                w[k] -= err * u[k];
            }
        }
        codes
    }
}

/// The lower Cholesky factor `L` of a symmetric positive definite row-major matrix (`A = L L^T`).
/// Written here rather than taken from a linear-algebra crate: it is the only factorization litequant needs,
/// and build scripts compile every dependency.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let dot = dot(&l[i * d..][..j], &l[j * d..][..j]);
            let v = a[i * d + j] - dot;
            if i == j {
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = v / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// `a . b` in four interleaved sums (a fixed order, so the same bits on every run, and one the compiler
/// vectorizes).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The inverse of a lower triangular row-major matrix, row by row (`m_i = (e_i - sum_k<i l_ik m_k) / l_ii`, each
/// a sum of earlier rows: contiguous memory only).
fn lower_inverse(l: &[f64], d: usize) -> Vec<f64> {
    let mut m = vec![0.0; d * d];
    for i in 0..d {
        let (done, rest) = m.split_at_mut(i * d);
        let row = &mut rest[..d];
        row[i] = 1.0;
        for k in 0..i {
            let f = l[i * d + k];
            if f != 0.0 {
                for (r, &v) in row[..=k].iter_mut().zip(&done[k * d..][..=k]) {
                    *r -= f * v;
                }
            }
        }
        let diag = l[i * d + i];
        for r in row[..=i].iter_mut() {
            *r /= diag;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `(w - q s) H (w - q s)^T` summed over rows.
    fn output_error(values: &[f32], codes: &[i8], scales: &[f32], h: &[f64], d: usize) -> f64 {
        let mut total = 0.0;
        for (r, (w, q)) in values.chunks(d).zip(codes.chunks(d)).enumerate() {
            let e: Vec<f64> = w
                .iter()
                .zip(q)
                .map(|(&w, &q)| f64::from(w) - f64::from(q) * f64::from(scales[r]))
                .collect();
            for i in 0..d {
                for j in 0..d {
                    total += e[i] * h[i * d + j] * e[j];
                }
            }
        }
        total
    }

    #[test]
    fn cholesky_factor_and_its_inverse() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        let inv = lower_inverse(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let llt: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((llt - a[i * 3 + j]).abs() < 1e-12, "L L^T at {i} {j}");
                let v: f64 = (0..3).map(|k| l[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!(
                    (v - f64::from(u8::from(i == j))).abs() < 1e-12,
                    "{i} {j} {v}"
                );
            }
        }
        assert!(
            cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(),
            "not positive definite"
        );
    }

    #[test]
    fn the_solver_factor_is_the_upper_cholesky_factor_of_the_inverse() {
        let h = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let s = Solver::new(&h, 3, 0.0).unwrap();
        // P (H + damping) P^T = (U^T U)^-1 in the solver's column order.
        let mean = (4.0 + 5.0 + 3.0) / 3.0;
        for i in 0..3 {
            for j in 0..3 {
                let damped =
                    |a: usize, b: usize| h[a * 3 + b] + if a == b { DAMPING * mean } else { 0.0 };
                // (U^T U) * P H P^T = I.
                let v: f64 = (0..3)
                    .map(|k| {
                        let utu: f64 = (0..3)
                            .map(|r| s.upper[r * 3 + i] * s.upper[r * 3 + k])
                            .sum();
                        utu * damped(s.order[k], s.order[j])
                    })
                    .sum();
                assert!(
                    (v - f64::from(u8::from(i == j))).abs() < 1e-9,
                    "{i} {j} {v}"
                );
            }
        }
    }

    #[test]
    fn adaptive_rounding_lowers_the_output_error_of_correlated_inputs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (rows, d, samples) = (6, 12, 400);
        // Inputs sharing one component: nearest rounding ignores that a row's errors add up along it.
        let x: Vec<f64> = (0..samples)
            .flat_map(|_| {
                let shared: f64 = rng.gen_range(-1.0..1.0);
                (0..d)
                    .map(|_| shared + 0.3 * rng.gen_range(-1.0..1.0))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut h = vec![0.0; d * d];
        for s in x.chunks(d) {
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] += s[i] * s[j];
                }
            }
        }
        let values: Vec<f32> = (0..rows * d).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let scales: Vec<f32> = values
            .chunks(d)
            .map(|r| r.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0)
            .collect();
        let gram = Gram {
            dim: d,
            matrices: vec![h.clone()],
            rows: samples as u64,
            depthwise: false,
        };
        let nearest: Vec<i8> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scales[i / d]).round() as i8)
            .collect();
        let adaptive =
            adaptive_codes(&values, &[rows, d], Some(0), &scales, &gram, 127.0, 0.0).unwrap();
        let (e_near, e_adapt) = (
            output_error(&values, &nearest, &scales, &h, d),
            output_error(&values, &adaptive, &scales, &h, d),
        );
        assert!(
            e_adapt < 0.5 * e_near,
            "adaptive {e_adapt} vs nearest {e_near}"
        );
        // Codes stay on the grid and close to the weights.
        for (a, n) in adaptive.iter().zip(&nearest) {
            assert!((i32::from(*a) - i32::from(*n)).abs() <= 3, "{a} vs {n}");
        }
        // Deterministic.
        assert_eq!(
            adaptive,
            adaptive_codes(&values, &[rows, d], Some(0), &scales, &gram, 127.0, 0.0).unwrap()
        );
    }

    #[test]
    fn a_gram_of_another_shape_is_refused() {
        let gram = Gram {
            dim: 5,
            matrices: vec![vec![1.0; 25]],
            rows: 1,
            depthwise: false,
        };
        assert!(adaptive_codes(
            &[0.5; 8],
            &[2, 4],
            Some(0),
            &[0.01, 0.01],
            &gram,
            127.0,
            0.0
        )
        .is_none());
    }
}
