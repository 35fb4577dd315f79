//! Scale and zero point: from calibrated ranges to [`QuantParams`], and values to integers.
//!
//! The arithmetic follows TFLite's legacy quantizer (`quantization_utils.cc`): float32 throughout, the range
//! widened to include 0, `scale = (max - min) / (qmax - qmin)`, `zero_point = round(qmin - min / scale)` clamped.

use crate::tflite::fb;

/// The integer type of quantized activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ActivationType {
    /// int8, asymmetric in [-128, 127] (int8 mode).
    Int8,
    /// int16, symmetric in [-32767, 32767], zero point 0 (int16x8 mode).
    Int16,
}

impl ActivationType {
    /// The flatbuffer tensor type.
    pub fn tensor_type(self) -> fb::TensorType {
        match self {
            ActivationType::Int8 => fb::TensorType::INT8,
            ActivationType::Int16 => fb::TensorType::INT16,
        }
    }

    /// The integer range `(qmin, qmax)` of the storage type.
    pub fn range(self) -> (i64, i64) {
        match self {
            ActivationType::Int8 => (-128, 127),
            ActivationType::Int16 => (-32768, 32767),
        }
    }

    /// Suffix TF gives the integer tensor of a model input or output (`x:0_int8`).
    pub fn suffix(self) -> &'static str {
        match self {
            ActivationType::Int8 => "_int8",
            ActivationType::Int16 => "_int16",
        }
    }

    /// Activation params of this type for a calibrated range.
    pub fn params_for_range(self, min: f32, max: f32) -> Result<QuantParams, ParamsError> {
        match self {
            ActivationType::Int8 => asymmetric_int8(min, max),
            ActivationType::Int16 => symmetric(min, max, 32767),
        }
    }
}

/// Why quantization parameters could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A range bound or scale is NaN or infinite.
    #[error("range [{min}, {max}] is not finite")]
    NotFinite {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// A scale is not strictly positive and finite.
    #[error("scale {0} is not a positive finite number")]
    BadScale(f32),
    /// Scale and zero point lists differ in length, or are empty.
    #[error("{scales} scales but {zero_points} zero points")]
    CountMismatch {
        /// Number of scales.
        scales: usize,
        /// Number of zero points.
        zero_points: usize,
    },
}

/// Valid quantization parameters of one tensor: `real = (q - zero_point) * scale`.
///
/// Invariants: at least one scale, as many zero points as scales, every scale positive and finite.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantParams {
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    quantized_dimension: i32,
}

impl QuantParams {
    /// Per-tensor parameters.
    pub fn per_tensor(scale: f32, zero_point: i64) -> Result<QuantParams, ParamsError> {
        QuantParams::per_axis(vec![scale], vec![zero_point], 0)
    }

    /// Per-axis parameters along `quantized_dimension` (one scale per slice).
    pub fn per_axis(
        scale: Vec<f32>,
        zero_point: Vec<i64>,
        quantized_dimension: i32,
    ) -> Result<QuantParams, ParamsError> {
        if scale.is_empty() || scale.len() != zero_point.len() {
            return Err(ParamsError::CountMismatch {
                scales: scale.len(),
                zero_points: zero_point.len(),
            });
        }
        if let Some(&bad) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(ParamsError::BadScale(bad));
        }
        Ok(QuantParams {
            scale,
            zero_point,
            quantized_dimension,
        })
    }

    /// Reads parameters from a tensor's quantization table, if it holds valid ones.
    pub fn from_fb(q: &fb::QuantizationParametersT) -> Option<QuantParams> {
        let scale = q.scale.clone()?;
        let zero_point = q.zero_point.clone()?;
        QuantParams::per_axis(scale, zero_point, q.quantized_dimension).ok()
    }

    /// The scales (one, or one per slice).
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// The zero points (as many as scales).
    pub fn zero_point(&self) -> &[i64] {
        &self.zero_point
    }

    /// The axis of per-axis parameters (0 for per-tensor ones).
    pub fn quantized_dimension(&self) -> i32 {
        self.quantized_dimension
    }

    /// Whether there is one scale for the whole tensor.
    pub fn is_per_tensor(&self) -> bool {
        self.scale.len() == 1
    }

    /// The same parameters with every zero point shifted by `delta` (int8 -> uint8 is +128).
    pub fn shifted(&self, delta: i64) -> QuantParams {
        QuantParams {
            scale: self.scale.clone(),
            zero_point: self.zero_point.iter().map(|z| z + delta).collect(),
            quantized_dimension: self.quantized_dimension,
        }
    }

    /// The flatbuffer quantization table (scales and zero points only, like TF's converter writes).
    pub fn to_fb(&self) -> fb::QuantizationParametersT {
        fb::QuantizationParametersT {
            scale: Some(self.scale.clone()),
            zero_point: Some(self.zero_point.clone()),
            quantized_dimension: self.quantized_dimension,
            ..Default::default()
        }
    }

    /// Quantizes one value of slice `channel` into `[qmin, qmax]`, rounding half away from zero.
    pub fn quantize_value(&self, value: f32, channel: usize, qmin: i64, qmax: i64) -> i64 {
        let c = channel.min(self.scale.len() - 1);
        let q = (value / self.scale[c]).round() as i64 + self.zero_point[c];
        q.clamp(qmin, qmax)
    }
}

