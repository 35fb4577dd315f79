//! Structural invariants of a model, checked once at read time.
//!
//! The flatbuffer verifier only proves the bytes are well-formed; it knows nothing of what the indices mean.
//! Every index a later stage follows without looking (tensor, buffer, operator code, subgraph, signature,
//! metadata) is range-checked here, and every constant's bytes are checked against its shape and type, so
//! [`crate::graph::Graph`] accessors can index without panicking.

use super::{fb, type_name, ModelError};

/// Checks that every index in `model` points at something that exists and every constant has the bytes its
/// shape and type need.
pub(super) fn check_invariants(model: &fb::ModelT) -> Result<(), ModelError> {
    let n_buffers = model.buffers.as_ref().map_or(0, Vec::len);
    let n_codes = model.operator_codes.as_ref().map_or(0, Vec::len);
    let subgraphs = model.subgraphs.as_deref().unwrap_or(&[]);
    if subgraphs.is_empty() {
        return Err(invalid("the model has no subgraph"));
    }
    let buffers = model.buffers.as_deref().unwrap_or(&[]);
    for (s, sg) in subgraphs.iter().enumerate() {
        let tensors = sg.tensors.as_deref().unwrap_or(&[]);
        for (t, tensor) in tensors.iter().enumerate() {
            check_tensor(s, t, tensor, buffers)?;
        }
        let n = tensors.len();
        let check =
            |what: &str, ids: Option<&Vec<i32>>, optional: bool| -> Result<(), ModelError> {
                for &id in ids.map(Vec::as_slice).unwrap_or(&[]) {
                    let ok = usize::try_from(id).is_ok_and(|i| i < n) || (optional && id == -1);
                    if !ok {
                        return Err(invalid(format!(
                            "subgraph {s}: {what} refers to tensor {id} but the subgraph has {n}"
                        )));
                    }
                }
                Ok(())
            };
        check("an input", sg.inputs.as_ref(), false)?;
        check("an output", sg.outputs.as_ref(), false)?;
        for (o, op) in sg.operators.as_deref().unwrap_or(&[]).iter().enumerate() {
            if op.opcode_index as usize >= n_codes {
                return Err(invalid(format!(
                    "subgraph {s} operator {o} uses operator code {} but the model has {n_codes}",
                    op.opcode_index
                )));
            }
            check(&format!("operator {o} input"), op.inputs.as_ref(), true)?;
            check(&format!("operator {o} output"), op.outputs.as_ref(), false)?;
            check(
                &format!("operator {o} intermediate"),
                op.intermediates.as_ref(),
                false,
            )?;
            for (field, target) in called_subgraphs(op) {
                let in_range = usize::try_from(target).is_ok_and(|t| t < subgraphs.len());
                if !in_range || target == s as i64 {
                    return Err(invalid(format!(
                        "subgraph {s} operator {o}: {field} is {target} but the model has subgraphs 0..{}{}",
                        subgraphs.len(),
                        if in_range { " and an op may not call its own subgraph" } else { "" }
                    )));
                }
            }
        }
    }
    for (s, sg) in subgraphs.iter().enumerate() {
        check_execution_order(s, sg)?;
    }
    check_signatures(model, subgraphs)?;
    for m in model.metadata.as_deref().unwrap_or(&[]) {
        if m.buffer as usize >= n_buffers {
            return Err(invalid(format!(
                "metadata {:?} refers to buffer {} but the model has {n_buffers}",
                m.name.as_deref().unwrap_or(""),
                m.buffer
            )));
        }
    }
    for &b in model.metadata_buffer.as_deref().unwrap_or(&[]) {
        if !usize::try_from(b).is_ok_and(|b| b < n_buffers) {
            return Err(invalid(format!(
                "metadata_buffer lists buffer {b} but the model has {n_buffers}"
            )));
        }
    }
    Ok(())
}

