//! Calibration: a float reference interpreter that runs the float model on representative data and feeds
//! every activation tensor to range observers.
//!
//! Kernel bodies live in [`ops`], one module per op family; the op table ([`crate::ops`]) says which op runs
//! which, and [`Registry`] is its float column. An op without a kernel is an error naming the op and its
//! index, never a silent skip.

pub mod auto;
mod calibrator;
#[cfg(test)]
mod corpus_tests;
mod error;
pub mod gram;
pub mod heads;
mod histogram;
mod interpreter;
mod observer;
pub mod ops;
mod value;
pub(crate) mod vector;

pub use calibrator::{batch_for, batch_for_graph, calibrate, calibrate_with, CalibrateOptions};
pub use error::{CalibError, OpLocation};
pub use histogram::{Histogram, HistogramObserver, QuantGrid, RangeMethod, BINS};
pub use interpreter::FloatInterpreter;
pub use observer::{MinMaxObserver, RangeObserver};
pub use value::Value;

use crate::graph::{Graph, OpIndex};
use crate::tflite::fb;
use std::collections::{BTreeMap, HashMap};

/// Why an op could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// No kernel is registered for this op (the op name is filled in by the interpreter).
    #[error("no float kernel for this op")]
    Unsupported,
    /// The op's inputs, options or shapes are outside what the kernel implements.
    #[error("{0}")]
    Invalid(String),
}

/// What a kernel sees: the op's options, its input values and the declared output tensors.
pub struct OpContext<'a> {
    /// The graph (for options, tensor types and declared shapes).
    pub graph: &'a Graph,
    /// The op being evaluated.
    pub op: OpIndex,
    /// Input values in the op's input order; `None` for an omitted optional input.
    pub inputs: Vec<Option<&'a Value>>,
    /// The interpreter, for control-flow ops that run other subgraphs (`None` where no subgraph can run:
    /// a one-op test).
    pub calls: Option<&'a dyn SubgraphCalls>,
}

/// What the model being interpreted offers an op beyond its inputs: running a subgraph (WHILE, IF and
/// CALL_ONCE kernels) and the sample's resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE).
pub trait SubgraphCalls {
    /// Runs subgraph `subgraph` (> 0) on `inputs` (its input tensors in order); returns its outputs.
    fn call(&self, subgraph: usize, inputs: Vec<Value>) -> Result<Vec<Value>, KernelError>;
    /// The handle of the resource variable named `name` (container and shared name): one handle per name,
    /// in every subgraph.
    fn handle(&self, name: &str) -> i32;
    /// The value last assigned to the variable behind `handle` in this sample.
    fn read(&self, handle: i32) -> Option<Value>;
    /// Assigns the variable behind `handle`.
    fn assign(&self, handle: i32, value: Value);
}

/// The resource variables of one run: names by handle, and the values assigned so far.
#[derive(Debug, Default, Clone)]
pub struct Resources {
    names: Vec<String>,
    values: BTreeMap<i32, Value>,
}

impl Resources {
    /// The handle of `name`, given on first use.
    pub fn handle(&mut self, name: &str) -> i32 {
        let i = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        };
        i32::try_from(i).unwrap_or(i32::MAX)
    }

    /// The value assigned to `handle`.
    pub fn read(&self, handle: i32) -> Option<Value> {
        self.values.get(&handle).cloned()
    }

    /// Assigns `handle`.
    pub fn assign(&mut self, handle: i32, value: Value) {
        self.values.insert(handle, value);
    }

    /// Forgets every value (a new sample starts from the model's initial state).
    pub fn clear(&mut self) {
        self.values.clear();
    }
}

