//! Specifications of the integer driver on small hand-built graphs.

use super::*;
use crate::graph::TensorId;
use crate::quantize::check::check_integer;
use crate::quantize::params::QuantParams;
use crate::tflite::fb::{BuiltinOperator as Op, TensorType};

/// A tiny model under construction: tensors, constant buffers and ops of one subgraph.
struct ModelBuilder {
    graph: Graph,
}

impl ModelBuilder {
    fn new() -> ModelBuilder {
        let model = fb::ModelT {
            version: 3,
            buffers: Some(vec![fb::BufferT::default()]),
            subgraphs: Some(vec![fb::SubGraphT::default()]),
            ..Default::default()
        };
        ModelBuilder {
            graph: Graph::from_model(model),
        }
    }

    fn tensor(&mut self, name: &str, shape: &[i32]) -> TensorId {
        self.graph.add_tensor(fb::TensorT {
            name: Some(name.into()),
            shape: Some(shape.to_vec()),
            type_: TensorType::FLOAT32,
            ..Default::default()
        })
    }

    fn constant(&mut self, name: &str, shape: &[i32], values: &[f32]) -> TensorId {
        let t = self.tensor(name, shape);
        self.graph
            .set_tensor_data(t, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        t
    }

    fn op(
        &mut self,
        code: Op,
        inputs: &[TensorId],
        outputs: &[TensorId],
        options: fb::BuiltinOptionsT,
    ) {
        let mut op = self.graph.new_op(code, 1, inputs, outputs);
        op.builtin_options = options;
        self.graph
            .main_mut()
            .operators
            .get_or_insert_with(Vec::new)
            .push(op);
    }

    fn io(mut self, inputs: &[TensorId], outputs: &[TensorId]) -> Graph {
        let sg = self.graph.main_mut();
        sg.inputs = Some(inputs.iter().map(|t| t.0 as i32).collect());
        sg.outputs = Some(outputs.iter().map(|t| t.0 as i32).collect());
        self.graph.model.signature_defs = Some(vec![fb::SignatureDefT {
            inputs: Some(
                inputs
                    .iter()
                    .map(|t| fb::TensorMapT {
                        name: Some("x".into()),
                        tensor_index: t.0 as u32,
                    })
                    .collect(),
            ),
            outputs: Some(
                outputs
                    .iter()
                    .map(|t| fb::TensorMapT {
                        name: Some("y".into()),
                        tensor_index: t.0 as u32,
                    })
                    .collect(),
            ),
            signature_key: Some("serving_default".into()),
            subgraph_index: 0,
        }]);
        self.graph
    }
}

/// x[1,4] -> FULLY_CONNECTED -> y -> DIV (no integer kernel) -> z -> SOFTMAX -> out.
fn fc_div_softmax() -> (Graph, Ranges) {
    let mut b = ModelBuilder::new();
    let x = b.tensor("x", &[1, 4]);
    let w = b.constant(
        "w",
        &[3, 4],
        &[
            0.5, -0.25, 1.0, 0.0, 0.1, 0.2, 0.3, 0.4, -1.0, -0.5, 0.5, 1.0,
        ],
    );
    let bias = b.constant("bias", &[3], &[0.1, -0.2, 0.3]);
    let y = b.tensor("y", &[1, 3]);
    let two = b.constant("two", &[1], &[2.0]);
    let z = b.tensor("z", &[1, 3]);
    let out = b.tensor("out", &[1, 3]);
    b.op(
        Op::FULLY_CONNECTED,
        &[x, w, bias],
        &[y],
        fb::BuiltinOptionsT::FullyConnectedOptions(Box::default()),
    );
    b.op(Op::DIV, &[y, two], &[z], fb::BuiltinOptionsT::NONE);
    b.op(
        Op::SOFTMAX,
        &[z],
        &[out],
        fb::BuiltinOptionsT::SoftmaxOptions(Box::new(fb::SoftmaxOptionsT { beta: 1.0 })),
    );
    let g = b.io(&[x], &[out]);
    let ranges = [
        (x, (0.0, 1.0)),
        (y, (-2.0, 2.0)),
        (z, (-1.0, 1.0)),
        (out, (0.0, 1.0)),
    ]
    .into_iter()
    .collect();
    (g, ranges)
}

/// x[1,4] -> FULLY_CONNECTED -> out.
fn fc_only() -> (Graph, Ranges) {
    let mut b = ModelBuilder::new();
    let x = b.tensor("x", &[1, 4]);
    let w = b.constant("w", &[2, 4], &[0.5, -0.25, 1.0, 0.0, 0.1, 0.2, 0.3, 0.4]);
    let bias = b.constant("bias", &[2], &[0.1, -0.2]);
    let out = b.tensor("out", &[1, 2]);
    b.op(
        Op::FULLY_CONNECTED,
        &[x, w, bias],
        &[out],
        fb::BuiltinOptionsT::FullyConnectedOptions(Box::default()),
    );
    let g = b.io(&[x], &[out]);
    (
        g,
        [(x, (-1.0, 1.0)), (out, (-3.0, 3.0))].into_iter().collect(),
    )
}

fn op_names(g: &Graph) -> Vec<String> {
    (0..g.ops().len())
        .map(|i| g.op_type_name(crate::graph::OpIndex(i)))
        .collect()
}

fn params(g: &Graph, t: TensorId) -> QuantParams {
    QuantParams::from_fb(g.tensor(t).quantization.as_deref().expect("quantized"))
        .expect("valid params")
}

#[test]
fn float_fallback_is_wrapped_in_dequantize_and_quantize() {
    let (mut g, ranges) = fc_div_softmax();
    let s = quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
    assert_eq!(
        op_names(&g),
        [
            "QUANTIZE",
            "FULLY_CONNECTED",
            "DEQUANTIZE",
            "DIV",
            "QUANTIZE",
            "SOFTMAX",
            "DEQUANTIZE"
        ]
    );
    assert_eq!(s.ops_quantized, 2);
    assert_eq!(s.ops_float.len(), 1);
    assert_eq!(s.ops_float[0].op, "DIV");
    assert!(
        s.ops_float[0]
            .reason
            .contains("no int8 or int16 DIV kernel"),
        "{}",
        s.ops_float[0].reason
    );
    // The model keeps float I/O under the original names, and the bytes read back.
    let input = g.inputs()[0];
    let output = g.outputs()[0];
    assert_eq!(
        (g.tensor_name(input), g.tensor(input).type_),
        ("x", TensorType::FLOAT32)
    );
    assert_eq!(
        (g.tensor_name(output), g.tensor(output).type_),
        ("out", TensorType::FLOAT32)
    );
    let sig = &g.model.signature_defs.as_ref().unwrap()[0];
    assert_eq!(
        sig.outputs.as_ref().unwrap()[0].tensor_index as usize,
        output.0
    );
    Graph::from_bytes(&g.to_bytes()).expect("the result is a valid model");
}

#[test]
fn strict_int8_lists_every_op_that_cannot_be_quantized() {
    let (mut g, ranges) = fc_div_softmax();
    let opts = QuantOptions {
        allow_float_fallback: false,
        ..QuantOptions::default()
    };
    let err = quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap_err();
    let QuantError::NotQuantizable { ops, .. } = &err else {
        panic!("unexpected error {err}")
    };
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].index, ops[0].op.as_str(), ops[0].output.as_str()),
        (1, "DIV", "z")
    );
    assert!(err.to_string().contains("#1 DIV (z)"), "{err}");
}

