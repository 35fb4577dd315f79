//! Per-channel requantization of int32 sums to int8 codes, vectorizable: TFLite's
//! `MultiplyByQuantizedMultiplier` (bias added, left shift, `SaturatingRoundingDoublingHighMul`,
//! `RoundingDivideByPOT`), then the output offset and the activation clamp, written without branches so
//! the channel loop runs in AVX2 lanes. The integers are those of
//! [`multiply_by_quantized_multiplier`](crate::interp::fixed_point::multiply_by_quantized_multiplier).

use crate::interp::fixed_point::QuantizedMultiplier;

/// A quantized multiplier as branch-free integer steps: the left shift as a (wrapping) multiplication,
/// `SaturatingRoundingDoublingHighMul`, then `RoundingDivideByPOT` with a mask. Kernels run it in loops
/// that the compiler vectorizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scaler {
    /// `2^left`, the multiplier's left shift as a (wrapping) multiplication.
    scale_up: i32,
    multiplier: i32,
    /// The right shift of `RoundingDivideByPOT`, in [0, 31].
    right: i32,
    /// `2^right - 1`.
    mask: i32,
}

impl Scaler {
    /// TFLite's `MultiplyByQuantizedMultiplier`.
    pub fn new(m: QuantizedMultiplier) -> Scaler {
        Scaler::with_left_shift(m, 1i32 << m.shift.clamp(0, 30))
    }

    /// `MultiplyByQuantizedMultiplierSmallerThanOneExp`: a positive shift is not applied.
    pub fn smaller_than_one(m: QuantizedMultiplier) -> Scaler {
        Scaler::with_left_shift(m, 1)
    }

    fn with_left_shift(m: QuantizedMultiplier, scale_up: i32) -> Scaler {
        let right = (-m.shift).clamp(0, 31);
        Scaler {
            scale_up,
            multiplier: m.multiplier,
            right,
            mask: ((1i64 << right) - 1) as i32,
        }
    }

    /// `x` times the multiplier.
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        let x = x.wrapping_mul(self.scale_up);
        // round(x * m / 2^31) half away from zero is floor((x * m + 2^30) / 2^31); the one overflow saturates.
        let high = ((i64::from(x) * i64::from(self.multiplier) + (1i64 << 30)) >> 31) as i32;
        let high = if x == i32::MIN && self.multiplier == i32::MIN {
            i32::MAX
        } else {
            high
        };
        let remainder = high & self.mask;
        let threshold = (self.mask >> 1) + i32::from(high < 0);
        (high >> self.right) + i32::from(remainder > threshold)
    }
}

/// The output channels' constants, one array per constant (so the channel loop loads whole vectors).
#[derive(Debug, Clone, Default)]
struct Channels {
    bias: Vec<i32>,
    scale_up: Vec<i32>,
    multiplier: Vec<i32>,
    right: Vec<i32>,
    mask: Vec<i32>,
}

/// What turns a channel's int32 sum into its int8 code.
pub(crate) struct Requantizer {
    channels: Channels,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
}

impl Requantizer {
    /// Per channel: bias (added to the wrapping int32 sum) and multiplier; then the output zero point and
    /// the fused activation's clamp.
    pub fn new(
        bias: &[i32],
        multipliers: &[QuantizedMultiplier],
        output_offset: i32,
        (act_min, act_max): (i32, i32),
    ) -> Requantizer {
        let mut channels = Channels::default();
        for (&bias, &m) in bias.iter().zip(multipliers) {
            let scaler = Scaler::new(m);
            channels.bias.push(bias);
            channels.scale_up.push(scaler.scale_up);
            channels.multiplier.push(scaler.multiplier);
            channels.right.push(scaler.right);
            channels.mask.push(scaler.mask);
        }
        Requantizer {
            channels,
            output_offset,
            act_min,
            act_max,
        }
    }

    /// Requantizes the first (channel count) sums of each row of `sums` (rows `width` apart) and appends
    /// the codes to `out`.
    pub fn apply(&self, sums: &[i32], width: usize, out: &mut Vec<i8>) {
        let n = self.channels.bias.len();
        if width < n || n == 0 {
            return;
        }
        let rows = sums.len() / width;
        let start = out.len();
        out.resize(start + rows * n, 0);
        let dst = &mut out[start..];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is available on this CPU (checked on the line above).
                unsafe { self.rows_avx2(sums, width, dst) };
                return;
            }
        }
        self.rows(sums, width, dst);
    }

    /// [`rows`](Self::rows) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(&self, sums: &[i32], width: usize, out: &mut [i8]) {
        self.rows(sums, width, out);
    }

    #[inline(always)]
    fn rows(&self, sums: &[i32], width: usize, out: &mut [i8]) {
        let c = &self.channels;
        let n = c.bias.len();
        let (bias, scale_up, multiplier) = (&c.bias[..n], &c.scale_up[..n], &c.multiplier[..n]);
        let (right, mask) = (&c.right[..n], &c.mask[..n]);
        for (row, dst) in sums.chunks_exact(width).zip(out.chunks_exact_mut(n)) {
            let row = &row[..n];
            for k in 0..n {
                let scaler = Scaler {
                    scale_up: scale_up[k],
                    multiplier: multiplier[k],
                    right: right[k],
                    mask: mask[k],
                };
                dst[k] = scaler
                    .apply(row[k].wrapping_add(bias[k]))
                    .wrapping_add(self.output_offset)
                    .clamp(self.act_min, self.act_max) as i8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::fixed_point::{multiply_by_quantized_multiplier, quantize_multiplier};
    use proptest::prelude::*;

    fn reference(sum: i32, bias: i32, m: QuantizedMultiplier, offset: i32, lo: i32, hi: i32) -> i8 {
        multiply_by_quantized_multiplier(sum.wrapping_add(bias), m)
            .wrapping_add(offset)
            .clamp(lo, hi) as i8
    }

    #[test]
    fn extreme_sums_and_shifts_match_the_reference() {
        let sums = [
            i32::MIN,
            i32::MIN + 1,
            -1 << 30,
            -3,
            -1,
            0,
            1,
            2,
            1 << 30,
            i32::MAX,
        ];
        for real in [
            1e-9, 3.1e-6, 0.0007, 0.25, 0.5, 0.999, 1.0, 1.5, 7.3, 1e3, 1e9,
        ] {
            let m = quantize_multiplier(real);
            let cases = [
                m,
                QuantizedMultiplier {
                    multiplier: i32::MIN,
                    shift: 0,
                },
            ];
            for m in cases {
                let r =
                    Requantizer::new(&vec![0; sums.len()], &vec![m; sums.len()], -5, (-128, 127));
                let mut out = Vec::new();
                r.apply(&sums, sums.len(), &mut out);
                let want: Vec<i8> = sums
                    .iter()
                    .map(|&s| reference(s, 0, m, -5, -128, 127))
                    .collect();
                assert_eq!(out, want, "multiplier {m:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn requantized_rows_match_multiply_by_quantized_multiplier(
            sums in proptest::collection::vec(any::<i32>(), 1..70),
            bias in -100_000i32..100_000,
            real in 1e-7f64..4.0,
            offset in -128i32..128,
        ) {
            let m = quantize_multiplier(real);
            let n = sums.len();
            let r = Requantizer::new(&vec![bias; n], &vec![m; n], offset, (-100, 90));
            let mut out = Vec::new();
            r.apply(&sums, n, &mut out);
            let want: Vec<i8> = sums.iter().map(|&s| reference(s, bias, m, offset, -100, 90)).collect();
            prop_assert_eq!(out, want);
        }
    }
}
