//! Histogram calibration: percentile, MSE and entropy (KL) ranges from one pass over the data.
//!
//! A [`Histogram`] counts values on a grid anchored at 0 whose bin width is a power of two, chosen as the
//! finest that fits the running `[min, max]` in [`BINS`] bins. When the range grows the width doubles and
//! adjacent bins merge, which is exact (`floor(floor(v / w) / 2) = floor(v / 2w)`): the width is a function
//! of the final min and max alone, so a histogram merged from parts equals the histogram of all values, bit
//! for bit, and calibration stays independent of the thread count.
//!
//! Range selection never widens past the observed min/max; a side that is not clipped keeps the exact
//! observed value (what minmax records). Values that are exactly 0 are counted apart: zero is always exactly
//! representable, so they cost no quantization error whatever the range and do not steer it (a sparse ReLU
//! output, mostly zeros, would otherwise pull a percentile to 0).

use super::observer::{extend_range, RangeObserver};

/// Bins of a histogram; the data spans between half of them and all of them.
pub const BINS: usize = 4096;
/// The finest bin width is `2^MIN_EXP`: narrower ranges keep this width.
const MIN_EXP: i32 = -40;
/// Largest bin index magnitude: indices stay exact in `f64` and far from `i64` overflow.
const MAX_INDEX: f64 = (1u64 << 52) as f64;
/// Bins of the magnitude histogram the entropy search runs on (TensorRT's 2048).
const ENTROPY_BINS: usize = 2048;
/// Candidate clip points per side in the MSE coarse search (the best is then refined bin by bin).
const MSE_COARSE: usize = 512;

/// The integer grid activations are quantized to: what the MSE and entropy criteria measure against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantGrid {
    /// int8 mode: asymmetric, 256 levels between min and max (zero point free).
    Int8Asymmetric,
    /// int16x8 mode: symmetric, 32767 steps from 0 to the larger magnitude (zero point 0).
    Int16Symmetric,
}

impl QuantGrid {
    /// The quantization step of the range `[lo, hi]` (`lo <= 0 <= hi`).
    fn step(self, lo: f64, hi: f64) -> f64 {
        match self {
            QuantGrid::Int8Asymmetric => (hi - lo) / 255.0,
            QuantGrid::Int16Symmetric => hi.max(-lo) / 32767.0,
        }
    }
}

/// How an activation range is chosen from calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// The observed minimum and maximum (TFLite's calibration).
    MinMax,
    /// Clip the tails at this percentile of the values, in (0, 100]: a tensor with both signs at
    /// `100 - p` below and `p` above, a one-signed tensor only on its far side.
    Percentile(f64),
    /// The clip points minimizing the expected quantization + clipping squared error on this grid.
    Mse(QuantGrid),
    /// TensorRT's entropy calibration: the threshold minimizing the KL divergence between the value
    /// distribution and its quantized form on this grid.
    Entropy(QuantGrid),
}

/// Counts of one tensor's values on a power-of-two grid anchored at 0, with its exact min, max and zeros.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Exact minimum (NaN skipped, infinities kept).
    min: f32,
    /// Exact maximum.
    max: f32,
    /// Bin width `2^exp`.
    exp: i32,
    /// Grid index of `counts[0]` (bin `k` holds `[k w, (k + 1) w)`): always the bin of `min`.
    start: i64,
    /// [`BINS`] counts once a finite value was seen; empty before, and after an infinite one.
    counts: Vec<u64>,
    /// Values exactly 0 (also counted in their bin).
    zeros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            exp: MIN_EXP,
            start: 0,
            counts: Vec::new(),
            zeros: 0,
        }
    }
}

/// `2^e` as `f64` (exact for the exponents a histogram uses).
fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// The grid index `k` (at some width) becomes at a width `2^shift` times larger: `floor(k / 2^shift)`.
fn coarser(k: i64, shift: i32) -> i64 {
    if shift >= 63 {
        if k < 0 {
            -1
        } else {
            0
        }
    } else {
        k >> shift
    }
}

/// Grid index of `v` at width `2^exp`: exact, as `v * 2^-exp` is.
fn bin_of(v: f32, exp: i32) -> i64 {
    (f64::from(v) * pow2(-exp)).floor() as i64
}

