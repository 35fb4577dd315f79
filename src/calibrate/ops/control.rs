//! Control flow: WHILE, IF and CALL_ONCE run other subgraphs of the model through the interpreter
//! ([`OpContext::call`]); resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE) live in it for one
//! sample.

use crate::calibrate::{KernelError, OpContext, Value};
use crate::tflite::fb;

/// Iterations after which a WHILE is taken for a loop that never ends (TFLite has no bound; calibration
/// must finish).
pub const MAX_ITERATIONS: usize = 1 << 24;

fn subgraph_index(i: i32, what: &str) -> Result<usize, KernelError> {
    usize::try_from(i)
        .map_err(|_| KernelError::Invalid(format!("{what} subgraph index {i} is negative")))
}

/// The op's inputs from `from` on, as owned values (every one must be present).
fn owned_inputs(ctx: &OpContext<'_>, from: usize) -> Result<Vec<Value>, KernelError> {
    (from..ctx.inputs.len())
        .map(|i| ctx.input(i).cloned())
        .collect()
}

/// A scalar (or one-element) BOOL value: a WHILE condition or an IF predicate.
fn truth(v: Option<&Value>, what: &str) -> Result<bool, KernelError> {
    match v {
        Some(Value::Bool(a)) if a.len() == 1 => Ok(a.iter().next().copied().unwrap_or(false)),
        // TFLite's IF also takes a numeric predicate: non-zero is true.
        Some(Value::I32(a)) if a.len() == 1 => Ok(a.iter().next().is_some_and(|&x| x != 0)),
        Some(Value::F32(a)) if a.len() == 1 => Ok(a.iter().next().is_some_and(|&x| x != 0.0)),
        Some(other) => Err(KernelError::Invalid(format!(
            "{what} must be a one-element BOOL, got {} of shape {:?}",
            other.type_name(),
            other.shape()
        ))),
        None => Err(KernelError::Invalid(format!("{what} is missing"))),
    }
}

/// WHILE: runs `cond` on the loop variables, and `body` while it says true; outputs the final variables.
pub(crate) fn while_loop(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let fb::BuiltinOptionsT::WhileOptions(o) = &ctx.operator().builtin_options else {
        return Err(KernelError::Invalid("WHILE without WhileOptions".into()));
    };
    let cond = subgraph_index(o.cond_subgraph_index, "the cond")?;
    let body = subgraph_index(o.body_subgraph_index, "the body")?;
    let mut vars = owned_inputs(ctx, 0)?;
    for _ in 0..MAX_ITERATIONS {
        let c = ctx.call(cond, vars.clone())?;
        if !truth(c.first(), "the WHILE condition's output")? {
            return Ok(vars);
        }
        let next = ctx.call(body, vars)?;
        if next.len() != ctx.inputs.len() {
            return Err(KernelError::Invalid(format!(
                "the body returns {} value(s) for {} loop variable(s)",
                next.len(),
                ctx.inputs.len()
            )));
        }
        vars = next;
    }
    Err(KernelError::Invalid(format!(
        "the loop did not end within {MAX_ITERATIONS} iterations"
    )))
}

/// IF: input 0 is the predicate; the other inputs feed the `then` or the `else` subgraph.
pub(crate) fn if_then_else(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let fb::BuiltinOptionsT::IfOptions(o) = &ctx.operator().builtin_options else {
        return Err(KernelError::Invalid("IF without IfOptions".into()));
    };
    let branch = if truth(ctx.inputs.first().copied().flatten(), "the IF predicate")? {
        subgraph_index(o.then_subgraph_index, "the then")?
    } else {
        subgraph_index(o.else_subgraph_index, "the else")?
    };
    ctx.call(branch, owned_inputs(ctx, 1)?)
}

/// CALL_ONCE: runs the init subgraph (no inputs, no outputs). Every sample starts from the model's initial
/// state, so "once" is once per sample.
pub(crate) fn call_once(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let fb::BuiltinOptionsT::CallOnceOptions(o) = &ctx.operator().builtin_options else {
        return Err(KernelError::Invalid(
            "CALL_ONCE without CallOnceOptions".into(),
        ));
    };
    ctx.call(
        subgraph_index(o.init_subgraph_index, "the init")?,
        Vec::new(),
    )?;
    Ok(Vec::new())
}

