//! The float reference interpreter: runs a float model one sample at a time, its main subgraph and every
//! subgraph a control-flow op (WHILE, IF, CALL_ONCE) calls.
//!
//! Everything that can be decided once per model is decided in [`FloatInterpreter::new`]: every op has a
//! kernel, every tensor an op reads exists by the time the op runs, constants are decoded, and each
//! activation is freed right after its last reader. [`FloatInterpreter::run`] then only evaluates kernels.
//!
//! Tensors are observed by a **flat id**: subgraph `s`'s tensor `t` is `TensorId(offset(s) + t)`, where the
//! main subgraph's offset is 0 (so a one-subgraph model's ids are its tensor indices) and each further
//! subgraph follows the previous one's tensors.

use super::ops::quantize_ops::{affine_params, dequantize_codes};
use super::ops::reshape_target;
use super::{
    CalibError, Kernel, KernelError, OpContext, OpLocation, Registry, Resources, SubgraphCalls,
    Value,
};
use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::{self, fb};
use ndarray::{ArrayD, IxDyn};
use std::cell::RefCell;

/// Runs a float model on one sample at a time, reporting every float activation of every subgraph.
///
/// The interpreter borrows the graph and holds no per-run state, so one instance serves every worker thread.
pub struct FloatInterpreter<'g> {
    graph: &'g Graph,
    /// One program per subgraph, the main one first.
    programs: Vec<Program<'g>>,
    /// Flat id of each subgraph's tensor 0.
    offsets: Vec<usize>,
    inputs: Vec<ModelInput>,
    /// Estimated multiply-adds per sample (see [`FloatInterpreter::work_per_sample`]).
    work: usize,
}

/// The main subgraph borrowed, or another subgraph's view owned.
enum GraphRef<'g> {
    Borrowed(&'g Graph),
    Owned(Box<Graph>),
}

impl std::ops::Deref for GraphRef<'_> {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        match self {
            GraphRef::Borrowed(g) => g,
            GraphRef::Owned(g) => g,
        }
    }
}

/// One subgraph, ready to run.
struct Program<'g> {
    graph: GraphRef<'g>,
    steps: Vec<Step>,
    /// Decoded constant of each tensor (by tensor index); `None` for activations.
    constants: Vec<Option<Value>>,
    inputs: Vec<TensorId>,
    outputs: Vec<TensorId>,
    /// Tensors reported to the observer: FLOAT32 and not constant.
    observed: Vec<bool>,
    /// The most inputs any op has (the capacity of the argument list).
    max_inputs: usize,
    work: usize,
}

/// One op, ready to evaluate.
struct Step {
    op: OpIndex,
    /// `None` for an op that is passed through: a custom/Flex op, or an op reading one's output.
    kernel: Option<Kernel>,
    inputs: Vec<Option<TensorId>>,
    outputs: Vec<TensorId>,
    /// Activations nobody reads after this op: dropped once it has run, to keep the working set small.
    release: Vec<TensorId>,
    /// A RESHAPE of an activation nobody reads afterwards: its data is moved into the output, not copied.
    moves_input: bool,
}

/// A model input as the data must feed it.
struct ModelInput {
    name: String,
    shape: Vec<i32>,
    signature: Option<Vec<i32>>,
    dtype: fb::TensorType,
}

/// The observer a sample's run reports every float tensor to, by flat id.
type Observer<'o> = &'o mut dyn FnMut(TensorId, &Value);

/// What a control-flow kernel calls back into: the interpreter and the sample's observer.
struct Calls<'i, 'g, 'o> {
    interp: &'i FloatInterpreter<'g>,
    observe: RefCell<Observer<'o>>,
    /// Subgraphs being run (a subgraph calling itself would never end).
    depth: RefCell<Vec<usize>>,
    /// The sample's resource variables (every sample starts without any).
    resources: RefCell<Resources>,
}

