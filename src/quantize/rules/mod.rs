//! How an op is quantized ([`OpRule`], one row of TFLite's `operator_property.cc`), and the
//! [`RuleRegistry`]: the rules of the op table ([`crate::ops`]) per integer mode.
//!
//! Each op declares its rule per mode in its family's file under `src/ops/`; an op without a rule for a
//! mode stays float there, for the reason the table states (or fails the job under `TFLITE_BUILTINS_INT8`).

use crate::ops;
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
    /// The outputs are not real values (BOOL of comparisons, INT32/INT64 indices of ARG_MAX): they keep their
    /// type and get no params.
    NotQuantized,
    /// Fixed by the kernel: `(scale, zero_point)` for int8, and for int16 when it has an int16 kernel.
    Fixed {
        /// int8 output params.
        int8: (f32, i64),
        /// int16 output params.
        int16: (f32, i64),
    },
}

/// An op whose quantization is not a combination of the generic pieces: its own code in the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomRule {
    /// UNIDIRECTIONAL_SEQUENCE_LSTM, TFLite's 8x8_16 integer LSTM (int16 cell state, derived bias scales,
    /// five intermediates).
    Lstm,
    /// WHILE: float input `k` and output `k` are the same loop variable and carry the same params, output
    /// `k`'s calibrated ones (the union of the variable's ranges over every iteration); inputs that differ are
    /// requantized; non-float variables (counters) are left alone.
    Loop,
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
    /// Minimum op version of the quantized op (the table's `version`).
    pub version: i32,
    /// The op's own quantization code, when the generic pieces do not describe it.
    pub custom: Option<CustomRule>,
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
            version,
            custom: None,
        }
    }

    /// A rule whose output reuses the params of activation input `input`.
    pub const fn same_scale(inputs: &'static [usize], version: i32) -> OpRule {
        let mut r = OpRule::activation(inputs, version);
        r.output = OutputRule::SameAsInput;
        r
    }

    /// A rule whose output params are fixed by the kernel (LUT and fixed-point activations).
    pub const fn fixed(int8: (f32, i64), int16: (f32, i64), version: i32) -> OpRule {
        let mut r = OpRule::activation(&[0], version);
        r.output = OutputRule::Fixed { int8, int16 };
        r
    }

    /// A rule for ops joining tensors without rescaling (CONCATENATION, PACK, MAXIMUM): every input is an
    /// activation on the output's calibrated params.
    pub const fn joining(version: i32) -> OpRule {
        let mut r = OpRule::activation(&[], version);
        r.activations = ActivationInputs::All;
        r.inputs_match_output = true;
        r
    }

    /// The rule of WHILE: float loop variables quantized, each input on its output's params.
    pub const fn loop_carried(version: i32) -> OpRule {
        OpRule::custom(&[], CustomRule::Loop, version)
    }

    /// A rule whose quantization is the op's own code ([`CustomRule`]); `inputs` are its activation inputs.
    pub const fn custom(inputs: &'static [usize], custom: CustomRule, version: i32) -> OpRule {
        let mut r = OpRule::activation(inputs, version);
        r.custom = Some(custom);
        r
    }

    /// A rule for ops with weights and bias (convolutions, FULLY_CONNECTED).
    pub const fn weighted(
        activations: &'static [usize],
        weights: WeightRule,
        bias: usize,
        version: i32,
    ) -> OpRule {
        let mut r = OpRule::activation(activations, version);
        r.weights = Some(weights);
        r.bias = Some(bias);
        r
    }
}

/// Ops TF's converter keeps float in every op set, `TFLITE_BUILTINS_INT8` included (their float op sits
/// between DEQUANTIZE and QUANTIZE even in a strict int8 model), and why litequant does the same: a query on
/// the op table.
pub fn kept_float_in_every_op_set(code: fb::BuiltinOperator) -> Option<&'static str> {
    ops::table()
        .get(code)
        .and_then(ops::OpDef::kept_float_in_every_op_set)
}

/// The quantization rules of the op table, per integer mode, keyed by builtin op code.
#[derive(Debug, Clone, Default)]
pub struct RuleRegistry {
    int8: BTreeMap<i32, OpRule>,
    int16: BTreeMap<i32, OpRule>,
    reasons: BTreeMap<(i32, bool), &'static str>,
}

impl RuleRegistry {
    /// Every rule of the op table.
    pub fn with_all_rules() -> RuleRegistry {
        let mut r = RuleRegistry::default();
        for def in ops::table().iter() {
            let code = def.code().0;
            for ty in [ActivationType::Int8, ActivationType::Int16] {
                let is_int16 = ty == ActivationType::Int16;
                match def.rule(ty) {
                    Ok(rule) => {
                        let map = if is_int16 { &mut r.int16 } else { &mut r.int8 };
                        map.insert(code, rule.clone());
                    }
                    Err(why) => {
                        r.reasons.insert((code, is_int16), why);
                    }
                }
            }
        }
        r
    }

    /// The int8 rule of an op code, if int8 can quantize it (the rule's shape is the same in int16x8).
    pub fn get(&self, code: fb::BuiltinOperator) -> Option<&OpRule> {
        self.int8.get(&code.0)
    }

    /// The rule of an op code in the mode with activations `ty`, or why that mode keeps it float (`None`
    /// for an op outside the table).
    pub fn for_type(
        &self,
        code: fb::BuiltinOperator,
        ty: ActivationType,
    ) -> Result<&OpRule, Option<&'static str>> {
        let is_int16 = ty == ActivationType::Int16;
        let map = if is_int16 { &self.int16 } else { &self.int8 };
        map.get(&code.0)
            .ok_or_else(|| self.reasons.get(&(code.0, is_int16)).copied())
    }

    /// The op codes with an int8 rule, in code order.
    pub fn codes(&self) -> impl Iterator<Item = fb::BuiltinOperator> + '_ {
        self.int8.keys().map(|&c| fb::BuiltinOperator(c))
    }
}
