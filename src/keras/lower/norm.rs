//! LayerNormalization over the last axis, as TF's converter writes it: MEAN, NEG, SQUARED_DIFFERENCE, MEAN,
//! ADD epsilon, RSQRT, then `x * s + (beta - mean * s)` with `s = rsqrt(var + eps) * gamma`.

use serde::Deserialize;

use super::{Lowering, Value};
use crate::graph::TensorId;
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerNormOptions {
    #[serde(default = "last")]
    axis: serde_json::Value,
    epsilon: f32,
    center: bool,
    scale: bool,
    #[serde(default)]
    rms_scaling: bool,
}

fn last() -> serde_json::Value {
    serde_json::Value::from(-1)
}

impl Lowering<'_> {
    /// Appends an op of `code` on `inputs` with one output of `shape`; returns the output.
    pub(super) fn emit(
        &mut self,
        call: &LayerCall,
        code: fb::BuiltinOperator,
        what: &str,
        inputs: &[TensorId],
        shape: &[usize],
        options: fb::BuiltinOptionsT,
    ) -> TensorId {
        let out = self.out(call, what, shape);
        let inputs: Vec<_> = inputs.iter().map(|&t| Some(t)).collect();
        self.b.op(code, 1, &inputs, &[out], options);
        out
    }

    /// LayerNormalization on the last axis.
    pub(super) fn layer_norm(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: LayerNormOptions = call.options()?;
        let input = self.inputs(call, 1)?.remove(0);
        let x = self.plain(input, &call.name);
        let rank = x.shape.len();
        let axis = match &o.axis {
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_i64(),
            v => v.as_i64(),
        };
        if o.rms_scaling || !(axis == Some(-1) || axis == Some(rank as i64 - 1)) {
            return Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                "rms_scaling, or an axis other than the last",
            ));
        }
        let c = x.shape[rank - 1];
        let mut vars = self.vars(call)?;
        let gamma = if o.scale {
            Some(vars.next("gamma", &[c])?.data)
        } else {
            None
        };
        let beta = if o.center {
            Some(vars.next("beta", &[c])?.data)
        } else {
            None
        };
        vars.finish()?;
        let mut reduced = x.shape.clone();
        reduced[rank - 1] = 1;
        let mut param_shape = vec![1; rank];
        param_shape[rank - 1] = c;
        let name = &call.name;
        let axes = self.b.constant_i32(&format!("{name}/axes"), &[1], &[-1]);
        let keep = || {
            fb::BuiltinOptionsT::ReducerOptions(Box::new(fb::ReducerOptionsT { keep_dims: true }))
        };
        let add = || {
            fb::BuiltinOptionsT::AddOptions(Box::new(fb::AddOptionsT {
                pot_scale_int16: true,
                ..Default::default()
            }))
        };
        let mul = || fb::BuiltinOptionsT::MulOptions(Box::default());
        use fb::BuiltinOperator as Op;
        let mean = self.emit(
            call,
            Op::MEAN,
            "moments/mean",
            &[x.tensor, axes],
            &reduced,
            keep(),
        );
        let neg = self.emit(
            call,
            Op::NEG,
            "moments/neg",
            &[mean],
            &reduced,
            fb::BuiltinOptionsT::NONE,
        );
        let sq = self.emit(
            call,
            Op::SQUARED_DIFFERENCE,
            "moments/SquaredDifference",
            &[x.tensor, mean],
            &x.shape,
            fb::BuiltinOptionsT::NONE,
        );
        let var = self.emit(
            call,
            Op::MEAN,
            "moments/variance",
            &[sq, axes],
            &reduced,
            keep(),
        );
        let eps = self
            .b
            .constant_f32(&format!("{name}/epsilon"), &[], &[o.epsilon]);
        let var_eps = self.emit(call, Op::ADD, "add", &[var, eps], &reduced, add());
        let inv = self.emit(
            call,
            Op::RSQRT,
            "Rsqrt",
            &[var_eps],
            &reduced,
            fb::BuiltinOptionsT::NONE,
        );
        let (s, s_shape) = match gamma {
            Some(g) => {
                let g = self
                    .b
                    .constant_f32(&format!("{name}/gamma"), &param_shape, &g);
                (
                    self.emit(call, Op::MUL, "mul", &[inv, g], &x.shape, mul()),
                    x.shape.clone(),
                )
            }
            None => (inv, reduced.clone()),
        };
        let shifted = self.emit(call, Op::MUL, "mul_1", &[neg, s], &s_shape, mul());
        let offset = match beta {
            Some(b) => {
                let b = self
                    .b
                    .constant_f32(&format!("{name}/beta"), &param_shape, &b);
                self.emit(call, Op::ADD, "add_1", &[shifted, b], &s_shape, add())
            }
            None => shifted,
        };
        let scaled = self.emit(call, Op::MUL, "mul_2", &[x.tensor, s], &x.shape, mul());
        let out = self.emit(call, Op::ADD, "add_2", &[scaled, offset], &x.shape, add());
        Ok(Value { tensor: out, ..x })
    }
}
