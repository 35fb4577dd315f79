//! Bad data input: datasets, labels, special files, `check` parity with `build`.
//!
//! Every case starts from a project that built cleanly (artifacts, `quantize.lock`, the cache), breaks one
//! thing, then runs `litequant build` and `litequant check`: both must exit 2 with a message naming the file,
//! the config key and line, without a panic or a hang, and leave the earlier artifacts, the lock and the
//! cache byte for byte as they were.

use crate::interop::{litequant, repo};
use ndarray::{Array, ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longer than any case takes on a loaded machine, far shorter than a hang (reading 2 GB of /dev/zero).
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit code 2, no panic, and every needle in the error output.
    fn assert_bad_input(&self, needles: &[&str]) {
        assert_eq!(
            self.code, 2,
            "expected exit 2 (bad input)\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.assert_no_panic();
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "the message lacks {needle:?}:\n{}",
                self.stderr
            );
        }
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "{}",
            self.stderr
        );
    }
}

/// A project folder: the digits MLP (dynamic and int8) calibrated on its fixture data, evaluated on its
/// held-out set with labels; its config, artifacts (`out/`), lock and cache (`cache/`) all inside.
struct Project {
    dir: tempfile::TempDir,
}

const MODEL_TABLE: &str = r#"[models.mlp]
source = "mlp.tflite"
modes = ["dynamic", "int8"]
dataset = "calib"
eval = "held"
"#;

impl Project {
    /// Writes the project and builds it; the build must succeed.
    fn built() -> Project {
        let dir = tempfile::tempdir().expect("a temp dir");
        let fixtures = repo().join("tests/fixtures");
        for (from, to) in [
            ("models/digits_mlp.tflite", "mlp.tflite"),
            ("models/digits_cnn.tflite", "cnn.tflite"),
            ("data/digits_mlp_calib.npz", "calib.npz"),
            ("data/digits_mlp_eval.npz", "held.npz"),
        ] {
            std::fs::copy(fixtures.join(from), dir.path().join(to)).expect("fixture copies");
        }
        let project = Project { dir };
        project.write_config("", MODEL_TABLE);
        let r = project.run(&["build"]);
        assert_eq!(
            r.code, 0,
            "the clean build fails:\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(project.path("quantize.lock").is_file());
        assert!(project.path("out/mlp.int8.tflite").is_file());
        project
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.path("quantize.toml")
    }

    /// The config: settings, the `calib` and `held` datasets with `extra` keys of `held` and further tables
    /// appended after the model tables.
    fn write_config(&self, held_extra: &str, models: &str) {
        let text = format!(
            "[settings]\nout_dir = \"out\"\ncache = \"cache\"\n\n\
             [datasets.calib]\nformat = \"npz\"\npath = \"calib.npz\"\n\n\
             [datasets.held]\nformat = \"npz\"\npath = \"held.npz\"\n{held_extra}\n{models}"
        );
        std::fs::write(self.config(), text).expect("config writes");
    }

    /// The line of the config that contains `needle` (1-based), for messages that must name it.
    fn line_of(&self, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.config()).unwrap();
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} is not in the config:\n{text}"))
    }

    /// `quantize.toml:LINE:` for the line holding `needle`.
    fn at(&self, needle: &str) -> String {
        format!("quantize.toml:{}:", self.line_of(needle))
    }

    /// Runs `litequant <args> -c quantize.toml` in the project, killing it (a failed test) after
    /// [`RUN_LIMIT`].
    fn run(&self, args: &[&str]) -> Run {
        let mut child = litequant()
            .args(args)
            .arg("-c")
            .arg(self.config())
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("litequant starts");
        let started = Instant::now();
        loop {
            if child.try_wait().expect("wait works").is_some() {
                break;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "litequant {args:?} hung (killed after {RUN_LIMIT:?}):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every byte of the artifacts, the lock and the cache.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let lock = self.path("quantize.lock");
        files.insert(lock.clone(), std::fs::read(&lock).expect("the lock"));
        for folder in ["out", "cache"] {
            collect(&self.path(folder), &mut files);
        }
        files
    }

    /// Runs `build` and `check`, each must refuse with exit 2 naming every needle, and leave the artifacts,
    /// the lock and the cache as they were.
    fn assert_refused(&self, before: &BTreeMap<PathBuf, Vec<u8>>, needles: &[&str]) {
        for command in ["build", "check"] {
            let r = self.run(&[command]);
            r.assert_bad_input(needles);
            assert_intact(before, &self.snapshot(), command);
        }
    }
}

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.insert(path, bytes);
        }
    }
}

