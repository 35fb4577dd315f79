//! Vectorizable float `tanh`, `exp` and logistic for the activation kernels.
//!
//! `f32::tanh` and `f32::exp` are libm calls, one per element, which the compiler cannot vectorize; on
//! models with TANH or LOGISTIC activations they dominated calibration time. These are branch-free
//! polynomial / rational evaluations (the approach of Eigen's and XNNPACK's float kernels, which LiteRT
//! runs) with relative error below 2e-6 over the whole float range, far inside what calibration needs
//! (ranges are rounded to 8-bit steps). They use only IEEE-exact operations (no FMA), so every CPU and
//! vector width gives the same bits.

use crate::calibrate::vector::wide_vectors;

/// |x| beyond which tanh(x) rounds to +-1 in f32 (the rational form below is fitted up to here).
const TANH_CLAMP: f32 = 7.905_311;
/// Below this |x|, tanh(x) = x to f32 precision (the rational form loses relative accuracy near 0).
const TANH_LINEAR: f32 = 0.0004;

/// tanh(x) as a 13/6 odd/even rational function of the clamped input (Eigen's float coefficients).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    // NaN stays NaN: `clamp` keeps it and every step below propagates it.
    let c = x.clamp(-TANH_CLAMP, TANH_CLAMP);
    let x2 = c * c;
    let mut p = x2 * A13 + A11;
    p = p * x2 + A9;
    p = p * x2 + A7;
    p = p * x2 + A5;
    p = p * x2 + A3;
    p = p * x2 + A1;
    p *= c;
    let mut q = x2 * B6 + B4;
    q = q * x2 + B2;
    q = q * x2 + B0;
    let r = p / q;
    if c.abs() < TANH_LINEAR {
        c
    } else {
        r
    }
}

/// e^x by range reduction to r in [-ln2/2, ln2/2] and a degree-7 polynomial (Cephes' expf coefficients);
/// the input is clamped to [-87, 88] so 2^n stays a normal float: +inf maps to e^88, -inf to e^-87.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const HI: f32 = 88.0;
    const LO: f32 = -87.0;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so n * LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(LO, HI);
    let t = c * LOG2E + ROUND;
    let n = t - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n for n in [-126, 127], built from its exponent bits. `t` is 1.5 * 2^23 + n with a unit last bit,
    // so its bits are those of 1.5 * 2^23 plus n: integer arithmetic, where `n as i32` would check every
    // vector lane for saturation one by one.
    let k = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let scale = f32::from_bits(k << 23);
    let e = y * scale;
    if x.is_nan() {
        x
    } else {
        e
    }
}

/// The logistic function 1 / (1 + e^-x).
#[inline(always)]
pub(crate) fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

wide_vectors! {
    /// `dst[i] = tanh(src[i])`.
    pub(crate) fn tanh_into(src: &[f32], dst: &mut [f32]) => tanh_loop;
}

wide_vectors! {
    /// `dst[i] = logistic(src[i])`.
    pub(crate) fn logistic_into(src: &[f32], dst: &mut [f32]) => logistic_loop;
}

wide_vectors! {
    /// `v = tanh(v)` in place.
    pub(crate) fn tanh_in_place(values: &mut [f32]) => tanh_in_place_loop;
}

/// GELU, `0.5 x erfc(-x / sqrt 2)` (which keeps its relative precision for x << 0), with Numerical Recipes'
/// `erfcc` Chebyshev fit (relative error 1.2e-7) evaluated in f32 around [`exp`]: a few 1e-7 relative.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let y = -x * std::f32::consts::FRAC_1_SQRT_2;
    let z = y.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    let r = t * exp(p - z * z);
    let erfc = if y >= 0.0 { r } else { 2.0 - r };
    0.5 * x * erfc
}

/// GELU's tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

wide_vectors! {
    /// `dst[i] = gelu(src[i])`.
    pub(crate) fn gelu_into(src: &[f32], dst: &mut [f32]) => gelu_loop;
}

