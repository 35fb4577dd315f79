//! The cache and `quantize.lock` through the CLI: locked builds, drift reports, concurrent builds sharing a
//! cache, damaged cache entries, workspaces. Every artifact checked here runs in LiteRT.

use crate::interop::{evaluate, litequant, repo};
use litequant::engine::digest::FORMAT_VERSION;
use std::path::{Path, PathBuf};
use std::process::Output;

pub(crate) fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// A project folder: the digits MLP and its calibration data copied in (so tests may change them), a
/// config with relative paths, and its own cache folder. The bad-input catalogue and the lock and cache fuzz
/// targets use it too.
pub(crate) struct Project {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

pub(crate) const CONFIG: &str = r#"[settings]
out_dir = "out"
cache = "cache"

[datasets.digits]
format = "npz"
path = "data/digits.npz"

[models.digits]
source = "models/digits.tflite"
modes = ["dynamic", "int8", "int16x8"]
dataset = "digits"
"#;

impl Project {
    pub(crate) fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("project");
        Project::fill(&dir);
        Project { _tmp: tmp, dir }
    }

    /// A project whose `quantize.toml` is `config`.
    pub(crate) fn with_config(config: &str) -> Project {
        let p = Project::new();
        std::fs::write(p.dir.join("quantize.toml"), config).unwrap();
        p
    }

