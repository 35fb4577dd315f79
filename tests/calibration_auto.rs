//! `calibration = "auto"` end to end: a corpus model built with it and with minmax through the CLI, every
//! artifact run in LiteRT; the choice is the same on one and two threads, and a locked rebuild takes the ranges
//! from the lock and writes the same bytes.

use crate::adaptive_rounding::gains_in_litert_and_rebuilds_identically;
use crate::interop::{model_dir, run_ok};

#[test]
fn auto_calibration_is_not_worse_than_minmax_on_digits_mlp_in_litert_and_rebuilds_identically() {
    let model = std::fs::read(model_dir("digits_mlp").join("model.tflite")).unwrap();
    // Its input is [1, 64] pixels in [0, 1].
    gains_in_litert_and_rebuilds_identically(
        model,
        &[64],
        "calibration = \"auto\"",
        [0.0, 1.0],
        &[("int8", -0.5), ("int16x8", -0.5)],
    );
}

#[test]
fn auto_calibration_chooses_the_same_ranges_on_one_and_two_threads() {
    let mdir = model_dir("digits_cnn");
    let build = |threads: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[settings]\nout_dir = \"out\"\ncache = \"cache\"\n\n[datasets.calib]\nformat = \"npz\"\npath = \"{}\"\n\n\
             [models.m]\nsource = \"{}\"\nmodes = [\"int8\", \"int16x8\"]\ndataset = \"calib\"\ncalibration = \"auto\"\n",
            mdir.join("calib.npz").display(),
            mdir.join("model.tflite").display()
        );
        std::fs::write(dir.path().join("quantize.toml"), config).unwrap();
        run_ok(dir.path(), &["build", "--threads", threads]);
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
        (
            read("out/m.int8.tflite"),
            read("out/m.int16x8.tflite"),
            read("quantize.lock"),
        )
    };
    let one = build("1");
    let two = build("2");
    assert!(
        one.0 == two.0,
        "int8 artifacts differ between 1 and 2 threads"
    );
    assert!(
        one.1 == two.1,
        "int16x8 artifacts differ between 1 and 2 threads"
    );
    assert_eq!(
        String::from_utf8_lossy(&one.2),
        String::from_utf8_lossy(&two.2)
    );
}
