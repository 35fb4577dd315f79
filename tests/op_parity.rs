//! Generated one-op models against LiteRT's reference kernels: for each op case a float model with one op is
//! written with calibration and evaluation data, built in every mode with the CLI, and every op of every
//! artifact is run in the integer interpreter on LiteRT's own inputs (`interp::parity_on`): integer outputs
//! must be bit-exact, float ones within the relative tolerance. The cases cover the shapes, broadcasts and
//! options of the ops whose kernels are checked here (TRANSPOSE_CONV, BATCH_MATMUL, TRANSPOSE,
//! SQUARED_DIFFERENCE, RSQRT, GELU, LEAKY_RELU, the data-movement ops, and UNIDIRECTIONAL_SEQUENCE_LSTM in
//! its variants: plain, CIFG, peephole (time-major), projection, layer norm; each sample from reset state).
//!
//! TILE (int8 is v3) and DEPTH_TO_SPACE (int8 is v2) are not generated: LiteRT 2.3's `BUILTIN_REF` resolver
//! registers them only up to v2 and v1 (its default resolver runs them).
//!
//! Needs `LITEQUANT_TEST_PYTHON`. The table prints with `cargo test --test tests op_parity -- --nocapture`.

use litequant::tflite::fb;
use std::path::{Path, PathBuf};

/// An op input: a model input with values drawn from `[lo, hi)`, or a constant.
enum Input {
    Live(&'static [i32], f32, f32),
    ConstF32(&'static [i32], Vec<f32>),
    ConstI32(&'static [i32], Vec<i32>),
    /// An omitted optional input (-1).
    Omitted,
    /// A variable tensor without data (a recurrent op's state, zero after `reset_all_variables`).
    State(&'static [i32]),
}

/// One generated model: a name, the op, its options, its inputs and its output shape.
struct Case {
    name: &'static str,
    op: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    inputs: Vec<Input>,
    outputs: &'static [&'static [i32]],
}

/// Deterministic values in `[lo, hi)`.
fn values(n: usize, seed: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let u = ((i * 7919 + seed * 104_729 + 13) % 1009) as f32 / 1009.0;
            lo + (hi - lo) * u
        })
        .collect()
}

fn count(shape: &[i32]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}

/// The float one-op model of a case.
fn model(case: &Case) -> Vec<u8> {
    let mut tensors = Vec::new();
    let mut buffers = vec![fb::BufferT::default()];
    let mut model_inputs = Vec::new();
    let mut op_inputs = Vec::new();
    for (i, input) in case.inputs.iter().enumerate() {
        let mut t = fb::TensorT::default();
        t.name = Some(format!("in{i}"));
        match input {
            Input::Omitted => {
                op_inputs.push(-1);
                continue;
            }
            Input::State(shape) => {
                t.shape = Some(shape.to_vec());
                t.type_ = fb::TensorType::FLOAT32;
                t.is_variable = true;
            }
            Input::Live(shape, _, _) => {
                t.shape = Some(shape.to_vec());
                t.type_ = fb::TensorType::FLOAT32;
                model_inputs.push(tensors.len() as i32);
            }
            Input::ConstF32(shape, v) => {
                t.shape = Some(shape.to_vec());
                t.type_ = fb::TensorType::FLOAT32;
                let mut b = fb::BufferT::default();
                b.data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
                t.buffer = buffers.len() as u32;
                buffers.push(b);
            }
            Input::ConstI32(shape, v) => {
                t.shape = Some(shape.to_vec());
                t.type_ = fb::TensorType::INT32;
                let mut b = fb::BufferT::default();
                b.data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
                t.buffer = buffers.len() as u32;
                buffers.push(b);
            }
        }
        op_inputs.push(tensors.len() as i32);
        tensors.push(t);
    }
    let mut out_ids = Vec::new();
    for (k, shape) in case.outputs.iter().enumerate() {
        let mut out = fb::TensorT::default();
        out.name = Some(format!("out{k}"));
        out.shape = Some(shape.to_vec());
        out.type_ = fb::TensorType::FLOAT32;
        out_ids.push(tensors.len() as i32);
        tensors.push(out);
    }
    let mut op = fb::OperatorT::default();
    op.inputs = Some(op_inputs);
    op.outputs = Some(out_ids.clone());
    op.builtin_options = case.options.clone();
    op.debug_metadata_index = -1;
    let mut code = fb::OperatorCodeT::default();
    code.deprecated_builtin_code = case.op.0.min(127) as i8;
    code.builtin_code = case.op;
    code.version = 1;
    let mut main = fb::SubGraphT::default();
    main.tensors = Some(tensors);
    main.inputs = Some(model_inputs);
    main.outputs = Some(out_ids);
    main.operators = Some(vec![op]);
    main.name = Some("main".into());
    main.debug_metadata_index = -1;
    let mut m = fb::ModelT::default();
    m.version = 3;
    m.operator_codes = Some(vec![code]);
    m.subgraphs = Some(vec![main]);
    m.buffers = Some(buffers);
    m.description = Some(format!("litequant op parity: {}", case.name));
    litequant::tflite::write_model(&m)
}

/// Writes `npz` with `samples` rows for every live input (keyed by tensor name, `[N, ...shape]`).
fn data(case: &Case, path: &Path, samples: usize, seed: usize) {
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).expect("npz"));
    for (i, input) in case.inputs.iter().enumerate() {
        if let Input::Live(shape, lo, hi) = input {
            let mut dims = vec![samples];
            dims.extend(shape.iter().map(|&d| d as usize));
            let v = values(samples * count(shape), seed * 31 + i, *lo, *hi);
            let a = ndarray::ArrayD::from_shape_vec(dims, v).expect("shape");
            npz.add_array(format!("in{i}"), &a).expect("write npz");
        }
    }
    npz.finish().expect("finish npz");
}

