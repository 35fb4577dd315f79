//! `adaptive_rounding = true` end to end: a 1x1 convolution reading correlated channels, one of them loud (as
//! the pointwise convolution after MediaPipe's outlier depthwise channel does), built through the CLI with and without it,
//! every artifact run in LiteRT; then a locked rebuild on another thread count writes the same bytes. The
//! rounding itself is specified in `src/quantize/rounding.rs`.

use crate::equalize::{constant, pattern, tensor};
use crate::interop::{evaluate, litequant};
use litequant::graph::{Graph, TensorId};
use litequant::tflite::fb::{self, BuiltinOperator as Op};

const C: usize = 16;
const LOUD: usize = 5;

/// `x [1,6,6,C] -> CONV_2D 1x1 "mix" (identity + 0.6 everywhere: channels sharing one component) -> MUL by
/// [1, .., 4 (channel LOUD), .., 1] -> CONV_2D 1x1 -> y [1,6,6,C]`. The last convolution's inputs are correlated,
/// one of them loud: the errors of its rounded weights add up along the shared component.
fn loud_channel_conv() -> Vec<u8> {
    let mut m = fb::ModelT::default();
    m.version = 3;
    m.buffers = Some(vec![fb::BufferT::default()]);
    m.subgraphs = Some(vec![fb::SubGraphT::default()]);
    let mut g = Graph::from_model(m);
    let x = tensor(&mut g, "x", &[1, 6, 6, C as i32]);
    let conv = |g: &mut Graph, name: &str, input: TensorId, weights: &[f32], bias: &[f32]| {
        let w = constant(
            g,
            &format!("{name}/w"),
            &[C as i32, 1, 1, C as i32],
            weights,
        );
        let b = constant(g, &format!("{name}/b"), &[C as i32], bias);
        let out = tensor(g, name, &[1, 6, 6, C as i32]);
        let mut op = g.new_op(Op::CONV_2D, 1, &[input, w, b], &[out]);
        let mut o = fb::Conv2DOptionsT::default();
        o.padding = fb::Padding::VALID;
        (o.stride_w, o.stride_h) = (1, 1);
        (o.dilation_w_factor, o.dilation_h_factor) = (1, 1);
        op.builtin_options = fb::BuiltinOptionsT::Conv2DOptions(Box::new(o));
        (op, out)
    };
    let mix: Vec<f32> = (0..C * C)
        .map(|i| if i / C == i % C { 1.6 } else { 0.6 })
        .collect();
    let (mix, mixed) = conv(&mut g, "mix", x, &mix, &[0.0; C]);
    let gain: Vec<f32> = (0..C).map(|c| if c == LOUD { 4.0 } else { 1.0 }).collect();
    let gain = constant(&mut g, "gain", &[C as i32], &gain);
    let scaled = tensor(&mut g, "scaled", &[1, 6, 6, C as i32]);
    let mul = g.new_op(Op::MUL, 1, &[mixed, gain], &[scaled]);
    let w: Vec<f32> = (0..C * C).map(|i| pattern(i + 3)).collect();
    let b: Vec<f32> = (0..C).map(|c| 0.1 * pattern(c + 9)).collect();
    let (pw, y) = conv(&mut g, "y", scaled, &w, &b);
    let sg = g.main_mut();
    sg.operators = Some(vec![mix, mul, pw]);
    sg.inputs = Some(vec![x.0 as i32]);
    sg.outputs = Some(vec![y.0 as i32]);
    g.to_bytes()
}

#[test]
fn adaptive_rounding_lifts_a_loud_input_channel_in_litert_and_rebuilds_identically_from_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("loud.tflite");
    std::fs::write(&model, loud_channel_conv()).unwrap();
    let config = format!(
        "[settings]\nout_dir = \"out\"\ncache = \"cache\"\n\n[datasets.noise]\nformat = \"random\"\n\
         range = [0.0, 1.0]\nsamples = 64\n\n\
         [models.nearest]\nsource = \"{m}\"\nmodes = [\"int8\", \"int16x8\", \"dynamic\"]\ndataset = \"noise\"\n\n\
         [models.adaptive]\nsource = \"{m}\"\nmodes = [\"int8\", \"int16x8\", \"dynamic\"]\ndataset = \"noise\"\n\
         adaptive_rounding = true\n",
        m = model.display()
    );
    std::fs::write(dir.path().join("quantize.toml"), config).unwrap();
    let build = |args: &[&str]| {
        let out = litequant()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build(&["build", "--threads", "2"]);
    let read = |name: &str| std::fs::read(dir.path().join("out").join(name)).unwrap();
    let sqnr = |name: &str| {
        let e = evaluate(&model, &dir.path().join("out").join(name), None, 32);
        assert!(e.loads_ok);
        e.sqnr_db
    };
    // dynamic mode has no calibration data to round against: unchanged.
    assert_eq!(
        read("adaptive.dynamic.tflite"),
        read("nearest.dynamic.tflite")
    );
    // int8 is limited by the loud channel's activation scale (rounding cannot help there: no loss), int16x8 by
    // the weights.
    for (mode, gain) in [("int8", -0.5), ("int16x8", 6.0)] {
        let nearest = sqnr(&format!("nearest.{mode}.tflite"));
        let adaptive = sqnr(&format!("adaptive.{mode}.tflite"));
        eprintln!("{mode}: nearest {nearest:.1} dB, adaptive {adaptive:.1} dB");
        assert!(
            adaptive >= nearest + gain,
            "{mode}: adaptive {adaptive:.1} dB, nearest {nearest:.1} dB"
        );
    }
    // The rounding follows from the dataset the lock pins: a locked rebuild without the cache, on one
    // thread, writes the same bytes.
    let before: Vec<Vec<u8>> = ["adaptive.int8.tflite", "adaptive.int16x8.tflite"]
        .iter()
        .map(|n| read(n))
        .collect();
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
    build(&["build", "--locked", "--threads", "1"]);
    let after: Vec<Vec<u8>> = ["adaptive.int8.tflite", "adaptive.int16x8.tflite"]
        .iter()
        .map(|n| read(n))
        .collect();
    assert!(before == after, "locked rebuild on 1 thread differs");
}
