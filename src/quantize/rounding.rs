//! Adaptive weight rounding (`adaptive_rounding = true`): each weight is rounded up or down, and the error it
//! leaves is pushed onto the weights of its row not yet rounded, so that the op's output error on the
//! calibration data, `(w - q s) H (w - q s)^T` with `H` the input second moments
//! ([`crate::calibrate::gram`]), is small rather than each weight's own error. This is the closed-form,
//! one-pass version of the idea (optimal brain quantization as GPTQ does it: columns in order of decreasing
//! `H_jj`, the error of column `j` spread with row `j` of the upper Cholesky factor of `H^-1`), so it costs
//! a few milliseconds per op instead of AdaRound's gradient iterations. The scales are the quantizer's own:
//! only the integer codes change, so biases, checks and the format are as with round-to-nearest.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2};
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

/// The column order and the factor one row is rounded with: `R` upper with `P H P^T = R R^T` (so that the
/// upper Cholesky factor of the inverse GPTQ spreads errors with is `U = R^-1`), stored by columns.
struct Solver {
    order: Vec<usize>,
    /// Row `k` holds column `k` of `R` down to its diagonal: `R_0k .. R_kk` (row-major `d x d`).
    columns: Vec<f64>,
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
        // The permuted matrix, reversed (`J P H P^T J`): its lower Cholesky factor L gives R = J L J (upper,
        // P H P^T = R R^T), so H^-1 = R^-T R^-1 and the inverse's upper factor is U = R^-1, which the rounding
        // applies by forward substitution with R rather than by inverting it.
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
        let l = cholesky(&p, d)?;
        // R_jk = L_(d-1-j)(d-1-k).
        let mut columns = vec![0.0; d * d];
        for k in 0..d {
            for j in 0..=k {
                columns[k * d + j] = l[(d - 1 - j) * d + (d - 1 - k)];
            }
        }
        Some(Solver { order, columns, d })
    }

    /// Rounds one row (`scale` per code), spreading each column's error over the columns after it.
    ///
    /// GPTQ's update `w_k -= sum_j<k e_j U_jk / U_jj` (`e_j` the rounding error of column `j` after its own
    /// update) with `U = R^-1` is, for `v = (e / diag U)^T U`, `v R = (e / diag U)^T`: so `v_k = e_k - a_k` and
    /// the update of column `k` is `a_k = (sum_j<k v_j R_jk) / R_kk`, one dot product per column.
    fn round(&self, row: &[f64], scale: f64, qmax: f64) -> Vec<i8> {
        let d = self.d;
        let mut v = vec![0.0; d];
        let mut codes = vec![0i8; d];
        for k in 0..d {
            let column = &self.columns[k * d..][..=k];
            let a = dot(&v[..k], &column[..k]) / column[k];
            let w = row[self.order[k]] + a;
            let q = (w / scale).round().clamp(-qmax, qmax);
            codes[self.order[k]] = q as i8;
            v[k] = (w - q * scale) - a;
        }
        codes
    }
}

/// Diagonal blocks of the blocked factorization; matrices up to twice this size are factored directly.
const BLOCK: usize = 64;

/// The lower Cholesky factor `L` of a symmetric positive definite row-major matrix (`A = L L^T`).
/// Written here rather than taken from a linear-algebra crate: it is the only factorization litequant needs,
/// and build scripts compile every dependency.
///
/// Large matrices (a 1280-wide dense layer) factor by blocks, right-looking: each diagonal block directly,
/// the panel below it by substitution, and the trailing matrix updated by one matrix product (ndarray's,
/// through `matrixmultiply`, whose every output element sums in one fixed order on any thread count).
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    if d <= 2 * BLOCK {
        return cholesky_direct(a, d);
    }
    let mut m = Array2::from_shape_vec((d, d), a.to_vec()).ok()?;
    let mut k = 0;
    while k < d {
        let b = BLOCK.min(d - k);
        let diagonal: Vec<f64> = m.slice(s![k..k + b, k..k + b]).iter().copied().collect();
        let l11 = cholesky_direct(&diagonal, b)?;
        for i in 0..b {
            for j in 0..b {
                m[[k + i, k + j]] = l11[i * b + j];
            }
        }
        if k + b < d {
            // Panel: each row x of A21 solves x L11^T = a.
            for r in k + b..d {
                let mut full = m.row_mut(r);
                let row = &mut full.as_slice_mut()?[k..k + b];
                for j in 0..b {
                    let l = &l11[j * b..][..=j];
                    row[j] = (row[j] - dot(&row[..j], &l[..j])) / l[j];
                }
            }
            // The trailing update of the lower triangle only: block column by block column.
            let panel = m.slice(s![k + b.., k..k + b]).to_owned();
            let mut j = 0;
            while j < panel.nrows() {
                let w = BLOCK.min(panel.nrows() - j);
                let (start, cols) = (k + b + j, panel.slice(s![j..j + w, ..]));
                general_mat_mul(
                    -1.0,
                    &panel.slice(s![j.., ..]),
                    &cols.t(),
                    1.0,
                    &mut m.slice_mut(s![start.., start..start + w]),
                );
                j += w;
            }
        }
        k += b;
    }
    let mut l = m.into_raw_vec_and_offset().0;
    for i in 0..d {
        l[i * d + i + 1..(i + 1) * d].fill(0.0);
    }
    if l.iter().all(|v| v.is_finite()) {
        Some(l)
    } else {
        None
    }
}