fn transpose_conv(padding: fb::Padding, stride: i32) -> fb::BuiltinOptionsT {
    let mut o = fb::TransposeConvOptionsT::default();
    o.padding = padding;
    o.stride_w = stride;
    o.stride_h = stride;
    fb::BuiltinOptionsT::TransposeConvOptions(Box::new(o))
}

fn batch_matmul(adj_x: bool, adj_y: bool) -> fb::BuiltinOptionsT {
    let mut o = fb::BatchMatMulOptionsT::default();
    o.adj_x = adj_x;
    o.adj_y = adj_y;
    fb::BuiltinOptionsT::BatchMatMulOptions(Box::new(o))
}

fn gelu(approximate: bool) -> fb::BuiltinOptionsT {
    let mut o = fb::GeluOptionsT::default();
    o.approximate = approximate;
    fb::BuiltinOptionsT::GeluOptions(Box::new(o))
}

/// A float UNIDIRECTIONAL_SEQUENCE_LSTM over 5 steps of 6 features, 7 cells, in one of its variants.
fn lstm(
    name: &'static str,
    cifg: bool,
    peephole: bool,
    projection: bool,
    layer_norm: bool,
    time_major: bool,
) -> Case {
    let (t, n_in, cells) = (5, 6, 7);
    let out = if projection { 4 } else { cells };
    let shape = |v: Vec<i32>| -> &'static [i32] { v.leak() };
    let weights = |shape_: &'static [i32], seed: usize, lo: f32, hi: f32| {
        Input::ConstF32(shape_, values(count(shape_), seed, lo, hi))
    };
    let mut inputs = vec![Input::Live(
        if time_major {
            shape(vec![t, 1, n_in])
        } else {
            shape(vec![1, t, n_in])
        },
        -1.0,
        1.0,
    )];
    for g in 0..4 {
        inputs.push(if cifg && g == 0 {
            Input::Omitted
        } else {
            weights(shape(vec![cells, n_in]), 10 + g, -0.6, 0.6)
        });
    }
    for g in 0..4 {
        inputs.push(if cifg && g == 0 {
            Input::Omitted
        } else {
            weights(shape(vec![cells, out]), 20 + g, -0.5, 0.5)
        });
    }
    for g in 0..3 {
        inputs.push(if peephole && !(cifg && g == 0) {
            weights(shape(vec![cells]), 30 + g, -0.3, 0.3)
        } else {
            Input::Omitted
        });
    }
    for g in 0..4 {
        inputs.push(if cifg && g == 0 {
            Input::Omitted
        } else {
            weights(shape(vec![cells]), 40 + g, -0.4, 0.6)
        });
    }
    if projection {
        inputs.push(weights(shape(vec![out, cells]), 50, -0.7, 0.7));
        inputs.push(weights(shape(vec![out]), 51, -0.1, 0.1));
    } else {
        inputs.push(Input::Omitted);
        inputs.push(Input::Omitted);
    }
    inputs.push(Input::State(shape(vec![1, out])));
    inputs.push(Input::State(shape(vec![1, cells])));
    for g in 0..4 {
        inputs.push(if layer_norm && !(cifg && g == 0) {
            weights(shape(vec![cells]), 60 + g, 0.5, 1.5)
        } else {
            Input::Omitted
        });
    }
    let mut o = fb::UnidirectionalSequenceLSTMOptionsT::default();
    o.fused_activation_function = fb::ActivationFunctionType::TANH;
    o.cell_clip = 10.0;
    o.proj_clip = if projection { 3.0 } else { 0.0 };
    o.time_major = time_major;
    let options = fb::BuiltinOptionsT::UnidirectionalSequenceLSTMOptions(Box::new(o));
    let output = if time_major {
        shape(vec![t, 1, out])
    } else {
        shape(vec![1, t, out])
    };
    Case {
        name,
        op: fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM,
        options,
        inputs,
        outputs: Vec::leak(vec![output]),
    }
}

