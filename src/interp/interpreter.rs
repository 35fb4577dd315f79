//! The interpreter: validates the graph once, then evaluates ops in order, keeping every tensor.

use super::error::InterpError;
use super::kernels::{OpCache, OpCtx, Registry};
use super::tensor::{decode, QuantParams, Tensor, TensorData, TensorInfo};
use super::IntegerKernel;
use crate::calibrate::{self, OpLocation, Value};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::fb;
use ndarray::{ArrayD, IxDyn};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Runs a `.tflite` model's main subgraph with LiteRT-compatible integer kernels (and litequant's float
/// kernels for float ops).
pub struct Interpreter {
    graph: Graph,
    kernels: Registry,
    float_kernels: calibrate::Registry,
    constants: Vec<Option<Tensor>>,
    /// The constants float ops read, converted once for litequant's float kernels.
    float_constants: Vec<Option<Value>>,
    values: Vec<Option<Tensor>>,
    /// Per op: what its kernel prepared from the op's constants, and its scratch buffers.
    caches: Vec<OpCache>,
    /// Per op: how it runs and its tensors, decided once (an op runs thousands of times in a loop body).
    plans: Vec<OpPlan>,
    inputs: Vec<TensorId>,
    outputs: Vec<TensorId>,
    /// The subgraphs this one's control-flow ops run (WHILE's cond and body, IF's branches, CALL_ONCE's
    /// init), each an interpreter of its own, with the subgraphs it runs in turn.
    /// Their state is scratch (reset by every call), so an op can run them from `&self` ([`Self::eval_op`]).
    subs: RefCell<BTreeMap<usize, Interpreter>>,
    /// The resource variables, shared with every subgraph's interpreter.
    resources: Rc<RefCell<calibrate::Resources>>,
    /// The main subgraph's interpreter: a run starts with no variable assigned.
    top: bool,
}

/// Resource variables for litequant's float kernels run by this interpreter (VAR_HANDLE and friends).
struct Attached<'a> {
    resources: &'a RefCell<calibrate::Resources>,
}

impl calibrate::SubgraphCalls for Attached<'_> {
    fn call(&self, subgraph: usize, _: Vec<Value>) -> Result<Vec<Value>, calibrate::KernelError> {
        Err(calibrate::KernelError::Invalid(format!(
            "subgraph {subgraph}: control flow runs through the interpreter's invoke"
        )))
    }

    fn handle(&self, name: &str) -> i32 {
        self.resources.borrow_mut().handle(name)
    }

    fn read(&self, handle: i32) -> Option<Value> {
        self.resources.borrow().read(handle)
    }

    fn assign(&self, handle: i32, value: Value) {
        self.resources.borrow_mut().assign(handle, value);
    }
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter")
            .field("tensors", &self.constants.len())
            .field("ops", &self.graph.ops().len())
            .finish()
    }
}

/// How an op is evaluated.
#[derive(Clone, Copy)]
enum Path {
    Integer(IntegerKernel),
    Hybrid(IntegerKernel),
    Float,
    /// WHILE, IF, CALL_ONCE: run other subgraphs (only [`Interpreter::invoke`] can).
    Control,
}

/// What the interpreter decides about an op once: its kernel (`None`: none can run it) and its tensors.
struct OpPlan {
    path: Option<Path>,
    inputs: Vec<Option<TensorId>>,
    outputs: Vec<TensorId>,
}

/// Whether an op code runs other subgraphs.
fn is_control(code: fb::BuiltinOperator) -> bool {
    matches!(
        code,
        fb::BuiltinOperator::WHILE | fb::BuiltinOperator::IF | fb::BuiltinOperator::CALL_ONCE
    )
}