/// Every file of `before` is in `after` with the same bytes (a failed job may not touch what earlier builds
/// wrote; advisory lock files the cache takes for a new key may appear).
fn assert_intact(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    command: &str,
) {
    for (path, bytes) in before {
        match after.get(path) {
            Some(now) => assert!(
                now == bytes,
                "`{command}` changed {} ({} bytes, was {})",
                path.display(),
                now.len(),
                bytes.len()
            ),
            None => panic!("`{command}` removed {}", path.display()),
        }
    }
    let new_outputs: Vec<&PathBuf> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .filter(|p| p.components().any(|c| c.as_os_str() == "out"))
        .collect();
    assert!(new_outputs.is_empty(), "`{command}` wrote {new_outputs:?}");
}

/// Writes an npz of `arrays` (float32 or int64) with ndarray-npy, as numpy.savez does.
fn write_npz(path: &Path, f32s: &[(&str, ArrayD<f32>)], i64s: &[(&str, ArrayD<i64>)]) {
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
    for (name, array) in f32s {
        npz.add_array(*name, array).unwrap();
    }
    for (name, array) in i64s {
        npz.add_array(*name, array).unwrap();
    }
    npz.finish().unwrap();
}

fn zeros(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::zeros(IxDyn(shape))
}

fn labels(values: impl IntoIterator<Item = i64>) -> ArrayD<i64> {
    let v: Vec<i64> = values.into_iter().collect();
    Array::from_shape_vec(IxDyn(&[v.len()]), v).unwrap()
}

// ---- item 4: labels --------------------------------------------------------------------------------------

#[test]
fn ten_labels_for_four_hundred_samples_is_refused_naming_the_array() {
    let p = Project::built();
    let before = p.snapshot();
    write_npz(
        &p.path("held.npz"),
        &[("serving_default_x:0", zeros(&[400, 64]))],
        &[("labels", labels(0..10))],
    );
    p.assert_refused(
        &before,
        &[
            "held.npz",
            "key `datasets.held`",
            &p.at("[datasets.held]"),
            "holds 10 labels for 400 samples",
        ],
    );
}

#[test]
fn label_output_beyond_the_model_outputs_is_refused_at_its_line() {
    let p = Project::built();
    let before = p.snapshot();
    p.write_config("label_output = 5\n", MODEL_TABLE);
    p.assert_refused(
        &before,
        &[
            &p.at("label_output = 5"),
            "key `datasets.held.label_output`",
            "refer to output 5, and the model has 1 output(s)",
        ],
    );
}

#[test]
fn label_output_index_array_beyond_the_model_outputs_is_refused() {
    let p = Project::built();
    let before = p.snapshot();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(p.path("held.npz")).unwrap());
    npz.add_array("serving_default_x:0", &zeros(&[400, 64]))
        .unwrap();
    npz.add_array("labels", &labels((0..400).map(|i| i % 10)))
        .unwrap();
    npz.add_array("label_output_index", &ndarray::arr0(7i64))
        .unwrap();
    npz.finish().unwrap();
    p.assert_refused(
        &before,
        &[
            "held.npz",
            "the archive's `label_output_index` says the labels refer to output 7",
        ],
    );
}

