//! # litequant
//!
//! Post-training quantization of TensorFlow Lite models as a declarative, reproducible build step.
//!
//! ## Brief overview
//! * [`config`] parses `quantize.toml` (models, modes, datasets, op sets) into jobs.
//! * [`tflite`] reads and writes the `.tflite` flatbuffer; [`graph`] is the editable model.
//! * [`dataset`] streams representative data; [`calibrate`] runs the float model and records ranges.
//! * [`ops`] is the op table: every op once, with its float kernel, rule per mode and integer kernels.
//! * [`quantize`] applies a mode (dynamic, float16, int8, int16x8) following TFLite's quantization spec.
//! * [`engine`] turns a config into a [`engine::Plan`] of jobs and runs them into artifacts.
//! * `watch` (feature `watch`, on with `cli`) rebuilds exactly the artifacts a file change touches.

#![deny(missing_docs)]

// flatc's Rust output names `alloc::` paths from the crate root.
extern crate alloc;

pub mod calibrate;
pub mod config;
pub mod dataset;
pub mod engine;
pub mod eval;
pub mod graph;
#[cfg(feature = "inspect")]
pub mod inspect;
pub mod interp;
#[cfg(feature = "keras")]
pub mod keras;
pub mod ops;
pub mod quantize;
mod regular_file;
pub mod tflite;
#[cfg(feature = "watch")]
pub mod watch;

/// The integer reference interpreter (see [`interp`]).
pub use interp::Interpreter;

/// litequant's version, recorded in reports and cache keys.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
