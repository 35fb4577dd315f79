//! Shows the models build.rs quantized and embedded: sizes, alignment, and how to quantize an input and
//! dequantize an output with the generated parameters.

include!(concat!(env!("OUT_DIR"), "/quantized_models.rs"));

use litequant_models::Model;

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

fn main() {
    describe(&digits::INT8);
    describe(&digits::DYNAMIC);
    // A pixel of value 0.5 (the data lie in [0, 1]) as the int8 model's input wants it, and back.
    let input = &digits::INT8.inputs[0];
    let q = input.quantize(0.5);
    println!(
        "input 0.5 -> {q} -> {} ({} elements per sample)",
        input.dequantize(q),
        input.elements()
    );
}
