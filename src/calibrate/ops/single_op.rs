//! Test support: runs one registered kernel on a one-op model built around given input values.

use crate::calibrate::{KernelError, OpContext, Registry, Value};
use crate::graph::{Graph, OpIndex};
use crate::tflite::fb;

/// One op to run: its code, options and the declared type and shape of each output.
pub(crate) struct SingleOp {
    code: fb::BuiltinOperator,
    options: fb::BuiltinOptionsT,
    outputs: Vec<(fb::TensorType, Vec<i32>)>,
}

impl SingleOp {
    /// An op with no options and one FLOAT32 output of unknown shape.
    pub(crate) fn new(code: fb::BuiltinOperator) -> SingleOp {
        SingleOp {
            code,
            options: fb::BuiltinOptionsT::NONE,
            outputs: vec![(fb::TensorType::FLOAT32, vec![])],
        }
    }

    /// Sets the op's builtin options.
    pub(crate) fn options(mut self, options: fb::BuiltinOptionsT) -> SingleOp {
        self.options = options;
        self
    }

    /// Declares the outputs (type and shape), replacing the default single FLOAT32 output.
    pub(crate) fn outputs(mut self, outputs: &[(fb::TensorType, &[i32])]) -> SingleOp {
        self.outputs = outputs.iter().map(|(t, s)| (*t, s.to_vec())).collect();
        self
    }

    /// The one-op model reading `inputs` (`None`: an omitted input) as subgraph inputs.
    pub(crate) fn model(&self, inputs: &[Option<Value>]) -> fb::ModelT {
        let mut tensors = Vec::new();
        let mut input_ids = Vec::new();
        for (i, v) in inputs.iter().enumerate() {
            match v {
                Some(v) => {
                    input_ids.push(tensors.len() as i32);
                    tensors.push(fb::TensorT {
                        shape: Some(v.shape().iter().map(|&d| d as i32).collect()),
                        type_: v.tensor_type(),
                        name: Some(format!("input{i}")),
                        ..Default::default()
                    });
                }
                None => input_ids.push(-1),
            }
        }
        let mut output_ids = Vec::new();
        for (i, (type_, shape)) in self.outputs.iter().enumerate() {
            output_ids.push(tensors.len() as i32);
            tensors.push(fb::TensorT {
                shape: Some(shape.clone()),
                type_: *type_,
                name: Some(format!("output{i}")),
                ..Default::default()
            });
        }
        let op = fb::OperatorT {
            opcode_index: 0,
            inputs: Some(input_ids.clone()),
            outputs: Some(output_ids.clone()),
            builtin_options: self.options.clone(),
            ..Default::default()
        };
        fb::ModelT {
            version: 3,
            operator_codes: Some(vec![fb::OperatorCodeT {
                deprecated_builtin_code: self.code.0.min(127) as i8,
                custom_code: None,
                version: 1,
                builtin_code: self.code,
            }]),
            subgraphs: Some(vec![fb::SubGraphT {
                tensors: Some(tensors),
                inputs: Some(input_ids.into_iter().filter(|&t| t >= 0).collect()),
                outputs: Some(output_ids),
                operators: Some(vec![op]),
                ..Default::default()
            }]),
            buffers: Some(vec![fb::BufferT::default()]),
            ..Default::default()
        }
    }

    /// Builds the model and runs the op's registered kernel on `inputs` (`None`: an omitted input).
    pub(crate) fn run_optional(&self, inputs: &[Option<Value>]) -> Result<Vec<Value>, KernelError> {
        let graph = Graph::from_model(self.model(inputs));
        let registry = Registry::with_all_ops();
        let kernel = registry.get(self.code).ok_or(KernelError::Unsupported)?;
        let ctx = OpContext {
            graph: &graph,
            op: OpIndex(0),
            inputs: inputs.iter().map(Option::as_ref).collect(),
            calls: None,
        };
        kernel(&ctx)
    }

    /// Runs the op on present inputs.
    pub(crate) fn run(&self, inputs: &[Value]) -> Result<Vec<Value>, KernelError> {
        let inputs: Vec<Option<Value>> = inputs.iter().cloned().map(Some).collect();
        self.run_optional(&inputs)
    }

