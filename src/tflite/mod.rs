//! The TensorFlow Lite flatbuffer format: generated bindings, a verifying reader and a deterministic writer.

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    unused_imports,
    dead_code,
    deprecated,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
#[path = "generated/schema_generated.rs"]
mod schema_generated;

pub use schema_generated::tflite as fb;

mod check;
mod read;
mod write;

pub use read::{read_model, ModelError, ReadOutcome};
pub use write::{
    write_model, write_model_with_buffers_after, BUFFER_ALIGNMENT, INLINE_BUFFER_LIMIT,
};

/// The op code of an operator-code entry: `max(builtin_code, deprecated_builtin_code)`.
///
/// Models written before schema 3a (MediaPipe's among them) keep the code only in the deprecated byte;
/// newer writers fill both, and codes above 127 only in `builtin_code`.
pub fn op_code(code: &fb::OperatorCodeT) -> fb::BuiltinOperator {
    let deprecated = i32::from(code.deprecated_builtin_code);
    fb::BuiltinOperator(code.builtin_code.0.max(deprecated))
}

/// The printable name of a builtin operator, or `UNKNOWN(n)` for codes newer than our schema.
pub fn op_name(code: fb::BuiltinOperator) -> String {
    match code.variant_name() {
        Some(name) => name.to_string(),
        None => format!("UNKNOWN({})", code.0),
    }
}

/// The printable name of a tensor type.
pub fn type_name(t: fb::TensorType) -> String {
    match t.variant_name() {
        Some(name) => name.to_string(),
        None => format!("UNKNOWN({})", t.0),
    }
}
