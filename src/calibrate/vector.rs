//! Running hot loops with the CPU's wider vector registers.
//!
//! The crate is built for baseline x86-64 (SSE2). Loops written as independent lanes (`acc[i] += x[i] * y[i]`
//! over fixed 8-wide blocks) compute the same lane-by-lane operations at any vector width, so running them
//! compiled for AVX2 changes speed, not results: calibration stays bit-identical across CPUs.

/// Runs `f` compiled with AVX2 enabled when the CPU has it, else as is.
#[inline(always)]
pub(crate) fn with_wide_vectors<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available on this CPU (checked on the line above).
            return unsafe { wide(f) };
        }
    }
    f()
}