/// [`cholesky`] element by element (row by row, each entry one dot product with an earlier row).
fn cholesky_direct(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        let (done, rest) = l.split_at_mut(i * d);
        let row = &mut rest[..d];
        let mut j = 0;
        // Four entries at a time share the loads of row i over their common prefix (`..j`); each entry's sum
        // is then finished over its own few columns, in a fixed order.
        while j + 4 <= i {
            let prefix = dot4(&row[..j], [0, 1, 2, 3].map(|t| &done[(j + t) * d..][..j]));
            for t in 0..4 {
                let other = &done[(j + t) * d..][..j + t];
                let tail: f64 = (j..j + t).map(|k| row[k] * other[k]).sum();
                row[j + t] = (a[i * d + j + t] - (prefix[t] + tail)) / done[(j + t) * d + j + t];
            }
            j += 4;
        }
        while j < i {
            let v = a[i * d + j] - dot(&row[..j], &done[j * d..][..j]);
            row[j] = v / done[j * d + j];
            j += 1;
        }
        let v = a[i * d + i] - dot(&row[..i], &row[..i]);
        if v <= 0.0 || !v.is_finite() {
            return None;
        }
        row[i] = v.sqrt();
    }
    Some(l)
}

/// Four dot products of `a` with `b[0..4]` (each at least as long as `a`) in one pass over `a`, each in the
/// fixed order of [`dot`]'s four interleaved sums.
fn dot4(a: &[f64], b: [&[f64]; 4]) -> [f64; 4] {
    let n = a.len();
    let mut acc = [[0.0f64; 4]; 4];
    let full = n - n % 4;
    let mut k = 0;
    while k < full {
        for (t, bt) in b.iter().enumerate() {
            for lane in 0..4 {
                acc[t][lane] += a[k + lane] * bt[k + lane];
            }
        }
        k += 4;
    }
    [0, 1, 2, 3].map(|t| {
        let tail: f64 = (full..n).map(|k| a[k] * b[t][k]).sum();
        (acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3]) + tail
    })
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

#[cfg(test)]
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

    /// `R` from the solver's columns (row-major upper).
    fn solver_r(s: &Solver) -> Vec<f64> {
        let d = s.d;
        let mut r = vec![0.0; d * d];
        for k in 0..d {
            for j in 0..=k {
                r[j * d + k] = s.columns[k * d + j];
            }
        }
        r
    }

    #[test]
    fn the_solver_factor_squares_to_the_damped_permuted_gram() {
        let h = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let s = Solver::new(&h, 3, 0.0).unwrap();
        let r = solver_r(&s);
        let mean = (4.0 + 5.0 + 3.0) / 3.0;
        for i in 0..3 {
            for j in 0..3 {
                let damped =
                    h[s.order[i] * 3 + s.order[j]] + if i == j { DAMPING * mean } else { 0.0 };
                let rrt: f64 = (0..3).map(|k| r[i * 3 + k] * r[j * 3 + k]).sum();
                assert!((rrt - damped).abs() < 1e-9, "{i} {j} {rrt} {damped}");
            }
        }
    }

    #[test]
    fn forward_substitution_rounds_as_the_inverse_factor_does() {
        // GPTQ's loop with U = R^-1 formed explicitly, against the solver's substitution, on random rows.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let d = 37;
        let x: Vec<f64> = (0..200 * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut h = vec![0.0; d * d];
        for s in x.chunks(d) {
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] += (s[i] + s[(i + 1) % d]) * (s[j] + s[(j + 1) % d]);
                }
            }
        }
        let s = Solver::new(&h, d, 0.5).unwrap();
        // U = R^-1 = (R^T)^-T: R^T is lower.
        let r = solver_r(&s);
        let mut rt = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                rt[i * d + j] = r[j * d + i];
            }
        }
        let rt_inv = lower_inverse(&rt, d);
        let u = |i: usize, j: usize| rt_inv[j * d + i];
        for _ in 0..20 {
            let row: Vec<f64> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let scale = 0.03;
            let mut w: Vec<f64> = s.order.iter().map(|&j| row[j]).collect();
            let mut expected = vec![0i8; d];
            for j in 0..d {
                let q = (w[j] / scale).round().clamp(-127.0, 127.0);
                expected[s.order[j]] = q as i8;
                let err = (w[j] - q * scale) / u(j, j);
                for (k, wk) in w.iter_mut().enumerate().skip(j + 1) {
                    *wk -= err * u(j, k);
                }
            }
            assert_eq!(s.round(&row, scale, 127.0), expected);
        }
    }

    #[test]
    fn blocked_cholesky_matches_the_direct_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let d = 2 * BLOCK + 37;
        let m: Vec<f64> = (0..d * 8).map(|_| rng.gen_range(-1.0..1.0)).collect();
        // Rank 8 plus damping, as a dense layer's few samples give.
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (0..8).map(|k| m[i * 8 + k] * m[j * 8 + k]).sum::<f64>()
                    + if i == j { 0.05 } else { 0.0 };
            }
        }
        let (blocked, direct) = (cholesky(&a, d).unwrap(), cholesky_direct(&a, d).unwrap());
        for (x, y) in blocked.iter().zip(&direct) {
            assert!((x - y).abs() < 1e-9, "{x} {y}");
        }
        assert_eq!(blocked, cholesky(&a, d).unwrap(), "deterministic");
        let mut indefinite = a.clone();
        indefinite[(d - 1) * d + d - 1] = -1.0;
        assert!(cholesky(&indefinite, d).is_none());
    }

    #[test]
    fn direct_cholesky_matches_the_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let d = 23;
        let m: Vec<f64> = (0..d * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (0..d).map(|k| m[i * d + k] * m[j * d + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let l = cholesky_direct(&a, d).unwrap();
        for i in 0..d {
            for j in 0..d {
                let llt: f64 = (0..d).map(|k| l[i * d + k] * l[j * d + k]).sum();
                assert!((llt - a[i * d + j]).abs() < 1e-9, "{i} {j}");
                if j > i {
                    assert_eq!(l[i * d + j], 0.0);
                }
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
