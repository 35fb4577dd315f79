//! The committed fixture models are what the generator in `support::fixtures` builds.

use crate::support::fixtures;
use litequant::graph::Graph;
use litequant::tflite::{fb, op_code};

#[test]
fn fixture_files_match_their_generator() {
    let bless = std::env::var_os("LITEQUANT_BLESS").is_some();
    for (name, bytes) in fixtures::generated() {
        let path = fixtures::fixtures_dir()
            .join("models")
            .join(format!("{name}.tflite"));
        if bless {
            std::fs::write(&path, &bytes).expect("write fixture");
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (LITEQUANT_BLESS=1 writes it)", path.display()));
        assert!(
            committed == bytes,
            "{} differs from its generator; rerun with LITEQUANT_BLESS=1",
            path.display()
        );
    }
}

#[test]
fn generated_fixtures_are_deterministic() {
    assert_eq!(fixtures::generated(), fixtures::generated());
}

#[test]
fn legacy_fixture_keeps_op_codes_only_in_the_deprecated_field() {
    let bytes = fixtures::legacy_opcodes_mlp();
    let raw = fb::root_as_model(&bytes).expect("verifies");
    for code in raw.operator_codes().iter().flatten() {
        assert_eq!(code.builtin_code(), fb::BuiltinOperator::ADD);
        assert!(code.deprecated_builtin_code() > 0);
    }
    assert!(raw.signature_defs().is_none());
    let g = Graph::from_bytes(&bytes).expect("reads");
    let codes: Vec<_> = g
        .model
        .operator_codes
        .iter()
        .flatten()
        .map(op_code)
        .collect();
    assert!(
        codes.contains(&fb::BuiltinOperator::FULLY_CONNECTED)
            && codes.contains(&fb::BuiltinOperator::SOFTMAX)
    );
}

#[test]
fn fp16_fixture_folds_back_to_the_float_weights() {
    let source = Graph::from_bytes(&fixtures::corpus_copy("digits_cnn")).expect("reads");
    let mut g = Graph::from_bytes(&fixtures::fp16_weights_cnn()).expect("reads");
    let dequantize = (0..g.ops().len())
        .filter(|&i| g.op_code(litequant::graph::OpIndex(i)) == fb::BuiltinOperator::DEQUANTIZE)
        .count();
    let float_constants = (0..source.tensors().len())
        .filter(|&t| source.const_f32(litequant::graph::TensorId(t)).is_some())
        .count();
    assert!(float_constants > 0);
    assert_eq!(dequantize, float_constants);
    assert_eq!(
        litequant::graph::fold_fp16_constants(&mut g).len(),
        float_constants
    );
    assert_eq!(g.ops().len(), source.ops().len());
}
