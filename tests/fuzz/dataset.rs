//! Fuzzing the dataset reader: never a panic, never a hang, memory bounded by the model's inputs.
//!
//! Mutated `.npy` files (header dicts swapped for hostile ones, then bits flipped, words overwritten, bytes
//! inserted, deleted, truncated), `.npz` archives built from such members (stored or deflated, so the zip is
//! consistent and the members' contents are what is tested) and then mutated as bytes, and random bytes go
//! through the real readers: [`dataset::open`] matched to a model's inputs, every sample read, the labels
//! read and checked, the file list for digests. Each case runs under a time limit, so a hang fails the test;
//! the process's peak memory is printed and bounded at the end.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2000 per target, about a second each);
//! `LITEQUANT_FUZZ_MINUTES` repeats runs until the time is up (a long run:
//! `LITEQUANT_FUZZ_MINUTES=30 PROPTEST_CASES=20000 cargo test --release --test tests fuzz::dataset -- --nocapture`).

use super::config::{fuzz, within_limit};
use litequant::dataset::{
    self, DatasetFormat, DatasetSpec, InputSpec, OutputSpec, DEFAULT_LABELS_ARRAY,
};
use litequant::tflite::fb;
use proptest::prelude::*;
use proptest::sample::Index;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One `.npy` array: its header dict and data bytes.
#[derive(Debug, Clone)]
struct Npy {
    version: u8,
    header: String,
    data: Vec<u8>,
}

impl Npy {
    fn f32(shape: &[usize]) -> Npy {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
            .collect();
        Npy::new("<f4", shape, data)
    }

    fn new(descr: &str, shape: &[usize], data: Vec<u8>) -> Npy {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        Npy {
            version: 1,
            header: format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
            data,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut header = self.header.clone();
        // numpy pads the header with spaces to a multiple of 64 bytes, ending in a newline.
        let preamble = if self.version == 1 { 10 } else { 12 };
        while (preamble + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&[self.version, 0]);
        if self.version == 1 {
            out.extend_from_slice(&(header.len().min(u16::MAX as usize) as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

/// A seed: an array and the model input it is meant to feed.
fn npy_seeds() -> Vec<(Npy, InputSpec)> {
    let u8_images: Vec<u8> = (0..6 * 4).map(|i| (i * 11) as u8).collect();
    let mut be = Npy::new(
        ">f8",
        &[3, 4],
        (0..12).flat_map(|i| f64::from(i).to_be_bytes()).collect(),
    );
    be.version = 2;
    vec![
        (
            Npy::f32(&[10, 4]),
            input("x", &[1, 4], fb::TensorType::FLOAT32),
        ),
        (
            Npy::f32(&[10, 1, 4]),
            input("x", &[-1, 4], fb::TensorType::FLOAT32),
        ),
        (
            Npy::new("|u1", &[6, 2, 2, 1], u8_images),
            input("x", &[1, 2, 2, 1], fb::TensorType::FLOAT32),
        ),
        (be, input("x", &[1, 4], fb::TensorType::FLOAT32)),
        (
            Npy::new(
                "<i4",
                &[5, 2],
                (0..10i32).flat_map(i32::to_le_bytes).collect(),
            ),
            input("ids", &[1, 2], fb::TensorType::INT32),
        ),
    ]
}

fn input(name: &str, shape: &[i32], dtype: fb::TensorType) -> InputSpec {
    let dynamic = shape.first() == Some(&-1);
    let mut static_shape = shape.to_vec();
    if dynamic {
        static_shape[0] = 1;
    }
    InputSpec {
        name: name.into(),
        shape: static_shape,
        shape_signature: dynamic.then(|| shape.to_vec()),
        dtype,
    }
}

/// Header dicts that break a rule of the format or of the model input.
const HEADERS: &[&str] = &[
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 63), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 1, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }",
    "{'descr': '<f4', 'fortran_order': True, 'shape': (10, 4), }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<c8', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '|V16', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<U8', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<f16', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<f0', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '|b1', 'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<f2', 'fortran_order': False, 'shape': (10, 4), }",
    "{'fortran_order': False, 'shape': (10, 4), }",
    "{'descr': '<f4', 'shape': (10, 4), }",
    "{'descr': '<f4', 'fortran_order': False, }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (10, -4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 4.0), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': [10, 4], 'shape': (1, 4)}",
    "{'descr': '<f4', 'fortran_order': 0, 'shape': (10, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((10)))))))))), }",
    "{'descr': '<f4\\', 'fortran_order': False, 'shape': (10, 4), }",
    "[1, 2, 3]",
    "",
    "{",
];

#[derive(Debug, Clone)]
enum ByteEdit {
    FlipBit { at: Index, bit: u8 },
    SetWord { at: Index, value: u32 },
    Insert { at: Index, bytes: Vec<u8> },
    Delete { at: Index, len: usize },
    Truncate { at: Index },
}

fn word() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        Just(0u32),
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0xFFFF),
        0u32..128
    ]
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| ByteEdit::FlipBit { at, bit }),
        (any::<Index>(), word()).prop_map(|(at, value)| ByteEdit::SetWord { at, value }),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| ByteEdit::Insert { at, bytes }),
        (any::<Index>(), 1usize..64).prop_map(|(at, len)| ByteEdit::Delete { at, len }),
        any::<Index>().prop_map(|at| ByteEdit::Truncate { at }),
    ]
}

