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

fn aligned_bytes<'b>(fbb: &mut FlatBufferBuilder<'b>, data: &[u8]) -> WIPOffset<flatbuffers::Vector<'b, u8>> {
    fbb.push(Align16);
    let pad = (BUFFER_ALIGNMENT - (fbb.unfinished_data().len() + data.len()) % BUFFER_ALIGNMENT) % BUFFER_ALIGNMENT;
    for _ in 0..pad {
        fbb.push(0u8);
    }
    fbb.create_vector(data)
}

/// Serializes a model. The same model always gives the same bytes.
///
/// Every buffer's data starts on a 16-byte boundary of the output. The opcode table gets
/// `deprecated_builtin_code = min(code, 127)` so that runtimes reading either field agree.
pub fn write_model(model: &fb::ModelT) -> Vec<u8> {
    let size_hint = model
        .buffers
        .as_ref()
        .map_or(0, |b| b.iter().map(|b| b.data.as_ref().map_or(0, Vec::len) + 32).sum::<usize>());
    let mut fbb = FlatBufferBuilder::with_capacity(size_hint + (1 << 16));

    // Buffers first: they end up at the back of the file, after the graph, like TF's exporter puts them.
    let buffers = model.buffers.as_ref().map(|bufs| {
        let offsets: Vec<_> = bufs
            .iter()
            .rev()
            .map(|b| {
                let data = b.data.as_ref().map(|d| aligned_bytes(&mut fbb, d));
                fb::Buffer::create(&mut fbb, &fb::BufferArgs { data, offset: b.offset, size: b.size })
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