impl Histogram {
    /// A histogram that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The observed `(min, max)`, or `None` before any non-NaN value.
    pub fn min_max(&self) -> Option<(f32, f32)> {
        (self.min <= self.max).then_some((self.min, self.max))
    }

    /// Whether bins are kept: some value was seen and every value was finite.
    fn binned(&self) -> bool {
        !self.counts.is_empty()
    }

    /// Records values (NaN skipped). An infinite value drops the bins: the range is then minmax's, with
    /// the infinity in it, which quantization reports as unusable.
    pub fn observe(&mut self, values: &[f32]) {
        let (lo, hi) = extend_range(f32::INFINITY, f32::NEG_INFINITY, values);
        if lo > hi {
            return;
        }
        let first = self.min > self.max;
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        if !(self.min.is_finite() && self.max.is_finite()) {
            self.counts = Vec::new();
            return;
        }
        if !first && !self.binned() {
            return;
        }
        self.fit(self.exp);
        let scale = pow2(-self.exp);
        let start = self.start;
        let mut zeros = 0u64;
        for &v in values {
            if v.is_nan() {
                continue;
            }
            zeros += u64::from(v == 0.0);
            // floor(v / w), exactly (the product is exact), by truncation: without SSE4.1 `f64::floor` is
            // a libm call per value.
            let x = f64::from(v) * scale;
            let t = x as i64;
            let k = (t - i64::from(x < t as f64) - start) as usize;
            // Always in bounds: `fit` made the bins cover [min, max].
            if let Some(c) = self.counts.get_mut(k) {
                *c += 1;
            }
        }
        self.zeros += zeros;
    }

    /// Folds in another histogram of the same tensor: the result equals one histogram of both value sets.
    pub fn merge(&mut self, other: &Histogram) {
        if other.min > other.max {
            return;
        }
        let first = self.min > self.max;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if !other.binned() || (!first && !self.binned()) {
            self.counts = Vec::new();
            return;
        }
        self.fit(self.exp.max(other.exp));
        let shift = self.exp - other.exp;
        for (i, &n) in other.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let k = coarser(other.start + i as i64, shift) - self.start;
            if let Some(c) = usize::try_from(k).ok().and_then(|k| self.counts.get_mut(k)) {
                *c += n;
            }
        }
        self.zeros += other.zeros;
    }

    /// Re-bins to the finest width `>= 2^floor_exp` covering `[min, max]` in [`BINS`] bins, starting at the
    /// bin of `min`.
    fn fit(&mut self, floor_exp: i32) {
        let mut exp = floor_exp.max(MIN_EXP);
        loop {
            let scale = pow2(-exp);
            let (lo, hi) = (f64::from(self.min) * scale, f64::from(self.max) * scale);
            let fits = lo.abs() < MAX_INDEX
                && hi.abs() < MAX_INDEX
                && (hi.floor() - lo.floor()) < BINS as f64;
            if fits {
                break;
            }
            exp += 1;
        }
        let start = bin_of(self.min, exp);
        if exp == self.exp && start == self.start && self.binned() {
            return;
        }
        let mut counts = vec![0u64; BINS];
        let shift = exp - self.exp;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let k = coarser(self.start + i as i64, shift) - start;
            if let Some(c) = usize::try_from(k).ok().and_then(|k| counts.get_mut(k)) {
                *c += n;
            }
        }
        self.exp = exp;
        self.start = start;
        self.counts = counts;
    }

    /// The range `method` selects, or `None` before any non-NaN value. Infinite values give minmax's range.
    pub fn range(&self, method: RangeMethod) -> Option<(f32, f32)> {
        let (min, max) = self.min_max()?;
        if !self.binned() || min == max {
            return Some((min, max));
        }
        let bins = Bins::new(self);
        if bins.nonzero == 0.0 {
            return Some((min, max));
        }
        let (lo, hi) = match method {
            RangeMethod::MinMax => return Some((min, max)),
            RangeMethod::Percentile(p) => bins.percentile(p),
            RangeMethod::Mse(grid) => bins.mse(grid),
            RangeMethod::Entropy(grid) => bins.entropy(grid),
        };
        Some(self.within_observed(lo, hi))
    }

    /// `(lo, hi)` clamped into the observed range, keeping 0 inside it for tensors with both signs: a
    /// one-signed tensor keeps its exact observed value on the side toward 0.
    fn within_observed(&self, lo: f32, hi: f32) -> (f32, f32) {
        let (min, max) = (self.min, self.max);
        let lo = if min < 0.0 { lo.clamp(min, 0.0) } else { min };
        let hi = if max > 0.0 { hi.clamp(0.0, max) } else { max };
        if lo == hi {
            // Every value but zeros clipped away would leave no range at all: keep the observed one.
            return (min, max);
        }
        (lo, hi)
    }
}