wide_vectors! {
    /// `dst[i] = gelu_tanh(src[i])`.
    pub(crate) fn gelu_tanh_into(src: &[f32], dst: &mut [f32]) => gelu_tanh_loop;
}

#[inline(always)]
fn gelu_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = gelu(s);
    }
}

#[inline(always)]
fn gelu_tanh_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = gelu_tanh(s);
    }
}

wide_vectors! {
    /// `v = logistic(v)` in place.
    pub(crate) fn logistic_in_place(values: &mut [f32]) => logistic_in_place_loop;
}

#[inline(always)]
fn logistic_in_place_loop(values: &mut [f32]) {
    for v in values {
        *v = logistic(*v);
    }
}

#[inline(always)]
fn tanh_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = tanh(s);
    }
}

#[inline(always)]
fn logistic_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = logistic(s);
    }
}

#[inline(always)]
fn tanh_in_place_loop(values: &mut [f32]) {
    for v in values {
        *v = tanh(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 97th float from -100 to 100 and the extremes, both signs.
    fn grid() -> Vec<f32> {
        let mut v: Vec<f32> = (0..2_000_000).map(|i| -100.0 + i as f32 * 1e-4).collect();
        v.extend([
            0.0, -0.0, 1e-30, -1e-30, 1e-7, 3.9e-4, 4.1e-4, 7.9, 8.0, 1e30, -1e30,
        ]);
        v.extend([f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY]);
        v
    }

    fn rel(got: f32, want: f64) -> f64 {
        let d = (f64::from(got) - want).abs();
        if want == 0.0 {
            d
        } else {
            d / want.abs()
        }
    }

    #[test]
    fn exp_builds_2_to_the_n_from_bits_exactly_as_a_float_to_int_conversion_would() {
        // The scale 2^n from the rounding constant's bits equals the one from `n as i32`, so exp's
        // results are those of the conversion-based form, bit for bit.
        const ROUND: f32 = 12_582_912.0;
        for x in grid() {
            let c = x.clamp(-87.0, 88.0);
            let t = c * std::f32::consts::LOG2_E + ROUND;
            let n = t - ROUND;
            let by_bits = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
            let by_cast = ((n as i32 + 127) as u32) << 23;
            assert_eq!(by_bits, by_cast, "x = {x}");
        }
    }

    #[test]
    fn fast_tanh_is_within_2e6_relative_of_tanh() {
        let worst = grid()
            .into_iter()
            .map(|x| rel(tanh(x), f64::from(x).tanh()))
            .fold(0.0, f64::max);
        assert!(worst < 2e-6, "worst relative error {worst}");
    }

    #[test]
    fn fast_exp_is_within_2e6_relative_where_the_result_is_normal() {
        let worst = grid()
            .into_iter()
            .filter(|&x| (-87.0..=88.0).contains(&x))
            .map(|x| rel(exp(x), f64::from(x).exp()))
            .fold(0.0, f64::max);
        assert!(worst < 2e-6, "worst relative error {worst}");
    }

    #[test]
    fn fast_logistic_is_within_2e6_relative_of_logistic() {
        let worst = grid()
            .into_iter()
            .filter(|&x| (-87.0..=87.0).contains(&x))
            .map(|x| rel(logistic(x), 1.0 / (1.0 + (-f64::from(x)).exp())))
            .fold(0.0, f64::max);
        assert!(worst < 2e-6, "worst relative error {worst}");
        assert_eq!(logistic(f32::INFINITY), 1.0);
        assert!(logistic(f32::NEG_INFINITY) < 1e-37);
        assert!(logistic(-1000.0) >= 0.0);
    }

    #[test]
    fn nan_propagates() {
        assert!(tanh(f32::NAN).is_nan());
        assert!(exp(f32::NAN).is_nan());
        assert!(logistic(f32::NAN).is_nan());
    }
}
