//! The `litequant` command end to end: build, check, bad input, determinism. Every artifact runs in LiteRT.

use crate::interop::{evaluate, litequant, repo};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// A config for the digits MLP fixture in `dir`, with the given `[models.*]` tables appended.
fn write_config(dir: &Path, models: &str) -> PathBuf {
    let text = format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.digits]\nformat = \"npz\"\npath = \"{}\"\nsamples = 100\n\n{models}",
        fixture("data/digits_mlp_calib.npz").display()
    );
    let path = dir.join("quantize.toml");
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

fn mlp_model(name: &str, modes: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nsource = \"{}\"\nmodes = [{modes}]\ndataset = \"digits\"\n{extra}\n",
        fixture("models/digits_mlp.tflite").display()
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], cwd: &Path) -> Run {
    let out = litequant()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("litequant runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn example_config_builds_every_artifact_and_litert_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("quantize.toml.example");
    let r = run(
        &[
            "build",
            "-c",
            example.to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(r.code, 0, "build failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let artifacts: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .collect();
    assert!(
        artifacts.len() >= 5,
        "expected the example's artifacts, found {artifacts:?}"
    );
    // One summary line per artifact, each followed by its indented accuracy table (the example has `eval`).
    assert_eq!(
        r.stdout.lines().filter(|l| !l.starts_with(' ')).count(),
        artifacts.len(),
        "one summary line per artifact:\n{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches("eval samples").count(),
        artifacts.len(),
        "an accuracy line per artifact:\n{}",
        r.stdout
    );
    for a in &artifacts {
        assert!(
            a.with_extension("json").exists(),
            "no report beside {}",
            a.display()
        );
        let e = evaluate(
            &fixture("models/digits_mlp.tflite"),
            a,
            Some(&fixture("data/digits_mlp_eval.npz")),
            100,
        );
        assert!(
            e.loads_ok,
            "LiteRT cannot run {}: {:?}",
            a.display(),
            e.error
        );
        assert!(
            e.sqnr_db > 30.0,
            "{}: SQNR {:.1} dB",
            a.display(),
            e.sqnr_db
        );
        assert!(
            e.top1_agree.unwrap_or(0.0) >= 0.97,
            "{}: top-1 agreement {:?}",
            a.display(),
            e.top1_agree
        );
    }
}

#[test]
fn build_writes_the_same_bytes_every_time_and_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &mlp_model("m", "\"dynamic\", \"float16\", \"int8\", \"int16x8\"", ""),
    );
    let cfg = cfg.to_str().unwrap();
    let mut outputs = Vec::new();
    // Fresh calibrations on 1 and 2 threads (no cache, no lock), then a rebuild from the lock the second
    // wrote (a cache miss), then a cache hit: the same bytes every time.
    let runs: [(&str, bool); 4] = [("1", true), ("2", true), ("2", false), ("1", false)];
    for (i, (threads, fresh)) in runs.iter().enumerate() {
        if *fresh {
            let _ = std::fs::remove_file(dir.path().join("quantize.lock"));
        }
        let out = dir.path().join(format!("out{i}"));
        let mut args = vec![
            "build",
            "-c",
            cfg,
            "--out-dir",
            out.to_str().unwrap(),
            "--threads",
            threads,
            "--json",
        ];
        if *fresh {
            args.push("--no-cache");
        }
        let r = run(&args, dir.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        let reports: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let int8 = &reports[2];
        let (cache, ranges) = (int8["cache"].as_str(), int8["ranges_from"].as_str());
        match i {
            0 | 1 => assert_eq!((cache, ranges), (Some("off"), Some("dataset"))),
            2 => assert_eq!((cache, ranges), (Some("miss"), Some("lock"))),
            _ => assert_eq!(cache, Some("hit")),
        }
        let bytes: Vec<Vec<u8>> = ["dynamic", "float16", "int8", "int16x8"]
            .iter()
            .map(|m| std::fs::read(out.join(format!("m.{m}.tflite"))).unwrap())
            .collect();
        outputs.push(bytes);
    }
    assert_eq!(outputs[0], outputs[1], "1 thread vs 2 threads differ");
    assert_eq!(outputs[1], outputs[2], "the lock-driven rebuild differs");
    assert_eq!(outputs[2], outputs[3], "the cache hit differs");
    let e = evaluate(
        &fixture("models/digits_mlp.tflite"),
        &dir.path().join("out0/m.int8.tflite"),
        Some(&fixture("data/digits_mlp_eval.npz")),
        20,
    );
    assert!(e.loads_ok, "{:?}", e.error);
}

#[test]
fn strict_int8_with_int8_io_has_no_float_compute_and_int8_io() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "op_sets = [\"TFLITE_BUILTINS_INT8\"]\ninference_input_type = \"int8\"\ninference_output_type = \"int8\"";
    let cfg = write_config(dir.path(), &mlp_model("strict", "\"int8\"", extra));
    let r = run(&["build", "-c", cfg.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let e = evaluate(
        &fixture("models/digits_mlp.tflite"),
        &dir.path().join("out/strict.int8.tflite"),
        Some(&fixture("data/digits_mlp_eval.npz")),
        100,
    );
    assert!(e.loads_ok, "{:?}", e.error);
    assert_eq!(e.input_types, vec!["int8"]);
    assert_eq!(e.output_types, vec!["int8"]);
    assert_eq!(e.float_compute_ops, 0);
    assert!(e.sqnr_db > 35.0, "SQNR {:.1}", e.sqnr_db);
}

#[test]
fn corrupt_or_foreign_model_is_a_one_line_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("models/digits_mlp.tflite")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.tflite", good[..good.len() / 3].to_vec()),
        (
            "random.tflite",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        (
            "text.tflite",
            b"this is not a model at all, just some text".to_vec(),
        ),
        ("empty.tflite", Vec::new()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let r = run(&["inspect", path.to_str().unwrap()], dir.path());
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains(name),
            "{name}: error does not name the file: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "{name}: not one line: {}",
            r.stderr
        );
    }
    let missing = dir.path().join("missing.tflite");
    let r = run(&["inspect", missing.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.tflite"), "{}", r.stderr);
}

#[test]
fn a_failing_job_is_named_and_the_others_keep_their_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.tflite");
    let good = std::fs::read(fixture("models/digits_mlp.tflite")).unwrap();
    std::fs::write(&broken, &good[..1000]).unwrap();
    let models = format!(
        "{}[models.broken]\nsource = \"{}\"\nmodes = [\"dynamic\"]\n",
        mlp_model("good", "\"dynamic\"", ""),
        broken.display()
    );
    let cfg = write_config(dir.path(), &models);
    let r = run(&["build", "-c", cfg.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("broken.dynamic"), "{}", r.stderr);
    assert!(r.stderr.contains("broken.tflite"), "{}", r.stderr);
    assert!(dir.path().join("out/good.dynamic.tflite").exists());
    assert!(!dir.path().join("out/broken.dynamic.tflite").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let e = evaluate(
        &fixture("models/digits_mlp.tflite"),
        &dir.path().join("out/good.dynamic.tflite"),
        None,
        10,
    );
    assert!(e.loads_ok, "{:?}", e.error);
}

#[test]
fn already_quantized_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = format!(
        "[models.q]\nsource = \"{}\"\nmodes = [\"dynamic\"]\n",
        fixture("models/digits_mlp_tf_full_int8.tflite").display()
    );
    let cfg = write_config(dir.path(), &models);
    let r = run(&["build", "-c", cfg.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("digits_mlp_tf_full_int8.tflite"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("float32"), "{}", r.stderr);
}

#[test]
fn config_typo_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &mlp_model("m", "\"dynamic\"", "per_chanel = true"),
    );
    for cmd in ["build", "check"] {
        let r = run(&[cmd, "-c", cfg.to_str().unwrap()], dir.path());
        assert_eq!(r.code, 2, "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("quantize.toml"), "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("per_chanel"), "{cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains(":13:"),
            "{cmd}: no line number: {}",
            r.stderr
        );
    }
}

#[test]
fn check_accepts_the_example_config() {
    let example = repo().join("quantize.toml.example");
    let r = run(&["check", "-c", example.to_str().unwrap()], &repo());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ok"), "{}", r.stdout);
}

/// Tensors of every subgraph of `model` stored as `ty`.
fn tensors_of_type(model: &[u8], ty: litequant::tflite::fb::TensorType) -> usize {
    let g = litequant::graph::Graph::from_bytes(model).expect("the model reads");
    g.model
        .subgraphs
        .iter()
        .flatten()
        .flat_map(|sg| sg.tensors.iter().flatten())
        .filter(|t| t.type_ == ty)
        .count()
}

/// The float constants of a `float16_weights_only` artifact (from a float32 source, no constant shared by two ops) stored
/// against the op table: a weight input (`float16_weights`) not read through a DEQUANTIZE of a FLOAT16
/// constant, or any other input (a bias, an ADD operand) stored as FLOAT16. Each as "op input: type".
fn float16_storage_off_the_op_table(model: &[u8]) -> Vec<String> {
    use litequant::graph::{Graph, OpIndex};
    use litequant::tflite::fb::{BuiltinOperator as Op, TensorType as T};
    let mut g = Graph::from_bytes(model).expect("the model reads");
    let mut off = Vec::new();
    for sg in 0..g.subgraph_count() {
        g.focus(sg);
        let producers = g.producers();
        for op in (0..g.ops().len()).map(OpIndex) {
            let code = g.op_code(op);
            if code == Op::DEQUANTIZE {
                continue;
            }
            let weights = litequant::ops::table()
                .get(code)
                .map_or(&[][..], |d| d.float16_weights());
            for (slot, t) in g.op_inputs(op).into_iter().enumerate() {
                let Some(t) = t else { continue };
                let stored = match producers[t.0] {
                    Some(p) if g.op_code(p) == Op::DEQUANTIZE => g.op_inputs(p)[0]
                        .filter(|&s| g.is_constant(s))
                        .map(|s| g.tensor(s).type_),
                    _ => Some(g.tensor(t).type_).filter(|_| g.is_constant(t)),
                };
                let expected = if weights.contains(&slot) {
                    T::FLOAT16
                } else {
                    T::FLOAT32
                };
                match stored {
                    Some(ty @ (T::FLOAT16 | T::FLOAT32)) if ty != expected => {
                        off.push(format!("subgraph {sg} {code:?} input {slot}: {ty:?}"))
                    }
                    _ => {}
                }
            }
        }
    }
    off
}

/// Models the corpus does not have: legacy op codes without signature defs, fp16-stored weights, a model with
/// a WHILE loop over other subgraphs (its body quantized too), and a custom op passed through with
/// SELECT_TF_OPS. Each artifact runs in LiteRT beside its float source.
#[test]
fn unseen_model_formats_quantize_and_run_in_litert() {
    let dir = tempfile::tempdir().unwrap();
    let model = |name: &str, file: &str, modes: &str, extra: &str| {
        format!(
            "[models.{name}]\nsource = \"{}\"\nmodes = [{modes}]\ndataset = \"rnd\"\n{extra}\n",
            fixture(&format!("models/{file}.tflite")).display()
        )
    };
    let all = "\"dynamic\", \"float16\", \"int8\", \"int16x8\"";
    let text = [
        "[settings]\nout_dir = \"out\"\n\n[datasets.rnd]\nformat = \"random\"\nsamples = 32\nseed = 7\n\n".to_string(),
        model("legacy", "legacy_opcodes_mlp", all, ""),
        model("fp16", "fp16_weights_cnn", all, ""),
        model("subgraphs", "while_loop", all, ""),
        model("custom", "custom_op", "\"dynamic\", \"float16\", \"int8\"", "op_sets = [\"TFLITE_BUILTINS\", \"SELECT_TF_OPS\"]"),
        // ai-edge-quantizer's float16: the ops' weights only.
        model("legacy_w", "legacy_opcodes_mlp", "\"float16\"", "float16_weights_only = true"),
        model("subgraphs_w", "while_loop", "\"float16\"", "float16_weights_only = true"),
    ]
    .concat();
    let cfg = dir.path().join("quantize.toml");
    std::fs::write(&cfg, text).unwrap();
    let r = run(&["build", "-c", cfg.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let cases: &[(&str, &str, &[&str], f64)] = &[
        (
            "legacy",
            "legacy_opcodes_mlp",
            &["dynamic", "float16", "int8", "int16x8"],
            30.0,
        ),
        (
            "fp16",
            "fp16_weights_cnn",
            &["dynamic", "float16", "int8", "int16x8"],
            30.0,
        ),
        (
            "subgraphs",
            "while_loop",
            &["dynamic", "float16", "int8", "int16x8"],
            30.0,
        ),
        ("custom", "custom_op", &["dynamic", "float16", "int8"], 60.0),
        ("legacy_w", "legacy_opcodes_mlp", &["float16"], 30.0),
        ("subgraphs_w", "while_loop", &["float16"], 30.0),
    ];
    // The artifacts with nothing to quantize, and why; every other one must hold more int8 tensors (float16
    // tensors in float16 mode) than its source.
    let unchanged: &[(&str, &str)] = &[
        // Weights of 4 and 36 elements: below the 1,024 elements under which TF keeps weights float.
        ("subgraphs.dynamic", "no weight of 1,024 elements"),
        ("custom.dynamic", "no weight of 1,024 elements"),
        // Its weights and biases are float16 already (behind DEQUANTIZE ops, which stay).
        ("fp16.float16", "constants stored as float16 already"),
        // The loop's only float constant is an ADD operand, not a weight: with weights only it stays float32.
        ("subgraphs_w.float16", "no op with weights"),
        // The FULLY_CONNECTED reads the pass-through custom op's output, so it stays float (checked below).
        ("custom.int8", "every op depends on the custom op"),
    ];
    for (name, file, modes, min_sqnr) in cases {
        let source_path = fixture(&format!("models/{file}.tflite"));
        let source = std::fs::read(&source_path).unwrap();
        for mode in *modes {
            let art = dir.path().join(format!("out/{name}.{mode}.tflite"));
            let e = evaluate(&source_path, &art, None, 16);
            assert!(
                e.loads_ok,
                "{name}.{mode}: LiteRT cannot run it: {:?}",
                e.error
            );
            assert!(
                e.sqnr_db >= *min_sqnr,
                "{name}.{mode}: SQNR {:.1} dB",
                e.sqnr_db
            );
            let bytes = std::fs::read(&art).unwrap();
            assert_ne!(bytes, source, "{name}.{mode}: the artifact is its source");
            let ty = match *mode {
                "float16" => litequant::tflite::fb::TensorType::FLOAT16,
                // 16-bit activations: a model without weights (the loop) has no int8 tensor at all.
                "int16x8" => litequant::tflite::fb::TensorType::INT16,
                _ => litequant::tflite::fb::TensorType::INT8,
            };
            if *mode == "float16" && name.ends_with("_w") {
                let misplaced = float16_storage_off_the_op_table(&bytes);
                assert!(misplaced.is_empty(), "{name}.float16: {misplaced:?}");
            }
            let (before, after) = (tensors_of_type(&source, ty), tensors_of_type(&bytes, ty));
            let job = format!("{name}.{mode}");
            match unchanged.iter().find(|(j, _)| *j == job) {
                Some((_, why)) => {
                    assert_eq!(after, before, "{job}: expected nothing quantized ({why})")
                }
                None => assert!(
                    after > before,
                    "{job}: nothing quantized: {after} {ty:?} tensors, {before} in the source"
                ),
            }
        }
    }
    // Integer weights where TF would put them, even in a model stored in fp16 with legacy habits.
    let fp16_int8 = evaluate(
        &fixture("models/fp16_weights_cnn.tflite"),
        &dir.path().join("out/fp16.int8.tflite"),
        None,
        4,
    );
    assert_eq!(fp16_int8.float_compute_ops, 0);
    let fp16_dynamic = evaluate(
        &fixture("models/fp16_weights_cnn.tflite"),
        &dir.path().join("out/fp16.dynamic.tflite"),
        None,
        4,
    );
    assert!(fp16_dynamic.hybrid_ops >= 2, "{fp16_dynamic:?}");
    // The custom op and what depends on it stay float, and the report says why.
    let report = std::fs::read_to_string(dir.path().join("out/custom.int8.json")).unwrap();
    assert!(report.contains("SELECT_TF_OPS"), "{report}");
    assert!(
        report.contains("depends on a pass-through custom/Flex op"),
        "{report}"
    );
}

#[test]
fn a_model_with_an_op_calibration_cannot_run_fails_naming_the_op() {
    use litequant::tflite::fb;
    let dir = tempfile::tempdir().unwrap();
    // The while_loop fixture with its body's float ADD turned into ATAN2 (two floats in, one out), an op
    // litequant has no kernel for: inside a loop body, where calibration must still find and name it.
    let mut g = litequant::graph::Graph::from_file(&fixture("models/while_loop.tflite")).unwrap();
    g.focus(2);
    let add = (0..g.ops().len())
        .map(litequant::graph::OpIndex)
        .find(|&o| {
            g.op_code(o) == fb::BuiltinOperator::ADD
                && g.tensor(g.op_outputs(o)[0]).type_ == fb::TensorType::FLOAT32
        })
        .expect("the body's float ADD");
    let code = g.op_code_index(fb::BuiltinOperator::ATAN2, None, 1);
    g.op_mut(add).opcode_index = code;
    g.op_mut(add).builtin_options = fb::BuiltinOptionsT::NONE;
    g.focus(0);
    let model = dir.path().join("atan2_loop.tflite");
    std::fs::write(&model, g.to_bytes()).unwrap();
    let text = format!(
        "[datasets.rnd]\nformat = \"random\"\nsamples = 4\n\n[models.loop]\nsource = \"{}\"\nmodes = [\"int8\"]\ndataset = \"rnd\"\n",
        model.display()
    );
    let cfg = dir.path().join("quantize.toml");
    std::fs::write(&cfg, text).unwrap();
    let r = run(&["build", "-c", cfg.to_str().unwrap()], dir.path());
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("ATAN2"), "{}", r.stderr);
    assert!(r.stderr.contains("loop.int8"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}
