//! Fuzzing the lock reader: never a panic, never a hang.
//!
//! Mutated `quantize.lock` files (lines deleted, duplicated, swapped; hex digits, numbers and strings
//! replaced by edge values; bytes flipped, inserted, truncated) and random text go through the real reader
//! (`LockFile::parse`) and through `litequant build --locked` and `litequant build` on a project. Properties:
//! no panic, no hang (a per-case time limit), usable entries hold finite ranges and round-trip, a locked build
//! that succeeds gives exactly the reference artifacts, and a plain build either refuses (exit 2, the lock
//! and artifacts untouched) or succeeds writing exactly the reference lock, never a damaged range.
//!
//! `PROPTEST_CASES` sets the number of cases (defaults: 2000 for the reader, 12 for the build path, a few
//! seconds each); `LITEQUANT_FUZZ_SECONDS` stops a run after that long whatever the count. A long run:
//! `PROPTEST_CASES=100000000 LITEQUANT_FUZZ_SECONDS=1800 cargo test --release --test tests fuzz::lock -- --nocapture`.

use crate::lock::{stderr, Project};
use litequant::engine::lockfile::LockFile;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Cases to run: `PROPTEST_CASES`, else `default`.
pub(super) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// A run's time budget (`LITEQUANT_FUZZ_SECONDS`): cases after it are skipped.
pub(super) fn budget() -> Option<Duration> {
    std::env::var("LITEQUANT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
}

/// The runner every target uses: no persisted failures, shrinking bounded (a hang shrinks slowly).
pub(super) fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    })
}

/// Runs `test` on `cases(default)` cases; with `LITEQUANT_FUZZ_SECONDS`, keeps running batches of that many
/// (fresh random seeds each) until the time is up.
pub(super) fn run_cases<S: Strategy>(
    default: u32,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let started = Instant::now();
    loop {
        runner(cases(default))
            .run(strategy, &test)
            .unwrap_or_else(|e| panic!("{e}"));
        match budget() {
            Some(b) if started.elapsed() < b => continue,
            _ => break,
        }
    }
}

/// Runs `f` on another thread and fails the case if it takes longer than `limit`: a hang is a failure, not a
/// stuck test. (The hung thread is left behind; the test fails.)
pub(super) fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(TestCaseError::fail(format!("panicked: {msg}")))
        }
        Err(_) => Err(TestCaseError::fail(format!(
            "did not finish within {limit:?} (a hang)"
        ))),
    }
}

/// Runs a `litequant` command to completion within `limit`, killing it and failing the case otherwise.
pub(super) fn run_within(
    mut cmd: std::process::Command,
    limit: Duration,
) -> Result<Output, TestCaseError> {
    let out = tempfile::tempdir().unwrap();
    let (so, se) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestCaseError::fail(format!(
                "litequant did not finish within {limit:?} (a hang)"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: std::fs::read(&so).unwrap(),
        stderr: std::fs::read(&se).unwrap(),
    })
}

/// The time limit of one reader case.
pub(super) const READ_LIMIT: Duration = Duration::from_secs(10);
/// The time limit of one `litequant build` run (a debug binary calibrating the digits MLP on a slow machine).
pub(super) const BUILD_LIMIT: Duration = Duration::from_secs(120);

/// One edit of a text file.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Replace the `n`th token (a run of hex digits, a number, a quoted string) with `value`.
    Token(Index, &'static str),
    /// Change one hex digit in place.
    Digit(Index, u8),
    FlipBit(Index, u8),
    Insert(Index, Vec<u8>),
    Truncate(Index),
}

/// Values a careless edit or a damaged file puts in a lock.
const TOKENS: &[&str] = &[
    "0x7fc00000",
    "0x7f800000",
    "0xff800000",
    "0xffffffff",
    "0x00000000",
    "0x80000000",
    "0x7f7fffff",
    "0x",
    "0x1",
    "-1",
    "0",
    "9999",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "nan",
    "inf",
    "\"\"",
    "\"../x\"",
    "\"digits\"",
    "\"int8\"",
    "\"dynamic\"",
    "\"int16x8\"",
    "true",
    "[]",
    "{}",
    "2",
];

