//! Proof per op, generated from the op table (`litequant::ops`): for every op, a one-op model is built here,
//! calibrated and quantized by litequant in every mode the table supports, and every model (float and
//! quantized) runs in LiteRT 2.3's reference kernels (`BUILTIN_REF`, all tensors kept) in ONE Python
//! process. Each op of each model is then fed LiteRT's own inputs in litequant's interpreter, and:
//! (a) every artifact loads in LiteRT; (b) every integer output is bit-exact with LiteRT wherever the table
//! declares an integer kernel; (c) the float kernel is within 1e-5 relative of LiteRT's float reference.
//! Beside it, `inspect`'s capability column must equal what `build` did on every model.
//!
//! Needs `LITEQUANT_TEST_PYTHON`. The op x mode table prints with
//! `cargo test --test tests ops_generated -- --nocapture`.

use crate::interop::{python, repo};
use crate::interp::read;
use litequant::calibrate::{calibrate, CalibrateOptions};
use litequant::graph::{Graph, OpIndex, TensorId};
use litequant::interp::{Interpreter, Tensor, TensorData};
use litequant::ops::{self, OpDef};
use litequant::quantize::params::ActivationType;
use litequant::quantize::{quantize, Mode, QuantOptions, Ranges};
use litequant::tflite::fb::{self, BuiltinOperator as Op, BuiltinOptionsT as O};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Samples per model (calibration data and the checked runs).
const SAMPLES: usize = 6;
/// Relative tolerance of a float kernel against LiteRT's: max |diff| over max |reference|.
const FLOAT_TOLERANCE: f64 = 1e-5;

/// `value` after `edit`: the generated option types are non-exhaustive.
fn with<T>(mut value: T, edit: impl FnOnce(&mut T)) -> T {
    edit(&mut value);
    value
}

/// A one-op float model under construction, with the value range of each model input.
struct Example {
    g: Graph,
    code: Op,
    inputs: Vec<(TensorId, f32, f32)>,
    outputs: Vec<TensorId>,
    seed: u64,
}

impl Example {
    fn new(code: Op) -> Example {
        let model = with(fb::ModelT::default(), |m| {
            m.version = 3;
            m.buffers = Some(vec![fb::BufferT::default()]);
            m.subgraphs = Some(vec![fb::SubGraphT::default()]);
        });
        Example {
            g: Graph::from_model(model),
            code,
            inputs: Vec::new(),
            outputs: Vec::new(),
            seed: 0x5eed ^ code.0 as u64,
        }
    }

