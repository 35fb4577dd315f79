//! DEQUANTIZE and QUANTIZE, and the affine mapping `real = (q - zero_point) * scale` they share with the
//! interpreter's constant loader.
//!
//! Quantized integer tensors travel through the float interpreter as INT32 codes; quantized constants are
//! decoded to their real values when the model is loaded, so DEQUANTIZE of a constant is a copy.

use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;
use ndarray::{ArrayD, IxDyn};

/// A tensor's affine quantization: one scale (per tensor) or one per slice of `axis`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AffineParams {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    pub axis: usize,
}

impl AffineParams {
    /// Scale and zero point of each element's slice, as a closure over the flat (row-major) index.
    fn per_element<'a>(
        &'a self,
        shape: &[usize],
    ) -> Result<impl Fn(usize) -> (f32, i64) + 'a, String> {
        let channels = self.scales.len();
        let inner: usize = if channels > 1 {
            if shape.get(self.axis) != Some(&channels) {
                return Err(format!(
                    "{channels} scales on axis {} do not fit shape {shape:?}",
                    self.axis
                ));
            }
            shape[self.axis + 1..].iter().product()
        } else {
            1
        };
        if !(self.zero_points.len() <= 1 || self.zero_points.len() == channels) {
            return Err(format!(
                "{} zero points for {channels} scales",
                self.zero_points.len()
            ));
        }
        Ok(move |i: usize| {
            let c = if channels > 1 {
                (i / inner.max(1)) % channels
            } else {
                0
            };
            let zp = match self.zero_points.len() {
                0 => 0,
                1 => self.zero_points[0],
                _ => self.zero_points[c],
            };
            (self.scales[c], zp)
        })
    }
}

/// The affine parameters of a tensor, if it has scales.
pub(crate) fn affine_params(q: Option<&fb::QuantizationParametersT>) -> Option<AffineParams> {
    let q = q?;
    let scales = q.scale.clone().filter(|s| !s.is_empty())?;
    Some(AffineParams {
        scales,
        zero_points: q.zero_point.clone().unwrap_or_default(),
        axis: usize::try_from(q.quantized_dimension).unwrap_or(0),
    })
}

/// Real values of integer codes: `(q - zero_point) * scale`, per tensor or per slice.
pub(crate) fn dequantize_codes(
    codes: &[i32],
    shape: &[usize],
    params: &AffineParams,
) -> Result<ArrayD<f32>, String> {
    let at = params.per_element(shape)?;
    let values = codes
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let (scale, zp) = at(i);
            scale * (i64::from(q) - zp) as f32
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| e.to_string())
}

fn params_of_input(ctx: &OpContext<'_>, i: usize) -> Result<AffineParams, KernelError> {
    let t = ctx
        .graph
        .op_inputs(ctx.op)
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| KernelError::Invalid(format!("missing input {i}")))?;
    affine_params(ctx.graph.tensor(t).quantization.as_deref()).ok_or_else(|| {
        KernelError::Invalid(format!(
            "input {:?} has no quantization scale",
            ctx.graph.tensor_name(t)
        ))
    })
}

fn codes_to_real(ctx: &OpContext<'_>, codes: &ArrayD<i32>) -> Result<ArrayD<f32>, KernelError> {
    let params = params_of_input(ctx, 0)?;
    let standard = codes.as_standard_layout();
    let flat = standard.as_slice().unwrap_or(&[]);
    dequantize_codes(flat, codes.shape(), &params).map_err(KernelError::Invalid)
}

pub(crate) fn dequantize(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    match ctx.input(0)? {
        // Constants (FLOAT16, int8 with scale) were decoded at load time.
        Value::F32(a) => Ok(vec![Value::F32(a.clone())]),
        Value::I32(codes) => Ok(vec![Value::F32(codes_to_real(ctx, codes)?)]),
        other => Err(KernelError::Invalid(format!(
            "cannot dequantize a {} tensor",
            other.type_name()
        ))),
    }
}

pub(crate) fn quantize(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let real = match ctx.input(0)? {
        Value::F32(a) => a.as_standard_layout().into_owned(),
        // int -> int QUANTIZE requantizes: through the real value.
        Value::I32(codes) => codes_to_real(ctx, codes)?,
        other => {
            return Err(KernelError::Invalid(format!(
                "cannot quantize a {} tensor",
                other.type_name()
            )))
        }
    };
    let out = ctx.graph.op_outputs(ctx.op);
    let t = *out
        .first()
        .ok_or_else(|| KernelError::Invalid("QUANTIZE has no output".into()))?;
    let params = affine_params(ctx.graph.tensor(t).quantization.as_deref()).ok_or_else(|| {
        KernelError::Invalid(format!(
            "output {:?} has no quantization scale",
            ctx.graph.tensor_name(t)
        ))
    })?;
    let (lo, hi): (i64, i64) = match ctx.graph.tensor(t).type_ {
        fb::TensorType::INT8 => (-128, 127),
        fb::TensorType::UINT8 => (0, 255),
        fb::TensorType::INT16 => (-32768, 32767),
        fb::TensorType::INT32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        other => {
            return Err(KernelError::Invalid(format!(
                "QUANTIZE to {} is not supported",
                crate::tflite::type_name(other)
            )))
        }
    };
    let at = params
        .per_element(real.shape())
        .map_err(KernelError::Invalid)?;
    let flat = real.as_slice().unwrap_or(&[]);
    let codes: Vec<i32> = flat
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let (scale, zp) = at(i);
            // TFLite rounds half away from zero, as f32::round does; the cast saturates on overflow.
            let q = ((x / scale).round() as i64).saturating_add(zp);
            q.clamp(lo, hi) as i32
        })
        .collect();
    let codes = ArrayD::from_shape_vec(IxDyn(real.shape()), codes)
        .map_err(|e| KernelError::Invalid(e.to_string()))?;
    Ok(vec![Value::I32(codes)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_axis_dequantize_uses_each_slice_scale_and_zero_point() {
        let params = AffineParams {
            scales: vec![0.5, 2.0],
            zero_points: vec![0, 1],
            axis: 1,
        };
        let real = dequantize_codes(&[2, 3, 4, 5], &[2, 2], &params).unwrap();
        assert_eq!(real.as_slice().unwrap(), &[1.0, 4.0, 2.0, 8.0]);
    }

    #[test]
    fn per_tensor_dequantize_applies_zero_point() {
        let params = AffineParams {
            scales: vec![0.25],
            zero_points: vec![-128],
            axis: 0,
        };
        let real = dequantize_codes(&[-128, 0, 127], &[3], &params).unwrap();
        assert_eq!(real.as_slice().unwrap(), &[0.0, 32.0, 63.75]);
    }

    #[test]
    fn per_axis_scales_must_match_the_axis() {
        let params = AffineParams {
            scales: vec![1.0, 1.0, 1.0],
            zero_points: vec![0],
            axis: 0,
        };
        assert!(dequantize_codes(&[1, 2], &[2], &params).is_err());
    }
}
