//! Keras 3 GRU and LSTM as TF 2.21's converter writes them: a WHILE loop over the time steps.
//!
//! The main subgraph RESHAPEs the input `[1, T, F]` to time-major `[T, 1, F]` and runs
//! `WHILE(counter, time, last output [1, 1, U], states..., input)`; the cond subgraph is
//! `counter < T && time < T`; the body GATHERs step `time`, runs the cell (FULLY_CONNECTED on the step and on
//! the hidden state, the gates) and returns the counters plus one, the new output as `[1, 1, U]`, the new
//! states and the input. A STRIDED_SLICE takes the output `[1, U]` out of `[1, 1, U]`. With
//! `return_sequences`, the list holds every step `[T, 1, U]`: the body writes step `time` as TF lowers
//! `TensorListSetItem` (the slices before and after it, CONCATENATEd around it) and a RESHAPE gives `[1, T, U]`.

use super::conv::permute;
use super::recurrent::Recurrent;
use super::{Lowering, Value};
use crate::graph::TensorId;
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

/// The body's arguments: the counters, the outputs list, the states and the input.
struct LoopArgs {
    counter: TensorId,
    time: TensorId,
    list: TensorId,
    states: Vec<TensorId>,
    input: TensorId,
}

impl Lowering<'_> {
    /// The WHILE loop of a Keras 3 recurrent layer: its last output, or every step's.
    pub(super) fn recurrent_loop(
        &mut self,
        call: &LayerCall,
        r: &Recurrent,
    ) -> Result<Value, KerasErrorKind> {
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if call.class == "GRU" && r.o.reset_after == Some(false) {
            return Err(unsupported("reset_after = false is not lowered"));
        }
        let (steps, features, u) = (r.input.shape[1], r.input.shape[2], r.o.units);
        let list_len = if r.o.return_sequences { steps } else { 1 };
        let states = if call.class == "LSTM" { 2 } else { 1 };
        let name = |what: &str| format!("{}/{what}", call.name);
        // The main subgraph's side: time-major input, initial values, the loop, the last output.
        let major = self.time_major(call, r, &name("transpose"));
        let zero = self.b.constant_i32(&name("while/start"), &[], &[0]);
        let list = self.b.constant_f32(
            &name("TensorArrayV2"),
            &[list_len, 1, u],
            &vec![0.0; list_len * u],
        );
        let zeros = self.b.constant_f32(&name("zeros"), &[1, u], &vec![0.0; u]);
        let mut inputs = vec![Some(zero), Some(zero), Some(list)];
        inputs.extend(std::iter::repeat_n(Some(zeros), states));
        inputs.push(Some(major));
        let arg_shapes = loop_shapes(steps, features, list_len, u, states);
        let outputs: Vec<TensorId> = arg_shapes
            .iter()
            .enumerate()
            .map(|(i, (shape, type_))| self.b.computed(&name(&format!("while{i}")), shape, *type_))
            .collect();
        let cond = self.loop_cond(call, steps, &arg_shapes);
        let body = self.loop_body(call, r, &arg_shapes)?;
        self.b.op(
            fb::BuiltinOperator::WHILE,
            1,
            &inputs,
            &outputs,
            fb::BuiltinOptionsT::WhileOptions(Box::new(fb::WhileOptionsT {
                cond_subgraph_index: cond as i32,
                body_subgraph_index: body as i32,
            })),
        );
        if r.o.return_sequences {
            let shape = self.b.constant_i32(
                &name("transpose_1/perm"),
                &[3],
                &[1, steps as i32, u as i32],
            );
            let sequence = self.b.activation(&name("transpose_1"), &[1, steps, u]);
            let reshape = self.b.op(
                fb::BuiltinOperator::RESHAPE,
                1,
                &[Some(outputs[2]), Some(shape)],
                &[sequence],
                fb::BuiltinOptionsT::NONE,
            );
            self.sequences.insert(sequence, (outputs[2], reshape));
            return Ok(Value {
                tensor: sequence,
                shape: vec![1, steps, u],
                expanded: false,
                pad: None,
            });
        }
        let list_out = Value {
            tensor: outputs[2],
            shape: vec![1, 1, u],
            expanded: false,
            pad: None,
        };
        let last = [[-1, 0, 0], [0, 1, u as i32], [1, 1, 1]];
        Ok(self.strided_slice(
            call,
            "strided_slice",
            &list_out,
            last,
            [6, 6, 1],
            vec![1, u],
        ))
    }

    /// The layer's input as time-major `[T, 1, F]`: a RESHAPE, or the list of the recurrent layer before it
    /// when this layer is its only reader (its RESHAPE to `[1, T, F]` taken out again).
    fn time_major(&mut self, call: &LayerCall, r: &Recurrent, name: &str) -> TensorId {
        if self.sole_reader(call) {
            if let Some((list, reshape)) = self.sequences.remove(&r.input.tensor) {
                self.remove_ops(&[reshape]);
                return list;
            }
        }
        let (steps, features) = (r.input.shape[1], r.input.shape[2]);
        let shape = self.b.constant_i32(
            &format!("{name}/perm"),
            &[3],
            &super::builder::dims(&[steps, 1, features]),
        );
        let major = self.b.activation(name, &[steps, 1, features]);
        self.b.op(
            fb::BuiltinOperator::RESHAPE,
            1,
            &[Some(r.input.tensor), Some(shape)],
            &[major],
            fb::BuiltinOptionsT::NONE,
        );
        major
    }

    /// The cond subgraph: `time < T && counter < T` (tf_keras: `time < T`).
    fn loop_cond(
        &mut self,
        call: &LayerCall,
        steps: usize,
        arg_shapes: &[(Vec<usize>, fb::TensorType)],
    ) -> usize {
        let sg = self.subgraph(&format!("{}/while_cond", call.name));
        self.b.graph.focus(sg);
        let args = self.loop_args(call, "while_cond", arg_shapes);
        let name = |what: &str| format!("{}/while/{what}", call.name);
        let max = self.b.constant_i32(&name("Max"), &[], &[steps as i32]);
        let bool_ = fb::TensorType::BOOL;
        let time_ok = self.b.computed(&name("Less"), &[], bool_);
        let none = || fb::BuiltinOptionsT::NONE;
        let less = fb::BuiltinOperator::LESS;
        // tf_keras bounds the loop by the time step only.
        if self.tf_keras {
            self.b
                .op(less, 1, &[Some(args[1]), Some(max)], &[time_ok], none());
            self.finish_subgraph(&args, &[time_ok]);
            return sg;
        }
        let counter_ok = self.b.computed(&name("Less_1"), &[], bool_);
        let both = self.b.computed(&name("LogicalAnd"), &[], bool_);
        self.b
            .op(less, 1, &[Some(args[1]), Some(max)], &[time_ok], none());
        self.b
            .op(less, 1, &[Some(args[0]), Some(max)], &[counter_ok], none());
        let and = fb::BuiltinOperator::LOGICAL_AND;
        self.b.op(
            and,
            1,
            &[Some(counter_ok), Some(time_ok)],
            &[both],
            fb::BuiltinOptionsT::LogicalAndOptions(Box::default()),
        );
        self.finish_subgraph(&args, &[both]);
        sg
    }

    /// The body subgraph: one step of the cell.
    fn loop_body(
        &mut self,
        call: &LayerCall,
        r: &Recurrent,
        arg_shapes: &[(Vec<usize>, fb::TensorType)],
    ) -> Result<usize, KerasErrorKind> {
        let sg = self.subgraph(&format!("{}/while_body", call.name));
        self.b.graph.focus(sg);
        let args = self.loop_args(call, "while_body", arg_shapes);
        let n = args.len();
        let a = LoopArgs {
            counter: args[0],
            time: args[1],
            list: args[2],
            states: args[3..n - 1].to_vec(),
            input: args[n - 1],
        };
        let u = r.o.units;
        let name = |what: &str| format!("{}/while/{what}", call.name);
        let one = self.b.constant_i32(&name("add/y"), &[], &[1]);
        let i32_ = fb::TensorType::INT32;
        let time = self.b.computed(&name("add"), &[], i32_);
        let add = fb::BuiltinOperator::ADD;
        let options = || fb::BuiltinOptionsT::AddOptions(Box::new(add_options()));
        self.b
            .op(add, 1, &[Some(a.time), Some(one)], &[time], options());
        let counter = self.b.computed(&name("add_1"), &[], i32_);
        self.b
            .op(add, 1, &[Some(a.counter), Some(one)], &[counter], options());
        let step = self
            .b
            .activation(&name("TensorArrayV2Read"), &[1, r.input.shape[2]]);
        self.b.op(
            fb::BuiltinOperator::GATHER,
            1,
            &[Some(a.input), Some(a.time)],
            &[step],
            fb::BuiltinOptionsT::GatherOptions(Box::default()),
        );
        let new_states = if call.class == "LSTM" {
            self.lstm_cell(call, r, step, &a.states)
        } else {
            vec![self.gru_cell(call, r, step, a.states[0])]
        };
        let shape = self
            .b
            .constant_i32(&name("TensorArrayV2Write/shape"), &[3], &[1, 1, u as i32]);
        let item = self.b.activation(&name("TensorArrayV2Write"), &[1, 1, u]);
        self.b.op(
            fb::BuiltinOperator::RESHAPE,
            1,
            &[Some(new_states[0]), Some(shape)],
            &[item],
            fb::BuiltinOptionsT::NONE,
        );
        let written = if r.o.return_sequences {
            let steps = r.input.shape[1];
            self.list_set_item(&name("TensorArrayV2Write"), &a, time, item, [steps, u])
        } else {
            item
        };
        let mut outputs = vec![counter, time, written];
        outputs.extend(&new_states);
        outputs.push(a.input);
        self.finish_subgraph(&args, &outputs);
        Ok(sg)
    }

    /// The list `[T, 1, U]` with step `time` replaced by `item` `[1, 1, U]`, as TF lowers `TensorListSetItem`:
    /// `CONCATENATION(list[:time], item, list[time + 1:])` on axis 0, the slices' sizes known at run time.
    fn list_set_item(
        &mut self,
        name: &str,
        a: &LoopArgs,
        next: TensorId,
        item: TensorId,
        [steps, u]: [usize; 2],
    ) -> TensorId {
        let i32_ = fb::TensorType::INT32;
        let name = |k: usize| format!("{name}/TensorListSetItem{k}");
        let one = self.b.constant_i32(&name(0), &[1], &[1]);
        // `[time, -1, -1]`: the rows before `time`; `[time + 1, 0, 0]`: where the rows after it begin.
        let mut bound = |k: usize, index: TensorId, rest: [i32; 2]| {
            let index1 = self.b.computed(&name(k), &[1], i32_);
            self.b.op(
                fb::BuiltinOperator::RESHAPE,
                1,
                &[Some(index), Some(one)],
                &[index1],
                fb::BuiltinOptionsT::NONE,
            );
            let rest = self.b.constant_i32(&name(k + 1), &[2], &rest);
            let out = self.b.computed(&name(k + 2), &[3], i32_);
            self.concat0(&[index1, rest], out);
            out
        };
        let size_before = bound(1, a.time, [-1, -1]);
        let begin_after = bound(4, next, [0, 0]);
        let zeros = self.b.constant_i32(&name(7), &[3], &[0, 0, 0]);
        let to_end = self.b.constant_i32(&name(8), &[3], &[-1, -1, -1]);
        let before = self.dynamic_rows(&name(9), &[1, 1, 1], &[-1, -1, -1]);
        let after = self.dynamic_rows(&name(10), &[1, 1, u], &[-1, 1, u as i32]);
        for (list_slice, begin, size) in
            [(before, zeros, size_before), (after, begin_after, to_end)]
        {
            self.b.op(
                fb::BuiltinOperator::SLICE,
                1,
                &[Some(a.list), Some(begin), Some(size)],
                &[list_slice],
                fb::BuiltinOptionsT::NONE,
            );
        }
        let out = self.b.activation(&name(11), &[steps, 1, u]);
        self.concat0(&[before, item, after], out);
        out
    }

    /// CONCATENATION of `parts` on axis 0 into `out`.
    fn concat0(&mut self, parts: &[TensorId], out: TensorId) {
        let inputs: Vec<Option<TensorId>> = parts.iter().map(|&t| Some(t)).collect();
        self.b.op(
            fb::BuiltinOperator::CONCATENATION,
            1,
            &inputs,
            &[out],
            fb::BuiltinOptionsT::ConcatenationOptions(Box::default()),
        );
    }

    /// A float activation whose leading sizes are known only at run time (`shape_signature` -1).
    fn dynamic_rows(&mut self, name: &str, shape: &[usize], signature: &[i32]) -> TensorId {
        let t = self.b.activation(name, shape);
        self.b.graph.tensor_mut(t).shape_signature = Some(signature.to_vec());
        t
    }

    /// The GRU cell (`reset_after`): `x W + b_x` and `h U + b_h` split into z, r, h parts;
    /// `z = σ(x_z + h_z)`, `r = σ(x_r + h_r)`, `h~ = tanh(x_h + r * h_h)`, `h' = z * h + (1 - z) * h~`.
    fn gru_cell(
        &mut self,
        call: &LayerCall,
        r: &Recurrent,
        step: TensorId,
        h: TensorId,
    ) -> TensorId {
        let u = r.o.units;
        let name = |what: &str| format!("{}/while/gru_cell/{what}", call.name);
        let rec = self.matmul(&name("MatMul_1"), h, &r.recurrent, &r.bias.data[3 * u..]);
        // tf_keras SPLITs `h U + b_h` where Keras 3 slices it.
        let chunks: Vec<TensorId> = if self.tf_keras {
            self.split(&name("split_1"), rec, 3, u)
        } else {
            self.gate_slices(&name(""), rec, u)
        };
        let x = self.matmul(&name("MatMul"), step, &r.kernel, &r.bias.data[..3 * u]);
        let parts = self.split(&name("split"), x, 3, u);
        let z = self.binary(
            fb::BuiltinOperator::ADD,
            &name("add_1"),
            parts[0],
            chunks[0],
            u,
        );
        let z = self.unary(fb::BuiltinOperator::LOGISTIC, &name("Sigmoid"), z, u);
        let zh = self.binary(fb::BuiltinOperator::MUL, &name("mul_1"), z, h, u);
        let one = self.b.constant_f32(&name("sub/x"), &[], &[1.0]);
        let keep = self.binary(fb::BuiltinOperator::SUB, &name("sub"), one, z, u);
        let rg = self.binary(
            fb::BuiltinOperator::ADD,
            &name("add_2"),
            parts[1],
            chunks[1],
            u,
        );
        let rg = self.unary(fb::BuiltinOperator::LOGISTIC, &name("Sigmoid_1"), rg, u);
        let rh = self.binary(fb::BuiltinOperator::MUL, &name("mul"), rg, chunks[2], u);
        let hh = self.binary(fb::BuiltinOperator::ADD, &name("add_3"), parts[2], rh, u);
        let hh = self.unary(fb::BuiltinOperator::TANH, &name("Tanh"), hh, u);
        let new = self.binary(fb::BuiltinOperator::MUL, &name("mul_2"), keep, hh, u);
        self.binary(fb::BuiltinOperator::ADD, &name("add_4"), zh, new, u)
    }

    /// The LSTM cell: `(x W + h U) + b` split into i, f, c, o; `c' = σ(f) * c + σ(i) * tanh(c~)`,
    /// `h' = σ(o) * tanh(c')`. Returns `[h', c']`.
    fn lstm_cell(
        &mut self,
        call: &LayerCall,
        r: &Recurrent,
        step: TensorId,
        states: &[TensorId],
    ) -> Vec<TensorId> {
        let u = r.o.units;
        let (h, c) = (states[0], states[1]);
        let name = |what: &str| format!("{}/while/lstm_cell/{what}", call.name);
        // As TF writes it: `h U` flattened to `[4u]`, added to `x W`, then the bias added.
        let rec = self.matmul(&name("MatMul_1"), h, &r.recurrent, &[]);
        let shape = self
            .b
            .constant_i32(&name("Squeeze/shape"), &[1], &[4 * u as i32]);
        let flat = self.b.activation(&name("Squeeze"), &[4 * u]);
        self.b.op(
            fb::BuiltinOperator::RESHAPE,
            1,
            &[Some(rec), Some(shape)],
            &[flat],
            fb::BuiltinOptionsT::NONE,
        );
        let x = self.matmul(&name("MatMul"), step, &r.kernel, &[]);
        let sum = self.binary(fb::BuiltinOperator::ADD, &name("BiasAdd"), x, flat, 4 * u);
        let bias = self
            .b
            .constant_f32(&name("BiasAdd_1/bias"), &[4 * u], &r.bias.data);
        let sum = self.binary(
            fb::BuiltinOperator::ADD,
            &name("BiasAdd_1"),
            sum,
            bias,
            4 * u,
        );
        let parts = self.split(&name("split"), sum, 4, u);
        let i = self.unary(fb::BuiltinOperator::LOGISTIC, &name("Sigmoid"), parts[0], u);
        let f = self.unary(
            fb::BuiltinOperator::LOGISTIC,
            &name("Sigmoid_1"),
            parts[1],
            u,
        );
        let fc = self.binary(fb::BuiltinOperator::MUL, &name("mul"), f, c, u);
        let g = self.unary(fb::BuiltinOperator::TANH, &name("Tanh"), parts[2], u);
        let ig = self.binary(fb::BuiltinOperator::MUL, &name("mul_1"), i, g, u);
        let c_new = self.binary(fb::BuiltinOperator::ADD, &name("add_1"), fc, ig, u);
        let o = self.unary(
            fb::BuiltinOperator::LOGISTIC,
            &name("Sigmoid_2"),
            parts[3],
            u,
        );
        let tc = self.unary(fb::BuiltinOperator::TANH, &name("Tanh_1"), c_new, u);
        let h_new = self.binary(fb::BuiltinOperator::MUL, &name("mul_2"), o, tc, u);
        vec![h_new, c_new]
    }

    /// FULLY_CONNECTED of `[1, in]` with a Keras kernel `[in, G * u]` (written transposed) and a bias (none
    /// when empty): `[1, G * u]`.
    fn matmul(
        &mut self,
        name: &str,
        x: TensorId,
        kernel: &crate::keras::weights::Array,
        bias: &[f32],
    ) -> TensorId {
        let (rows, cols) = (kernel.shape[0], kernel.shape[1]);
        let w = self.b.constant_f32(
            &format!("{name}/kernel"),
            &[cols, rows],
            &permute(kernel, &[1, 0]),
        );
        let b = (!bias.is_empty()).then(|| {
            self.b
                .constant_f32(&format!("{name}/bias"), &[cols], &bias[..cols])
        });
        let out = self.b.activation(name, &[1, cols]);
        self.b.op(
            fb::BuiltinOperator::FULLY_CONNECTED,
            1,
            &[Some(x), Some(w), b],
            &[out],
            fb::BuiltinOptionsT::FullyConnectedOptions(Box::default()),
        );
        out
    }

    /// The three gates' parts `[1, u]` of `[1, 3u]` as Keras 3 slices them (`prefix` + `strided_slice_{g}`).
    fn gate_slices(&mut self, prefix: &str, rec: TensorId, u: usize) -> Vec<TensorId> {
        (0..3)
            .map(|g| {
                let (begin, end) = (g * u, (g + 1) * u);
                let end_mask = if g == 2 { 3 } else { 1 };
                let begin_mask = if g == 0 { 3 } else { 1 };
                self.slice_2d(
                    &format!("{prefix}strided_slice_{g}"),
                    rec,
                    [begin, end],
                    [begin_mask, end_mask],
                    u,
                )
            })
            .collect()
    }

    /// `x[:, begin:end]` of a `[1, n]` tensor as TF writes it (masks leave open ends open).
    fn slice_2d(
        &mut self,
        name: &str,
        x: TensorId,
        [begin, end]: [usize; 2],
        [begin_mask, end_mask]: [i32; 2],
        u: usize,
    ) -> TensorId {
        let end = if end_mask == 3 { 0 } else { end };
        let mut operands = vec![Some(x)];
        for (k, v) in [
            ("begin", [0, begin as i32]),
            ("end", [0, end as i32]),
            ("strides", [1, 1]),
        ] {
            operands.push(Some(self.b.constant_i32(&format!("{name}/{k}"), &[2], &v)));
        }
        let out = self.b.activation(name, &[1, u]);
        self.b.op(
            fb::BuiltinOperator::STRIDED_SLICE,
            1,
            &operands,
            &[out],
            fb::BuiltinOptionsT::StridedSliceOptions(Box::new(fb::StridedSliceOptionsT {
                begin_mask,
                end_mask,
                ..Default::default()
            })),
        );
        out
    }

    /// SPLIT of `[1, n * u]` on the last axis into `n` tensors `[1, u]`.
    fn split(&mut self, name: &str, x: TensorId, n: usize, u: usize) -> Vec<TensorId> {
        let axis = self
            .b
            .constant_i32(&format!("{name}/split_dim"), &[], &[-1]);
        let outs: Vec<TensorId> = (0..n)
            .map(|i| self.b.activation(&format!("{name}{i}"), &[1, u]))
            .collect();
        self.b.op(
            fb::BuiltinOperator::SPLIT,
            1,
            &[Some(axis), Some(x)],
            &outs,
            fb::BuiltinOptionsT::SplitOptions(Box::new(fb::SplitOptionsT {
                num_splits: n as i32,
            })),
        );
        outs
    }

    /// An elementwise ADD, SUB or MUL with an output `[1, n]`.
    fn binary(
        &mut self,
        code: fb::BuiltinOperator,
        name: &str,
        a: TensorId,
        b: TensorId,
        n: usize,
    ) -> TensorId {
        let out = self.b.activation(name, &[1, n]);
        let options = match code {
            fb::BuiltinOperator::ADD => fb::BuiltinOptionsT::AddOptions(Box::new(add_options())),
            fb::BuiltinOperator::SUB => {
                fb::BuiltinOptionsT::SubOptions(Box::new(fb::SubOptionsT {
                    pot_scale_int16: true,
                    ..Default::default()
                }))
            }
            _ => fb::BuiltinOptionsT::MulOptions(Box::default()),
        };
        self.b.op(code, 1, &[Some(a), Some(b)], &[out], options);
        out
    }

    /// LOGISTIC or TANH with an output `[1, n]`.
    fn unary(&mut self, code: fb::BuiltinOperator, name: &str, x: TensorId, n: usize) -> TensorId {
        let out = self.b.activation(name, &[1, n]);
        self.b
            .op(code, 1, &[Some(x)], &[out], fb::BuiltinOptionsT::NONE);
        out
    }

    /// A new empty subgraph; its index.
    fn subgraph(&mut self, name: &str) -> usize {
        let subgraphs = self.b.graph.model.subgraphs.get_or_insert_with(Vec::new);
        subgraphs.push(fb::SubGraphT {
            name: Some(name.to_string()),
            tensors: Some(Vec::new()),
            inputs: Some(Vec::new()),
            outputs: Some(Vec::new()),
            operators: Some(Vec::new()),
            ..Default::default()
        });
        subgraphs.len() - 1
    }

    /// The focused subgraph's arguments, one tensor per loop variable.
    fn loop_args(
        &mut self,
        call: &LayerCall,
        what: &str,
        arg_shapes: &[(Vec<usize>, fb::TensorType)],
    ) -> Vec<TensorId> {
        arg_shapes
            .iter()
            .enumerate()
            .map(|(i, (shape, type_))| {
                self.b
                    .computed(&format!("{}/{what}_arg{i}", call.name), shape, *type_)
            })
            .collect()
    }

    /// Sets the focused subgraph's inputs and outputs and focuses the main subgraph again.
    fn finish_subgraph(&mut self, inputs: &[TensorId], outputs: &[TensorId]) {
        let ids = |t: &[TensorId]| t.iter().map(|t| t.0 as i32).collect();
        let sg = self.b.graph.main_mut();
        sg.inputs = Some(ids(inputs));
        sg.outputs = Some(ids(outputs));
        self.b.graph.focus(0);
    }
}

/// The loop variables' shapes and types: counter, time, the outputs list `[list_len, 1, U]`, the states
/// `[1, U]`, the time-major input `[T, 1, F]`.
fn loop_shapes(
    steps: usize,
    features: usize,
    list_len: usize,
    u: usize,
    states: usize,
) -> Vec<(Vec<usize>, fb::TensorType)> {
    let (i32_, f32_) = (fb::TensorType::INT32, fb::TensorType::FLOAT32);
    let mut shapes = vec![(vec![], i32_), (vec![], i32_), (vec![list_len, 1, u], f32_)];
    shapes.extend(std::iter::repeat_n((vec![1, u], f32_), states));
    shapes.push((vec![steps, 1, features], f32_));
    shapes
}

fn add_options() -> fb::AddOptionsT {
    fb::AddOptionsT {
        pot_scale_int16: true,
        ..Default::default()
    }
}
