//! Running hot loops with the CPU's wider vector registers.
//!
//! The crate is built for baseline x86-64 (SSE2). Loops written as independent lanes (`acc[i] += x[i] * y[i]`
//! over fixed 8-wide blocks) compute the same lane-by-lane operations at any vector width, so running them
//! compiled for AVX2 changes speed, not results: calibration stays bit-identical across CPUs.

/// Defines `fn $name(args) -> ret` that runs `$body` (an `#[inline(always)]` function with the same
/// arguments) compiled with AVX2 when the CPU has it, and as built otherwise.
macro_rules! wide_vectors {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path;) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is available on this CPU (checked on the line above).
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use wide_vectors;

/// Like [`wide_vectors`], but compiled with AVX2 and FMA: for loops written with `f32::mul_add`, which is
/// one rounding by definition, so the fused instruction and the portable fallback (a software fused
/// multiply-add, slow but exact) give the same bits on every CPU.
macro_rules! fused_vectors {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path;) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fused($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: AVX2 and FMA are available on this CPU (checked on the lines above).
                    return unsafe { fused($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use fused_vectors;