#[test]
fn excluded_op_type_stays_float() {
    let (mut g, ranges) = fc_div_softmax();
    let opts = QuantOptions {
        exclude: vec!["SOFTMAX".into()],
        ..QuantOptions::default()
    };
    let s = quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap();
    assert_eq!(
        op_names(&g),
        [
            "QUANTIZE",
            "FULLY_CONNECTED",
            "DEQUANTIZE",
            "DIV",
            "SOFTMAX"
        ]
    );
    assert!(s
        .ops_float
        .iter()
        .any(|f| f.op == "SOFTMAX" && f.reason.contains("exclude")));
}

#[test]
fn uint8_io_uses_requantizing_boundary_ops_with_zero_point_plus_128() {
    let (mut g, ranges) = fc_only();
    let opts = QuantOptions {
        inference_input_type: IoType::Uint8,
        inference_output_type: IoType::Uint8,
        ..QuantOptions::default()
    };
    quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap();
    assert_eq!(op_names(&g), ["QUANTIZE", "FULLY_CONNECTED", "QUANTIZE"]);
    let (input, output) = (g.inputs()[0], g.outputs()[0]);
    assert_eq!(
        (g.tensor_name(input), g.tensor(input).type_),
        ("x", TensorType::UINT8)
    );
    assert_eq!(
        (g.tensor_name(output), g.tensor(output).type_),
        ("out", TensorType::UINT8)
    );
    let inner_in = g.op_outputs(crate::graph::OpIndex(0))[0];
    assert_eq!(g.tensor(inner_in).type_, TensorType::INT8);
    let (pu, pi) = (params(&g, input), params(&g, inner_in));
    assert_eq!(pu.scale(), pi.scale());
    assert_eq!(pu.zero_point()[0], pi.zero_point()[0] + 128);
    let inner_out = g.op_inputs(crate::graph::OpIndex(2))[0].unwrap();
    assert_eq!(
        params(&g, output).zero_point()[0],
        params(&g, inner_out).zero_point()[0] + 128
    );
}