pub(super) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::DeleteLine),
        any::<Index>().prop_map(Edit::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<Index>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<Index>(), 0u8..16).prop_map(|(i, d)| Edit::Digit(i, d)),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        (
            any::<Index>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\n".to_vec(),
                    b"\"".to_vec(),
                    b"[[artifact]]\n".to_vec(),
                    b"ranges = []\n".to_vec(),
                    b"version = 1\n".to_vec(),
                    b"\xff\xfe".to_vec(),
                ])
            ]
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Byte ranges of tokens: quoted strings, and runs of characters that make up numbers and hex.
fn tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'"' {
            let end = text[i + 1..]
                .iter()
                .position(|&c| c == b'"' || c == b'\n')
                .map_or(text.len(), |p| i + 2 + p);
            out.push((i, end.min(text.len())));
            i = end.max(i + 1);
        } else if text[i].is_ascii_alphanumeric() || matches!(text[i], b'-' | b'+' | b'.') {
            let start = i;
            while i < text.len()
                && (text[i].is_ascii_alphanumeric() || matches!(text[i], b'-' | b'+' | b'.'))
            {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

pub(super) fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let lines =
        |b: &[u8]| -> Vec<Vec<u8>> { b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect() };
    match e {
        Edit::DeleteLine(i) => {
            let mut l = lines(bytes);
            l.remove(i.index(l.len()));
            *bytes = l.join(&b'\n');
        }
        Edit::DuplicateLine(i) => {
            let mut l = lines(bytes);
            let k = i.index(l.len());
            let dup = l[k].clone();
            l.insert(k, dup);
            *bytes = l.join(&b'\n');
        }
        Edit::SwapLines(a, b) => {
            let mut l = lines(bytes);
            let (x, y) = (a.index(l.len()), b.index(l.len()));
            l.swap(x, y);
            *bytes = l.join(&b'\n');
        }
        Edit::Token(i, value) => {
            let t = tokens(bytes);
            if !t.is_empty() {
                let (s, end) = t[i.index(t.len())];
                bytes.splice(s..end, value.bytes());
            }
        }
        Edit::Digit(i, d) => {
            let digits: Vec<usize> = (0..bytes.len())
                .filter(|&k| bytes[k].is_ascii_hexdigit())
                .collect();
            if !digits.is_empty() {
                bytes[digits[i.index(digits.len())]] = b"0123456789abcdef"[*d as usize];
            }
        }
        Edit::FlipBit(i, bit) => {
            if !bytes.is_empty() {
                let k = i.index(bytes.len());
                bytes[k] ^= 1 << bit;
            }
        }
        Edit::Insert(i, b) => {
            let k = i.index(bytes.len() + 1);
            bytes.splice(k..k, b.iter().copied());
        }
        Edit::Truncate(i) => {
            let k = i.index(bytes.len() + 1);
            bytes.truncate(k);
        }
    }
}

/// A project built once: its reference lock, artifacts and cache.
pub(super) struct Reference {
    pub(super) project: Project,
    pub(super) lock: Vec<u8>,
    pub(super) artifacts: BTreeMap<String, Vec<u8>>,
}

/// Files of `out/` by name.
pub(super) fn out_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("out"))
        .map(|l| {
            l.map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read(&p).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the project (dynamic and int8 of the digits MLP) and records what it wrote.
pub(super) fn reference() -> Reference {
    let config = crate::lock::CONFIG.replace(
        "[\"dynamic\", \"int8\", \"int16x8\"]",
        "[\"dynamic\", \"int8\"]",
    );
    let project = Project::with_config(&config);
    let built = project.run(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let lock = std::fs::read(project.dir.join("quantize.lock")).unwrap();
    // Reports carry timings: only the artifacts are compared.
    let artifacts = out_files(&project.dir)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".tflite"))
        .collect();
    Reference {
        project,
        lock,
        artifacts,
    }
}

fn seed_lock() -> &'static str {
    static SEED: OnceLock<String> = OnceLock::new();
    SEED.get_or_init(|| {
        let r = reference();
        String::from_utf8(r.lock).unwrap()
    })
}

/// What the reader may return for any text: an error, or entries with finite ranges that round-trip.
fn check_read(text: String) -> Result<bool, TestCaseError> {
    within(READ_LIMIT, move || {
        let Ok(lock) = LockFile::parse(&text) else {
            return Ok(false);
        };
        for e in lock.entries.values() {
            for r in &e.ranges {
                let (lo, hi) = (f32::from_bits(r.min), f32::from_bits(r.max));
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(format!("usable entry {} has range [{lo}, {hi}]", e.id()));
                }
            }
        }
        let again = LockFile::parse(&lock.to_text()).map_err(|e| format!("rewritten lock: {e}"))?;
        if again.entries != lock.entries {
            return Err("the rewritten lock reads back differently".into());
        }
        Ok(true)
    })?
    .map_err(TestCaseError::fail)
}

