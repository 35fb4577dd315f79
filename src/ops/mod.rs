//! The op table: every builtin op litequant knows, each declared once, in its family's file, with all its
//! faces.
//!
//! An op has these faces, and for each one it either has it or states why not ([`Face`]):
//! * its **float kernel** (calibration, eval, float fallback);
//! * its **quantization rule** per integer mode, int8 and int16x8 ([`OpRule`]: activation inputs, weights,
//!   bias, output params, same-scale constraints);
//! * its **integer kernel** per activation type in litequant's interpreter (int8, int16), for eval;
//! * its **dynamic-mode weights** ([`DynamicWeights`]) and the **hybrid kernel** that reads them; float16
//!   mode stores the same operands as FLOAT16 ([`OpDef::float16_weights`]).
//!
//! Everything else is a query on this table: the float kernel registry
//! ([`crate::calibrate::Registry`]), the rule registry ([`crate::quantize::rules::RuleRegistry`]), the
//! interpreter's integer and hybrid kernels, dynamic mode's weight table and `inspect`'s capability column
//! ([`modes`]). `quantize::versions` stays a port of LiteRT's `op_version.cc`.
//!
//! Adding an op: one [`OpDef`] line in its family's `register` (here, in `src/ops/<family>.rs`), naming
//! the kernels (whose bodies live in `calibrate::ops` and `interp::kernels`) and the rule, or the reason for
//! each face it lacks. The table test walks every op; the generated single-op suite
//! (`tests/ops_generated.rs`) then quantizes and runs it in LiteRT.

mod activation;
mod arithmetic;
mod compare;
mod concat;
mod control;
mod conv;
mod dense;
mod math;
mod pad;
mod pool;
mod quantize;
mod recurrent;
mod reduce;
mod resize;
mod shape;
mod slice;
mod space;
#[cfg(test)]
mod tests;

use crate::calibrate::Kernel as FloatKernel;
use crate::graph::{Graph, OpIndex};
use crate::interp::IntegerKernel;
use crate::quantize::params::ActivationType;
use crate::quantize::rules::{OpRule, PerChannelSwitch};
use crate::quantize::{Mode, QuantOptions};
use crate::tflite::fb;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One face of an op: what the op has, or the stated reason it has none.
#[derive(Debug, Clone, Copy)]
pub enum Face<T> {
    /// The op has this face.
    Has(T),
    /// Why the op lacks it (reported by `build` and `inspect`).
    Missing(&'static str),
}

impl<T> Face<T> {
    /// The face as a result: the value, or the reason it is missing.
    pub fn result(&self) -> Result<&T, &'static str> {
        match self {
            Face::Has(v) => Ok(v),
            Face::Missing(why) => Err(why),
        }
    }

    /// Whether the op has this face.
    pub fn is_present(&self) -> bool {
        matches!(self, Face::Has(_))
    }

    /// The reason the face is missing, if it is.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Face::Has(_) => None,
            Face::Missing(why) => Some(why),
        }
    }
}

/// How an op reads its int8 weights in dynamic mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKernel {
    /// The op's hybrid kernel reads int8 weights and float activations.
    Hybrid,
    /// The weights are stored int8; a DEQUANTIZE feeds the float kernel.
    WeightOnly,
}

/// Extra condition under which an op gets int8 weights in dynamic mode (`Err`: why it keeps float ones).
pub type WeightCondition = fn(&Graph, OpIndex, &QuantOptions) -> Result<(), String>;

/// Which inputs of an op dynamic mode quantizes to int8, and how the op reads them.
#[derive(Debug, Clone, Copy)]
pub struct DynamicWeights {
    /// Input positions of the weights (recurrent kernels take all of them int8 or none).
    pub inputs: &'static [usize],
    /// The option that turns per-channel weights on, and the channel axis; `None`: per tensor.
    pub per_channel: Option<(PerChannelSwitch, usize)>,
    /// How the op reads them.
    pub kernel: WeightKernel,
    /// Set `asymmetric_quantize_inputs` in the op's options (TF's updated hybrid scheme).
    pub asymmetric_inputs: bool,
    /// Op-specific condition (sparse weights, the basic LSTM kernel, ...).
    pub condition: Option<WeightCondition>,
}

