//! STRIDED_SLICE on quantized tensors: codes copied unchanged (the output carries the input's params), by
//! the float kernel's slicing run on the integer codes.

use super::{codes, from_codes, OpCtx};
use crate::calibrate::{OpContext, Value};
use crate::interp::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

pub(crate) fn strided_slice(ctx: &OpCtx<'_>) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let x =
        ArrayD::from_shape_vec(IxDyn(&input.shape), codes(input)?).map_err(|e| e.to_string())?;
    let mut values = vec![Value::I32(x)];
    for i in 1..4 {
        let t = ctx.input(i)?;
        let v = t
            .data
            .to_i64()
            .ok_or_else(|| format!("input {i} is not an integer tensor"))?;
        values.push(Value::I64(
            ArrayD::from_shape_vec(IxDyn(&t.shape), v).map_err(|e| e.to_string())?,
        ));
    }
    let fctx = OpContext {
        graph: ctx.graph,
        op: ctx.op,
        inputs: values.iter().map(Some).collect(),
        calls: None,
    };
    let out = crate::calibrate::ops::slice::strided_slice(&fctx).map_err(|e| e.to_string())?;
    match out.into_iter().next() {
        Some(Value::I32(a)) => {
            let shape = a.shape().to_vec();
            Ok(vec![from_codes(
                shape,
                ctx.output_type(0)?,
                a.into_iter().collect(),
            )?])
        }
        _ => Err("internal: the slice produced no integer value".into()),
    }
}