fn report(target: &str, ran: u32, accepted: u32, started: Instant) {
    eprintln!(
        "{target}: {ran} cases in {:.1} s, {accepted} accepted",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn mutated_locks_never_panic_the_reader() {
    let seed = seed_lock().as_bytes().to_vec();
    let started = Instant::now();
    let (ran, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let budget = budget();
    run_cases(2000, &prop::collection::vec(edit(), 1..6), |edits| {
        if budget.is_some_and(|b| started.elapsed() > b) {
            return Ok(());
        }
        let mut bytes = seed.clone();
        for e in &edits {
            apply(&mut bytes, e);
        }
        ran.set(ran.get() + 1);
        if check_read(String::from_utf8_lossy(&bytes).into_owned())? {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    let (ran, accepted) = (ran.get(), accepted.get());
    report("lock reader fuzz", ran, accepted, started);
    assert!(
        ran > 0 && accepted > 0 && accepted < ran,
        "{accepted} of {ran}"
    );
}

#[test]
fn random_text_never_panics_the_lock_reader() {
    let started = Instant::now();
    let ran = Cell::new(0u32);
    let budget = budget();
    let text = prop_oneof![
        ".{0,400}",
        "(version = [0-9]{1,3}\n)?(\\[\\[artifact\\]\\]\n([a-z_]{1,14} = (\"[a-f0-9x]{0,12}\"|[0-9-]{1,5}|\\[\\{ tensor = [0-9]{1,4}, min = \"0x[0-9a-f]{8}\", max = \"0x[0-9a-f]{8}\" \\}\\])\n){0,10}){0,3}",
    ];
    run_cases(2000, &text, |text| {
        if budget.is_some_and(|b| started.elapsed() > b) {
            return Ok(());
        }
        ran.set(ran.get() + 1);
        check_read(text)?;
        Ok(())
    });
    report("lock random-text fuzz", ran.get(), 0, started);
}

/// Mutated locks through `litequant build --locked` and `litequant build`.
#[test]
fn mutated_locks_never_panic_a_build_nor_get_written_back() {
    let r = reference();
    let lock_path = r.project.dir.join("quantize.lock");
    let started = Instant::now();
    let (ran, refused_locked, refused_plain) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let budget = budget();
    run_cases(12, &prop::collection::vec(edit(), 1..4), |edits| {
        if budget.is_some_and(|b| started.elapsed() > b) {
            return Ok(());
        }
        let mut bytes = r.lock.clone();
        for e in &edits {
            apply(&mut bytes, e);
        }
        ran.set(ran.get() + 1);
        std::fs::write(&lock_path, &bytes).unwrap();
        let check = |o: &Output, what: &str| -> Result<(), TestCaseError> {
            let err = stderr(o);
            prop_assert!(!err.contains("panicked"), "{what}: {err}");
            prop_assert!(
                matches!(o.status.code(), Some(0 | 2)),
                "{what}: exit {:?}: {err}",
                o.status.code()
            );
            prop_assert_eq!(
                out_files(&r.project.dir)
                    .into_iter()
                    .filter(|(n, _)| n.ends_with(".tflite"))
                    .collect::<BTreeMap<_, _>>(),
                r.artifacts.clone(),
                "{}: the artifacts changed",
                what
            );
            Ok(())
        };
        let locked = run_within(r.project.command(&["build", "--locked"]), BUILD_LIMIT)?;
        check(&locked, "build --locked")?;
        prop_assert_eq!(std::fs::read(&lock_path).unwrap(), bytes.clone());
        if !locked.status.success() {
            refused_locked.set(refused_locked.get() + 1);
        }
        let plain = run_within(r.project.command(&["build"]), BUILD_LIMIT)?;
        check(&plain, "build")?;
        let now = std::fs::read(&lock_path).unwrap();
        if plain.status.success() {
            prop_assert!(
                now == r.lock,
                "the plain build wrote another lock than the reference:\n{}",
                String::from_utf8_lossy(&now)
            );
        } else {
            refused_plain.set(refused_plain.get() + 1);
            prop_assert!(now == bytes, "a refused build changed the lock");
            prop_assert!(
                stderr(&plain).contains("quantize.lock"),
                "{}",
                stderr(&plain)
            );
        }
        Ok(())
    });
    eprintln!(
        "lock build fuzz: {} mutated locks in {:.1} s; --locked refused {}, plain build refused {}",
        ran.get(),
        started.elapsed().as_secs_f64(),
        refused_locked.get(),
        refused_plain.get()
    );
    assert!(ran.get() > 0);
}
