//! GELU on int8 / uint8 / int16 through LiteRT's lookup tables (`activations.cc` `GeluPrepare`): the table
//! maps each code through `GeluTransform` (`0.5 x erfc(-x / sqrt 2)`) or, with `approximate`,
//! `GeluTransformApproximate` (`0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`), in float as LiteRT does.
//! `erfcf` and `tanhf` come from the platform's C math library, the one LiteRT's own tables call.

use super::lut::through_table;
use super::OpCtx;
use crate::interp::tensor::Tensor;
use crate::tflite::fb;

mod libm_ffi {
    extern "C" {
        /// C99 `erfcf` from the platform's math library.
        pub fn erfcf(x: f32) -> f32;
    }
}

/// The platform's `erfcf` (what `std::erfc(float)` calls in LiteRT).
pub(crate) fn erfcf(x: f32) -> f32 {
    // SAFETY: `erfcf` is a pure C99 math function taking and returning a float by value.
    unsafe { libm_ffi::erfcf(x) }
}

/// `reference_ops::GeluTransform`.
pub(crate) fn gelu_transform(x: f32) -> f32 {
    0.5f32 * x * erfcf(x * (-std::f64::consts::FRAC_1_SQRT_2) as f32)
}

/// `reference_ops::GeluTransformApproximate`.
pub(crate) fn gelu_transform_approximate(x: f32) -> f32 {
    // sqrt(2 / pi) as LiteRT's `constexpr float kSqrt2dPi = M_2_SQRTPI * M_SQRT1_2`.
    let k = (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) as f32;
    0.5f32 * x * (1.0f32 + (k * (x + 0.044715f32 * x * x * x)).tanh())
}

/// The integer GELU kernel.
pub(crate) fn gelu(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let approximate = match ctx.options() {
        fb::BuiltinOptionsT::GeluOptions(o) => o.approximate,
        _ => false,
    };
    let f: fn(f32) -> f32 = if approximate {
        gelu_transform_approximate
    } else {
        gelu_transform
    };
    through_table(ctx, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_match_the_definition() {
        // GELU(1) = 0.841344746, GELU(-1) = -0.158655254.
        assert!((gelu_transform(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_transform(-1.0) + 0.158_655_25).abs() < 1e-6);
        assert!((gelu_transform_approximate(1.0) - 0.841_192).abs() < 1e-5);
    }
}
