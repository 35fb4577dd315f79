//! Reading a `.tflite` file: verify the flatbuffer, check the model's invariants, unpack it.

use super::check::check_invariants;
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
    /// A valid model using a feature litequant does not read (external data files, ...).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The model is already quantized where a float32 source is needed.
    #[error("not a float32 model: {0}")]
    NotFloat(String),
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
    // Flatbuffers may point many times at one object; unpacking copies it each time. Bounding the verified
    // ("apparent") size and table count by the file's size keeps a small crafted file from unpacking into
    // gigabytes, while real models, which share little, stay far below the bounds.
    let opts = flatbuffers::VerifierOptions {
        max_depth: 128,
        max_tables: bytes.len() / 4 + 1024,
        max_apparent_size: bytes.len().saturating_mul(4).clamp(1 << 20, 1 << 32),
        ignore_missing_null_terminator: false,
    };
    let root =
        fb::root_as_model_with_opts(&opts, bytes).map_err(|e| ModelError::Corrupt(short(&e)))?;
    if root.version() != 3 {
        return Err(ModelError::SchemaVersion(root.version()));
    }
    let mut warnings = Vec::new();
    newer_fields(&root, &mut warnings);
    let mut model = root.unpack();
    inline_offset_buffers(&mut model, bytes, &mut warnings)?;
    inline_large_custom_options(&mut model, bytes, &mut warnings)?;
    check_invariants(&model)?;
    Ok(ReadOutcome { model, warnings })
}

fn short(e: &impl fmt::Display) -> String {
    let s = e.to_string();
    // The verifier's message carries a full error trace; its first line says what failed.
    s.lines().next().unwrap_or("").trim().to_string()
}

/// The bytes `offset..offset + size` of the file, or why they are not there.
fn file_range<'a>(
    bytes: &'a [u8],
    offset: u64,
    size: u64,
    what: &dyn Fn() -> String,
) -> Result<&'a [u8], ModelError> {
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(start, size)| Some(start..start.checked_add(size)?))
        .filter(|r| r.end <= bytes.len());
    match range {
        Some(r) => Ok(&bytes[r]),
        None => Err(ModelError::Invalid(format!(
            "{} lies outside the file (offset {offset}, size {size}, file {} bytes)",
            what(),
            bytes.len()
        ))),
    }
}

/// Moves buffers stored after the flatbuffer (`offset > 1`, TF's layout for models near 2 GB) into the model.
///
/// Offsets count from the start of the file, which the writer changes, so they cannot be carried as such.
fn inline_offset_buffers(
    model: &mut fb::ModelT,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<(), ModelError> {
    let Some(buffers) = model.buffers.as_mut() else {
        return Ok(());
    };
    let mut moved = 0usize;
    for (i, b) in buffers.iter_mut().enumerate() {
        if b.offset <= 1 {
            continue;
        }
        if b.data.as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(ModelError::Invalid(format!(
                "buffer {i} has both inline data and an offset into the file ({})",
                b.offset
            )));
        }
        let data = file_range(bytes, b.offset, b.size, &|| format!("buffer {i}"))?;
        b.data = Some(data.to_vec());
        b.offset = 0;
        b.size = 0;
        moved += 1;
    }
    if moved > 0 {
        warnings.push(format!(
            "{moved} buffers stored after the flatbuffer were read inline"
        ));
    }
    Ok(())
}

/// Moves custom options stored after the flatbuffer (`large_custom_options_offset > 1`) into their operator.
fn inline_large_custom_options(
    model: &mut fb::ModelT,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<(), ModelError> {
    let mut moved = 0usize;
    for (s, sg) in model.subgraphs.iter_mut().flatten().enumerate() {
        for (o, op) in sg.operators.iter_mut().flatten().enumerate() {
            if op.large_custom_options_offset <= 1 {
                continue;
            }
            if op.custom_options.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(ModelError::Invalid(format!(
                    "subgraph {s} operator {o} has both inline custom options and large custom options in the file"
                )));
            }
            let what = || format!("the large custom options of subgraph {s} operator {o}");
            let data = file_range(
                bytes,
                op.large_custom_options_offset,
                op.large_custom_options_size,
                &what,
            )?;
            op.custom_options = Some(data.to_vec());
            op.large_custom_options_offset = 0;
            op.large_custom_options_size = 0;
            moved += 1;
        }
    }
    if moved > 0 {
        warnings.push(format!(
            "{moved} large custom options stored after the flatbuffer were read inline"
        ));
    }
    Ok(())
}

