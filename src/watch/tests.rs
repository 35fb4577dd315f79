//! The watch loop driven through the library: events collected from a real watch on a temp folder.

use super::{RebuildError, Watch, WatchEvent, WatchOptions};
use crate::engine::JobError;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name);
    std::fs::read(path).unwrap()
}

/// A watch running on its own thread; its events arrive on `events`.
struct Running {
    events: Receiver<WatchEvent>,
    stop: super::StopHandle,
    thread: JoinHandle<()>,
}

fn start(config: &Path) -> Running {
    let options = WatchOptions {
        threads: 1,
        ..WatchOptions::default()
    };
    let watch = Watch::new(config, options);
    let stop = watch.stop_handle();
    let (tx, events) = channel();
    let thread = std::thread::spawn(move || {
        let mut send = |e: WatchEvent| {
            let _ = tx.send(e);
        };
        watch.run(&mut send).unwrap();
    });
    Running {
        events,
        stop,
        thread,
    }
}

impl Running {
    /// The first event `pick` accepts (returning what the test needs), within a minute.
    fn next<T>(&self, what: &str, mut pick: impl FnMut(&WatchEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within {LONG:?}"));
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    fn stop(self) -> Vec<WatchEvent> {
        self.stop.stop();
        self.thread.join().unwrap();
        self.events.try_iter().collect()
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("quantize.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_model_replaced_mid_run_cancels_the_job_and_the_latest_model_wins() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tflite");
    std::fs::write(&model, fixture("digits_cnn.tflite")).unwrap();
    // Enough random samples that calibration runs for seconds: the change lands mid-run.
    let config = write_config(
        dir.path(),
        "[settings]\nout_dir = \"out\"\n\n[datasets.noise]\nformat = \"random\"\nsamples = 40000\n\n\
         [models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\"]\ndataset = \"noise\"\n",
    );
    let w = start(&config);
    w.next("initial start", |e| match e {
        WatchEvent::Started { job, .. } if job == "m.int8" => Some(()),
        _ => None,
    });
    let mlp = fixture("digits_mlp.tflite");
    std::fs::write(&model, &mlp).unwrap();
    let (trigger, source_bytes) = w.next("rebuild", |e| match e {
        WatchEvent::Built {
            trigger, artifact, ..
        } => Some((trigger.to_string(), artifact.report.source_bytes)),
        // The initial job may still be reading the model when the test starts rewriting it: that run fails on
        // the half-written file, which is the right outcome too. Only the rebuild must succeed.
        WatchEvent::Failed { trigger, error, .. } if !trigger.files.is_empty() => {
            panic!("rebuild failed: {error}")
        }
        _ => None,
    });
    assert_eq!(
        trigger, "m.tflite changed",
        "the initial build was cancelled"
    );
    assert_eq!(
        source_bytes,
        mlp.len() as u64,
        "built from the latest model"
    );
    w.stop();
}

#[test]
fn a_half_written_model_is_reported_and_its_completion_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.tflite");
    let mlp = fixture("digits_mlp.tflite");
    std::fs::write(&model, &mlp).unwrap();
    let config = write_config(
        dir.path(),
        "[settings]\nout_dir = \"out\"\n\n[models.m]\nsource = \"m.tflite\"\nmodes = [\"dynamic\"]\n",
    );
    let artifact = dir.path().join("out/m.dynamic.tflite");
    let w = start(&config);
    w.next("initial build", |e| {
        matches!(e, WatchEvent::Built { .. }).then_some(())
    });
    let good = std::fs::read(&artifact).unwrap();

    std::fs::write(&model, &mlp[..mlp.len() / 2]).unwrap();
    let failed_on = w.next("failure", |e| match e {
        WatchEvent::Failed {
            error: RebuildError::Job(JobError::Model { path, .. }),
            ..
        } => Some(path.clone()),
        WatchEvent::Built { .. } => panic!("half a model was quantized"),
        _ => None,
    });
    assert_eq!(failed_on.file_name(), model.file_name());
    assert_eq!(
        std::fs::read(&artifact).unwrap(),
        good,
        "last good artifact stays"
    );

    std::fs::write(&model, &mlp).unwrap();
    w.next("rebuild", |e| {
        matches!(e, WatchEvent::Built { .. }).then_some(())
    });
    assert_eq!(std::fs::read(&artifact).unwrap(), good);
    w.stop();
}

#[test]
fn stopping_mid_job_returns_promptly_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.tflite"), fixture("digits_cnn.tflite")).unwrap();
    let config = write_config(
        dir.path(),
        "[settings]\nout_dir = \"out\"\n\n[datasets.noise]\nformat = \"random\"\nsamples = 40000\n\n\
         [models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\"]\ndataset = \"noise\"\n",
    );
    let w = start(&config);
    w.next("start", |e| {
        matches!(e, WatchEvent::Started { .. }).then_some(())
    });
    let asked = Instant::now();
    let rest = w.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        !rest.iter().any(|e| matches!(e, WatchEvent::Built { .. })),
        "the job ran to the end instead of stopping"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(
            std::fs::read_dir(dir.path().join("out"))
                .into_iter()
                .flatten(),
        )
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_dataset_folder_deleted_and_recreated_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.tflite"), fixture("digits_mlp.tflite")).unwrap();
    let calib =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/digits_mlp_calib.npz");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&calib, data.join("calib.npz")).unwrap();
    let config = write_config(
        dir.path(),
        "[settings]\nout_dir = \"out\"\n\n[datasets.digits]\nformat = \"npz\"\npath = \"data/calib.npz\"\n\n\
         [models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\"]\ndataset = \"digits\"\n",
    );
    let w = start(&config);
    w.next("initial build", |e| {
        matches!(e, WatchEvent::Built { .. }).then_some(())
    });

    std::fs::remove_dir_all(&data).unwrap();
    w.next("failure", |e| {
        matches!(e, WatchEvent::Failed { .. }).then_some(())
    });
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&calib, data.join("calib.npz")).unwrap();
    let trigger = w.next("rebuild", |e| match e {
        WatchEvent::Built { trigger, .. } => Some(trigger.to_string()),
        _ => None,
    });
    assert!(trigger.contains("data"), "{trigger}");
    w.stop();
}

#[test]
fn a_config_broken_from_the_start_is_reported_and_its_fix_builds_everything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.tflite"), fixture("digits_mlp.tflite")).unwrap();
    let config = write_config(
        dir.path(),
        "[models.m]\nsource = \"m.tflite\"\nmodes = [\"int4\"]\n",
    );
    let w = start(&config);
    let line = w.next("config error", |e| match e {
        WatchEvent::ConfigInvalid(error) => error.location.map(|l| l.line),
        _ => None,
    });
    assert_eq!(line, 3, "the error points at the modes line");
    write_config(
        dir.path(),
        "[settings]\nout_dir = \"out\"\n\n[models.m]\nsource = \"m.tflite\"\nmodes = [\"dynamic\", \"float16\"]\n",
    );
    let mut built = Vec::new();
    while built.len() < 2 {
        built.push(w.next("build", |e| match e {
            WatchEvent::Built { artifact, .. } => Some(artifact.job.clone()),
            _ => None,
        }));
    }
    assert_eq!(built, ["m.dynamic", "m.float16"]);
    w.stop();
}