/// A histogram's occupied bins, in grid units (bin `i` holds `[base + i, base + i + 1)`), exact zeros removed.
struct Bins {
    /// Grid index of `counts[0]`.
    base: i64,
    /// Bin width.
    width: f64,
    counts: Vec<f64>,
    /// Values that are not exactly 0.
    nonzero: f64,
    /// The observed min and max in grid units.
    min: f64,
    max: f64,
}

impl Bins {
    fn new(h: &Histogram) -> Bins {
        let last = h.counts.iter().rposition(|&n| n > 0).unwrap_or(0);
        let mut counts: Vec<f64> = h.counts[..=last].iter().map(|&n| n as f64).collect();
        if let Some(c) = usize::try_from(-h.start)
            .ok()
            .and_then(|k| counts.get_mut(k))
        {
            *c -= h.zeros as f64;
        }
        let width = pow2(h.exp);
        Bins {
            base: h.start,
            width,
            nonzero: counts.iter().sum(),
            counts,
            min: f64::from(h.min) / width,
            max: f64::from(h.max) / width,
        }
    }

    /// Grid units to a value.
    fn value(&self, units: f64) -> f32 {
        (units * self.width) as f32
    }

    /// Position (grid units, relative to `base`) below which `rank` of the nonzero values lie, linear
    /// within a bin.
    fn at_rank(&self, rank: f64) -> f64 {
        let mut below = 0.0;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0.0 && below + n >= rank {
                return i as f64 + ((rank - below) / n).clamp(0.0, 1.0);
            }
            below += n;
        }
        self.counts.len() as f64
    }

    fn percentile(&self, p: f64) -> (f32, f32) {
        let tail = ((100.0 - p) / 100.0).clamp(0.0, 1.0) * self.nonzero;
        let lo = self.at_rank(tail) + self.base as f64;
        let hi = self.at_rank(self.nonzero - tail) + self.base as f64;
        (self.value(lo), self.value(hi))
    }

    /// Searches clip points on bin edges for the least expected squared error: values inside cost
    /// `step^2 / 12` (uniform rounding error), values outside their squared distance to the clip point.
    fn mse(&self, grid: QuantGrid) -> (f32, f32) {
        let n = self.counts.len();
        // Edge e (0..=n) is the grid position base + e; clip errors in grid units^2, bin centers at i + 0.5.
        let mut upper = vec![0.0f64; n + 1]; // values above edge e
        let (mut count, mut dist, mut err) = (0.0f64, 0.0f64, 0.0f64);
        for e in (0..n).rev() {
            err += 2.0 * dist + count;
            dist += count;
            let c = self.counts[e];
            err += 0.25 * c;
            dist += 0.5 * c;
            count += c;
            upper[e] = err;
        }
        let mut lower = vec![0.0f64; n + 1]; // values below edge e
        let (mut count, mut dist, mut err) = (0.0f64, 0.0f64, 0.0f64);
        for (e, &c) in self.counts.iter().enumerate() {
            let e = e + 1;
            err += 2.0 * dist + count;
            dist += count;
            err += 0.25 * c;
            dist += 0.5 * c;
            count += c;
            lower[e] = err;
        }
        let mut inside_below = vec![0.0f64; n + 1]; // nonzero values below edge e
        for e in 1..=n {
            inside_below[e] = inside_below[e - 1] + self.counts[e - 1];
        }
        // The edge at grid position 0 (clipping a whole side to 0), clamped into the bins.
        let zero_edge = (-self.base).clamp(0, n as i64) as usize;
        // Candidate clip points as (edge, position in grid units): the observed extreme first (no clip).
        let mut los: Vec<(usize, f64)> = vec![(0, self.min.min(0.0))];
        if self.min < 0.0 {
            los.extend((1..=zero_edge).map(|e| (e, (self.base + e as i64) as f64)));
        }
        let mut his: Vec<(usize, f64)> = vec![(n, self.max.max(0.0))];
        if self.max > 0.0 {
            his.extend(
                (zero_edge..n)
                    .rev()
                    .map(|e| (e, (self.base + e as i64) as f64)),
            );
        }
        let cost = |(a, lo): (usize, f64), (b, hi): (usize, f64)| -> f64 {
            let step = grid.step(lo, hi);
            let inside = inside_below[b] - inside_below[a];
            lower[a] + upper[b] + inside * step * step / 12.0
        };
        // Coarse search on every s-th candidate (the extremes always included), then bin by bin around
        // the best. Ties keep the earlier, wider range.
        let stride = |len: usize| len.div_ceil(MSE_COARSE).max(1);
        let (sl, sh) = (stride(los.len()), stride(his.len()));
        let coarse = |len: usize, s: usize| (0..len).step_by(s).collect::<Vec<_>>();
        let mut best = (f64::INFINITY, 0usize, 0usize);
        for &i in &coarse(los.len(), sl) {
            for &j in &coarse(his.len(), sh) {
                let c = cost(los[i], his[j]);
                if c < best.0 {
                    best = (c, i, j);
                }
            }
        }
        let (_, bi, bj) = best;
        let (li, hj) = (bi.saturating_sub(sl), bj.saturating_sub(sh));
        for (i, &lo) in los.iter().enumerate().skip(li).take(2 * sl + 1) {
            for (j, &hi) in his.iter().enumerate().skip(hj).take(2 * sh + 1) {
                let c = cost(lo, hi);
                if c < best.0 || (c == best.0 && (i, j) < (best.1, best.2)) {
                    best = (c, i, j);
                }
            }
        }
        let (_, bi, bj) = best;
        (self.value(los[bi].1), self.value(his[bj].1))
    }

    /// TensorRT's KL search on the magnitudes: for each threshold bin `i`, the reference distribution is
    /// the first `i` bins with everything above folded into the last, the candidate those `i` bins merged
    /// to the grid's levels and spread back over their nonempty bins; the threshold with the least
    /// divergence wins. Levels: 128 per side for a tensor with both signs, 255 for a one-signed int8
    /// tensor, 32767 for int16 (more than the bins: no threshold below the maximum loses nothing, so the
    /// range stays minmax's).
    fn entropy(&self, grid: QuantGrid) -> (f32, f32) {
        let both_signs = self.min < 0.0 && self.max > 0.0;
        let levels = match grid {
            QuantGrid::Int16Symmetric => 32767,
            QuantGrid::Int8Asymmetric if both_signs => 128,
            QuantGrid::Int8Asymmetric => 255,
        };
        // Magnitude histogram: grid bin k >= 0 holds [k, k + 1), bin k < 0 holds |x| in (-k - 1, -k].
        let mut mags: Vec<f64> = Vec::new();
        for (i, &c) in self.counts.iter().enumerate() {
            let k = self.base + i as i64;
            let m = if k >= 0 { k } else { -k - 1 } as usize;
            if mags.len() <= m {
                mags.resize(m + 1, 0.0);
            }
            mags[m] += c;
        }
        let mut unit = 1.0f64;
        while mags.len() > ENTROPY_BINS {
            mags = mags.chunks(2).map(|p| p.iter().sum()).collect();
            unit *= 2.0;
        }
        let (min, max) = (self.value(self.min), self.value(self.max));
        if mags.len() <= levels {
            return (min, max);
        }
        let total_above: Vec<f64> = {
            let mut v = vec![0.0; mags.len() + 1];
            for i in (0..mags.len()).rev() {
                v[i] = v[i + 1] + mags[i];
            }
            v
        };
        let mut best = (f64::INFINITY, mags.len());
        for i in levels..=mags.len() {
            let kl = divergence(&mags[..i], total_above[i], levels);
            if kl < best.0 {
                best = (kl, i);
            }
        }
        let t = self.value(best.1 as f64 * unit);
        (-t, t)
    }
}

