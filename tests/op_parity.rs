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

/// Sizes and variant of a generated LSTM direction.
#[derive(Clone, Copy)]
struct LstmSpec {
    batch: i32,
    time: i32,
    n_in: i32,
    cells: i32,
    cifg: bool,
    peephole: bool,
    projection: bool,
    layer_norm: bool,
    time_major: bool,
}

/// 5 steps of 6 features, 7 cells: small weights (dynamic mode keeps them float).
const SMALL_LSTM: LstmSpec = LstmSpec {
    batch: 1,
    time: 5,
    n_in: 6,
    cells: 7,
    cifg: false,
    peephole: false,
    projection: false,
    layer_norm: false,
    time_major: false,
};

/// 2 rows of 4 steps of 40 features, 32 cells: input weights of 1280 elements, which dynamic mode makes
/// int8 (with every other weight of the op), so the hybrid kernel runs.
const BIG_LSTM: LstmSpec = LstmSpec {
    batch: 2,
    time: 4,
    n_in: 40,
    cells: 32,
    ..SMALL_LSTM
};

fn leak(v: Vec<i32>) -> &'static [i32] {
    v.leak()
}

impl LstmSpec {
    fn out(&self) -> i32 {
        if self.projection {
            self.cells / 2 + 1
        } else {
            self.cells
        }
    }

    /// `[batch, time, n]` (`[time, batch, n]` when time-major).
    fn sequence(&self, n: i32) -> &'static [i32] {
        if self.time_major {
            leak(vec![self.time, self.batch, n])
        } else {
            leak(vec![self.batch, self.time, n])
        }
    }

    /// One direction's 17 constant inputs (gate weights, recurrent weights, peephole, biases,
    /// projection), values seeded from `seed`.
    fn direction(&self, seed: usize) -> Vec<Input> {
        let (cells, n_in, out) = (self.cells, self.n_in, self.out());
        let weights = |shape: Vec<i32>, seed: usize, lo: f32, hi: f32| {
            let shape = leak(shape);
            Input::ConstF32(shape, values(count(shape), seed, lo, hi))
        };
        // Weight ranges shrink with the fan-in so that the gates do not saturate.
        let amp = |fan_in: i32| 4.0 / (fan_in as f32).sqrt();
        let gate = |g: usize| !(self.cifg && g == 0);
        let mut inputs = Vec::new();
        for g in 0..4 {
            let a = amp(n_in).min(0.6);
            inputs.push(if gate(g) {
                weights(vec![cells, n_in], seed + 10 + g, -a, a)
            } else {
                Input::Omitted
            });
        }
        for g in 0..4 {
            let a = amp(out).min(0.5);
            inputs.push(if gate(g) {
                weights(vec![cells, out], seed + 20 + g, -a, a)
            } else {
                Input::Omitted
            });
        }
        for g in 0..3 {
            inputs.push(if self.peephole && gate(g) {
                weights(vec![cells], seed + 30 + g, -0.3, 0.3)
            } else {
                Input::Omitted
            });
        }
        for g in 0..4 {
            inputs.push(if gate(g) {
                weights(vec![cells], seed + 40 + g, -0.4, 0.6)
            } else {
                Input::Omitted
            });
        }
        if self.projection {
            let a = amp(cells).min(0.7);
            inputs.push(weights(vec![out, cells], seed + 50, -a, a));
            inputs.push(weights(vec![out], seed + 51, -0.1, 0.1));
        } else {
            inputs.push(Input::Omitted);
            inputs.push(Input::Omitted);
        }
        inputs
    }

    /// The two state inputs (output state, cell state).
    fn states(&self) -> [Input; 2] {
        [
            Input::State(leak(vec![self.batch, self.out()])),
            Input::State(leak(vec![self.batch, self.cells])),
        ]
    }

    /// The four layer-norm coefficient inputs (omitted without layer norm).
    fn layer_norm(&self) -> Vec<Input> {
        (0..4)
            .map(|g| {
                if self.layer_norm && !(self.cifg && g == 0) {
                    let shape = leak(vec![self.cells]);
                    Input::ConstF32(shape, values(count(shape), 60 + g, 0.5, 1.5))
                } else {
                    Input::Omitted
                }
            })
            .collect()
    }
}