/// Whether a table's vtable has a field after `last_known`, the vtable slot of the last field our schema knows.
///
/// A writer with a newer schema appends fields; the verifier skips them and unpacking drops them, so this is
/// the one place that can notice.
fn has_newer_fields(table: &flatbuffers::Table<'_>, last_known: flatbuffers::VOffsetT) -> bool {
    let vt = table.vtable();
    let known = (usize::from(last_known) - 4) / 2 + 1;
    // `VTable::num_fields` underflows on a vtable shorter than its 4-byte header, which the verifier lets
    // through (found by the reader fuzz test); count the slots here instead.
    let slots = (vt.num_bytes() / 2).saturating_sub(2);
    (known..slots).any(|i| u16::try_from(4 + 2 * i).is_ok_and(|slot| vt.get(slot) != 0))
}

/// Notes everything in the file that our schema does not know, once per kind.
fn newer_fields(root: &fb::Model<'_>, warnings: &mut Vec<String>) {
    let mut tables: Vec<&str> = Vec::new();
    let mut dropped_unions: Vec<String> = Vec::new();
    let mut unknown_enums: Vec<String> = Vec::new();
    let mut table =
        |name: &'static str, t: &flatbuffers::Table<'_>, last: flatbuffers::VOffsetT| {
            if has_newer_fields(t, last) && !tables.contains(&name) {
                tables.push(name);
            }
        };
    let push_unique = |list: &mut Vec<String>, what: String| {
        if !list.contains(&what) {
            list.push(what);
        }
    };
    table("Model", &root._tab, fb::Model::VT_EXTERNAL_BUFFERS);
    for code in root.operator_codes().iter().flatten() {
        table(
            "OperatorCode",
            &code._tab,
            fb::OperatorCode::VT_BUILTIN_CODE,
        );
        if code.builtin_code().variant_name().is_none() {
            push_unique(
                &mut unknown_enums,
                format!("builtin operator code {}", code.builtin_code().0),
            );
        }
    }
    for b in root.buffers().iter().flatten() {
        table("Buffer", &b._tab, fb::Buffer::VT_SIZE);
    }
    for m in root.metadata().iter().flatten() {
        table("Metadata", &m._tab, fb::Metadata::VT_BUFFER);
    }
    for sg in root.subgraphs().iter().flatten() {
        table("SubGraph", &sg._tab, fb::SubGraph::VT_DEBUG_METADATA_INDEX);
        for t in sg.tensors().iter().flatten() {
            table("Tensor", &t._tab, fb::Tensor::VT_EXTERNAL_BUFFER);
            if t.type_().variant_name().is_none() {
                push_unique(&mut unknown_enums, format!("tensor type {}", t.type_().0));
            }
            if let Some(q) = t.quantization() {
                table(
                    "QuantizationParameters",
                    &q._tab,
                    fb::QuantizationParameters::VT_QUANTIZED_DIMENSION,
                );
                if q.details_type().variant_name().is_none() {
                    push_unique(
                        &mut dropped_unions,
                        format!("quantization details type {}", q.details_type().0),
                    );
                }
            }
            if let Some(sp) = t.sparsity() {
                table(
                    "SparsityParameters",
                    &sp._tab,
                    fb::SparsityParameters::VT_DIM_METADATA,
                );
            }
        }
        for op in sg.operators().iter().flatten() {
            table("Operator", &op._tab, fb::Operator::VT_DEBUG_METADATA_INDEX);
            if op.builtin_options_type().variant_name().is_none() {
                push_unique(
                    &mut dropped_unions,
                    format!("builtin options type {}", op.builtin_options_type().0),
                );
            }
            if op.builtin_options_2_type().variant_name().is_none() {
                push_unique(
                    &mut dropped_unions,
                    format!("builtin options 2 type {}", op.builtin_options_2_type().0),
                );
            }
        }
    }
    for s in root.signature_defs().iter().flatten() {
        table("SignatureDef", &s._tab, fb::SignatureDef::VT_SUBGRAPH_INDEX);
        for m in s
            .inputs()
            .iter()
            .flatten()
            .chain(s.outputs().iter().flatten())
        {
            table("TensorMap", &m._tab, fb::TensorMap::VT_TENSOR_INDEX);
        }
    }
    for name in tables {
        warnings.push(format!(
            "{name} tables carry fields newer than litequant's schema; those fields are dropped on write"
        ));
    }
    for what in dropped_unions {
        warnings.push(format!(
            "{what} is newer than litequant's schema; those options are dropped on write"
        ));
    }
    for what in unknown_enums {
        warnings.push(format!(
            "{what} is newer than litequant's schema; it is kept but cannot be interpreted"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::write_model;
    use flatbuffers::{FlatBufferBuilder, WIPOffset};

    /// One FLOAT32 constant `w` [2] behind buffer 1, read by a RESHAPE.
    fn model_with_constant(data: Option<Vec<u8>>, offset: u64, size: u64) -> fb::ModelT {
        fb::ModelT {
            version: 3,
            operator_codes: Some(vec![fb::OperatorCodeT {
                deprecated_builtin_code: 22,
                custom_code: None,
                version: 1,
                builtin_code: fb::BuiltinOperator::RESHAPE,
            }]),
            subgraphs: Some(vec![fb::SubGraphT {
                tensors: Some(vec![
                    fb::TensorT {
                        shape: Some(vec![2]),
                        buffer: 1,
                        name: Some("w".into()),
                        ..Default::default()
                    },
                    fb::TensorT {
                        shape: Some(vec![1, 2]),
                        name: Some("y".into()),
                        ..Default::default()
                    },
                ]),
                outputs: Some(vec![1]),
                operators: Some(vec![fb::OperatorT {
                    inputs: Some(vec![0]),
                    outputs: Some(vec![1]),
                    debug_metadata_index: -1,
                    ..Default::default()
                }]),
                debug_metadata_index: -1,
                ..Default::default()
            }]),
            buffers: Some(vec![
                fb::BufferT::default(),
                fb::BufferT { data, offset, size },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn short_foreign_and_truncated_files_are_refused_with_their_reason() {
        assert_eq!(read_model(b"TFL3").unwrap_err(), ModelError::TooShort(4));
        let bytes = write_model(&model_with_constant(Some(vec![0; 8]), 0, 0));
        let mut foreign = bytes.clone();
        foreign[4..8].copy_from_slice(b"ONNX");
        assert!(
            matches!(read_model(&foreign), Err(ModelError::WrongIdentifier { found }) if found == "ONNX")
        );
        assert!(matches!(
            read_model(&bytes[..bytes.len() - 20]),
            Err(ModelError::Corrupt(_))
        ));
        let mut old = model_with_constant(Some(vec![0; 8]), 0, 0);
        old.version = 2;
        assert_eq!(
            read_model(&write_model(&old)).unwrap_err(),
            ModelError::SchemaVersion(2)
        );
    }

    /// Writes `model` with buffer 1 stored after the flatbuffer, as TF does for models near 2 GB.
    fn with_buffer_after_flatbuffer(data: &[u8], claimed_size: u64) -> Vec<u8> {
        // The offset is a fixed-size scalar, so the flatbuffer's length does not depend on its value.
        let probe = write_model(&model_with_constant(None, 2, claimed_size));
        let offset = probe.len().next_multiple_of(16) as u64;
        let mut bytes = write_model(&model_with_constant(None, offset, claimed_size));
        assert_eq!(bytes.len(), probe.len());
        bytes.resize(offset as usize, 0);
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn buffers_stored_after_the_flatbuffer_are_read_inline() {
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = read_model(&with_buffer_after_flatbuffer(&data, 8)).expect("reads");
        let buffer = &out.model.buffers.as_ref().expect("buffers")[1];
        assert_eq!(buffer.data.as_deref(), Some(&data[..]));
        assert_eq!((buffer.offset, buffer.size), (0, 0));
        assert!(out.warnings.iter().any(|w| w.contains("read inline")));
    }

    #[test]
    fn buffers_pointing_past_the_end_of_the_file_are_refused() {
        let err = read_model(&with_buffer_after_flatbuffer(&[0; 8], 4096)).unwrap_err();
        assert!(
            matches!(&err, ModelError::Invalid(why) if why.contains("buffer 1 lies outside the file")),
            "{err}"
        );
        let err =
            read_model(&write_model(&model_with_constant(None, u64::MAX - 2, 8))).unwrap_err();
        assert!(
            matches!(&err, ModelError::Invalid(why) if why.contains("outside the file")),
            "{err}"
        );
    }

    #[test]
    fn large_custom_options_after_the_flatbuffer_are_read_inline() {
        let mut m = model_with_constant(Some(vec![0; 8]), 0, 0);
        let options = b"custom-options".to_vec();
        let set = |m: &mut fb::ModelT, offset: u64| {
            let op = &mut m.subgraphs.as_mut().expect("subgraphs")[0]
                .operators
                .as_mut()
                .expect("ops")[0];
            op.large_custom_options_offset = offset;
            op.large_custom_options_size = options.len() as u64;
        };
        set(&mut m, 2);
        let offset = write_model(&m).len() as u64;
        set(&mut m, offset);
        let mut bytes = write_model(&m);
        bytes.extend_from_slice(&options);
        let out = read_model(&bytes).expect("reads");
        let op = &out.model.subgraphs.as_ref().expect("subgraphs")[0]
            .operators
            .as_ref()
            .expect("ops")[0];
        assert_eq!(op.custom_options.as_deref(), Some(&options[..]));
        assert_eq!(op.large_custom_options_offset, 0);
    }

    #[test]
    fn a_small_file_pointing_many_times_at_one_table_is_refused() {
        let mut fbb = FlatBufferBuilder::new();
        let shape = fbb.create_vector(&[1i32; 1000]);
        let tensor = fb::Tensor::create(
            &mut fbb,
            &fb::TensorArgs {
                shape: Some(shape),
                ..Default::default()
            },
        );
        let tensors = fbb.create_vector(&vec![tensor; 100_000]);
        let subgraph = fb::SubGraph::create(
            &mut fbb,
            &fb::SubGraphArgs {
                tensors: Some(tensors),
                ..Default::default()
            },
        );
        let subgraphs = fbb.create_vector(&[subgraph]);
        let model = fb::Model::create(
            &mut fbb,
            &fb::ModelArgs {
                version: 3,
                subgraphs: Some(subgraphs),
                ..Default::default()
            },
        );
        fb::finish_model_buffer(&mut fbb, model);
        // 400 KB that would unpack into 100 000 tensors of 1000 dimensions (400 MB).
        assert!(matches!(
            read_model(fbb.finished_data()),
            Err(ModelError::Corrupt(_))
        ));
    }

    /// A model whose single tensor has a field at the slot after `external_buffer`, as a newer schema writes.
    fn model_with_newer_tensor_field() -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let name = fbb.create_string("t");
        let shape = fbb.create_vector(&[1i32, 4]);
        let start = fbb.start_table();
        fbb.push_slot_always(fb::Tensor::VT_SHAPE, shape);
        fbb.push_slot_always(fb::Tensor::VT_NAME, name);
        fbb.push_slot::<u32>(fb::Tensor::VT_EXTERNAL_BUFFER + 2, 7, 0);
        let tensor: WIPOffset<fb::Tensor> = WIPOffset::new(fbb.end_table(start).value());
        let tensors = fbb.create_vector(&[tensor]);
        let io = fbb.create_vector(&[0i32]);
        let subgraph = fb::SubGraph::create(
            &mut fbb,
            &fb::SubGraphArgs {
                tensors: Some(tensors),
                inputs: Some(io),
                outputs: Some(io),
                ..Default::default()
            },
        );
        let subgraphs = fbb.create_vector(&[subgraph]);
        let empty = fb::Buffer::create(&mut fbb, &fb::BufferArgs::default());
        let buffers = fbb.create_vector(&[empty]);
        let model = fb::Model::create(
            &mut fbb,
            &fb::ModelArgs {
                version: 3,
                subgraphs: Some(subgraphs),
                buffers: Some(buffers),
                ..Default::default()
            },
        );
        fb::finish_model_buffer(&mut fbb, model);
        fbb.finished_data().to_vec()
    }

    #[test]
    fn fields_newer_than_our_schema_are_reported() {
        let out = read_model(&model_with_newer_tensor_field())
            .expect("a newer field does not make a model invalid");
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(
            out.warnings[0].starts_with("Tensor tables carry fields newer"),
            "{:?}",
            out.warnings
        );
        let mut m = model_with_constant(Some(vec![0; 8]), 0, 0);
        m.operator_codes.as_mut().expect("codes")[0].builtin_code = fb::BuiltinOperator(500);
        let out = read_model(&write_model(&m)).expect("reads");
        assert_eq!(out.warnings, vec!["builtin operator code 500 is newer than litequant's schema; it is kept but cannot be interpreted"]);
    }

    #[test]
    fn every_field_our_schema_knows_reads_without_warnings() {
        let mut m = model_with_constant(Some(vec![0; 8]), 0, 0);
        let sg = &mut m.subgraphs.as_mut().expect("subgraphs")[0];
        sg.debug_metadata_index = 3;
        let t = &mut sg.tensors.as_mut().expect("tensors")[1];
        t.has_rank = true;
        t.shape_signature = Some(vec![-1, 2]);
        t.quantization = Some(Box::new(fb::QuantizationParametersT {
            quantized_dimension: 1,
            ..Default::default()
        }));
        let op = &mut sg.operators.as_mut().expect("ops")[0];
        op.debug_metadata_index = 2;
        op.builtin_options_2 =
            fb::BuiltinOptions2T::StablehloIotaOptions(Box::new(fb::StablehloIotaOptionsT {
                iota_dimension: 1,
            }));
        m.signature_defs = Some(vec![fb::SignatureDefT {
            outputs: Some(vec![fb::TensorMapT {
                name: Some("y".into()),
                tensor_index: 1,
            }]),
            signature_key: Some("serving_default".into()),
            ..Default::default()
        }]);
        let out = read_model(&write_model(&m)).expect("reads");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
}