/// KL divergence of `slice` (with `outliers` added to its last bin) from `slice` quantized to `levels`
/// groups and expanded back, both smoothed as ONNX Runtime does: [`SMOOTHING`] moved onto the empty bins
/// from the others, so no bin has probability 0. Infinite when a distribution is empty or too sparse.
fn divergence(slice: &[f64], outliers: f64, levels: usize) -> f64 {
    let n = slice.len();
    let sum: f64 = slice.iter().sum();
    let empty = slice.iter().filter(|&&c| c == 0.0).count();
    // The reference's last bin holds the outliers even when the slice's is empty.
    let filled_last = outliers > 0.0 && slice.last() == Some(&0.0);
    let p_empty = empty - usize::from(filled_last);
    if sum <= 0.0 || empty == n {
        return f64::INFINITY;
    }
    let p_total = sum + outliers;
    let p_take = SMOOTHING * p_empty as f64 / (n - p_empty) as f64;
    let q_take = SMOOTHING * empty as f64 / (n - empty) as f64;
    let merged = n / levels;
    let mut kl = 0.0;
    for g in 0..levels {
        let start = g * merged;
        let stop = if g + 1 == levels { n } else { start + merged };
        let group = &slice[start..stop];
        let nonempty = group.iter().filter(|&&c| c > 0.0).count();
        // The candidate spreads each group's count evenly over its nonempty bins.
        let share = group.iter().sum::<f64>() / nonempty.max(1) as f64;
        for (k, &c) in group.iter().enumerate() {
            let p = if start + k + 1 == n { c + outliers } else { c };
            if p == 0.0 {
                // Both smoothed to SMOOTHING: the term is 0.
                continue;
            }
            let ps = p / p_total - p_take;
            let qs = if c == 0.0 {
                SMOOTHING
            } else {
                share / sum - q_take
            };
            if ps <= 0.0 || qs <= 0.0 {
                return f64::INFINITY;
            }
            kl += ps * (ps / qs).ln();
        }
    }
    kl
}