impl DynamicWeights {
    /// Per-tensor int8 weights at `inputs`, read by the op's hybrid kernel.
    pub(crate) const fn hybrid(
        inputs: &'static [usize],
        asymmetric_inputs: bool,
    ) -> DynamicWeights {
        DynamicWeights {
            inputs,
            per_channel: None,
            kernel: WeightKernel::Hybrid,
            asymmetric_inputs,
            condition: None,
        }
    }

    /// The channel axis under `opts`, or `None` for per-tensor weights.
    pub fn axis(&self, opts: &QuantOptions) -> Option<usize> {
        let (switch, axis) = self.per_channel?;
        let on = match switch {
            PerChannelSwitch::Conv => opts.per_channel,
            PerChannelSwitch::Dense => opts.per_channel_dense,
        };
        on.then_some(axis)
    }
}

/// Every face of one builtin op. Built in the op's family file with the `OpDef::new(code)` chain.
#[derive(Debug, Clone)]
pub struct OpDef {
    code: fb::BuiltinOperator,
    pub(crate) float: Face<FloatKernel>,
    int8: Face<OpRule>,
    int16x8: Face<OpRule>,
    pub(crate) int8_kernel: Face<IntegerKernel>,
    pub(crate) int16_kernel: Face<IntegerKernel>,
    dynamic: Face<DynamicWeights>,
    pub(crate) hybrid: Face<IntegerKernel>,
    /// Kept float even under `TFLITE_BUILTINS_INT8`, as TF's converter does (the reason).
    float_in_every_op_set: Option<&'static str>,
}

/// The reason of a face nobody declared: the table test rejects it.
const UNDECLARED: &str = "";

impl OpDef {
    /// An op with no face declared yet: each one must then be given, or refused with a reason.
    pub(crate) const fn new(code: fb::BuiltinOperator) -> OpDef {
        OpDef {
            code,
            float: Face::Missing(UNDECLARED),
            int8: Face::Missing(UNDECLARED),
            int16x8: Face::Missing(UNDECLARED),
            int8_kernel: Face::Missing(UNDECLARED),
            int16_kernel: Face::Missing(UNDECLARED),
            dynamic: Face::Missing(UNDECLARED),
            hybrid: Face::Missing(UNDECLARED),
            float_in_every_op_set: None,
        }
    }

    /// An op without weights: dynamic mode leaves it float ([`NO_WEIGHTS`]); every other face to declare.
    pub(crate) const fn weightless(code: fb::BuiltinOperator) -> OpDef {
        let mut def = OpDef::new(code);
        def.dynamic = Face::Missing(NO_WEIGHTS);
        def.hybrid = Face::Missing(NO_WEIGHTS);
        def
    }

    /// Its float kernel.
    pub(crate) fn float(mut self, k: FloatKernel) -> OpDef {
        self.float = Face::Has(k);
        self
    }

    /// It has no float kernel, and why.
    pub(crate) fn no_float(mut self, why: &'static str) -> OpDef {
        self.float = Face::Missing(why);
        self
    }

    /// Its quantization rule, the same in int8 and int16x8.
    pub(crate) fn quantize(mut self, rule: OpRule) -> OpDef {
        self.int8 = Face::Has(rule.clone());
        self.int16x8 = Face::Has(rule);
        self
    }

    /// Its int8 quantization rule; int16x8 keeps it float for `no_int16`.
    pub(crate) fn quantize_int8(mut self, rule: OpRule, no_int16: &'static str) -> OpDef {
        self.int8 = Face::Has(rule);
        self.int16x8 = Face::Missing(no_int16);
        self
    }

    /// Neither integer mode quantizes it, and why.
    pub(crate) fn no_rule(mut self, why: &'static str) -> OpDef {
        self.int8 = Face::Missing(why);
        self.int16x8 = Face::Missing(why);
        self
    }

    /// Neither integer mode quantizes it (for `why`), so it needs no integer kernel.
    pub(crate) fn float_only(self, why: &'static str) -> OpDef {
        self.no_rule(why).no_integer(NO_RULE_NO_KERNEL)
    }