/// The interpreters of the subgraphs subgraph `s` of `top` runs, built from `top` (views of a view would
/// lose the constants); `stack` holds the subgraphs being built, to refuse recursion.
fn build_subs(
    top: &Graph,
    s: usize,
    stack: &mut Vec<usize>,
    resources: &Rc<RefCell<calibrate::Resources>>,
) -> Result<BTreeMap<usize, Interpreter>, InterpError> {
    let mut subs = BTreeMap::new();
    for c in top.calls_of(s) {
        if c >= top.subgraph_count() {
            return Err(InterpError::Model(format!(
                "subgraph {s} runs subgraph {c}, but the model has {}",
                top.subgraph_count()
            )));
        }
        if stack.contains(&c) {
            return Err(InterpError::Model(format!(
                "subgraph {c} runs itself through {stack:?} (recursion is not allowed in TFLite)"
            )));
        }
        stack.push(c);
        let inner = build_subs(top, c, stack, resources)?;
        stack.pop();
        let interp = Interpreter::single(top.view(c), inner, Rc::clone(resources), false)
            .map_err(|e| InterpError::Model(format!("subgraph {c}: {e}")))?;
        subs.insert(c, interp);
    }
    Ok(subs)
}

impl Interpreter {
    /// Reads a model and checks that every op can run: tensor references in range, every op has a kernel
    /// for its types (the error lists each one that has none), constants decodable.
    pub fn new(model_bytes: &[u8]) -> Result<Interpreter, InterpError> {
        let graph = Graph::from_bytes(model_bytes).map_err(|e| InterpError::Read(e.to_string()))?;
        Interpreter::from_graph(graph)
    }

    /// Like [`new`](Self::new), from an already read graph.
    pub fn from_graph(graph: Graph) -> Result<Interpreter, InterpError> {
        let focus = graph.focused();
        let resources = Rc::new(RefCell::new(calibrate::Resources::default()));
        let subs = build_subs(&graph, focus, &mut vec![focus], &resources)?;
        Interpreter::single(graph, subs, resources, true)
    }

    /// The interpreter of the graph's focused subgraph, given those of the subgraphs it runs.
    fn single(
        graph: Graph,
        subs: BTreeMap<usize, Interpreter>,
        resources: Rc<RefCell<calibrate::Resources>>,
        top: bool,
    ) -> Result<Interpreter, InterpError> {
        let n = graph.tensors().len();
        let n_codes = graph.model.operator_codes.as_ref().map_or(0, Vec::len);
        let check = |t: i32, what: String| -> Result<(), InterpError> {
            if t >= -1 && (t as i64) < n as i64 {
                Ok(())
            } else {
                Err(InterpError::Model(format!(
                    "{what} refers to tensor {t} but the subgraph has {n}"
                )))
            }
        };
        for (i, op) in graph.ops().iter().enumerate() {
            if op.opcode_index as usize >= n_codes {
                return Err(InterpError::Model(format!(
                    "op #{i} uses operator code {} but the model has {n_codes}",
                    op.opcode_index
                )));
            }
            for &t in op.inputs.as_deref().unwrap_or(&[]) {
                check(t, format!("op #{i}'s input"))?;
            }
            for &t in op.outputs.as_deref().unwrap_or(&[]) {
                check(t, format!("op #{i}'s output"))?;
                if t < 0 {
                    return Err(InterpError::Model(format!("op #{i} has an omitted output")));
                }
            }
        }
        for &t in graph
            .main()
            .inputs
            .iter()
            .chain(graph.main().outputs.iter())
            .flatten()
        {
            check(t, "a model input or output".into())?;
            if t < 0 {
                return Err(InterpError::Model("a model input or output is -1".into()));
            }
        }
        let mut constants = Vec::with_capacity(n);
        for t in 0..n {
            let id = TensorId(t);
            constants.push(match graph.buffer_data(id) {
                // A variable tensor without data (a recurrent op's state) starts every invoke at zero, as
                // after LiteRT's `reset_all_variables()`.
                None if graph.tensor(id).is_variable => Some(zero_state(&graph, id)?),
                None => None,
                Some(bytes) => {
                    let tensor = graph.tensor(id);
                    let shape =
                        static_shape(tensor.shape.as_deref().unwrap_or(&[])).map_err(|e| {
                            InterpError::Model(format!(
                                "tensor {t} ({:?}): {e}",
                                graph.tensor_name(id)
                            ))
                        })?;
                    Some(decode(bytes, shape, tensor.type_).map_err(|e| {
                        InterpError::Model(format!(
                            "constant tensor {t} ({:?}): {e}",
                            graph.tensor_name(id)
                        ))
                    })?)
                }
            });
        }
        let mut interp = Interpreter {
            inputs: graph.inputs(),
            outputs: graph.outputs(),
            kernels: Registry::with_all_ops(),
            float_kernels: calibrate::Registry::with_all_ops(),
            values: vec![None; n],
            float_constants: vec![None; n],
            caches: (0..graph.ops().len()).map(|_| OpCache::default()).collect(),
            plans: Vec::new(),
            constants,
            graph,
            subs: RefCell::new(subs),
            resources,
            top,
        };
        interp.plans = (0..interp.graph.ops().len())
            .map(OpIndex)
            .map(|op| OpPlan {
                path: interp.kernel_for(op),
                inputs: interp.graph.op_inputs(op),
                outputs: interp.graph.op_outputs(op),
            })
            .collect();
        interp.convert_float_constants();
        let missing: Vec<OpLocation> = (0..interp.graph.ops().len())
            .map(OpIndex)
            .filter(|&op| interp.plans[op.0].path.is_none())
            .map(|op| interp.location(op))
            .collect();
        if !missing.is_empty() {
            return Err(InterpError::Unsupported { ops: missing });
        }
        Ok(interp)
    }