/// A float UNIDIRECTIONAL_SEQUENCE_LSTM in one of its variants.
fn lstm(name: &'static str, spec: LstmSpec) -> Case {
    let mut inputs = vec![Input::Live(spec.sequence(spec.n_in), -1.0, 1.0)];
    inputs.extend(spec.direction(0));
    inputs.extend(spec.states());
    inputs.extend(spec.layer_norm());
    let mut o = fb::UnidirectionalSequenceLSTMOptionsT::default();
    o.fused_activation_function = fb::ActivationFunctionType::TANH;
    o.cell_clip = 10.0;
    o.proj_clip = if spec.projection { 3.0 } else { 0.0 };
    o.time_major = spec.time_major;
    Case {
        name,
        op: fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM,
        options: fb::BuiltinOptionsT::UnidirectionalSequenceLSTMOptions(Box::new(o)),
        inputs,
        outputs: Vec::leak(vec![spec.sequence(spec.out())]),
    }
}

/// A float LSTM (the full kernel: one step of `[batch, n_in]`).
fn lstm_step(name: &'static str, spec: LstmSpec) -> Case {
    let mut inputs = vec![Input::Live(leak(vec![spec.batch, spec.n_in]), -1.0, 1.0)];
    inputs.extend(spec.direction(0));
    inputs.extend(spec.states());
    inputs.extend(spec.layer_norm());
    let mut o = fb::LSTMOptionsT::default();
    o.fused_activation_function = fb::ActivationFunctionType::TANH;
    o.cell_clip = 10.0;
    o.proj_clip = if spec.projection { 3.0 } else { 0.0 };
    o.kernel_type = fb::LSTMKernelType::FULL;
    Case {
        name,
        op: fb::BuiltinOperator::LSTM,
        options: fb::BuiltinOptionsT::LSTMOptions(Box::new(o)),
        inputs,
        outputs: Vec::leak(vec![leak(vec![spec.batch, spec.out()])]),
    }
}

/// A float BIDIRECTIONAL_SEQUENCE_LSTM with merged outputs (no auxiliary input).
fn bidirectional_lstm(name: &'static str, spec: LstmSpec) -> Case {
    let mut inputs = vec![Input::Live(spec.sequence(spec.n_in), -1.0, 1.0)];
    inputs.extend(spec.direction(0));
    inputs.extend(spec.direction(100));
    inputs.extend(spec.states());
    inputs.extend(spec.states());
    inputs.extend((39..48).map(|_| Input::Omitted));
    let mut o = fb::BidirectionalSequenceLSTMOptionsT::default();
    o.fused_activation_function = fb::ActivationFunctionType::TANH;
    o.cell_clip = 10.0;
    o.proj_clip = if spec.projection { 3.0 } else { 0.0 };
    o.merge_outputs = true;
    o.time_major = spec.time_major;
    Case {
        name,
        op: fb::BuiltinOperator::BIDIRECTIONAL_SEQUENCE_LSTM,
        options: fb::BuiltinOptionsT::BidirectionalSequenceLSTMOptions(Box::new(o)),
        inputs,
        outputs: Vec::leak(vec![spec.sequence(2 * spec.out())]),
    }
}

/// One RNN direction's weights `[units, n_in]`, recurrent weights `[units, units]` and bias.
fn rnn_direction(n_in: i32, units: i32, seed: usize) -> Vec<Input> {
    let w = leak(vec![units, n_in]);
    let r = leak(vec![units, units]);
    let b = leak(vec![units]);
    let a = 2.0 / (n_in as f32).sqrt();
    let ar = 1.5 / (units as f32).sqrt();
    vec![
        Input::ConstF32(w, values(count(w), seed, -a, a)),
        Input::ConstF32(r, values(count(r), seed + 1, -ar, ar)),
        Input::ConstF32(b, values(count(b), seed + 2, -0.3, 0.3)),
    ]
}

