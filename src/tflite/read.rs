//! Reading a `.tflite` file: verify the flatbuffer, check the model's invariants, unpack it.

use super::fb;
use std::fmt;

/// Why bytes could not be read as a TensorFlow Lite model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Too short to hold a flatbuffer header.
    #[error("file is too short to be a TFLite model ({0} bytes)")]
    TooShort(usize),
    /// The flatbuffer's file identifier is not `TFL3`.
    #[error("not a TFLite model: file identifier is {found:?}, expected \"TFL3\"")]
    WrongIdentifier {
        /// The four identifier bytes found, printed lossily.
        found: String,
    },
    /// The flatbuffer verifier rejected the bytes (truncated or corrupt file).
    #[error("corrupt or truncated TFLite flatbuffer: {0}")]
    Corrupt(String),
    /// A schema version other than 3.
    #[error("unsupported TFLite schema version {0} (litequant reads version 3)")]
    SchemaVersion(u32),
    /// A structural invariant does not hold (index out of range and the like).
    #[error("invalid model: {0}")]
    Invalid(String),
}

/// A model read from bytes, with what the reader noticed but could carry.
#[derive(Debug)]
pub struct ReadOutcome {
    /// The model, unpacked into the flatbuffers object API.
    pub model: fb::ModelT,
    /// Non-fatal findings (fields newer than our schema, buffers moved inline, ...).
    pub warnings: Vec<String>,
}

/// Reads and verifies a TFLite model.
///
/// Buffers stored after the flatbuffer (`Buffer.offset > 1`, models over 2 GB) are read into the model so the
/// result is self-contained. Fields, union members and enum values newer than our schema are reported in
/// [`ReadOutcome::warnings`].
pub fn read_model(bytes: &[u8]) -> Result<ReadOutcome, ModelError> {
    if bytes.len() < 8 {
        return Err(ModelError::TooShort(bytes.len()));
    }
    if !fb::model_buffer_has_identifier(bytes) {
        return Err(ModelError::WrongIdentifier {
            found: String::from_utf8_lossy(&bytes[4..8]).into_owned(),
        });
    }
    let opts = flatbuffers::VerifierOptions {
        max_depth: 128,
        max_tables: 100_000_000,
        max_apparent_size: 1 << 32,
        ignore_missing_null_terminator: false,
    };
    let root = fb::root_as_model_with_opts(&opts, bytes).map_err(|e| ModelError::Corrupt(short(&e)))?;
    if root.version() != 3 {
        return Err(ModelError::SchemaVersion(root.version()));
    }
    let mut warnings = Vec::new();
    newer_fields(&root, &mut warnings);
    let mut model = root.unpack();
    inline_offset_buffers(&mut model, bytes, &mut warnings)?;
    check_invariants(&model)?;
    Ok(ReadOutcome { model, warnings })
}

fn short(e: &impl fmt::Display) -> String {
    let s = e.to_string();
    // The verifier's message carries a full error trace; its first line says what failed.
    s.lines().next().unwrap_or("").trim().to_string()
}

fn inline_offset_buffers(model: &mut fb::ModelT, bytes: &[u8], warnings: &mut Vec<String>) -> Result<(), ModelError> {
    let Some(buffers) = model.buffers.as_mut() else { return Ok(()) };
    let mut moved = 0usize;
    for (i, b) in buffers.iter_mut().enumerate() {
        if b.offset > 1 {
            let start = usize::try_from(b.offset).map_err(|_| ModelError::Invalid(format!("buffer {i}: offset too large")))?;
            let size = usize::try_from(b.size).map_err(|_| ModelError::Invalid(format!("buffer {i}: size too large")))?;
            let end = start.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "buffer {i} lies outside the file (offset {start}, size {size}, file {} bytes)",
                    bytes.len()
                ))
            })?;
            b.data = Some(bytes[start..end].to_vec());
            b.offset = 0;
            b.size = 0;
            moved += 1;
        }
    }
    if moved > 0 {
        warnings.push(format!("{moved} buffers stored after the flatbuffer were read inline"));
    }
    Ok(())
}

