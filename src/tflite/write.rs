//! Writing a model: deterministic bytes, buffer data on 16-byte boundaries.

use super::fb;
use flatbuffers::{FlatBufferBuilder, Push, PushAlignment, WIPOffset};

/// Alignment of buffer data in the file (`Buffer.data (force_align: 16)` in the schema).
pub const BUFFER_ALIGNMENT: usize = 16;

/// A zero-sized push that raises the builder's minimum alignment to 16 and pads to it.
///
/// flatc's Rust output ignores `force_align`; pushing this before a buffer's bytes makes the builder pad the
/// whole file to a multiple of 16, so an offset that is 16-aligned from the end is 16-aligned from the start.
struct Align16;

impl Push for Align16 {
    type Output = u8;
    unsafe fn push(&self, _dst: &mut [u8], _written_len: usize) {}
    fn size() -> usize {
        0
    }
    fn alignment() -> PushAlignment {
        PushAlignment::new(BUFFER_ALIGNMENT)
    }
}

fn aligned_bytes<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    data: &[u8],
) -> WIPOffset<flatbuffers::Vector<'b, u8>> {
    fbb.push(Align16);
    let pad = (BUFFER_ALIGNMENT - (fbb.unfinished_data().len() + data.len()) % BUFFER_ALIGNMENT)
        % BUFFER_ALIGNMENT;
    for _ in 0..pad {
        fbb.push(0u8);
    }
    fbb.create_vector(data)
}

/// Buffer data above which [`write_model`] stores buffers after the flatbuffer: flatbuffers cannot exceed
/// 2 GiB, and TF's exporter switches within 512 MiB of that limit too.
pub const INLINE_BUFFER_LIMIT: usize = (3 << 30) / 2;

/// Serializes a model. The same model always gives the same bytes.
///
/// Every buffer's data starts on a 16-byte boundary of the output. The opcode table gets
/// `deprecated_builtin_code = min(code, 127)` so that runtimes reading either field agree. Models with more
/// than [`INLINE_BUFFER_LIMIT`] bytes of buffer data are written with [`write_model_with_buffers_after`].
pub fn write_model(model: &fb::ModelT) -> Vec<u8> {
    let data: usize = model
        .buffers
        .iter()
        .flatten()
        .map(|b| b.data.as_ref().map_or(0, Vec::len))
        .sum();
    if data > INLINE_BUFFER_LIMIT {
        write_model_with_buffers_after(model)
    } else {
        write_inline(model)
    }
}

/// Serializes a model with every non-empty buffer stored after the flatbuffer (`Buffer.offset`/`size`,
/// schema 3c), each on a 16-byte boundary: the layout of models over 2 GB. Deterministic like
/// [`write_model`]; the reader moves such buffers back inline.
pub fn write_model_with_buffers_after(model: &fb::ModelT) -> Vec<u8> {
    let datas: Vec<&[u8]> = model
        .buffers
        .iter()
        .flatten()
        .map(|b| b.data.as_deref().unwrap_or(&[]))
        .collect();
    let outline = |offsets: &dyn Fn(usize) -> u64| -> fb::ModelT {
        let buffers = model.buffers.as_ref().map(|bufs| {
            bufs.iter()
                .enumerate()
                .map(|(i, b)| match datas[i] {
                    [] => b.clone(),
                    d => fb::BufferT {
                        data: None,
                        offset: offsets(i),
                        size: d.len() as u64,
                    },
                })
                .collect()
        });
        fb::ModelT {
            version: model.version,
            operator_codes: model.operator_codes.clone(),
            subgraphs: model.subgraphs.clone(),
            description: model.description.clone(),
            buffers,
            metadata_buffer: model.metadata_buffer.clone(),
            metadata: model.metadata.clone(),
            signature_defs: model.signature_defs.clone(),
            external_buffer_groups: model.external_buffer_groups.clone(),
            external_buffers: model.external_buffers.clone(),
        }
    };
    // Offsets are fixed-size scalars: a placeholder above 1 gives the flatbuffer its final length.
    let flatbuffer_len = write_inline(&outline(&|_| 2)).len();
    let mut starts = Vec::with_capacity(datas.len());
    let mut end = flatbuffer_len.next_multiple_of(BUFFER_ALIGNMENT);
    for d in &datas {
        starts.push(end as u64);
        end = (end + d.len()).next_multiple_of(BUFFER_ALIGNMENT);
    }
    let mut bytes = write_inline(&outline(&|i| starts[i]));
    debug_assert_eq!(bytes.len(), flatbuffer_len);
    bytes.reserve(end - bytes.len());
    for (d, &start) in datas.iter().zip(&starts) {
        if !d.is_empty() {
            bytes.resize(start as usize, 0);
            bytes.extend_from_slice(d);
        }
    }
    bytes.resize(end, 0);
    bytes
}