#[test]
fn labels_naming_a_missing_array_is_a_labels_error_not_an_inputs_one() {
    let p = Project::built();
    let before = p.snapshot();
    p.write_config("labels = \"nosuch\"\n", MODEL_TABLE);
    p.assert_refused(
        &before,
        &[
            &p.at("labels = \"nosuch\""),
            "key `datasets.held.labels`",
            "`labels` names array `nosuch`",
            "held.npz",
        ],
    );
    let r = p.run(&["check"]);
    assert!(!r.stderr.contains("`inputs`"), "{}", r.stderr);
}

#[test]
fn a_label_beyond_the_output_classes_is_refused_naming_the_sample() {
    let p = Project::built();
    let before = p.snapshot();
    let mut classes: Vec<i64> = (0..400).map(|i| i % 10).collect();
    classes[17] = 99;
    write_npz(
        &p.path("held.npz"),
        &[("serving_default_x:0", zeros(&[400, 64]))],
        &[("labels", labels(classes))],
    );
    p.assert_refused(
        &before,
        &[
            "held.npz",
            "sample 17",
            "holds label 99, and output `StatefulPartitionedCall:0` has 10 classes",
        ],
    );
}

// ---- item 5: `check` runs every validation `build` runs ----------------------------------------------------

#[test]
fn truncated_npz_is_refused_by_check_as_by_build() {
    let p = Project::built();
    let before = p.snapshot();
    let bytes = std::fs::read(p.path("calib.npz")).unwrap();
    std::fs::write(p.path("calib.npz"), &bytes[..bytes.len() / 2]).unwrap();
    p.assert_refused(
        &before,
        &[
            "calib.npz",
            &p.at("path = \"calib.npz\""),
            "key `datasets.calib.path`",
            "not a readable npz",
        ],
    );
}

#[test]
fn array_one_value_short_of_the_input_is_refused_by_check() {
    let p = Project::built();
    let before = p.snapshot();
    write_npz(
        &p.path("calib.npz"),
        &[("serving_default_x:0", zeros(&[100, 63]))],
        &[],
    );
    p.assert_refused(
        &before,
        &[
            "calib.npz",
            "key `datasets.calib.path`",
            "a sample has shape [63]; expected [1, 64]",
        ],
    );
}

#[test]
fn zero_samples_is_refused_by_check() {
    let p = Project::built();
    let before = p.snapshot();
    write_npz(
        &p.path("calib.npz"),
        &[("serving_default_x:0", zeros(&[0, 64]))],
        &[],
    );
    p.assert_refused(&before, &["calib.npz", "holds no samples"]);
}

/// An npz whose one member is an object array (numpy pickles those): `|O`.
fn write_object_npz(path: &Path) {
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (100, 64), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut text = header.to_string();
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    npy.extend_from_slice(&(text.len() as u16).to_le_bytes());
    npy.extend_from_slice(text.as_bytes());
    npy.extend_from_slice(b"\x80\x02]q\x00.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file(
        "serving_default_x:0.npy",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&npy).unwrap();
    zip.finish().unwrap();
}

#[test]
fn object_dtype_array_is_refused_by_check() {
    let p = Project::built();
    let before = p.snapshot();
    write_object_npz(&p.path("calib.npz"));
    p.assert_refused(&before, &["calib.npz", "array dtype `|O` is not supported"]);
}

#[test]
fn empty_image_folder_is_refused_by_check() {
    let p = Project::built();
    std::fs::create_dir(p.path("photos")).unwrap();
    std::fs::write(p.path("photos/README.txt"), "not an image").unwrap();
    let before = p.snapshot();
    let text = std::fs::read_to_string(p.config()).unwrap()
        + "\n[datasets.photos]\nformat = \"images\"\npath = \"photos\"\nresize = [16, 16]\n\n\
           [models.cnn]\nsource = \"cnn.tflite\"\nmodes = [\"int8\"]\ndataset = \"photos\"\n";
    std::fs::write(p.config(), text).unwrap();
    p.assert_refused(
        &before,
        &[
            "photos",
            &p.at("path = \"photos\""),
            "key `datasets.photos.path`",
            "holds no .png, .jpg or .jpeg file",
        ],
    );
}