    fn random(&mut self) -> f32 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.seed >> 40) as f32 / (1u64 << 24) as f32
    }

    fn tensor(&mut self, shape: &[i32], ty: fb::TensorType) -> TensorId {
        let name = format!("t{}", self.g.tensors().len());
        self.g.add_tensor(with(fb::TensorT::default(), |t| {
            t.name = Some(name);
            t.shape = Some(shape.to_vec());
            t.type_ = ty;
        }))
    }

    /// A float model input with values in [lo, hi).
    fn x_in(&mut self, shape: &[i32], lo: f32, hi: f32) -> TensorId {
        let t = self.tensor(shape, fb::TensorType::FLOAT32);
        self.inputs.push((t, lo, hi));
        t
    }

    /// A float model input in [-2, 2).
    fn x(&mut self, shape: &[i32]) -> TensorId {
        self.x_in(shape, -2.0, 2.0)
    }

    /// A float constant with random values in [-amp, amp).
    fn w(&mut self, shape: &[i32], amp: f32) -> TensorId {
        let n = shape.iter().product::<i32>() as usize;
        let values: Vec<f32> = (0..n).map(|_| (self.random() * 2.0 - 1.0) * amp).collect();
        self.floats(shape, &values)
    }

    fn floats(&mut self, shape: &[i32], values: &[f32]) -> TensorId {
        let t = self.tensor(shape, fb::TensorType::FLOAT32);
        self.g
            .set_tensor_data(t, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        t
    }

    fn ints(&mut self, shape: &[i32], values: &[i32]) -> TensorId {
        let t = self.tensor(shape, fb::TensorType::INT32);
        self.g
            .set_tensor_data(t, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        t
    }

    fn bools(&mut self, shape: &[i32], values: &[bool]) -> TensorId {
        let t = self.tensor(shape, fb::TensorType::BOOL);
        self.g
            .set_tensor_data(t, values.iter().map(|&b| u8::from(b)).collect());
        t
    }

    /// A model output of the op under test.
    fn y_typed(&mut self, shape: &[i32], ty: fb::TensorType) -> TensorId {
        let t = self.tensor(shape, ty);
        self.outputs.push(t);
        t
    }

    fn y(&mut self, shape: &[i32]) -> TensorId {
        self.y_typed(shape, fb::TensorType::FLOAT32)
    }

    /// The op: `None` inputs are omitted optional ones.
    fn op(mut self, inputs: &[Option<TensorId>], options: O) -> Example {
        let outputs = self.outputs.clone();
        let present: Vec<TensorId> = inputs.iter().flatten().copied().collect();
        // The float source carries the version TF's converter writes: BROADCAST_TO starts at 2 (its version
        // 1 was rolled back with the op code), every other op here at 1.
        let version = if self.code == Op::BROADCAST_TO { 2 } else { 1 };
        let mut op = self.g.new_op(self.code, version, &present, &outputs);
        op.inputs = Some(
            inputs
                .iter()
                .map(|t| t.map_or(-1, |t| t.0 as i32))
                .collect(),
        );
        op.builtin_options = options;
        let sg = self.g.main_mut();
        sg.operators = Some(vec![op]);
        sg.inputs = Some(self.inputs.iter().map(|(t, _, _)| t.0 as i32).collect());
        sg.outputs = Some(outputs.iter().map(|t| t.0 as i32).collect());
        self
    }

    /// The op with present inputs only.
    fn run(self, inputs: &[TensorId], options: O) -> Example {
        let inputs: Vec<Option<TensorId>> = inputs.iter().copied().map(Some).collect();
        self.op(&inputs, options)
    }

    /// `SAMPLES` samples: one array per model input.
    fn samples(&mut self) -> Vec<Vec<ArrayD<f32>>> {
        let inputs = self.inputs.clone();
        (0..SAMPLES)
            .map(|_| {
                inputs
                    .iter()
                    .map(|&(t, lo, hi)| {
                        let shape: Vec<usize> =
                            self.g.shape(t).iter().map(|&d| d as usize).collect();
                        let n = shape.iter().product();
                        let v: Vec<f32> = (0..n).map(|_| lo + (hi - lo) * self.random()).collect();
                        ArrayD::from_shape_vec(IxDyn(&shape), v).expect("sample shape")
                    })
                    .collect()
            })
            .collect()
    }
}

fn unary(code: Op, lo: f32, hi: f32, options: O) -> Example {
    let mut e = Example::new(code);
    let x = e.x_in(&[2, 6], lo, hi);
    e.y(&[2, 6]);
    e.run(&[x], options)
}

fn binary(code: Op, second: (f32, f32), options: O) -> Example {
    let mut e = Example::new(code);
    let a = e.x(&[2, 6]);
    let b = e.x_in(&[2, 6], second.0, second.1);
    e.y(&[2, 6]);
    e.run(&[a, b], options)
}

fn compare(code: Op, options: O) -> Example {
    let mut e = Example::new(code);
    let a = e.x(&[2, 6]);
    let b = e.x(&[2, 6]);
    e.y_typed(&[2, 6], fb::TensorType::BOOL);
    e.run(&[a, b], options)
}

fn pool(code: Op) -> Example {
    let mut e = Example::new(code);
    let x = e.x(&[1, 4, 4, 3]);
    e.y(&[1, 2, 2, 3]);
    let options = with(fb::Pool2DOptionsT::default(), |o| {
        o.padding = fb::Padding::VALID;
        o.stride_w = 2;
        o.stride_h = 2;
        o.filter_width = 2;
        o.filter_height = 2;
    });
    e.run(&[x], O::Pool2DOptions(Box::new(options)))
}

fn reduce(code: Op, lo: f32, hi: f32) -> Example {
    let mut e = Example::new(code);
    let x = e.x_in(&[1, 4, 4, 3], lo, hi);
    let axes = e.ints(&[2], &[1, 2]);
    e.y(&[1, 3]);
    e.run(&[x, axes], O::ReducerOptions(Box::default()))
}

fn resize(code: Op, options: O) -> Example {
    let mut e = Example::new(code);
    let x = e.x(&[1, 3, 3, 2]);
    let size = e.ints(&[2], &[6, 6]);
    e.y(&[1, 6, 6, 2]);
    e.run(&[x, size], options)
}

fn arg(code: Op, options: O) -> Example {
    let mut e = Example::new(code);
    let x = e.x(&[2, 6]);
    let axis = e.ints(&[1], &[1]);
    e.y_typed(&[2], fb::TensorType::INT32);
    e.run(&[x, axis], options)
}

fn select(code: Op) -> Example {
    let mut e = Example::new(code);
    let pattern: Vec<bool> = (0..12).map(|i| i % 3 == 0).collect();
    let cond = e.bools(&[2, 6], &pattern);
    let a = e.x(&[2, 6]);
    let b = e.x(&[2, 6]);
    e.y(&[2, 6]);
    let options = if code == Op::SELECT {
        O::SelectOptions(Box::default())
    } else {
        O::SelectV2Options(Box::default())
    };
    e.run(&[cond, a, b], options)
}

fn space_depth(code: Op, input: &[i32], output: &[i32]) -> Example {
    let mut e = Example::new(code);
    let x = e.x(input);
    e.y(output);
    let options = if code == Op::SPACE_TO_DEPTH {
        O::SpaceToDepthOptions(Box::new(with(
            Default::default(),
            |o: &mut fb::SpaceToDepthOptionsT| o.block_size = 2,
        )))
    } else {
        O::DepthToSpaceOptions(Box::new(with(
            Default::default(),
            |o: &mut fb::DepthToSpaceOptionsT| o.block_size = 2,
        )))
    };
    e.run(&[x], options)
}

/// The one-op model of `code`, or `None` for ops this suite does not generate.
fn example(code: Op) -> Option<Example> {
    let none = O::NONE;
    Some(match code {
        Op::SOFTMAX => unary(
            code,
            -4.0,
            4.0,
            O::SoftmaxOptions(Box::new(with(fb::SoftmaxOptionsT::default(), |o| {
                o.beta = 1.0
            }))),
        ),
        Op::LOGISTIC | Op::TANH | Op::RELU | Op::RELU6 | Op::RELU_N1_TO_1 | Op::RELU_0_TO_1 => {
            unary(code, -4.0, 4.0, none)
        }
        Op::HARD_SWISH => unary(code, -4.0, 4.0, O::HardSwishOptions(Box::default())),
        Op::ELU => unary(code, -3.0, 3.0, none),
        Op::LOG_SOFTMAX => unary(code, -4.0, 4.0, O::LogSoftmaxOptions(Box::default())),
        Op::L2_NORMALIZATION => unary(code, -2.0, 2.0, O::L2NormOptions(Box::default())),
        Op::LEAKY_RELU => unary(
            code,
            -3.0,
            3.0,
            O::LeakyReluOptions(Box::new(with(fb::LeakyReluOptionsT::default(), |o| {
                o.alpha = 0.2
            }))),
        ),
        Op::GELU => unary(code, -3.0, 3.0, O::GeluOptions(Box::default())),
        Op::PRELU => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 4, 4, 3]);
            let alpha = e.floats(&[1, 1, 3], &[0.1, 0.25, -0.3]);
            e.y(&[1, 4, 4, 3]);
            e.run(&[x, alpha], none)
        }
        Op::EXP => unary(code, -2.0, 2.0, O::ExpOptions(Box::default())),
        Op::LOG | Op::SQRT | Op::RSQRT => unary(code, 0.1, 4.0, none),
        Op::ABS => unary(code, -2.0, 2.0, O::AbsOptions(Box::default())),
        Op::NEG => unary(code, -2.0, 2.0, O::NegOptions(Box::default())),
        Op::SQUARE => unary(code, -2.0, 2.0, O::SquareOptions(Box::default())),
        Op::FLOOR | Op::CEIL | Op::ROUND => unary(code, -3.0, 3.0, none),
        Op::ZEROS_LIKE => unary(code, -2.0, 2.0, O::ZerosLikeOptions(Box::default())),
        Op::CAST => {
            let mut e = Example::new(code);
            let x = e.x_in(&[2, 6], -5.0, 5.0);
            e.y_typed(&[2, 6], fb::TensorType::INT32);
            let options = with(fb::CastOptionsT::default(), |o| {
                o.in_data_type = fb::TensorType::FLOAT32;
                o.out_data_type = fb::TensorType::INT32;
            });
            e.run(&[x], O::CastOptions(Box::new(options)))
        }
        Op::ADD => binary(code, (-2.0, 2.0), O::AddOptions(Box::default())),
        Op::SUB => binary(code, (-2.0, 2.0), O::SubOptions(Box::default())),
        Op::MUL => binary(code, (-2.0, 2.0), O::MulOptions(Box::default())),
        Op::DIV => binary(code, (0.5, 2.0), O::DivOptions(Box::default())),
        Op::SQUARED_DIFFERENCE => binary(
            code,
            (-2.0, 2.0),
            O::SquaredDifferenceOptions(Box::default()),
        ),
        Op::MAXIMUM | Op::MINIMUM => {
            binary(code, (-2.0, 2.0), O::MaximumMinimumOptions(Box::default()))
        }
        Op::POW => {
            let mut e = Example::new(code);
            let a = e.x_in(&[2, 6], 0.2, 2.0);
            let b = e.x_in(&[2, 6], -1.5, 1.5);
            e.y(&[2, 6]);
            e.run(&[a, b], O::PowOptions(Box::default()))
        }
        Op::FLOOR_DIV => binary(code, (0.5, 2.0), O::FloorDivOptions(Box::default())),
        Op::FLOOR_MOD => binary(code, (0.5, 2.0), O::FloorModOptions(Box::default())),
        Op::ADD_N => {
            let mut e = Example::new(code);
            let ins: Vec<TensorId> = (0..3).map(|_| e.x(&[2, 6])).collect();
            e.y(&[2, 6]);
            e.run(&ins, O::AddNOptions(Box::default()))
        }
        Op::LESS => compare(code, O::LessOptions(Box::default())),
        Op::GREATER => compare(code, O::GreaterOptions(Box::default())),
        Op::EQUAL => compare(code, O::EqualOptions(Box::default())),
        Op::NOT_EQUAL => compare(code, O::NotEqualOptions(Box::default())),
        Op::LESS_EQUAL => compare(code, O::LessEqualOptions(Box::default())),
        Op::GREATER_EQUAL => compare(code, O::GreaterEqualOptions(Box::default())),
        Op::SELECT | Op::SELECT_V2 => select(code),
        Op::ARG_MAX => arg(
            code,
            O::ArgMaxOptions(Box::new(with(fb::ArgMaxOptionsT::default(), |o| {
                o.output_type = fb::TensorType::INT32
            }))),
        ),
        Op::ARG_MIN => arg(
            code,
            O::ArgMinOptions(Box::new(with(fb::ArgMinOptionsT::default(), |o| {
                o.output_type = fb::TensorType::INT32
            }))),
        ),
        Op::CONCATENATION => {
            let mut e = Example::new(code);
            let a = e.x(&[1, 4, 4, 3]);
            let b = e.x_in(&[1, 4, 4, 2], -1.0, 3.0);
            e.y(&[1, 4, 4, 5]);
            let options = with(fb::ConcatenationOptionsT::default(), |o| o.axis = 3);
            e.run(&[a, b], O::ConcatenationOptions(Box::new(options)))
        }
        Op::PACK => {
            let mut e = Example::new(code);
            let a = e.x(&[2, 6]);
            let b = e.x_in(&[2, 6], -1.0, 3.0);
            e.y(&[2, 2, 6]);
            let options = with(fb::PackOptionsT::default(), |o| {
                o.values_count = 2;
                o.axis = 0;
            });
            e.run(&[a, b], O::PackOptions(Box::new(options)))
        }
        Op::SPLIT => {
            let mut e = Example::new(code);
            let axis = e.ints(&[], &[1]);
            let x = e.x(&[2, 6]);
            e.y(&[2, 3]);
            e.y(&[2, 3]);
            let options = with(fb::SplitOptionsT::default(), |o| o.num_splits = 2);
            e.run(&[axis, x], O::SplitOptions(Box::new(options)))
        }
        Op::SPLIT_V => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 6]);
            let sizes = e.ints(&[2], &[2, 4]);
            let axis = e.ints(&[], &[1]);
            e.y(&[2, 2]);
            e.y(&[2, 4]);
            let options = with(fb::SplitVOptionsT::default(), |o| o.num_splits = 2);
            e.run(&[x, sizes, axis], O::SplitVOptions(Box::new(options)))
        }
        Op::UNPACK => {
            let mut e = Example::new(code);
            let x = e.x(&[3, 4]);
            for _ in 0..3 {
                e.y(&[4]);
            }
            let options = with(fb::UnpackOptionsT::default(), |o| {
                o.num = 3;
                o.axis = 0;
            });
            e.run(&[x], O::UnpackOptions(Box::new(options)))
        }
        Op::CONV_2D => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 5, 5, 16]);
            let w = e.w(&[8, 3, 3, 16], 0.3);
            let b = e.w(&[8], 0.2);
            e.y(&[1, 3, 3, 8]);
            let options = with(fb::Conv2DOptionsT::default(), |o| {
                o.padding = fb::Padding::VALID;
                o.stride_w = 1;
                o.stride_h = 1;
                o.dilation_w_factor = 1;
                o.dilation_h_factor = 1;
            });
            e.run(&[x, w, b], O::Conv2DOptions(Box::new(options)))
        }
        Op::DEPTHWISE_CONV_2D => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 4, 4, 128]);
            let w = e.w(&[1, 3, 3, 128], 0.5);
            let b = e.w(&[128], 0.2);
            e.y(&[1, 4, 4, 128]);
            let options = with(fb::DepthwiseConv2DOptionsT::default(), |o| {
                o.padding = fb::Padding::SAME;
                o.stride_w = 1;
                o.stride_h = 1;
                o.depth_multiplier = 1;
                o.dilation_w_factor = 1;
                o.dilation_h_factor = 1;
            });
            e.run(&[x, w, b], O::DepthwiseConv2DOptions(Box::new(options)))
        }
        Op::TRANSPOSE_CONV => {
            let mut e = Example::new(code);
            let shape = e.ints(&[4], &[1, 6, 6, 8]);
            let w = e.w(&[8, 3, 3, 16], 0.3);
            let x = e.x(&[1, 3, 3, 16]);
            let b = e.w(&[8], 0.2);
            e.y(&[1, 6, 6, 8]);
            let options = with(fb::TransposeConvOptionsT::default(), |o| {
                o.padding = fb::Padding::SAME;
                o.stride_w = 2;
                o.stride_h = 2;
            });
            e.run(
                &[shape, w, x, b],
                O::TransposeConvOptions(Box::new(options)),
            )
        }
        Op::SVDF => {
            // rank 2: 64 filters make 32 units; memory 3; the state is a variable tensor (zero at start).
            let mut e = Example::new(code);
            let x = e.x(&[2, 16]);
            let wf = e.w(&[64, 16], 0.3);
            let wt = e.w(&[64, 3], 0.5);
            let b = e.w(&[32], 0.2);
            let state = e.tensor(&[2, 192], fb::TensorType::FLOAT32);
            e.g.tensor_mut(state).is_variable = true;
            e.y(&[2, 32]);
            let options = with(fb::SVDFOptionsT::default(), |o| {
                o.rank = 2;
                o.fused_activation_function = fb::ActivationFunctionType::RELU;
            });
            e.run(&[x, wf, wt, b, state], O::SVDFOptions(Box::new(options)))
        }
        Op::FULLY_CONNECTED => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 32]);
            let w = e.w(&[64, 32], 0.3);
            let b = e.w(&[64], 0.2);
            e.y(&[2, 64]);
            e.run(&[x, w, b], O::FullyConnectedOptions(Box::default()))
        }
        Op::BATCH_MATMUL => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 4, 32]);
            let w = e.w(&[32, 48], 0.3);
            e.y(&[2, 4, 48]);
            e.run(&[x, w], O::BatchMatMulOptions(Box::default()))
        }
        Op::EMBEDDING_LOOKUP => {
            let mut e = Example::new(code);
            let ids = e.ints(&[3], &[4, 0, 2]);
            let table = e.w(&[5, 256], 1.0);
            e.y(&[3, 256]);
            e.run(&[ids, table], none)
        }
        Op::PAD | Op::PADV2 | Op::MIRROR_PAD => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 3, 3, 2]);
            let paddings = e.ints(&[4, 2], &[0, 0, 1, 1, 1, 1, 0, 0]);
            e.y(&[1, 5, 5, 2]);
            match code {
                Op::PAD => e.run(&[x, paddings], O::PadOptions(Box::default())),
                Op::PADV2 => {
                    let value = e.floats(&[], &[0.5]);
                    e.run(&[x, paddings, value], O::PadV2Options(Box::default()))
                }
                _ => e.run(
                    &[x, paddings],
                    O::MirrorPadOptions(Box::new(with(fb::MirrorPadOptionsT::default(), |o| {
                        o.mode = fb::MirrorPadMode::REFLECT
                    }))),
                ),
            }
        }
        Op::AVERAGE_POOL_2D | Op::MAX_POOL_2D => pool(code),
        Op::MEAN | Op::SUM | Op::REDUCE_MAX | Op::REDUCE_MIN => reduce(code, -2.0, 2.0),
        Op::REDUCE_PROD => reduce(code, 0.8, 1.2),
        Op::RESIZE_BILINEAR => resize(code, O::ResizeBilinearOptions(Box::default())),
        Op::RESIZE_NEAREST_NEIGHBOR => {
            resize(code, O::ResizeNearestNeighborOptions(Box::default()))
        }
        Op::RESHAPE => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 6]);
            let shape = e.ints(&[2], &[3, 4]);
            e.y(&[3, 4]);
            let options = with(fb::ReshapeOptionsT::default(), |o| {
                o.new_shape = Some(vec![3, 4])
            });
            e.run(&[x, shape], O::ReshapeOptions(Box::new(options)))
        }
        Op::SQUEEZE => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 6, 1]);
            e.y(&[6]);
            let options = with(fb::SqueezeOptionsT::default(), |o| {
                o.squeeze_dims = Some(vec![0, 2])
            });
            e.run(&[x], O::SqueezeOptions(Box::new(options)))
        }
        Op::EXPAND_DIMS => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 6]);
            let axis = e.ints(&[1], &[1]);
            e.y(&[2, 1, 6]);
            e.run(&[x, axis], O::ExpandDimsOptions(Box::default()))
        }
        Op::TRANSPOSE => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 3, 4]);
            let perm = e.ints(&[3], &[2, 0, 1]);
            e.y(&[4, 2, 3]);
            e.run(&[x, perm], O::TransposeOptions(Box::default()))
        }
        Op::TILE => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 3]);
            let multiples = e.ints(&[2], &[2, 2]);
            e.y(&[4, 6]);
            e.run(&[x, multiples], O::TileOptions(Box::default()))
        }
        Op::BROADCAST_TO => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 6]);
            let shape = e.ints(&[2], &[3, 6]);
            e.y(&[3, 6]);
            e.run(&[x, shape], O::BroadcastToOptions(Box::default()))
        }
        Op::SHAPE => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 6]);
            e.y_typed(&[2], fb::TensorType::INT32);
            let options = with(fb::ShapeOptionsT::default(), |o| {
                o.out_type = fb::TensorType::INT32
            });
            e.run(&[x], O::ShapeOptions(Box::new(options)))
        }
        Op::FILL => {
            let mut e = Example::new(code);
            let dims = e.ints(&[2], &[2, 3]);
            let value = e.x(&[]);
            e.y(&[2, 3]);
            e.run(&[dims, value], O::FillOptions(Box::default()))
        }
        Op::SLICE => {
            let mut e = Example::new(code);
            let x = e.x(&[3, 4]);
            let begin = e.ints(&[2], &[1, 0]);
            let size = e.ints(&[2], &[2, 3]);
            e.y(&[2, 3]);
            e.run(&[x, begin, size], O::SliceOptions(Box::default()))
        }
        Op::STRIDED_SLICE => {
            let mut e = Example::new(code);
            let x = e.x(&[4, 6]);
            let begin = e.ints(&[2], &[0, 1]);
            let end = e.ints(&[2], &[4, 6]);
            let strides = e.ints(&[2], &[2, 2]);
            e.y(&[2, 3]);
            e.run(
                &[x, begin, end, strides],
                O::StridedSliceOptions(Box::default()),
            )
        }
        Op::REVERSE_V2 => {
            let mut e = Example::new(code);
            let x = e.x(&[2, 6]);
            let axis = e.ints(&[1], &[1]);
            e.y(&[2, 6]);
            e.run(&[x, axis], O::ReverseV2Options(Box::default()))
        }
        Op::GATHER => {
            let mut e = Example::new(code);
            let params = e.x(&[5, 4]);
            let indices = e.ints(&[3], &[4, 0, 2]);
            e.y(&[3, 4]);
            e.run(&[params, indices], O::GatherOptions(Box::default()))
        }
        Op::GATHER_ND => {
            let mut e = Example::new(code);
            let params = e.x(&[3, 4]);
            let indices = e.ints(&[2, 1], &[2, 0]);
            e.y(&[2, 4]);
            e.run(&[params, indices], O::GatherNdOptions(Box::default()))
        }
        Op::SPACE_TO_DEPTH => space_depth(code, &[1, 4, 4, 2], &[1, 2, 2, 8]),
        Op::DEPTH_TO_SPACE => space_depth(code, &[1, 2, 2, 8], &[1, 4, 4, 2]),
        Op::SPACE_TO_BATCH_ND => {
            let mut e = Example::new(code);
            let x = e.x(&[1, 4, 4, 2]);
            let block = e.ints(&[2], &[2, 2]);
            let paddings = e.ints(&[2, 2], &[0, 0, 0, 0]);
            e.y(&[4, 2, 2, 2]);
            e.run(
                &[x, block, paddings],
                O::SpaceToBatchNDOptions(Box::default()),
            )
        }
        Op::BATCH_TO_SPACE_ND => {
            let mut e = Example::new(code);
            let x = e.x(&[4, 2, 2, 2]);
            let block = e.ints(&[2], &[2, 2]);
            let crops = e.ints(&[2, 2], &[0, 0, 0, 0]);
            e.y(&[1, 4, 4, 2]);
            e.run(&[x, block, crops], O::BatchToSpaceNDOptions(Box::default()))
        }
        _ => return None,
    })
}

