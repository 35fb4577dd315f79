//! SVDF: a fully connected layer factored in time (a feature projection into a memory of the last
//! `memory_size` activations per filter, then time weights), as LiteRT's reference `EvalFloatSVDF`.

use super::apply_fused_activation;
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, IxDyn};

fn dims2(a: &ArrayD<f32>, what: &str) -> Result<(usize, usize), KernelError> {
    match a.shape() {
        &[r, c] => Ok((r, c)),
        other => Err(KernelError::Invalid(format!(
            "{what} must be 2-D, got shape {other:?}"
        ))),
    }
}

/// SVDF: input `[batch, input_size]`, weights_feature `[filters, input_size]`, weights_time
/// `[filters, memory]`, optional bias `[units]` (`units = filters / rank`), state `[batch, memory * filters]`
/// (a variable tensor: the model's initial state, zero unless its buffer says otherwise).
pub(crate) fn svdf(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let fb::BuiltinOptionsT::SVDFOptions(o) = &ctx.operator().builtin_options else {
        return Err(KernelError::Invalid("SVDF without SVDFOptions".into()));
    };
    let x = ctx.input_f32(0)?;
    let wf = ctx.input_f32(1)?;
    let wt = ctx.input_f32(2)?;
    let (batch, input_size) = dims2(x, "the input")?;
    let (filters, wf_cols) = dims2(wf, "weights_feature")?;
    let (wt_rows, memory) = dims2(wt, "weights_time")?;
    let rank = usize::try_from(o.rank)
        .ok()
        .filter(|&r| r > 0 && filters % r == 0)
        .ok_or_else(|| {
            KernelError::Invalid(format!("rank {} does not divide {filters} filters", o.rank))
        })?;
    if wf_cols != input_size || wt_rows != filters || memory == 0 {
        return Err(KernelError::Invalid(format!(
            "weights_feature {:?} and weights_time {:?} do not fit the input {:?}",
            wf.shape(),
            wt.shape(),
            x.shape()
        )));
    }
    let units = filters / rank;
    let bias: Option<Vec<f32>> = match ctx.inputs.get(3).copied().flatten() {
        Some(Value::F32(b)) if b.len() == units => Some(b.iter().copied().collect()),
        Some(other) => {
            return Err(KernelError::Invalid(format!(
                "the bias must be {units} float32 values, got {} of shape {:?}",
                other.type_name(),
                other.shape()
            )))
        }
        None => None,
    };
    let n_state = batch * memory * filters;
    let mut state: Vec<f32> = match ctx.inputs.get(4).copied().flatten() {
        Some(Value::F32(s)) if s.len() == n_state => s.iter().copied().collect(),
        Some(other) => {
            return Err(KernelError::Invalid(format!(
                "the state must be {n_state} float32 values, got {} of shape {:?}",
                other.type_name(),
                other.shape()
            )))
        }
        None => vec![0.0; n_state],
    };
    // Shift the whole state left by one; each filter's newest slot is overwritten below.
    state.copy_within(1.., 0);
    let xs: Vec<f32> = x.iter().copied().collect();
    let wfs: Vec<f32> = wf.iter().copied().collect();
    let wts: Vec<f32> = wt.iter().copied().collect();
    for b in 0..batch {
        for f in 0..filters {
            let dot: f32 = (0..input_size)
                .map(|c| wfs[f * input_size + c] * xs[b * input_size + c])
                .sum();
            state[(b * filters + f) * memory + memory - 1] = dot;
        }
    }
    let mut out = vec![0f32; batch * units];
    for b in 0..batch {
        for u in 0..units {
            let mut acc = 0f32;
            for r in 0..rank {
                let f = u * rank + r;
                let row = &state[(b * filters + f) * memory..(b * filters + f + 1) * memory];
                acc += row
                    .iter()
                    .zip(&wts[f * memory..(f + 1) * memory])
                    .map(|(s, w)| s * w)
                    .sum::<f32>();
            }
            out[b * units + u] = acc + bias.as_ref().map_or(0.0, |bv| bv[u]);
        }
    }
    let mut out = ArrayD::from_shape_vec(IxDyn(&[batch, units]), out)
        .map_err(|e| KernelError::Invalid(e.to_string()))?;
    apply_fused_activation(&mut out, o.fused_activation_function);
    Ok(vec![Value::F32(out)])
}
