//! Range observers: what calibration records about each activation tensor.
//!
//! An observer sees every value a tensor takes over the representative data and turns it into a `(min, max)`
//! range. Workers keep their own observers and merge them in a fixed order, so a method whose merge is not
//! exact (histograms for percentile, MSE or entropy) still gives results independent of scheduling.

/// Accumulates the values of one tensor over the representative data into a quantization range.
pub trait RangeObserver: Send {
    /// Records the values of the tensor for one sample (any layout order).
    fn observe(&mut self, values: &[f32]);
    /// Folds in what another observer of the same tensor recorded (on other samples).
    fn merge(&mut self, other: &Self)
    where
        Self: Sized;
    /// The range to quantize to, or `None` if no (non-NaN) value was seen.
    fn range(&self) -> Option<(f32, f32)>;
}

/// TFLite's calibration: the global running minimum and maximum over all samples.
///
/// NaN values are skipped (they carry no range); infinities are kept, so a tensor that overflows shows up
/// as an unusable range instead of being hidden.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMaxObserver {
    min: f32,
    max: f32,
}

impl Default for MinMaxObserver {
    fn default() -> Self {
        MinMaxObserver {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl MinMaxObserver {
    /// An observer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Lanes of the min/max scan: independent accumulators let the compiler vectorize the loop.
const LANES: usize = 8;

impl RangeObserver for MinMaxObserver {
    fn observe(&mut self, values: &[f32]) {
        (self.min, self.max) = extend_range(self.min, self.max, values);
    }

    fn merge(&mut self, other: &Self) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn range(&self) -> Option<(f32, f32)> {
        (self.min <= self.max).then_some((self.min, self.max))
    }
}

/// `(min, max)` widened by `values`, NaN skipped. Min and max are exact, so every path gives the same bits.
pub(super) fn extend_range(min: f32, max: f32, values: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available on this CPU (checked on the line above).
            return unsafe { extend_range_avx(min, max, values) };
        }
    }
    extend_range_lanes(min, max, values)
}

/// The AVX scan: `vminps(v, lo)` returns `lo` when `v` is NaN, which skips NaN in one instruction
/// (LLVM does not vectorize the portable form's NaN handling).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn extend_range_avx(min: f32, max: f32, values: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps, _mm256_storeu_ps,
    };
    let mut lo = _mm256_set1_ps(f32::INFINITY);
    let mut hi = _mm256_set1_ps(f32::NEG_INFINITY);
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` holds exactly LANES = 8 floats; unaligned loads are allowed.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    let (mut l, mut h) = ([0.0f32; LANES], [0.0f32; LANES]);
    // SAFETY: both arrays hold 8 floats.
    unsafe {
        _mm256_storeu_ps(l.as_mut_ptr(), lo);
        _mm256_storeu_ps(h.as_mut_ptr(), hi);
    }
    let (min, max) = extend_range_lanes(min, max, rest);
    let min = l.iter().fold(min, |m, &v| m.min(v));
    let max = h.iter().fold(max, |m, &v| m.max(v));
    (min, max)
}

fn extend_range_lanes(mut min: f32, mut max: f32, values: &[f32]) -> (f32, f32) {
    // `f32::min`/`max` return the other operand when one is NaN, which is exactly "skip NaN".
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    for &v in rest {
        lo[0] = lo[0].min(v);
        hi[0] = hi[0].max(v);
    }
    for i in 0..LANES {
        min = min.min(lo[i]);
        max = max.max(hi[i]);
    }
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_tracks_global_extremes_over_calls() {
        let mut o = MinMaxObserver::new();
        o.observe(&[0.5, -1.0, 2.0]);
        o.observe(&[3.0, 0.0]);
        assert_eq!(o.range(), Some((-1.0, 3.0)));
    }

    #[test]
    fn minmax_skips_nan_values() {
        let mut o = MinMaxObserver::new();
        o.observe(&[
            f32::NAN,
            1.0,
            f32::NAN,
            -2.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            f32::NAN,
        ]);
        assert_eq!(o.range(), Some((-2.0, 1.0)));
    }

    #[test]
    fn minmax_without_values_has_no_range() {
        let mut o = MinMaxObserver::new();
        assert_eq!(o.range(), None);
        o.observe(&[f32::NAN, f32::NAN]);
        assert_eq!(o.range(), None);
    }

    #[test]
    fn minmax_merge_equals_observing_everything_in_one() {
        let data: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
        let mut whole = MinMaxObserver::new();
        whole.observe(&data);
        let mut a = MinMaxObserver::new();
        let mut b = MinMaxObserver::new();
        a.observe(&data[..33]);
        b.observe(&data[33..]);
        a.merge(&b);
        assert_eq!(a, whole);
    }
}