/// The recurrent ops beside UNIDIRECTIONAL_SEQUENCE_LSTM, each with weights of at least 1024 elements
/// (dynamic mode makes them int8: the hybrid kernels run); int8 mode keeps them float.
fn recurrent_cases() -> Vec<Case> {
    use fb::BuiltinOperator as Op;
    use fb::BuiltinOptionsT as O;
    let tanh = fb::ActivationFunctionType::TANH;
    let (n_in, units) = (40, 32);
    let rnn = {
        let mut o = fb::RNNOptionsT::default();
        o.fused_activation_function = tanh;
        O::RNNOptions(Box::new(o))
    };
    let sequence_rnn = |time_major: bool| {
        let mut o = fb::SequenceRNNOptionsT::default();
        o.fused_activation_function = tanh;
        o.time_major = time_major;
        O::SequenceRNNOptions(Box::new(o))
    };
    let bidirectional_rnn = |merge: bool, time_major: bool| {
        let mut o = fb::BidirectionalSequenceRNNOptionsT::default();
        o.fused_activation_function = fb::ActivationFunctionType::RELU;
        o.merge_outputs = merge;
        o.time_major = time_major;
        O::BidirectionalSequenceRNNOptions(Box::new(o))
    };
    let svdf = {
        let mut o = fb::SVDFOptionsT::default();
        o.rank = 2;
        o.fused_activation_function = fb::ActivationFunctionType::RELU;
        O::SVDFOptions(Box::new(o))
    };
    let with_state = |mut v: Vec<Input>, state: &'static [i32]| {
        v.push(Input::State(state));
        v
    };
    let mut bidirectional = vec![Input::Live(leak(vec![1, 4, n_in]), -1.0, 1.0)];
    bidirectional.extend(with_state(
        rnn_direction(n_in, units, 1),
        leak(vec![1, units]),
    ));
    bidirectional.extend(with_state(
        rnn_direction(n_in, units, 7),
        leak(vec![1, units]),
    ));
    // Auxiliary input and its forward and backward weights, omitted.
    bidirectional.extend((9..12).map(|_| Input::Omitted));
    let mut bidirectional_tm = vec![Input::Live(leak(vec![3, 2, n_in]), -1.0, 1.0)];
    bidirectional_tm.extend(with_state(
        rnn_direction(n_in, units, 3),
        leak(vec![2, units]),
    ));
    bidirectional_tm.extend(with_state(
        rnn_direction(n_in, units, 9),
        leak(vec![2, units]),
    ));
    bidirectional_tm.extend((9..12).map(|_| Input::Omitted));
    let mut rnn_inputs = vec![Input::Live(leak(vec![2, n_in]), -1.0, 1.0)];
    rnn_inputs.extend(with_state(
        rnn_direction(n_in, units, 5),
        leak(vec![2, units]),
    ));
    let mut sequence_inputs = vec![Input::Live(leak(vec![2, 4, n_in]), -1.0, 1.0)];
    sequence_inputs.extend(with_state(
        rnn_direction(n_in, units, 11),
        leak(vec![2, units]),
    ));
    let mut sequence_tm_inputs = vec![Input::Live(leak(vec![4, 2, n_in]), -1.0, 1.0)];
    sequence_tm_inputs.extend(with_state(
        rnn_direction(n_in, units, 13),
        leak(vec![2, units]),
    ));
    vec![
        lstm("lstm_hybrid", BIG_LSTM),
        lstm(
            "lstm_hybrid_cifg_peephole_projection_ln",
            LstmSpec {
                cifg: true,
                peephole: true,
                projection: true,
                layer_norm: true,
                ..BIG_LSTM
            },
        ),
        lstm(
            "lstm_hybrid_time_major_peephole",
            LstmSpec {
                peephole: true,
                time_major: true,
                ..BIG_LSTM
            },
        ),
        lstm_step("lstm_step_hybrid", BIG_LSTM),
        lstm_step(
            "lstm_step_hybrid_projection",
            LstmSpec {
                projection: true,
                peephole: true,
                ..BIG_LSTM
            },
        ),
        lstm_step("lstm_step_small", SMALL_LSTM),
        // Time-major: batch-major input with batch > 1 and merged outputs makes LiteRT (2.3) step the output
        // state by the merged row width, past the state tensor.
        bidirectional_lstm(
            "bilstm_hybrid_time_major",
            LstmSpec {
                time_major: true,
                ..BIG_LSTM
            },
        ),
        Case {
            name: "rnn_hybrid",
            op: Op::RNN,
            options: rnn,
            inputs: rnn_inputs,
            outputs: &[&[2, 32]],
        },
        Case {
            name: "sequence_rnn_hybrid",
            op: Op::UNIDIRECTIONAL_SEQUENCE_RNN,
            options: sequence_rnn(false),
            inputs: sequence_inputs,
            outputs: &[&[2, 4, 32]],
        },
        Case {
            name: "sequence_rnn_hybrid_time_major",
            op: Op::UNIDIRECTIONAL_SEQUENCE_RNN,
            options: sequence_rnn(true),
            inputs: sequence_tm_inputs,
            outputs: &[&[4, 2, 32]],
        },
        Case {
            name: "birnn_hybrid_merged",
            op: Op::BIDIRECTIONAL_SEQUENCE_RNN,
            options: bidirectional_rnn(true, false),
            inputs: bidirectional,
            outputs: &[&[1, 4, 64]],
        },
        Case {
            name: "birnn_time_major_float_in_dynamic",
            op: Op::BIDIRECTIONAL_SEQUENCE_RNN,
            options: bidirectional_rnn(false, true),
            inputs: bidirectional_tm,
            outputs: &[&[3, 2, 32], &[3, 2, 32]],
        },
        Case {
            name: "svdf_hybrid",
            op: Op::SVDF,
            options: svdf,
            inputs: vec![
                Input::Live(&[2, 64], -1.0, 1.0),
                Input::ConstF32(&[32, 64], values(2048, 3, -0.3, 0.3)),
                Input::ConstF32(&[32, 4], values(128, 4, -0.5, 0.5)),
                Input::ConstF32(&[16], values(16, 5, -0.2, 0.2)),
                Input::State(&[2, 128]),
            ],
            outputs: &[&[2, 16]],
        },
    ]
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
        lstm("lstm", SMALL_LSTM),
        lstm(
            "lstm_cifg",
            LstmSpec {
                cifg: true,
                ..SMALL_LSTM
            },
        ),
        lstm(
            "lstm_peephole",
            LstmSpec {
                peephole: true,
                time_major: true,
                ..SMALL_LSTM
            },
        ),
        lstm(
            "lstm_projection",
            LstmSpec {
                projection: true,
                ..SMALL_LSTM
            },
        ),
        lstm(
            "lstm_layer_norm_cifg",
            LstmSpec {
                cifg: true,
                peephole: true,
                layer_norm: true,
                ..SMALL_LSTM
            },
        ),
        Case {
            name: "gelu_approximate",
            op: Op::GELU,
            options: gelu(true),
            inputs: vec![Input::Live(&[1, 5, 7], -3.0, 4.0)],
            outputs: &[&[1, 5, 7]],
        },
    ]
}

