//! TRANSPOSE on quantized tensors (int8, uint8, int16, int32): LiteRT's `reference_ops::Transpose` moves
//! the codes unchanged (the output shares the input's parameters), `output[i_perm[0], ..] = input[i_0, ..]`
//! with `output dim k = input dim perm[k]`. Any rank; negative perm entries count from the end.

use super::{codes, from_codes, OpCtx};
use crate::interp::tensor::Tensor;

/// Resolves and checks a permutation of `rank` axes.
pub(crate) fn permutation(perm: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    if perm.len() != rank {
        return Err(format!(
            "perm {perm:?} has {} entries for a rank-{rank} input",
            perm.len()
        ));
    }
    let mut seen = vec![false; rank];
    perm.iter()
        .map(|&p| {
            let a = if p < 0 { p + rank as i64 } else { p };
            if a < 0 || a >= rank as i64 {
                return Err(format!("perm entry {p} is out of range for rank {rank}"));
            }
            let a = a as usize;
            if std::mem::replace(&mut seen[a], true) {
                return Err(format!("perm {perm:?} repeats axis {a}"));
            }
            Ok(a)
        })
        .collect()
}

/// `data` of `shape` permuted by `perm`: returns the output shape and elements.
pub(crate) fn permute<T: Copy>(
    data: &[T],
    shape: &[usize],
    perm: &[usize],
) -> (Vec<usize>, Vec<T>) {
    let rank = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    // Input strides, read in output-axis order.
    let mut strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * shape[k + 1];
    }
    let in_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..n {
        out.push(data[offset]);
        // Advance the output index like an odometer, tracking the input offset.
        for k in (0..rank).rev() {
            index[k] += 1;
            offset += in_strides[k];
            if index[k] < out_shape[k] {
                break;
            }
            offset -= in_strides[k] * out_shape[k];
            index[k] = 0;
        }
    }
    (out_shape, out)
}

/// The integer TRANSPOSE kernel.
pub(crate) fn transpose(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let perm = ctx
        .input(1)?
        .data
        .to_i64()
        .ok_or("perm is not an integer tensor")?;
    let perm = permutation(&perm, input.shape.len())?;
    let (shape, out) = permute(&codes(input)?, &input.shape, &perm);
    Ok(vec![from_codes(shape, ctx.output_type(0)?, out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_index_arithmetic() {
        let shape = [2, 3, 4];
        let data: Vec<i32> = (0..24).collect();
        let (s, out) = permute(&data, &shape, &[2, 0, 1]);
        assert_eq!(s, vec![4, 2, 3]);
        for a in 0..4 {
            for b in 0..2 {
                for c in 0..3 {
                    // out[a, b, c] = in[b, c, a]
                    assert_eq!(out[(a * 2 + b) * 3 + c], data[(b * 3 + c) * 4 + a]);
                }
            }
        }
    }

    #[test]
    fn bad_permutations_are_errors() {
        assert!(permutation(&[0, 0], 2).is_err());
        assert!(permutation(&[0], 2).is_err());
        assert_eq!(permutation(&[-1, 0], 2).unwrap(), vec![1, 0]);
    }
}
