//! Control flow and resource variables: WHILE, IF, CALL_ONCE, VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE. They run other subgraphs; the interpreters run those (the float one
//! through [`crate::calibrate::OpContext::call`]).

use super::{OpDef, OpTable};
use crate::calibrate::ops::control::{
    assign_variable, call_once, if_then_else, read_variable, var_handle, while_loop,
};
use crate::quantize::rules::OpRule;
use crate::tflite::fb::BuiltinOperator as Op;

const IF_FLOAT: &str =
    "an IF stays float (its branches are quantized inside, between QUANTIZE and \
     DEQUANTIZE ops at their boundary): TF's converter has no rule for it either";
const CALL_ONCE_NOTHING: &str =
    "CALL_ONCE has no tensors to quantize (its init subgraph is quantized)";
const HANDLE: &str = "a resource handle is no number to quantize";
const VARIABLES: &str =
    "litequant has no rule for resource variables yet: they stay float (quantized ops \
     around them are DEQUANTIZEd and QUANTIZEd at their boundary)";
const INTERP_WHILE: &str =
    "litequant's integer interpreter runs WHILE through its subgraph support";

pub(super) fn register(t: &mut OpTable) {
    let op = OpDef::weightless;
    t.add(
        op(Op::WHILE)
            .float(while_loop)
            .quantize(OpRule::loop_carried(1))
            .no_integer(INTERP_WHILE),
    );
    t.add(op(Op::IF).float(if_then_else).float_only(IF_FLOAT));
    t.add(
        op(Op::CALL_ONCE)
            .float(call_once)
            .float_only(CALL_ONCE_NOTHING),
    );
    t.add(op(Op::VAR_HANDLE).float(var_handle).float_only(HANDLE));
    t.add(
        op(Op::READ_VARIABLE)
            .float(read_variable)
            .float_only(VARIABLES),
    );
    t.add(
        op(Op::ASSIGN_VARIABLE)
            .float(assign_variable)
            .float_only(VARIABLES),
    );
}