/// A one-op model on input `x_shape` (values in [-2, 2)) with int32 constants `consts` (shape, values).
fn with_consts(
    code: Op,
    x_shape: &[i32],
    consts: &[(&[i32], &[i32])],
    y_shape: &[i32],
    options: O,
) -> Example {
    let mut e = Example::new(code);
    let x = e.x(x_shape);
    let mut ins = vec![x];
    for (shape, values) in consts {
        ins.push(e.ints(shape, values));
    }
    e.y(y_shape);
    e.run(&ins, options)
}

fn strided_slice_options(edit: impl FnOnce(&mut fb::StridedSliceOptionsT)) -> O {
    O::StridedSliceOptions(Box::new(with(Default::default(), edit)))
}

/// Further forms of an op beyond its main example (ranks, options, broadcasting), labelled in the table.
fn forms(code: Op) -> Vec<(&'static str, Example)> {
    let bilinear = |align_corners, half_pixel_centers| {
        O::ResizeBilinearOptions(Box::new(with(
            Default::default(),
            |o: &mut fb::ResizeBilinearOptionsT| {
                o.align_corners = align_corners;
                o.half_pixel_centers = half_pixel_centers;
            },
        )))
    };
    let nearest = |align_corners, half_pixel_centers| {
        O::ResizeNearestNeighborOptions(Box::new(with(
            Default::default(),
            |o: &mut fb::ResizeNearestNeighborOptionsT| {
                o.align_corners = align_corners;
                o.half_pixel_centers = half_pixel_centers;
            },
        )))
    };
    let reducer = |keep_dims| {
        O::ReducerOptions(Box::new(with(
            Default::default(),
            |o: &mut fb::ReducerOptionsT| o.keep_dims = keep_dims,
        )))
    };
    let resize = |code, options: &dyn Fn(bool, bool) -> O| {
        vec![
            (
                "align_corners",
                with_consts(
                    code,
                    &[1, 3, 5, 2],
                    &[(&[2], &[5, 9])],
                    &[1, 5, 9, 2],
                    options(true, false),
                ),
            ),
            (
                "half_pixel_centers",
                with_consts(
                    code,
                    &[2, 3, 3, 3],
                    &[(&[2], &[7, 5])],
                    &[2, 7, 5, 3],
                    options(false, true),
                ),
            ),
            (
                "downscale",
                with_consts(
                    code,
                    &[1, 6, 7, 2],
                    &[(&[2], &[4, 3])],
                    &[1, 4, 3, 2],
                    options(false, true),
                ),
            ),
            (
                "odd_ratio",
                with_consts(
                    code,
                    &[1, 4, 3, 1],
                    &[(&[2], &[7, 8])],
                    &[1, 7, 8, 1],
                    options(false, false),
                ),
            ),
        ]
    };
    match code {
        Op::RESIZE_BILINEAR => resize(code, &bilinear),
        Op::RESIZE_NEAREST_NEIGHBOR => resize(code, &nearest),
        Op::STRIDED_SLICE => {
            let ss = |x: &[i32], b: &[i32], e: &[i32], st: &[i32], y: &[i32], o: O| {
                let n = [b.len() as i32];
                with_consts(code, x, &[(&n, b), (&n, e), (&n, st)], y, o)
            };
            vec![
                (
                    "masks_negative_stride",
                    ss(
                        &[2, 5, 6],
                        &[0, -1, 1],
                        &[0, 0, 6],
                        &[1, -2, 2],
                        &[2, 3, 3],
                        strided_slice_options(|o| {
                            o.begin_mask = 0b001;
                            o.end_mask = 0b011;
                        }),
                    ),
                ),
                (
                    "shrink_axis",
                    ss(
                        &[3, 4, 5],
                        &[1, 0, -2],
                        &[2, 4, -1],
                        &[1, 1, 1],
                        &[4],
                        strided_slice_options(|o| {
                            o.shrink_axis_mask = 0b101;
                        }),
                    ),
                ),
                (
                    "ellipsis",
                    ss(
                        &[2, 3, 4],
                        &[0, 1],
                        &[0, 2],
                        &[1, 1],
                        &[2, 3],
                        strided_slice_options(|o| {
                            o.ellipsis_mask = 0b01;
                            o.shrink_axis_mask = 0b10;
                        }),
                    ),
                ),
                (
                    "new_axis",
                    ss(
                        &[3, 4],
                        &[0, 1],
                        &[0, 3],
                        &[1, 1],
                        &[1, 2, 4],
                        strided_slice_options(|o| {
                            o.new_axis_mask = 0b01;
                        }),
                    ),
                ),
                (
                    "offset",
                    ss(
                        &[6, 4],
                        &[-4, 1],
                        &[3, 2],
                        &[1, 1],
                        &[3, 2],
                        strided_slice_options(|o| {
                            o.offset = true;
                        }),
                    ),
                ),
                (
                    "rank4",
                    ss(
                        &[1, 4, 4, 3],
                        &[0, 1, 0, 0],
                        &[1, 4, 4, 3],
                        &[1, 1, 2, 1],
                        &[1, 3, 2, 3],
                        strided_slice_options(|_| {}),
                    ),
                ),
                (
                    "rank5",
                    ss(
                        &[1, 2, 3, 4, 2],
                        &[0, 0, 1, 0, 1],
                        &[1, 2, 3, 4, 2],
                        &[1, 1, 1, 3, 1],
                        &[1, 2, 2, 2, 1],
                        strided_slice_options(|_| {}),
                    ),
                ),
            ]
        }
        Op::SUM | Op::REDUCE_MAX | Op::REDUCE_MIN | Op::REDUCE_PROD => {
            let (lo, hi) = if code == Op::REDUCE_PROD {
                (0.8, 1.2)
            } else {
                (-2.0, 2.0)
            };
            let r = |x: &[i32], axes: &[i32], y: &[i32], keep: bool| {
                let mut e = Example::new(code);
                let xt = e.x_in(x, lo, hi);
                let a = e.ints(&[axes.len() as i32], axes);
                e.y(y);
                e.run(&[xt, a], reducer(keep))
            };
            vec![
                (
                    "keep_dims_last",
                    r(&[1, 4, 4, 3], &[-1], &[1, 4, 4, 1], true),
                ),
                ("all_axes", r(&[2, 3, 4], &[0, 1, 2], &[], false)),
                ("axis0_rank2", r(&[3, 5], &[0], &[5], false)),
                ("keep_dims_two", r(&[2, 3, 4], &[0, 2], &[1, 3, 1], true)),
            ]
        }
        Op::PRELU => {
            let p = |x: &[i32], alpha: &[i32]| {
                let mut e = Example::new(code);
                let xt = e.x(x);
                let n = alpha.iter().product::<i32>() as usize;
                let values: Vec<f32> = (0..n)
                    .map(|i| [0.1, 0.25, -0.3, 0.6, 0.05][i % 5])
                    .collect();
                let a = e.floats(alpha, &values);
                e.y(x);
                e.run(&[xt, a], O::NONE)
            };
            vec![
                ("full_alpha", p(&[1, 3, 3, 4], &[3, 3, 4])),
                ("rank2", p(&[2, 6], &[6])),
                ("scalar_alpha", p(&[1, 2, 3, 2], &[1, 1, 1])),
            ]
        }
        Op::L2_NORMALIZATION => {
            vec![(
                "rank4",
                with_consts(
                    code,
                    &[1, 3, 3, 8],
                    &[],
                    &[1, 3, 3, 8],
                    O::L2NormOptions(Box::default()),
                ),
            )]
        }
        Op::LOG_SOFTMAX => vec![
            (
                "rank3",
                with_consts(
                    code,
                    &[1, 2, 10],
                    &[],
                    &[1, 2, 10],
                    O::LogSoftmaxOptions(Box::default()),
                ),
            ),
            (
                "wide",
                unary(code, -8.0, 8.0, O::LogSoftmaxOptions(Box::default())),
            ),
        ],
        Op::GATHER_ND => vec![
            (
                "full_index",
                with_consts(
                    code,
                    &[3, 4, 2],
                    &[(&[2, 2], &[2, 1, 0, 3])],
                    &[2, 2],
                    O::GatherNdOptions(Box::default()),
                ),
            ),
            (
                "rank3_params",
                with_consts(
                    code,
                    &[2, 3, 4],
                    &[(&[1, 3, 2], &[1, 2, 0, 0, 1, 1])],
                    &[1, 3, 4],
                    O::GatherNdOptions(Box::default()),
                ),
            ),
        ],
        Op::MIRROR_PAD => {
            let symmetric =
                O::MirrorPadOptions(Box::new(with(fb::MirrorPadOptionsT::default(), |o| {
                    o.mode = fb::MirrorPadMode::SYMMETRIC
                })));
            vec![(
                "symmetric",
                with_consts(
                    code,
                    &[2, 6],
                    &[(&[2, 2], &[1, 2, 2, 1])],
                    &[5, 9],
                    symmetric,
                ),
            )]
        }
        Op::REVERSE_V2 => vec![
            (
                "rank4",
                with_consts(
                    code,
                    &[1, 3, 4, 2],
                    &[(&[1], &[2])],
                    &[1, 3, 4, 2],
                    O::ReverseV2Options(Box::default()),
                ),
            ),
            (
                "two_axes",
                with_consts(
                    code,
                    &[2, 3, 4],
                    &[(&[2], &[1, 2])],
                    &[2, 3, 4],
                    O::ReverseV2Options(Box::default()),
                ),
            ),
        ],
        Op::SPACE_TO_BATCH_ND => vec![
            (
                "padded",
                with_consts(
                    code,
                    &[1, 3, 5, 2],
                    &[(&[2], &[2, 2]), (&[2, 2], &[1, 0, 1, 0])],
                    &[4, 2, 3, 2],
                    O::SpaceToBatchNDOptions(Box::default()),
                ),
            ),
            (
                "rank3",
                with_consts(
                    code,
                    &[1, 4, 2],
                    &[(&[1], &[2]), (&[1, 2], &[0, 0])],
                    &[2, 2, 2],
                    O::SpaceToBatchNDOptions(Box::default()),
                ),
            ),
        ],
        Op::BATCH_TO_SPACE_ND => vec![
            (
                "cropped",
                with_consts(
                    code,
                    &[4, 2, 3, 2],
                    &[(&[2], &[2, 2]), (&[2, 2], &[1, 0, 1, 0])],
                    &[1, 3, 5, 2],
                    O::BatchToSpaceNDOptions(Box::default()),
                ),
            ),
            (
                "rank3",
                with_consts(
                    code,
                    &[2, 2, 2],
                    &[(&[1], &[2]), (&[1, 2], &[0, 0])],
                    &[1, 4, 2],
                    O::BatchToSpaceNDOptions(Box::default()),
                ),
            ),
        ],
        Op::LESS | Op::GREATER | Op::EQUAL | Op::NOT_EQUAL | Op::LESS_EQUAL | Op::GREATER_EQUAL => {
            let options = || {
                example(code)
                    .expect("comparisons have an example")
                    .g
                    .op(OpIndex(0))
                    .builtin_options
                    .clone()
            };
            let mut broadcast = Example::new(code);
            let a = broadcast.x(&[2, 1, 6]);
            let b = broadcast.x_in(&[3, 1], -1.0, 3.0);
            broadcast.y_typed(&[2, 3, 6], fb::TensorType::BOOL);
            let broadcast = broadcast.run(&[a, b], options());
            let mut constant = Example::new(code);
            let a = constant.x(&[2, 6]);
            let b = constant.floats(&[], &[0.25]);
            constant.y_typed(&[2, 6], fb::TensorType::BOOL);
            let constant = constant.run(&[a, b], options());
            vec![("broadcast", broadcast), ("constant_scalar", constant)]
        }
        Op::ARG_MAX | Op::ARG_MIN => {
            let options = |ty| {
                if code == Op::ARG_MAX {
                    O::ArgMaxOptions(Box::new(with(fb::ArgMaxOptionsT::default(), |o| {
                        o.output_type = ty
                    })))
                } else {
                    O::ArgMinOptions(Box::new(with(fb::ArgMinOptionsT::default(), |o| {
                        o.output_type = ty
                    })))
                }
            };
            let arg = |x: &[i32], axis: i32, y: &[i32], ty| {
                let mut e = Example::new(code);
                let xt = e.x(x);
                let a = e.ints(&[1], &[axis]);
                e.y_typed(y, ty);
                e.run(&[xt, a], options(ty))
            };
            vec![
                (
                    "axis0_rank3",
                    arg(&[4, 3, 5], 0, &[3, 5], fb::TensorType::INT32),
                ),
                (
                    "last_axis_int64",
                    arg(&[1, 3, 3, 7], -1, &[1, 3, 3], fb::TensorType::INT64),
                ),
            ]
        }
        Op::SELECT_V2 => {
            let mut e = Example::new(code);
            let pattern: Vec<bool> = (0..6).map(|i| i % 2 == 0).collect();
            let cond = e.bools(&[1, 6], &pattern);
            let a = e.x(&[2, 6]);
            let b = e.x_in(&[2, 1], -1.0, 3.0);
            e.y(&[2, 6]);
            vec![(
                "broadcast",
                e.run(&[cond, a, b], O::SelectV2Options(Box::default())),
            )]
        }
        _ => Vec::new(),
    }
}