    /// Converts the constants that float ops read for their kernels once ([`Self::float_constants`]); one
    /// that cannot be converted is left to fail when its op runs.
    fn convert_float_constants(&mut self) {
        for plan in self
            .plans
            .iter()
            .filter(|p| matches!(p.path, Some(Path::Float)))
        {
            for &t in plan.inputs.iter().flatten() {
                if let (Some(c), None) = (&self.constants[t.0], &self.float_constants[t.0]) {
                    self.float_constants[t.0] = to_value(c).ok();
                }
            }
        }
    }

    /// The model as a graph (tensor names, quantization, ops).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Number of model inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Number of model outputs.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Name, shape, type and quantization of every model input.
    pub fn inputs(&self) -> Vec<TensorInfo> {
        self.inputs.iter().map(|&t| self.tensor_info(t)).collect()
    }

    /// Name, shape, type and quantization of every model output.
    pub fn outputs(&self) -> Vec<TensorInfo> {
        self.outputs.iter().map(|&t| self.tensor_info(t)).collect()
    }

    /// Name, shape, type and quantization of any tensor of the main subgraph (ids from [`graph`](Self::graph)).
    pub fn tensor_info(&self, id: TensorId) -> TensorInfo {
        let t = self.graph.tensor(id);
        TensorInfo {
            id,
            name: self.graph.tensor_name(id).to_string(),
            shape: t
                .shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect(),
            dtype: t.type_,
            quant: QuantParams::of(t),
        }
    }

    /// Sets input `index`; the tensor must have the input's type and shape.
    pub fn set_input(&mut self, index: usize, tensor: Tensor) -> Result<(), InterpError> {
        let info = self.input_info(index)?;
        let fail = |message: String| InterpError::Input {
            index,
            name: info.name.clone(),
            message,
        };
        if tensor.tensor_type() != info.dtype {
            return Err(fail(format!(
                "got {}, the model expects {}",
                crate::tflite::type_name(tensor.tensor_type()),
                info.type_name()
            )));
        }
        if tensor.shape != info.shape || tensor.shape.iter().product::<usize>() != tensor.len() {
            return Err(fail(format!(
                "got shape {:?} with {} elements, the model expects {:?}",
                tensor.shape,
                tensor.len(),
                info.shape
            )));
        }
        self.values[info.id.0] = Some(tensor);
        Ok(())
    }