/// Asymmetric int8 activation params for a calibrated range (`GetAsymmetricQuantizationParams`).
///
/// The range is widened to include 0 so that zero (padding, ReLU) is exact. An empty range (all values 0)
/// gets scale 1 and zero point -128, like TF's MLIR quantizer, since a zero scale would not load.
pub fn asymmetric_int8(min: f32, max: f32) -> Result<QuantParams, ParamsError> {
    if !(min.is_finite() && max.is_finite()) {
        return Err(ParamsError::NotFinite { min, max });
    }
    let (qmin, qmax) = (-128.0f32, 127.0f32);
    let min = min.min(0.0);
    let max = max.max(0.0);
    let scale = (max - min) / (qmax - qmin);
    if !(scale > 0.0 && scale.is_finite()) {
        return QuantParams::per_tensor(1.0, -128);
    }
    let zero_point_from_min = (qmin - min / scale).clamp(qmin, qmax);
    QuantParams::per_tensor(scale, zero_point_from_min.round() as i64)
}

/// Symmetric params (zero point 0) with `scale = max(|min|, |max|) / half_range`.
///
/// `half_range` is 32767 for int16 activations and 127 for int8 weights. An all-zero range gets the scale
/// of a range of 1, so the tensor still loads.
pub fn symmetric(min: f32, max: f32, half_range: i64) -> Result<QuantParams, ParamsError> {
    if !(min.is_finite() && max.is_finite()) {
        return Err(ParamsError::NotFinite { min, max });
    }
    let bound = min.abs().max(max.abs());
    let scale = bound / half_range as f32;
    if !(scale > 0.0 && scale.is_finite()) {
        return QuantParams::per_tensor(1.0 / half_range as f32, 0);
    }
    QuantParams::per_tensor(scale, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// TF's `GetAsymmetricQuantizationParams` (`tflite/tools/optimize/quantization_utils.cc`), step by step
    /// in float32 as it runs: widen to include 0, `scale = (max - min) / 255`, the zero point "nudged" from
    /// `qmin - min / scale` (clamped, then `std::round`: half away from zero).
    fn tf_asymmetric(min: f32, max: f32) -> (f32, i64) {
        let (qmin, qmax) = (-128.0f32, 127.0f32);
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = (max - min) / (qmax - qmin);
        let from_min = if scale != 0.0 {
            qmin - min / scale
        } else {
            qmin
        };
        let zp = if from_min < qmin {
            -128
        } else if from_min > qmax {
            127
        } else {
            from_min.round() as i64
        };
        (scale, zp)
    }

    /// Range bounds: arbitrary floats, and multiples of 1/16 (where `qmin - min / scale` often lands on a
    /// half, and a float64 or MLIR-style computation would round the other way).
    fn bound() -> impl Strategy<Value = f32> {
        prop_oneof![-1e4f32..1e4, (-4000i32..4000).prop_map(|k| k as f32 / 16.0)]
    }

    proptest! {
        #[test]
        fn asymmetric_int8_is_tf_formula_exactly(a in bound(), b in bound()) {
            let (min, max) = if a <= b { (a, b) } else { (b, a) };
            prop_assume!(max.max(0.0) - min.min(0.0) > 0.0);
            let p = asymmetric_int8(min, max).unwrap();
            let (scale, zp) = tf_asymmetric(min, max);
            prop_assert_eq!(p.scale()[0].to_bits(), scale.to_bits(), "scale of [{}, {}]", min, max);
            prop_assert_eq!(p.zero_point()[0], zp, "zero point of [{}, {}]", min, max);
        }

        #[test]
        fn asymmetric_int8_represents_zero_exactly(a in -1e3f32..1e3, b in -1e3f32..1e3) {
            let (min, max) = if a <= b { (a, b) } else { (b, a) };
            let p = asymmetric_int8(min, max).unwrap();
            let q = p.quantize_value(0.0, 0, -128, 127);
            prop_assert_eq!(q, p.zero_point()[0]);
        }

        #[test]
        fn asymmetric_int8_covers_the_range_within_half_a_step(a in -1e3f32..1e3, b in -1e3f32..1e3) {
            let (min, max) = if a <= b { (a, b) } else { (b, a) };
            let p = asymmetric_int8(min, max).unwrap();
            let (s, z) = (f64::from(p.scale()[0]), p.zero_point()[0]);
            for v in [min, max] {
                let q = p.quantize_value(v, 0, -128, 127);
                let back = (q - z) as f64 * s;
                prop_assert!((back - f64::from(v)).abs() <= s * 1.01 + 1e-9, "{v} -> {q} -> {back}");
            }
        }

        #[test]
        fn symmetric_int16_has_zero_zero_point_and_f64_scale(a in -1e4f32..1e4, b in -1e4f32..1e4) {
            let (min, max) = if a <= b { (a, b) } else { (b, a) };
            prop_assume!(min.abs().max(max.abs()) > 1e-6);
            let p = symmetric(min, max, 32767).unwrap();
            let reference = f64::from(min).abs().max(f64::from(max).abs()) / 32767.0;
            prop_assert_eq!(p.zero_point()[0], 0);
            prop_assert!((f64::from(p.scale()[0]) - reference).abs() <= reference * 1e-6);
        }
    }

    /// Ranges whose `qmin - min / scale` is at or near a half, with the zero point TF's float32 steps give
    /// (computed with numpy float32). In float64 two of them round the other way: [-17.4375, 1.6875] gives
    /// 104.5 -> 105 (float32: 104.49998 -> 104) and [-22, 4.4] gives 84.4999992 -> 84 (float32: 84.5 -> 85).
    #[test]
    fn asymmetric_int8_zero_point_rounds_as_tf_does_at_halves() {
        for (min, max, zp) in [
            (-1.0f32, 1.0f32, -1i64),
            (-6.0, 6.0, -1),
            (-1.0, 3.0, -64),
            (-17.4375, 1.6875, 104),
            (-22.0, 4.4, 85),
            (-16.5, 14.1, 10),
            (-10.0, 0.1, 124),
            (0.0, 6.0, -128),
        ] {
            let p = asymmetric_int8(min, max).unwrap();
            assert_eq!(p.zero_point()[0], zp, "[{min}, {max}]");
        }
    }

    #[test]
    fn int8_range_is_widened_to_include_zero() {
        let p = asymmetric_int8(2.0, 4.0).unwrap();
        assert!((p.scale()[0] - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(p.zero_point()[0], -128);
        let p = asymmetric_int8(-4.0, -2.0).unwrap();
        assert_eq!(p.zero_point()[0], 127);
    }

    #[test]
    fn empty_range_still_gives_a_positive_scale() {
        assert!(asymmetric_int8(0.0, 0.0).unwrap().scale()[0] > 0.0);
        assert!(symmetric(0.0, 0.0, 32767).unwrap().scale()[0] > 0.0);
    }

    #[test]
    fn non_finite_range_is_an_error() {
        assert!(asymmetric_int8(f32::NAN, 1.0).is_err());
        assert!(symmetric(0.0, f32::INFINITY, 127).is_err());
    }

    #[test]
    fn params_reject_zero_scale_and_count_mismatch() {
        assert_eq!(
            QuantParams::per_tensor(0.0, 0),
            Err(ParamsError::BadScale(0.0))
        );
        assert!(matches!(
            QuantParams::per_axis(vec![1.0, 2.0], vec![0], 0),
            Err(ParamsError::CountMismatch { .. })
        ));
    }
}