    /// Every file a build may have written, by path relative to the project: the artifacts and reports under
    /// `out/`, `quantize.lock` and the cache entries (not the cache's lock files). Compared before and after
    /// a failing build to show that it left them intact.
    pub(crate) fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, into: &mut std::collections::BTreeMap<String, Vec<u8>>) {
            let Ok(listing) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in listing {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if path.is_dir() {
                    if !rel.ends_with("locks") {
                        walk(root, &path, into);
                    }
                } else {
                    into.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut files = std::collections::BTreeMap::new();
        walk(&self.dir, &self.dir.join("out"), &mut files);
        walk(&self.dir, &self.dir.join("cache"), &mut files);
        if let Ok(lock) = std::fs::read(self.dir.join("quantize.lock")) {
            files.insert("quantize.lock".into(), lock);
        }
        files
    }

    fn fill(dir: &Path) {
        std::fs::create_dir_all(dir.join("models")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::copy(
            fixture("models/digits_mlp.tflite"),
            dir.join("models/digits.tflite"),
        )
        .unwrap();
        std::fs::copy(
            fixture("data/digits_mlp_calib.npz"),
            dir.join("data/digits.npz"),
        )
        .unwrap();
        std::fs::write(dir.join("quantize.toml"), CONFIG).unwrap();
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `litequant ARGS` in the project, with no cache or thread override from the environment.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = litequant();
        c.args(args)
            .current_dir(&self.dir)
            .env_remove("LITEQUANT_CACHE_DIR")
            .env_remove("LITEQUANT_THREADS");
        c
    }

    pub(crate) fn artifact(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("out").join(name)).unwrap()
    }
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn reports(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn locked_build_passes_on_an_unchanged_tree_and_fails_naming_what_drifted() {
    let p = Project::new();
    let none = p.run(&["build", "--locked"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("quantize.lock: no lock file"),
        "{}",
        stderr(&none)
    );

    let first = p.run(&["build"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(p.dir.join("quantize.lock").is_file());
    let int8 = p.artifact("digits.int8.tflite");

    // Unchanged: passes, every calibrated artifact rebuilt from the lock's ranges, the same bytes.
    std::fs::remove_dir_all(p.dir.join("cache")).unwrap();
    let locked = p.run(&["build", "--locked", "--json"]);
    assert!(locked.status.success(), "{}", stderr(&locked));
    let r = reports(&locked);
    assert_eq!(r[1]["ranges_from"], "lock");
    assert_eq!(r[1]["calibration_samples"], 0);
    assert_eq!(p.artifact("digits.int8.tflite"), int8);

    // Without the dataset (large or private data stays out of release checkouts): still passes.
    std::fs::rename(p.dir.join("data/digits.npz"), p.dir.join("digits.npz.away")).unwrap();
    std::fs::remove_dir_all(p.dir.join("cache")).unwrap();
    let no_data = p.run(&["build", "--locked"]);
    assert!(no_data.status.success(), "{}", stderr(&no_data));
    assert_eq!(p.artifact("digits.int8.tflite"), int8);

    // A different dataset: fails, naming the file and how to refresh; artifacts untouched.
    std::fs::copy(
        fixture("data/digits_mlp_eval.npz"),
        p.dir.join("data/digits.npz"),
    )
    .unwrap();
    let drifted = p.run(&["build", "--locked"]);
    let err = stderr(&drifted);
    assert_eq!(drifted.status.code(), Some(2), "{err}");
    assert!(err.contains("digits.int8 drifted from"), "{err}");
    assert!(err.contains("data/digits.npz changed"), "{err}");
    assert!(
        err.contains("refresh the lock with `litequant build`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(p.artifact("digits.int8.tflite"), int8);
    // The dynamic artifact does not read the dataset: it still builds.
    assert!(!err.contains("digits.dynamic drifted"), "{err}");

    // A model change and a settings change are named too.
    std::fs::rename(p.dir.join("digits.npz.away"), p.dir.join("data/digits.npz")).unwrap();
    std::fs::copy(
        fixture("models/legacy_opcodes_mlp.tflite"),
        p.dir.join("models/digits.tflite"),
    )
    .unwrap();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace(
            "dataset = \"digits\"",
            "dataset = \"digits\"\nper_channel_dense = false",
        ),
    )
    .unwrap();
    let err = stderr(&p.run(&["build", "--locked"]));
    assert!(err.contains("models/digits.tflite changed"), "{err}");
    assert!(
        err.contains("the settings of model `digits` (mode int8) changed"),
        "{err}"
    );

    // A plain build refreshes the lock; then --locked passes again, and LiteRT runs the result.
    let refreshed = p.run(&["build"]);
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
    let again = p.run(&["build", "--locked"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let e = evaluate(
        &p.dir.join("models/digits.tflite"),
        &p.dir.join("out/digits.int8.tflite"),
        Some(&fixture("data/digits_mlp_eval.npz")),
        50,
    );
    assert!(e.loads_ok, "{:?}", e.error);
    assert!(e.sqnr_db > 30.0, "{e:?}");
}

#[test]
fn a_second_build_is_a_cache_hit_and_the_lock_is_not_rewritten() {
    let p = Project::new();
    assert!(p.run(&["build"]).status.success());
    let lock = p.dir.join("quantize.lock");
    let written = std::fs::metadata(&lock).unwrap().modified().unwrap();
    let second = p.run(&["build", "--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    for r in reports(&second).as_array().unwrap() {
        assert_eq!(r["cache"], "hit", "{r}");
    }
    assert_eq!(
        std::fs::metadata(&lock).unwrap().modified().unwrap(),
        written
    );
}

#[test]
fn concurrent_builds_share_the_cache_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("shared-cache");
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("p{i}"))).collect();
    for d in &dirs {
        Project::fill(d);
    }
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            litequant()
                .args(["build", "--json"])
                .current_dir(d)
                .env("LITEQUANT_CACHE_DIR", &cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let first = std::fs::read(dirs[0].join("out/digits.int8.tflite")).unwrap();
    for d in &dirs[1..] {
        assert_eq!(
            std::fs::read(d.join("out/digits.int8.tflite")).unwrap(),
            first
        );
    }
    // Each key was computed once: the others waited on its lock and then hit.
    let misses = outputs
        .iter()
        .flat_map(|o| reports(o).as_array().unwrap().clone())
        .filter(|r| r["cache"] == "miss")
        .count();
    assert_eq!(
        misses, 3,
        "each of the 3 jobs should be computed by exactly one build"
    );
    // No temp folders are left in the cache.
    let leftovers: Vec<_> = std::fs::read_dir(cache.join(format!("v{FORMAT_VERSION}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_damaged_cache_entry_is_detected_and_rebuilt() {
    let p = Project::new();
    assert!(p.run(&["build"]).status.success());
    let int8 = p.artifact("digits.int8.tflite");
    for entry in std::fs::read_dir(p.dir.join(format!("cache/v{FORMAT_VERSION}"))).unwrap() {
        let artifact = entry.unwrap().path().join("artifact.tflite");
        if artifact.is_file() {
            let bytes = std::fs::read(&artifact).unwrap();
            std::fs::write(&artifact, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let again = p.run(&["build", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    for r in reports(&again).as_array().unwrap() {
        assert_eq!(r["cache"], "miss", "{r}");
    }
    assert_eq!(p.artifact("digits.int8.tflite"), int8);
    let e = evaluate(
        &p.dir.join("models/digits.tflite"),
        &p.dir.join("out/digits.int8.tflite"),
        None,
        10,
    );
    assert!(e.loads_ok, "{:?}", e.error);
}

#[test]
fn workspace_build_covers_every_member_config() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"tool\", \"plain\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    for (member, metadata) in [
        (
            "app",
            "[package.metadata.litequant]\nconfig = \"ml/quantize.toml\"\n",
        ),
        ("tool", ""),
        ("plain", ""),
    ] {
        let dir = root.join(member);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{member}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{metadata}"),
        )
        .unwrap();
    }
    Project::fill(&root.join("app/ml"));
    Project::fill(&root.join("tool"));
    let out = litequant()
        .args(["build", "--workspace"])
        .current_dir(root)
        .env_remove("LITEQUANT_CACHE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    for dir in ["app/ml", "tool"] {
        let artifact = root.join(dir).join("out/digits.int8.tflite");
        assert!(artifact.is_file(), "{}", artifact.display());
        assert!(root.join(dir).join("quantize.lock").is_file());
    }
    // The cache sits in the workspace's target dir (found with cargo metadata) unless the config says
    // otherwise; these configs set `cache = "cache"`.
    assert!(root.join(format!("tool/cache/v{FORMAT_VERSION}")).is_dir());
}

/// Calibration numerics differ between machines (float kernels round differently); the lock removes that.
/// Here the "other machine" is LiteRT's own float kernels: its ranges differ from ours in the last bits,
/// and a lock holding them gives that machine's bytes here, whatever our calibration would say.
#[test]
fn locked_builds_give_the_lock_s_bytes_whatever_calibration_numerics_say() {
    use litequant::engine::lockfile::{ranges_to_lock, LockFile};
    use litequant::graph::{Graph, TensorId};
    use litequant::quantize::{quantize, Mode, QuantOptions, Ranges};

    let p = Project::new();
    std::fs::copy(
        fixture("models/digits_cnn.tflite"),
        p.dir.join("models/digits.tflite"),
    )
    .unwrap();
    std::fs::copy(
        fixture("data/digits_cnn_calib.npz"),
        p.dir.join("data/digits.npz"),
    )
    .unwrap();
    std::fs::write(
        p.dir.join("quantize.toml"),
        CONFIG.replace("[\"dynamic\", \"int8\", \"int16x8\"]", "[\"int8\"]"),
    )
    .unwrap();
    let built = p.run(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let ours = p.artifact("digits.int8.tflite");
    let lock_path = p.dir.join("quantize.lock");
    let mut lock = LockFile::parse(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();

    // The other machine's calibration: LiteRT's kernels on the same data.
    let json = p.dir.join("litert_ranges.json");
    let status = std::process::Command::new(crate::interop::python())
        .arg(repo().join("tests/litert/ranges_from_litert.py"))
        .arg(p.dir.join("models/digits.tflite"))
        .arg(p.dir.join("data/digits.npz"))
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success());
    let theirs: std::collections::BTreeMap<String, (f32, f32)> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let theirs: Ranges = theirs
        .into_iter()
        .map(|(k, v)| (TensorId(k.parse().unwrap()), v))
        .collect();
    let entry = lock.entries.values_mut().next().unwrap();
    // LiteRT's interpreter adds tensors of its own; another machine's litequant records the model's.
    let theirs: Ranges = theirs
        .into_iter()
        .filter(|(t, _)| entry.ranges().contains_key(t))
        .collect();
    let differing = entry
        .ranges()
        .iter()
        .filter(|(t, r)| theirs.get(t).is_some_and(|o| o != *r))
        .count();
    assert!(
        differing > 0,
        "LiteRT's ranges equal ours bit for bit: nothing to show"
    );

    // What that machine writes: the artifact from its ranges, and its lock entry.
    let mut graph =
        Graph::from_bytes(&std::fs::read(p.dir.join("models/digits.tflite")).unwrap()).unwrap();
    quantize(
        &mut graph,
        Mode::Int8,
        &QuantOptions::default(),
        Some(&theirs),
    )
    .unwrap();
    let their_bytes = graph.to_bytes();
    entry.ranges = ranges_to_lock(&theirs);
    entry.output = litequant::engine::digest::sha256_hex(&their_bytes);
    std::fs::write(&lock_path, lock.to_text()).unwrap();

    // Here, locked (with and without a warm cache): their bytes, not ours.
    for _ in 0..2 {
        let locked = p.run(&["build", "--locked"]);
        assert!(locked.status.success(), "{}", stderr(&locked));
        assert_eq!(p.artifact("digits.int8.tflite"), their_bytes);
    }
    assert_ne!(
        their_bytes, ours,
        "the differing ranges should give different artifacts"
    );
    eprintln!("{differing} ranges differ between litequant's and LiteRT's kernels; the lock decides the bytes");
    let e = evaluate(
        &p.dir.join("models/digits.tflite"),
        &p.dir.join("out/digits.int8.tflite"),
        None,
        10,
    );
    assert!(e.loads_ok, "{:?}", e.error);
}
