//! Padding: PAD and PADV2 (a constant value) and MIRROR_PAD (REFLECT or SYMMETRIC).

use super::typed::{
    element_count, invalid, standard, to_dims, typed_input, with_element_type, Element,
};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, Axis, IxDyn, Slice};

/// The `[rank, 2]` paddings of input 1 as (before, after) pairs.
fn paddings(ctx: &OpContext<'_>, rank: usize) -> Result<Vec<(usize, usize)>, KernelError> {
    let p = ctx.input(1)?;
    let values = to_dims(&ctx.input_ints(1)?, "paddings")?;
    if p.shape() != [rank, 2] {
        return Err(invalid(format!(
            "paddings have shape {:?}, expected [{rank}, 2]",
            p.shape()
        )));
    }
    Ok(values.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

/// PAD / PADV2: surrounds the input with a constant (0, or PADV2's scalar input 2).
pub(crate) fn pad(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let pads = paddings(ctx, x.shape().len())?;
    let out = with_element_type!(x, T => {
        let a = typed_input::<T>(ctx, 0)?;
        let value = match ctx.inputs.get(2).copied().flatten() {
            Some(_) => {
                let v = typed_input::<T>(ctx, 2)?;
                if v.len() != 1 {
                    return Err(invalid(format!("PADV2 constant must be a scalar, it has shape {:?}", v.shape())));
                }
                v.first().copied().unwrap_or_default()
            }
            None => T::default(),
        };
        T::into_value(constant_pad(a, &pads, value)?)
    });
    Ok(vec![out])
}

pub(crate) fn constant_pad<T: Element>(
    a: &ArrayD<T>,
    pads: &[(usize, usize)],
    value: T,
) -> Result<ArrayD<T>, KernelError> {
    let shape: Vec<usize> = a
        .shape()
        .iter()
        .zip(pads)
        .map(|(&d, &(b, e))| d.checked_add(b).and_then(|v| v.checked_add(e)))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid("paddings too large"))?;
    element_count(&shape)?;
    let mut out = ArrayD::from_elem(IxDyn(&shape), value);
    out.slice_each_axis_mut(|ax| {
        let (before, _) = pads[ax.axis.index()];
        Slice::from(before..before + a.shape()[ax.axis.index()])
    })
    .assign(a);
    Ok(out)
}

/// MIRROR_PAD: pads with a mirror image of the input; REFLECT leaves out the edge element, SYMMETRIC
/// repeats it, so padding may be at most `dim - 1` (REFLECT) or `dim` (SYMMETRIC) per side.
pub(crate) fn mirror_pad(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let x = ctx.input(0)?;
    let pads = paddings(ctx, x.shape().len())?;
    let mode = ctx
        .operator()
        .builtin_options
        .as_mirror_pad_options()
        .map_or(fb::MirrorPadMode::REFLECT, |o| o.mode);
    let symmetric = match mode {
        fb::MirrorPadMode::REFLECT => false,
        fb::MirrorPadMode::SYMMETRIC => true,
        other => return Err(invalid(format!("unknown MIRROR_PAD mode {}", other.0))),
    };
    for (&d, &(b, e)) in x.shape().iter().zip(&pads) {
        let limit = if symmetric { d } else { d.saturating_sub(1) };
        if b > limit || e > limit {
            return Err(invalid(format!(
                "MIRROR_PAD paddings {pads:?} exceed what a dim of {d} can mirror"
            )));
        }
    }
    let out = with_element_type!(x, T => {
        let mut out = typed_input::<T>(ctx, 0)?.clone();
        for (axis, &(before, after)) in pads.iter().enumerate() {
            if before == 0 && after == 0 {
                continue;
            }
            let d = out.shape()[axis] as i64;
            let source: Vec<usize> = (-(before as i64)..d + after as i64)
                .map(|i| {
                    let mirrored = if i < 0 {
                        if symmetric { -i - 1 } else { -i }
                    } else if i >= d {
                        if symmetric { 2 * d - 1 - i } else { 2 * d - 2 - i }
                    } else {
                        i
                    };
                    mirrored as usize
                })
                .collect();
            let selected = out.select(Axis(axis), &source);
            out = if selected.is_standard_layout() { selected } else { standard(selected.view()) };
        }
        T::into_value(out)
    });
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::super::single_op::{f32_data, f32s, i32s, i64s, SingleOp};
    use crate::tflite::fb::{self, BuiltinOperator as Op};

    #[test]
    fn pad_surrounds_with_zeros() {
        let x = f32s(&[2, 2], &[1., 2., 3., 4.]);
        let out = SingleOp::new(Op::PAD).run1(&[x, i32s(&[2, 2], &[1, 0, 0, 2])]);
        assert_eq!(
            f32_data(&out),
            (
                vec![3, 4],
                vec![0., 0., 0., 0., 1., 2., 0., 0., 3., 4., 0., 0.]
            )
        );
    }

    #[test]
    fn padv2_uses_the_constant_value() {
        let x = f32s(&[2], &[1., 2.]);
        let out = SingleOp::new(Op::PADV2).run1(&[x, i64s(&[1, 2], &[1, 1]), f32s(&[], &[-9.])]);
        assert_eq!(f32_data(&out).1, vec![-9., 1., 2., -9.]);
    }

    #[test]
    fn pad_rejects_negative_or_misshaped_paddings() {
        let x = f32s(&[2], &[1., 2.]);
        assert!(SingleOp::new(Op::PAD)
            .run(&[x.clone(), i32s(&[1, 2], &[-1, 0])])
            .is_err());
        assert!(SingleOp::new(Op::PAD)
            .run(&[x, i32s(&[2, 2], &[0, 0, 0, 0])])
            .is_err());
    }

    fn mirror(mode: fb::MirrorPadMode) -> SingleOp {
        SingleOp::new(Op::MIRROR_PAD).options(fb::BuiltinOptionsT::MirrorPadOptions(Box::new(
            fb::MirrorPadOptionsT { mode },
        )))
    }

    #[test]
    fn mirror_pad_reflect_skips_the_edge_and_symmetric_repeats_it() {
        let x = f32s(&[3], &[1., 2., 3.]);
        let p = i32s(&[1, 2], &[2, 2]);
        let reflect = mirror(fb::MirrorPadMode::REFLECT).run1(&[x.clone(), p.clone()]);
        assert_eq!(f32_data(&reflect).1, vec![3., 2., 1., 2., 3., 2., 1.]);
        let symmetric = mirror(fb::MirrorPadMode::SYMMETRIC).run1(&[x.clone(), p]);
        assert_eq!(f32_data(&symmetric).1, vec![2., 1., 1., 2., 3., 3., 2.]);
        assert!(mirror(fb::MirrorPadMode::REFLECT)
            .run(&[x, i32s(&[1, 2], &[3, 0])])
            .is_err());
    }

    #[test]
    fn mirror_pad_works_on_every_axis() {
        let x = f32s(&[2, 2], &[1., 2., 3., 4.]);
        let out = mirror(fb::MirrorPadMode::SYMMETRIC).run1(&[x, i32s(&[2, 2], &[1, 0, 0, 1])]);
        assert_eq!(
            f32_data(&out),
            (vec![3, 3], vec![1., 2., 2., 1., 2., 2., 3., 4., 4.])
        );
    }
}
