//! Bad engine input: cache entries, the lock, model files, names, paths, threads, temp files.
//!
//! Each case asserts the exit code, that the message names the file, key or line, that nothing panicked,
//! and that what earlier builds wrote (artifacts, `quantize.lock`, the cache) is intact afterwards.

use crate::lock::{fixture, stderr, Project, CONFIG};
use litequant::engine::digest::FORMAT_VERSION;
use litequant::engine::lockfile::LockFile;
use litequant::graph::Graph;
use litequant::tflite::{fb, write_model};
use std::process::Output;

/// Asserts a clean refusal: exit `code`, no panic, and every `needle` in stderr.
fn refused(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    err
}

fn ok(o: &Output) -> String {
    let err = stderr(o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn lock_text(p: &Project) -> String {
    std::fs::read_to_string(p.dir.join("quantize.lock")).unwrap()
}

/// The line (1-based) of `quantize.lock` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Item 1: a flipped digit in a cached entry's ranges is detected, the entry rebuilt, and the lock written
/// from the rebuilt ranges, not the corrupt ones.
#[test]
fn a_corrupt_cached_range_is_never_served_nor_copied_into_the_lock() {
    let p = Project::new();
    ok(&p.run(&["build"]));
    let lock = lock_text(&p);
    let artifacts: Vec<Vec<u8>> = ["digits.int8.tflite", "digits.int16x8.tflite"]
        .iter()
        .map(|a| p.artifact(a))
        .collect();
    let mut corrupted = 0;
    for entry in std::fs::read_dir(p.dir.join(format!("cache/v{FORMAT_VERSION}"))).unwrap() {
        let json = entry.unwrap().path().join("entry.json");
        let Ok(text) = std::fs::read_to_string(&json) else {
            continue;
        };
        // `"ranges":[[tensor,min,max],...]`: change the last digit of the first range's max bits.
        let Some(at) = text.find("\"ranges\":[[") else {
            continue;
        };
        let first = &text[at..];
        let end = at + first.find(']').unwrap();
        let digit = text.as_bytes()[end - 1];
        if !digit.is_ascii_digit() {
            continue;
        }
        let mut bytes = text.clone().into_bytes();
        bytes[end - 1] = if digit == b'9' { b'8' } else { digit + 1 };
        std::fs::write(&json, bytes).unwrap();
        corrupted += 1;
    }
    assert!(
        corrupted >= 2,
        "expected calibrated cache entries to corrupt"
    );
    std::fs::remove_file(p.dir.join("quantize.lock")).unwrap();
    let again = p.run(&["build", "--json"]);
    ok(&again);
    let reports: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    for r in reports.as_array().unwrap() {
        if r["mode"] != "dynamic" {
            assert_eq!(r["cache"], "miss", "a corrupt entry was served: {r}");
        }
    }
    assert_eq!(
        lock_text(&p),
        lock,
        "the lock records the calibrated ranges again"
    );
    for (a, bytes) in ["digits.int8.tflite", "digits.int16x8.tflite"]
        .iter()
        .zip(&artifacts)
    {
        assert_eq!(&p.artifact(a), bytes);
    }
    // --no-cache gives the same lock and artifacts.
    ok(&p.run(&["build", "--no-cache"]));
    assert_eq!(lock_text(&p), lock);
}

/// Item 2: lock entries that cannot be trusted. A locked build refuses each, naming the lock, the entry and
/// the line, and leaves everything as it was; a plain build warns the same way, recalibrates and writes back
/// the calibrated ranges (never the bad ones).
#[test]
fn a_damaged_lock_entry_names_lock_entry_and_line_and_is_never_written_back() {
    let p = Project::new();
    ok(&p.run(&["build"]));
    let good = lock_text(&p);
    let entry_line = line_of(&good, "mode = \"int8\"") - 1;
    let int8 = &good[good.find("mode = \"int8\"").unwrap()..];
    let first_range = int8.lines().find(|l| l.contains("{ tensor = ")).unwrap();
    let tensor: usize = first_range
        .split("tensor = ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Counted within the int8 entry: the int16x8 entry above it holds an identical line.
    let range_line = entry_line + 1 + int8.lines().position(|l| l == first_range).unwrap();
    let max_bits = first_range.split("max = \"").nth(1).unwrap()[..10].to_string();
    let sha_line = int8
        .lines()
        .find(|l| l.starts_with("ranges_sha256"))
        .unwrap();
    // (what, edit of the lock text, line named, words of the message)
    type Edit<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let cases: Vec<(&str, Edit, usize, Vec<String>)> = vec![
        (
            "NaN range",
            Box::new(|t: &str| in_int8(t, &|t| t.replacen(&max_bits, "0x7fc00000", 1))),
            range_line,
            vec![format!("range of tensor {tensor}"), "not finite".into()],
        ),
        (
            "infinite range",
            Box::new(|t: &str| in_int8(t, &|t| t.replacen(&max_bits, "0x7f800000", 1))),
            range_line,
            vec!["not finite".into()],
        ),
        (
            // Through the lock's own writer, so `ranges_sha256` matches: only the model can tell.
            "tensor 9999",
            Box::new(move |t: &str| {
                relock(t, &|ranges| {
                    ranges[0].tensor = 9999;
                })
            }),
            0,
            vec!["tensor 9999 has a range".into(), "tensors 0..".into()],
        ),
        (
            "missing range, signed",
            Box::new(move |t: &str| {
                relock(t, &|ranges| {
                    ranges.remove(0);
                })
            }),
            entry_line,
            vec!["the model needs a range the entry does not record".into()],
        ),
        (
            "duplicated range line",
            Box::new(|t: &str| {
                in_int8(t, &|t| {
                    t.replacen(first_range, &format!("{first_range}\n{first_range}"), 1)
                })
            }),
            range_line + 1,
            vec![format!("tensor {tensor} has two ranges")],
        ),
        (
            "missing range line, signature removed too",
            Box::new(move |t: &str| {
                in_int8(t, &|t| {
                    let t = t.replacen(&format!("{first_range}\n"), "", 1);
                    t.replacen(&format!("{sha_line}\n"), "", 1)
                })
            }),
            entry_line,
            vec!["without their `ranges_sha256`".into()],
        ),
        (
            "hand-edited range",
            Box::new(|t: &str| {
                let last = &max_bits[9..];
                let other = if last == "0" { "1" } else { "0" };
                in_int8(t, &|t| {
                    t.replacen(&max_bits, &format!("{}{other}", &max_bits[..9]), 1)
                })
            }),
            entry_line,
            vec!["edited by hand".into()],
        ),
    ];
    for (what, edit, line, words) in &cases {
        let bad = edit(&good);
        assert_ne!(bad, good, "{what}: the edit changed nothing");
        let line = if *line == 0 {
            line_of(&bad, "tensor = 9999")
        } else {
            *line
        };
        std::fs::write(p.dir.join("quantize.lock"), &bad).unwrap();
        let before = p.snapshot();
        let locked = p.run(&["build", "--locked"]);
        let mut needles = vec![format!("quantize.lock:{line}: entry `digits.int8`")];
        needles.extend(words.iter().cloned());
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let err = refused(&locked, 2, &needles);
        assert!(!err.contains("engine's output changed"), "{what}: {err}");
        assert_eq!(
            p.snapshot(),
            before,
            "{what}: a failed locked build changed files"
        );
        // A plain build: the same words as a warning, then a fresh calibration and the good lock again.
        let plain = p.run(&["build"]);
        let err = ok(&plain);
        for n in &needles {
            assert!(err.contains(n), "{what}: expected {n:?} in:\n{err}");
        }
        assert!(err.contains("calibrating afresh"), "{what}: {err}");
        assert_eq!(lock_text(&p), good, "{what}: the lock was not restored");
    }
    // The same entry twice: refused, naming both lines.
    let body = good.split_once("[[artifact]]").unwrap().1;
    let twice = format!("{good}\n[[artifact]]{body}");
    std::fs::write(p.dir.join("quantize.lock"), &twice).unwrap();
    let before = p.snapshot();
    refused(
        &p.run(&["build", "--locked"]),
        2,
        &["quantize.lock:", "listed twice (lines"],
    );
    assert_eq!(p.snapshot(), before);
    ok(&p.run(&["build"]));
    assert_eq!(lock_text(&p), good);
    // A lock that is not TOML: refused by every build, naming the line, and left as it is.
    std::fs::write(p.dir.join("quantize.lock"), "version = 1\n[[artifact]\n").unwrap();
    let before = p.snapshot();
    refused(
        &p.run(&["build"]),
        2,
        &["quantize.lock:2:", "not a readable quantize.lock"],
    );
    assert_eq!(p.snapshot(), before);
}

/// `text` with `edit` applied from the int8 entry on (the other entries hold the same values).
fn in_int8(text: &str, edit: &dyn Fn(&str) -> String) -> String {
    let at = text.find("mode = \"int8\"").unwrap();
    format!("{}{}", &text[..at], edit(&text[at..]))
}

/// The lock `text` with the int8 entry's ranges changed by `edit`, written by the lock's own writer (so its
/// `ranges_sha256` matches the edited ranges).
fn relock(text: &str, edit: &dyn Fn(&mut Vec<litequant::engine::lockfile::TensorRange>)) -> String {
    let mut lock = LockFile::parse(text).unwrap();
    let entry = lock
        .entries
        .get_mut(&("digits".to_string(), "int8".to_string()))
        .unwrap();
    edit(&mut entry.ranges);
    lock.to_text()
}

/// The digits MLP with its first op reading what its second one writes.
fn cyclic_model() -> Vec<u8> {
    let mut g =
        Graph::from_bytes(&std::fs::read(fixture("models/digits_mlp.tflite")).unwrap()).unwrap();
    let ops = g.model.subgraphs.as_mut().unwrap()[0]
        .operators
        .as_mut()
        .unwrap();
    let later = ops[1].outputs.as_ref().unwrap()[0];
    ops[0].inputs.as_mut().unwrap()[0] = later;
    write_model(&g.model)
}

/// The digits MLP with a tensor of type 77 (no such TFLite type).
fn unknown_type_model() -> Vec<u8> {
    let mut g =
        Graph::from_bytes(&std::fs::read(fixture("models/digits_mlp.tflite")).unwrap()).unwrap();
    let sg = &mut g.model.subgraphs.as_mut().unwrap()[0];
    let t = sg.operators.as_ref().unwrap()[0].outputs.as_ref().unwrap()[0] as usize;
    sg.tensors.as_mut().unwrap()[t].type_ = fb::TensorType(77);
    write_model(&g.model)
}

/// Item 6: a graph cycle and an unknown tensor type are invalid models: exit 2, naming the file and the
/// problem, and no artifact of that model in any mode; the other model's artifacts are left as they were.
#[test]
fn invalid_models_exit_2_and_write_no_artifact_of_theirs() {
    for (what, bytes, words) in [
        ("cycle", cyclic_model(), "the graph has a cycle"),
        ("type 77", unknown_type_model(), "tensor type 77"),
    ] {
        let config = format!(
            "{CONFIG}\n[models.bad]\nsource = \"models/bad.tflite\"\nmodes = [\"dynamic\", \"float16\", \"int8\"]\ndataset = \"digits\"\n"
        );
        let p = Project::with_config(&config);
        std::fs::write(p.dir.join("models/bad.tflite"), &bytes).unwrap();
        let first = p.run(&["build"]);
        refused(
            &first,
            2,
            &["models/bad.tflite", words, "bad.dynamic", "bad.int8"],
        );
        let out: Vec<String> = std::fs::read_dir(p.dir.join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !out.iter().any(|f| f.contains("bad")),
            "{what}: artifacts of the invalid model were written: {out:?}"
        );
        assert!(out.contains(&"digits.int8.tflite".to_string()), "{out:?}");
        // Again: the good model's artifacts, the lock and the cache are unchanged by the failure.
        let before = p.snapshot();
        refused(&p.run(&["build"]), 2, &["models/bad.tflite"]);
        assert_eq!(p.snapshot(), before, "{what}");
        refused(&p.run(&["check"]), 2, &["models/bad.tflite", words]);
    }
}

/// Item 8: thread counts beyond the limit are refused with the limit, from the flag or the environment;
/// `exclude` lists and patterns are capped with the key and line named; many unmatched patterns give a
/// bounded number of warning lines.
#[test]
fn threads_and_exclude_patterns_are_bounded() {
    let p = Project::new();
    ok(&p.run(&["build"]));
    let before = p.snapshot();
    refused(
        &p.run(&["build", "--threads", "100000"]),
        2,
        &["--threads 100000", "at most 256"],
    );
    let env = p
        .command(&["build"])
        .env("LITEQUANT_THREADS", "100000")
        .output()
        .unwrap();
    refused(&env, 2, &["LITEQUANT_THREADS=100000", "at most 256"]);
    let env = p
        .command(&["build"])
        .env("LITEQUANT_THREADS", "many")
        .output()
        .unwrap();
    refused(&env, 2, &["LITEQUANT_THREADS=\"many\""]);
    assert_eq!(p.snapshot(), before);
    // 256 threads is allowed and gives the same bytes (the reports differ: timings, cache status).
    ok(&p.run(&["build", "--no-cache", "--threads", "256"]));
    let outputs = |files: std::collections::BTreeMap<String, Vec<u8>>| {
        files
            .into_iter()
            .filter(|(name, _)| !name.ends_with(".json"))
            .collect::<Vec<_>>()
    };
    assert_eq!(outputs(p.snapshot()), outputs(before.clone()));
    ok(&p.run(&["build"]));
    let before = p.snapshot();

    let long = format!("exclude = [\"{}\"]", "a".repeat(10_000));
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace(
            "dataset = \"digits\"",
            &format!("dataset = \"digits\"\n{long}"),
        ),
    )
    .unwrap();
    let line = line_of(
        &CONFIG.replace("dataset = \"digits\"", "dataset = \"digits\"\nX"),
        "X",
    );
    refused(
        &p.run(&["build"]),
        2,
        &[
            &format!("quantize.toml:{line}:"),
            "models.digits.exclude[0]",
            "at most 1024",
        ],
    );
    let many: Vec<String> = (0..2000).map(|i| format!("\"nosuch{i}\"")).collect();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace(
            "dataset = \"digits\"",
            &format!("dataset = \"digits\"\nexclude = [{}]", many.join(", ")),
        ),
    )
    .unwrap();
    refused(
        &p.run(&["build"]),
        2,
        &[
            "quantize.toml:",
            "models.digits.exclude",
            "2000 patterns",
            "at most 1000",
        ],
    );
    assert_eq!(p.snapshot(), before);
    // 500 patterns that match nothing: a build succeeds with a bounded warning list per job.
    let unmatched: Vec<String> = (0..500).map(|i| format!("\"nosuch{i}\"")).collect();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace(
            "dataset = \"digits\"",
            &format!("dataset = \"digits\"\nexclude = [{}]", unmatched.join(", ")),
        ),
    )
    .unwrap();
    let err = ok(&p.run(&["build"]));
    let warnings = err.lines().filter(|l| l.starts_with("warning")).count();
    assert!(warnings <= 3 * 11, "{warnings} warning lines:\n{err}");
    assert!(err.contains("more warnings (every one is in"), "{err}");
}