    /// Runs the op and returns its single output, failing the test on an error.
    pub(crate) fn run1(&self, inputs: &[Value]) -> Value {
        match self.run(inputs) {
            Ok(mut out) if out.len() == 1 => out.remove(0),
            Ok(out) => panic!("expected one output, got {}", out.len()),
            Err(e) => panic!("kernel failed: {e}"),
        }
    }
}

/// A FLOAT32 value of a shape from row-major data.
pub(crate) fn f32s(shape: &[usize], data: &[f32]) -> Value {
    Value::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data.to_vec())
            .expect("test shape matches data"),
    )
}

/// An INT32 value of a shape from row-major data.
pub(crate) fn i32s(shape: &[usize], data: &[i32]) -> Value {
    Value::I32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data.to_vec())
            .expect("test shape matches data"),
    )
}

/// An INT64 value of a shape from row-major data.
pub(crate) fn i64s(shape: &[usize], data: &[i64]) -> Value {
    Value::I64(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data.to_vec())
            .expect("test shape matches data"),
    )
}

/// A BOOL value of a shape from row-major data.
pub(crate) fn bools(shape: &[usize], data: &[bool]) -> Value {
    Value::Bool(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data.to_vec())
            .expect("test shape matches data"),
    )
}

/// The shape and row-major data of a FLOAT32 value (panics on other types: tests only).
pub(crate) fn f32_data(v: &Value) -> (Vec<usize>, Vec<f32>) {
    match v {
        Value::F32(a) => (a.shape().to_vec(), a.iter().copied().collect()),
        other => panic!("expected FLOAT32, got {}", other.type_name()),
    }
}

/// The shape and row-major data of an integer value widened to i64 (panics on other types: tests only).
pub(crate) fn int_data(v: &Value) -> (Vec<usize>, Vec<i64>) {
    match v.to_i64_vec() {
        Some(d) => (v.shape().to_vec(), d),
        None => panic!("expected an integer tensor, got {}", v.type_name()),
    }
}

/// The shape and row-major data of a BOOL value (panics on other types: tests only).
pub(crate) fn bool_data(v: &Value) -> (Vec<usize>, Vec<bool>) {
    match v {
        Value::Bool(a) => (a.shape().to_vec(), a.iter().copied().collect()),
        other => panic!("expected BOOL, got {}", other.type_name()),
    }
}

#[cfg(test)]
mod tests {
    use crate::calibrate::Registry;
    use crate::tflite::fb::BuiltinOperator as Op;

    #[test]
    fn registry_has_every_element_wise_shape_and_array_op() {
        let registry = Registry::with_all_ops();
        let ops = [
            Op::ADD,
            Op::SUB,
            Op::MUL,
            Op::DIV,
            Op::SQUARED_DIFFERENCE,
            Op::MAXIMUM,
            Op::MINIMUM,
            Op::POW,
            Op::FLOOR_DIV,
            Op::FLOOR_MOD,
            Op::LESS,
            Op::GREATER,
            Op::EQUAL,
            Op::NOT_EQUAL,
            Op::LESS_EQUAL,
            Op::GREATER_EQUAL,
            Op::SELECT,
            Op::SELECT_V2,
            Op::FLOOR,
            Op::CEIL,
            Op::ROUND,
            Op::CAST,
            Op::ZEROS_LIKE,
            Op::ADD_N,
            Op::RESHAPE,
            Op::SQUEEZE,
            Op::EXPAND_DIMS,
            Op::TRANSPOSE,
            Op::SHAPE,
            Op::FILL,
            Op::BROADCAST_TO,
            Op::TILE,
            Op::SLICE,
            Op::STRIDED_SLICE,
            Op::PAD,
            Op::PADV2,
            Op::MIRROR_PAD,
            Op::SPLIT,
            Op::SPLIT_V,
            Op::PACK,
            Op::UNPACK,
            Op::CONCATENATION,
            Op::GATHER,
            Op::GATHER_ND,
            Op::SPACE_TO_DEPTH,
            Op::DEPTH_TO_SPACE,
            Op::BATCH_TO_SPACE_ND,
            Op::SPACE_TO_BATCH_ND,
            Op::REVERSE_V2,
            Op::ARG_MAX,
            Op::ARG_MIN,
        ];
        let missing: Vec<String> = ops
            .iter()
            .filter(|&&op| !registry.supports(op))
            .map(|&op| crate::tflite::op_name(op))
            .collect();
        assert!(missing.is_empty(), "no kernel for {missing:?}");
    }
}