impl SubgraphCalls for Calls<'_, '_, '_> {
    fn call(&self, subgraph: usize, inputs: Vec<Value>) -> Result<Vec<Value>, KernelError> {
        if subgraph == 0 || subgraph >= self.interp.programs.len() {
            return Err(KernelError::Invalid(format!(
                "calls subgraph {subgraph}, but the model's subgraphs are 1..{} (0 is the main one)",
                self.interp.programs.len()
            )));
        }
        if self.depth.borrow().contains(&subgraph) {
            return Err(KernelError::Invalid(format!(
                "subgraph {subgraph} calls itself (recursion is not allowed in TFLite)"
            )));
        }
        self.depth.borrow_mut().push(subgraph);
        let out = self
            .interp
            .evaluate(subgraph, inputs, self)
            .map_err(|e| KernelError::Invalid(format!("in subgraph {subgraph}: {e}")));
        self.depth.borrow_mut().pop();
        out
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

impl<'g> FloatInterpreter<'g> {
    /// Checks every op of every subgraph has a kernel (the error lists each missing one: op type, op index,
    /// first output tensor name) and that every tensor is written before it is read; preloads constants as
    /// values (FLOAT32, INT32, INT64, BOOL; FLOAT16 and quantized integer constants dequantized to float32,
    /// so a DEQUANTIZE of a constant works).
    pub fn new(graph: &'g Graph, registry: &Registry) -> Result<Self, CalibError> {
        Self::build(graph, registry, false)
    }

    /// Like [`new`](Self::new), but custom (and Flex) ops, which no float kernel can run, are passed through
    /// (`SELECT_TF_OPS`): they and every op that depends on them are skipped, their outputs get no value and
    /// are never observed, so quantization keeps them float.
    pub fn new_passing_custom_ops(
        graph: &'g Graph,
        registry: &Registry,
    ) -> Result<Self, CalibError> {
        Self::build(graph, registry, true)
    }

    fn build(graph: &'g Graph, registry: &Registry, pass_custom: bool) -> Result<Self, CalibError> {
        let n_sub = graph.subgraph_count().max(1);
        let mut programs = Vec::with_capacity(n_sub);
        let mut offsets = Vec::with_capacity(n_sub);
        let mut next = 0usize;
        let mut missing = Vec::new();
        for s in 0..n_sub {
            let g = if s == graph.focused() {
                GraphRef::Borrowed(graph)
            } else {
                GraphRef::Owned(Box::new(graph.view(s)))
            };
            offsets.push(next);
            next += g.tensors().len();
            match Program::build(g, registry, pass_custom) {
                Ok(p) => programs.push(p),
                Err(CalibError::UnsupportedOps { ops }) => missing.extend(ops),
                Err(e) => return Err(in_subgraph(s, e)),
            }
        }
        if !missing.is_empty() {
            return Err(CalibError::UnsupportedOps { ops: missing });
        }
        // The focused subgraph runs first: move it to the front (it is 0 unless a caller focused another).
        let main = graph.focused();
        if main != 0 {
            return Err(CalibError::Model(
                "the float interpreter runs a graph focused on its main subgraph".into(),
            ));
        }
        let mut inputs = Vec::new();
        for &id in &programs[0].inputs {
            let t = graph.tensor(id);
            inputs.push(ModelInput {
                name: graph.tensor_name(id).to_string(),
                shape: t.shape.clone().unwrap_or_default(),
                signature: t.shape_signature.clone(),
                dtype: t.type_,
            });
        }
        let work = programs.iter().map(|p| p.work).sum();
        Ok(FloatInterpreter {
            graph,
            programs,
            offsets,
            inputs,
            work,
        })
    }

    /// The graph this interpreter runs.
    pub fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// Number of tensors of all subgraphs (the range of every flat [`TensorId`] passed to `observe`).
    pub fn num_tensors(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
            + self.programs.last().map_or(0, |p| p.constants.len())
    }

    /// Flat id of each subgraph's first tensor (subgraph `s`'s tensor `t` is observed as `offsets[s] + t`).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// A rough count of the multiply-adds one sample costs, from declared shapes: each op's output
    /// elements, times the depth of its constant weights (FULLY_CONNECTED, CONV_2D, ...). For scheduling
    /// only: it decides whether a sample is worth handing to another thread.
    pub fn work_per_sample(&self) -> usize {
        self.work
    }

    /// Whether `observe` is called for this flat id (a FLOAT32 tensor that is not constant).
    pub fn is_observed(&self, id: TensorId) -> bool {
        let s = self
            .offsets
            .partition_point(|&o| o <= id.0)
            .saturating_sub(1);
        self.programs
            .get(s)
            .and_then(|p| p.observed.get(id.0 - self.offsets[s]))
            .copied()
            .unwrap_or(false)
    }

    /// Runs one sample (one f32 array per model input, model input order, shaped as the input).
    ///
    /// `observe` is called for every FLOAT32 non-constant tensor value (model inputs and every op output,
    /// in every subgraph a control-flow op runs, at every iteration), by flat id, in execution order.
    /// Returns the model outputs in model output order.
    pub fn run(
        &self,
        inputs: &[ArrayD<f32>],
        observe: &mut dyn FnMut(TensorId, &Value),
    ) -> Result<Vec<Value>, CalibError> {
        let values = self.main_values(inputs)?;
        let calls = Calls {
            interp: self,
            observe: RefCell::new(observe),
            depth: RefCell::new(Vec::new()),
            resources: RefCell::new(Resources::default()),
        };
        self.evaluate(0, values, &calls)
    }

    /// Runs one sample for its observations only: passed-through ops leave their outputs without a value.
    pub fn observe_sample(
        &self,
        inputs: &[ArrayD<f32>],
        observe: &mut dyn FnMut(TensorId, &Value),
    ) -> Result<(), CalibError> {
        let values = self.main_values(inputs)?;
        let calls = Calls {
            interp: self,
            observe: RefCell::new(observe),
            depth: RefCell::new(Vec::new()),
            resources: RefCell::new(Resources::default()),
        };
        self.run_steps(0, values, &calls, false).map(|_| ())
    }

    /// The decoded constant of main-subgraph tensor `t`, or `None` for an activation.
    pub fn constant(&self, t: TensorId) -> Option<&Value> {
        self.programs.first()?.constants.get(t.0)?.as_ref()
    }

    /// Every value one sample gives the main subgraph's tensors, by tensor index, none released: the base
    /// [`rerun_from`](Self::rerun_from) starts from.
    pub fn values(&self, inputs: &[ArrayD<f32>]) -> Result<Vec<Option<Value>>, CalibError> {
        let values = self.main_values(inputs)?;
        let mut ignore = |_: TensorId, _: &Value| {};
        let calls = self.calls(&mut ignore);
        self.run_steps(0, values, &calls, true)
    }

    /// The values of main-subgraph tensors `wanted` when tensor `tensor` holds `value` instead of its value
    /// in `base` (from [`values`](Self::values)): only the ops that depend on it run again.
    pub fn rerun_from(
        &self,
        base: &[Option<Value>],
        tensor: TensorId,
        value: Value,
        wanted: &[TensorId],
    ) -> Result<Vec<Value>, CalibError> {
        let p = &self.programs[0];
        let mut ignore = |_: TensorId, _: &Value| {};
        let calls = self.calls(&mut ignore);
        let n = p.constants.len();
        let mut changed: Vec<Option<Value>> = vec![None; n];
        let mut dirty = vec![false; n];
        if tensor.0 >= n {
            return Err(CalibError::Model(format!(
                "tensor {} is not in the main subgraph",
                tensor.0
            )));
        }
        dirty[tensor.0] = true;
        changed[tensor.0] = Some(value);
        let value_of = |t: TensorId, changed: &[Option<Value>]| -> Option<Value> {
            changed[t.0]
                .as_ref()
                .or(p.constants[t.0].as_ref())
                .or(base.get(t.0).and_then(Option::as_ref))
                .cloned()
        };
        for step in &p.steps {
            let Some(kernel) = step.kernel else { continue };
            if !step.inputs.iter().flatten().any(|t| dirty[t.0]) {
                continue;
            }
            let outs = {
                let mut args = Vec::with_capacity(step.inputs.len());
                for t in &step.inputs {
                    args.push(match t {
                        None => None,
                        Some(t) if changed[t.0].is_some() => changed[t.0].as_ref(),
                        Some(t) => {
                            let v = p.constants[t.0]
                                .as_ref()
                                .or(base.get(t.0).and_then(Option::as_ref));
                            Some(v.ok_or_else(|| {
                                CalibError::Model(format!(
                                    "{} reads tensor {} which holds no value",
                                    location(&p.graph, step.op),
                                    t.0
                                ))
                            })?)
                        }
                    });
                }
                let ctx = OpContext {
                    graph: &p.graph,
                    op: step.op,
                    inputs: args,
                    calls: Some(&calls),
                };
                kernel(&ctx).map_err(|source| p.kernel_error(step.op, source))?
            };
            for (&t, v) in step.outputs.iter().zip(outs) {
                dirty[t.0] = true;
                changed[t.0] = Some(v);
            }
        }
        wanted
            .iter()
            .map(|&t| {
                value_of(t, &changed).ok_or_else(|| {
                    CalibError::Model(format!("tensor {:?} has no value", p.graph.tensor_name(t)))
                })
            })
            .collect()
    }

    fn calls<'i, 'o>(&'i self, observe: Observer<'o>) -> Calls<'i, 'g, 'o> {
        Calls {
            interp: self,
            observe: RefCell::new(observe),
            depth: RefCell::new(Vec::new()),
            resources: RefCell::new(Resources::default()),
        }
    }

    /// The sample's arrays as the main subgraph's input values.
    fn main_values(&self, inputs: &[ArrayD<f32>]) -> Result<Vec<Value>, CalibError> {
        if inputs.len() != self.inputs.len() {
            return Err(CalibError::Data {
                sample: None,
                message: format!(
                    "the model has {} input(s) but {} array(s) were given",
                    self.inputs.len(),
                    inputs.len()
                ),
            });
        }
        self.inputs
            .iter()
            .zip(inputs)
            .map(|(spec, data)| input_value(spec, data))
            .collect()
    }

    /// Runs subgraph `s` on its input values; returns its outputs.
    fn evaluate(
        &self,
        s: usize,
        inputs: Vec<Value>,
        calls: &Calls<'_, 'g, '_>,
    ) -> Result<Vec<Value>, CalibError> {
        let p = &self.programs[s];
        let mut values = self.run_steps(s, inputs, calls, false)?;
        p.outputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // The last mention of a tensor among the outputs takes its value; earlier ones copy it.
                let last = p.outputs[i + 1..].iter().all(|u| u != t);
                let value = match values.get_mut(t.0) {
                    Some(v) if last => v.take(),
                    Some(v) => v.clone(),
                    None => None,
                };
                value.or_else(|| p.constants[t.0].clone()).ok_or_else(|| {
                    CalibError::Model(format!(
                        "output {:?} has no value (never written, or computed by a passed-through custom op)",
                        p.graph.tensor_name(*t)
                    ))
                })
            })
            .collect()
    }

    /// Evaluates every step of subgraph `s`; returns the values of its outputs (and nothing else:
    /// intermediates are released), or every value with `keep_all`.
    fn run_steps(
        &self,
        s: usize,
        inputs: Vec<Value>,
        calls: &Calls<'_, 'g, '_>,
        keep_all: bool,
    ) -> Result<Vec<Option<Value>>, CalibError> {
        let p = &self.programs[s];
        let offset = self.offsets[s];
        let observe = |t: TensorId, v: &Value| {
            if p.observed[t.0] {
                (calls.observe.borrow_mut())(TensorId(offset + t.0), v);
            }
        };
        if inputs.len() != p.inputs.len() {
            return Err(CalibError::Model(format!(
                "subgraph {s} has {} input(s) but is given {}",
                p.inputs.len(),
                inputs.len()
            )));
        }
        let mut values: Vec<Option<Value>> = (0..p.constants.len()).map(|_| None).collect();
        for (&id, v) in p.inputs.iter().zip(inputs) {
            observe(id, &v);
            values[id.0] = Some(v);
        }
        // One argument list for every step: its allocation is recycled instead of made per op.
        let mut spare: Vec<Option<&Value>> = Vec::with_capacity(p.max_inputs);
        for step in &p.steps {
            let Some(kernel) = step.kernel else { continue };
            let outs = {
                let mut args = recycle(std::mem::take(&mut spare));
                for t in &step.inputs {
                    let Some(t) = t else {
                        args.push(None);
                        continue;
                    };
                    let v = p.constants[t.0]
                        .as_ref()
                        .or(values[t.0].as_ref())
                        .ok_or_else(|| {
                            CalibError::Model(format!(
                                "{} reads tensor {} ({:?}) which holds no value",
                                location(&p.graph, step.op),
                                t.0,
                                p.graph.tensor_name(*t)
                            ))
                        })?;
                    args.push(Some(v));
                }
                let ctx = OpContext {
                    graph: &p.graph,
                    op: step.op,
                    inputs: args,
                    calls: Some(calls),
                };
                if step.moves_input && !keep_all {
                    let shape =
                        reshape_target(&ctx).map_err(|source| p.kernel_error(step.op, source))?;
                    spare = recycle(ctx.inputs);
                    let moved = step
                        .inputs
                        .first()
                        .copied()
                        .flatten()
                        .and_then(|t| values[t.0].take())
                        .ok_or_else(|| {
                            let msg = "internal: the reshaped input holds no value".to_string();
                            p.kernel_error(step.op, KernelError::Invalid(msg))
                        })?;
                    vec![into_shape(moved, &shape)
                        .map_err(|source| p.kernel_error(step.op, source))?]
                } else {
                    let outs = kernel(&ctx).map_err(|source| p.kernel_error(step.op, source))?;
                    spare = recycle(ctx.inputs);
                    outs
                }
            };
            if outs.len() != step.outputs.len() {
                let msg = format!(
                    "the kernel produced {} output(s), the op declares {}",
                    outs.len(),
                    step.outputs.len()
                );
                return Err(p.kernel_error(step.op, KernelError::Invalid(msg)));
            }
            for (&t, v) in step.outputs.iter().zip(outs) {
                let declared = p.graph.tensor(t).type_;
                if !holds(declared, &v) {
                    let msg = format!(
                        "the kernel produced {} for output {:?}, declared {}",
                        v.type_name(),
                        p.graph.tensor_name(t),
                        tflite::type_name(declared)
                    );
                    return Err(p.kernel_error(step.op, KernelError::Invalid(msg)));
                }
                observe(t, &v);
                values[t.0] = Some(v);
            }
            if !keep_all {
                for t in &step.release {
                    values[t.0] = None;
                }
            }
        }
        Ok(values)
    }
}

