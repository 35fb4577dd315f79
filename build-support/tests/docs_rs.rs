//! Under docs.rs (`DOCS_RS` set) the builder does no heavy work and still writes a module that compiles.
//! Its own test binary: it sets `DOCS_RS` for the whole process.

mod common;

use common::fixture;

#[test]
fn docs_rs_gets_a_module_without_quantizing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = tmp.path().join("quantize.toml");
    std::fs::write(
        &config,
        format!(
            "[models.m]\nsource = {:?}\nmodes = [\"int8\"]\ndataset = \"missing\"\n[datasets.missing]\nformat = \"npz\"\npath = \"nowhere.npz\"\n",
            fixture("models/digits_mlp.tflite").display().to_string()
        ),
    )
    .unwrap();
    std::env::set_var("DOCS_RS", "1");
    let artifacts = litequant_build::Builder::new()
        .config(&config)
        .out_dir(&out)
        .try_compile();
    std::env::remove_var("DOCS_RS");
    assert!(artifacts.unwrap().is_empty());
    let module = std::fs::read_to_string(out.join("quantized_models.rs")).unwrap();
    assert!(module.contains("pub static INT8"), "{module}");
    assert!(!out.join("m.int8.tflite").exists());
}