    /// Neither integer mode quantizes it, and even `TFLITE_BUILTINS_INT8` keeps it float (as TF's
    /// converter does), for `why`.
    pub(crate) fn float_in_every_op_set(mut self, why: &'static str) -> OpDef {
        self.float_in_every_op_set = Some(why);
        self.no_rule(why)
    }

    /// Its integer kernel in the interpreter, for int8 and int16 activations.
    pub(crate) fn integer(mut self, k: IntegerKernel) -> OpDef {
        self.int8_kernel = Face::Has(k);
        self.int16_kernel = Face::Has(k);
        self
    }

    /// Its int8 kernel; no int16 one, for `no_int16`.
    pub(crate) fn int8_kernel(mut self, k: IntegerKernel, no_int16: &'static str) -> OpDef {
        self.int8_kernel = Face::Has(k);
        self.int16_kernel = Face::Missing(no_int16);
        self
    }

    /// The interpreter has no integer kernel for it, and why.
    pub(crate) fn no_integer(mut self, why: &'static str) -> OpDef {
        self.int8_kernel = Face::Missing(why);
        self.int16_kernel = Face::Missing(why);
        self
    }

    /// The weights dynamic mode gives int8.
    pub(crate) fn dynamic(mut self, weights: DynamicWeights) -> OpDef {
        self.dynamic = Face::Has(weights);
        self
    }

    /// Its hybrid kernel (float activations, int8 weights) in the interpreter.
    pub(crate) fn hybrid(mut self, k: IntegerKernel) -> OpDef {
        self.hybrid = Face::Has(k);
        self
    }

    /// The interpreter has no hybrid kernel for it, and why.
    pub(crate) fn no_hybrid(mut self, why: &'static str) -> OpDef {
        self.hybrid = Face::Missing(why);
        self
    }

    /// Why the integer modes keep it float even under `TFLITE_BUILTINS_INT8` (TF does the same), if so.
    pub fn kept_float_in_every_op_set(&self) -> Option<&'static str> {
        self.float_in_every_op_set
    }

    /// The op code.
    pub fn code(&self) -> fb::BuiltinOperator {
        self.code
    }

    /// Whether it has a float kernel, or why not.
    pub fn float_kernel(&self) -> Result<(), &'static str> {
        self.float.result().map(|_| ())
    }

    /// How the integer mode with activations `ty` quantizes it, or why it keeps it float.
    pub fn rule(&self, ty: ActivationType) -> Result<&OpRule, &'static str> {
        match ty {
            ActivationType::Int8 => self.int8.result(),
            ActivationType::Int16 => self.int16x8.result(),
        }
    }

    /// Whether the interpreter has its integer kernel for activations `ty`, or why not.
    pub fn integer_kernel(&self, ty: ActivationType) -> Result<(), &'static str> {
        self.integer_kernel_fn(ty).map(|_| ())
    }

    pub(crate) fn integer_kernel_fn(
        &self,
        ty: ActivationType,
    ) -> Result<IntegerKernel, &'static str> {
        match ty {
            ActivationType::Int8 => self.int8_kernel.result().copied(),
            ActivationType::Int16 => self.int16_kernel.result().copied(),
        }
    }

    /// The weights dynamic mode gives int8, or why it keeps them float.
    pub fn dynamic_weights(&self) -> Result<&DynamicWeights, &'static str> {
        self.dynamic.result()
    }

    /// The inputs float16 mode stores as FLOAT16: the op's weights, the operands dynamic mode makes int8
    /// (whatever their size and dynamic mode's conditions); none for an op without weights. Biases and
    /// other constants stay float32, as in ai-edge-quantizer's float casting.
    pub fn float16_weights(&self) -> &'static [usize] {
        self.dynamic.result().map_or(&[], |w| w.inputs)
    }

    /// Whether the interpreter has its hybrid kernel, or why not.
    pub fn hybrid_kernel(&self) -> Result<(), &'static str> {
        self.hybrid.result().map(|_| ())
    }

    /// The modes that can quantize it, in the order dynamic, float16, int8, int16x8 (float16 runs any op;
    /// it stores [`OpDef::float16_weights`] as float16). The integer modes need its rule and its float kernel
    /// (calibration runs the float model).
    pub fn modes(&self) -> Vec<Mode> {
        [Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8]
            .into_iter()
            .filter(|&m| self.reason_float(m).is_none())
            .collect()
    }

    /// Why `mode` leaves it float, or `None` when `mode` acts on it.
    pub fn reason_float(&self, mode: Mode) -> Option<&'static str> {
        let integer = |rule: &Face<OpRule>| rule.reason().or_else(|| self.float.reason());
        match mode {
            Mode::Dynamic => self.dynamic.reason(),
            Mode::Float16 => None,
            Mode::Int8 => integer(&self.int8),
            Mode::Int16x8 => integer(&self.int16x8),
        }
    }
}