/// An error inside subgraph `s` (> 0) says so.
fn in_subgraph(s: usize, e: CalibError) -> CalibError {
    match e {
        CalibError::Model(m) if s > 0 => CalibError::Model(format!("subgraph {s}: {m}")),
        other => other,
    }
}

impl<'g> Program<'g> {
    fn build(
        graph: GraphRef<'g>,
        registry: &Registry,
        pass_custom: bool,
    ) -> Result<Self, CalibError> {
        let tensors = graph.tensors();
        let n = tensors.len();
        let n_codes = graph.model.operator_codes.as_ref().map_or(0, Vec::len);
        let in_range = |t: TensorId, what: &str| -> Result<TensorId, CalibError> {
            if t.0 < n {
                Ok(t)
            } else {
                Err(CalibError::Model(format!(
                    "{what} refers to tensor {} but the subgraph has {n}",
                    t.0
                )))
            }
        };

        // Kernels first: the most useful error lists every op the interpreter cannot run.
        let mut kernels = Vec::with_capacity(graph.ops().len());
        let mut missing = Vec::new();
        for (i, op) in graph.ops().iter().enumerate() {
            if op.opcode_index as usize >= n_codes {
                return Err(CalibError::Model(format!(
                    "op #{i} uses operator code {} but the model has {n_codes}",
                    op.opcode_index
                )));
            }
            for &t in op.outputs.as_deref().unwrap_or(&[]) {
                in_range(TensorId(t.max(0) as usize), &format!("op #{i}'s output"))?;
            }
            let code = graph.op_code(OpIndex(i));
            match registry.get(code) {
                Some(k) => kernels.push(Some(k)),
                None if pass_custom && code == fb::BuiltinOperator::CUSTOM => kernels.push(None),
                None => missing.push(location(&graph, OpIndex(i))),
            }
        }
        if !missing.is_empty() {
            return Err(CalibError::UnsupportedOps { ops: missing });
        }

        let mut constants: Vec<Option<Value>> = Vec::with_capacity(n);
        let mut constant_problems: Vec<Option<String>> = vec![None; n];
        for (t, problem) in constant_problems.iter_mut().enumerate() {
            match load_constant(&graph, TensorId(t)) {
                Ok(v) => constants.push(v),
                Err(e) => {
                    constants.push(None);
                    *problem = Some(e);
                }
            }
        }

        let mut available: Vec<bool> = constants.iter().map(Option::is_some).collect();
        let inputs = graph
            .inputs()
            .into_iter()
            .map(|t| in_range(t, "an input"))
            .collect::<Result<Vec<_>, _>>()?;
        for id in &inputs {
            available[id.0] = true;
        }
        let outputs = graph
            .outputs()
            .into_iter()
            .map(|t| in_range(t, "an output"))
            .collect::<Result<Vec<_>, _>>()?;

        let mut steps = Vec::with_capacity(kernels.len());
        let mut last_read: Vec<Option<usize>> = vec![None; n];
        let mut produced_at: Vec<Option<usize>> = vec![None; n];
        // Tensors written by a passed-through op, directly or through the ops that depend on one.
        let mut passed: Vec<bool> = vec![false; n];
        for (i, kernel) in kernels.into_iter().enumerate() {
            let op = OpIndex(i);
            let op_inputs = graph.op_inputs(op);
            let kernel = kernel.filter(|_| {
                !op_inputs
                    .iter()
                    .flatten()
                    .any(|t| passed.get(t.0).copied().unwrap_or(false))
            });
            for &t in op_inputs.iter().flatten() {
                let t = in_range(t, &format!("op #{i}'s input"))?;
                if !available[t.0] {
                    let why = match &constant_problems[t.0] {
                        Some(problem) => problem.clone(),
                        None => "no earlier op writes it and it is neither an input nor a constant"
                            .into(),
                    };
                    return Err(CalibError::Model(format!(
                        "{} reads tensor {} ({:?}): {why}",
                        location(&graph, op),
                        t.0,
                        graph.tensor_name(t)
                    )));
                }
                last_read[t.0] = Some(i);
            }
            let mut op_outputs = graph.op_outputs(op);
            // Recorded intermediates (a full-integer LSTM's gate values) come after the outputs.
            op_outputs.extend(intermediates(&graph, op));
            for &t in &op_outputs {
                available[t.0] = true;
                produced_at[t.0] = Some(i);
                passed[t.0] = kernel.is_none();
            }
            steps.push(Step {
                op,
                kernel,
                inputs: op_inputs,
                outputs: op_outputs,
                release: Vec::new(),
                moves_input: false,
            });
        }
        let mut keep = vec![false; n];
        for t in &outputs {
            keep[t.0] = true;
        }
        for t in 0..n {
            if keep[t] || constants[t].is_some() {
                continue;
            }
            let when = match (last_read[t], produced_at[t]) {
                (Some(r), Some(p)) => Some(r.max(p)),
                (r, p) => r.or(p),
            };
            if let Some(step) = when.and_then(|s| steps.get_mut(s)) {
                step.release.push(TensorId(t));
            }
        }

        for step in &mut steps {
            let first = step.inputs.first().copied().flatten();
            step.moves_input = step.kernel.is_some()
                && graph.op_code(step.op) == fb::BuiltinOperator::RESHAPE
                && first.is_some_and(|t| {
                    constants[t.0].is_none()
                        && step.release.contains(&t)
                        && !step.outputs.contains(&t)
                });
        }

        let observed = tensors
            .iter()
            .zip(&constants)
            .zip(&passed)
            .map(|((t, c), &p)| t.type_ == fb::TensorType::FLOAT32 && c.is_none() && !p)
            .collect();
        let max_inputs = steps.iter().map(|s| s.inputs.len()).max().unwrap_or(0);
        let work = steps.iter().map(|s| step_work(&graph, s, &constants)).sum();
        Ok(Program {
            graph,
            work,
            max_inputs,
            steps,
            constants,
            inputs,
            outputs,
            observed,
        })
    }