fn cases() -> Vec<Case> {
    use fb::BuiltinOperator as Op;
    use fb::BuiltinOptionsT as O;
    let pack = {
        let mut o = fb::PackOptionsT::default();
        o.values_count = 2;
        o.axis = 1;
        O::PackOptions(Box::new(o))
    };
    let unpack = {
        let mut o = fb::UnpackOptionsT::default();
        o.num = 3;
        o.axis = 1;
        O::UnpackOptions(Box::new(o))
    };
    let gather = {
        let mut o = fb::GatherOptionsT::default();
        o.axis = 1;
        O::GatherOptions(Box::new(o))
    };
    let split = |n: i32| {
        let mut o = fb::SplitOptionsT::default();
        o.num_splits = n;
        O::SplitOptions(Box::new(o))
    };
    let split_v = {
        let mut o = fb::SplitVOptionsT::default();
        o.num_splits = 3;
        O::SplitVOptions(Box::new(o))
    };
    let space_to_depth = {
        let mut o = fb::SpaceToDepthOptionsT::default();
        o.block_size = 2;
        O::SpaceToDepthOptions(Box::new(o))
    };
    let leaky = {
        let mut o = fb::LeakyReluOptionsT::default();
        o.alpha = 0.2;
        O::LeakyReluOptions(Box::new(o))
    };
    vec![
        Case {
            name: "leaky_relu",
            op: Op::LEAKY_RELU,
            options: leaky,
            inputs: vec![Input::Live(&[1, 4, 6], -2.0, 3.0)],
            outputs: &[&[1, 4, 6]],
        },
        Case {
            name: "expand_dims",
            op: Op::EXPAND_DIMS,
            options: O::ExpandDimsOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 3, 4], -1.0, 1.0),
                Input::ConstI32(&[1], vec![1]),
            ],
            outputs: &[&[1, 1, 3, 4]],
        },
        Case {
            name: "slice",
            op: Op::SLICE,
            options: O::SliceOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 5, 6], -1.0, 2.0),
                Input::ConstI32(&[3], vec![0, 1, 2]),
                Input::ConstI32(&[3], vec![1, 3, -1]),
            ],
            outputs: &[&[1, 3, 4]],
        },
        Case {
            name: "split",
            op: Op::SPLIT,
            options: split(3),
            inputs: vec![
                Input::ConstI32(&[], vec![2]),
                Input::Live(&[1, 4, 6], -1.0, 2.0),
            ],
            outputs: &[&[1, 4, 2], &[1, 4, 2], &[1, 4, 2]],
        },
        Case {
            name: "split_v",
            op: Op::SPLIT_V,
            options: split_v,
            inputs: vec![
                Input::Live(&[1, 4, 6], -1.0, 2.0),
                Input::ConstI32(&[3], vec![1, -1, 2]),
                Input::ConstI32(&[], vec![2]),
            ],
            outputs: &[&[1, 4, 1], &[1, 4, 3], &[1, 4, 2]],
        },
        Case {
            name: "pack",
            op: Op::PACK,
            options: pack,
            inputs: vec![
                Input::Live(&[1, 3, 4], -1.0, 2.0),
                Input::Live(&[1, 3, 4], -3.0, 1.0),
            ],
            outputs: &[&[1, 2, 3, 4]],
        },
        Case {
            name: "unpack",
            op: Op::UNPACK,
            options: unpack,
            inputs: vec![Input::Live(&[1, 3, 4], -1.0, 2.0)],
            outputs: &[&[1, 4], &[1, 4], &[1, 4]],
        },
        Case {
            name: "broadcast_to",
            op: Op::BROADCAST_TO,
            options: O::BroadcastToOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 1, 3], -1.0, 2.0),
                Input::ConstI32(&[3], vec![1, 4, 3]),
            ],
            outputs: &[&[1, 4, 3]],
        },
        Case {
            name: "gather",
            op: Op::GATHER,
            options: gather,
            inputs: vec![
                Input::Live(&[1, 5, 4], -1.0, 2.0),
                Input::ConstI32(&[3], vec![4, 0, 2]),
            ],
            outputs: &[&[1, 3, 4]],
        },
        Case {
            name: "space_to_depth",
            op: Op::SPACE_TO_DEPTH,
            options: space_to_depth,
            inputs: vec![Input::Live(&[1, 4, 6, 2], -1.0, 2.0)],
            outputs: &[&[1, 2, 3, 8]],
        },
        Case {
            name: "maximum",
            op: Op::MAXIMUM,
            options: O::MaximumMinimumOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 4, 6], -1.0, 2.0),
                Input::Live(&[1, 1, 6], -0.5, 1.0),
            ],
            outputs: &[&[1, 4, 6]],
        },
        Case {
            name: "minimum",
            op: Op::MINIMUM,
            options: O::MaximumMinimumOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 4, 6], -1.0, 2.0),
                Input::Live(&[1, 1, 6], -0.5, 1.0),
            ],
            outputs: &[&[1, 4, 6]],
        },
        Case {
            name: "transpose_conv_same_s2",
            op: Op::TRANSPOSE_CONV,
            options: transpose_conv(fb::Padding::SAME, 2),
            inputs: vec![
                Input::ConstI32(&[4], vec![1, 7, 9, 3]),
                Input::ConstF32(&[3, 3, 3, 5], values(135, 1, -0.6, 0.6)),
                Input::Live(&[1, 4, 5, 5], -1.0, 2.0),
                Input::ConstF32(&[3], vec![0.1, -0.2, 0.05]),
            ],
            outputs: &[&[1, 7, 9, 3]],
        },
        Case {
            name: "transpose_conv_valid_s2_k2",
            op: Op::TRANSPOSE_CONV,
            options: transpose_conv(fb::Padding::VALID, 2),
            inputs: vec![
                Input::ConstI32(&[4], vec![1, 6, 6, 2]),
                Input::ConstF32(&[2, 2, 2, 4], values(32, 2, -1.0, 1.0)),
                Input::Live(&[1, 3, 3, 4], 0.0, 1.0),
            ],
            outputs: &[&[1, 6, 6, 2]],
        },
        Case {
            name: "batch_matmul_broadcast",
            op: Op::BATCH_MATMUL,
            options: batch_matmul(false, false),
            inputs: vec![
                Input::Live(&[1, 3, 4, 6], -1.0, 1.0),
                Input::Live(&[1, 1, 6, 5], -2.0, 0.5),
            ],
            outputs: &[&[1, 3, 4, 5]],
        },
        Case {
            name: "batch_matmul_adj_x_adj_y",
            op: Op::BATCH_MATMUL,
            options: batch_matmul(true, true),
            inputs: vec![
                Input::Live(&[1, 6, 4], -1.0, 3.0),
                Input::Live(&[1, 5, 6], -1.0, 1.0),
            ],
            outputs: &[&[1, 4, 5]],
        },
        Case {
            name: "batch_matmul_5d",
            op: Op::BATCH_MATMUL,
            options: batch_matmul(false, true),
            inputs: vec![
                Input::Live(&[1, 2, 1, 3, 4], -0.5, 0.5),
                Input::Live(&[1, 1, 3, 2, 4], -1.0, 1.0),
            ],
            outputs: &[&[1, 2, 3, 3, 2]],
        },
        Case {
            name: "transpose_4d",
            op: Op::TRANSPOSE,
            options: fb::BuiltinOptionsT::TransposeOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 3, 4, 5], -3.0, 1.0),
                Input::ConstI32(&[4], vec![0, 3, 1, 2]),
            ],
            outputs: &[&[1, 5, 3, 4]],
        },
        Case {
            name: "squared_difference_broadcast",
            op: Op::SQUARED_DIFFERENCE,
            options: fb::BuiltinOptionsT::SquaredDifferenceOptions(Box::default()),
            inputs: vec![
                Input::Live(&[1, 4, 6], -1.0, 2.0),
                Input::Live(&[1, 1, 6], -0.5, 0.5),
            ],
            outputs: &[&[1, 4, 6]],
        },
        Case {
            name: "rsqrt",
            op: Op::RSQRT,
            options: fb::BuiltinOptionsT::NONE,
            inputs: vec![Input::Live(&[1, 4, 8], 0.01, 3.0)],
            outputs: &[&[1, 4, 8]],
        },
        Case {
            name: "gelu",
            op: Op::GELU,
            options: gelu(false),
            inputs: vec![Input::Live(&[1, 5, 7], -4.0, 3.0)],
            outputs: &[&[1, 5, 7]],
        },
        // Integer (8x8_16) in int8 (layer norm and projection from the calibrated gate and hidden values);
        // float (the float kernel against LiteRT's) in the other modes.
        lstm("lstm", false, false, false, false, false),
        lstm("lstm_cifg", true, false, false, false, false),
        lstm("lstm_peephole", false, true, false, false, true),
        lstm("lstm_projection", false, false, true, false, false),
        lstm("lstm_layer_norm_cifg", true, true, false, true, false),
        Case {
            name: "gelu_approximate",
            op: Op::GELU,
            options: gelu(true),
            inputs: vec![Input::Live(&[1, 5, 7], -3.0, 4.0)],
            outputs: &[&[1, 5, 7]],
        },
    ]
}

#[test]
fn generated_one_op_models_match_litert_reference_kernels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut models: Vec<(String, PathBuf)> = Vec::new();
    for case in cases() {
        let d = dir.path().join(case.name);
        std::fs::create_dir_all(&d).expect("model dir");
        std::fs::write(d.join("model.tflite"), model(&case)).expect("write model");
        data(&case, &d.join("calib.npz"), 100, 1);
        data(&case, &d.join("eval.npz"), 4, 2);
        models.push((case.name.to_string(), d));
    }
    let report = crate::interp::parity_on(&models, 4);
    println!("{}", report.table);
    assert!(
        report.problems.is_empty(),
        "{}\n{}",
        report.table,
        report.problems.join("\n")
    );
}
