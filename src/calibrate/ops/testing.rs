//! Test support: one-op models built in memory and run through the float interpreter.

use crate::calibrate::{CalibError, FloatInterpreter, Registry, Value};
use crate::graph::Graph;
use crate::tflite::fb;
use ndarray::{ArrayD, IxDyn};

/// One input of the op under test: a constant, or omitted (-1).
pub(crate) enum Arg {
    Const(Value),
    Omitted,
}

impl Arg {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Arg {
        Arg::Const(Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), data).expect("test data fits its shape"),
        ))
    }

    pub fn i32(shape: &[usize], data: Vec<i32>) -> Arg {
        Arg::Const(Value::I32(
            ArrayD::from_shape_vec(IxDyn(shape), data).expect("test data fits its shape"),
        ))
    }

    /// The value itself (for comparing outputs).
    pub fn value(self) -> Value {
        match self {
            Arg::Const(v) => v,
            Arg::Omitted => panic!("an omitted argument has no value"),
        }
    }
}

fn bytes(v: &Value) -> (fb::TensorType, Vec<u8>) {
    match v {
        Value::F32(a) => (
            fb::TensorType::FLOAT32,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Value::I32(a) => (
            fb::TensorType::INT32,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Value::I64(a) => (
            fb::TensorType::INT64,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Value::Bool(a) => (
            fb::TensorType::BOOL,
            a.iter().map(|&x| u8::from(x)).collect(),
        ),
    }
}

/// A model with one op whose inputs are constants and whose outputs have the given types.
pub(crate) fn one_op_graph(
    code: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    args: Vec<Arg>,
    outputs: &[fb::TensorType],
) -> Graph {
    let mut buffers = vec![fb::BufferT::default()];
    let mut tensors = Vec::new();
    let mut inputs = Vec::new();
    for (i, arg) in args.into_iter().enumerate() {
        match arg {
            Arg::Omitted => inputs.push(-1),
            Arg::Const(v) => {
                let (type_, data) = bytes(&v);
                buffers.push(fb::BufferT {
                    data: Some(data),
                    offset: 0,
                    size: 0,
                });
                inputs.push(tensors.len() as i32);
                tensors.push(fb::TensorT {
                    shape: Some(v.shape().iter().map(|&d| d as i32).collect()),
                    type_,
                    buffer: (buffers.len() - 1) as u32,
                    name: Some(format!("in{i}")),
                    ..Default::default()
                });
            }
        }
    }
    let mut out_ids = Vec::new();
    for (i, &type_) in outputs.iter().enumerate() {
        out_ids.push(tensors.len() as i32);
        tensors.push(fb::TensorT {
            shape: Some(vec![]),
            type_,
            name: Some(format!("out{i}")),
            ..Default::default()
        });
    }
    let op = fb::OperatorT {
        opcode_index: 0,
        inputs: Some(inputs),
        outputs: Some(out_ids.clone()),
        builtin_options: options,
        ..Default::default()
    };
    let model = fb::ModelT {
        version: 3,
        operator_codes: Some(vec![fb::OperatorCodeT {
            deprecated_builtin_code: code.0.min(127) as i8,
            custom_code: None,
            version: 1,
            builtin_code: code,
        }]),
        subgraphs: Some(vec![fb::SubGraphT {
            tensors: Some(tensors),
            inputs: Some(vec![]),
            outputs: Some(out_ids),
            operators: Some(vec![op]),
            ..Default::default()
        }]),
        buffers: Some(buffers),
        ..Default::default()
    };
    Graph::from_model(model)
}

/// `g` (a [`one_op_graph`]) with a new FLOAT32 model input `x` of `shape` read by its op at input `slot`.
pub(crate) fn with_float_input(mut g: Graph, shape: &[i32], slot: usize) -> Graph {
    let x = g.add_tensor(fb::TensorT {
        shape: Some(shape.to_vec()),
        type_: fb::TensorType::FLOAT32,
        name: Some("x".into()),
        ..Default::default()
    });
    g.main_mut().inputs = Some(vec![x.0 as i32]);
    let inputs = g
        .op_mut(crate::graph::OpIndex(0))
        .inputs
        .get_or_insert_with(Vec::new);
    if inputs.len() <= slot {
        inputs.resize(slot + 1, -1);
    }
    inputs[slot] = x.0 as i32;
    g
}

/// Runs one op on constant inputs with one FLOAT32 output.
pub(crate) fn try_run_op(
    code: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    args: Vec<Arg>,
) -> Result<Vec<Value>, CalibError> {
    let g = one_op_graph(code, options, args, &[fb::TensorType::FLOAT32]);
    let interp = FloatInterpreter::new(&g, &Registry::with_all_ops())?;
    interp.run(&[], &mut |_, _| {})
}

/// Runs one op on constant inputs with one FLOAT32 output, which must succeed.
pub(crate) fn run_op(
    code: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    args: Vec<Arg>,
) -> Vec<Value> {
    match try_run_op(code, options, args) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The float output of a one-op run as (shape, values).
pub(crate) fn run_f32(
    code: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    args: Vec<Arg>,
) -> (Vec<usize>, Vec<f32>) {
    match run_op(code, options, args).remove(0) {
        Value::F32(a) => (a.shape().to_vec(), a.iter().copied().collect()),
        other => panic!("expected a float output, got {}", other.type_name()),
    }
}

/// Asserts two float slices agree to `tol` (absolute).
pub(crate) fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "element {i}: got {a}, want {b} (got {got:?}, want {want:?})"
        );
    }
}