/// Ops whose integer models run on LiteRT's builtin kernels rather than BUILTIN_REF, and why (the cell is
/// marked with the resolver).
fn builtin_kernels(op: &str) -> Option<&'static str> {
    match op.split(' ').next() {
        Some("SUM") => Some(
            "BUILTIN_REF's quantized SUM passes int8 / int16 data as uint8 (reduce.cc, QuantizedMeanOrSum \
             kReference)",
        ),
        _ => None,
    }
}

/// Ops the suite does not generate, and why.
fn not_generated(code: Op) -> Option<&'static str> {
    match code {
        Op::QUANTIZE | Op::DEQUANTIZE => {
            Some("in every quantized model of this suite, where they are checked too")
        }
        Op::LOGICAL_AND | Op::LOGICAL_OR | Op::LOGICAL_NOT => Some(
            "BOOL in and out (no mode touches it); LOGICAL_AND runs in digits_gru's loop condition, \
             checked against LiteRT by the corpus tests",
        ),
        Op::WHILE => Some(
            "a loop needs cond and body subgraphs: digits_gru (tests/corpus) checks it in every mode, \
             in LiteRT (corpus::, int8::) and op by op against BUILTIN_REF (interp::)",
        ),
        Op::IF | Op::CALL_ONCE | Op::VAR_HANDLE | Op::READ_VARIABLE | Op::ASSIGN_VARIABLE => Some(
            "needs subgraphs: checked by the float and integer interpreters' unit tests \
             (calibrate::ops::control)",
        ),
        // Stateful ops with 20-48 inputs: their variants are generated in `op_parity.rs` (every
        // UNIDIRECTIONAL_SEQUENCE_LSTM form, each mode against LiteRT) and the corpus (digits_lstm_fused).
        Op::UNIDIRECTIONAL_SEQUENCE_LSTM => Some("generated in op_parity.rs, in all its variants"),
        Op::LSTM
        | Op::BIDIRECTIONAL_SEQUENCE_LSTM
        | Op::RNN
        | Op::UNIDIRECTIONAL_SEQUENCE_RNN
        | Op::BIDIRECTIONAL_SEQUENCE_RNN => Some(
            "generated in op_parity.rs (recurrent_ops_...): every mode against LiteRT, the hybrid \
             kernel with weights of >= 1024 elements",
        ),
        _ => None,
    }
}