/// Item 9: model names are safe file stems; `out_dir` must be a folder and `lock` a file, each named.
#[test]
fn unsafe_names_and_paths_of_the_wrong_kind_are_refused_naming_the_key() {
    let p = Project::new();
    ok(&p.run(&["build"]));
    let before = p.snapshot();
    for name in ["\"..\"", "\".hidden\"", "\"a..b\"", "\"a/b\""] {
        std::fs::write(
            p.dir.join("quantize.toml"),
            format!("{CONFIG}\n[models.{name}]\nsource = \"models/digits.tflite\"\nmodes = [\"dynamic\"]\n"),
        )
        .unwrap();
        let line = CONFIG.lines().count() + 2;
        refused(
            &p.run(&["build"]),
            2,
            &[
                &format!("quantize.toml:{line}:"),
                &format!("models.{name}"),
                "letters, digits, `_`, `-` and `.`, not starting with `.` and without `..`",
            ],
        );
        assert_eq!(p.snapshot(), before, "{name}");
    }
    // out_dir that is a file, in the config and on the command line.
    std::fs::write(p.dir.join("a-file"), "x").unwrap();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace("out_dir = \"out\"", "out_dir = \"a-file\""),
    )
    .unwrap();
    refused(
        &p.run(&["build"]),
        2,
        &[
            "quantize.toml:2:",
            "settings.out_dir",
            "expected a folder",
            "found a file",
        ],
    );
    std::fs::write(p.dir.join("quantize.toml"), CONFIG).unwrap();
    refused(
        &p.run(&["build", "--out-dir", "a-file"]),
        2,
        &["a-file", "--out-dir must be a folder"],
    );
    // lock that is a folder: named by key when set, by path when it is the default.
    std::fs::create_dir(p.dir.join("lockdir")).unwrap();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace("cache = \"cache\"", "cache = \"cache\"\nlock = \"lockdir\""),
    )
    .unwrap();
    refused(
        &p.run(&["build"]),
        2,
        &["quantize.toml:4:", "settings.lock", "found a folder"],
    );
    std::fs::write(p.dir.join("quantize.toml"), CONFIG).unwrap();
    assert_eq!(p.snapshot(), before);
    let lock = p.dir.join("quantize.lock");
    let saved = std::fs::read(&lock).unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    refused(
        &p.run(&["build"]),
        2,
        &[
            "quantize.lock: is a folder",
            "`[settings] lock` must name the lock file",
        ],
    );
    std::fs::remove_dir(&lock).unwrap();
    std::fs::write(&lock, saved).unwrap();
    assert_eq!(p.snapshot(), before);
}

