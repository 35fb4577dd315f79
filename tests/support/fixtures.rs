//! Fixture models, built in memory with the flatbuffers object API. Pure Rust and deterministic: the same
//! call always gives the same bytes, and `tests/fixtures/models/<name>.tflite` holds exactly those bytes
//! (`fixture_files_match_their_generator` checks it; `LITEQUANT_BLESS=1` rewrites them).
//!
//! * [`legacy_opcodes_mlp`]: operator codes only in `deprecated_builtin_code`, no signature defs;
//! * [`fp16_weights_cnn`]: every float constant stored as FLOAT16 behind a DEQUANTIZE;
//! * [`while_loop`]: three subgraphs, a WHILE in the main one calling a condition and a body;
//! * [`custom_op`]: a CUSTOM op (`AudioSpectrogram`, which LiteRT's builtin resolver provides).

use litequant::graph::{Graph, OpIndex, TensorId};
use litequant::tflite::{fb, write_model};
use std::path::PathBuf;

/// `tests/fixtures` of this crate.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// The committed copy of a corpus model (`digits_mlp`, `digits_cnn`).
pub fn corpus_copy(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join("models").join(format!("{name}.tflite"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()))
}

/// Every generated fixture: `(name, bytes)`.
pub fn generated() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("legacy_opcodes_mlp", legacy_opcodes_mlp()),
        ("fp16_weights_cnn", fp16_weights_cnn()),
        ("while_loop", while_loop()),
        ("custom_op", custom_op()),
    ]
}

/// Every fixture model, committed corpus copies and generated ones: `(name, bytes)`.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = vec![
        ("digits_mlp", corpus_copy("digits_mlp")),
        ("digits_cnn", corpus_copy("digits_cnn")),
    ];
    all.extend(generated());
    all
}

/// Packs a model exactly as given, without the writer's normalisation (op codes, alignment): how old
/// converters wrote files.
fn pack_verbatim(model: &fb::ModelT) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let root = model.pack(&mut fbb);
    fb::finish_model_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

/// `digits_mlp` as a pre-2.3 converter would write it: each operator code only in the deprecated byte
/// (`builtin_code` left at its default, 0 = ADD) and no signature defs.
pub fn legacy_opcodes_mlp() -> Vec<u8> {
    let mut g = Graph::from_bytes(&corpus_copy("digits_mlp")).expect("digits_mlp fixture reads");
    for code in g.model.operator_codes.iter_mut().flatten() {
        let real = litequant::tflite::op_code(code);
        code.deprecated_builtin_code =
            i8::try_from(real.0).expect("digits_mlp uses codes below 128");
        code.builtin_code = fb::BuiltinOperator::ADD;
    }
    g.model.signature_defs = None;
    pack_verbatim(&g.model)
}

/// `digits_cnn` with every FLOAT32 constant stored as FLOAT16 and a DEQUANTIZE (v3) producing the original
/// float32 tensor, the DEQUANTIZE ops first in execution order (as TF's float16 mode writes them).
pub fn fp16_weights_cnn() -> Vec<u8> {
    let mut g = Graph::from_bytes(&corpus_copy("digits_cnn")).expect("digits_cnn fixture reads");
    let constants: Vec<TensorId> = (0..g.tensors().len())
        .map(TensorId)
        .filter(|&t| g.tensor(t).type_ == fb::TensorType::FLOAT32 && g.is_constant(t))
        .collect();
    for (k, &t) in constants.iter().enumerate() {
        let values = g.const_f32(t).expect("a FLOAT32 constant");
        let halves: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let buffer = g.add_buffer(halves);
        let source = g.tensor(t).clone();
        let mut stored = fb::TensorT::default();
        stored.shape = source.shape.clone();
        stored.type_ = fb::TensorType::FLOAT16;
        stored.buffer = buffer;
        stored.name = Some(format!("{}_fp16", source.name.as_deref().unwrap_or("")));
        let f16 = g.add_tensor(stored);
        g.tensor_mut(t).buffer = 0;
        let op = g.new_op(fb::BuiltinOperator::DEQUANTIZE, 3, &[f16], &[t]);
        g.insert_op(OpIndex(k), op);
    }
    g.remove_unused_buffers();
    write_model(&g.model)
}