#[test]
fn int8_io_drops_the_boundary_ops() {
    let (mut g, ranges) = fc_only();
    let opts = QuantOptions {
        inference_input_type: IoType::Int8,
        inference_output_type: IoType::Int8,
        ..QuantOptions::default()
    };
    quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap();
    assert_eq!(op_names(&g), ["FULLY_CONNECTED"]);
    assert_eq!(g.tensor(g.inputs()[0]).type_, TensorType::INT8);
    assert_eq!(g.tensor(g.outputs()[0]).type_, TensorType::INT8);
}

#[test]
fn int8_bias_is_int32_with_product_scale_and_per_channel_weights() {
    let (mut g, ranges) = fc_only();
    quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
    let fc = crate::graph::OpIndex(1);
    let ins = g.op_inputs(fc);
    let (x, w, b) = (ins[0].unwrap(), ins[1].unwrap(), ins[2].unwrap());
    assert_eq!(g.tensor(w).type_, TensorType::INT8);
    assert_eq!(params(&g, w).scale().len(), 2);
    assert_eq!(g.tensor(b).type_, TensorType::INT32);
    let (px, pw, pb) = (params(&g, x), params(&g, w), params(&g, b));
    for c in 0..2 {
        assert_eq!(pb.scale()[c], px.scale()[0] * pw.scale()[c]);
    }
}

#[test]
fn per_tensor_dense_weights_when_per_channel_dense_is_off() {
    let (mut g, ranges) = fc_only();
    let opts = QuantOptions {
        per_channel_dense: false,
        ..QuantOptions::default()
    };
    quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap();
    let w = g.op_inputs(crate::graph::OpIndex(1))[1].unwrap();
    assert_eq!(params(&g, w).scale().len(), 1);
}

#[test]
fn self_check_catches_a_wrong_bias_scale() {
    let (mut g, ranges) = fc_only();
    quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
    let rules = RuleRegistry::with_all_rules();
    assert_eq!(check_integer(&g, ActivationType::Int8, &rules), Ok(()));
    let b = g.op_inputs(crate::graph::OpIndex(1))[2].unwrap();
    if let Some(q) = g.tensor_mut(b).quantization.as_deref_mut() {
        q.scale.as_mut().unwrap()[1] *= 2.0;
    }
    let err = check_integer(&g, ActivationType::Int8, &rules).unwrap_err();
    assert!(err.contains("bias") && err.contains("channel 1"), "{err}");
}