/// Probability given to empty bins before the divergence is taken.
const SMOOTHING: f64 = 1e-4;

/// A histogram with its range selection: the observer of the percentile, MSE and entropy methods.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramObserver {
    histogram: Histogram,
    method: RangeMethod,
}

impl HistogramObserver {
    /// An observer that has seen nothing and will select its range by `method`.
    pub fn new(method: RangeMethod) -> Self {
        HistogramObserver {
            histogram: Histogram::new(),
            method,
        }
    }

    /// What was recorded.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }
}

impl RangeObserver for HistogramObserver {
    fn observe(&mut self, values: &[f32]) {
        self.histogram.observe(values);
    }

    fn merge(&mut self, other: &Self) {
        self.histogram.merge(&other.histogram);
    }

    fn range(&self) -> Option<(f32, f32)> {
        self.histogram.range(self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` standard normal values (Box-Muller, seeded) scaled by `sigma`, then `outliers` appended.
    fn gaussian_with_outliers(n: usize, sigma: f32, outliers: &[f32]) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut v: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * sigma
            })
            .collect();
        v.extend_from_slice(outliers);
        v
    }

    fn range_of(method: RangeMethod, values: &[f32]) -> (f32, f32) {
        let mut o = HistogramObserver::new(method);
        o.observe(values);
        o.range().unwrap()
    }

    const METHODS: [RangeMethod; 6] = [
        RangeMethod::Percentile(99.9),
        RangeMethod::Percentile(99.99),
        RangeMethod::Mse(QuantGrid::Int8Asymmetric),
        RangeMethod::Mse(QuantGrid::Int16Symmetric),
        RangeMethod::Entropy(QuantGrid::Int8Asymmetric),
        RangeMethod::Entropy(QuantGrid::Int16Symmetric),
    ];

    #[test]
    fn histogram_minmax_equals_the_minmax_observer() {
        let data = gaussian_with_outliers(5000, 2.0, &[40.0, -25.0]);
        let mut m = crate::calibrate::MinMaxObserver::new();
        m.observe(&data);
        assert_eq!(Some(range_of(RangeMethod::MinMax, &data)), m.range());
    }

    /// Mean squared error of fake-quantizing `data` to int8 on the range `[lo, hi]`, as TFLite does.
    fn int8_quantization_mse(data: &[f32], lo: f32, hi: f32) -> f64 {
        let (lo, hi) = (f64::from(lo.min(0.0)), f64::from(hi.max(0.0)));
        let scale = (hi - lo) / 255.0;
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
        let err: f64 = data
            .iter()
            .map(|&x| {
                let q = (f64::from(x) / scale + zero_point)
                    .round()
                    .clamp(-128.0, 127.0);
                ((q - zero_point) * scale - f64::from(x)).powi(2)
            })
            .sum();
        err / data.len() as f64
    }

    #[test]
    fn percentile_and_mse_clip_outliers_of_a_gaussian_and_minmax_does_not() {
        let data = gaussian_with_outliers(100_000, 1.0, &[60.0, -45.0, 50.0]);
        let minmax = range_of(RangeMethod::MinMax, &data);
        assert_eq!(minmax, (-45.0, 60.0));
        let (lo, hi) = range_of(RangeMethod::Percentile(99.99), &data);
        // The 0.01% tails of N(0, 1) are at about +-3.7.
        assert!(
            (-4.5..-3.0).contains(&lo) && (3.0..4.5).contains(&hi),
            "{lo} {hi}"
        );
        // MSE weighs the three far outliers against 100k rounding errors: it pulls in, but not to the bulk.
        let mse = range_of(RangeMethod::Mse(QuantGrid::Int8Asymmetric), &data);
        assert!(mse.0 > -40.0 && mse.1 < 55.0, "{mse:?}");
        let error = |(lo, hi)| int8_quantization_mse(&data, lo, hi);
        assert!(
            error(mse) < 0.8 * error(minmax),
            "{} {}",
            error(mse),
            error(minmax)
        );
        let (lo, hi) = range_of(RangeMethod::Entropy(QuantGrid::Int8Asymmetric), &data);
        assert!(
            (-20.0..-2.0).contains(&lo) && (2.0..20.0).contains(&hi),
            "{lo} {hi}"
        );
    }

    #[test]
    fn mse_range_has_near_least_int8_error_of_ranges_on_a_grid() {
        // A heavy-tailed distribution: the best clip is well inside the extremes. The criterion models
        // rounding error as uniform (step^2 / 12), so it is near, not at, the least error measured.
        let data: Vec<f32> = gaussian_with_outliers(50_000, 1.0, &[])
            .iter()
            .map(|v| v * v * v * 0.2)
            .collect();
        let mse = range_of(RangeMethod::Mse(QuantGrid::Int8Asymmetric), &data);
        let best = int8_quantization_mse(&data, mse.0, mse.1);
        let (min, max) = range_of(RangeMethod::MinMax, &data);
        for i in 1..=20 {
            for j in 1..=20 {
                let (lo, hi) = (min * i as f32 / 20.0, max * j as f32 / 20.0);
                let other = int8_quantization_mse(&data, lo, hi);
                assert!(
                    best <= other * 1.15,
                    "{mse:?}: {best} > {other} at {lo} {hi}"
                );
            }
        }
        let minmax = int8_quantization_mse(&data, min, max);
        assert!(best <= minmax, "{mse:?} {best} vs minmax {minmax}");
    }

    #[test]
    fn mse_keeps_the_full_range_of_a_uniform_distribution() {
        // Nothing to gain by clipping a flat distribution with no tails.
        let data: Vec<f32> = (0..=20_000).map(|i| i as f32 / 10_000.0 - 1.0).collect();
        let (lo, hi) = range_of(RangeMethod::Mse(QuantGrid::Int8Asymmetric), &data);
        assert!(lo <= -0.99 && hi >= 0.99, "{lo} {hi}");
    }

    #[test]
    fn one_signed_tensors_keep_their_observed_near_side() {
        let relu: Vec<f32> = gaussian_with_outliers(20_000, 1.0, &[30.0])
            .into_iter()
            .map(|v| v.max(0.0) + 0.25)
            .collect();
        let neg: Vec<f32> = relu.iter().map(|v| -v).collect();
        for method in METHODS {
            let (lo, hi) = range_of(method, &relu);
            assert_eq!(lo, 0.25, "{method:?}");
            assert!(hi > 0.25 && hi <= 30.25, "{method:?}");
            let (lo, hi) = range_of(method, &neg);
            assert_eq!(hi, -0.25, "{method:?}");
            assert!((-30.25..-0.25).contains(&lo), "{method:?}");
        }
    }

    #[test]
    fn ranges_stay_inside_the_observed_range_and_contain_zero_when_it_has_both_signs() {
        for (i, data) in [
            gaussian_with_outliers(3000, 0.01, &[0.5, -0.2]),
            gaussian_with_outliers(3000, 1e4, &[]),
            vec![-1.0, 5.0],
            vec![-3.0, -3.0, 2.0, 2.0, 2.0],
        ]
        .iter()
        .enumerate()
        {
            let (min, max) = range_of(RangeMethod::MinMax, data);
            for method in METHODS {
                let (lo, hi) = range_of(method, data);
                assert!(
                    min <= lo && lo <= 0.0 && 0.0 <= hi && hi <= max && lo < hi,
                    "{i} {method:?}"
                );
            }
        }
    }

    #[test]
    fn exact_zeros_do_not_collapse_a_sparse_tensor_range() {
        // 99.999% zeros: a percentile over all values would be 0.
        let mut data = vec![0.0f32; 1_000_000];
        data.extend((1..=10).map(|i| i as f32));
        for method in METHODS {
            let (lo, hi) = range_of(method, &data);
            assert_eq!(lo, 0.0, "{method:?}");
            assert!(hi >= 5.0, "{method:?} {hi}");
        }
    }

    #[test]
    fn percentile_100_is_minmax() {
        let data = gaussian_with_outliers(10_000, 3.0, &[100.0, -70.5]);
        assert_eq!(
            range_of(RangeMethod::Percentile(100.0), &data),
            (-70.5, 100.0)
        );
    }

    #[test]
    fn merging_parts_equals_one_histogram_of_all_values() {
        // The parts have very different ranges, so the width grows in different steps on each side.
        let data = gaussian_with_outliers(30_000, 0.5, &[-3000.0, 0.0, 7.0]);
        let mut whole = HistogramObserver::new(RangeMethod::Mse(QuantGrid::Int8Asymmetric));
        whole.observe(&data);
        for cut in [1, 100, 29_999, 30_001] {
            let mut a = HistogramObserver::new(RangeMethod::Mse(QuantGrid::Int8Asymmetric));
            let mut b = a.clone();
            for chunk in data[..cut].chunks(997) {
                a.observe(chunk);
            }
            b.observe(&data[cut..]);
            let mut ab = a.clone();
            ab.merge(&b);
            assert_eq!(ab, whole, "cut {cut}");
            b.merge(&a);
            assert_eq!(b.histogram(), whole.histogram(), "cut {cut}, other order");
        }
    }

    #[test]
    fn merging_into_or_from_an_empty_histogram_changes_nothing() {
        let mut full = Histogram::new();
        full.observe(&[1.0, -2.0, 3.5]);
        let mut empty = Histogram::new();
        empty.merge(&full);
        assert_eq!(empty, full);
        full.merge(&Histogram::new());
        assert_eq!(empty, full);
    }

    #[test]
    fn nan_is_skipped_and_an_infinity_gives_minmax_unusable_range() {
        let mut h = Histogram::new();
        h.observe(&[f32::NAN]);
        assert_eq!(h.range(RangeMethod::Percentile(99.0)), None);
        h.observe(&[f32::NAN, 1.0, -1.0, 0.5]);
        assert_eq!(h.min_max(), Some((-1.0, 1.0)));
        h.observe(&[f32::INFINITY]);
        for method in METHODS {
            assert_eq!(h.range(method), Some((-1.0, f32::INFINITY)));
        }
        let mut finite = Histogram::new();
        finite.observe(&[2.0]);
        finite.merge(&h);
        assert_eq!(finite.range(METHODS[2]), Some((-1.0, f32::INFINITY)));
    }

    #[test]
    fn huge_and_tiny_magnitudes_bin_without_overflow() {
        let data = [f32::MAX, f32::MIN, 1e-30, -1e-38, 0.0];
        for method in METHODS {
            let (lo, hi) = range_of(method, &data);
            assert!(lo <= 0.0 && hi >= 0.0, "{method:?}");
        }
        let tiny = [1e-30f32, 2e-30, -1e-30];
        assert_eq!(
            range_of(RangeMethod::Percentile(100.0), &tiny),
            (-1e-30, 2e-30)
        );
    }
}