    fn kernel_error(&self, op: OpIndex, source: KernelError) -> CalibError {
        CalibError::Kernel {
            op: location(&self.graph, op),
            sample: None,
            source,
        }
    }
}

/// An empty list with `v`'s allocation, for borrows of another lifetime (an in-place collect of nothing).
// `filter_map` (not `filter`) is what changes the element lifetime.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut v: Vec<Option<&Value>>) -> Vec<Option<&'b Value>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// `v` under `shape` (same element count, checked by the caller): row-major data keeps its buffer.
fn into_shape(v: Value, shape: &[usize]) -> Result<Value, KernelError> {
    fn owned<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, KernelError> {
        let order = (IxDyn(shape), ndarray::Order::RowMajor);
        let reshaped = if a.is_standard_layout() {
            a.into_shape_with_order(order)
        } else {
            a.to_shape(order).map(|view| view.into_owned())
        };
        reshaped.map_err(|e| KernelError::Invalid(format!("cannot reshape to {shape:?}: {e}")))
    }
    Ok(match v {
        Value::F32(a) => Value::F32(owned(a, shape)?),
        Value::I32(a) => Value::I32(owned(a, shape)?),
        Value::I64(a) => Value::I64(owned(a, shape)?),
        Value::Bool(a) => Value::Bool(owned(a, shape)?),
    })
}