/// The handle a VAR_HANDLE, READ_VARIABLE or ASSIGN_VARIABLE input holds.
fn handle_input(ctx: &OpContext<'_>) -> Result<i32, KernelError> {
    match ctx.input(0)? {
        Value::I32(a) if a.len() == 1 => Ok(a.iter().next().copied().unwrap_or(0)),
        other => Err(KernelError::Invalid(format!(
            "input 0 must be a resource handle, got {} of shape {:?}",
            other.type_name(),
            other.shape()
        ))),
    }
}

/// VAR_HANDLE: the handle of the variable its options name (`container`/`shared_name`).
pub(crate) fn var_handle(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    let fb::BuiltinOptionsT::VarHandleOptions(o) = &ctx.operator().builtin_options else {
        return Err(KernelError::Invalid(
            "VAR_HANDLE without VarHandleOptions".into(),
        ));
    };
    let name = format!(
        "{}/{}",
        o.container.as_deref().unwrap_or(""),
        o.shared_name.as_deref().unwrap_or("")
    );
    let h = ctx.handle(&name)?;
    Ok(vec![Value::I32(ndarray::arr0(h).into_dyn())])
}

/// READ_VARIABLE: the variable's current value.
pub(crate) fn read_variable(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    Ok(vec![ctx.read_variable(handle_input(ctx)?)?])
}

