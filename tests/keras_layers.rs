//! One small Keras model per layer kind (`tests/fixtures/keras/<name>.keras`, made with TensorFlow by
//! `make_fixtures.py` next to them, with the float `.tflite` TF's converter wrote for each): litequant's lowering
//! must write the same op histogram and outputs within 1e-5 relative in LiteRT on the fixture's inputs. And the
//! CLI's errors for what the lowering refuses: the file, the layer, its class, the option, the float `.tflite`
//! route, exit code 2.
//!
//! Needs `LITEQUANT_TEST_PYTHON` (LiteRT + numpy); never TensorFlow.

use std::path::{Path, PathBuf};
use std::process::Command;

use litequant::keras::lower_keras;

use crate::keras::{members_of, parity_with, zip_of};

/// Relative output tolerance against TF's own export.
const MAX_REL: f64 = 1e-5;

fn fixture(name: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras")
        .join(format!("{name}.{ext}"))
}

/// Lowers `<name>.keras` and compares it with `<name>.tflite` in LiteRT on `<name>.npz`.
fn matches_tf(name: &str) {
    let path = fixture(name, "keras");
    let bytes = std::fs::read(&path).unwrap();
    let graph = lower_keras(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join(format!("{name}.tflite"));
    std::fs::write(&ours, graph.to_bytes()).unwrap();
    let r = parity_with(&ours, &fixture(name, "tflite"), &fixture(name, "npz"));
    assert_eq!(
        r["hist_ours"], r["hist_ref"],
        "{name}: op histogram differs from TF's"
    );
    let max_rel = r["max_rel"].as_f64().expect("max_rel");
    eprintln!(
        "{name}: max relative error {max_rel:.3e}, ops {}",
        r["hist_ours"]
    );
    assert!(
        r["samples"].as_u64().is_some_and(|n| n > 0),
        "{name}: no samples were compared"
    );
    assert!(
        max_rel <= MAX_REL,
        "{name}: outputs differ from TF's by {max_rel:e} relative"
    );
}

/// A test per fixture, named after it.
macro_rules! lowers_like_tf {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                matches_tf(stringify!($name));
            }
        )*
    };
}

lowers_like_tf!(
    separable_conv2d,
    prelu,
    elu,
    leaky_relu,
    hard_activations,
    swish_gelu,
    permute,
    padding_cropping_1d,
    cropping2d,
    upsampling2d,
    rescaling_normalization,
    embedding,
    shared_two_inputs,
    nested,
    nested_sequential,
    dropout_noise,
);

/// A fixture with `edit` applied to the layer named `layer` in its config.json, written to `dir`.
fn edited(name: &str, layer: &str, dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut members = members_of(&fixture(name, "keras"));
    for (member, data) in &mut members {
        if member == "config.json" {
            let mut config: serde_json::Value = serde_json::from_slice(data).unwrap();
            let entry = config["config"]["layers"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|l| l["config"]["name"] == layer)
                .unwrap_or_else(|| panic!("{name} has no layer {layer}"));
            edit(entry);
            *data = serde_json::to_vec(&config).unwrap();
        }
    }
    let path = dir.join(format!("{name}_edited.keras"));
    std::fs::write(&path, zip_of(&members)).unwrap();
    path
}

/// Runs `litequant convert` on `src`: it must exit 2 and its stderr must name every one of `needles`.
fn convert_refuses(src: &Path, needles: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_litequant"))
        .arg("convert")
        .arg(src)
        .arg("-o")
        .arg(src.with_extension("tflite"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !src.with_extension("tflite").exists(),
        "a model was written"
    );
}

#[test]
fn keras_cli_unknown_layer_names_file_layer_class_and_route() {
    let tmp = tempfile::tempdir().unwrap();
    let src = edited("permute", "permute", tmp.path(), |l| {
        l["class_name"] = "FancyPermute".into();
    });
    convert_refuses(
        &src,
        &[
            "permute_edited.keras",
            "layer `permute` (FancyPermute)",
            "not lowered",
            "float .tflite",
        ],
    );
}

#[test]
fn keras_cli_unsupported_option_names_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let src = edited("upsampling2d", "up_sampling2d", tmp.path(), |l| {
        l["config"]["interpolation"] = "lanczos3".into();
    });
    convert_refuses(
        &src,
        &[
            "upsampling2d_edited.keras",
            "layer `up_sampling2d` (UpSampling2D)",
            "interpolation = \"lanczos3\"",
            "float .tflite",
        ],
    );
    let src = edited("prelu", "p_re_lu", tmp.path(), |l| {
        l["config"]["alpha_mode"] = "per_batch".into();
    });
    convert_refuses(
        &src,
        &["layer `p_re_lu` (PReLU)", "alpha_mode", "float .tflite"],
    );
}

#[test]
fn keras_cli_custom_object_names_module_and_registered_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = edited("elu", "elu", tmp.path(), |l| {
        l["module"] = "my_project.layers".into();
        l["registered_name"] = "Custom>ScaledElu".into();
    });
    convert_refuses(
        &src,
        &[
            "elu_edited.keras",
            "layer `elu` (ELU)",
            "custom object",
            "my_project.layers",
            "Custom>ScaledElu",
            "float .tflite",
        ],
    );
}

#[test]
fn keras_nested_model_with_two_outputs_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = edited("nested", "head", tmp.path(), |l| {
        let out = l["config"]["output_layers"].clone();
        l["config"]["output_layers"] = serde_json::json!([out.clone(), out]);
    });
    convert_refuses(&src, &["layer `head` (Functional)", "more than one output"]);
}
