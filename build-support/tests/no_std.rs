//! The generated module compiles in a `#![no_std]` crate (it uses `core` only), with every model name made
//! an identifier, and describes the artifacts it embeds.

mod common;

use common::fixture;
use std::process::Command;

#[test]
fn generated_module_compiles_in_a_no_std_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = tmp.path().join("quantize.toml");
    std::fs::write(
        &config,
        format!(
            "[settings]\ncache = \"cache\"\n[datasets.d]\nformat = \"npz\"\npath = {:?}\n\
             [models.\"digits-mlp.v1\"]\nsource = {:?}\nmodes = [\"int8\", \"float16\", \"int16x8\"]\ndataset = \"d\"\n\
             inference_input_type = \"int8\"\ninference_output_type = \"int8\"\n\
             [models.type]\nsource = {:?}\nmodes = [\"dynamic\"]\n",
            fixture("data/digits_mlp_calib.npz").display().to_string(),
            fixture("models/digits_mlp.tflite").display().to_string(),
            fixture("models/digits_cnn.tflite").display().to_string(),
        ),
    )
    .unwrap();
    let artifacts = litequant_build::Builder::new()
        .config(&config)
        .out_dir(&out)
        .try_compile()
        .unwrap();
    assert_eq!(artifacts.len(), 4);
    let module = std::fs::read_to_string(out.join("quantized_models.rs")).unwrap();
    assert!(module.contains("pub mod digits_mlp_v1 {"), "{module}");
    assert!(module.contains("pub mod type_ {"), "{module}");

    let lib = tmp.path().join("lib.rs");
    std::fs::write(
        &lib,
        r#"//! A firmware-like crate embedding models.
#![no_std]
#![deny(warnings)]
include!(concat!(env!("OUT_DIR"), "/quantized_models.rs"));

/// The int8 model's bytes, its input scale and zero point.
pub fn embedded() -> (&'static [u8], f32, i64, i32) {
    let m = &digits_mlp_v1::INT8;
    let input = &m.inputs[0];
    (m.bytes(), input.scale[0], input.zero_point[0], input.quantize(0.5))
}

/// The other models.
pub fn others() -> [usize; 3] {
    [digits_mlp_v1::FLOAT16.len(), digits_mlp_v1::INT16X8.len(), type_::DYNAMIC.len()]
}
"#,
    )
    .unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiled = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "lib",
            "--crate-name",
            "firmware",
        ])
        .arg("--out-dir")
        .arg(tmp.path())
        .arg(&lib)
        .env("OUT_DIR", &out)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "the generated module does not compile in a no_std crate:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
}