/// Item 10: temp files of our naming left by a build killed mid-write are removed by the next build of
/// that job; other hidden files are not touched.
#[test]
fn stale_temp_files_of_a_killed_build_are_removed_by_the_next_build() {
    let p = Project::new();
    ok(&p.run(&["build"]));
    let before = p.snapshot();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    let stale = [
        "out/.digits.int8.tflite.Xy12Ab.tmp",
        "out/.digits.dynamic.tflite.q9W8e7.tmp",
        "out/.digits.int8.json.r5T6y7.tmp",
        ".quantize.lock.aB3dE4.tmp",
    ];
    let foreign = ["out/.notes.tmp", "out/.digits.int8.tflite.keep-me.tmp"];
    for f in stale.iter().chain(&foreign) {
        let file = std::fs::File::create(p.dir.join(f)).unwrap();
        file.set_modified(old).unwrap();
    }
    // A build that rewrites the lock (an edit of its comment) so its temp files are cleaned too.
    let lock = lock_text(&p);
    std::fs::write(p.dir.join("quantize.lock"), lock.replacen("# ", "#  ", 1)).unwrap();
    ok(&p.run(&["build"]));
    for f in stale {
        assert!(!p.dir.join(f).exists(), "{f} is still there");
    }
    for f in foreign {
        assert!(p.dir.join(f).exists(), "{f} was removed");
        std::fs::remove_file(p.dir.join(f)).unwrap();
    }
    assert_eq!(p.snapshot(), before);
}

