//! Fuzzing the config reader: never a panic, never a hang.
//!
//! Mutated `quantize.toml` texts (values swapped for hostile ones, lines deleted, duplicated, swapped or
//! inserted, bytes flipped, inserted, deleted, truncated), random texts and random graphs of datasets whose
//! `inputs` maps point at each other go through the real loader and validation ([`config::parse`]); an
//! accepted config goes on into a plan, its jobs' input lists and settings digests. Every error must carry a
//! line (errors about the whole file excepted) that lies inside the text. Each case runs under a time limit,
//! so a hang fails the test.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2000 per target, about a second each);
//! `LITEQUANT_FUZZ_MINUTES` repeats runs of that many cases until the time is up (a long run:
//! `LITEQUANT_FUZZ_MINUTES=30 PROPTEST_CASES=20000 cargo test --release --test tests fuzz::config -- --nocapture`).

use litequant::config::{self, ConfigError, ConfigErrorKind};
use litequant::engine::{digest::settings_digest, Plan};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The most one case may take before it counts as a hang (generous: debug builds on a loaded 2-core machine).
pub(super) const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on a worker thread and returns its result; panics (failing the case) when it takes longer than
/// [`CASE_LIMIT`], and passes a panic of `f` on. The worker of a hung case is left behind: the test fails.
pub(super) fn within_limit<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("a worker thread starts");
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("a case ran longer than {CASE_LIMIT:?} (a hang): {what}")
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the worker ended without a result: {what}"),
        },
    }
}

/// The number of cases: `PROPTEST_CASES`, else `default`.
pub(super) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on `cases(default)` values of `strategy` (fresh random seeds each run); with
/// `LITEQUANT_FUZZ_MINUTES` set, runs again and again until that much time has passed (long runs).
pub(super) fn fuzz<S: Strategy>(
    default: u32,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let budget = std::env::var("LITEQUANT_FUZZ_MINUTES")
        .ok()
        .and_then(|m| m.parse::<f64>().ok())
        .map(|m| Duration::from_secs_f64(m * 60.0));
    let started = Instant::now();
    loop {
        let mut runner = TestRunner::new(Config {
            cases: cases(default),
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(strategy, &test)
            .unwrap_or_else(|e| panic!("{e}"));
        if budget.is_none_or(|b| started.elapsed() >= b) {
            return;
        }
    }
}

/// Where the fuzzed configs claim to live (never read: [`config::parse`] takes the text).
const CONFIG_PATH: &str = "/nonexistent/fuzz/quantize.toml";

/// Every key the config reader knows, with values that pass validation, and datasets referencing each other.
const FULL: &str = r#"[settings]
out_dir = "out"
lock = "q.lock"
cache = "cache"

[datasets.a]
format = "images"
path = "imgs"
resize = [28, 28]
mean = [127.5]
std = [127.5, 1, 2]
samples = 3
inputs = { x = "b", y = "a" }

[datasets.b]
format = "npy"
path = "b.npy"
inputs = { x = "c" }

[datasets.c]
format = "random"
range = [0, 1]
seed = 3
samples = 10

[datasets.d]
format = "npz"
path = "d.npz"
labels = "labels"
label_output = 1
inputs = { "serving_default_x:0" = "arr", y = "c" }

[models.m]
source = "m.tflite"
modes = ["dynamic", "int8", "int16x8", "float16"]
dataset = "a"
eval = "d"
op_sets = ["TFLITE_BUILTINS", "SELECT_TF_OPS"]
inference_input_type = "int8"
inference_output_type = "uint8"
per_channel = false
per_channel_dense = true
calibration = "percentile"
percentile = 99.9
exclude = ["SOFTMAX", "dense_*"]
target_runtime = "2.14"
target_sqnr_db = 30
max_top1_drop = 0.01

[models."n.2"]
source = "/abs/n.tflite"
modes = ["int8"]
dataset = "d"
calibration = "mse"
"#;

fn seeds() -> Vec<String> {
    let example = std::fs::read_to_string(crate::interop::repo().join("quantize.toml.example"))
        .expect("quantize.toml.example is readable");
    vec![example, FULL.to_string()]
}

/// Values that break a rule, a type or a reference.
const VALUES: &[&str] = &[
    "\"\"",
    "0",
    "-1",
    "1",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "[]",
    "[[]]",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    "{}",
    "{ x = \"a\" }",
    "{ x = \"x\", y = \"b\" }",
    "{ \"serving_default_x:0\" = \"d\" }",
    "true",
    "\"int4\"",
    "\"int8\"",
    "\"npz\"",
    "\"images\"",
    "\"random\"",
    "\"../..\"",
    "\"/dev/zero\"",
    "\"a\"",
    "\"b\"",
    "\"c\"",
    "\"d\"",
    "\"m\"",
    "[1, 2, 3]",
    "[0, 0]",
    "[1.0, 0.0]",
    "[\"int8\", \"int8\"]",
    "[\"TFLITE_BUILTINS_INT8\"]",
    "\"\\u0000\"",
    "'''x\ny'''",
    "\"é✓\"",
    "1.5",
    "1979-05-27T07:32:00Z",
    "\"*\"",
    "[\"[\"]",
    "\"2.999999999999999999999\"",
];

/// Lines that add a key, a table or a reference.
const LINES: &[&str] = &[
    "inputs = { x = \"b\" }",
    "inputs = { x = \"a\", y = \"a\" }",
    "[datasets.x]",
    "[datasets.\"\"]",
    "[models.y]",
    "[[models]]",
    "[settings]",
    "modes = [\"int8\"]",
    "format = \"npz\"",
    "dataset = \"zz\"",
    "eval = \"a\"",
    "labels = \"nosuch\"",
    "label_output = 7",
    "resize = [0, 1]",
    "samples = 0",
    "unknown_key = 1",
    "models.q.source = \"q.tflite\"",
    "datasets.a.inputs.x = \"c\"",
    "= 1",
    "[",
    "\"",
    "#",
];

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value of the n-th `key = value` line.
    Value {
        line: Index,
        value: Index,
    },
    DeleteLine {
        line: Index,
    },
    DuplicateLine {
        line: Index,
    },
    SwapLines {
        a: Index,
        b: Index,
    },
    InsertLine {
        at: Index,
        text: Index,
    },
    /// Byte-level edits (the text may stop being UTF-8; such cases go through the loader's UTF-8 check).
    FlipBit {
        at: Index,
        bit: u8,
    },
    InsertBytes {
        at: Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        len: usize,
    },
    Truncate {
        at: Index,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(line, value)| Edit::Value { line, value }),
        1 => any::<Index>().prop_map(|line| Edit::DeleteLine { line }),
        1 => any::<Index>().prop_map(|line| Edit::DuplicateLine { line }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, text)| Edit::InsertLine { at, text }),
        1 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Edit::FlipBit { at, bit }),
        1 => (
            any::<Index>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'['),
                    Just(b']'),
                    Just(b'{'),
                    Just(b'='),
                    Just(b'\n'),
                    Just(b'.'),
                    any::<u8>()
                ],
                1..8
            )
        )
            .prop_map(|(at, bytes)| Edit::InsertBytes { at, bytes }),
        1 => (any::<Index>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => any::<Index>().prop_map(|at| Edit::Truncate { at }),
    ]
}