/// One model to run in LiteRT: what it is and where its files are.
struct Run {
    op: String,
    column: &'static str,
    model: PathBuf,
    inputs: PathBuf,
    dump: PathBuf,
    /// The op under test computes in integers here (a bit-exact check applies).
    integer: Option<ActivationType>,
}

/// How litequant's interpreter compares with LiteRT on one model.
#[derive(Default)]
struct Parity {
    /// Integer elements compared, and those that differ (all ops of the model).
    integer_elements: usize,
    integer_mismatches: usize,
    /// Largest relative float difference (max |diff| / max |ref| per tensor).
    float_rel: f64,
    float_compared: bool,
    /// The ops whose integer outputs differ.
    mismatched_ops: std::collections::BTreeSet<String>,
}

fn write_inputs(path: &Path, samples: &[Vec<ArrayD<f32>>], n_inputs: usize) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).expect("create npz"));
    for k in 0..n_inputs {
        let views: Vec<_> = samples.iter().map(|s| s[k].view()).collect();
        let stacked = ndarray::stack(ndarray::Axis(0), &views).expect("samples stack");
        npz.add_array(format!("i{k}"), &stacked)
            .expect("write input");
    }
    npz.finish().expect("finish npz");
}

/// Feeds each op of `bytes` LiteRT's inputs (from `dump`) and compares every output with LiteRT's; with
/// `builtin` (LiteRT's optimized kernels ran the model), QUANTIZE ops are not compared: their optimized
/// int16 kernel rounds differently from the reference one this interpreter follows.
fn parity(bytes: &[u8], dump: &Path, builtin: bool) -> Result<Parity, String> {
    let interp = Interpreter::new(bytes).map_err(|e| e.to_string())?;
    let graph = Graph::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut npz = NpzReader::new(std::fs::File::open(dump).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut p = Parity::default();
    for s in 0..SAMPLES {
        let mut tensor = |t: TensorId| -> Option<Tensor> {
            read(&mut npz, &format!("s{s}_t{}", t.0), graph.tensor(t).type_)
        };
        for i in 0..graph.ops().len() {
            let op = OpIndex(i);
            if builtin && graph.op_code(op) == Op::QUANTIZE {
                continue;
            }
            let inputs: Vec<Option<Tensor>> = graph
                .op_inputs(op)
                .into_iter()
                .map(|t| {
                    t.and_then(|t| {
                        // A variable tensor (an RNN's state) is dumped after the op updated it: the op
                        // read its initial value, which the interpreter holds.
                        if graph.is_constant(t) || graph.tensor(t).is_variable {
                            interp.tensor(t).cloned()
                        } else {
                            tensor(t)
                        }
                    })
                })
                .collect();
            let ours = interp
                .eval_op(op, &inputs)
                .map_err(|e| format!("sample {s}: {e}"))?;
            for (t, v) in graph.op_outputs(op).into_iter().zip(ours) {
                let reference =
                    tensor(t).ok_or_else(|| format!("LiteRT kept no value for tensor {}", t.0))?;
                let (a, b) = (v.data.to_f64(), reference.data.to_f64());
                if a.len() != b.len() {
                    return Err(format!(
                        "tensor {}: {} elements, LiteRT {}",
                        t.0,
                        a.len(),
                        b.len()
                    ));
                }
                if matches!(v.data, TensorData::F32(_)) {
                    let peak = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
                    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs());
                    p.float_rel = p.float_rel.max(diff.fold(0f64, f64::max) / peak);
                    p.float_compared = true;
                } else {
                    p.integer_elements += a.len();
                    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                    if differ > 0 {
                        p.mismatched_ops.insert(graph.op_type_name(op));
                    }
                    p.integer_mismatches += differ;
                }
            }
        }
    }
    Ok(p)
}