/// Operators are stored in execution order: each reads only tensors an earlier operator wrote (or inputs,
/// constants and variables nobody writes). An operator reading what it or a later one writes is a cycle (or an
/// order no runtime executes), and a tensor written by two operators has no single value.
fn check_execution_order(s: usize, sg: &fb::SubGraphT) -> Result<(), ModelError> {
    let n = sg.tensors.as_ref().map_or(0, Vec::len);
    let ops = sg.operators.as_deref().unwrap_or(&[]);
    // Indices were range-checked by the caller.
    let mut writer: Vec<Option<usize>> = vec![None; n];
    for (o, op) in ops.iter().enumerate() {
        for &t in op.outputs.as_deref().unwrap_or(&[]) {
            let t = t as usize;
            if let Some(first) = writer[t] {
                return Err(invalid(format!(
                    "subgraph {s}: tensor {t} is written by operator {first} and again by operator {o}"
                )));
            }
            writer[t] = Some(o);
        }
    }
    for (o, op) in ops.iter().enumerate() {
        for &t in op.inputs.as_deref().unwrap_or(&[]) {
            let Ok(t) = usize::try_from(t) else { continue };
            if let Some(w) = writer[t].filter(|&w| w >= o) {
                return Err(invalid(format!(
                    "subgraph {s}: operator {o} reads tensor {t}, which operator {w} writes {}: the graph has a \
                     cycle (operators must be stored in execution order)",
                    if w == o { "itself" } else { "later" }
                )));
            }
        }
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}

fn tensor_label(s: usize, t: usize, tensor: &fb::TensorT) -> String {
    format!(
        "subgraph {s} tensor {t} ({:?})",
        tensor.name.as_deref().unwrap_or("")
    )
}

fn check_tensor(
    s: usize,
    t: usize,
    tensor: &fb::TensorT,
    buffers: &[fb::BufferT],
) -> Result<(), ModelError> {
    let label = || tensor_label(s, t, tensor);
    if tensor.type_.variant_name().is_none() {
        return Err(invalid(format!(
            "{} has tensor type {}, which is not a TFLite tensor type",
            label(),
            tensor.type_.0
        )));
    }
    let shape = tensor.shape.as_deref().unwrap_or(&[]);
    if let Some(d) = shape.iter().find(|&&d| d < 0) {
        return Err(invalid(format!(
            "{} has a negative dimension {d} in shape {shape:?}",
            label()
        )));
    }
    if let Some(d) = tensor.shape_signature.iter().flatten().find(|&&d| d < -1) {
        return Err(invalid(format!(
            "{} has dimension {d} in its shape signature (only -1 may be negative)",
            label()
        )));
    }
    if tensor.external_buffer != 0 {
        return Err(ModelError::Unsupported(format!(
            "{} keeps its data in external buffer {} (a separate file), which litequant does not read",
            label(),
            tensor.external_buffer
        )));
    }
    let b = tensor.buffer as usize;
    let Some(buffer) = buffers.get(b) else {
        if b == 0 {
            return Ok(());
        }
        return Err(invalid(format!(
            "{} refers to buffer {b} but the model has {}",
            label(),
            buffers.len()
        )));
    };
    let data = buffer.data.as_deref().unwrap_or(&[]);
    if !data.is_empty() {
        check_constant_size(tensor, shape, data)
            .map_err(|why| invalid(format!("{}: {why}", label())))?;
    }
    if let Some(q) = tensor.quantization.as_deref() {
        check_quantization(q, shape).map_err(|why| invalid(format!("{}: {why}", label())))?;
    }
    Ok(())
}

/// Bytes per element, as a fraction `(numerator, denominator)` so packed sub-byte types fit; `None` for
/// types whose size is not per element (STRING, RESOURCE, VARIANT) or unknown to our schema.
fn element_size(t: fb::TensorType) -> Option<(u64, u64)> {
    use fb::TensorType as T;
    Some(match t {
        T::BOOL | T::INT8 | T::UINT8 | T::FLOAT8_E4M3FN | T::FLOAT8_E5M2 => (1, 1),
        T::FLOAT16 | T::BFLOAT16 | T::INT16 | T::UINT16 => (2, 1),
        T::FLOAT32 | T::INT32 | T::UINT32 => (4, 1),
        T::FLOAT64 | T::INT64 | T::UINT64 | T::COMPLEX64 => (8, 1),
        T::COMPLEX128 => (16, 1),
        T::INT4 | T::UINT4 => (1, 2),
        T::INT2 => (1, 4),
        _ => return None,
    })
}

fn check_constant_size(tensor: &fb::TensorT, shape: &[i32], data: &[u8]) -> Result<(), String> {
    if tensor.sparsity.is_some() {
        // Sparse constants store only their non-zero blocks; the sparsity metadata, not the shape, sizes them.
        return Ok(());
    }
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))?;
    if tensor.type_ == fb::TensorType::STRING {
        return check_string_buffer(elements, data);
    }
    let Some((num, den)) = element_size(tensor.type_) else {
        return Ok(());
    };
    let expected = elements
        .checked_mul(num)
        .map(|bytes| bytes.div_ceil(den))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))?;
    if expected != data.len() as u64 {
        return Err(format!(
            "a {} constant of shape {shape:?} needs {expected} bytes but its buffer holds {}",
            type_name(tensor.type_),
            data.len()
        ));
    }
    Ok(())
}

