//! Classifies held-out digits with the models build.rs quantized and embedded, running each one in
//! litequant's integer reference interpreter (LiteRT's integer arithmetic, bit for bit).
//!
//! `cargo run` describes every embedded model (size, alignment, inputs and outputs) and prints its accuracy
//! on `data/digits_eval.npz`. `cargo run -- --predictions` adds one line per model with the predicted class
//! of every sample, in file order; a path argument evaluates another `.npz` of the same layout (the model's
//! input array and `labels`).

include!(concat!(env!("OUT_DIR"), "/quantized_models.rs"));

use litequant::dataset::{self, DatasetFormat, DatasetSpec, InputSpec};
use litequant::interp::{Interpreter, Tensor, TensorData};
use litequant::tflite::fb;
use litequant_models::{DType, Model};
use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The held-out digits shipped with the crate (not the calibration data).
const EVAL_SET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits_eval.npz");

/// The array of class labels in the eval archive.
const LABELS: &str = "labels";

/// Classes the model tells apart.
const CLASSES: usize = 10;

fn describe(model: &Model) {
    let bytes: &[u8] = model;
    println!(
        "{}.{}: {} bytes, 16-byte aligned: {}, TFLite identifier: {}",
        model.name,
        model.mode,
        bytes.len(),
        bytes.as_ptr() as usize % 16 == 0,
        String::from_utf8_lossy(bytes.get(4..8).unwrap_or_default()),
    );
    for (kind, tensors) in [("input", model.inputs), ("output", model.outputs)] {
        for t in tensors {
            println!(
                "  {kind} {:?} shape {:?} {:?} scale {:?} zero point {:?}",
                t.name, t.shape, t.dtype, t.scale, t.zero_point
            );
        }
    }
}

/// Labelled samples: the model input of each (flattened, real values) and its class.
struct EvalSet {
    samples: Vec<Vec<f32>>,
    labels: Vec<usize>,
}

/// Reads an eval archive with litequant's dataset reader: the array named like the model's input, and its
/// `labels` array.
fn load_eval_set(path: &Path, input: &litequant_models::Tensor) -> Result<EvalSet, Box<dyn Error>> {
    let spec = DatasetSpec {
        name: "eval".into(),
        format: DatasetFormat::Npz,
        path: Some(path.to_path_buf()),
        samples: None,
        resize: None,
        mean: Vec::new(),
        std: Vec::new(),
        inputs: BTreeMap::new(),
        feeds: BTreeMap::new(),
        range: None,
        seed: 0,
        labels: Some(LABELS.into()),
        label_output: None,
        origin: Default::default(),
    };
    let inputs = [InputSpec {
        name: input.name.to_string(),
        shape: input.shape.to_vec(),
        shape_signature: None,
        dtype: fb::TensorType::FLOAT32,
    }];
    let labels = dataset::read_labels(&spec)?
        .ok_or_else(|| format!("{}: no `{LABELS}` array", path.display()))?
        .classes;
    let mut stream = dataset::open(&spec, &inputs)?;
    let mut eval = EvalSet {
        samples: Vec::with_capacity(stream.len()),
        labels: Vec::with_capacity(stream.len()),
    };
    loop {
        let batch = stream.next_batch(64)?;
        if batch.is_empty() {
            return Ok(eval);
        }
        for sample in batch {
            let [x] = sample.as_slice() else {
                return Err("the dataset reader returned a sample with more than one input".into());
            };
            let index = eval.labels.len();
            let class = labels
                .get(index)
                .copied()
                .ok_or_else(|| format!("{}: sample {index} has no label", path.display()))?;
            let class = usize::try_from(class)
                .ok()
                .filter(|&c| c < CLASSES)
                .ok_or_else(|| {
                    format!(
                        "{}: sample {index} has label {class}, expected a class in 0..{CLASSES}",
                        path.display()
                    )
                })?;
            eval.samples.push(x.iter().copied().collect());
            eval.labels.push(class);
        }
    }
}

/// Runs every sample through `model` in the integer reference interpreter; the predicted class of each.
fn classify(model: &Model, eval: &EvalSet) -> Result<Vec<usize>, Box<dyn Error>> {
    let mut interp = Interpreter::new(model)?;
    let (Some(input), Some(input_info)) =
        (model.inputs.first(), interp.inputs().into_iter().next())
    else {
        return Err(format!("{}.{} has no input", model.name, model.mode).into());
    };
    let mut predictions = Vec::with_capacity(eval.samples.len());
    for x in &eval.samples {
        // An integer input takes the codes the generated parameters give; a float input takes x as is.
        let codes = x.iter().map(|&v| input.quantize(v));
        let data = match input.dtype {
            DType::Float32 => TensorData::F32(x.clone()),
            DType::Int8 => TensorData::I8(codes.map(|q| q as i8).collect()),
            DType::UInt8 => TensorData::U8(codes.map(|q| q as u8).collect()),
            DType::Int16 => TensorData::I16(codes.map(|q| q as i16).collect()),
            other => return Err(format!("cannot feed a {other:?} input").into()),
        };
        interp.set_input(0, Tensor::new(input_info.shape.clone(), data)?)?;
        interp.invoke()?;
        // Dequantizing keeps the order of the scores (the scale is positive), so this is the argmax
        // of the raw int8 output too; ties go to the lower class.
        let scores = interp.output_f32(0)?;
        let best = scores
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f32)>, (i, &s)| match best {
                Some((_, b)) if b >= s => best,
                _ => Some((i, s)),
            })
            .map(|(i, _)| i)
            .ok_or_else(|| format!("{}.{} has an empty output", model.name, model.mode))?;
        predictions.push(best);
    }
    Ok(predictions)
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut show_predictions = false;
    let mut eval_path = PathBuf::from(EVAL_SET);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--predictions" => show_predictions = true,
            flag if flag.starts_with('-') => {
                return Err(format!(
                    "unknown option {flag}; usage: digits-classifier [--predictions] [EVAL.npz]"
                )
                .into())
            }
            path => eval_path = PathBuf::from(path),
        }
    }
    let models = [&digits::INT8, &digits::DYNAMIC];
    for model in models {
        describe(model);
    }
    // A pixel of value 0.5 (the data lie in [0, 1]) as the int8 model's input wants it, and back.
    let input = &digits::INT8.inputs[0];
    let q = input.quantize(0.5);
    println!(
        "input 0.5 -> {q} -> {} ({} elements per sample)",
        input.dequantize(q),
        input.elements()
    );

    let eval = load_eval_set(&eval_path, input)?;
    for model in models {
        let predictions = classify(model, &eval)?;
        let correct = predictions
            .iter()
            .zip(&eval.labels)
            .filter(|(p, l)| p == l)
            .count();
        println!(
            "{}.{}: accuracy {:.4} on {} eval samples",
            model.name,
            model.mode,
            correct as f64 / eval.labels.len().max(1) as f64,
            eval.labels.len()
        );
        if show_predictions {
            let classes: Vec<String> = predictions.iter().map(ToString::to_string).collect();
            println!(
                "{}.{} predictions: {}",
                model.name,
                model.mode,
                classes.join(" ")
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("digits-classifier: {e}");
            ExitCode::FAILURE
        }
    }
}