/// [`FloatInterpreter::work_per_sample`] of one step: output elements times the weights per output
/// channel when input 1 is a constant (the filter or weight matrix), else output elements.
fn step_work(graph: &Graph, step: &Step, constants: &[Option<Value>]) -> usize {
    let elements = |t: TensorId| -> usize {
        graph
            .shape(t)
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product()
    };
    let Some(&out) = step.outputs.first() else {
        return 0;
    };
    let channels = graph
        .shape(out)
        .last()
        .and_then(|&d| usize::try_from(d).ok())
        .filter(|&d| d > 0)
        .unwrap_or(1);
    let depth = step
        .inputs
        .get(1)
        .copied()
        .flatten()
        .and_then(|t| constants.get(t.0)?.as_ref())
        .map_or(1, |w| {
            (w.shape().iter().product::<usize>() / channels).max(1)
        });
    elements(out).saturating_mul(depth)
}

/// Where an op is, for error messages.
pub(crate) fn location(graph: &Graph, op: OpIndex) -> OpLocation {
    let output = graph
        .op(op)
        .outputs
        .as_deref()
        .and_then(|o| o.first())
        .and_then(|&t| usize::try_from(t).ok())
        .and_then(|t| graph.tensors().get(t))
        .and_then(|t| t.name.clone())
        .unwrap_or_default();
    OpLocation {
        index: op.0,
        op: graph.op_type_name(op),
        output,
    }
}

