//! The operator property table: how each op is quantized, one module per op family.
//!
//! Each family registers its ops in a [`RuleRegistry`] keyed by builtin op code (like TFLite's
//! `operator_property.cc`); the registry is the single list of ops litequant can quantize to integers.
//! An op without a rule stays float (or fails the job under `TFLITE_BUILTINS_INT8`).

mod activation;
mod conv;
mod elementwise;
mod pool;
mod shape;

use crate::quantize::params::ActivationType;
use crate::tflite::fb;
use std::collections::BTreeMap;

/// Which inputs of an op carry real-valued activations (quantized with per-tensor activation params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationInputs {
    /// These input positions (shape, axis and index inputs are left alone).
    Indices(&'static [usize]),
    /// Every input (CONCATENATION, PACK, MAXIMUM, ...).
    All,
}

impl ActivationInputs {
    /// Whether input position `i` of an op with `n` inputs is an activation.
    pub fn contains(self, i: usize, n: usize) -> bool {
        match self {
            ActivationInputs::Indices(list) => list.contains(&i),
            ActivationInputs::All => i < n,
        }
    }
}

/// Which option decides per-channel weights for an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerChannelSwitch {
    /// `per_channel` (CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV).
    Conv,
    /// `per_channel_dense` (FULLY_CONNECTED).
    Dense,
}

/// A constant weight input: int8 symmetric in [-127, 127], per channel along `axis` when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightRule {
    /// Input position of the weights.
    pub input: usize,
    /// Axis of the output channels (0 for OHWI, 3 for depthwise 1HWO).
    pub axis: usize,
    /// Option that turns per-channel on.
    pub per_channel: PerChannelSwitch,
}

/// How an op's output params are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputRule {
    /// From the output's calibrated range.
    Calibrated,
    /// The params of the first activation input (the kernel does not rescale).
    SameAsInput,
    /// Calibrated for int8; same as the input for int16 (SUM).
    SameAsInputInt16,
    /// Fixed by the kernel: `(scale, zero_point)` for int8, and for int16 when it has an int16 kernel.
    Fixed {
        /// int8 output params.
        int8: (f32, i64),
        /// int16 output params.
        int16: (f32, i64),
    },
}

/// How one op is quantized (one row of the operator property table).
#[derive(Debug, Clone, PartialEq)]
pub struct OpRule {
    /// Real-valued activation inputs. Constant ones are quantized like activations, from their own range.
    pub activations: ActivationInputs,
    /// The weight input, if the op has one.
    pub weights: Option<WeightRule>,
    /// The bias input: int32 (int64 in int16x8), `scale = input_scale * weight_scale[c]`.
    pub bias: Option<usize>,
    /// Output params.
    pub output: OutputRule,
    /// Every activation input must carry exactly the output's params (the kernel copies or compares raw
    /// integers): mismatching inputs are requantized to the output's calibrated params.
    pub inputs_match_output: bool,
    /// Constant inputs that must carry the params of the first activation input (PADV2's pad value).
    pub same_as_input: &'static [usize],
    /// LiteRT has an int16-activation kernel for it (int16x8 mode).
    pub int16: bool,
    /// Minimum op version of the quantized op (the table's `version`).
    pub version: i32,
}

impl OpRule {
    /// A rule with a calibrated output and the given activation inputs (the common case).
    pub const fn activation(inputs: &'static [usize], version: i32) -> OpRule {
        OpRule {
            activations: ActivationInputs::Indices(inputs),
            weights: None,
            bias: None,
            output: OutputRule::Calibrated,
            inputs_match_output: false,
            same_as_input: &[],
            int16: true,
            version,
        }
    }

    /// A rule whose output reuses the params of activation input `input`.
    pub const fn same_scale(inputs: &'static [usize], version: i32) -> OpRule {
        let mut r = OpRule::activation(inputs, version);
        r.output = OutputRule::SameAsInput;
        r
    }

    /// Whether this rule quantizes an op to `ty`.
    pub fn supports(&self, ty: ActivationType) -> bool {
        match ty {
            ActivationType::Int8 => true,
            ActivationType::Int16 => self.int16,
        }
    }
}

/// Ops TF's converter keeps float in every op set, `TFLITE_BUILTINS_INT8` included (their float op sits
/// between DEQUANTIZE and QUANTIZE even in a strict int8 model), and why litequant does the same.
pub fn kept_float_in_every_op_set(code: fb::BuiltinOperator) -> Option<&'static str> {
    match code {
        fb::BuiltinOperator::NEG => Some(
            "TF's converter keeps NEG float in every op set: LiteRT's int8/int16 NEG negates raw codes \
             (no zero point; the lowest code wraps onto itself)",
        ),
        _ => None,
    }
}

/// Quantization rules keyed by builtin op code.
#[derive(Debug, Clone, Default)]
pub struct RuleRegistry {
    rules: BTreeMap<i32, OpRule>,
}

impl RuleRegistry {
    /// Every rule litequant has.
    pub fn with_all_rules() -> RuleRegistry {
        let mut r = RuleRegistry::default();
        conv::register(&mut r);
        elementwise::register(&mut r);
        activation::register(&mut r);
        pool::register(&mut r);
        shape::register(&mut r);
        r
    }

    /// Registers (or replaces) the rule of an op code.
    pub fn register(&mut self, code: fb::BuiltinOperator, rule: OpRule) {
        self.rules.insert(code.0, rule);
    }

    /// The rule of an op code, if it can be quantized.
    pub fn get(&self, code: fb::BuiltinOperator) -> Option<&OpRule> {
        self.rules.get(&code.0)
    }

    /// The op codes with a rule, in code order.
    pub fn codes(&self) -> impl Iterator<Item = fb::BuiltinOperator> + '_ {
        self.rules.keys().map(|&c| fb::BuiltinOperator(c))
    }
}