fn pick(at: &Index, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        at.index(len)
    }
}

fn apply(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    match edit {
        ByteEdit::FlipBit { at, bit } => {
            if !bytes.is_empty() {
                let i = pick(at, bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        ByteEdit::SetWord { at, value } => {
            let i = pick(at, bytes.len());
            if i + 4 <= bytes.len() {
                bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        ByteEdit::Insert { at, bytes: new } => {
            let i = pick(at, bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        ByteEdit::Delete { at, len } => {
            let i = pick(at, bytes.len());
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        ByteEdit::Truncate { at } => {
            let i = pick(at, bytes.len());
            bytes.truncate(i);
        }
    }
}

/// An array from a seed, its header maybe replaced (then at a random format version), its data maybe cut.
#[derive(Debug, Clone)]
struct ArrayCase {
    seed: Index,
    header: Option<Index>,
    version: u8,
    data_len: Option<Index>,
}

fn array_case() -> impl Strategy<Value = ArrayCase> {
    (
        any::<Index>(),
        prop::option::of(any::<Index>()),
        1u8..4,
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(seed, header, version, data_len)| ArrayCase {
            seed,
            header,
            version,
            data_len,
        })
}

impl ArrayCase {
    fn build(&self) -> (Npy, InputSpec) {
        let seeds = npy_seeds();
        let (mut npy, input) = seeds[self.seed.index(seeds.len())].clone();
        if let Some(h) = &self.header {
            npy.header = HEADERS[h.index(HEADERS.len())].to_string();
            npy.version = self.version;
        }
        if let Some(cut) = &self.data_len {
            let keep = pick(cut, npy.data.len() + 1);
            npy.data.truncate(keep);
        }
        (npy, input)
    }
}

/// A temporary file name no other case uses (cases run one at a time, but hung workers may linger).
fn scratch(dir: &Path, ext: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "case{}.{ext}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn spec(name: &str, format: DatasetFormat, path: &Path) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        format,
        path: Some(path.to_path_buf()),
        samples: None,
        resize: None,
        mean: Vec::new(),
        std: Vec::new(),
        inputs: BTreeMap::new(),
        feeds: BTreeMap::new(),
        range: None,
        seed: 0,
        labels: None,
        label_output: None,
        origin: Default::default(),
    }
}

/// Reads `spec` as a model with `inputs` would, and its labels; returns whether every sample was read.
/// Every error must display (naming the dataset) without panicking.
fn exercise(spec: &DatasetSpec, inputs: &[InputSpec], batch: usize) -> bool {
    let _ = dataset::digest_files(spec);
    let mut ok = match dataset::open(spec, inputs) {
        Ok(mut stream) => {
            let _ = stream.conversions();
            let expected = stream.len();
            let mut read = 0;
            loop {
                match stream.next_batch(batch) {
                    Ok(samples) if samples.is_empty() => break read == expected,
                    Ok(samples) => {
                        for sample in &samples {
                            assert_eq!(sample.len(), inputs.len(), "one array per input");
                            for (array, input) in sample.iter().zip(inputs) {
                                assert_eq!(
                                    array.len(),
                                    input.shape.iter().product::<i32>() as usize
                                );
                            }
                        }
                        read += samples.len();
                        assert!(read <= expected, "the stream yields what it announced");
                    }
                    Err(e) => {
                        assert!(e.to_string().contains(&spec.name));
                        break false;
                    }
                }
            }
        }
        Err(e) => {
            assert!(e.to_string().contains("dataset `"), "{e}");
            false
        }
    };
    match dataset::read_labels(spec) {
        Ok(Some(labels)) => {
            let outputs = [OutputSpec {
                name: "probs".into(),
                shape: vec![1, 10],
            }];
            let _ = labels.check_count(spec, 8).map_err(|e| e.to_string());
            let _ = labels
                .check_output(spec, labels.output.unwrap_or(0), &outputs)
                .map_err(|e| e.to_string());
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
            ok = false;
        }
    }
    ok
}

/// Cases per target in a committed run (about a second each).
const CASES: u32 = 2000;

/// Peak resident memory of this process in KiB (Linux), for the report and the bound.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The cases build files of a few KiB and models with inputs of a few values: reading them needs a few MiB.
/// The bound is the whole process's (other tests may run beside), far below what one unbounded allocation
/// driven by a hostile header (a shape of 2^62 rows, a header length of 4 GiB) would take.
const PEAK_RSS_BOUND_KIB: u64 = 3 << 20;

fn finish(what: &str, total: u32, read_whole: u32, started: Instant) {
    let peak = peak_rss_kib();
    eprintln!(
        "dataset fuzz: {total} {what} in {:.1} s, {read_whole} read to the end, peak RSS {} MiB",
        started.elapsed().as_secs_f64(),
        peak.map_or_else(|| "?".to_string(), |k| (k / 1024).to_string())
    );
    if let Some(peak) = peak {
        assert!(peak < PEAK_RSS_BOUND_KIB, "peak RSS {peak} KiB");
    }
}

#[test]
fn mutated_npy_files_never_panic_or_hang_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let strategy = (
        array_case(),
        prop::collection::vec(byte_edit(), 0..4),
        1usize..16,
    );
    let (started, total, whole) = (Instant::now(), Cell::new(0u32), Cell::new(0u32));
    fuzz(CASES, &strategy, |(case, edits, batch)| {
        let (npy, input) = case.build();
        let mut bytes = npy.bytes();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let path = scratch(&dir_path, "npy");
        std::fs::write(&path, &bytes).unwrap();
        let what = format!("{case:?} {edits:?}");
        let ok = within_limit(&what, move || {
            let ok = exercise(&spec("d", DatasetFormat::Npy, &path), &[input], batch);
            let _ = std::fs::remove_file(&path);
            ok
        });
        total.set(total.get() + 1);
        whole.set(whole.get() + u32::from(ok));
        Ok(())
    });
    finish("mutated .npy files", total.get(), whole.get(), started);
    assert!(whole.get() > 0, "no mutated file was read to the end");
}

/// Zips `members` (name, bytes, deflated?), as numpy.savez / savez_compressed would (the tests' zip has
/// deflate: the dev-dependency ndarray-npy turns it on).
fn zip(members: &[(String, Vec<u8>, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut out));
        for (name, bytes, deflate) in members {
            let method = if *deflate {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            writer.start_file(name.as_str(), options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
    }
    out
}

#[derive(Debug, Clone)]
struct NpzCase {
    x: ArrayCase,
    labels: Option<(Index, Index)>,
    label_output: Option<u8>,
    deflate: bool,
    extra_array: bool,
    edits: Vec<ByteEdit>,
    batch: usize,
}

fn npz_case() -> impl Strategy<Value = NpzCase> {
    (
        array_case(),
        prop::option::of((any::<Index>(), any::<Index>())),
        prop::option::of(0u8..4),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(byte_edit(), 0..3),
        1usize..16,
    )
        .prop_map(
            |(x, labels, label_output, deflate, extra_array, edits, batch)| NpzCase {
                x,
                labels,
                label_output,
                deflate,
                extra_array,
                edits,
                batch,
            },
        )
}

const LABEL_HEADERS: &[&str] = &[
    "{'descr': '<i8', 'fortran_order': False, 'shape': (10,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (10, 1), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (10,), }",
];

impl NpzCase {
    fn build(&self) -> (Vec<u8>, InputSpec) {
        let (x, input) = self.x.build();
        let mut members = vec![("x.npy".to_string(), x.bytes(), self.deflate)];
        if let Some((header, value)) = &self.labels {
            let values: Vec<u8> = (0..10i64)
                .flat_map(|i| (i * (value.index(12) as i64)).to_le_bytes())
                .collect();
            let mut labels = Npy::new("<i8", &[10], values);
            labels.header = LABEL_HEADERS[header.index(LABEL_HEADERS.len())].to_string();
            members.push((
                format!("{DEFAULT_LABELS_ARRAY}.npy"),
                labels.bytes(),
                self.deflate,
            ));
        }
        if let Some(o) = self.label_output {
            let mut index = Npy::new("<i8", &[], i64::from(o).to_le_bytes().to_vec());
            index.header = "{'descr': '<i8', 'fortran_order': False, 'shape': (), }".to_string();
            members.push((
                "label_output_index.npy".to_string(),
                index.bytes(),
                !self.deflate,
            ));
        }
        if self.extra_array {
            members.push(("other.npy".to_string(), Npy::f32(&[10, 4]).bytes(), false));
        }
        let mut bytes = zip(&members);
        for e in &self.edits {
            apply(&mut bytes, e);
        }
        (bytes, input)
    }
}

#[test]
fn mutated_npz_archives_never_panic_or_hang_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let (started, total, whole) = (Instant::now(), Cell::new(0u32), Cell::new(0u32));
    fuzz(CASES, &npz_case(), |case| {
        let (bytes, input) = case.build();
        let path = scratch(&dir_path, "npz");
        std::fs::write(&path, &bytes).unwrap();
        let what = format!("{case:?}");
        let batch = case.batch;
        let ok = within_limit(&what, move || {
            let mut spec = spec("d", DatasetFormat::Npz, &path);
            spec.inputs.insert(input.name.clone(), "x".into());
            let ok = exercise(&spec, &[input], batch);
            let _ = std::fs::remove_file(&path);
            ok
        });
        total.set(total.get() + 1);
        whole.set(whole.get() + u32::from(ok));
        Ok(())
    });
    finish("mutated .npz archives", total.get(), whole.get(), started);
    assert!(whole.get() > 0, "no mutated archive was read to the end");
}

#[test]
fn random_bytes_never_panic_the_dataset_reader() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..2048),
        any::<bool>(),
        any::<bool>(),
    );
    let (started, total) = (Instant::now(), Cell::new(0u32));
    fuzz(CASES, &strategy, |(mut bytes, magic, npz)| {
        // Half the cases carry the format's magic so they get past the first check.
        if magic {
            let m: &[u8] = if npz {
                b"PK\x03\x04"
            } else {
                b"\x93NUMPY\x01\x00"
            };
            let n = m.len().min(bytes.len());
            bytes[..n].copy_from_slice(&m[..n]);
        }
        let (format, ext) = if npz {
            (DatasetFormat::Npz, "npz")
        } else {
            (DatasetFormat::Npy, "npy")
        };
        let path = scratch(&dir_path, ext);
        std::fs::write(&path, &bytes).unwrap();
        within_limit("random bytes", move || {
            let input = input("x", &[1, 4], fb::TensorType::FLOAT32);
            exercise(&spec("d", format, &path), &[input], 4);
            let _ = std::fs::remove_file(&path);
        });
        total.set(total.get() + 1);
        Ok(())
    });
    finish("random files", total.get(), 0, started);
}