/// TFLite strings: `count: i32`, `count + 1` offsets (i32, from the buffer start), then the bytes.
fn check_string_buffer(elements: u64, data: &[u8]) -> Result<(), String> {
    let word = |i: usize| -> Option<i64> {
        let bytes = data.get(4 * i..4 * i + 4)?;
        Some(i64::from(i32::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])))
    };
    let count = word(0).ok_or("a STRING constant's buffer is too short for its header")?;
    if count < 0 || count as u64 != elements {
        return Err(format!(
            "a STRING constant of {elements} elements has a buffer holding {count} strings"
        ));
    }
    let mut previous = 4 * (count + 2);
    for i in 0..=count as usize {
        let offset = word(1 + i).ok_or("a STRING constant's offset table runs past its buffer")?;
        if offset < previous || offset > data.len() as i64 {
            return Err(format!(
                "a STRING constant's offset {i} ({offset}) is out of order or past its buffer"
            ));
        }
        previous = offset;
    }
    Ok(())
}

/// What the interpreter checks when it loads quantization parameters (`ParseQuantization`).
fn check_quantization(q: &fb::QuantizationParametersT, shape: &[i32]) -> Result<(), String> {
    let scales = q.scale.as_ref().map_or(0, Vec::len);
    let zero_points = q.zero_point.as_ref().map_or(0, Vec::len);
    if scales == 0 {
        return Ok(());
    }
    if scales != zero_points {
        return Err(format!(
            "quantization has {scales} scales but {zero_points} zero points"
        ));
    }
    if scales > 1 {
        let axis = q.quantized_dimension;
        let dim = usize::try_from(axis).ok().and_then(|a| shape.get(a));
        match dim {
            None => {
                return Err(format!(
                    "quantized_dimension {axis} is outside the tensor's rank {}",
                    shape.len()
                ));
            }
            Some(&d) if d as usize != scales => {
                return Err(format!(
                    "{scales} scales for quantized_dimension {axis} of size {d}"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The subgraphs an operator's options refer to, with the option's name.
fn called_subgraphs(op: &fb::OperatorT) -> Vec<(&'static str, i64)> {
    use fb::BuiltinOptions2T as O2;
    use fb::BuiltinOptionsT as O;
    let mut out: Vec<(&'static str, i64)> = match &op.builtin_options {
        O::CallOptions(o) => vec![("CallOptions.subgraph", i64::from(o.subgraph))],
        O::IfOptions(o) => vec![
            (
                "IfOptions.then_subgraph_index",
                i64::from(o.then_subgraph_index),
            ),
            (
                "IfOptions.else_subgraph_index",
                i64::from(o.else_subgraph_index),
            ),
        ],
        O::WhileOptions(o) => vec![
            (
                "WhileOptions.cond_subgraph_index",
                i64::from(o.cond_subgraph_index),
            ),
            (
                "WhileOptions.body_subgraph_index",
                i64::from(o.body_subgraph_index),
            ),
        ],
        O::CallOnceOptions(o) => vec![(
            "CallOnceOptions.init_subgraph_index",
            i64::from(o.init_subgraph_index),
        )],
        _ => Vec::new(),
    };
    match &op.builtin_options_2 {
        O2::StablehloReduceWindowOptions(o) => {
            out.push((
                "StablehloReduceWindowOptions.body_subgraph_index",
                i64::from(o.body_subgraph_index),
            ));
        }
        O2::StablehloWhileOptions(o) => {
            out.push((
                "StablehloWhileOptions.cond_subgraph_index",
                i64::from(o.cond_subgraph_index),
            ));
            out.push((
                "StablehloWhileOptions.body_subgraph_index",
                i64::from(o.body_subgraph_index),
            ));
        }
        O2::StablehloSortOptions(o) => {
            out.push((
                "StablehloSortOptions.comparator_subgraph_index",
                i64::from(o.comparator_subgraph_index),
            ));
        }
        O2::StablehloReduceOptions(o) => {
            out.push((
                "StablehloReduceOptions.body_subgraph_index",
                i64::from(o.body_subgraph_index),
            ));
        }
        O2::StablehloScatterOptions(o) => out.push((
            "StablehloScatterOptions.update_computation_subgraph_index",
            i64::from(o.update_computation_subgraph_index),
        )),
        O2::StableHLOCompositeOptions(o) => out.push((
            "StableHLOCompositeOptions.decomposition_subgraph_index",
            i64::from(o.decomposition_subgraph_index),
        )),
        O2::StablehloCaseOptions(o) => {
            for &b in o.branch_subgraph_indices.iter().flatten() {
                out.push(("StablehloCaseOptions.branch_subgraph_indices", i64::from(b)));
            }
        }
        _ => {}
    }
    out
}

fn check_signatures(model: &fb::ModelT, subgraphs: &[fb::SubGraphT]) -> Result<(), ModelError> {
    for sig in model.signature_defs.as_deref().unwrap_or(&[]) {
        let key = sig.signature_key.as_deref().unwrap_or("");
        let Some(sg) = subgraphs.get(sig.subgraph_index as usize) else {
            return Err(invalid(format!(
                "signature {key:?} refers to subgraph {} but the model has {}",
                sig.subgraph_index,
                subgraphs.len()
            )));
        };
        let n = sg.tensors.as_ref().map_or(0, Vec::len);
        for (side, maps) in [("input", &sig.inputs), ("output", &sig.outputs)] {
            for m in maps.iter().flatten() {
                if m.tensor_index as usize >= n {
                    return Err(invalid(format!(
                        "signature {key:?} {side} {:?} refers to tensor {} but subgraph {} has {n}",
                        m.name.as_deref().unwrap_or(""),
                        m.tensor_index,
                        sig.subgraph_index
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tflite::{fb, read_model, write_model, ModelError};

    /// `y = FULLY_CONNECTED(x, w)`: x [1,4], w [3,4] (48 bytes), y [1,3].
    fn dense_model() -> fb::ModelT {
        let tensor = |name: &str, shape: &[i32], buffer: u32| fb::TensorT {
            shape: Some(shape.to_vec()),
            type_: fb::TensorType::FLOAT32,
            buffer,
            name: Some(name.to_string()),
            ..Default::default()
        };
        fb::ModelT {
            version: 3,
            operator_codes: Some(vec![fb::OperatorCodeT {
                deprecated_builtin_code: 9,
                custom_code: None,
                version: 1,
                builtin_code: fb::BuiltinOperator::FULLY_CONNECTED,
            }]),
            subgraphs: Some(vec![fb::SubGraphT {
                tensors: Some(vec![
                    tensor("x", &[1, 4], 0),
                    tensor("w", &[3, 4], 1),
                    tensor("y", &[1, 3], 0),
                ]),
                inputs: Some(vec![0]),
                outputs: Some(vec![2]),
                operators: Some(vec![fb::OperatorT {
                    opcode_index: 0,
                    inputs: Some(vec![0, 1, -1]),
                    outputs: Some(vec![2]),
                    debug_metadata_index: -1,
                    ..Default::default()
                }]),
                name: Some("main".into()),
                debug_metadata_index: -1,
            }]),
            buffers: Some(vec![
                fb::BufferT::default(),
                fb::BufferT {
                    data: Some(vec![0; 48]),
                    offset: 0,
                    size: 0,
                },
            ]),
            ..Default::default()
        }
    }

    fn invalid_reason(model: &fb::ModelT) -> String {
        match read_model(&write_model(model)) {
            Err(ModelError::Invalid(why) | ModelError::Unsupported(why)) => why,
            Err(other) => panic!("expected an invariant error, got {other}"),
            Ok(_) => panic!("the model was accepted"),
        }
    }

    fn main_sg(m: &mut fb::ModelT) -> &mut fb::SubGraphT {
        &mut m.subgraphs.as_mut().expect("subgraphs")[0]
    }

    #[test]
    fn a_well_formed_model_is_accepted() {
        assert!(read_model(&write_model(&dense_model())).is_ok());
    }

    #[test]
    fn a_constant_whose_buffer_does_not_match_its_shape_is_refused_naming_the_tensor() {
        let mut m = dense_model();
        m.buffers.as_mut().expect("buffers")[1].data = Some(vec![0; 10]);
        let why = invalid_reason(&m);
        assert!(
            why.contains("\"w\"") && why.contains("48 bytes") && why.contains("10"),
            "{why}"
        );
    }

    #[test]
    fn sub_byte_and_string_constants_are_sized_by_their_encoding() {
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].type_ = fb::TensorType::INT4;
        m.buffers.as_mut().expect("buffers")[1].data = Some(vec![0; 6]);
        assert!(
            read_model(&write_model(&m)).is_ok(),
            "12 int4 values fit in 6 bytes"
        );
        let mut m = dense_model();
        let t = &mut main_sg(&mut m).tensors.as_mut().expect("tensors")[1];
        t.type_ = fb::TensorType::STRING;
        t.shape = Some(vec![2]);
        // count 2, offsets 16, 17, 19, then "abc".
        let data: Vec<u8> = [2i32, 16, 17, 19]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain(*b"abc")
            .collect();
        m.buffers.as_mut().expect("buffers")[1].data = Some(data);
        assert!(read_model(&write_model(&m)).is_ok());
        m.buffers.as_mut().expect("buffers")[1].data = Some(
            [2i32, 16, 17, 99]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert!(invalid_reason(&m).contains("STRING"));
    }

    #[test]
    fn cycles_and_unknown_tensor_types_are_invalid() {
        let mut m = dense_model();
        // The only op reads the tensor it writes.
        let sg = main_sg(&mut m);
        let out = sg.operators.as_ref().expect("ops")[0]
            .outputs
            .as_ref()
            .expect("outputs")[0];
        sg.operators.as_mut().expect("ops")[0]
            .inputs
            .as_mut()
            .expect("inputs")[0] = out;
        let why = invalid_reason(&m);
        assert!(why.contains("cycle"), "{why}");
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[0].type_ = fb::TensorType(77);
        let why = invalid_reason(&m);
        assert!(why.contains("tensor type 77"), "{why}");
    }

    #[test]
    fn negative_dimensions_are_refused() {
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[0].shape = Some(vec![-1, 4]);
        assert!(invalid_reason(&m).contains("negative dimension -1"));
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[0].shape_signature = Some(vec![-1, 4]);
        assert!(
            read_model(&write_model(&m)).is_ok(),
            "-1 marks a dynamic dimension in shape_signature"
        );
        main_sg(&mut m).tensors.as_mut().expect("tensors")[0].shape_signature = Some(vec![-2, 4]);
        assert!(invalid_reason(&m).contains("-2"));
    }

    #[test]
    fn indices_out_of_range_are_refused() {
        let mut m = dense_model();
        main_sg(&mut m).operators.as_mut().expect("ops")[0].opcode_index = 1;
        assert!(invalid_reason(&m).contains("operator code 1"));
        let mut m = dense_model();
        main_sg(&mut m).operators.as_mut().expect("ops")[0].inputs = Some(vec![0, 7]);
        assert!(invalid_reason(&m).contains("tensor 7"));
        let mut m = dense_model();
        main_sg(&mut m).operators.as_mut().expect("ops")[0].outputs = Some(vec![-1]);
        assert!(
            invalid_reason(&m).contains("tensor -1"),
            "outputs are never optional"
        );
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[2].buffer = 5;
        assert!(invalid_reason(&m).contains("buffer 5"));
        let mut m = dense_model();
        m.metadata_buffer = Some(vec![-1]);
        assert!(invalid_reason(&m).contains("metadata_buffer"));
        let mut m = dense_model();
        m.metadata = Some(vec![fb::MetadataT {
            name: Some("min_runtime_version".into()),
            buffer: 9,
        }]);
        assert!(invalid_reason(&m).contains("min_runtime_version"));
    }

    #[test]
    fn control_flow_must_call_existing_other_subgraphs() {
        let mut m = dense_model();
        main_sg(&mut m).operators.as_mut().expect("ops")[0].builtin_options =
            fb::BuiltinOptionsT::WhileOptions(Box::new(fb::WhileOptionsT {
                cond_subgraph_index: 0,
                body_subgraph_index: 4,
            }));
        let why = invalid_reason(&m);
        assert!(
            why.contains("cond_subgraph_index is 0") && why.contains("its own subgraph"),
            "{why}"
        );
        let mut m = dense_model();
        main_sg(&mut m).operators.as_mut().expect("ops")[0].builtin_options =
            fb::BuiltinOptionsT::CallOnceOptions(Box::new(fb::CallOnceOptionsT {
                init_subgraph_index: -3,
            }));
        assert!(invalid_reason(&m).contains("init_subgraph_index is -3"));
    }

    #[test]
    fn signatures_must_name_existing_tensors() {
        let mut m = dense_model();
        m.signature_defs = Some(vec![fb::SignatureDefT {
            inputs: Some(vec![fb::TensorMapT {
                name: Some("x".into()),
                tensor_index: 3,
            }]),
            outputs: None,
            signature_key: Some("serving_default".into()),
            subgraph_index: 0,
        }]);
        assert!(invalid_reason(&m).contains("tensor 3"));
        m.signature_defs.as_mut().expect("sigs")[0].subgraph_index = 2;
        assert!(invalid_reason(&m).contains("subgraph 2"));
    }

    #[test]
    fn quantization_must_have_one_zero_point_per_scale_and_a_valid_axis() {
        let mut m = dense_model();
        let q = |scale: Vec<f32>, zero_point: Vec<i64>, axis: i32| {
            Some(Box::new(fb::QuantizationParametersT {
                scale: Some(scale),
                zero_point: Some(zero_point),
                quantized_dimension: axis,
                ..Default::default()
            }))
        };
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].quantization =
            q(vec![0.1, 0.2, 0.3], vec![0, 0, 0], 0);
        assert!(read_model(&write_model(&m)).is_ok());
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].quantization =
            q(vec![0.1, 0.2, 0.3], vec![0], 0);
        assert!(invalid_reason(&m).contains("3 scales but 1 zero points"));
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].quantization =
            q(vec![0.1, 0.2, 0.3], vec![0, 0, 0], 1);
        assert!(invalid_reason(&m).contains("quantized_dimension 1 of size 4"));
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].quantization =
            q(vec![0.1, 0.2, 0.3], vec![0, 0, 0], 5);
        assert!(invalid_reason(&m).contains("outside the tensor's rank"));
    }

    #[test]
    fn tensors_in_external_files_are_refused() {
        let mut m = dense_model();
        main_sg(&mut m).tensors.as_mut().expect("tensors")[1].external_buffer = 1;
        assert!(invalid_reason(&m).contains("external buffer 1"));
    }
}