fn write_inline(model: &fb::ModelT) -> Vec<u8> {
    let size_hint = model.buffers.as_ref().map_or(0, |b| {
        b.iter()
            .map(|b| b.data.as_ref().map_or(0, Vec::len) + 32)
            .sum::<usize>()
    });
    let mut fbb = FlatBufferBuilder::with_capacity(size_hint + (1 << 16));

    // Buffers first: they end up at the back of the file, after the graph, like TF's exporter puts them.
    let buffers = model.buffers.as_ref().map(|bufs| {
        let offsets: Vec<_> = bufs
            .iter()
            .rev()
            .map(|b| {
                let data = b.data.as_ref().map(|d| aligned_bytes(&mut fbb, d));
                fb::Buffer::create(
                    &mut fbb,
                    &fb::BufferArgs {
                        data,
                        offset: b.offset,
                        size: b.size,
                    },
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        fbb.create_vector(&offsets)
    });

    let codes = model.operator_codes.as_ref().map(|codes| {
        let offsets: Vec<_> = codes
            .iter()
            .map(|c| {
                let mut c = c.clone();
                let code = super::op_code(&c);
                c.builtin_code = code;
                c.deprecated_builtin_code = code.0.min(127) as i8;
                c.pack(&mut fbb)
            })
            .collect();
        fbb.create_vector(&offsets)
    });
    let subgraphs = model.subgraphs.as_ref().map(|sgs| {
        let offsets: Vec<_> = sgs.iter().map(|s| s.pack(&mut fbb)).collect();
        fbb.create_vector(&offsets)
    });
    let description = model.description.as_ref().map(|d| fbb.create_string(d));
    let metadata_buffer = model.metadata_buffer.as_ref().map(|m| fbb.create_vector(m));
    let metadata = model.metadata.as_ref().map(|ms| {
        let offsets: Vec<_> = ms.iter().map(|m| m.pack(&mut fbb)).collect();
        fbb.create_vector(&offsets)
    });
    let signature_defs = model.signature_defs.as_ref().map(|ss| {
        let offsets: Vec<_> = ss.iter().map(|s| s.pack(&mut fbb)).collect();
        fbb.create_vector(&offsets)
    });
    let external_buffer_groups = model.external_buffer_groups.as_ref().map(|gs| {
        let offsets: Vec<_> = gs.iter().map(|g| g.pack(&mut fbb)).collect();
        fbb.create_vector(&offsets)
    });
    let external_buffers = model.external_buffers.as_ref().map(|bs| {
        let offsets: Vec<_> = bs.iter().map(|b| b.pack(&mut fbb)).collect();
        fbb.create_vector(&offsets)
    });
    let root = fb::Model::create(
        &mut fbb,
        &fb::ModelArgs {
            version: model.version,
            operator_codes: codes,
            subgraphs,
            description,
            buffers,
            metadata_buffer,
            metadata,
            signature_defs,
            external_buffer_groups,
            external_buffers,
        },
    );
    fb::finish_model_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with_buffers(sizes: &[usize]) -> fb::ModelT {
        let mut buffers = vec![fb::BufferT::default()];
        buffers.extend(sizes.iter().map(|&n| fb::BufferT {
            data: Some((0..n).map(|i| (i * 7 % 251) as u8).collect()),
            offset: 0,
            size: 0,
        }));
        fb::ModelT {
            version: 3,
            subgraphs: Some(vec![fb::SubGraphT::default()]),
            buffers: Some(buffers),
            description: Some("odd".into()),
            ..Default::default()
        }
    }

    #[test]
    fn buffer_data_starts_on_16_byte_boundaries() {
        let bytes = write_model(&model_with_buffers(&[1, 3, 17, 0, 64, 5]));
        let model = fb::root_as_model(&bytes).expect("verifies");
        let base = bytes.as_ptr() as usize;
        let mut seen = 0;
        for b in model.buffers().iter().flatten() {
            if let Some(d) = b.data().filter(|d| !d.is_empty()) {
                assert_eq!((d.bytes().as_ptr() as usize - base) % BUFFER_ALIGNMENT, 0);
                seen += 1;
            }
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn buffers_written_after_the_flatbuffer_read_back_as_the_same_model() {
        let m = model_with_buffers(&[1, 3, 17, 0, 64, 5]);
        let bytes = write_model_with_buffers_after(&m);
        let model = fb::root_as_model(&bytes).expect("verifies");
        for b in model.buffers().iter().flatten().filter(|b| b.offset() > 1) {
            assert_eq!(b.offset() % BUFFER_ALIGNMENT as u64, 0);
        }
        assert_eq!(bytes, write_model_with_buffers_after(&m.clone()));
        let back = crate::tflite::read_model(&bytes).expect("reads");
        assert_eq!(back.model, m);
        assert_eq!(write_model(&back.model), write_model(&m));
    }

    #[test]
    fn the_same_model_gives_the_same_bytes() {
        let m = model_with_buffers(&[3, 40, 9]);
        assert_eq!(write_model(&m), write_model(&m.clone()));
    }

    #[test]
    fn op_codes_are_written_in_both_fields() {
        let mut m = model_with_buffers(&[]);
        m.operator_codes = Some(vec![
            fb::OperatorCodeT {
                deprecated_builtin_code: 9,
                version: 1,
                ..Default::default()
            },
            fb::OperatorCodeT {
                builtin_code: fb::BuiltinOperator::GELU,
                version: 1,
                ..Default::default()
            },
        ]);
        let bytes = write_model(&m);
        let codes: Vec<(i8, i32)> = fb::root_as_model(&bytes)
            .expect("verifies")
            .operator_codes()
            .iter()
            .flatten()
            .map(|c| (c.deprecated_builtin_code(), c.builtin_code().0))
            .collect();
        assert_eq!(codes, vec![(9, 9), (127, fb::BuiltinOperator::GELU.0)]);
    }
}
