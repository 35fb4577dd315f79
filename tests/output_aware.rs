//! `output_aware = true` end to end: a classifier whose logits mostly sit far below the winner, where minmax
//! spends the int8 steps of the SOFTMAX input on values the output cannot tell apart. Built through the CLI
//! with and without it, both run in LiteRT, then a locked rebuild on another thread count writes the same
//! bytes. The range choice itself is specified in `src/calibrate/heads.rs`.

use crate::adaptive_rounding::gains_in_litert_and_rebuilds_identically;
use crate::equalize::{constant, empty_graph, model_bytes, tensor};
use crate::interop::run_ok;
use litequant::tflite::fb::{self, BuiltinOperator as Op};

/// `x [1, 16] -> FULLY_CONNECTED (10 classes) -> SOFTMAX -> y [1, 10]`: for inputs in [0, 1], classes 0 and 1
/// trade places around +4 (their weights differ in sign on half of the inputs), classes 2..9 stay near -20.
fn far_below_logits() -> Vec<u8> {
    let mut g = empty_graph();
    let x = tensor(&mut g, "x", &[1, 16]);
    let w: Vec<f32> = (0..10 * 16)
        .map(|i| match (i / 16, i % 16) {
            (0, k) if k < 8 => 0.9,
            (1, k) if k >= 8 => 0.9,
            (0 | 1, _) => 0.1,
            (c, k) => 0.05 * ((c * 7 + k * 3) % 5) as f32,
        })
        .collect();
    let w = constant(&mut g, "dense/w", &[10, 16], &w);
    let b: Vec<f32> = (0..10)
        .map(|c| if c < 2 { 0.0 } else { -20.0 - c as f32 })
        .collect();
    let b = constant(&mut g, "dense/b", &[10], &b);
    let logits = tensor(&mut g, "logits", &[1, 10]);
    let mut fc = g.new_op(Op::FULLY_CONNECTED, 1, &[x, w, b], &[logits]);
    fc.builtin_options = fb::BuiltinOptionsT::FullyConnectedOptions(Box::default());
    let y = tensor(&mut g, "y", &[1, 10]);
    let mut softmax = g.new_op(Op::SOFTMAX, 1, &[logits], &[y]);
    let mut o = fb::SoftmaxOptionsT::default();
    o.beta = 1.0;
    softmax.builtin_options = fb::BuiltinOptionsT::SoftmaxOptions(Box::new(o));
    model_bytes(g, vec![fc, softmax], x, y)
}

#[test]
fn output_aware_ranges_sharpen_a_softmax_head_in_litert_and_rebuild_identically_from_the_lock() {
    // int16x8 keeps its ranges (the option acts on int8 activations): no loss there.
    gains_in_litert_and_rebuilds_identically(
        far_below_logits(),
        &[16],
        "output_aware = true",
        [0.0, 1.0],
        &[("int8", 2.0), ("int16x8", 0.0)],
    );
}

#[test]
fn an_excluded_head_keeps_its_minmax_range() {
    // A SOFTMAX kept float does not write to the int8 grid the choice assumes: the same bytes with and
    // without the option.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.tflite");
    std::fs::write(&model, far_below_logits()).unwrap();
    let entry = |name: &str, extra: &str| {
        format!(
            "[models.{name}]\nsource = \"{}\"\nmodes = [\"int8\"]\ndataset = \"noise\"\n\
             exclude = [\"SOFTMAX\"]\n{extra}\n",
            model.display()
        )
    };
    let config = format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.noise]\nformat = \"random\"\nrange = [0.0, 1.0]\n\
         samples = 32\n\n{}\n{}",
        entry("plain", ""),
        entry("aware", "output_aware = true")
    );
    std::fs::write(dir.path().join("quantize.toml"), config).unwrap();
    run_ok(dir.path(), &["build"]);
    let read = |name: &str| std::fs::read(dir.path().join("out").join(name)).unwrap();
    assert_eq!(read("aware.int8.tflite"), read("plain.int8.tflite"));
}