#[test]
fn inputs_naming_an_unknown_tensor_is_refused_by_check_at_its_line() {
    let p = Project::built();
    let before = p.snapshot();
    let text = std::fs::read_to_string(p.config()).unwrap().replace(
        "path = \"calib.npz\"\n",
        "path = \"calib.npz\"\ninputs = { nosuch_tensor = \"serving_default_x:0\" }\n",
    );
    std::fs::write(p.config(), text).unwrap();
    p.assert_refused(
        &before,
        &[
            &p.at("nosuch_tensor"),
            "key `datasets.calib.inputs.nosuch_tensor`",
            "names `nosuch_tensor`, which is not an input of the model",
        ],
    );
}

/// The digits MLP with its first op reading the last op's output: a cycle in the graph.
fn cyclic_model() -> Vec<u8> {
    let bytes = std::fs::read(repo().join("tests/fixtures/models/digits_mlp.tflite")).unwrap();
    let mut model = litequant::graph::Graph::from_bytes(&bytes)
        .expect("the fixture reads")
        .model;
    let sg = &mut model.subgraphs.as_mut().unwrap()[0];
    let ops = sg.operators.as_mut().unwrap();
    let last_output = ops.last().unwrap().outputs.as_ref().unwrap()[0];
    let first_inputs = ops[0].inputs.as_mut().unwrap();
    first_inputs[0] = last_output;
    litequant::tflite::write_model(&model)
}

#[test]
fn a_model_whose_graph_has_a_cycle_is_refused_by_check_as_by_build() {
    let p = Project::built();
    let before = p.snapshot();
    std::fs::write(p.path("mlp.tflite"), cyclic_model()).unwrap();
    let build = p.run(&["build"]);
    let check = p.run(&["check"]);
    build.assert_no_panic();
    check.assert_no_panic();
    assert_ne!(build.code, 0, "a cyclic model builds:\n{}", build.stderr);
    // `check` verifies models with the very function `build` reads them with: same verdict.
    assert_eq!(
        check.code, build.code,
        "check and build disagree on a cyclic model:\ncheck: {}\nbuild: {}",
        check.stderr, build.stderr
    );
    assert!(check.stderr.contains("mlp.tflite"), "{}", check.stderr);
    assert_intact(&before, &p.snapshot(), "build");
}

