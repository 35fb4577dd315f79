//! SVDF: a fully connected layer factored in time (a feature projection into a memory of the last
//! `memory_size` activations per filter, then time weights), as LiteRT's reference `EvalFloatSVDF` and,
//! with int8 weights (dynamic mode), `EvalHybridSVDF`: the input quantized per batch row times the int8
//! feature weights in int32, the time weights dequantized, the rest float. One body serves the float kernel
//! and the interpreter's hybrid kernel ([`RecurrentInputs`]).

use super::kernel_args::array;
use super::recurrent::cell::{activate, FloatOutput, InputQuantization, Operand, RecurrentInputs};
use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;

fn dims2(shape: Option<&[usize]>, what: &str) -> Result<(usize, usize), KernelError> {
    match shape {
        Some(&[r, c]) => Ok((r, c)),
        other => Err(KernelError::Invalid(format!(
            "{what} must be 2-D, got shape {other:?}"
        ))),
    }
}

/// SVDF: input `[batch, input_size]`, weights_feature `[filters, input_size]`, weights_time
/// `[filters, memory]`, optional bias `[units]` (`units = filters / rank`), state `[batch, memory * filters]`
/// (a variable tensor: the model's initial state, zero unless its buffer says otherwise).
pub(crate) fn eval<'a>(
    ins: &impl RecurrentInputs<'a>,
    options: &fb::BuiltinOptionsT,
) -> Result<FloatOutput, KernelError> {
    let fb::BuiltinOptionsT::SVDFOptions(o) = options else {
        return Err(KernelError::Invalid("SVDF without SVDFOptions".into()));
    };
    let (batch, input_size) = dims2(ins.shape(0), "the input")?;
    let (filters, wf_cols) = dims2(ins.shape(1), "weights_feature")?;
    let (wt_rows, memory) = dims2(ins.shape(2), "weights_time")?;
    let rank = usize::try_from(o.rank)
        .ok()
        .filter(|&r| r > 0 && filters % r == 0)
        .ok_or_else(|| {
            KernelError::Invalid(format!("rank {} does not divide {filters} filters", o.rank))
        })?;
    if wf_cols != input_size || wt_rows != filters || memory == 0 {
        return Err(KernelError::Invalid(format!(
            "weights_feature {:?} and weights_time {:?} do not fit the input {:?}",
            ins.shape(1),
            ins.shape(2),
            ins.shape(0)
        )));
    }
    let units = filters / rank;
    let x = ins.required_floats(0)?;
    let wf = ins.required_weights(1)?;
    // LiteRT dequantizes int8 time weights once and applies them in float.
    let wt = ins.required_weights(2)?.to_f32();
    let bias = ins.float_vector(3)?;
    if let Some(b) = bias.filter(|b| b.len() != units) {
        return Err(KernelError::Invalid(format!(
            "the bias has {} values, expected {units}",
            b.len()
        )));
    }
    let mut state = ins.state(4, batch * memory * filters)?;
    // Shift the whole state left by one; each filter's newest slot is overwritten below.
    state.copy_within(1.., 0);
    let quantize = InputQuantization::of(wf.is_int8(), o.asymmetric_quantize_inputs);
    for b in 0..batch {
        let xb = Operand::new(&x[b * input_size..(b + 1) * input_size], quantize);
        for f in 0..filters {
            state[(b * filters + f) * memory + memory - 1] = wf.row_dot(f, input_size, &xb);
        }
    }
    let mut values = vec![0f32; batch * units];
    for b in 0..batch {
        for u in 0..units {
            let mut acc = 0f32;
            for r in 0..rank {
                let f = u * rank + r;
                let row = &state[(b * filters + f) * memory..(b * filters + f + 1) * memory];
                acc += row
                    .iter()
                    .zip(&wt[f * memory..(f + 1) * memory])
                    .map(|(s, w)| s * w)
                    .sum::<f32>();
            }
            let v = acc + bias.map_or(0.0, |bv| bv[u]);
            values[b * units + u] = activate(v, o.fused_activation_function);
        }
    }
    Ok(FloatOutput {
        shape: vec![batch, units],
        values,
    })
}

/// SVDF (float).
pub(crate) fn svdf(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let out = eval(ctx, &ctx.operator().builtin_options)?;
    Ok(vec![Value::F32(array(&out.shape, out.values)?)])
}
