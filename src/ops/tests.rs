//! The table test: every op's faces agree with each other, and every registry is a column of the table.

use super::{table, Face, OpDef, WeightKernel};
use crate::quantize::params::ActivationType::{self, Int16, Int8};
use crate::quantize::rules::RuleRegistry;
use crate::tflite::{self, fb};

const TYPES: [ActivationType; 2] = [Int8, Int16];

fn name(def: &OpDef) -> String {
    tflite::op_name(def.code())
}

fn faces(def: &OpDef) -> [(&'static str, Option<&'static str>); 7] {
    [
        ("float kernel", def.float.reason()),
        ("int8 rule", def.int8.reason()),
        ("int16x8 rule", def.int16x8.reason()),
        ("int8 kernel", def.int8_kernel.reason()),
        ("int16 kernel", def.int16_kernel.reason()),
        ("dynamic weights", def.dynamic.reason()),
        ("hybrid kernel", def.hybrid.reason()),
    ]
}

#[test]
fn every_op_is_declared_once() {
    let t = table();
    let names: Vec<String> = t.duplicates.iter().map(|&c| tflite::op_name(c)).collect();
    assert!(names.is_empty(), "declared twice: {names:?}");
    assert!(t.iter().count() > 90, "the table lost ops");
}

#[test]
fn every_missing_face_states_its_reason() {
    let mut undeclared = Vec::new();
    for def in table().iter() {
        for (face, reason) in faces(def) {
            if reason.is_some_and(|r| r.trim().is_empty()) {
                undeclared.push(format!("{}: {face}", name(def)));
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "faces neither given nor refused with a reason:\n{}",
        undeclared.join("\n")
    );
}

/// A rule for a mode implies a float kernel (calibration runs the op) and an integer kernel of the mode's
/// type (eval runs it), or a stated reason; the gaps are printed (`--nocapture`).
#[test]
fn a_rule_implies_float_and_integer_kernels_or_a_reason() {
    let mut problems = Vec::new();
    let mut gaps = Vec::new();
    for def in table().iter() {
        for ty in TYPES {
            let Ok(rule) = def.rule(ty) else { continue };
            if let Err(why) = def.float_kernel() {
                gaps.push(format!("{} {ty:?}: no float kernel: {why}", name(def)));
                if why.is_empty() {
                    problems.push(format!("{} {ty:?}: a rule but no float kernel", name(def)));
                }
            }
            if let Err(why) = def.integer_kernel(ty) {
                gaps.push(format!("{} {ty:?}: no integer kernel: {why}", name(def)));
                if why.is_empty() {
                    problems.push(format!(
                        "{} {ty:?}: a rule but no integer kernel",
                        name(def)
                    ));
                }
            }
            // A weight or bias input is never also an activation input.
            let n = 64;
            for input in rule.weights.map(|w| w.input).into_iter().chain(rule.bias) {
                if rule.activations.contains(input, n) {
                    problems.push(format!(
                        "{} {ty:?}: input {input} is both a weight/bias and an activation",
                        name(def)
                    ));
                }
            }
        }
        // TF's converter never quantizes an op to int16x8 that it cannot quantize to int8.
        if def.rule(Int16).is_ok() && def.rule(Int8).is_err() {
            problems.push(format!(
                "{}: an int16x8 rule without an int8 one",
                name(def)
            ));
        }
    }
    println!("rules without a kernel (stated):\n  {}", gaps.join("\n  "));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An integer kernel no rule can reach is dead code; so is a hybrid kernel without dynamic weights.
#[test]
fn every_kernel_is_reachable_from_a_rule_or_dynamic_mode() {
    let conversions = [
        fb::BuiltinOperator::QUANTIZE,
        fb::BuiltinOperator::DEQUANTIZE,
    ];
    let mut problems = Vec::new();
    for def in table().iter() {
        let quantized = TYPES.iter().any(|&ty| def.rule(ty).is_ok());
        let has_kernel = TYPES.iter().any(|&ty| def.integer_kernel(ty).is_ok());
        if has_kernel && !quantized && !conversions.contains(&def.code()) {
            problems.push(format!(
                "{}: an integer kernel but no rule in any mode",
                name(def)
            ));
        }
        match (def.dynamic.result(), def.hybrid.is_present()) {
            (Err(_), true) => problems.push(format!(
                "{}: a hybrid kernel but no dynamic weights",
                name(def)
            )),
            (Ok(w), true) if w.kernel == WeightKernel::WeightOnly => problems.push(format!(
                "{}: weight-only dynamic weights feed the float kernel, yet a hybrid kernel is declared",
                name(def)
            )),
            _ => {}
        }
        // The weights the int8 rule quantizes per channel are the ones dynamic mode quantizes.
        if let (Ok(rule), Ok(w)) = (def.rule(Int8), def.dynamic_weights()) {
            if let Some(weights) = rule.weights {
                if !w.inputs.contains(&weights.input) {
                    problems.push(format!(
                        "{}: the int8 rule's weights (input {}) are not dynamic mode's {:?}",
                        name(def),
                        weights.input,
                        w.inputs
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The registries the rest of litequant uses hold exactly the table's faces.
#[test]
fn registries_are_columns_of_the_table() {
    let float = crate::calibrate::Registry::with_all_ops();
    let rules = RuleRegistry::with_all_rules();
    let interp = crate::interp::kernels::Registry::with_all_ops();
    for def in table().iter() {
        let code = def.code();
        assert_eq!(
            float.supports(code),
            def.float_kernel().is_ok(),
            "{}",
            name(def)
        );
        assert_eq!(
            rules.get(code).is_some(),
            def.rule(Int8).is_ok(),
            "{}",
            name(def)
        );
        for ty in TYPES {
            assert_eq!(rules.for_type(code, ty).is_ok(), def.rule(ty).is_ok());
            assert_eq!(
                interp.get_integer(code, ty == Int16).is_some(),
                def.integer_kernel(ty).is_ok(),
                "{} {ty:?}",
                name(def)
            );
        }
        assert_eq!(
            interp.get_hybrid(code).is_some(),
            def.hybrid_kernel().is_ok()
        );
    }
    let outside: Vec<String> = rules
        .codes()
        .filter(|&c| table().get(c).is_none())
        .map(tflite::op_name)
        .collect();
    assert!(outside.is_empty(), "rules outside the table: {outside:?}");
}

#[cfg(feature = "inspect")]
#[test]
fn inspect_capability_column_is_the_tables() {
    use crate::quantize::Mode;
    for def in table().iter() {
        let modes = crate::inspect::supported_modes(def.code());
        assert_eq!(modes, def.modes(), "{}", name(def));
        for mode in [Mode::Dynamic, Mode::Int8, Mode::Int16x8] {
            assert_eq!(
                modes.contains(&mode),
                def.reason_float(mode).is_none(),
                "{} {mode}",
                name(def)
            );
        }
    }
    assert_eq!(
        crate::inspect::supported_modes(fb::BuiltinOperator::CUMSUM),
        vec![Mode::Float16]
    );
}

/// The table as text: one line per op, `+` for a face it has, `-` for one it lacks (`--nocapture`).
#[test]
fn print_the_table() {
    let mark = |present: bool| if present { "+" } else { "-" };
    println!("op                         float int8 k8 int16x8 k16 dynamic hybrid");
    for def in table().iter() {
        println!(
            "{:26} {:5} {:4} {:2} {:7} {:3} {:7} {}",
            name(def),
            mark(def.float.is_present()),
            mark(def.int8.is_present()),
            mark(def.int8_kernel.is_present()),
            mark(def.int16x8.is_present()),
            mark(def.int16_kernel.is_present()),
            mark(def.dynamic.is_present()),
            mark(matches!(def.hybrid, Face::Has(_))),
        );
    }
}