fn check_invariants(model: &fb::ModelT) -> Result<(), ModelError> {
    let n_buffers = model.buffers.as_ref().map_or(0, Vec::len);
    let n_codes = model.operator_codes.as_ref().map_or(0, Vec::len);
    let subgraphs = model.subgraphs.as_deref().unwrap_or(&[]);
    if subgraphs.is_empty() {
        return Err(ModelError::Invalid("the model has no subgraph".into()));
    }
    for (s, sg) in subgraphs.iter().enumerate() {
        let tensors = sg.tensors.as_deref().unwrap_or(&[]);
        let n = tensors.len();
        for (t, tensor) in tensors.iter().enumerate() {
            if tensor.buffer as usize >= n_buffers.max(1) && tensor.buffer != 0 {
                return Err(ModelError::Invalid(format!(
                    "subgraph {s} tensor {t} ({}) refers to buffer {} but the model has {n_buffers}",
                    tensor.name.as_deref().unwrap_or(""),
                    tensor.buffer
                )));
            }
        }
        let check = |what: &str, ids: Option<&Vec<i32>>, optional: bool| -> Result<(), ModelError> {
            for &id in ids.map(Vec::as_slice).unwrap_or(&[]) {
                let ok = (id >= 0 && (id as usize) < n) || (optional && id == -1);
                if !ok {
                    return Err(ModelError::Invalid(format!(
                        "subgraph {s}: {what} refers to tensor {id} but the subgraph has {n}"
                    )));
                }
            }
            Ok(())
        };
        check("an input", sg.inputs.as_ref(), false)?;
        check("an output", sg.outputs.as_ref(), false)?;
        for (o, op) in sg.operators.as_deref().unwrap_or(&[]).iter().enumerate() {
            if op.opcode_index as usize >= n_codes {
                return Err(ModelError::Invalid(format!(
                    "subgraph {s} operator {o} uses operator code {} but the model has {n_codes}",
                    op.opcode_index
                )));
            }
            check(&format!("operator {o} input"), op.inputs.as_ref(), true)?;
            check(&format!("operator {o} output"), op.outputs.as_ref(), false)?;
            check(&format!("operator {o} intermediate"), op.intermediates.as_ref(), false)?;
        }
    }
    for sig in model.signature_defs.as_deref().unwrap_or(&[]) {
        if sig.subgraph_index as usize >= subgraphs.len() {
            return Err(ModelError::Invalid(format!(
                "signature {:?} refers to subgraph {}",
                sig.signature_key.as_deref().unwrap_or(""),
                sig.subgraph_index
            )));
        }
    }
    for m in model.metadata.as_deref().unwrap_or(&[]) {
        if m.buffer as usize >= n_buffers {
            return Err(ModelError::Invalid(format!(
                "metadata {:?} refers to buffer {} but the model has {n_buffers}",
                m.name.as_deref().unwrap_or(""),
                m.buffer
            )));
        }
    }
    Ok(())
}

/// Number of fields our schema knows for a table, compared with the vtable the file carries.
fn vtable_extra(table: &flatbuffers::Table<'_>, known_fields: usize) -> bool {
    let vt = table.vtable();
    let n = vt.num_fields();
    (known_fields..n).any(|i| vt.get((4 + 2 * i) as flatbuffers::VOffsetT) != 0)
}

fn newer_fields(root: &fb::Model<'_>, warnings: &mut Vec<String>) {
    let mut found: Vec<String> = Vec::new();
    let mut note = |what: String| {
        if !found.contains(&what) {
            found.push(what);
        }
    };
    if vtable_extra(&root._tab, 10) {
        note("Model".into());
    }
    for code in root.operator_codes().iter().flatten() {
        if vtable_extra(&code._tab, 4) {
            note("OperatorCode".into());
        }
        if code.builtin_code().variant_name().is_none() {
            note(format!("builtin operator code {}", code.builtin_code().0));
        }
    }
    for b in root.buffers().iter().flatten() {
        if vtable_extra(&b._tab, 3) {
            note("Buffer".into());
        }
    }
    for sg in root.subgraphs().iter().flatten() {
        if vtable_extra(&sg._tab, 6) {
            note("SubGraph".into());
        }
        for t in sg.tensors().iter().flatten() {
            if vtable_extra(&t._tab, 11) {
                note("Tensor".into());
            }
            if t.type_().variant_name().is_none() {
                note(format!("tensor type {}", t.type_().0));
            }
            if let Some(q) = t.quantization() {
                if vtable_extra(&q._tab, 7) {
                    note("QuantizationParameters".into());
                }
                if q.details_type().variant_name().is_none() {
                    note(format!("quantization details type {}", q.details_type().0));
                }
            }
        }
        for op in sg.operators().iter().flatten() {
            if vtable_extra(&op._tab, 12) {
                note("Operator".into());
            }
            if op.builtin_options_type().variant_name().is_none() {
                note(format!("builtin options type {}", op.builtin_options_type().0));
            }
            if op.builtin_options_2_type().variant_name().is_none() {
                note(format!("builtin options 2 type {}", op.builtin_options_2_type().0));
            }
        }
    }
    for s in root.signature_defs().iter().flatten() {
        if vtable_extra(&s._tab, 5) {
            note("SignatureDef".into());
        }
    }
    for what in found {
        warnings.push(format!(
            "the model uses {what} data newer than litequant's schema; it is not carried into the output"
        ));
    }
}