impl<'a> OpContext<'a> {
    /// The op in the flatbuffer object API (options, custom data).
    pub fn operator(&self) -> &'a fb::OperatorT {
        self.graph.op(self.op)
    }

    /// Runs subgraph `subgraph` on `inputs` (control-flow kernels).
    pub fn call(&self, subgraph: usize, inputs: Vec<Value>) -> Result<Vec<Value>, KernelError> {
        self.attached()?.call(subgraph, inputs)
    }

    fn attached(&self) -> Result<&'a dyn SubgraphCalls, KernelError> {
        self.calls.ok_or_else(|| {
            KernelError::Invalid(
                "no interpreter is attached (subgraphs, resource variables)".into(),
            )
        })
    }

    /// The handle of resource variable `name`.
    pub fn handle(&self, name: &str) -> Result<i32, KernelError> {
        Ok(self.attached()?.handle(name))
    }

    /// The value assigned to the resource variable behind `handle`.
    pub fn read_variable(&self, handle: i32) -> Result<Value, KernelError> {
        self.attached()?.read(handle).ok_or_else(|| {
            KernelError::Invalid("the resource variable is read before anything assigns it".into())
        })
    }

    /// Assigns the resource variable behind `handle`.
    pub fn assign_variable(&self, handle: i32, value: Value) -> Result<(), KernelError> {
        self.attached()?.assign(handle, value);
        Ok(())
    }

    /// Input `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a Value, KernelError> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| KernelError::Invalid(format!("missing input {i}")))
    }

    /// Input `i` as float32.
    pub fn input_f32(&self, i: usize) -> Result<&'a ndarray::ArrayD<f32>, KernelError> {
        match self.input(i)? {
            Value::F32(a) => Ok(a),
            other => Err(KernelError::Invalid(format!(
                "input {i} is {}, expected FLOAT32",
                other.type_name()
            ))),
        }
    }

    /// Input `i` as integers (INT32 or INT64 values, e.g. shapes, axes, paddings, indices).
    pub fn input_ints(&self, i: usize) -> Result<Vec<i64>, KernelError> {
        self.input(i)?
            .to_i64_vec()
            .ok_or_else(|| KernelError::Invalid(format!("input {i} is not an integer tensor")))
    }

    /// The declared shape of output `i` (static dims; may be stale for dynamic shapes).
    pub fn output_shape(&self, i: usize) -> Vec<usize> {
        let out = self.graph.op_outputs(self.op);
        out.get(i)
            .map(|&t| {
                self.graph
                    .shape(t)
                    .iter()
                    .map(|&d| d.max(0) as usize)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The declared type of output `i`.
    pub fn output_type(&self, i: usize) -> fb::TensorType {
        let out = self.graph.op_outputs(self.op);
        out.get(i)
            .map(|&t| self.graph.tensor(t).type_)
            .unwrap_or(fb::TensorType::FLOAT32)
    }
}

/// A float kernel: computes every output of one op from its inputs.
pub type Kernel = fn(&OpContext<'_>) -> Result<Vec<Value>, KernelError>;

/// The float kernels of the op table ([`crate::ops`]), keyed by builtin op code.
#[derive(Default)]
pub struct Registry {
    kernels: HashMap<i32, Kernel>,
}

impl Registry {
    /// A registry with every float kernel of the op table.
    pub fn with_all_ops() -> Registry {
        let mut r = Registry::default();
        for def in crate::ops::table().iter() {
            if let crate::ops::Face::Has(k) = def.float {
                r.register(def.code(), k);
            }
        }
        r
    }

    /// Registers (or replaces) the kernel of an op code (tests swap kernels this way; litequant's own
    /// kernels are declared in the op table).
    pub fn register(&mut self, code: fb::BuiltinOperator, kernel: Kernel) {
        self.kernels.insert(code.0, kernel);
    }

    /// The kernel of an op code, if any.
    pub fn get(&self, code: fb::BuiltinOperator) -> Option<Kernel> {
        self.kernels.get(&code.0).copied()
    }

    /// Whether an op code has a kernel.
    pub fn supports(&self, code: fb::BuiltinOperator) -> bool {
        self.kernels.contains_key(&code.0)
    }
}