#[test]
fn int16x8_uses_symmetric_int16_activations_and_int64_bias() {
    let (mut g, ranges) = fc_only();
    quantize_integer(&mut g, Mode::Int16x8, &QuantOptions::default(), &ranges).unwrap();
    let fc = crate::graph::OpIndex(1);
    let ins = g.op_inputs(fc);
    assert_eq!(g.tensor(ins[0].unwrap()).type_, TensorType::INT16);
    assert_eq!(params(&g, ins[0].unwrap()).zero_point(), &[0]);
    assert_eq!(g.tensor(ins[2].unwrap()).type_, TensorType::INT64);
    let fb::BuiltinOptionsT::FullyConnectedOptions(o) = &g.op(fc).builtin_options else {
        panic!("options")
    };
    assert_eq!(o.quantized_bias_type, TensorType::INT64);
}

#[test]
fn int16x8_rejects_int8_io() {
    let (mut g, ranges) = fc_only();
    let opts = QuantOptions {
        inference_input_type: IoType::Int8,
        ..QuantOptions::default()
    };
    assert!(matches!(
        quantize_integer(&mut g, Mode::Int16x8, &opts, &ranges),
        Err(QuantError::Unsupported(_))
    ));
}

#[test]
fn concatenation_inputs_are_requantized_to_the_output_params() {
    let mut b = ModelBuilder::new();
    let x = b.tensor("x", &[1, 2]);
    let y = b.tensor("y", &[1, 2]);
    let out = b.tensor("out", &[1, 4]);
    let opts = fb::ConcatenationOptionsT {
        axis: 1,
        ..Default::default()
    };
    b.op(
        Op::CONCATENATION,
        &[x, y],
        &[out],
        fb::BuiltinOptionsT::ConcatenationOptions(Box::new(opts)),
    );
    let mut g = b.io(&[x, y], &[out]);
    let ranges = [(x, (0.0, 1.0)), (y, (-4.0, 4.0)), (out, (-4.0, 4.0))]
        .into_iter()
        .collect();
    quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
    let concat = (0..g.ops().len())
        .map(crate::graph::OpIndex)
        .find(|&o| g.op_code(o) == Op::CONCATENATION)
        .unwrap();
    let out_params = params(&g, g.op_outputs(concat)[0]);
    for t in g.op_inputs(concat).into_iter().flatten() {
        assert_eq!(params(&g, t), out_params);
    }
    // x needed a requantizing QUANTIZE (int8 -> int8); y's range equals the output's.
    assert_eq!(op_names(&g).iter().filter(|n| *n == "QUANTIZE").count(), 3);
}

#[test]
fn custom_ops_pass_through_with_select_tf_ops_and_their_dependents_stay_float() {
    let mut b = ModelBuilder::new();
    let x = b.tensor("x", &[1, 4]);
    let c = b.tensor("c", &[1, 4]);
    let out = b.tensor("out", &[1, 4]);
    let mut custom = b.graph.new_op(Op::CUSTOM, 1, &[x], &[c]);
    custom.opcode_index = b.graph.op_code_index(Op::CUSTOM, Some("FlexErf"), 1);
    b.graph
        .main_mut()
        .operators
        .get_or_insert_with(Vec::new)
        .push(custom);
    b.op(Op::RELU, &[c], &[out], fb::BuiltinOptionsT::NONE);
    let g0 = b.io(&[x], &[out]);
    let ranges: Ranges = [(x, (0.0, 1.0))].into_iter().collect();

    let mut g = Graph::from_model(g0.model.clone());
    let err = quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap_err();
    assert!(err.to_string().contains("SELECT_TF_OPS"), "{err}");

    let mut g = Graph::from_model(g0.model.clone());
    let opts = QuantOptions {
        select_tf_ops: true,
        ..QuantOptions::default()
    };
    let s = quantize_integer(&mut g, Mode::Int8, &opts, &ranges).unwrap();
    assert_eq!(op_names(&g), ["CUSTOM(FlexErf)", "RELU"]);
    assert_eq!(s.ops_float.len(), 2);
    assert!(
        s.ops_float[1].reason.contains("pass-through"),
        "{}",
        s.ops_float[1].reason
    );
}