/// Every op definition, keyed by op code.
#[derive(Debug, Default)]
pub struct OpTable {
    ops: BTreeMap<i32, OpDef>,
    /// Codes declared twice (the table test requires none).
    duplicates: Vec<fb::BuiltinOperator>,
}

impl OpTable {
    fn build() -> OpTable {
        let mut t = OpTable::default();
        activation::register(&mut t);
        arithmetic::register(&mut t);
        compare::register(&mut t);
        concat::register(&mut t);
        control::register(&mut t);
        conv::register(&mut t);
        dense::register(&mut t);
        math::register(&mut t);
        pad::register(&mut t);
        pool::register(&mut t);
        quantize::register(&mut t);
        recurrent::register(&mut t);
        reduce::register(&mut t);
        resize::register(&mut t);
        shape::register(&mut t);
        slice::register(&mut t);
        space::register(&mut t);
        t
    }

    /// Declares an op (a second declaration of the same code is recorded as an error for the table test).
    pub(crate) fn add(&mut self, def: OpDef) {
        if self.ops.insert(def.code.0, def.clone()).is_some() {
            self.duplicates.push(def.code);
        }
    }

    /// The definition of an op code.
    pub fn get(&self, code: fb::BuiltinOperator) -> Option<&OpDef> {
        self.ops.get(&code.0)
    }

    /// Every definition, in op-code order.
    pub fn iter(&self) -> impl Iterator<Item = &OpDef> {
        self.ops.values()
    }
}

/// The op table (built once).
pub fn table() -> &'static OpTable {
    static TABLE: OnceLock<OpTable> = OnceLock::new();
    TABLE.get_or_init(OpTable::build)
}

/// The modes that can quantize an op of type `code` (`inspect`'s capability column): float16 alone for an
/// op outside the table.
pub fn modes(code: fb::BuiltinOperator) -> Vec<Mode> {
    table()
        .get(code)
        .map_or_else(|| vec![Mode::Float16], OpDef::modes)
}

// Reasons shared by many ops. Op-specific ones are written where the op is declared.

/// Dynamic mode: nothing to quantize.
pub(crate) const NO_WEIGHTS: &str =
    "it has no weight input with an int8 kernel: dynamic mode leaves it float";
/// A rule TF's converter has and litequant lacks.
pub(crate) const NO_RULE_YET: &str =
    "litequant has no quantization rule for it yet (TF's converter quantizes it)";
/// Outside TF's operator property table.
pub(crate) const KEPT_FLOAT_BY_TF: &str =
    "TF's converter keeps it float (no entry in LiteRT's operator_property.cc)";
/// Quantized by a rule, not yet run by the interpreter (no op of the table is left so today).
#[allow(dead_code)]
pub(crate) const NOT_IN_INTERPRETER: &str =
    "litequant's integer interpreter has no kernel for it yet: eval cannot run it quantized";
/// No rule, so no integer kernel is needed.
pub(crate) const NO_RULE_NO_KERNEL: &str = "it is never quantized, so it needs no integer kernel";
/// int8 only in LiteRT.
pub(crate) const NO_INT16_KERNEL: &str =
    "LiteRT 2.3 has no int16 (16x8) kernel for it (quantizable_int16 = false): int16x8 keeps it float";
/// int8 only in TF's converter, though LiteRT has an int16 kernel.
pub(crate) const NOT_INT16_BY_TF: &str =
    "TF's converter keeps it float in int16x8 (quantizable_int16 = false in operator_property.cc)";
