//! MultiHeadAttention (Keras 3, attention over axis 1 of `[1, N, C]` inputs) as TF's converter writes it:
//! FULLY_CONNECTED projections, RESHAPE to heads, TRANSPOSE, BATCH_MATMUL, MUL by `1/sqrt(key_dim)`, SOFTMAX,
//! BATCH_MATMUL, TRANSPOSE back, RESHAPE and the output FULLY_CONNECTED.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{Lowering, Value};
use crate::graph::TensorId;
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::keras::weights::{Array, VarList};
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionOptions {
    num_heads: usize,
    key_dim: usize,
    value_dim: Option<usize>,
    #[serde(default)]
    #[allow(dead_code)] // training only
    dropout: IgnoredAny,
    use_bias: bool,
    output_shape: Option<serde_json::Value>,
    attention_axes: Option<Vec<i64>>,
    #[serde(default)]
    use_gate: bool,
    #[serde(default)]
    sliding_window: Option<serde_json::Value>,
    #[serde(default)]
    flash_attention: Option<bool>,
}

impl Lowering<'_> {
    /// A projection sublayer's kernel `[C, H, D]` and bias `[H, D]` as a Dense kernel `[C, H * D]`, bias `[H * D]`.
    fn projection(
        &self,
        call: &LayerCall,
        key: &str,
        sub: &str,
        shape: [usize; 3],
        use_bias: bool,
    ) -> Result<(Array, Option<Vec<f32>>), KerasErrorKind> {
        let mut vars = VarList::new(&call.name, self.weights.vars(&call.name, &[key, sub])?);
        let k = vars.next(&format!("{sub} kernel"), &shape)?;
        let bias_shape = if sub == "output_dense" {
            vec![shape[2]]
        } else {
            vec![shape[1], shape[2]]
        };
        let b = if use_bias {
            Some(vars.next(&format!("{sub} bias"), &bias_shape)?.data)
        } else {
            None
        };
        vars.finish()?;
        let (rows, cols) = if sub == "output_dense" {
            (shape[0] * shape[1], shape[2])
        } else {
            (shape[0], shape[1] * shape[2])
        };
        Ok((
            Array {
                shape: vec![rows, cols],
                data: k.data,
            },
            b,
        ))
    }

    fn heads(
        &mut self,
        call: &LayerCall,
        what: &str,
        v: &Value,
        heads: usize,
        dim: usize,
        perm: [i32; 4],
    ) -> TensorId {
        let n = v.shape[1];
        let shape4 = self.b.constant_i32(
            &format!("{}/{what}/shape", call.name),
            &[4],
            &[-1, n as i32, heads as i32, dim as i32],
        );
        let split = self.emit(
            call,
            fb::BuiltinOperator::RESHAPE,
            &format!("{what}/Reshape"),
            &[v.tensor, shape4],
            &[1, n, heads, dim],
            fb::BuiltinOptionsT::NONE,
        );
        let p = self
            .b
            .constant_i32(&format!("{}/{what}/perm", call.name), &[4], &perm);
        let out_shape: Vec<usize> = perm
            .iter()
            .map(|&a| [1, n, heads, dim][a as usize])
            .collect();
        self.emit(
            call,
            fb::BuiltinOperator::TRANSPOSE,
            &format!("{what}/transpose"),
            &[split, p],
            &out_shape,
            fb::BuiltinOptionsT::NONE,
        )
    }

    /// MultiHeadAttention(query, value[, key]) over axis 1.
    pub(super) fn attention(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: AttentionOptions = call.options()?;
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if o.use_gate
            || o.flash_attention == Some(true)
            || o.output_shape.as_ref().is_some_and(|v| !v.is_null())
            || o.sliding_window.as_ref().is_some_and(|v| !v.is_null())
            || o.attention_axes
                .as_ref()
                .is_some_and(|a| a.as_slice() != [1])
        {
            return Err(unsupported(
                "use_gate, output_shape, sliding_window, or attention over axes other than 1",
            ));
        }
        if !(2..=3).contains(&call.inputs.len()) {
            return Err(unsupported(
                "a call without query and value tensors (or with a mask tensor)",
            ));
        }
        let inputs = self.inputs(call, call.inputs.len())?;
        let inputs: Vec<Value> = inputs
            .into_iter()
            .map(|v| self.plain(v, &call.name))
            .collect();
        let (query, value) = (&inputs[0], &inputs[1]);
        let key_in = inputs.get(2).unwrap_or(value);
        if inputs.iter().any(|v| v.shape.len() != 3) {
            return Err(unsupported("inputs other than [batch, sequence, features]"));
        }
        let (h, dk) = (o.num_heads, o.key_dim);
        let dv = o.value_dim.unwrap_or(dk);
        let weights_key = self
            .weight_keys
            .get(&call.name)
            .cloned()
            .unwrap_or_else(|| call.name.clone());
        let (qk, qb) = self.projection(
            call,
            &weights_key,
            "query_dense",
            [query.shape[2], h, dk],
            o.use_bias,
        )?;
        let (kk, kb) = self.projection(
            call,
            &weights_key,
            "key_dense",
            [key_in.shape[2], h, dk],
            o.use_bias,
        )?;
        let (vk, vb) = self.projection(
            call,
            &weights_key,
            "value_dense",
            [value.shape[2], h, dv],
            o.use_bias,
        )?;
        let out_c = query.shape[2];
        let (ok, ob) = self.projection(
            call,
            &weights_key,
            "output_dense",
            [h, dv, out_c],
            o.use_bias,
        )?;
        let (nq, nk) = (query.shape[1], key_in.shape[1]);
        let k = self.fully_connected(call, "key", key_in, &kk, kb.as_deref());
        let q = self.fully_connected(call, "query", query, &qk, qb.as_deref());
        let q = self.heads(call, "query", &q, h, dk, [0, 2, 1, 3]);
        let k = self.heads(call, "key", &k, h, dk, [0, 2, 3, 1]);
        let matmul = || fb::BuiltinOptionsT::BatchMatMulOptions(Box::default());
        let scores = self.emit(
            call,
            fb::BuiltinOperator::BATCH_MATMUL,
            "einsum/Einsum",
            &[q, k],
            &[1, h, nq, nk],
            matmul(),
        );
        let scale = (1.0f64 / (dk as f64).sqrt()) as f32;
        let scale = self
            .b
            .constant_f32(&format!("{}/Mul/y", call.name), &[], &[scale]);
        let scaled = self.emit(
            call,
            fb::BuiltinOperator::MUL,
            "Mul",
            &[scores, scale],
            &[1, h, nq, nk],
            fb::BuiltinOptionsT::MulOptions(Box::default()),
        );
        let probs = self.emit(
            call,
            fb::BuiltinOperator::SOFTMAX,
            "softmax/Softmax",
            &[scaled],
            &[1, h, nq, nk],
            fb::BuiltinOptionsT::SoftmaxOptions(Box::new(fb::SoftmaxOptionsT { beta: 1.0 })),
        );
        let v = self.fully_connected(call, "value", value, &vk, vb.as_deref());
        let v = self.heads(call, "value", &v, h, dv, [0, 2, 1, 3]);
        let ctx = self.emit(
            call,
            fb::BuiltinOperator::BATCH_MATMUL,
            "einsum_1/Einsum",
            &[probs, v],
            &[1, h, nq, dv],
            matmul(),
        );
        let perm = self
            .b
            .constant_i32(&format!("{}/context/perm", call.name), &[4], &[0, 2, 1, 3]);
        let ctx = self.emit(
            call,
            fb::BuiltinOperator::TRANSPOSE,
            "context/transpose",
            &[ctx, perm],
            &[1, nq, h, dv],
            fb::BuiltinOptionsT::NONE,
        );
        let shape3 = self.b.constant_i32(
            &format!("{}/context/shape", call.name),
            &[3],
            &[-1, nq as i32, (h * dv) as i32],
        );
        let merged_shape = [1, nq, h * dv];
        let merged = self.emit(
            call,
            fb::BuiltinOperator::RESHAPE,
            "context/Reshape",
            &[ctx, shape3],
            &merged_shape,
            fb::BuiltinOptionsT::NONE,
        );
        let merged = Value {
            tensor: merged,
            shape: merged_shape.to_vec(),
            expanded: false,
            pad: None,
        };
        Ok(self.fully_connected(call, "attention_output", &merged, &ok, ob.as_deref()))
    }
}