/// Whether a value may live in a tensor of the declared type (quantized integers are carried as INT32 codes).
fn holds(declared: fb::TensorType, v: &Value) -> bool {
    use fb::TensorType as T;
    match v {
        Value::F32(_) => declared == T::FLOAT32,
        // A resource variable's handle (VAR_HANDLE) is an INT32 scalar here.
        Value::I32(_) => matches!(
            declared,
            T::INT32 | T::INT8 | T::UINT8 | T::INT16 | T::UINT16 | T::UINT32 | T::RESOURCE
        ),
        Value::I64(_) => declared == T::INT64,
        Value::Bool(_) => declared == T::BOOL,
    }
}

/// Checks one input array against the model input and converts it to the input's type.
fn input_value(spec: &ModelInput, data: &ArrayD<f32>) -> Result<Value, CalibError> {
    let got = data.shape();
    let fits = got.len() == spec.shape.len()
        && got.iter().enumerate().all(|(d, &g)| {
            let dynamic = spec
                .signature
                .as_ref()
                .and_then(|s| s.get(d))
                .is_some_and(|&s| s < 0);
            dynamic || i64::try_from(g).ok() == spec.shape.get(d).map(|&s| i64::from(s))
        });
    if !fits {
        return Err(CalibError::Data {
            sample: None,
            message: format!(
                "input {:?} has shape {:?}, the model expects {:?}",
                spec.name,
                got,
                spec.signature.as_ref().unwrap_or(&spec.shape)
            ),
        });
    }
    use fb::TensorType as T;
    Ok(match spec.dtype {
        T::FLOAT32 => Value::F32(data.clone()),
        // Integer and bool inputs (token ids, masks) arrive as floats from the dataset: whole numbers by contract.
        T::INT32 => Value::I32(data.mapv(|v| v as i32)),
        T::INT64 => Value::I64(data.mapv(|v| v as i64)),
        T::BOOL => Value::Bool(data.mapv(|v| v != 0.0)),
        other => {
            return Err(CalibError::Data {
                sample: None,
                message: format!(
                    "input {:?} has type {}; the float interpreter feeds FLOAT32, INT32, INT64 and BOOL inputs",
                    spec.name,
                    tflite::type_name(other)
                ),
            })
        }
    })
}

/// The intermediate tensors an op records (in range), in order.
fn intermediates(graph: &Graph, op: OpIndex) -> Vec<TensorId> {
    let n = graph.tensors().len();
    graph
        .op(op)
        .intermediates
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter_map(|&t| usize::try_from(t).ok().filter(|&t| t < n).map(TensorId))
        .collect()
}

