//! Every corpus model in every mode, scored in LiteRT against what TF's converter reached (ANCHORS.md).
//!
//! Floors (DESIGN.md, Targets): SQNR >= TF - 1 dB, top-1 agreement >= TF - 0.01, size <= TF + max(2%, 1 KiB),
//! and no float compute op under TFLITE_BUILTINS_INT8 beyond those TF's own strict output keeps.

use crate::interop::{corpus_models, litequant, model_dir, tf_anchor, try_evaluate};
use std::fmt::Write as _;

/// (our job name, our model table extras, mode, TF's mode name)
const VARIANTS: &[(&str, &str, &str, &str)] = &[
    ("m", "", "dynamic", "dynamic"),
    ("m", "", "float16", "float16"),
    ("m", "", "int8", "int_float_fallback"),
    (
        "mio",
        "op_sets = [\"TFLITE_BUILTINS_INT8\"]\ninference_input_type = \"int8\"\ninference_output_type = \"int8\"\n",
        "int8",
        "full_int8",
    ),
    ("m", "", "int16x8", "int16x8"),
];

fn config_for(model_dir: &std::path::Path) -> String {
    let mut text = format!(
        "[settings]\nout_dir = \"out\"\n\n[datasets.calib]\nformat = \"npz\"\npath = \"{}\"\nsamples = 100\n\n",
        model_dir.join("calib.npz").display()
    );
    let source = model_dir.join("model.tflite");
    let _ = write!(
        text,
        "[models.m]\nsource = \"{}\"\nmodes = [\"dynamic\", \"float16\", \"int8\", \"int16x8\"]\ndataset = \"calib\"\n\n",
        source.display()
    );
    let _ = write!(
        text,
        "[models.mio]\nsource = \"{}\"\nmodes = [\"int8\"]\ndataset = \"calib\"\n{}",
        source.display(),
        VARIANTS[3].1
    );
    text
}

#[test]
fn corpus_models_reach_tf_converter_floors_in_litert() {
    let mut table = String::from(
        "model                mode          sqnr    tf   top1    tf   size(B)    tf  fops\n",
    );
    let mut short = Vec::new();
    let mut compared = 0;
    let models = corpus_models();
    for name in &models {
        let mdir = model_dir(name);
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("quantize.toml");
        std::fs::write(&cfg, config_for(&mdir)).unwrap();
        let out = litequant()
            .args(["build", "-c", cfg.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: build failed:\n{stderr}");
        for &(job, _, mode, tf_mode) in VARIANTS {
            let art = dir.path().join(format!("out/{job}.{mode}.tflite"));
            let a = tf_anchor(name, tf_mode);
            let label = format!("{name}/{tf_mode}");
            let e = match try_evaluate(
                &mdir.join("model.tflite"),
                &art,
                Some(&mdir.join("eval.npz")),
                400,
            ) {
                Ok(e) => e,
                Err(error) => {
                    short.push(format!("{label}: LiteRT cannot run it: {error}"));
                    continue;
                }
            };
            compared += 1;
            let size = std::fs::metadata(&art).unwrap().len();
            let float_size = std::fs::metadata(mdir.join("model.tflite")).unwrap().len();
            let _ = writeln!(
                table,
                "{name:20} {tf_mode:12} {:6.1} {:5.1} {:6.3} {:5.3} {size:8} {:8} {:4}",
                e.sqnr_db,
                a.sqnr_db.unwrap_or(f64::NAN),
                e.top1_agree.unwrap_or(f64::NAN),
                a.top1_agree.unwrap_or(f64::NAN),
                a.size_quant.unwrap_or(0),
                e.float_compute_ops
            );
            let (tol_db, tol_top1) = a.tolerances();
            if let Some(tf) = a.sqnr_db {
                // TF's "inf" (its output equals the float model's) is met by evaluate.py's exact 200 dB.
                let floor = if tf.is_infinite() { 200.0 } else { tf - tol_db };
                if e.sqnr_db < floor {
                    short.push(format!(
                        "{label}: SQNR {:.1} dB < anchor {tf:.1} - {tol_db}",
                        e.sqnr_db
                    ));
                }
            }
            // A model without a classifier output (a U-Net) has no top-1 on either side.
            match (a.top1_agree, e.top1_agree) {
                (Some(tf), Some(ours)) if ours < tf - tol_top1 => short.push(format!(
                    "{label}: top-1 agreement {ours:.3} < anchor {tf:.3} - {tol_top1}"
                )),
                (Some(_), None) => short.push(format!(
                    "{label}: TF has a top-1 agreement, LiteRT found no classifier output in ours"
                )),
                _ => {}
            }
            if let Some(tf) = a.size_quant {
                let limit = tf + ((float_size as f64 * 0.02) as u64).max(1024);
                if size > limit {
                    short.push(format!("{label}: {size} B > TF {tf} B + max(2%, 1 KiB)"));
                }
            }
            let tf_float_ops: usize = a.quant_float_compute_ops.values().sum();
            if tf_mode != "dynamic" && tf_mode != "float16" && e.float_compute_ops > tf_float_ops {
                short.push(format!(
                    "{label}: {} float compute ops > TF's {tf_float_ops}",
                    e.float_compute_ops
                ));
            }
            if tf_mode == "dynamic" && e.hybrid_ops < a.hybrid_ops() {
                short.push(format!(
                    "{label}: {} ops with int8 weights < TF's {}",
                    e.hybrid_ops,
                    a.hybrid_ops()
                ));
            }
            if tf_mode == "full_int8" {
                // None, unless TF's own strict output keeps some float (NEG on the transformer).
                if e.float_compute_ops > tf_float_ops {
                    short.push(format!(
                        "{label}: {} float compute ops under TFLITE_BUILTINS_INT8 > TF's {tf_float_ops}",
                        e.float_compute_ops
                    ));
                }
                if e.input_types
                    .iter()
                    .chain(&e.output_types)
                    .any(|t| t != "int8")
                {
                    short.push(format!(
                        "{label}: I/O {:?} -> {:?}, not int8",
                        e.input_types, e.output_types
                    ));
                }
            }
        }
    }
    println!("{table}");
    assert!(
        short.is_empty(),
        "{table}\nshort of the floor:\n{}",
        short.join("\n")
    );
    assert_eq!(
        compared,
        models.len() * VARIANTS.len(),
        "every model in every variant was scored"
    );
}