#[test]
fn missing_range_names_the_tensor() {
    let (mut g, mut ranges) = fc_only();
    ranges.remove(&TensorId(3));
    let err = quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap_err();
    assert!(
        matches!(&err, QuantError::MissingRange(m) if m.contains("out")),
        "{err}"
    );
}

#[test]
fn legacy_op_codes_in_the_deprecated_field_are_recognized() {
    let (mut g, ranges) = fc_div_softmax();
    for code in g.model.operator_codes.as_mut().unwrap() {
        // Pre-3a writers (MediaPipe's models among them) leave builtin_code at 0 (ADD).
        code.deprecated_builtin_code = code.builtin_code.0 as i8;
        code.builtin_code = Op::ADD;
    }
    let s = quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
    assert_eq!(s.ops_quantized, 2);
    assert_eq!(
        op_names(&g),
        [
            "QUANTIZE",
            "FULLY_CONNECTED",
            "DEQUANTIZE",
            "DIV",
            "QUANTIZE",
            "SOFTMAX",
            "DEQUANTIZE"
        ]
    );
}

#[test]
fn quantizing_twice_gives_the_same_bytes() {
    let run = || {
        let (mut g, ranges) = fc_div_softmax();
        quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).unwrap();
        g.to_bytes()
    };
    assert_eq!(run(), run());
}

/// main: `(i, y) = WHILE(0, x)`; cond: `i < 3`; body: `(i + 1, x + x)`, built subgraph by subgraph.
fn while_doubling() -> Graph {
    let mut b = ModelBuilder::new();
    b.graph
        .model
        .subgraphs
        .get_or_insert_with(Vec::new)
        .extend([fb::SubGraphT::default(), fb::SubGraphT::default()]);
    let int = |b: &mut ModelBuilder, name: &str, value: Option<i32>| {
        let t = b.graph.add_tensor(fb::TensorT {
            name: Some(name.into()),
            shape: Some(vec![]),
            type_: TensorType::INT32,
            ..Default::default()
        });
        if let Some(v) = value {
            b.graph.set_tensor_data(t, v.to_le_bytes().to_vec());
        }
        t
    };
    let set_io = |b: &mut ModelBuilder, inputs: &[TensorId], outputs: &[TensorId]| {
        let sg = b.graph.main_mut();
        sg.inputs = Some(inputs.iter().map(|t| t.0 as i32).collect());
        sg.outputs = Some(outputs.iter().map(|t| t.0 as i32).collect());
    };
    // Subgraph 1, the cond.
    b.graph.focus(1);
    let ci = int(&mut b, "c/i", None);
    let cx = b.tensor("c/x", &[1, 4]);
    let lim = int(&mut b, "c/limit", Some(3));
    let go = b.graph.add_tensor(fb::TensorT {
        name: Some("c/go".into()),
        shape: Some(vec![]),
        type_: TensorType::BOOL,
        ..Default::default()
    });
    b.op(Op::LESS, &[ci, lim], &[go], fb::BuiltinOptionsT::NONE);
    set_io(&mut b, &[ci, cx], &[go]);
    // Subgraph 2, the body.
    b.graph.focus(2);
    let bi = int(&mut b, "b/i", None);
    let bx = b.tensor("b/x", &[1, 4]);
    let one = int(&mut b, "b/one", Some(1));
    let bi2 = int(&mut b, "b/i_next", None);
    let bx2 = b.tensor("b/x_next", &[1, 4]);
    let add = || fb::BuiltinOptionsT::AddOptions(Box::default());
    b.op(Op::ADD, &[bi, one], &[bi2], add());
    b.op(Op::ADD, &[bx, bx], &[bx2], add());
    set_io(&mut b, &[bi, bx], &[bi2, bx2]);
    // Subgraph 0, the main one.
    b.graph.focus(0);
    let x = b.tensor("x", &[1, 4]);
    let i0 = int(&mut b, "i0", Some(0));
    let i = int(&mut b, "i", None);
    let y = b.tensor("y", &[1, 4]);
    b.op(
        Op::WHILE,
        &[i0, x],
        &[i, y],
        fb::BuiltinOptionsT::WhileOptions(Box::new(fb::WhileOptionsT {
            cond_subgraph_index: 1,
            body_subgraph_index: 2,
        })),
    );
    b.io(&[x], &[y])
}