/// Calibrates `graph` on `samples` with litequant's own float kernels.
fn ranges(graph: &Graph, samples: &[Vec<ArrayD<f32>>]) -> Result<Ranges, String> {
    let mut queue = samples.iter().cloned();
    let mut next = |n: usize| -> Result<Vec<Vec<ArrayD<f32>>>, String> {
        Ok(queue.by_ref().take(n).collect())
    };
    calibrate(
        graph,
        &mut next,
        samples.len(),
        &CalibrateOptions::default(),
        &|_, _| {},
        &|| false,
    )
    .map_err(|e| e.to_string())
}

fn name(code: Op) -> String {
    litequant::tflite::op_name(code)
}

const COLUMNS: [(&str, Mode); 4] = [
    ("float", Mode::Float16),
    ("int8", Mode::Int8),
    ("int16x8", Mode::Int16x8),
    ("dynamic", Mode::Dynamic),
];

#[test]
fn every_op_of_the_table_quantizes_and_runs_in_litert_bit_exact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cells: BTreeMap<(String, &'static str), String> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    // `LITEQUANT_OPS=STRIDED_SLICE,SUM` runs those ops alone (all their forms).
    let only: Option<Vec<String>> = std::env::var("LITEQUANT_OPS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let mut labels: Vec<String> = Vec::new();
    let mut generated: Vec<(&OpDef, String, Example)> = Vec::new();
    for def in ops::table().iter() {
        let code = def.code();
        let op = name(code);
        if only.as_ref().is_some_and(|only| !only.contains(&op)) {
            continue;
        }
        labels.push(op.clone());
        let Some(e) = example(code) else {
            if let Some(why) = not_generated(code) {
                cells.insert((op, "float"), format!("not generated: {why}"));
            } else if def.float_kernel().is_ok() || def.rule(ActivationType::Int8).is_ok() {
                problems.push(format!("{op}: the table has it, this suite has no example"));
            }
            continue;
        };
        generated.push((def, op.clone(), e));
        for (form, e) in forms(code) {
            labels.push(format!("{op} {form}"));
            generated.push((def, format!("{op} {form}"), e));
        }
    }
    // Each example (the op's main one and its further forms) is labelled `op` in the table.
    for (def, op, mut e) in generated {
        let code = def.code();
        let samples = e.samples();
        let n_inputs = e.inputs.len();
        let float = e.g.to_bytes();
        let stem = dir.path().join(op.replace(' ', "_"));
        let inputs = stem.with_extension("inputs.npz");
        write_inputs(&inputs, &samples, n_inputs);
        let float_path = stem.with_extension("float.tflite");
        std::fs::write(&float_path, &float).expect("write float model");
        let promised = litequant::inspect::inspect(&e.g, float.len() as u64).ops[0]
            .modes
            .clone();
        match def.float_kernel() {
            Ok(()) => runs.push(Run {
                op: op.clone(),
                column: "float",
                model: float_path.clone(),
                inputs: inputs.clone(),
                dump: stem.with_extension("float.npz"),
                integer: None,
            }),
            Err(why) => {
                cells.insert((op.clone(), "float"), format!("no kernel: {why}"));
            }
        }
        let calibrated = def.float_kernel().map(|()| ranges(&e.g, &samples));
        for (column, mode) in &COLUMNS[1..] {
            let ty = match mode {
                Mode::Int8 => Some(ActivationType::Int8),
                Mode::Int16x8 => Some(ActivationType::Int16),
                _ => None,
            };
            let mut g = Graph::from_bytes(&float).expect("the example reads");
            let built = match (ty, &calibrated) {
                (Some(_), Err(_)) => None,
                (Some(_), Ok(Err(e))) => {
                    problems.push(format!("{op}: calibration failed: {e}"));
                    None
                }
                (Some(_), Ok(Ok(r))) => {
                    Some(quantize(&mut g, *mode, &QuantOptions::default(), Some(r)))
                }
                (None, _) => Some(quantize(&mut g, *mode, &QuantOptions::default(), None)),
            };
            // What build did to the op under test, against what inspect promised.
            let did = match &built {
                Some(Ok(summary)) if *mode == Mode::Dynamic => summary.weights_quantized > 0,
                Some(Ok(summary)) => summary.ops_float.iter().all(|f| f.op != name(code)),
                _ => false,
            };
            if did != promised.contains(mode) {
                problems.push(format!(
                    "{op} {mode}: inspect promises {}, build {}",
                    promised.contains(mode),
                    if did { "quantized it" } else { "left it float" }
                ));
            }
            match built {
                Some(Err(err)) => {
                    problems.push(format!("{op} {mode}: build failed: {err}"));
                    continue;
                }
                None | Some(Ok(_)) if !did => {
                    let why = def
                        .reason_float(*mode)
                        .unwrap_or("the example's weights are float constants too small");
                    cells.insert((op.clone(), column), format!("float: {why}"));
                    continue;
                }
                _ => {}
            }
            let path = stem.with_extension(format!("{column}.tflite"));
            std::fs::write(&path, g.to_bytes()).expect("write artifact");
            runs.push(Run {
                op: op.clone(),
                column,
                model: path,
                inputs: inputs.clone(),
                dump: stem.with_extension(format!("{column}.npz")),
                integer: ty,
            });
        }
    }

    // Every model in one LiteRT process.
    let manifest: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let builtin = r.integer.is_some() && builtin_kernels(&r.op).is_some();
            serde_json::json!({"model": r.model, "inputs": r.inputs, "out": r.dump, "builtin": builtin})
        })
        .collect();
    let manifest_path = dir.path().join("manifest.json");
    let results_path = dir.path().join("results.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("json")).expect("write");
    let status = std::process::Command::new(python())
        .arg(repo().join("tests/litert/dump_many.py"))
        .args([&manifest_path, &results_path])
        .status()
        .expect("python runs");
    assert!(status.success(), "dump_many.py failed");
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&results_path).expect("results")).expect("json");

    for (run, result) in runs.iter().zip(&results) {
        let label = format!("{} {}", run.op, run.column);
        if result["loads"] != serde_json::Value::Bool(true) || !result["error"].is_null() {
            problems.push(format!("{label}: LiteRT: {}", result["error"]));
            cells.insert((run.op.clone(), run.column), "LiteRT FAILS".into());
            continue;
        }
        let def: &OpDef = ops::table()
            .iter()
            .find(|d| run.op.split(' ').next() == Some(name(d.code()).as_str()))
            .expect("the op is in the table");
        let bytes = std::fs::read(&run.model).expect("artifact");
        // The face the interpreter needs to run the op under test here, when the table says it lacks it.
        let missing = match (run.column, run.integer) {
            (_, Some(ty)) => def.integer_kernel(ty).err(),
            ("dynamic", None) => match def.dynamic_weights().map(|w| w.kernel) {
                Ok(ops::WeightKernel::Hybrid) => def.hybrid_kernel().err(),
                _ => def.float_kernel().err(),
            },
            _ => def.float_kernel().err(),
        };
        let builtin = run.integer.is_some() && builtin_kernels(&run.op).is_some();
        let cell = match (parity(&bytes, &run.dump, builtin), run.integer) {
            (Err(_), _) if missing.is_some() => {
                format!("loads; not in interpreter: {}", missing.unwrap_or_default())
            }
            (Err(e), _) => {
                problems.push(format!("{label}: {e}"));
                format!("ERROR {e}")
            }
            (Ok(p), Some(_)) => {
                if p.integer_mismatches > 0 {
                    problems.push(format!(
                        "{label}: {} of {} integer elements differ from LiteRT (in {:?})",
                        p.integer_mismatches, p.integer_elements, p.mismatched_ops
                    ));
                    format!("{} of {} differ", p.integer_mismatches, p.integer_elements)
                } else {
                    format!("bit-exact ({} elements)", p.integer_elements)
                }
            }
            (Ok(p), None) => {
                if run.column == "float" && p.float_rel > FLOAT_TOLERANCE {
                    problems.push(format!(
                        "{label}: float kernel {:.2e} relative from LiteRT (> {FLOAT_TOLERANCE:e})",
                        p.float_rel
                    ));
                }
                let exact = if p.integer_elements > 0 && p.integer_mismatches == 0 {
                    ", integers exact"
                } else {
                    ""
                };
                format!("max rel {:.1e}{exact}", p.float_rel)
            }
        };
        // Marked where BUILTIN_REF lacks the op's version and LiteRT's builtin kernels ran it instead.
        let cell = match result["resolver"].as_str() {
            Some("BUILTIN_REF") => cell,
            other => format!("{cell} [{}]", other.unwrap_or("resolver?")),
        };
        cells.insert((run.op.clone(), run.column), cell);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:24} | {:28} | {:28} | {:28} | dynamic",
        "op", "float (vs LiteRT float)", "int8", "int16x8"
    );
    for op in labels {
        let cell = |c: &str| {
            cells
                .get(&(op.clone(), c))
                .map_or("-".to_string(), |s| s.chars().take(70).collect())
        };
        let _ = writeln!(
            table,
            "{op:24} | {:28} | {:28} | {:28} | {}",
            cell("float"),
            cell("int8"),
            cell("int16x8"),
            cell("dynamic")
        );
    }
    println!("{table}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