// ---- item 7: special files -------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn an_npy_dataset_at_dev_zero_is_refused_without_reading_it() {
    let p = Project::built();
    let before = p.snapshot();
    let text = std::fs::read_to_string(p.config()).unwrap().replace(
        "format = \"npz\"\npath = \"calib.npz\"",
        "format = \"npy\"\npath = \"/dev/zero\"",
    );
    std::fs::write(p.config(), text).unwrap();
    let started = Instant::now();
    p.assert_refused(
        &before,
        &[
            "/dev/zero",
            "is a character device",
            "key `datasets.calib.path`",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[cfg(unix)]
#[test]
fn a_fifo_as_model_source_is_refused_without_blocking() {
    let p = Project::built();
    let before = p.snapshot();
    std::fs::remove_file(p.path("mlp.tflite")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(p.path("mlp.tflite"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    p.assert_refused(&before, &["mlp.tflite", "is a FIFO"]);
}

#[cfg(unix)]
#[test]
fn dev_zero_as_model_source_is_refused_without_reading_it() {
    let p = Project::built();
    let before = p.snapshot();
    let text = std::fs::read_to_string(p.config())
        .unwrap()
        .replace("source = \"mlp.tflite\"", "source = \"/dev/zero\"");
    std::fs::write(p.config(), text).unwrap();
    let started = Instant::now();
    for command in ["build", "check"] {
        let r = p.run(&[command]);
        r.assert_bad_input(&["/dev/zero", "is a character device"]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    // The model's artifacts are not rewritten (nothing was built) and the lock keeps its entries.
    assert_intact(&before, &p.snapshot(), "build");
}

#[cfg(unix)]
#[test]
fn inspect_refuses_dev_zero_and_a_fifo_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.tflite");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let started = Instant::now();
    for (path, kind) in [
        (
            std::path::PathBuf::from("/dev/zero"),
            "is a character device",
        ),
        (fifo, "is a FIFO"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_litequant"))
            .arg("inspect")
            .arg(&path)
            .output()
            .expect("litequant runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&*path.to_string_lossy()) && stderr.contains(kind),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_folder_as_npz_path_is_refused() {
    let p = Project::built();
    let before = p.snapshot();
    std::fs::create_dir(p.path("dir.npz")).unwrap();
    let text = std::fs::read_to_string(p.config())
        .unwrap()
        .replace("path = \"calib.npz\"", "path = \"dir.npz\"");
    std::fs::write(p.config(), text).unwrap();
    p.assert_refused(
        &before,
        &["dir.npz", "is a folder", "key `datasets.calib.path`"],
    );
}

// ---- item 11: `inputs` maps of referenced datasets -------------------------------------------------------

#[test]
fn datasets_referencing_each_other_in_a_cycle_are_a_config_error_at_the_entry() {
    let p = Project::built();
    let before = p.snapshot();
    let text = std::fs::read_to_string(p.config()).unwrap()
        + "\n[datasets.left]\nformat = \"random\"\ninputs = { x = \"right\" }\n\n\
           [datasets.right]\nformat = \"random\"\ninputs = { x = \"left\" }\n";
    let text = text.replace("dataset = \"calib\"", "dataset = \"left\"");
    std::fs::write(p.config(), text).unwrap();
    p.assert_refused(
        &before,
        &[
            &p.at("inputs = { x = \"right\" }"),
            "key `datasets.left.inputs.x`",
            "cycle (`left` -> `right` -> `left`)",
        ],
    );
}

// ---- item 3: integer data is converted aloud -------------------------------------------------------------

#[test]
fn integer_data_for_a_float_input_warns_in_check_build_and_report() {
    let p = Project::built();
    let values: Vec<u8> = (0..100 * 64).map(|i| (i % 256) as u8).collect();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(p.path("calib.npz")).unwrap());
    npz.add_array(
        "serving_default_x:0",
        &Array::from_shape_vec((100, 64), values).unwrap(),
    )
    .unwrap();
    npz.finish().unwrap();
    let needle = "is uint8 (|u1): integers fed unscaled to float input `serving_default_x:0`";
    for command in ["check", "build"] {
        let r = p.run(&[command]);
        assert_eq!(r.code, 0, "{command}: {}", r.stderr);
        r.assert_no_panic();
        let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(
            warnings.len(),
            1,
            "{command}: one warning line:\n{}",
            r.stderr
        );
        assert!(warnings[0].contains("calib.npz") && warnings[0].contains("0 to 255"));
    }
    let report = std::fs::read_to_string(p.path("out/mlp.int8.json")).unwrap();
    assert!(report.contains(needle), "{report}");
    // Modes that do not calibrate do not read the data: nothing to say.
    let dynamic = std::fs::read_to_string(p.path("out/mlp.dynamic.json")).unwrap();
    assert!(!dynamic.contains(needle));
}

#[test]
fn float64_data_is_converted_with_a_note() {
    let p = Project::built();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(p.path("calib.npz")).unwrap());
    npz.add_array("serving_default_x:0", &Array::<f64, _>::zeros((100, 64)))
        .unwrap();
    npz.finish().unwrap();
    let r = p.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is float64 (<f8), converted to float32 for input `serving_default_x:0`"),
        "{}",
        r.stderr
    );
}