fn tensor(name: &str, shape: &[i32], type_: fb::TensorType, buffer: u32) -> fb::TensorT {
    let mut t = fb::TensorT::default();
    t.shape = Some(shape.to_vec());
    t.type_ = type_;
    t.buffer = buffer;
    t.name = Some(name.to_string());
    t
}

fn op(
    opcode_index: u32,
    inputs: &[i32],
    outputs: &[i32],
    options: fb::BuiltinOptionsT,
) -> fb::OperatorT {
    let mut op = fb::OperatorT::default();
    op.opcode_index = opcode_index;
    op.inputs = Some(inputs.to_vec());
    op.outputs = Some(outputs.to_vec());
    op.builtin_options = options;
    op.debug_metadata_index = -1;
    op
}

fn code(builtin: fb::BuiltinOperator, custom: Option<&str>) -> fb::OperatorCodeT {
    let mut c = fb::OperatorCodeT::default();
    c.deprecated_builtin_code = builtin.0.min(127) as i8;
    c.custom_code = custom.map(str::to_string);
    c.version = 1;
    c.builtin_code = builtin;
    c
}

fn buffer(data: Vec<u8>) -> fb::BufferT {
    let mut b = fb::BufferT::default();
    b.data = Some(data);
    b
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn signature(inputs: &[(&str, u32)], outputs: &[(&str, u32)]) -> fb::SignatureDefT {
    let maps = |m: &[(&str, u32)]| {
        let maps = m.iter().map(|&(n, t)| {
            let mut map = fb::TensorMapT::default();
            map.name = Some(n.to_string());
            map.tensor_index = t;
            map
        });
        Some(maps.collect())
    };
    let mut s = fb::SignatureDefT::default();
    s.inputs = maps(inputs);
    s.outputs = maps(outputs);
    s.signature_key = Some("serving_default".to_string());
    s
}

fn subgraph(
    name: &str,
    tensors: Vec<fb::TensorT>,
    inputs: &[i32],
    outputs: &[i32],
    ops: Vec<fb::OperatorT>,
) -> fb::SubGraphT {
    let mut sg = fb::SubGraphT::default();
    sg.tensors = Some(tensors);
    sg.inputs = Some(inputs.to_vec());
    sg.outputs = Some(outputs.to_vec());
    sg.operators = Some(ops);
    sg.name = Some(name.to_string());
    sg.debug_metadata_index = -1;
    sg
}

fn model(
    description: &str,
    codes: Vec<fb::OperatorCodeT>,
    subgraphs: Vec<fb::SubGraphT>,
    buffers: Vec<fb::BufferT>,
    signature: fb::SignatureDefT,
) -> fb::ModelT {
    let mut m = fb::ModelT::default();
    m.version = 3;
    m.description = Some(description.to_string());
    m.operator_codes = Some(codes);
    m.subgraphs = Some(subgraphs);
    m.buffers = Some(buffers);
    m.signature_defs = Some(vec![signature]);
    m
}

/// `y = x + 3 * w` computed by a WHILE loop: subgraph 1 is the condition (`i < 3`), subgraph 2 the body
/// (`i + 1`, `x + w`). The body holds a float constant, so quantizers must leave it intact or refuse.
pub fn while_loop() -> Vec<u8> {
    use fb::{BuiltinOperator as B, TensorType as T};
    let mut loop_options = fb::WhileOptionsT::default();
    loop_options.cond_subgraph_index = 1;
    loop_options.body_subgraph_index = 2;
    let main = subgraph(
        "main",
        vec![
            tensor("x", &[1, 4], T::FLOAT32, 0),
            tensor("i0", &[], T::INT32, 1),
            tensor("while/i", &[], T::INT32, 0),
            tensor("y", &[1, 4], T::FLOAT32, 0),
        ],
        &[0],
        &[3],
        vec![op(
            0,
            &[1, 0],
            &[2, 3],
            fb::BuiltinOptionsT::WhileOptions(Box::new(loop_options)),
        )],
    );
    let cond = subgraph(
        "cond",
        vec![
            tensor("cond/i", &[], T::INT32, 0),
            tensor("cond/x", &[1, 4], T::FLOAT32, 0),
            tensor("cond/limit", &[], T::INT32, 2),
            tensor("cond/less", &[], T::BOOL, 0),
        ],
        &[0, 1],
        &[3],
        vec![op(
            1,
            &[0, 2],
            &[3],
            fb::BuiltinOptionsT::LessOptions(Box::default()),
        )],
    );
    let add = || fb::BuiltinOptionsT::AddOptions(Box::default());
    let body = subgraph(
        "body",
        vec![
            tensor("body/i", &[], T::INT32, 0),
            tensor("body/x", &[1, 4], T::FLOAT32, 0),
            tensor("body/one", &[], T::INT32, 3),
            tensor("body/i_next", &[], T::INT32, 0),
            tensor("body/w", &[4], T::FLOAT32, 4),
            tensor("body/x_next", &[1, 4], T::FLOAT32, 0),
        ],
        &[0, 1],
        &[3, 5],
        vec![op(2, &[0, 2], &[3], add()), op(2, &[1, 4], &[5], add())],
    );
    write_model(&model(
        "litequant fixture: WHILE loop over two subgraphs",
        vec![
            code(B::WHILE, None),
            code(B::LESS, None),
            code(B::ADD, None),
        ],
        vec![main, cond, body],
        vec![
            fb::BufferT::default(),
            buffer(0i32.to_le_bytes().to_vec()),
            buffer(3i32.to_le_bytes().to_vec()),
            buffer(1i32.to_le_bytes().to_vec()),
            buffer(f32_bytes(&[0.5, -1.0, 2.0, 0.25])),
        ],
        signature(&[("x", 0)], &[("y", 3)]),
    ))
}

/// flexbuffers map `{magnitude_squared: true, stride: 8, window_size: 16}`, the custom options of
/// `AudioSpectrogram` (as `flexbuffers.Dumps` writes it: sorted keys, then the values and their types).
const AUDIO_SPECTROGRAM_OPTIONS: [u8; 53] = [
    119, 105, 110, 100, 111, 119, 95, 115, 105, 122, 101, 0, 115, 116, 114, 105, 100, 101, 0, 109,
    97, 103, 110, 105, 116, 117, 100, 101, 95, 115, 113, 117, 97, 114, 101, 100, 0, 3, 19, 27, 40,
    3, 1, 3, 1, 8, 16, 104, 4, 4, 6, 36, 1,
];

/// A CUSTOM op (`AudioSpectrogram`: 64 samples, window 16, stride 8 -> [1, 7, 9]) feeding a
/// FULLY_CONNECTED with float weights ([7, 9] x [4, 9]^T -> [7, 4]).
pub fn custom_op() -> Vec<u8> {
    use fb::{BuiltinOperator as B, TensorType as T};
    let weights: Vec<f32> = (0..36)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let bias = [0.25f32, -0.5, 0.0, 1.0];
    let mut spectrogram = op(0, &[0], &[1], fb::BuiltinOptionsT::NONE);
    spectrogram.custom_options = Some(AUDIO_SPECTROGRAM_OPTIONS.to_vec());
    spectrogram.custom_options_format = fb::CustomOptionsFormat::FLEXBUFFERS;
    let dense = op(
        1,
        &[1, 2, 3],
        &[4],
        fb::BuiltinOptionsT::FullyConnectedOptions(Box::default()),
    );
    let main = subgraph(
        "main",
        vec![
            tensor("audio", &[64, 1], T::FLOAT32, 0),
            tensor("spectrogram", &[1, 7, 9], T::FLOAT32, 0),
            tensor("dense/kernel", &[4, 9], T::FLOAT32, 1),
            tensor("dense/bias", &[4], T::FLOAT32, 2),
            tensor("dense/out", &[7, 4], T::FLOAT32, 0),
        ],
        &[0],
        &[4],
        vec![spectrogram, dense],
    );
    write_model(&model(
        "litequant fixture: custom op",
        vec![
            code(B::CUSTOM, Some("AudioSpectrogram")),
            code(B::FULLY_CONNECTED, None),
        ],
        vec![main],
        vec![
            fb::BufferT::default(),
            buffer(f32_bytes(&weights)),
            buffer(f32_bytes(&bias)),
        ],
        signature(&[("audio", 0)], &[("out", 4)]),
    ))
}