/// Item 12: one closing line names where the artifacts went, and only calibrated jobs are labelled as
/// taking their ranges from the lock.
#[test]
fn build_says_where_artifacts_went_and_labels_only_calibrated_jobs_from_the_lock() {
    let config = CONFIG.replace(
        "[\"dynamic\", \"int8\", \"int16x8\"]",
        "[\"dynamic\", \"float16\", \"int8\"]",
    );
    let p = Project::with_config(&config);
    let first = ok(&p.run(&["build"]));
    assert!(first.contains("3 artifacts written: 3 in out"), "{first}");
    for args in [
        &["build", "--no-cache"][..],
        &["build", "--locked", "--no-cache"],
    ] {
        let o = p.run(args);
        ok(&o);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = |mode: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("digits.{mode} ")))
                .unwrap_or_else(|| panic!("no {mode} line in:\n{out}"))
                .to_string()
        };
        assert!(line("int8").contains("[ranges from lock]"), "{out}");
        assert!(!line("dynamic").contains("[ranges from lock]"), "{out}");
        assert!(!line("float16").contains("[ranges from lock]"), "{out}");
    }
    let lock = LockFile::read(&p.dir.join("quantize.lock"))
        .unwrap()
        .unwrap();
    assert_eq!(lock.entries.len(), 3);
}
