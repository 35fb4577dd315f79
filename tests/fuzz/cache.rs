//! Fuzzing the cache reader: never a panic, never a hang, never a damaged entry served.
//!
//! The entries of a real build (`entry.json`, `artifact.tflite`, `entry.sha256`) are mutated (bytes flipped,
//! inserted, truncated; JSON tokens and digits replaced; lines and files swapped) and read back with
//! `Cache::get`: an entry that is served must be exactly the one stored, and an untouched one must be served.
//! A second target runs `litequant build` over a mutated cache: it must succeed with exactly the reference
//! artifacts and lock.
//!
//! `PROPTEST_CASES` sets the number of cases (defaults: 1000 for the reader, 12 for the build path);
//! `LITEQUANT_FUZZ_SECONDS` stops a run after that long. A long run:
//! `PROPTEST_CASES=100000000 LITEQUANT_FUZZ_SECONDS=1800 cargo test --release --test tests fuzz::cache -- --nocapture`.

use super::lock::{
    apply, budget, edit, out_files, reference, run_cases, run_within, within, Edit, BUILD_LIMIT,
    READ_LIMIT,
};
use crate::lock::stderr;
use litequant::engine::digest::FORMAT_VERSION;
use litequant::engine::Cache;
use proptest::prelude::*;
use proptest::sample::Index;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const FILES: [&str; 3] = ["entry.json", "artifact.tflite", "entry.sha256"];

/// One stored entry: its key and the bytes of its files.
#[derive(Clone)]
struct Stored {
    key: String,
    files: BTreeMap<&'static str, Vec<u8>>,
}

/// Every entry of the reference build's cache.
fn entries_of(cache_dir: &Path) -> Vec<Stored> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(cache_dir.join(format!("v{FORMAT_VERSION}"))).unwrap() {
        let dir = e.unwrap().path();
        let key = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.join("entry.json").is_file() {
            continue;
        }
        let files = FILES
            .iter()
            .map(|f| (*f, std::fs::read(dir.join(f)).unwrap()))
            .collect();
        out.push(Stored { key, files });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    assert!(out.len() >= 3, "expected the reference build's entries");
    out
}

fn seeds() -> &'static [Stored] {
    static SEEDS: OnceLock<Vec<Stored>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let r = reference();
        entries_of(&r.project.dir.join("cache"))
    })
}

/// A mutation of one entry: which file, and the edits; or a file of another entry put in its place.
#[derive(Debug, Clone)]
enum Damage {
    Edit(Index, Vec<Edit>),
    Swap(Index, Index),
    Remove(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        8 => (any::<Index>(), prop::collection::vec(edit(), 1..4)).prop_map(|(f, e)| Damage::Edit(f, e)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(f, o)| Damage::Swap(f, o)),
        1 => any::<Index>().prop_map(Damage::Remove),
    ]
}

/// Writes `entry` under `root/v<FORMAT_VERSION>/<key>` with `damage` applied; returns whether any file differs from it.
fn write_damaged(root: &Path, entry: &Stored, others: &[Stored], damage: &Damage) -> bool {
    let dir = root.join(format!("v{FORMAT_VERSION}")).join(&entry.key);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = entry.files.clone();
    match damage {
        Damage::Edit(f, edits) => {
            let name = FILES[f.index(FILES.len())];
            let bytes = files.get_mut(name).unwrap();
            for e in edits {
                apply(bytes, e);
            }
        }
        Damage::Swap(f, o) => {
            let name = FILES[f.index(FILES.len())];
            let other = &others[o.index(others.len())];
            files.insert(name, other.files[name].clone());
        }
        Damage::Remove(f) => {
            files.remove(FILES[f.index(FILES.len())]);
        }
    }
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    files != entry.files
}