/// Writes each case's model and data; returns `(name, folder)` per case.
fn write_cases(dir: &Path, cases: Vec<Case>) -> Vec<(String, PathBuf)> {
    let mut models = Vec::new();
    for case in cases {
        let d = dir.join(case.name);
        std::fs::create_dir_all(&d).expect("model dir");
        std::fs::write(d.join("model.tflite"), model(&case)).expect("write model");
        data(&case, &d.join("calib.npz"), 100, 1);
        data(&case, &d.join("eval.npz"), 4, 2);
        models.push((case.name.to_string(), d));
    }
    models
}

#[test]
fn generated_one_op_models_match_litert_reference_kernels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = write_cases(dir.path(), cases());
    let report = crate::interp::parity_on(&models, 4);
    println!("{}", report.table);
    assert!(
        report.problems.is_empty(),
        "{}\n{}",
        report.table,
        report.problems.join("\n")
    );
}

/// Whether dynamic mode gives the case's op int8 weights (so that its hybrid kernel runs).
fn hybrid_in_dynamic_mode(case: &Case) -> Result<(), String> {
    use litequant::quantize::{quantize, Mode, QuantOptions};
    let mut g = litequant::graph::Graph::from_bytes(&model(case)).map_err(|e| e.to_string())?;
    quantize(&mut g, Mode::Dynamic, &QuantOptions::default(), None).map_err(|e| e.to_string())?;
    let op = litequant::graph::OpIndex(0);
    let int8 = g
        .op_inputs(op)
        .into_iter()
        .flatten()
        .filter(|&t| g.tensor(t).type_ == fb::TensorType::INT8)
        .count();
    if int8 == 0 {
        return Err(
            "dynamic mode left every weight float: the hybrid kernel is not exercised".into(),
        );
    }
    Ok(())
}

/// The recurrent ops (hybrid in dynamic mode, float elsewhere) against LiteRT, each sample from reset
/// state: every op's float output within the relative tolerance.
#[test]
fn recurrent_ops_match_litert_in_every_mode_hybrid_included() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: Vec<Case> = recurrent_cases();
    // UNIDIRECTIONAL_SEQUENCE_LSTM alone has an int8 rule: the strict int8 model applies to it only.
    let (strict, other): (Vec<Case>, Vec<Case>) = cases
        .into_iter()
        .partition(|c| c.op == fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM);
    let mut problems = Vec::new();
    for (cases, strict) in [(strict, true), (other, false)] {
        // The `_hybrid` cases have weights big enough for dynamic mode.
        for case in cases.iter().filter(|c| c.name.contains("hybrid")) {
            if let Err(e) = hybrid_in_dynamic_mode(case) {
                problems.push(format!("{}: {e}", case.name));
            }
        }
        let models = write_cases(dir.path(), cases);
        let report = crate::interp::parity_on_modes(&models, 4, strict);
        println!("{}", report.table);
        problems.extend(report.problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