/// Decodes a constant tensor: `Ok(None)` for activations, `Err` for constant data the interpreter cannot use.
/// A variable tensor without data (a recurrent op's state) is a constant zero: every sample starts from the
/// state LiteRT has after `reset_all_variables()`.
fn load_constant(graph: &Graph, id: TensorId) -> Result<Option<Value>, String> {
    let t = graph.tensor(id);
    let Some(data) = graph.buffer_data(id) else {
        if t.is_variable {
            let shape: Vec<usize> = graph.shape(id).iter().map(|&d| d.max(0) as usize).collect();
            return Ok(Some(Value::F32(ArrayD::zeros(IxDyn(&shape)))));
        }
        return Ok(None);
    };
    if t.sparsity.is_some() {
        return Err("sparse constants are not supported".into());
    }
    let mut shape = Vec::new();
    for &d in t.shape.as_deref().unwrap_or(&[]) {
        shape.push(
            usize::try_from(d).map_err(|_| format!("constant with a negative dimension {d}"))?,
        );
    }
    let count: usize = shape.iter().product();
    let width = match t.type_ {
        fb::TensorType::FLOAT32 | fb::TensorType::INT32 => 4,
        fb::TensorType::INT64 => 8,
        fb::TensorType::FLOAT16 | fb::TensorType::INT16 => 2,
        fb::TensorType::BOOL | fb::TensorType::INT8 | fb::TensorType::UINT8 => 1,
        other => {
            return Err(format!(
                "constants of type {} are not supported",
                tflite::type_name(other)
            ))
        }
    };
    if data.len() != count * width {
        return Err(format!(
            "constant data has {} bytes, shape {:?} of {} needs {}",
            data.len(),
            shape,
            tflite::type_name(t.type_),
            count * width
        ));
    }
    let array = |v| ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string());
    let le4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let value = match t.type_ {
        fb::TensorType::FLOAT32 => Value::F32(array(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(le4(c)))
                .collect(),
        )?),
        fb::TensorType::FLOAT16 => Value::F32(array(
            data.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )?),
        fb::TensorType::INT64 => {
            let v = data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Value::I64(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())?)
        }
        fb::TensorType::BOOL => Value::Bool(
            ArrayD::from_shape_vec(IxDyn(&shape), data.iter().map(|&b| b != 0).collect())
                .map_err(|e| e.to_string())?,
        ),
        integer => {
            let codes: Vec<i32> = match integer {
                fb::TensorType::INT32 => data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(le4(c)))
                    .collect(),
                fb::TensorType::INT16 => data
                    .chunks_exact(2)
                    .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                fb::TensorType::INT8 => data.iter().map(|&b| i32::from(b as i8)).collect(),
                _ => data.iter().map(|&b| i32::from(b)).collect(),
            };
            // A quantized integer constant (int8 weights, an int8 tensor behind DEQUANTIZE) is its real value.
            match affine_params(t.quantization.as_deref()) {
                Some(params) => Value::F32(dequantize_codes(&codes, &shape, &params)?),
                None => Value::I32(
                    ArrayD::from_shape_vec(IxDyn(&shape), codes).map_err(|e| e.to_string())?,
                ),
            }
        }
    };
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::ops::testing::{one_op_graph, Arg};
    use crate::calibrate::KernelError;

    fn two_relus() -> Graph {
        // x -> RELU -> y -> RELU6 -> z
        let mut g = one_op_graph(
            fb::BuiltinOperator::RELU,
            fb::BuiltinOptionsT::NONE,
            vec![],
            &[fb::TensorType::FLOAT32],
        );
        let x = g.add_tensor(fb::TensorT {
            shape: Some(vec![2]),
            type_: fb::TensorType::FLOAT32,
            name: Some("x".into()),
            ..Default::default()
        });
        let z = g.add_tensor(fb::TensorT {
            shape: Some(vec![2]),
            type_: fb::TensorType::FLOAT32,
            name: Some("z".into()),
            ..Default::default()
        });
        g.op_mut(OpIndex(0)).inputs = Some(vec![x.0 as i32]);
        let relu6 = g.new_op(fb::BuiltinOperator::RELU6, 1, &[TensorId(0)], &[z]);
        g.insert_op(OpIndex(1), relu6);
        g.main_mut().inputs = Some(vec![x.0 as i32]);
        g.main_mut().outputs = Some(vec![z.0 as i32]);
        g
    }

    #[test]
    fn run_observes_inputs_and_every_float_output_in_order() {
        let g = two_relus();
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        let mut seen = Vec::new();
        let x = ArrayD::from_shape_vec(IxDyn(&[2]), vec![-1.0, 9.0]).unwrap();
        let out = interp
            .run(&[x], &mut |t, v| seen.push((t.0, v.clone())))
            .unwrap();
        let f = |v: Vec<f32>| Value::F32(ArrayD::from_shape_vec(IxDyn(&[2]), v).unwrap());
        assert_eq!(
            seen,
            vec![
                (1, f(vec![-1.0, 9.0])),
                (0, f(vec![0.0, 9.0])),
                (2, f(vec![0.0, 6.0]))
            ]
        );
        assert_eq!(out, vec![f(vec![0.0, 6.0])]);
    }

    #[test]
    fn reshape_of_an_activation_read_once_moves_it_and_observes_both_shapes() {
        // x [2] -> RELU -> y [2] -> RESHAPE -> z [2, 1]: y is read by RESHAPE alone, so it is moved.
        let mut g = two_relus();
        let z = TensorId(2);
        g.tensor_mut(z).shape = Some(vec![2, 1]);
        let reshape = g.new_op(fb::BuiltinOperator::RESHAPE, 1, &[TensorId(0)], &[z]);
        g.main_mut().operators.as_mut().unwrap()[1] = reshape;
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        assert!(interp.programs[0].steps[1].moves_input);
        let mut seen = Vec::new();
        let x = ArrayD::from_shape_vec(IxDyn(&[2]), vec![-1.0, 9.0]).unwrap();
        let out = interp
            .run(&[x], &mut |t, v| seen.push((t.0, v.shape().to_vec())))
            .unwrap();
        assert_eq!(seen, vec![(1, vec![2]), (0, vec![2]), (2, vec![2, 1])]);
        assert_eq!(
            out,
            vec![Value::F32(
                ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![0.0, 9.0]).unwrap()
            )]
        );
    }

    #[test]
    fn ops_without_kernel_are_listed_with_index_type_and_output() {
        let g = two_relus();
        let mut registry = Registry::default();
        registry.register(fb::BuiltinOperator::RELU, |_| Err(KernelError::Unsupported));
        let err = FloatInterpreter::new(&g, &registry)
            .err()
            .expect("RELU6 has no kernel");
        let CalibError::UnsupportedOps { ops } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            ops,
            &[OpLocation {
                index: 1,
                op: "RELU6".into(),
                output: "z".into()
            }]
        );
        assert!(
            err.to_string().contains("op #1 RELU6 (output \"z\")"),
            "{err}"
        );
    }

    #[test]
    fn kernel_failures_name_the_op() {
        let g = two_relus();
        let mut registry = Registry::with_all_ops();
        registry.register(fb::BuiltinOperator::RELU6, |_| {
            Err(KernelError::Invalid("bad input".into()))
        });
        let interp = FloatInterpreter::new(&g, &registry).unwrap();
        let err = interp
            .run(&[ArrayD::zeros(IxDyn(&[2]))], &mut |_, _| {})
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "op #1 RELU6 (output \"z\") failed: bad input"
        );
    }

    #[test]
    fn reading_a_tensor_before_it_is_written_is_a_model_error() {
        let mut g = two_relus();
        // Swap the ops: RELU6 now reads RELU's output before RELU runs.
        g.main_mut().operators.as_mut().unwrap().swap(0, 1);
        let err = FloatInterpreter::new(&g, &Registry::with_all_ops())
            .err()
            .expect("out of order");
        assert!(matches!(err, CalibError::Model(_)), "{err}");
        assert!(err.to_string().contains("op #0 RELU6"), "{err}");
    }

    #[test]
    fn input_shape_and_count_are_checked() {
        let g = two_relus();
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        let err = interp
            .run(&[ArrayD::zeros(IxDyn(&[3]))], &mut |_, _| {})
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("input \"x\" has shape [3], the model expects [2]"),
            "{err}"
        );
        assert!(interp.run(&[], &mut |_, _| {}).is_err());
    }

    #[test]
    fn dequantize_of_float16_and_int8_constants_gives_their_real_values() {
        let mut g = one_op_graph(
            fb::BuiltinOperator::DEQUANTIZE,
            fb::BuiltinOptionsT::NONE,
            vec![],
            &[fb::TensorType::FLOAT32],
        );
        let half: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let b = g.add_buffer(half);
        let c = g.add_tensor(fb::TensorT {
            shape: Some(vec![2]),
            type_: fb::TensorType::FLOAT16,
            buffer: b,
            ..Default::default()
        });
        g.op_mut(OpIndex(0)).inputs = Some(vec![c.0 as i32]);
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        let out = interp.run(&[], &mut |_, _| {}).unwrap();
        assert_eq!(
            out[0],
            Value::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.5, -2.0]).unwrap())
        );

        let b = g.add_buffer(vec![4u8, 0xfc]); // int8 [4, -4]
        let q = fb::QuantizationParametersT {
            scale: Some(vec![0.5]),
            zero_point: Some(vec![2]),
            ..Default::default()
        };
        let c = g.add_tensor(fb::TensorT {
            shape: Some(vec![2]),
            type_: fb::TensorType::INT8,
            buffer: b,
            quantization: Some(Box::new(q)),
            ..Default::default()
        });
        g.op_mut(OpIndex(0)).inputs = Some(vec![c.0 as i32]);
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        let out = interp.run(&[], &mut |_, _| {}).unwrap();
        assert_eq!(
            out[0],
            Value::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, -3.0]).unwrap())
        );
    }

    #[test]
    fn quantize_then_dequantize_round_trips_through_int8_codes() {
        // x -> QUANTIZE (int8, scale 0.5, zp -1) -> q -> DEQUANTIZE -> y
        let mut g = one_op_graph(
            fb::BuiltinOperator::QUANTIZE,
            fb::BuiltinOptionsT::NONE,
            vec![Arg::f32(&[4], vec![0.74, -0.75, 100.0, 1.0])],
            &[fb::TensorType::INT8],
        );
        g.tensor_mut(TensorId(1)).quantization = Some(Box::new(fb::QuantizationParametersT {
            scale: Some(vec![0.5]),
            zero_point: Some(vec![-1]),
            ..Default::default()
        }));
        let y = g.add_tensor(fb::TensorT {
            shape: Some(vec![4]),
            type_: fb::TensorType::FLOAT32,
            name: Some("y".into()),
            ..Default::default()
        });
        let deq = g.new_op(fb::BuiltinOperator::DEQUANTIZE, 1, &[TensorId(1)], &[y]);
        g.insert_op(OpIndex(1), deq);
        g.main_mut().outputs = Some(vec![1, y.0 as i32]);
        let interp = FloatInterpreter::new(&g, &Registry::with_all_ops()).unwrap();
        let out = interp.run(&[], &mut |_, _| {}).unwrap();
        // round(x / 0.5) - 1, half away from zero: 1-1, -2-1 (-1.5 rounds to -2), clamp(199)=127, 2-1
        assert_eq!(
            out[0],
            Value::I32(ArrayD::from_shape_vec(IxDyn(&[4]), vec![0, -3, 127, 1]).unwrap())
        );
        assert_eq!(
            out[1],
            Value::F32(ArrayD::from_shape_vec(IxDyn(&[4]), vec![0.5, -1.0, 64.0, 1.0]).unwrap())
        );
    }
}