#[test]
fn damaged_cache_entries_are_never_served() {
    let seeds = seeds();
    let root = tempfile::tempdir().unwrap();
    let root_path: PathBuf = root.path().to_path_buf();
    let started = Instant::now();
    let (ran, served, changed) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let budget = budget();
    run_cases(1000, &(any::<Index>(), damage()), |(which, damage)| {
        if budget.is_some_and(|b| started.elapsed() > b) {
            return Ok(());
        }
        ran.set(ran.get() + 1);
        let entry = seeds[which.index(seeds.len())].clone();
        let damaged = write_damaged(&root_path, &entry, seeds, &damage);
        if damaged {
            changed.set(changed.get() + 1);
        }
        let (dir, key) = (root_path.clone(), entry.key.clone());
        let got = within(READ_LIMIT, move || Cache::new(dir).get(&key))?;
        if let Some(got) = got {
            served.set(served.get() + 1);
            // Whatever was served is byte for byte what was stored.
            let meta: serde_json::Value =
                serde_json::from_slice(&entry.files["entry.json"]).unwrap();
            prop_assert_eq!(&got.artifact, &entry.files["artifact.tflite"]);
            prop_assert_eq!(
                serde_json::to_value(&got.report).unwrap(),
                meta["report"].clone()
            );
            let ranges: Vec<(usize, u32, u32)> = got
                .ranges
                .iter()
                .map(|r| (r.tensor, r.min, r.max))
                .collect();
            prop_assert_eq!(
                serde_json::to_value(ranges).unwrap(),
                meta["ranges"].clone()
            );
            // Only an unchanged entry.json and artifact are served (entry.sha256 may differ in
            // surrounding whitespace only).
            let dir = root_path
                .join(format!("v{FORMAT_VERSION}"))
                .join(&entry.key);
            for f in ["entry.json", "artifact.tflite"] {
                prop_assert_eq!(std::fs::read(dir.join(f)).unwrap(), entry.files[f].clone());
            }
        } else {
            prop_assert!(damaged, "an intact entry was not served");
            prop_assert!(
                !root_path
                    .join(format!("v{FORMAT_VERSION}"))
                    .join(&entry.key)
                    .exists(),
                "a damaged entry was left in place"
            );
        }
        Ok(())
    });
    eprintln!(
        "cache reader fuzz: {} cases in {:.1} s, {} damaged, {} served",
        ran.get(),
        started.elapsed().as_secs_f64(),
        changed.get(),
        served.get()
    );
    assert!(ran.get() > 0 && served.get() < ran.get());
}

/// Mutated cache entries under `litequant build`: the reference artifacts and lock, whatever the damage.
#[test]
fn builds_over_a_damaged_cache_give_the_reference_outputs() {
    let r = reference();
    let cache = r.project.dir.join("cache");
    let pristine = entries_of(&cache);
    let started = Instant::now();
    let (ran, misses) = (Cell::new(0u32), Cell::new(0u32));
    let budget = budget();
    run_cases(
        12,
        &prop::collection::vec((any::<Index>(), damage()), 1..4),
        |damages| {
            if budget.is_some_and(|b| started.elapsed() > b) {
                return Ok(());
            }
            ran.set(ran.get() + 1);
            for e in &pristine {
                let dir = cache.join(format!("v{FORMAT_VERSION}")).join(&e.key);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                for (name, bytes) in &e.files {
                    std::fs::write(dir.join(name), bytes).unwrap();
                }
            }
            for (which, d) in &damages {
                write_damaged(&cache, &pristine[which.index(pristine.len())], &pristine, d);
            }
            let o = run_within(r.project.command(&["build", "--json"]), BUILD_LIMIT)?;
            let err = stderr(&o);
            prop_assert!(!err.contains("panicked"), "{}", err);
            prop_assert!(o.status.success(), "{}", err);
            let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            misses.set(
                misses.get()
                    + reports
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| r["cache"] == "miss")
                        .count() as u32,
            );
            let artifacts: BTreeMap<String, Vec<u8>> = out_files(&r.project.dir)
                .into_iter()
                .filter(|(n, _)| n.ends_with(".tflite"))
                .collect();
            prop_assert!(artifacts == r.artifacts, "the artifacts changed");
            prop_assert!(
                std::fs::read(r.project.dir.join("quantize.lock")).unwrap() == r.lock,
                "the lock changed"
            );
            Ok(())
        },
    );
    eprintln!(
        "cache build fuzz: {} damaged caches in {:.1} s, {} jobs rebuilt",
        ran.get(),
        started.elapsed().as_secs_f64(),
        misses.get()
    );
    assert!(ran.get() > 0);
}