    /// Sets input `index` from real values: as is for a float input, quantized with the input's parameters
    /// (round half away from zero, clamped) for an integer one.
    pub fn set_input_f32(&mut self, index: usize, values: &[f32]) -> Result<(), InterpError> {
        let info = self.input_info(index)?;
        let data = match (info.dtype, &info.quant) {
            (fb::TensorType::FLOAT32, _) => TensorData::F32(values.to_vec()),
            (t, Some(q)) => {
                let (lo, hi) = match t {
                    fb::TensorType::INT8 => (-128, 127),
                    fb::TensorType::UINT8 => (0, 255),
                    fb::TensorType::INT16 => (-32768, 32767),
                    _ => (i32::MIN, i32::MAX),
                };
                let codes: Vec<i32> = values
                    .iter()
                    .map(|&v| {
                        ((v / q.scale0()).round() as i32)
                            .saturating_add(q.zero_point0())
                            .clamp(lo, hi)
                    })
                    .collect();
                match t {
                    fb::TensorType::INT8 => {
                        TensorData::I8(codes.into_iter().map(|c| c as i8).collect())
                    }
                    fb::TensorType::UINT8 => {
                        TensorData::U8(codes.into_iter().map(|c| c as u8).collect())
                    }
                    fb::TensorType::INT16 => {
                        TensorData::I16(codes.into_iter().map(|c| c as i16).collect())
                    }
                    _ => TensorData::I32(codes),
                }
            }
            (t, None) => {
                return Err(InterpError::Input {
                    index,
                    name: info.name,
                    message: format!(
                        "a {} input without quantization cannot take real values",
                        crate::tflite::type_name(t)
                    ),
                })
            }
        };
        self.set_input(
            index,
            Tensor {
                shape: info.shape,
                data,
            },
        )
    }

    fn input_info(&self, index: usize) -> Result<TensorInfo, InterpError> {
        self.inputs
            .get(index)
            .map(|&t| self.tensor_info(t))
            .ok_or_else(|| InterpError::Input {
                index,
                name: String::new(),
                message: format!("the model has {} input(s)", self.inputs.len()),
            })
    }

    /// Runs every op on the inputs set so far. Every tensor's value is kept until the next `invoke`.
    pub fn invoke(&mut self) -> Result<(), InterpError> {
        self.invoke_with(&mut |_, _| {})
    }

    /// Like [`invoke`](Self::invoke), calling `observe` with every op output as it is computed (model inputs
    /// first), in execution order.
    pub fn invoke_with(
        &mut self,
        observe: &mut dyn FnMut(TensorId, &Tensor),
    ) -> Result<(), InterpError> {
        self.invoke_reusing(&[], Vec::new(), observe)
    }

    /// Like [`invoke_with`](Self::invoke_with), without running the ops flagged in `skip` (op order; a
    /// shorter slice runs the rest): `reused` gives the values of their outputs that a later op or the
    /// caller reads, computed earlier by an op that computes the same. Only computed outputs are observed.
    pub(crate) fn invoke_reusing(
        &mut self,
        skip: &[bool],
        reused: Vec<(TensorId, Tensor)>,
        observe: &mut dyn FnMut(TensorId, &Tensor),
    ) -> Result<(), InterpError> {
        for (index, &t) in self.inputs.iter().enumerate() {
            match &self.values[t.0] {
                Some(v) => observe(t, v),
                None => {
                    return Err(InterpError::MissingInput {
                        index,
                        name: self.graph.tensor_name(t).to_string(),
                    })
                }
            }
        }
        if self.top {
            self.resources.borrow_mut().clear();
        }
        for (t, v) in self.values.iter_mut().enumerate() {
            if !self.inputs.contains(&TensorId(t)) {
                *v = None;
            }
        }
        for (t, v) in reused {
            if let Some(slot) = self.values.get_mut(t.0) {
                *slot = Some(v);
            }
        }
        for i in 0..self.graph.ops().len() {
            if skip.get(i).copied().unwrap_or(false) {
                continue;
            }
            let op = OpIndex(i);
            let args: Vec<Option<&Tensor>> = self.plans[i]
                .inputs
                .iter()
                .map(|&t| match t {
                    None => Ok(None),
                    Some(t) => self.value(t).map(Some).ok_or_else(|| {
                        InterpError::Model(format!(
                            "{} reads tensor {} ({:?}) before anything writes it",
                            self.location(op),
                            t.0,
                            self.graph.tensor_name(t)
                        ))
                    }),
                })
                .collect::<Result<_, _>>()?;
            let outs = self.eval_with(op, &args, self.caches.get(i))?;
            for (&t, v) in self.plans[i].outputs.iter().zip(outs) {
                observe(t, &v);
                self.values[t.0] = Some(v);
            }
        }
        Ok(())
    }