fn pick(at: &Index, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        at.index(len)
    }
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let line_edit = |lines: Vec<String>| lines.join("\n").into_bytes();
    match edit {
        Edit::Value { line, value } => {
            let assignments: Vec<usize> = (0..lines.len())
                .filter(|&i| !lines[i].trim_start().starts_with('#') && lines[i].contains('='))
                .collect();
            if let Some(&i) = assignments.get(pick(line, assignments.len())) {
                let key = lines[i].split('=').next().unwrap_or_default().to_string();
                lines[i] = format!("{key}= {}", VALUES[value.index(VALUES.len())]);
                *bytes = line_edit(lines);
            }
        }
        Edit::DeleteLine { line } => {
            if !lines.is_empty() {
                lines.remove(pick(line, lines.len()));
                *bytes = line_edit(lines);
            }
        }
        Edit::DuplicateLine { line } => {
            if !lines.is_empty() {
                let i = pick(line, lines.len());
                lines.insert(i, lines[i].clone());
                *bytes = line_edit(lines);
            }
        }
        Edit::SwapLines { a, b } => {
            if !lines.is_empty() {
                let (a, b) = (pick(a, lines.len()), pick(b, lines.len()));
                lines.swap(a, b);
                *bytes = line_edit(lines);
            }
        }
        Edit::InsertLine { at, text } => {
            let i = pick(at, lines.len() + 1);
            lines.insert(i, LINES[text.index(LINES.len())].to_string());
            *bytes = line_edit(lines);
        }
        Edit::FlipBit { at, bit } => {
            if !bytes.is_empty() {
                let i = pick(at, bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        Edit::InsertBytes { at, bytes: new } => {
            let i = pick(at, bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        Edit::Delete { at, len } => {
            let i = pick(at, bytes.len());
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        Edit::Truncate { at } => {
            let i = pick(at, bytes.len());
            bytes.truncate(i);
        }
    }
}

/// What the loader does with `bytes`, as `config::load` would: UTF-8 first, then parse and validate.
/// Checks the invariants; returns whether the config was accepted.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false; // `load` refuses non-UTF-8 before parsing (an error without a line, by design)
    };
    match config::parse(text, Path::new(CONFIG_PATH)) {
        Ok(config) => {
            for spec in config.datasets.values() {
                for feed in spec.feeds.values() {
                    assert!(
                        feed.feeds.is_empty(),
                        "a resolved reference carries no further references"
                    );
                    assert_ne!(
                        feed.name, spec.name,
                        "a dataset never feeds itself by reference"
                    );
                }
            }
            let plan = Plan::new(&config, None);
            for job in &plan.jobs {
                let _ = (job.inputs(), settings_digest(job), job.id());
            }
            let _ = plan.inputs();
            true
        }
        Err(e) => {
            check_error(&e, text);
            false
        }
    }
}

fn check_error(e: &ConfigError, text: &str) {
    let shown = e.to_string();
    assert!(
        shown.starts_with(CONFIG_PATH),
        "the error names the file: {shown}"
    );
    let whole_file = e.kind == ConfigErrorKind::MissingKey && e.key.as_deref() == Some("models");
    match e.location {
        Some(at) => {
            let lines = text.split('\n').count();
            assert!(
                at.line >= 1 && at.line <= lines && at.column >= 1,
                "line {} of a {lines}-line text: {shown}",
                at.line
            );
            assert!(
                shown.contains(&format!(":{}:{}", at.line, at.column)),
                "the message shows the line: {shown}"
            );
        }
        None => assert!(whole_file, "an error without a line: {shown}\n---\n{text}"),
    }
}

/// Cases per target in a committed run (about a second each).
const CASES: u32 = 2000;

#[test]
fn mutated_configs_never_panic_and_every_error_has_a_line() {
    let seeds = seeds();
    let strategy = (any::<Index>(), prop::collection::vec(edit(), 1..5));
    let (started, accepted, total) = (Instant::now(), Cell::new(0u32), Cell::new(0u32));
    fuzz(CASES, &strategy, |(seed, edits)| {
        let mut bytes = seeds[seed.index(seeds.len())].clone().into_bytes();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let what = String::from_utf8_lossy(&bytes).into_owned();
        let ok = within_limit(&what, move || exercise(&bytes));
        total.set(total.get() + 1);
        accepted.set(accepted.get() + u32::from(ok));
        Ok(())
    });
    eprintln!(
        "config fuzz: {} mutated configs in {:.1} s, {} accepted",
        total.get(),
        started.elapsed().as_secs_f64(),
        accepted.get()
    );
    // The edits are small: some configs must survive them, or the mutator only tests the TOML parser.
    assert!(accepted.get() > 0, "no mutated config was accepted");
    assert!(
        accepted.get() < total.get(),
        "every mutated config was accepted"
    );
}

#[test]
fn random_text_never_panics_the_config_reader() {
    let strategy = prop_oneof![
        "[a-z_\\[\\]=\"{}., \n0-9#-]{0,400}",
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    let total = Cell::new(0u32);
    fuzz(CASES, &strategy, |text| {
        let what = text.clone();
        within_limit(&what, move || exercise(text.as_bytes()));
        total.set(total.get() + 1);
        Ok(())
    });
    eprintln!("config fuzz: {} random texts", total.get());
}

/// A config of `formats.len()` datasets `d0`, `d1`, ... whose `inputs` entries point at each other (or at
/// arrays), read by one model: chains, self references and cycles, which validation resolves or refuses.
fn dataset_graph() -> impl Strategy<Value = String> {
    let entry = (0usize..3, 0usize..6);
    (
        prop::collection::vec(0usize..4, 1..6),
        prop::collection::vec(prop::collection::vec(entry, 0..3), 6),
    )
        .prop_map(|(formats, maps)| {
            let n = formats.len();
            let mut text = String::new();
            for (i, &format) in formats.iter().enumerate() {
                let format = ["npy", "npz", "images", "random"][format];
                text.push_str(&format!("[datasets.d{i}]\nformat = \"{format}\"\n"));
                match format {
                    "images" => text.push_str("path = \"imgs\"\nresize = [2, 2]\n"),
                    "random" => {}
                    _ => text.push_str(&format!("path = \"d{i}.{format}\"\n")),
                }
                let entries: Vec<String> = maps[i]
                    .iter()
                    .map(|&(input, target)| {
                        let target = if target < n {
                            format!("d{target}")
                        } else {
                            format!("arr{target}")
                        };
                        format!("{} = \"{target}\"", ["x", "y", "serving_default_x:0"][input])
                    })
                    .collect();
                // A key written twice is a TOML error; keep the first of each.
                let mut seen = std::collections::BTreeSet::new();
                let entries: Vec<&String> = entries
                    .iter()
                    .filter(|e| seen.insert(e.split(" = ").next().unwrap_or_default().to_string()))
                    .collect();
                let entries: Vec<&str> = entries.iter().map(|e| e.as_str()).collect();
                text.push_str(&format!("inputs = {{ {} }}\n\n", entries.join(", ")));
            }
            text.push_str(
                "[models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\"]\ndataset = \"d0\"\neval = \"d0\"\n",
            );
            text
        })
}

#[test]
fn dataset_reference_graphs_resolve_or_fail_with_a_line() {
    let (accepted, total) = (Cell::new(0u32), Cell::new(0u32));
    fuzz(CASES, &dataset_graph(), |text| {
        let what = text.clone();
        let ok = within_limit(&what, move || exercise(text.as_bytes()));
        total.set(total.get() + 1);
        accepted.set(accepted.get() + u32::from(ok));
        Ok(())
    });
    eprintln!(
        "config fuzz: {} dataset reference graphs, {} accepted",
        total.get(),
        accepted.get()
    );
    assert!(accepted.get() > 0 && accepted.get() < total.get());
}