/// ASSIGN_VARIABLE: stores input 1 in the variable; no output.
pub(crate) fn assign_variable(ctx: &OpContext<'_>) -> Result<Vec<Value>, KernelError> {
    ctx.assign_variable(handle_input(ctx)?, ctx.input(1)?.clone())?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::calibrate::{FloatInterpreter, Registry, Value};
    use crate::graph::Graph;
    use crate::tflite::fb::{self, BuiltinOperator as Op};
    use ndarray::{arr1, ArrayD};

    fn tensor(name: &str, shape: &[i32], ty: fb::TensorType) -> fb::TensorT {
        fb::TensorT {
            name: Some(name.into()),
            shape: Some(shape.to_vec()),
            type_: ty,
            ..Default::default()
        }
    }

    fn op(
        code: u32,
        inputs: &[i32],
        outputs: &[i32],
        options: fb::BuiltinOptionsT,
    ) -> fb::OperatorT {
        fb::OperatorT {
            opcode_index: code,
            inputs: Some(inputs.to_vec()),
            outputs: Some(outputs.to_vec()),
            builtin_options: options,
            ..Default::default()
        }
    }

    /// One-op subgraph `y = x <op> x`.
    fn branch(code: u32, options: fb::BuiltinOptionsT) -> fb::SubGraphT {
        fb::SubGraphT {
            tensors: Some(vec![
                tensor("x", &[2], fb::TensorType::FLOAT32),
                tensor("y", &[2], fb::TensorType::FLOAT32),
            ]),
            inputs: Some(vec![0]),
            outputs: Some(vec![1]),
            operators: Some(vec![op(code, &[0, 0], &[1], options)]),
            ..Default::default()
        }
    }

    /// `main(p, x) = IF(p, x)`: then `x + x`, else `x * x`.
    fn if_model() -> Graph {
        let code = |c: Op| fb::OperatorCodeT {
            deprecated_builtin_code: c.0 as i8,
            version: 1,
            builtin_code: c,
            ..Default::default()
        };
        let main = fb::SubGraphT {
            tensors: Some(vec![
                tensor("p", &[1], fb::TensorType::BOOL),
                tensor("x", &[2], fb::TensorType::FLOAT32),
                tensor("y", &[2], fb::TensorType::FLOAT32),
            ]),
            inputs: Some(vec![0, 1]),
            outputs: Some(vec![2]),
            operators: Some(vec![op(
                0,
                &[0, 1],
                &[2],
                fb::BuiltinOptionsT::IfOptions(Box::new(fb::IfOptionsT {
                    then_subgraph_index: 1,
                    else_subgraph_index: 2,
                })),
            )]),
            ..Default::default()
        };
        Graph::from_model(fb::ModelT {
            version: 3,
            operator_codes: Some(vec![code(Op::IF), code(Op::ADD), code(Op::MUL)]),
            subgraphs: Some(vec![
                main,
                branch(1, fb::BuiltinOptionsT::AddOptions(Box::default())),
                branch(2, fb::BuiltinOptionsT::MulOptions(Box::default())),
            ]),
            buffers: Some(vec![fb::BufferT::default()]),
            ..Default::default()
        })
    }

    #[test]
    fn if_runs_the_branch_its_predicate_picks_in_both_interpreters_and_observes_it() {
        let g = if_model();
        let registry = Registry::with_all_ops();
        let interp = FloatInterpreter::new(&g, &registry).expect("every op has a kernel");
        // Flat ids: main 0..3, then branch 1 at 3..5, branch 2 at 5..7.
        assert_eq!(interp.offsets(), &[0, 3, 5]);
        assert_eq!(interp.num_tensors(), 7);
        let x: ArrayD<f32> = arr1(&[3.0f32, -2.0]).into_dyn();
        for (p, want, branch_output) in [(1.0f32, [6.0f32, -4.0], 4), (0.0, [9.0, 4.0], 6)] {
            let mut seen = Vec::new();
            let out = interp
                .run(&[arr1(&[p]).into_dyn(), x.clone()], &mut |t, _| {
                    seen.push(t.0)
                })
                .expect("runs");
            let Value::F32(y) = &out[0] else {
                panic!("float output")
            };
            assert_eq!(y.iter().copied().collect::<Vec<_>>(), want);
            assert!(seen.contains(&branch_output), "{seen:?}");

            let bytes = g.to_bytes();
            let mut ints = crate::interp::Interpreter::new(&bytes).expect("loads");
            ints.set_input_f32(1, &[3.0, -2.0]).expect("x");
            let pred = crate::interp::Tensor::new(
                vec![1],
                crate::interp::TensorData::Bool(vec![p != 0.0]),
            )
            .expect("tensor");
            ints.set_input(0, pred).expect("p");
            ints.invoke().expect("invokes");
            assert_eq!(ints.output_f32(0).expect("output"), want);
        }
    }

    /// `main(x) = x + v` where CALL_ONCE's init subgraph assigns `v = [10, 20]`; main assigns `v = x + v`
    /// afterwards, which the next sample must not see.
    fn variable_model() -> Graph {
        let code = |c: Op| fb::OperatorCodeT {
            deprecated_builtin_code: c.0.min(127) as i8,
            version: 1,
            builtin_code: c,
            ..Default::default()
        };
        let handle = || {
            fb::BuiltinOptionsT::VarHandleOptions(Box::new(fb::VarHandleOptionsT {
                container: None,
                shared_name: Some("v".into()),
            }))
        };
        let resource = |name: &str| tensor(name, &[], fb::TensorType::RESOURCE);
        // Codes: 0 CALL_ONCE, 1 VAR_HANDLE, 2 READ_VARIABLE, 3 ADD, 4 ASSIGN_VARIABLE.
        let main = fb::SubGraphT {
            tensors: Some(vec![
                tensor("x", &[2], fb::TensorType::FLOAT32),
                resource("h"),
                tensor("v", &[2], fb::TensorType::FLOAT32),
                tensor("y", &[2], fb::TensorType::FLOAT32),
            ]),
            inputs: Some(vec![0]),
            outputs: Some(vec![3]),
            operators: Some(vec![
                op(
                    0,
                    &[],
                    &[],
                    fb::BuiltinOptionsT::CallOnceOptions(Box::new(fb::CallOnceOptionsT {
                        init_subgraph_index: 1,
                    })),
                ),
                op(1, &[], &[1], handle()),
                op(2, &[1], &[2], fb::BuiltinOptionsT::NONE),
                op(
                    3,
                    &[0, 2],
                    &[3],
                    fb::BuiltinOptionsT::AddOptions(Box::default()),
                ),
                op(4, &[1, 3], &[], fb::BuiltinOptionsT::NONE),
            ]),
            ..Default::default()
        };
        let mut c = tensor("c", &[2], fb::TensorType::FLOAT32);
        c.buffer = 1;
        let init = fb::SubGraphT {
            tensors: Some(vec![resource("h"), c]),
            inputs: Some(vec![]),
            outputs: Some(vec![]),
            operators: Some(vec![
                op(1, &[], &[0], handle()),
                op(4, &[0, 1], &[], fb::BuiltinOptionsT::NONE),
            ]),
            ..Default::default()
        };
        let data: Vec<u8> = [10.0f32, 20.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        Graph::from_model(fb::ModelT {
            version: 3,
            operator_codes: Some(
                [
                    Op::CALL_ONCE,
                    Op::VAR_HANDLE,
                    Op::READ_VARIABLE,
                    Op::ADD,
                    Op::ASSIGN_VARIABLE,
                ]
                .into_iter()
                .map(code)
                .collect(),
            ),
            subgraphs: Some(vec![main, init]),
            buffers: Some(vec![
                fb::BufferT::default(),
                fb::BufferT {
                    data: Some(data),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        })
    }

    #[test]
    fn resource_variables_are_set_by_call_once_read_assigned_and_reset_every_sample() {
        let g = variable_model();
        let registry = Registry::with_all_ops();
        let interp = FloatInterpreter::new(&g, &registry).expect("every op has a kernel");
        let mut ints = crate::interp::Interpreter::new(&g.to_bytes()).expect("loads");
        for _ in 0..2 {
            let mut seen = Vec::new();
            let out = interp
                .run(&[arr1(&[1.0f32, 2.0]).into_dyn()], &mut |t, _| {
                    seen.push(t.0)
                })
                .expect("runs");
            let Value::F32(y) = &out[0] else {
                panic!("float output")
            };
            assert_eq!(y.iter().copied().collect::<Vec<_>>(), [11.0, 22.0]);
            // The variable's value is an activation with a range; the handle is not.
            assert!(seen.contains(&2) && !seen.contains(&1), "{seen:?}");

            ints.set_input_f32(0, &[1.0, 2.0]).expect("x");
            ints.invoke().expect("invokes");
            assert_eq!(ints.output_f32(0).expect("output"), [11.0, 22.0]);
        }
        // Without the init subgraph's assignment, the read fails clearly.
        let mut g = variable_model();
        g.main_mut().operators.as_mut().map(|ops| ops.remove(0));
        let interp = FloatInterpreter::new(&g, &registry).expect("builds");
        let err = interp
            .run(&[arr1(&[1.0f32, 2.0]).into_dyn()], &mut |_, _| {})
            .expect_err("read before assignment");
        assert!(
            err.to_string().contains("before anything assigns it"),
            "{err}"
        );
    }

    #[test]
    fn a_subgraph_index_out_of_range_is_an_error_not_a_panic() {
        let mut g = if_model();
        if let Some(op) = g.main_mut().operators.as_mut().and_then(|o| o.first_mut()) {
            op.builtin_options = fb::BuiltinOptionsT::IfOptions(Box::new(fb::IfOptionsT {
                then_subgraph_index: 9,
                else_subgraph_index: 2,
            }));
        }
        let registry = Registry::with_all_ops();
        let interp = FloatInterpreter::new(&g, &registry).expect("builds");
        let err = interp
            .run(
                &[arr1(&[1.0f32]).into_dyn(), arr1(&[1.0f32, 2.0]).into_dyn()],
                &mut |_, _| {},
            )
            .expect_err("no subgraph 9");
        assert!(err.to_string().contains("subgraph 9"), "{err}");
        assert!(crate::interp::Interpreter::new(&g.to_bytes()).is_err());
    }
}
