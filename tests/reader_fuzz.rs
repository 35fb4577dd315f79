//! The reader never panics: mutated fixture bytes (bit flips, overwritten bytes and words, truncations,
//! splices, insertions, deletions) and random bytes go through read -> inspect -> write -> read.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2000, a few seconds); a long run:
//! `PROPTEST_CASES=200000 cargo test --test tests reader_fuzz -- --nocapture`.

use crate::support::fixtures;
use litequant::graph::{fold_fp16_constants, Graph, OpIndex, TensorId};
use litequant::inspect::inspect;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use std::sync::OnceLock;

fn seeds() -> &'static [(&'static str, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(fixtures::all)
}

/// One edit of a model's bytes. Positions pick the first 4 KiB half the time: tables sit at the front of
/// files our writer and TF's produce, weights at the back, and flipping weights only tests arithmetic.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Index,
        front: bool,
        bit: u8,
    },
    SetByte {
        at: Index,
        front: bool,
        value: u8,
    },
    SetWord {
        at: Index,
        front: bool,
        value: u32,
    },
    Truncate {
        at: Index,
    },
    Splice {
        from: Index,
        to: Index,
        len: usize,
        seed: Index,
    },
    Insert {
        at: Index,
        front: bool,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        front: bool,
        len: usize,
    },
}

fn position(bytes: &[u8], at: &Index, front: bool) -> usize {
    let span = if front {
        bytes.len().min(4096)
    } else {
        bytes.len()
    };
    if span == 0 {
        0
    } else {
        at.index(span)
    }
}

