//! Preprocessing layers inside the model: Rescaling (MUL, ADD), Normalization (SUB, MUL by the reciprocal
//! standard deviation) and Embedding (GATHER of the table, negative ids wrapped as TF writes it).

use serde::Deserialize;

use super::fold::ScalarAffine;
use super::{Lowering, Producer, ProducerKind, Value};
use crate::graph::{OpIndex, TensorId};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescalingOptions {
    scale: f32,
    #[serde(default)]
    offset: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizationOptions {
    #[serde(default = "last")]
    axis: serde_json::Value,
    #[serde(default)]
    invert: bool,
    #[serde(default)]
    mean: Option<Vec<f32>>,
    #[serde(default)]
    variance: Option<Vec<f32>>,
}

fn last() -> serde_json::Value {
    serde_json::Value::from(-1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingOptions {
    input_dim: usize,
    output_dim: usize,
    #[serde(default)]
    mask_zero: bool,
    /// Keras 2 only; the input shape says the same.
    #[serde(default)]
    #[allow(dead_code)]
    input_length: serde_json::Value,
    #[serde(default)]
    sparse: bool,
}

/// Keras' `backend.epsilon()`, the floor of Normalization's standard deviation.
const KERAS_EPSILON: f32 = 1e-7;

impl Lowering<'_> {
    /// An element-wise op of `v` with a float constant, registered as a fusable producer.
    fn with_constant(
        &mut self,
        call: &LayerCall,
        code: fb::BuiltinOperator,
        what: &str,
        v: &Value,
        constant: TensorId,
    ) -> Value {
        let options = super::merge::binary_options(code);
        let out = self.out(call, what, &v.tfl_shape());
        let op = self
            .b
            .op(code, 1, &[Some(v.tensor), Some(constant)], &[out], options);
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Elementwise,
                weights: None,
                bias: None,
            },
        );
        Value {
            tensor: out,
            ..v.clone()
        }
    }

    /// Rescaling: folded into the convolution or Dense before it, else MUL by `scale` (unless 1), then ADD
    /// `offset` (unless 0), which the Dense or convolution after it may absorb.
    pub(super) fn rescaling(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: RescalingOptions = call.options()?;
        let input = self.raw_inputs(call, 1)?.remove(0);
        if self.fold_into_producer(call, &input, o.scale, o.offset) {
            return Ok(input);
        }
        let mut v = self.resolve_pad(input, &call.name);
        let source = v.tensor;
        let first = self.b.graph.ops().len();
        if o.scale != 1.0 {
            let k = self
                .b
                .constant_f32(&format!("{}/Cast/x", call.name), &[], &[o.scale]);
            v = self.with_constant(call, fb::BuiltinOperator::MUL, "mul", &v, k);
        }
        if o.offset != 0.0 {
            let k = self
                .b
                .constant_f32(&format!("{}/Cast_1/x", call.name), &[], &[o.offset]);
            v = self.with_constant(call, fb::BuiltinOperator::ADD, "add", &v, k);
        }
        if v.tensor != source {
            let ops = (first..self.b.graph.ops().len()).map(OpIndex).collect();
            self.scalars.insert(
                v.tensor,
                ScalarAffine {
                    input: source,
                    scale: o.scale,
                    offset: o.offset,
                    ops,
                },
            );
        }
        Ok(v)
    }

    /// Normalization over the last axis: `(x - mean) * (1 / max(sqrt(variance), epsilon))`, SUB and MUL by
    /// constants of the input's rank.
    pub(super) fn normalization(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: NormalizationOptions = call.options()?;
        let unsupported = |m: String| KerasErrorKind::unsupported(&call.name, &call.class, m);
        let input = self.inputs(call, 1)?.remove(0);
        let v = self.plain(input, &call.name);
        let rank = v.shape.len();
        let axis = match &o.axis {
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_i64(),
            a => a.as_i64(),
        };
        if o.invert || !(axis == Some(-1) || axis == Some(rank as i64 - 1)) {
            return Err(unsupported(format!(
                "invert = {} with axis {} (only the last axis, not inverted)",
                o.invert, o.axis
            )));
        }
        let c = v.shape[rank - 1];
        let (mean, variance) = match (o.mean, o.variance) {
            (Some(m), Some(var)) => (m, var),
            (None, None) => {
                let mut vars = self.vars(call)?;
                let m = vars.next("mean", &[c])?.data;
                let var = vars.next("variance", &[c])?.data;
                // `count` only matters to adapt().
                let _ = vars.next("count", &[])?;
                vars.finish()?;
                (m, var)
            }
            _ => return Err(unsupported("mean without variance".into())),
        };
        if mean.len() != c || variance.len() != c {
            return Err(unsupported(format!(
                "mean and variance of {} and {} values for {c} channels",
                mean.len(),
                variance.len()
            )));
        }
        let inv: Vec<f32> = variance
            .iter()
            .map(|&var| 1.0 / var.sqrt().max(KERAS_EPSILON))
            .collect();
        let mut param = vec![1; rank];
        param[rank - 1] = c;
        let mean = self
            .b
            .constant_f32(&format!("{}/mean", call.name), &param, &mean);
        let inv = self
            .b
            .constant_f32(&format!("{}/truediv/y", call.name), &param, &inv);
        let centered = self.with_constant(call, fb::BuiltinOperator::SUB, "Sub", &v, mean);
        Ok(self.with_constant(call, fb::BuiltinOperator::MUL, "truediv", &centered, inv))
    }

    /// Embedding on int32 ids: negative ids wrap (LESS, ADD `input_dim`, SELECT), then GATHER of the table.
    pub(super) fn embedding(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: EmbeddingOptions = call.options()?;
        let unsupported = |m: &str| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if o.mask_zero || o.sparse {
            return Err(unsupported("mask_zero and sparse are not lowered"));
        }
        let v = self.inputs(call, 1)?.remove(0);
        let v = self.plain(v, &call.name);
        if self.b.graph.tensor(v.tensor).type_ != fb::TensorType::INT32 {
            return Err(unsupported(
                "ids that are not an int32 model input (declare the Input with dtype=\"int32\")",
            ));
        }
        let mut vars = self.vars(call)?;
        let table = vars.next("embeddings", &[o.input_dim, o.output_dim])?;
        vars.finish()?;
        let name = &call.name;
        let int = fb::TensorType::INT32;
        let zero = self.b.constant_i32(&format!("{name}/Less/y"), &[], &[0]);
        let dim = i32::try_from(o.input_dim).map_err(|_| unsupported("input_dim above 2^31"))?;
        let dim = self.b.constant_i32(&format!("{name}/add/y"), &[], &[dim]);
        let negative = self
            .b
            .computed(&format!("{name}/Less"), &v.shape, fb::TensorType::BOOL);
        self.b.op(
            fb::BuiltinOperator::LESS,
            1,
            &[Some(v.tensor), Some(zero)],
            &[negative],
            fb::BuiltinOptionsT::NONE,
        );
        let wrapped = self.b.computed(&format!("{name}/add"), &v.shape, int);
        let add = fb::AddOptionsT {
            pot_scale_int16: true,
            ..Default::default()
        };
        self.b.op(
            fb::BuiltinOperator::ADD,
            1,
            &[Some(v.tensor), Some(dim)],
            &[wrapped],
            fb::BuiltinOptionsT::AddOptions(Box::new(add)),
        );
        let ids = self.b.computed(&format!("{name}/SelectV2"), &v.shape, int);
        self.b.op(
            fb::BuiltinOperator::SELECT,
            1,
            &[Some(negative), Some(wrapped), Some(v.tensor)],
            &[ids],
            fb::BuiltinOptionsT::SelectOptions(Box::default()),
        );
        let table = self.b.constant_f32(
            &format!("{name}/embeddings"),
            &[o.input_dim, o.output_dim],
            &table.data,
        );
        let mut shape = v.shape.clone();
        shape.push(o.output_dim);
        let out = self.emit(
            call,
            fb::BuiltinOperator::GATHER,
            "GatherV2",
            &[table, ids],
            &shape,
            fb::BuiltinOptionsT::GatherOptions(Box::default()),
        );
        Ok(Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        })
    }
}
