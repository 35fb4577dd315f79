//! `litequant inspect`: every op of every corpus model named, I/O, parameters, modes, and clear one-line
//! errors for files that are not models.

use crate::support::{self, fixtures};
use litequant::graph::Graph;
use litequant::inspect::{inspect, inspect_file, Inspection};
use litequant::quantize::Mode;
use std::collections::BTreeMap;

fn inspect_bytes(bytes: &[u8]) -> Inspection {
    inspect(
        &Graph::from_bytes(bytes).expect("reads"),
        bytes.len() as u64,
    )
}

fn info(model: &std::path::Path) -> serde_json::Value {
    let path = model.with_file_name("info.json");
    serde_json::from_slice(&std::fs::read(&path).expect("info.json")).expect("info.json parses")
}

#[test]
fn inspect_names_every_op_of_every_corpus_model_and_tf_reference() {
    for (name, path) in support::corpus_models() {
        let mut files = vec![path.clone()];
        let tf = path.with_file_name("tf");
        if let Ok(entries) = std::fs::read_dir(&tf) {
            let mut refs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            refs.sort();
            files.extend(refs);
        }
        for file in files {
            let report = inspect_file(&file).unwrap_or_else(|e| panic!("{e}"));
            let n_ops: usize = report.subgraphs.iter().map(|s| s.ops).sum();
            assert_eq!(report.ops.len(), n_ops, "{}", file.display());
            for op in &report.ops {
                assert!(
                    !op.op.contains("UNKNOWN") && !op.op.contains('?'),
                    "{}: op {op:?}",
                    file.display()
                );
            }
            assert!(
                report.to_string().lines().count() > n_ops,
                "{name}: every op gets a line"
            );
        }
        // The float source: the histogram and parameters agree with what the corpus recorded.
        let report = inspect_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let info = info(&path);
        let mut ops: BTreeMap<String, u64> = BTreeMap::new();
        for h in &report.op_histogram {
            *ops.entry(h.op.clone()).or_default() += h.count as u64;
        }
        let expected: BTreeMap<String, u64> =
            serde_json::from_value(info["ops"].clone()).expect("info.json ops is a map");
        assert_eq!(ops, expected, "{name}: op histogram");
        // The corpus counts every constant tensor; inspect counts each buffer once (a constant two subgraphs
        // share, as digits_gru's loop does, is one parameter set). Both counts are recomputed here.
        let expected: BTreeMap<String, u64> =
            serde_json::from_value(info["const_elements_by_dtype"].clone()).expect("a map");
        let g = litequant::graph::Graph::from_file(&path).expect("reads");
        let buffers = g.model.buffers.as_deref().unwrap_or(&[]);
        let mut per_tensor: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_buffer: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for t in g
            .model
            .subgraphs
            .iter()
            .flatten()
            .flat_map(|sg| sg.tensors.iter().flatten())
        {
            let has_data = buffers
                .get(t.buffer as usize)
                .and_then(|b| b.data.as_ref())
                .is_some_and(|d| !d.is_empty());
            if !has_data {
                continue;
            }
            let n: u64 = t.shape.iter().flatten().map(|&d| d.max(0) as u64).product();
            let ty = litequant::tflite::type_name(t.type_).to_lowercase();
            *per_tensor.entry(ty.clone()).or_default() += n;
            if seen.insert(t.buffer) {
                *per_buffer.entry(ty).or_default() += n;
            }
        }
        assert_eq!(per_tensor, expected, "{name}: constants per tensor");
        assert_eq!(
            report.parameters_by_type, per_buffer,
            "{name}: parameters by type (each buffer once)"
        );
        let inputs: Vec<&str> = report.inputs.iter().map(|t| t.name.as_str()).collect();
        let expected: Vec<String> = info["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(inputs, expected, "{name}: inputs");
    }
}

#[test]
fn inspect_reports_io_parameters_and_signatures_of_digits_mlp() {
    let report = inspect_bytes(&fixtures::corpus_copy("digits_mlp"));
    assert_eq!(report.file_size, 28336);
    assert_eq!(report.inputs.len(), 1);
    assert_eq!(report.inputs[0].name, "serving_default_x:0");
    assert_eq!(report.inputs[0].shape, vec![1, 64]);
    assert_eq!(report.inputs[0].dtype, "float32");
    assert!(report.inputs[0].scale.is_empty());
    assert_eq!(report.parameters, 6570);
    assert_eq!(report.signatures.len(), 1);
    assert_eq!(report.signatures[0].key, "serving_default");
    assert_eq!(report.signatures[0].inputs[0].0, "x");
    assert!(report.min_runtime_version.is_some());
}

#[test]
fn inspect_lists_the_modes_that_can_quantize_each_op() {
    let report = inspect_bytes(&fixtures::corpus_copy("digits_mlp"));
    for op in &report.ops {
        match op.op.as_str() {
            "FULLY_CONNECTED" => assert_eq!(
                op.modes,
                vec![Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8]
            ),
            // No constant input: nothing for dynamic or float16 to store narrower.
            "SOFTMAX" => assert_eq!(op.modes, vec![Mode::Int8, Mode::Int16x8]),
            other => panic!("unexpected op {other}"),
        }
        assert!(!op.outputs.is_empty() && !op.outputs[0].is_empty());
    }
}

#[test]
fn inspect_shows_quantization_of_a_tf_int8_model() {
    // TF's converter's strict int8 output of digits_mlp (its `tf/full_int8.tflite`), committed as a fixture.
    let path = fixtures::fixtures_dir().join("models/digits_mlp_tf_full_int8.tflite");
    let report = inspect_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let input = &report.inputs[0];
    assert_eq!(input.dtype, "int8");
    assert_eq!(input.scale.len(), 1);
    assert_eq!(input.zero_point.len(), 1);
    assert!(report
        .op_histogram
        .iter()
        .any(|h| h.op == "FULLY_CONNECTED" && h.types.starts_with("i8,i8,i32")));
    assert!(report.min_runtime_version.is_some());
}

#[test]
fn inspect_covers_every_subgraph_and_offers_modes_in_each() {
    let report = inspect_bytes(&fixtures::while_loop());
    assert_eq!(report.subgraphs.len(), 3);
    assert_eq!(report.ops.len(), 4);
    // Loop bodies are quantized too: the body's float ADD can be int8; the cond's LESS says why not.
    let body_add = report
        .ops
        .iter()
        .find(|o| o.subgraph == 2 && o.index == 1)
        .expect("body op");
    assert!(body_add.modes.contains(&litequant::quantize::Mode::Int8));
    let less = report.ops.iter().find(|o| o.op == "LESS").expect("cond op");
    assert!(!less.float_reasons.is_empty());
    assert!(report.to_string().contains("why ops stay float"));
    assert_eq!(report.ops[0].op, "WHILE");
    assert!(
        report.to_string().contains("0:0"),
        "ops of several subgraphs are numbered subgraph:index"
    );
}

#[test]
fn inspect_names_custom_ops_and_legacy_codes() {
    let report = inspect_bytes(&fixtures::custom_op());
    assert_eq!(report.ops[0].op, "CUSTOM(AudioSpectrogram)");
    assert!(report.ops[0].modes.is_empty());
    let report = inspect_bytes(&fixtures::legacy_opcodes_mlp());
    assert!(report.signatures.is_empty());
    assert!(report
        .ops
        .iter()
        .all(|o| o.op == "FULLY_CONNECTED" || o.op == "SOFTMAX"));
}

#[test]
fn inspect_human_output_is_stable() {
    insta::assert_snapshot!(
        "digits_mlp_human",
        inspect_bytes(&fixtures::corpus_copy("digits_mlp")).to_string()
    );
    insta::assert_snapshot!(
        "while_loop_human",
        inspect_bytes(&fixtures::while_loop()).to_string()
    );
}

#[test]
fn inspect_json_is_stable() {
    insta::assert_json_snapshot!("custom_op_json", inspect_bytes(&fixtures::custom_op()));
}

#[test]
fn files_that_are_not_models_give_one_line_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mlp = fixtures::corpus_copy("digits_mlp");
    let mut wrong_identifier = mlp.clone();
    wrong_identifier[4..8].copy_from_slice(b"TFL2");
    let mut old_schema = Graph::from_bytes(&mlp).expect("reads");
    old_schema.model.version = 2;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.tflite", Vec::new(), "too short"),
        (
            "truncated.tflite",
            mlp[..mlp.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            "text.tflite",
            b"this is not a flatbuffer at all".to_vec(),
            "not a TFLite model",
        ),
        ("identifier.tflite", wrong_identifier, "file identifier"),
        ("schema.tflite", old_schema.to_bytes(), "schema version 2"),
    ];
    for (file, bytes, reason) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).expect("write");
        let message = inspect_file(&path).expect_err("not a model").to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(reason), "{file}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    for path in [dir.path().join("missing.tflite"), dir.path().to_path_buf()] {
        let message = inspect_file(&path).expect_err("unreadable").to_string();
        assert!(
            message.starts_with(&path.display().to_string()) && message.contains("cannot read"),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

/// Prints the report of `LITEQUANT_INSPECT` (a path), for eyeballing: `cargo test --test tests print_inspection -- --ignored --nocapture`.
#[test]
#[ignore = "prints a report for a person to read"]
fn print_inspection() {
    let path =
        std::env::var_os("LITEQUANT_INSPECT").expect("set LITEQUANT_INSPECT to a .tflite path");
    let report = inspect_file(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}
