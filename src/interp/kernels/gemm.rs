//! The int8 matrix product behind CONV_2D and FULLY_CONNECTED: offset activations times weights, both held
//! as i16, summed in a wrapping int32 accumulator as the reference kernels' `int32 acc` does.
//!
//! Sums of integers are exact modulo 2^32 in any order, so the AVX2 path (pairs of products added by
//! `vpmaddwd`, 4 rows x 16 columns per block) and the portable one give the same integers. Every product fits
//! an i16 x i16 -> i32 multiply-add: activations with their offset lie in [-255, 255] and weights in
//! [-255, 255], so a pair of products stays far below 2^31.

/// Output columns one block computes.
pub(crate) const LANES: usize = 16;
/// Rows (patches, batches) one AVX2 block computes.
const ROWS: usize = 4;

/// A weight matrix `[columns, depth]` packed once: the depth rounded up to even and the columns up to a
/// multiple of [`LANES`] (zeros), laid out `[column block][depth pair][LANES][2]` so that one depth pair of
/// a block is 32 contiguous i16.
pub(crate) struct PackedWeights {
    columns: usize,
    depth: usize,
    data: Vec<i16>,
}

impl PackedWeights {
    /// Packs `weight(column, k)` for `columns` output columns of `depth` products each.
    pub fn new(
        columns: usize,
        depth: usize,
        weight: impl Fn(usize, usize) -> i16,
    ) -> PackedWeights {
        let pairs = depth.div_ceil(2);
        let blocks = columns.div_ceil(LANES);
        let mut data = vec![0i16; blocks * pairs * LANES * 2];
        for c in 0..columns {
            let (block, lane) = (c / LANES, c % LANES);
            for k in 0..depth {
                data[((block * pairs + k / 2) * LANES + lane) * 2 + k % 2] = weight(c, k);
            }
        }
        PackedWeights {
            columns,
            depth,
            data,
        }
    }

    /// The depth rows of the left operand must be laid out with (the even depth).
    pub fn row_stride(&self) -> usize {
        self.depth.div_ceil(2) * 2
    }

    /// Columns of the product as stored (a multiple of [`LANES`]).
    pub fn padded_columns(&self) -> usize {
        self.columns.div_ceil(LANES) * LANES
    }
}

/// `sums[r * padded_columns + c] = sum_k rows[r * row_stride + k] * weight(c, k)` (wrapping) for `count` rows.
/// `rows` holds `count` rows of [`PackedWeights::row_stride`] values, zero past the depth. `None` when the
/// buffers are too small.
pub(crate) fn product(
    rows: &[i16],
    count: usize,
    w: &PackedWeights,
    sums: &mut Vec<i32>,
) -> Option<()> {
    let stride = w.row_stride();
    let width = w.padded_columns();
    if rows.len() < count * stride {
        return None;
    }
    sums.clear();
    sums.resize(count * width, 0);
    let pairs = stride / 2;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available on this CPU (checked on the line above); the sizes were checked.
            unsafe { product_avx2(rows, count, pairs, width, &w.data, sums) };
            return Some(());
        }
    }
    product_portable(rows, count, pairs, width, &w.data, sums);
    Some(())
}

/// The portable product: per row and column, the same wrapping sum of pair products.
fn product_portable(
    rows: &[i16],
    count: usize,
    pairs: usize,
    width: usize,
    packed: &[i16],
    sums: &mut [i32],
) {
    for (block, weights) in packed.chunks_exact(pairs * LANES * 2).enumerate() {
        for r in 0..count {
            let row = &rows[r * pairs * 2..(r + 1) * pairs * 2];
            let mut acc = [0i32; LANES];
            for (p, taps) in weights.chunks_exact(LANES * 2).enumerate() {
                let (a0, a1) = (i32::from(row[2 * p]), i32::from(row[2 * p + 1]));
                for (s, w) in acc.iter_mut().zip(taps.chunks_exact(2)) {
                    *s = s.wrapping_add(a0 * i32::from(w[0]) + a1 * i32::from(w[1]));
                }
            }
            sums[r * width + block * LANES..][..LANES].copy_from_slice(&acc);
        }
    }
}

