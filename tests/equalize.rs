//! `equalize = true` (cross-layer equalization) end to end: a depthwise -> pointwise pair with one channel whose
//! activations dwarf the others (as MediaPipe's face detector has), built through the CLI with and without
//! it, every artifact run in LiteRT. The rescaling itself (same products, equal ranges) is specified in
//! `src/graph/equalize.rs`.

use crate::interop::{evaluate, run_ok};
use litequant::graph::{Graph, TensorId};
use litequant::tflite::fb::{self, BuiltinOperator as Op, TensorType};

const C: usize = 8;
const OUTLIER: usize = 3;

/// A model with one empty subgraph, to add tensors and ops to.
pub(crate) fn empty_graph() -> Graph {
    let mut m = fb::ModelT::default();
    m.version = 3;
    m.buffers = Some(vec![fb::BufferT::default()]);
    m.subgraphs = Some(vec![fb::SubGraphT::default()]);
    Graph::from_model(m)
}

/// The model's bytes once `ops` run from input `x` to output `y`.
pub(crate) fn model_bytes(
    mut g: Graph,
    ops: Vec<fb::OperatorT>,
    x: TensorId,
    y: TensorId,
) -> Vec<u8> {
    let sg = g.main_mut();
    sg.operators = Some(ops);
    sg.inputs = Some(vec![x.0 as i32]);
    sg.outputs = Some(vec![y.0 as i32]);
    g.to_bytes()
}

pub(crate) fn tensor(g: &mut Graph, name: &str, shape: &[i32]) -> TensorId {
    let mut t = fb::TensorT::default();
    t.name = Some(name.into());
    t.shape = Some(shape.to_vec());
    t.type_ = TensorType::FLOAT32;
    g.add_tensor(t)
}

pub(crate) fn constant(g: &mut Graph, name: &str, shape: &[i32], values: &[f32]) -> TensorId {
    let t = tensor(g, name, shape);
    g.set_tensor_data(t, values.iter().flat_map(|v| v.to_le_bytes()).collect());
    t
}

/// A deterministic pattern in [-1, 1].
pub(crate) fn pattern(i: usize) -> f32 {
    (((i * 37 + 11) % 23) as f32 / 11.0) - 1.0
}

/// `x [1,8,8,C] -> DEPTHWISE_CONV_2D 3x3 (channel OUTLIER's weights x200) -> CONV_2D 1x1 (input channel
/// OUTLIER's weights /200) -> y [1,8,8,C]`: the float function barely sees the outlier channel, a per-tensor
/// activation scale sized for it flattens every other channel.
fn outlier_pair() -> Vec<u8> {
    let mut g = empty_graph();
    let x = tensor(&mut g, "x", &[1, 8, 8, C as i32]);
    let dw_w: Vec<f32> = (0..9 * C)
        .map(|i| pattern(i) * if i % C == OUTLIER { 200.0 } else { 1.0 })
        .collect();
    let dw_w = constant(&mut g, "dw/w", &[1, 3, 3, C as i32], &dw_w);
    let dw_b: Vec<f32> = (0..C).map(|c| 0.1 * pattern(c + 5)).collect();
    let dw_b = constant(&mut g, "dw/b", &[C as i32], &dw_b);
    let h = tensor(&mut g, "dw", &[1, 8, 8, C as i32]);
    let pw_w: Vec<f32> = (0..C * C)
        .map(|i| pattern(i + 3) * if i % C == OUTLIER { 0.005 } else { 1.0 })
        .collect();
    let pw_w = constant(&mut g, "pw/w", &[C as i32, 1, 1, C as i32], &pw_w);
    let pw_b: Vec<f32> = (0..C).map(|c| 0.1 * pattern(c + 9)).collect();
    let pw_b = constant(&mut g, "pw/b", &[C as i32], &pw_b);
    let y = tensor(&mut g, "y", &[1, 8, 8, C as i32]);
    let mut dw = g.new_op(Op::DEPTHWISE_CONV_2D, 1, &[x, dw_w, dw_b], &[h]);
    let mut o = fb::DepthwiseConv2DOptionsT::default();
    o.padding = fb::Padding::SAME;
    (o.stride_w, o.stride_h, o.depth_multiplier) = (1, 1, 1);
    (o.dilation_w_factor, o.dilation_h_factor) = (1, 1);
    dw.builtin_options = fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(o));
    let mut pw = g.new_op(Op::CONV_2D, 1, &[h, pw_w, pw_b], &[y]);
    let mut o = fb::Conv2DOptionsT::default();
    o.padding = fb::Padding::VALID;
    (o.stride_w, o.stride_h) = (1, 1);
    (o.dilation_w_factor, o.dilation_h_factor) = (1, 1);
    pw.builtin_options = fb::BuiltinOptionsT::Conv2DOptions(Box::new(o));
    model_bytes(g, vec![dw, pw], x, y)
}

#[test]
fn equalize_lifts_int8_and_int16x8_of_an_outlier_channel_pair_in_litert() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("pair.tflite");
    std::fs::write(&model, outlier_pair()).unwrap();
    let config = format!(
        "[settings]\nout_dir = \"out\"\ncache = \"cache\"\n\n[datasets.noise]\nformat = \"random\"\n\
         range = [-1.0, 1.0]\nsamples = 64\n\n\
         [models.plain]\nsource = \"{m}\"\nmodes = [\"int8\", \"int16x8\", \"float16\"]\ndataset = \"noise\"\n\n\
         [models.eq]\nsource = \"{m}\"\nmodes = [\"int8\", \"int16x8\", \"float16\"]\ndataset = \"noise\"\n\
         equalize = true\n",
        m = model.display()
    );
    std::fs::write(dir.path().join("quantize.toml"), config).unwrap();
    run_ok(dir.path(), &["build"]);
    let sqnr = |name: &str| {
        let e = evaluate(&model, &dir.path().join("out").join(name), None, 32);
        assert!(e.loads_ok);
        e.sqnr_db
    };
    // float16 is not rescaled (rounding to float16 does not depend on a channel's scale).
    let read = |name: &str| std::fs::read(dir.path().join("out").join(name)).unwrap();
    assert_eq!(read("eq.float16.tflite"), read("plain.float16.tflite"));
    assert!(sqnr("eq.float16.tflite") >= 55.0);
    for mode in ["int8", "int16x8"] {
        let plain = sqnr(&format!("plain.{mode}.tflite"));
        let eq = sqnr(&format!("eq.{mode}.tflite"));
        eprintln!("{mode}: plain {plain:.1} dB, equalized {eq:.1} dB");
        assert!(
            eq >= plain + 10.0,
            "{mode}: equalized {eq:.1} dB, plain {plain:.1} dB"
        );
    }
}
