//! litequant's integration tests: one binary (ripgrep style) so a small machine links once.
//! Each area adds a module here.

mod interop;
mod support;

mod adaptive_rounding;
mod bad_input;
mod calibration_auto;
mod calibration_methods;
mod cli;
mod corpus;
mod equalize;
mod eval;
mod fixture_models;
mod fuzz;
mod inspect;
mod int8;
mod interp;
mod keras;
mod keras_h5;
mod keras_layers;
mod lock;
mod op_parity;
mod ops_generated;
mod output_aware;
mod reader_fuzz;
mod roundtrip;
#[cfg(unix)]
mod watch;
