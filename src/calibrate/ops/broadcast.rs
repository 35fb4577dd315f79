//! NumPy-style broadcasting for element-wise ops, with contiguous fast paths for the common cases.

use super::typed::{element_count, from_shape_vec, invalid};
use crate::calibrate::KernelError;
use ndarray::{ArrayD, IxDyn, Zip};

/// The broadcast shape of two shapes: aligned from the last dimension, each pair equal or one of them 1.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(invalid(format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

/// Applies `f` to every pair of broadcast elements of `a` and `b`; the result is row-major.
pub(crate) fn broadcast_map<A, B, O>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> O,
) -> Result<ArrayD<O>, KernelError>
where
    A: Copy,
    B: Copy,
    O: Copy + Default,
{
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            let data = x.iter().zip(y).map(|(&x, &y)| f(x, y)).collect();
            return from_shape_vec(a.shape(), data);
        }
    }
    let shape = broadcast_shape(a.shape(), b.shape())?;
    // One side a single value (a scalar constant, say): a plain map over the other side.
    if let (Some(x), true, Some(&y)) = (a.as_slice(), b.len() == 1 && shape == a.shape(), b.first())
    {
        return from_shape_vec(&shape, x.iter().map(|&x| f(x, y)).collect());
    }
    if let (Some(y), true, Some(&x)) = (b.as_slice(), a.len() == 1 && shape == b.shape(), a.first())
    {
        return from_shape_vec(&shape, y.iter().map(|&y| f(x, y)).collect());
    }
    element_count(&shape)?;
    // One side repeats along leading dims only ([N, H, W, C] with [C], say): zip each row with it.
    if let (Some(x), Some(y), true) = (
        a.as_slice(),
        b.as_slice(),
        shape == a.shape() && is_row(b.shape(), &shape),
    ) {
        let mut data = Vec::with_capacity(x.len());
        for row in x.chunks_exact(y.len().max(1)) {
            data.extend(row.iter().zip(y).map(|(&x, &y)| f(x, y)));
        }
        return from_shape_vec(&shape, data);
    }
    if let (Some(x), Some(y), true) = (
        a.as_slice(),
        b.as_slice(),
        shape == b.shape() && is_row(a.shape(), &shape),
    ) {
        let mut data = Vec::with_capacity(y.len());
        for row in y.chunks_exact(x.len().max(1)) {
            data.extend(x.iter().zip(row).map(|(&x, &y)| f(x, y)));
        }
        return from_shape_vec(&shape, data);
    }
    if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
        return from_shape_vec(
            &shape,
            broadcast_rows(x, a.shape(), y, b.shape(), &shape, &f),
        );
    }
    let not_broadcast = || {
        invalid(format!(
            "shapes {:?} and {:?} do not broadcast",
            a.shape(),
            b.shape()
        ))
    };
    let av = a.broadcast(IxDyn(&shape)).ok_or_else(not_broadcast)?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or_else(not_broadcast)?;
    let mut out = ArrayD::from_elem(IxDyn(&shape), O::default());
    Zip::from(&mut out)
        .and(&av)
        .and(&bv)
        .for_each(|o, &x, &y| *o = f(x, y));
    Ok(out)
}

/// Row-major strides of `dims` seen from a broadcast `shape`: 0 where the dim repeats or is missing.
fn broadcast_strides(dims: &[usize], shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let offset = shape.len() - dims.len();
    let mut step = 1;
    for k in (0..dims.len()).rev() {
        if dims[k] != 1 {
            strides[k + offset] = step;
        }
        step *= dims[k];
    }
    strides
}

/// The general broadcast over row-major data, one output row (last dim) at a time: an odometer over the
/// leading dims tracks where each input's row starts, and the inner loop reads each input contiguously or
/// repeats its single element.
fn broadcast_rows<A: Copy, B: Copy, O: Copy>(
    x: &[A],
    x_dims: &[usize],
    y: &[B],
    y_dims: &[usize],
    shape: &[usize],
    f: &impl Fn(A, B) -> O,
) -> Vec<O> {
    let total: usize = shape.iter().product();
    let mut data = Vec::with_capacity(total);
    let Some((&inner, outer_dims)) = shape.split_last() else {
        if let (Some(&x), Some(&y)) = (x.first(), y.first()) {
            data.push(f(x, y));
        }
        return data;
    };
    if total == 0 {
        return data;
    }
    let xs = broadcast_strides(x_dims, shape);
    let ys = broadcast_strides(y_dims, shape);
    let (x_inner, y_inner) = (xs[shape.len() - 1], ys[shape.len() - 1]);
    let mut index = vec![0usize; outer_dims.len()];
    let (mut xo, mut yo) = (0usize, 0usize);
    loop {
        match (x_inner, y_inner) {
            (1, 1) => data.extend(
                x[xo..xo + inner]
                    .iter()
                    .zip(&y[yo..yo + inner])
                    .map(|(&a, &b)| f(a, b)),
            ),
            (1, _) => data.extend(x[xo..xo + inner].iter().map(|&a| f(a, y[yo]))),
            (_, 1) => data.extend(y[yo..yo + inner].iter().map(|&b| f(x[xo], b))),
            _ => data.extend(std::iter::repeat_n(f(x[xo], y[yo]), inner)),
        }
        // Advance the odometer over the leading dims, moving each input's row start along.
        let mut k = outer_dims.len();
        loop {
            if k == 0 {
                return data;
            }
            k -= 1;
            index[k] += 1;
            xo += xs[k];
            yo += ys[k];
            if index[k] < outer_dims[k] {
                break;
            }
            xo -= xs[k] * outer_dims[k];
            yo -= ys[k] * outer_dims[k];
            index[k] = 0;
        }
    }
}