    /// Runs a WHILE, IF or CALL_ONCE on its input values through the interpreters of its subgraphs.
    fn run_control(
        &self,
        op: OpIndex,
        args: &[Option<&Tensor>],
    ) -> Result<Vec<Tensor>, InterpError> {
        let location = self.location(op);
        let fail = |message: String| InterpError::Kernel {
            op: location.clone(),
            message,
        };
        let code = self.graph.op_code(op);
        let called = self.graph.called_subgraphs(op);
        let values: Vec<Tensor> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.cloned()
                    .ok_or_else(|| fail(format!("input {i} is omitted")))
            })
            .collect::<Result<_, _>>()?;
        let truth = |t: Option<&Tensor>, what: &str| -> Result<bool, InterpError> {
            match t.map(|t| &t.data) {
                Some(TensorData::Bool(v)) if v.len() == 1 => Ok(v[0]),
                Some(TensorData::I32(v)) if v.len() == 1 => Ok(v[0] != 0),
                _ => Err(fail(format!("{what} must be a one-element BOOL"))),
            }
        };
        let outs = match (code, called.as_slice()) {
            (fb::BuiltinOperator::WHILE, &[cond, body]) => {
                let mut vars = values;
                let mut done = false;
                for _ in 0..crate::calibrate::ops::control::MAX_ITERATIONS {
                    let c = self.test(cond, &mut vars)?;
                    if !truth(c.first(), "the WHILE condition's output")? {
                        done = true;
                        break;
                    }
                    vars = self.call(body, vars)?;
                }
                if !done {
                    return Err(fail("the loop did not end".into()));
                }
                vars
            }
            (fb::BuiltinOperator::IF, &[then, otherwise]) => {
                let branch = if truth(values.first(), "the IF predicate")? {
                    then
                } else {
                    otherwise
                };
                self.call(branch, values.into_iter().skip(1).collect())?
            }
            (fb::BuiltinOperator::CALL_ONCE, &[init]) => {
                self.call(init, Vec::new())?;
                Vec::new()
            }
            _ => return Err(fail("its options name no subgraph to run".into())),
        };
        let declared = self.graph.op_outputs(op);
        if outs.len() != declared.len() {
            return Err(fail(format!(
                "its subgraph returned {} value(s), the op declares {} output(s)",
                outs.len(),
                declared.len()
            )));
        }
        Ok(outs)
    }

    /// Runs subgraph `s` (one this one runs) on `inputs`; returns its outputs, moved out of its state.
    fn call(&self, s: usize, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InterpError> {
        let mut subs = self.subs.borrow_mut();
        let sub = subs
            .get_mut(&s)
            .ok_or_else(|| InterpError::Model(format!("subgraph {s} was not prepared")))?;
        sub.run_on(s, inputs)?;
        sub.take_outputs(s)
    }

    /// Runs subgraph `s` on `vars` and hands them back unchanged (a WHILE's condition reads the loop
    /// variables without consuming them); returns copies of its outputs.
    fn test(&self, s: usize, vars: &mut Vec<Tensor>) -> Result<Vec<Tensor>, InterpError> {
        let mut subs = self.subs.borrow_mut();
        let sub = subs
            .get_mut(&s)
            .ok_or_else(|| InterpError::Model(format!("subgraph {s} was not prepared")))?;
        sub.run_on(s, std::mem::take(vars))?;
        let outs = sub
            .outputs
            .iter()
            .map(|&t| sub.output_value(s, t).cloned())
            .collect::<Result<_, _>>()?;
        for &id in &sub.inputs {
            vars.extend(sub.values[id.0].take());
        }
        Ok(outs)
    }

    /// Sets this subgraph's inputs to `inputs` (checking their types) and runs it.
    fn run_on(&mut self, s: usize, inputs: Vec<Tensor>) -> Result<(), InterpError> {
        if inputs.len() != self.inputs.len() {
            return Err(InterpError::Model(format!(
                "subgraph {s} has {} input(s) but is given {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (k, (&id, v)) in self.inputs.iter().zip(inputs).enumerate() {
            let want = self.graph.tensor(id).type_;
            if v.tensor_type() != want {
                return Err(InterpError::Model(format!(
                    "subgraph {s} input {k} is {}, given {}",
                    crate::tflite::type_name(want),
                    crate::tflite::type_name(v.tensor_type())
                )));
            }
            self.values[id.0] = Some(v);
        }
        self.invoke()
            .map_err(|e| InterpError::Model(format!("in subgraph {s}: {e}")))
    }

    /// The value of output tensor `t` of subgraph `s` after a run.
    fn output_value(&self, s: usize, t: TensorId) -> Result<&Tensor, InterpError> {
        self.value(t)
            .ok_or_else(|| InterpError::Model(format!("subgraph {s} output {t:?} has no value")))
    }

    /// Moves this subgraph's outputs out of its state after a run (its state is scratch); copies those that
    /// are constants or that another output repeats.
    fn take_outputs(&mut self, s: usize) -> Result<Vec<Tensor>, InterpError> {
        let mut outs = Vec::with_capacity(self.outputs.len());
        for (k, &t) in self.outputs.iter().enumerate() {
            let repeated = self.outputs[k + 1..].contains(&t);
            let moved = match self.values.get_mut(t.0) {
                Some(slot) if !repeated => slot.take(),
                _ => None,
            };
            outs.push(match moved {
                Some(v) => v,
                None => self.output_value(s, t)?.clone(),
            });
        }
        Ok(outs)
    }

    /// Output `index` after [`invoke`](Self::invoke).
    pub fn output(&self, index: usize) -> Option<&Tensor> {
        self.outputs.get(index).and_then(|&t| self.value(t))
    }

    /// Output `index` as real values (dequantized when it is an integer tensor).
    pub fn output_f32(&self, index: usize) -> Result<Vec<f32>, InterpError> {
        let &t = self.outputs.get(index).ok_or_else(|| {
            InterpError::Model(format!(
                "the model has {} output(s), not {}",
                self.outputs.len(),
                index + 1
            ))
        })?;
        let v = self.value(t).ok_or_else(|| {
            InterpError::Model(format!("output {index} has no value: call invoke() first"))
        })?;
        Ok(v.to_real(QuantParams::of(self.graph.tensor(t)).as_ref()))
    }

    /// Any tensor's value after [`invoke`](Self::invoke): constants, inputs and every op output.
    pub fn tensor(&self, id: TensorId) -> Option<&Tensor> {
        self.value(id)
    }

    /// Moves an op output's value out after [`invoke`](Self::invoke) (`None` for constants and inputs).
    pub(crate) fn take_tensor(&mut self, id: TensorId) -> Option<Tensor> {
        if self.inputs.contains(&id) {
            return None;
        }
        self.values.get_mut(id.0).and_then(Option::take)
    }

    fn value(&self, id: TensorId) -> Option<&Tensor> {
        self.constants
            .get(id.0)
            .and_then(Option::as_ref)
            .or_else(|| self.values.get(id.0).and_then(Option::as_ref))
    }

    /// Evaluates one op on the given input values (op input order; `None` for omitted optional inputs),
    /// without touching the interpreter's state. For op-by-op parity checks against another runtime.
    pub fn eval_op(
        &self,
        op: OpIndex,
        inputs: &[Option<Tensor>],
    ) -> Result<Vec<Tensor>, InterpError> {
        let inputs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
        self.eval_with(op, &inputs, None)
    }

    /// Evaluates one op on borrowed inputs, with the op's cache when the inputs are the model's own.
    fn eval_with(
        &self,
        op: OpIndex,
        inputs: &[Option<&Tensor>],
        cache: Option<&OpCache>,
    ) -> Result<Vec<Tensor>, InterpError> {
        let plan = self
            .plans
            .get(op.0)
            .ok_or_else(|| InterpError::Model(format!("there is no op #{}", op.0)))?;
        let path = plan.path.ok_or_else(|| InterpError::Unsupported {
            ops: vec![self.location(op)],
        })?;
        let fail = |message: String| InterpError::Kernel {
            op: self.location(op),
            message,
        };
        let outs = match path {
            Path::Control => return self.run_control(op, inputs),
            Path::Float => self.eval_float(op, inputs, cache.is_some()).map_err(fail)?,
            Path::Integer(kernel) | Path::Hybrid(kernel) => {
                let ctx = OpCtx {
                    graph: &self.graph,
                    op,
                    inputs,
                    input_ids: &plan.inputs,
                    output_ids: &plan.outputs,
                    cache,
                };
                kernel(&ctx).map_err(fail)?
            }
        };
        let declared = &plan.outputs;
        if outs.len() != declared.len() {
            return Err(fail(format!(
                "the kernel produced {} output(s), the op declares {}",
                outs.len(),
                declared.len()
            )));
        }
        for (t, v) in declared.iter().zip(&outs) {
            let want = self.graph.tensor(*t).type_;
            // A resource handle is an INT32 scalar here.
            let handle =
                want == fb::TensorType::RESOURCE && v.tensor_type() == fb::TensorType::INT32;
            if v.tensor_type() != want && !handle {
                return Err(fail(format!(
                    "the kernel produced {} for output {:?}, declared {}",
                    crate::tflite::type_name(v.tensor_type()),
                    self.graph.tensor_name(*t),
                    crate::tflite::type_name(want)
                )));
            }
        }
        Ok(outs)
    }

    /// Which kernel runs an op, decided by its code and its tensors' types; `None` when none can.
    fn kernel_for(&self, op: OpIndex) -> Option<Path> {
        use fb::TensorType as T;
        let code = self.graph.op_code(op);
        if is_control(code) {
            return Some(Path::Control);
        }
        let type_of = |t: Option<TensorId>| t.map(|t| self.graph.tensor(t).type_);
        let ins = self.graph.op_inputs(op);
        let quantized =
            |t: Option<T>| matches!(t, Some(T::INT8 | T::UINT8 | T::INT16 | T::FLOAT16));
        let first = type_of(ins.first().copied().flatten());
        let second = type_of(ins.get(1).copied().flatten());
        let out_types: Vec<T> = self
            .graph
            .op_outputs(op)
            .into_iter()
            .map(|t| self.graph.tensor(t).type_)
            .collect();
        let outs_quantized = out_types.iter().any(|&t| quantized(Some(t)));
        // int16 activations (int16x8) take the op's int16 kernel; int8 and uint8 ones its int8 kernel.
        let int16 = ins
            .iter()
            .map(|&t| type_of(t))
            .chain(out_types.iter().map(|&t| Some(t)))
            .any(|t| t == Some(T::INT16));
        let integer = || self.kernels.get_integer(code, int16).map(Path::Integer);
        if matches!(
            code,
            fb::BuiltinOperator::QUANTIZE | fb::BuiltinOperator::DEQUANTIZE
        ) {
            return integer();
        }
        let any_quantized_input = ins.iter().any(|&t| quantized(type_of(t)));
        // A hybrid op: float activations, quantized weights (a CIFG LSTM omits input 1).
        let hybrid_weights = quantized(second) || (second.is_none() && any_quantized_input);
        if first == Some(T::FLOAT32) && hybrid_weights && !outs_quantized {
            return self.kernels.get_hybrid(code).map(Path::Hybrid);
        }
        if quantized(first) || outs_quantized {
            return integer();
        }
        if any_quantized_input {
            return None;
        }
        self.float_kernels.get(code).map(|_| Path::Float)
    }

    /// A float op through litequant's float kernels; `own`: the inputs are the model's tensors (its
    /// constants are read as converted once).
    fn eval_float(
        &self,
        op: OpIndex,
        inputs: &[Option<&Tensor>],
        own: bool,
    ) -> Result<Vec<Tensor>, String> {
        let kernel = self
            .float_kernels
            .get(self.graph.op_code(op))
            .ok_or("no float kernel")?;
        let ids = &self.plans[op.0].inputs;
        let constant = |i: usize| -> Option<&Value> {
            let t = ids.get(i).copied().flatten().filter(|_| own)?;
            self.float_constants.get(t.0)?.as_ref()
        };
        let values: Vec<Option<Value>> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| match constant(i) {
                Some(_) => Ok(None),
                None => t.map(to_value).transpose(),
            })
            .collect::<Result<_, _>>()?;
        let attached = Attached {
            resources: &self.resources,
        };
        let ctx = calibrate::OpContext {
            graph: &self.graph,
            op,
            inputs: values
                .iter()
                .enumerate()
                .map(|(i, v)| constant(i).or(v.as_ref()))
                .collect(),
            calls: Some(&attached),
        };
        let mut outs = kernel(&ctx).map_err(|e| e.to_string())?;
        // A kernel returns the values of recorded intermediates after the outputs (for calibration).
        outs.truncate(self.graph.op_outputs(op).len());
        outs.into_iter().map(from_value).collect()
    }

    fn location(&self, op: OpIndex) -> OpLocation {
        let output = self
            .graph
            .op_outputs(op)
            .first()
            .map(|&t| self.graph.tensor_name(t).to_string())
            .unwrap_or_default();
        OpLocation {
            index: op.0,
            op: self.graph.op_type_name(op),
            output,
        }
    }
}

/// The reset value of a variable tensor: zero, i.e. its zero point when it is quantized.
fn zero_state(graph: &Graph, id: TensorId) -> Result<Tensor, InterpError> {
    let tensor = graph.tensor(id);
    let err = |e: String| {
        InterpError::Model(format!(
            "variable tensor {} ({:?}): {e}",
            id.0,
            graph.tensor_name(id)
        ))
    };
    let shape = static_shape(tensor.shape.as_deref().unwrap_or(&[])).map_err(err)?;
    let count: usize = shape.iter().product();
    let zp = QuantParams::of(tensor).map_or(0, |q| q.zero_point.first().copied().unwrap_or(0));
    use fb::TensorType as T;
    let bytes = match tensor.type_ {
        T::INT8 | T::UINT8 => vec![zp as u8; count],
        T::INT64 => vec![0u8; count * 8],
        T::FLOAT32 | T::INT32 => vec![0u8; count * 4],
        T::INT16 | T::FLOAT16 => vec![0u8; count * 2],
        _ => vec![0u8; count],
    };
    decode(&bytes, shape, tensor.type_).map_err(err)
}

fn static_shape(dims: &[i32]) -> Result<Vec<usize>, String> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("constant with a negative dimension {d}")))
        .collect()
}