fn interesting_word() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        Just(0u32),
        Just(u32::MAX),
        Just(0x8000_0000),
        0u32..64,
        (0u32..64).prop_map(|v| v.wrapping_neg()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<bool>(), 0u8..8).prop_map(|(at, front, bit)| Mutation::FlipBit {
            at,
            front,
            bit
        }),
        (any::<Index>(), any::<bool>(), any::<u8>())
            .prop_map(|(at, front, value)| Mutation::SetByte { at, front, value }),
        (any::<Index>(), any::<bool>(), interesting_word())
            .prop_map(|(at, front, value)| Mutation::SetWord { at, front, value }),
        any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        (any::<Index>(), any::<Index>(), 1usize..256, any::<Index>()).prop_map(
            |(from, to, len, seed)| Mutation::Splice {
                from,
                to,
                len,
                seed
            }
        ),
        (
            any::<Index>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, front, bytes)| Mutation::Insert { at, front, bytes }),
        (any::<Index>(), any::<bool>(), 1usize..64).prop_map(|(at, front, len)| Mutation::Delete {
            at,
            front,
            len
        }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit { at, front, bit } => {
            if !bytes.is_empty() {
                let i = position(bytes, at, *front);
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::SetByte { at, front, value } => {
            if !bytes.is_empty() {
                let i = position(bytes, at, *front);
                bytes[i] = *value;
            }
        }
        Mutation::SetWord { at, front, value } => {
            // Word-aligned, where flatbuffers keeps offsets, lengths and most scalars.
            let i = position(bytes, at, *front) & !3;
            if i + 4 <= bytes.len() {
                bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Truncate { at } => {
            let i = position(bytes, at, false);
            bytes.truncate(i);
        }
        Mutation::Splice {
            from,
            to,
            len,
            seed,
        } => {
            let donor = &seeds()[seed.index(seeds().len())].1;
            let start = position(donor, from, false);
            let chunk: Vec<u8> = donor[start..(start + len).min(donor.len())].to_vec();
            let dst = position(bytes, to, false);
            let end = (dst + chunk.len()).min(bytes.len());
            bytes[dst..end].copy_from_slice(&chunk[..end - dst]);
        }
        Mutation::Insert {
            at,
            front,
            bytes: new,
        } => {
            let i = position(bytes, at, *front);
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Delete { at, front, len } => {
            let i = position(bytes, at, *front);
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

/// Everything a later stage does with a graph it was handed, none of which may panic.
fn exercise(bytes: &[u8]) {
    let Ok(mut g) = Graph::from_bytes(bytes) else {
        return;
    };
    let report = inspect(&g, bytes.len() as u64);
    let _ = report.to_string();
    let _ = serde_json::to_string(&report).expect("an inspection serializes");
    let _ = (
        g.producers(),
        g.consumers(),
        g.inputs(),
        g.outputs(),
        g.metadata(),
    );
    for i in 0..g.ops().len() {
        let op = OpIndex(i);
        let _ = (
            g.op_code(op),
            g.op_type_name(op),
            g.op_inputs(op),
            g.op_outputs(op),
        );
    }
    for t in 0..g.tensors().len() {
        let t = TensorId(t);
        let _ = (
            g.const_f32(t),
            g.const_i32(t),
            g.num_elements(t),
            g.tensor_name(t),
        );
    }
    let written = g.to_bytes();
    let again = Graph::from_bytes(&written)
        .unwrap_or_else(|e| panic!("a model we accepted and wrote reads back: {e}"));
    assert_eq!(again.to_bytes(), written, "writing is deterministic");
    fold_fp16_constants(&mut g);
    let _ = g.to_bytes();
}

/// Share of byte-mutated models the reader must accept (the rest it refuses). Measured 2026-12-07 over five
/// runs of 2,000 cases: 294-347 accepted (14.7-17.4%, one standard deviation 0.8%). Below the range the fuzzer
/// mostly feeds the reader's first checks and `exercise` rarely runs; above it the reader lets damage through.
const MUTATED_ACCEPTED: (f64, f64) = (0.08, 0.30);
/// As [`MUTATED_ACCEPTED`], for models with out-of-range fields: 200-229 of 2,000 accepted (10.0-11.5%).
const EDITED_ACCEPTED: (f64, f64) = (0.05, 0.22);

/// Fails unless `accepted` of [`cases`] lies in `(low, high)` shares of them.
fn assert_share_accepted(what: &str, accepted: u32, (low, high): (f64, f64)) {
    let share = f64::from(accepted) / f64::from(cases().max(1));
    assert!(
        (low..=high).contains(&share),
        "{what}: {accepted} of {} accepted ({:.1}%), expected {:.0}-{:.0}%",
        cases(),
        share * 100.0,
        low * 100.0,
        high * 100.0
    );
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn mutated_models_never_panic_the_reader() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..6));
    let started = std::time::Instant::now();
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(seed, mutations)| {
            let mut bytes = seeds()[seed.index(seeds().len())].1.clone();
            for m in &mutations {
                apply(&mut bytes, m);
            }
            if Graph::from_bytes(&bytes).is_ok() {
                accepted.set(accepted.get() + 1);
            }
            exercise(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "reader fuzz: {} mutated models in {:.1} s, {} accepted",
        cases(),
        started.elapsed().as_secs_f64(),
        accepted.get()
    );
    assert_share_accepted("mutated models", accepted.get(), MUTATED_ACCEPTED);
}

#[test]
fn random_bytes_never_panic_the_reader() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (prop::collection::vec(any::<u8>(), 0..4096), any::<bool>());
    runner
        .run(&strategy, |(mut bytes, identifier)| {
            // Half the cases carry the TFL3 identifier so they get past the first check.
            if identifier && bytes.len() >= 8 {
                bytes[4..8].copy_from_slice(b"TFL3");
            }
            exercise(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// One edit of a model's fields through the object API: an index, a dimension, a type or a buffer set to a
/// value near or beyond its valid range. The writer does not validate, so these reach the reader's checks.
#[derive(Debug, Clone)]
struct FieldEdit {
    kind: u8,
    which: Index,
    slot: Index,
    value: i64,
}

fn field_edit() -> impl Strategy<Value = FieldEdit> {
    (
        0u8..12,
        any::<Index>(),
        any::<Index>(),
        prop_oneof![-3i64..40, any::<i32>().prop_map(i64::from)],
    )
        .prop_map(|(kind, which, slot, value)| FieldEdit {
            kind,
            which,
            slot,
            value,
        })
}

fn pick<'a, T>(items: &'a mut [T], at: &Index) -> Option<&'a mut T> {
    if items.is_empty() {
        None
    } else {
        let i = at.index(items.len());
        items.get_mut(i)
    }
}

fn apply_field_edit(model: &mut litequant::tflite::fb::ModelT, e: &FieldEdit) {
    use litequant::tflite::fb;
    let v = e.value;
    let subgraphs = model.subgraphs.as_deref_mut().unwrap_or(&mut []);
    let Some(sg) = pick(subgraphs, &e.which) else {
        return;
    };
    let tensors = sg.tensors.as_deref_mut().unwrap_or(&mut []);
    match e.kind {
        0 => {
            if let Some(t) = pick(tensors, &e.slot) {
                t.buffer = v as u32;
            }
        }
        1 => {
            if let Some(t) = pick(tensors, &e.slot) {
                if let Some(d) = pick(t.shape.as_deref_mut().unwrap_or(&mut []), &e.which) {
                    *d = v as i32;
                }
            }
        }
        2 => {
            if let Some(t) = pick(tensors, &e.slot) {
                t.type_ = fb::TensorType(v as i8);
            }
        }
        3 => {
            if let Some(t) = pick(tensors, &e.slot) {
                let n = (v.rem_euclid(5)) as usize;
                let mut q = fb::QuantizationParametersT::default();
                q.scale = Some(vec![0.5; n]);
                q.zero_point = Some(vec![0; n.saturating_sub((v & 1) as usize)]);
                q.quantized_dimension = (v >> 8) as i32 % 4;
                t.quantization = Some(Box::new(q));
            }
        }
        4..=6 => {
            let ops = sg.operators.as_deref_mut().unwrap_or(&mut []);
            if let Some(op) = pick(ops, &e.slot) {
                let list = match e.kind {
                    4 => &mut op.inputs,
                    5 => &mut op.outputs,
                    _ => &mut op.intermediates,
                };
                match pick(list.get_or_insert_with(Vec::new), &e.which) {
                    Some(t) => *t = v as i32,
                    None => *list = Some(vec![v as i32]),
                }
            }
        }
        7 => {
            if let Some(op) = pick(sg.operators.as_deref_mut().unwrap_or(&mut []), &e.slot) {
                op.opcode_index = v as u32;
            }
        }
        8 => {
            if let Some(op) = pick(sg.operators.as_deref_mut().unwrap_or(&mut []), &e.slot) {
                let mut w = fb::WhileOptionsT::default();
                w.cond_subgraph_index = v as i32;
                w.body_subgraph_index = (v >> 4) as i32;
                op.builtin_options = fb::BuiltinOptionsT::WhileOptions(Box::new(w));
            }
        }
        9 => {
            for s in model.signature_defs.iter_mut().flatten() {
                for m in s.inputs.iter_mut().flatten() {
                    m.tensor_index = v as u32;
                }
                s.subgraph_index = (v >> 4) as u32;
            }
        }
        10 => {
            if let Some(b) = pick(model.buffers.as_deref_mut().unwrap_or(&mut []), &e.slot) {
                let data = b.data.get_or_insert_with(Vec::new);
                data.resize(v.rem_euclid(64) as usize, 0);
            }
        }
        _ => {
            let io = if v & 1 == 0 {
                &mut sg.inputs
            } else {
                &mut sg.outputs
            };
            if let Some(t) = pick(io.as_deref_mut().unwrap_or(&mut []), &e.slot) {
                *t = (v >> 1) as i32;
            }
        }
    }
}

#[test]
fn models_with_out_of_range_fields_are_refused_or_fully_usable() {
    let models: Vec<litequant::tflite::fb::ModelT> = seeds()
        .iter()
        .map(|(_, b)| Graph::from_bytes(b).expect("seed reads").model)
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (any::<Index>(), prop::collection::vec(field_edit(), 1..4));
    let started = std::time::Instant::now();
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(seed, edits)| {
            let mut model = models[seed.index(models.len())].clone();
            for e in &edits {
                apply_field_edit(&mut model, e);
            }
            let bytes = litequant::tflite::write_model(&model);
            if Graph::from_bytes(&bytes).is_ok() {
                accepted.set(accepted.get() + 1);
            }
            exercise(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "reader fuzz: {} models with edited fields in {:.1} s, {} accepted",
        cases(),
        started.elapsed().as_secs_f64(),
        accepted.get()
    );
    assert_share_accepted("models with edited fields", accepted.get(), EDITED_ACCEPTED);
}
