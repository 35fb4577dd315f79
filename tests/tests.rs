//! litequant's integration tests: one binary (ripgrep style) so a small machine links once.
//! Each area adds a module here.

mod interop;
mod support;

mod fixture_models;
mod inspect;
mod reader_fuzz;
mod roundtrip;
mod cli;
mod corpus;
mod int8;