/// Whether `small` broadcasts to `full` by repetition along leading dims only: after dropping its leading
/// 1s, it equals the trailing dims of `full`.
fn is_row(small: &[usize], full: &[usize]) -> bool {
    let trimmed = &small[small.iter().position(|&d| d != 1).unwrap_or(small.len())..];
    !trimmed.is_empty() && full.ends_with(trimmed)
}

/// The broadcast shape of three shapes (SELECT_V2).
pub(crate) fn broadcast_shape3(
    a: &[usize],
    b: &[usize],
    c: &[usize],
) -> Result<Vec<usize>, KernelError> {
    broadcast_shape(&broadcast_shape(a, b)?, c)
        .map_err(|_| invalid(format!("shapes {a:?}, {b:?} and {c:?} do not broadcast")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes_broadcast_from_the_last_dimension() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast_shape(&[], &[5]).unwrap(), vec![5]);
        assert_eq!(broadcast_shape(&[1, 0], &[3, 1]).unwrap(), vec![3, 0]);
        assert!(broadcast_shape(&[2, 3], &[4, 3]).is_err());
    }

    #[test]
    fn a_middle_dimension_broadcasts_row_by_row() {
        let a =
            ArrayD::from_shape_vec(IxDyn(&[2, 2, 3]), (0..12).map(|v| v as f32).collect()).unwrap();
        let b = ArrayD::from_shape_vec(IxDyn(&[2, 1, 3]), vec![100., 200., 300., 400., 500., 600.])
            .unwrap();
        let out = broadcast_map(&a, &b, |x, y| x + y).unwrap();
        let want = [
            100., 201., 302., 103., 204., 305., 406., 507., 608., 409., 510., 611.,
        ];
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), want);
        let column_major = a.t().as_standard_layout().into_owned().reversed_axes();
        assert_eq!(broadcast_map(&column_major, &b, |x, y| x + y).unwrap(), out);
    }

    /// Two broadcast-compatible shapes: each dimension of `b` equals `a`'s, or one of them is 1.
    fn compatible_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (prop::collection::vec((1usize..4, 0u8..3), 0..5), 0usize..5).prop_map(|(dims, drop)| {
            let a: Vec<usize> = dims
                .iter()
                .map(|&(d, k)| if k == 1 { 1 } else { d })
                .collect();
            let b: Vec<usize> = dims
                .iter()
                .map(|&(d, k)| if k == 2 { 1 } else { d })
                .collect();
            let drop = drop.min(b.len());
            (a, b[drop..].to_vec())
        })
    }

    fn f64_reference_add(a: &ArrayD<f32>, b: &ArrayD<f32>, shape: &[usize]) -> Vec<f64> {
        let n: usize = shape.iter().product();
        let index_of = |s: &[usize], coords: &[usize]| {
            let offset = shape.len() - s.len();
            s.iter().enumerate().fold(0usize, |idx, (k, &d)| {
                idx * d + if d == 1 { 0 } else { coords[k + offset] }
            })
        };
        let av: Vec<f32> = a.iter().copied().collect();
        let bv: Vec<f32> = b.iter().copied().collect();
        (0..n)
            .map(|flat| {
                let mut coords = vec![0; shape.len()];
                let mut rest = flat;
                for k in (0..shape.len()).rev() {
                    coords[k] = rest % shape[k];
                    rest /= shape[k];
                }
                f64::from(av[index_of(a.shape(), &coords)])
                    + f64::from(bv[index_of(b.shape(), &coords)])
            })
            .collect()
    }

    proptest! {
        #[test]
        fn broadcasting_add_equals_f64_reference(
            (sa, sb) in compatible_shapes(),
            swap in any::<bool>(),
            column_major in any::<bool>(),
            seed in prop::collection::vec(-1000.0f32..1000.0, 64),
        ) {
            let (sa, sb) = if swap { (sb, sa) } else { (sa, sb) };
            let fill = |s: &[usize], k: usize| {
                let n: usize = s.iter().product();
                ArrayD::from_shape_vec(IxDyn(s), (0..n).map(|i| seed[(i * 7 + k) % seed.len()]).collect()).unwrap()
            };
            let (a, b) = (fill(&sa, 0), fill(&sb, 3));
            // Column-major storage of the same logical array takes the general (non-contiguous) path.
            let a = if column_major { a.t().as_standard_layout().into_owned().reversed_axes() } else { a };
            let out = broadcast_map(&a, &b, |x, y| x + y).unwrap();
            let shape = broadcast_shape(&sa, &sb).unwrap();
            prop_assert_eq!(out.shape(), shape.as_slice());
            let reference = f64_reference_add(&a, &b, &shape);
            for (&got, &want) in out.iter().zip(&reference) {
                prop_assert!((f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} vs {want}");
            }
        }
    }
}
