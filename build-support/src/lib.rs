//! `litequant-build`: quantize TensorFlow Lite models from a crate's `build.rs`.
//!
//! The build-script API (`litequant_build::compile("quantize.toml")`) lands with the build.rs issue; this
//! crate exists now so the workspace has its final shape and the engine is proven usable without the CLI.

#![deny(missing_docs)]

/// The engine version this build crate drives.
pub fn engine_version() -> &'static str {
    litequant::VERSION
}