#[test]
fn a_while_loop_variable_carries_one_set_of_params_the_union_of_its_ranges() {
    let mut g = while_doubling();
    // Flat ids: main x=0 .. y=3; cond 4.. (c/x = 5); body 8.. (b/x = 9, b/x_next = 12).
    let ranges: Ranges = [
        (TensorId(0), (0.0, 1.0)),
        (TensorId(3), (0.0, 8.0)),
        (TensorId(5), (0.0, 4.0)),
        (TensorId(9), (0.0, 4.0)),
        (TensorId(12), (0.0, 8.0)),
    ]
    .into_iter()
    .collect();
    let summary =
        quantize_integer(&mut g, Mode::Int8, &QuantOptions::default(), &ranges).expect("quantizes");
    assert!(summary.ops_float.is_empty(), "{:?}", summary.ops_float);
    let union = ActivationType::Int8
        .params_for_range(0.0, 8.0)
        .expect("params");
    let params = |g: &Graph, name: &str| {
        let t = (0..g.tensors().len())
            .map(TensorId)
            .find(|&t| g.tensor_name(t) == name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(g.tensor(t).type_, TensorType::INT8, "{name}");
        g.tensor(t)
            .quantization
            .as_deref()
            .and_then(QuantParams::from_fb)
    };
    g.focus(1);
    assert_eq!(params(&g, "c/x"), Some(union.clone()), "cond input");
    g.focus(2);
    assert_eq!(params(&g, "b/x"), Some(union.clone()), "body input");
    assert_eq!(params(&g, "b/x_next"), Some(union.clone()), "body output");
    g.focus(0);
    let while_op = (0..g.ops().len())
        .map(crate::graph::OpIndex)
        .find(|&o| g.op_code(o) == Op::WHILE)
        .expect("the WHILE");
    let of = |g: &Graph, t: TensorId| {
        g.tensor(t)
            .quantization
            .as_deref()
            .and_then(QuantParams::from_fb)
    };
    let outs = g.op_outputs(while_op);
    assert_eq!(of(&g, outs[1]), Some(union.clone()), "WHILE output");
    // The WHILE reads x quantized on the loop's params, not x's own (0, 1).
    let read = g.op_inputs(while_op)[1].expect("loop input");
    assert_eq!(g.tensor(read).type_, TensorType::INT8);
    assert_eq!(of(&g, read), Some(union));
    // The integer counter is left alone.
    assert_eq!(g.tensor(outs[0]).type_, TensorType::INT32);
    // A subgraph whose boundary breaks the rule is refused by the check.
    g.focus(2);
    let bx = (0..g.tensors().len())
        .map(TensorId)
        .find(|&t| g.tensor_name(t) == "b/x")
        .expect("b/x");
    let mut other = g.tensor(bx).quantization.clone().expect("params");
    other.scale = Some(vec![1.0]);
    g.tensor_mut(bx).quantization = Some(other);
    g.focus(0);
    let err = loops::check_loops(&g).expect_err("mismatched loop variable");
    assert!(err.contains("loop variable 1"), "{err}");
}