/// [`product_portable`] in AVX2 registers, [`ROWS`] rows at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn product_avx2(
    rows: &[i16],
    count: usize,
    pairs: usize,
    width: usize,
    packed: &[i16],
    sums: &mut [i32],
) {
    for (block, weights) in packed.chunks_exact(pairs * LANES * 2).enumerate() {
        let mut r = 0;
        while r + ROWS <= count {
            // SAFETY: AVX2 is enabled here; `rows` holds `count` rows of `2 * pairs` values and `sums`
            // `count` rows of `width` (checked by `product`).
            unsafe {
                block_avx2::<ROWS>(
                    rows,
                    r,
                    pairs,
                    weights,
                    sums,
                    r * width + block * LANES,
                    width,
                )
            };
            r += ROWS;
        }
        for r in r..count {
            // SAFETY: as above.
            unsafe {
                block_avx2::<1>(
                    rows,
                    r,
                    pairs,
                    weights,
                    sums,
                    r * width + block * LANES,
                    width,
                )
            };
        }
    }
}

/// `R` rows from `first` times one column block (`weights`, `pairs` depth pairs), stored at `at` with rows
/// `width` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_avx2<const R: usize>(
    rows: &[i16],
    first: usize,
    pairs: usize,
    weights: &[i16],
    sums: &mut [i32],
    at: usize,
    width: usize,
) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_storeu_si256,
    };
    let stride = pairs * 2;
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let lhs = &rows[first * stride..(first + R) * stride];
    for (p, taps) in weights.chunks_exact(LANES * 2).enumerate() {
        // SAFETY: `taps` holds 32 i16, two 256-bit loads.
        let (w0, w1) = unsafe {
            (
                _mm256_loadu_si256(taps.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(taps.as_ptr().add(LANES).cast::<__m256i>()),
            )
        };
        for (i, a) in acc.iter_mut().enumerate() {
            let lo = lhs[i * stride + 2 * p] as u16 as u32;
            let hi = lhs[i * stride + 2 * p + 1] as u16 as u32;
            let pair = _mm256_set1_epi32((lo | (hi << 16)) as i32);
            a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(pair, w0));
            a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(pair, w1));
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let out = &mut sums[at + i * width..at + i * width + LANES];
        // SAFETY: `out` holds 16 i32, two 256-bit stores.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), a[0]);
            _mm256_storeu_si256(out.as_mut_ptr().add(8).cast::<__m256i>(), a[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(rows: &[i16], count: usize, depth: usize, w: &[i16], columns: usize) -> Vec<i32> {
        let mut out = Vec::new();
        for r in 0..count {
            for c in 0..columns {
                out.push((0..depth).fold(0i32, |s, k| {
                    s.wrapping_add(i32::from(rows[r * depth + k]) * i32::from(w[c * depth + k]))
                }));
            }
        }
        out
    }

    #[test]
    fn product_matches_plain_sums_for_odd_depths_and_ragged_columns() {
        for (count, depth, columns) in
            [(1, 1, 1), (5, 7, 17), (9, 32, 16), (4, 300, 40), (3, 2, 33)]
        {
            let rows: Vec<i16> = (0..count * depth)
                .map(|i| ((i * 37) % 511) as i16 - 255)
                .collect();
            let w: Vec<i16> = (0..columns * depth)
                .map(|i| ((i * 53) % 256) as i16 - 128)
                .collect();
            let packed = PackedWeights::new(columns, depth, |c, k| w[c * depth + k]);
            let stride = packed.row_stride();
            let mut padded = vec![0i16; count * stride];
            for r in 0..count {
                padded[r * stride..r * stride + depth]
                    .copy_from_slice(&rows[r * depth..(r + 1) * depth]);
            }
            let mut sums = Vec::new();
            assert_eq!(product(&padded, count, &packed, &mut sums), Some(()));
            let mut portable = vec![0; sums.len()];
            product_portable(
                &padded,
                count,
                stride / 2,
                packed.padded_columns(),
                &packed.data,
                &mut portable,
            );
            assert_eq!(portable, sums);
            let width = packed.padded_columns();
            let got: Vec<i32> = (0..count)
                .flat_map(|r| sums[r * width..r * width + columns].to_vec())
                .collect();
            assert_eq!(got, reference(&rows, count, depth, &w, columns));
        }
    }
}