fn to_value(t: &Tensor) -> Result<Value, String> {
    let shape = IxDyn(&t.shape);
    let err = |e: ndarray::ShapeError| e.to_string();
    Ok(match &t.data {
        TensorData::F32(v) => Value::F32(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::F16(v) => Value::F32(
            ArrayD::from_shape_vec(shape, v.iter().map(|x| x.to_f32()).collect()).map_err(err)?,
        ),
        TensorData::I32(v) => Value::I32(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::I64(v) => Value::I64(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        TensorData::Bool(v) => Value::Bool(ArrayD::from_shape_vec(shape, v.clone()).map_err(err)?),
        other => {
            return Err(format!(
                "a float op cannot read {}",
                crate::tflite::type_name(other.tensor_type())
            ))
        }
    })
}

fn from_value(v: Value) -> Result<Tensor, String> {
    let shape = v.shape().to_vec();
    let data = match v {
        Value::F32(a) => TensorData::F32(row_major(a)),
        Value::I32(a) => TensorData::I32(row_major(a)),
        Value::I64(a) => TensorData::I64(row_major(a)),
        Value::Bool(a) => TensorData::Bool(row_major(a)),
    };
    Tensor::new(shape, data)
}

/// An array's elements in row-major order: its own vector when it holds them contiguously in that order.
fn row_major<T: Clone>(a: ArrayD<T>) -> Vec<T> {
    if !a.is_standard_layout() {
        return a.iter().cloned().collect();
    }
    let len = a.len();
    let (mut v, offset) = a.into_raw_vec_and_offset();
    let start = offset.unwrap_or(0).min(v.len());
    v.truncate(start + len);
    v.drain(..start);
    v
}
