//! Specifications of the dataset module, on small files written to a temporary folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::{Array, ArrayD, IxDyn};
use ndarray_npy::{write_npy, NpzWriter};
use tempfile::TempDir;

use super::*;
use crate::tflite::fb;

fn input(name: &str, shape: &[i32]) -> InputSpec {
    InputSpec {
        name: name.into(),
        shape: shape.to_vec(),
        shape_signature: None,
        dtype: fb::TensorType::FLOAT32,
    }
}

fn dataset(name: &str, format: DatasetFormat, path: Option<PathBuf>) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        format,
        path,
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

/// Maps `input` of `spec` to the dataset `other`, resolved as config validation does.
fn map_to(spec: &mut DatasetSpec, input: &str, other: &DatasetSpec) {
    spec.inputs.insert(input.into(), other.name.clone());
    spec.feeds.insert(input.into(), other.clone());
}

/// `n` samples of `shape`, sample `i` element `j` = `i * 100 + j`.
fn numbered(n: usize, shape: &[usize]) -> ArrayD<f32> {
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let per: usize = shape.iter().product();
    Array::from_shape_fn(IxDyn(&full), |index| {
        let flat = (1..full.len()).fold(0, |acc, axis| acc * full[axis] + index[axis]);
        (index[0] * 100) as f32 + (flat % per.max(1)) as f32
    })
}

fn read_all(stream: &mut SampleStream, batch: usize) -> Result<Vec<Sample>, DatasetError> {
    let mut samples = Vec::new();
    loop {
        let next = stream.next_batch(batch)?;
        if next.is_empty() {
            return Ok(samples);
        }
        samples.extend(next);
    }
}

fn open_one(spec: &DatasetSpec, inputs: &[InputSpec]) -> Result<SampleStream, DatasetError> {
    open(spec, inputs)
}

fn write_npz(path: &Path, compressed: bool, arrays: &[(&str, ArrayD<f32>)]) {
    let file = File::create(path).unwrap();
    let mut npz = if compressed {
        NpzWriter::new_compressed(file)
    } else {
        NpzWriter::new(file)
    };
    for (name, array) in arrays {
        npz.add_array(*name, array).unwrap();
    }
    npz.finish().unwrap();
}

fn npy_bytes_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

// ---- npy ------------------------------------------------------------------------------------------------

#[test]
fn npy_samples_without_batch_axis_come_out_shaped_as_the_input() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    let data = numbered(5, &[4, 3]);
    write_npy(&path, &data).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let mut stream = open_one(&spec, &[input("x", &[1, 4, 3])]).unwrap();
    assert_eq!(stream.len(), 5);
    assert!(!stream.is_synthetic());
    let samples = read_all(&mut stream, 2).unwrap();
    assert_eq!(samples.len(), 5);
    for (i, sample) in samples.iter().enumerate() {
        assert_eq!(sample.len(), 1);
        assert_eq!(sample[0].shape(), &[1, 4, 3]);
        let expected = data
            .index_axis(ndarray::Axis(0), i)
            .insert_axis(ndarray::Axis(0))
            .to_owned();
        assert_eq!(sample[0], expected);
    }
}

#[test]
fn npy_samples_with_leading_batch_one_are_accepted() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(3, &[1, 6])).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let samples = read_all(&mut open_one(&spec, &[input("x", &[1, 6])]).unwrap(), 8).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        samples[2][0].as_slice().unwrap(),
        &[200.0, 201.0, 202.0, 203.0, 204.0, 205.0]
    );
}

#[test]
fn npy_integer_and_double_arrays_are_converted_to_f32() {
    let dir = TempDir::new().unwrap();
    let inputs = [input("x", &[1, 3])];
    let check = |name: &str, write: &dyn Fn(&Path), expected: [f32; 3]| {
        let path = dir.path().join(name);
        write(&path);
        let spec = dataset("d", DatasetFormat::Npy, Some(path));
        let samples = read_all(&mut open_one(&spec, &inputs).unwrap(), 4).unwrap();
        assert_eq!(samples[0][0].as_slice().unwrap(), &expected, "{name}");
    };
    check(
        "u8.npy",
        &|p| write_npy(p, &ndarray::array![[0u8, 128, 255]]).unwrap(),
        [0.0, 128.0, 255.0],
    );
    check(
        "i8.npy",
        &|p| write_npy(p, &ndarray::array![[-128i8, 0, 127]]).unwrap(),
        [-128.0, 0.0, 127.0],
    );
    check(
        "i16.npy",
        &|p| write_npy(p, &ndarray::array![[-300i16, 1, 300]]).unwrap(),
        [-300.0, 1.0, 300.0],
    );
    check(
        "i32.npy",
        &|p| write_npy(p, &ndarray::array![[-70000i32, 2, 70000]]).unwrap(),
        [-70000.0, 2.0, 70000.0],
    );
    check(
        "i64.npy",
        &|p| write_npy(p, &ndarray::array![[-5i64, 3, 5]]).unwrap(),
        [-5.0, 3.0, 5.0],
    );
    check(
        "f64.npy",
        &|p| write_npy(p, &ndarray::array![[-0.5f64, 0.25, 1e3]]).unwrap(),
        [-0.5, 0.25, 1000.0],
    );
}

#[test]
fn samples_caps_the_count_and_batches_end_with_an_empty_vec() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(10, &[2])).unwrap();
    let mut spec = dataset("d", DatasetFormat::Npy, Some(path));
    spec.samples = Some(7);
    let mut stream = open_one(&spec, &[input("x", &[1, 2])]).unwrap();
    assert_eq!(stream.len(), 7);
    assert_eq!(stream.next_batch(3).unwrap().len(), 3);
    assert_eq!(stream.next_batch(3).unwrap().len(), 3);
    let last = stream.next_batch(3).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0][0].as_slice().unwrap(), &[600.0, 601.0]);
    assert!(stream.next_batch(3).unwrap().is_empty());
    assert!(stream.next_batch(3).unwrap().is_empty());
}

#[test]
fn dynamic_batch_input_receives_batch_one_samples() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(4, &[5])).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let mut dynamic = input("x", &[1, 5]);
    dynamic.shape_signature = Some(vec![-1, 5]);
    let samples = read_all(&mut open_one(&spec, &[dynamic]).unwrap(), 10).unwrap();
    assert_eq!(samples.len(), 4);
    assert!(samples.iter().all(|s| s[0].shape() == [1, 5]));
}

#[test]
fn shape_mismatch_names_dataset_input_file_and_both_shapes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(4, &[5])).unwrap();
    let spec = dataset("calib", DatasetFormat::Npy, Some(path.clone()));
    let err = open_one(&spec, &[input("serving_default_x:0", &[1, 6])]).unwrap_err();
    assert!(matches!(*err.kind, DatasetErrorKind::ShapeMismatch { .. }));
    let message = err.to_string();
    for part in [
        "dataset `calib`",
        "input `serving_default_x:0`",
        "[5]",
        "[1, 6]",
        &path.display().to_string(),
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

#[test]
fn fortran_order_array_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(3, &[4]).reversed_axes()).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let err = open_one(&spec, &[input("x", &[1, 3])]).unwrap_err();
    assert!(matches!(*err.kind, DatasetErrorKind::FortranOrder), "{err}");
    assert!(err.to_string().contains("Fortran order"));
}

#[test]
fn unsupported_dtype_error_says_which_dtype_was_found() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 2), }\n";
    std::fs::write(&path, npy_bytes_with_header(header, &[0; 16])).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let err = open_one(&spec, &[input("x", &[1, 2])]).unwrap_err();
    assert!(err.to_string().contains("`<c8`"), "{err}");
}

#[test]
fn truncated_npy_file_reports_complete_samples() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(4, &[8])).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let err = open_one(&spec, &[input("x", &[1, 8])]).unwrap_err();
    assert!(
        matches!(
            *err.kind,
            DatasetErrorKind::Truncated {
                complete: 2,
                expected: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn nan_and_infinity_are_reported_with_sample_and_position() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    let mut data = numbered(5, &[2, 3]);
    data[[3, 1, 2]] = f32::NAN;
    write_npy(&path, &data).unwrap();
    let spec = dataset("calib", DatasetFormat::Npy, Some(path.clone()));
    let mut stream = open_one(&spec, &[input("x", &[1, 2, 3])]).unwrap();
    assert_eq!(stream.next_batch(2).unwrap().len(), 2);
    let err = stream.next_batch(2).unwrap_err();
    assert_eq!(err.sample, Some(3));
    assert_eq!(err.input.as_deref(), Some("x"));
    assert_eq!(err.file.as_deref(), Some(path.as_path()));
    match err.kind.as_ref() {
        DatasetErrorKind::NotFinite { value, position } => {
            assert!(value.is_nan());
            assert_eq!(position, &vec![0, 1, 2]);
        }
        other => panic!("expected NotFinite, got {other:?}"),
    }
    assert!(err.to_string().contains("sample 3"), "{err}");
    // A failed stream is finished.
    assert!(stream.next_batch(2).unwrap().is_empty());

    data[[3, 1, 2]] = 0.0;
    data[[0, 0, 0]] = f32::INFINITY;
    write_npy(&path, &data).unwrap();
    let err = open_one(&spec, &[input("x", &[1, 2, 3])])
        .unwrap()
        .next_batch(5)
        .unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::NotFinite { .. }) && err.sample == Some(0),
        "{err}"
    );
}

#[test]
fn float_data_cannot_feed_an_integer_input() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(2, &[3])).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let mut ids = input("ids", &[1, 3]);
    ids.dtype = fb::TensorType::INT32;
    let err = open_one(&spec, &[ids.clone()]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::DtypeMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("INT32"), "{err}");

    let int_path = dir.path().join("ids.npy");
    write_npy(&int_path, &ndarray::array![[1i32, 2, 3], [4, 5, 6]]).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(int_path));
    let samples = read_all(&mut open_one(&spec, &[ids]).unwrap(), 4).unwrap();
    assert_eq!(samples[1][0].as_slice().unwrap(), &[4.0, 5.0, 6.0]);
}

#[test]
fn npy_dataset_cannot_feed_two_inputs_without_a_map() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.npy");
    write_npy(&path, &numbered(2, &[3])).unwrap();
    let spec = dataset("d", DatasetFormat::Npy, Some(path));
    let err = open_one(&spec, &[input("a", &[1, 3]), input("b", &[1, 3])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::OneInputPerDataset { .. }),
        "{err}"
    );
}

#[test]
fn missing_path_is_an_error() {
    let spec = dataset("d", DatasetFormat::Npz, None);
    let err = open_one(&spec, &[input("x", &[1, 3])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::MissingPath { .. }),
        "{err}"
    );
}

// ---- npz ------------------------------------------------------------------------------------------------

#[test]
fn npz_arrays_match_inputs_by_bare_name_stored_and_compressed_and_labels_are_ignored() {
    for compressed in [false, true] {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("calib.npz");
        let img = numbered(6, &[2, 2, 1]);
        let feats = numbered(6, &[3]);
        let labels = Array::from_shape_fn(IxDyn(&[6]), |i| i[0] as f32);
        write_npz(
            &path,
            compressed,
            &[
                ("feats", feats.clone()),
                ("labels", labels),
                ("serving_default_img:0", img),
            ],
        );
        let spec = dataset("pair", DatasetFormat::Npz, Some(path));
        let inputs = [
            input("serving_default_img:0", &[1, 2, 2, 1]),
            input("serving_default_feats:0", &[1, 3]),
        ];
        let mut stream = open_one(&spec, &inputs).unwrap();
        assert_eq!(stream.len(), 6);
        let samples = read_all(&mut stream, 4).unwrap();
        assert_eq!(samples.len(), 6);
        for (i, sample) in samples.iter().enumerate() {
            assert_eq!(sample[0].shape(), &[1, 2, 2, 1]);
            assert_eq!(sample[1].shape(), &[1, 3]);
            let base = (i * 100) as f32;
            assert_eq!(
                sample[0].as_slice().unwrap(),
                &[base, base + 1.0, base + 2.0, base + 3.0]
            );
            assert_eq!(
                sample[1].as_slice().unwrap(),
                &[base, base + 1.0, base + 2.0],
                "compressed {compressed}"
            );
        }
    }
}

#[test]
fn npz_inputs_map_picks_arrays_by_explicit_name() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(
        &path,
        true,
        &[
            ("a", numbered(3, &[2])),
            ("b", numbered(3, &[2]).mapv(|v| -v)),
        ],
    );
    let mut spec = dataset("d", DatasetFormat::Npz, Some(path));
    spec.inputs.insert("serving_default_x:0".into(), "b".into());
    let samples = read_all(
        &mut open_one(&spec, &[input("serving_default_x:0", &[1, 2])]).unwrap(),
        8,
    )
    .unwrap();
    assert_eq!(samples[1][0].as_slice().unwrap(), &[-100.0, -101.0]);
    // Keys may also be written without the converter's decorations.
    spec.inputs = BTreeMap::from([("x".to_string(), "a".to_string())]);
    let samples = read_all(
        &mut open_one(&spec, &[input("serving_default_x:0", &[1, 2])]).unwrap(),
        8,
    )
    .unwrap();
    assert_eq!(samples[1][0].as_slice().unwrap(), &[100.0, 101.0]);
}

#[test]
fn npz_single_array_feeds_a_single_input_whatever_its_name() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(&path, false, &[("train_x", numbered(2, &[4]))]);
    let spec = dataset("d", DatasetFormat::Npz, Some(path));
    let samples = read_all(
        &mut open_one(&spec, &[input("serving_default_input_1:0", &[1, 4])]).unwrap(),
        8,
    )
    .unwrap();
    assert_eq!(samples.len(), 2);
}

#[test]
fn npz_input_no_array_feeds_is_an_error_listing_the_arrays() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(
        &path,
        false,
        &[("train_x", numbered(2, &[4])), ("labels", numbered(2, &[]))],
    );
    let spec = dataset("calib", DatasetFormat::Npz, Some(path));
    let err = open_one(&spec, &[input("serving_default_x:0", &[1, 4])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::InputNotFed { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("input `serving_default_x:0`")
            && message.contains("train_x")
            && message.contains("labels")
    );
}

#[test]
fn npz_map_to_a_missing_array_or_an_unknown_input_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(&path, false, &[("x", numbered(2, &[4]))]);
    let mut spec = dataset("d", DatasetFormat::Npz, Some(path));
    spec.inputs.insert("x".into(), "nope".into());
    let err = open_one(&spec, &[input("x", &[1, 4])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::ArrayNotFound { .. }),
        "{err}"
    );
    spec.inputs = BTreeMap::from([("y".to_string(), "x".to_string())]);
    let err = open_one(&spec, &[input("x", &[1, 4])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::UnknownInput { .. }),
        "{err}"
    );
}

#[test]
fn npz_arrays_with_different_sample_counts_need_a_cap() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(
        &path,
        true,
        &[("a", numbered(5, &[1])), ("b", numbered(3, &[1]))],
    );
    let mut spec = dataset("d", DatasetFormat::Npz, Some(path));
    let inputs = [input("a", &[1, 1]), input("b", &[1, 1])];
    let err = open_one(&spec, &inputs).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::SampleCountMismatch { .. }),
        "{err}"
    );
    spec.samples = Some(3);
    assert_eq!(
        read_all(&mut open_one(&spec, &inputs).unwrap(), 2)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn npz_corrupt_member_fails_its_checksum() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(
        &path,
        false,
        &[("x", ArrayD::from_elem(IxDyn(&[4, 2]), 7.0f32))],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let seven = 7.0f32.to_le_bytes();
    let at = bytes.windows(4).position(|w| w == seven).unwrap();
    bytes[at] ^= 1; // still a finite float, so only the CRC can tell
    std::fs::write(&path, bytes).unwrap();
    let spec = dataset("d", DatasetFormat::Npz, Some(path));
    let err = read_all(&mut open_one(&spec, &[input("x", &[1, 2])]).unwrap(), 8).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::Checksum { .. }),
        "{err}"
    );
}

#[test]
fn not_a_zip_file_is_an_error_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    std::fs::write(&path, b"definitely not a zip archive").unwrap();
    let spec = dataset("d", DatasetFormat::Npz, Some(path.clone()));
    let err = open_one(&spec, &[input("x", &[1, 2])]).unwrap_err();
    assert!(matches!(*err.kind, DatasetErrorKind::Zip(_)), "{err}");
    assert_eq!(err.file.as_deref(), Some(path.as_path()));
}

#[test]
fn corpus_multi_input_calibration_file_yields_model_shaped_samples() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/digits_multi_io/calib.npz");
    let spec = dataset("digits_multi_io", DatasetFormat::Npz, Some(path.clone()));
    // Model input order, as the flatbuffer lists them.
    let inputs = [
        input("serving_default_img:0", &[1, 8, 8, 1]),
        input("serving_default_feats:0", &[1, 16]),
    ];
    let mut stream = open_one(&spec, &inputs).unwrap();
    assert_eq!(stream.len(), 100);
    let samples = read_all(&mut stream, 32).unwrap();
    assert_eq!(samples.len(), 100);
    assert!(samples
        .iter()
        .all(|s| s.len() == 2 && s[0].shape() == [1, 8, 8, 1] && s[1].shape() == [1, 16]));
    // The streamed values equal what ndarray-npy reads in one piece.
    let mut whole = ndarray_npy::NpzReader::new(File::open(&path).unwrap()).unwrap();
    let feats: ArrayD<f32> = whole.by_name("serving_default_feats:0.npy").unwrap();
    let img: ArrayD<f32> = whole.by_name("serving_default_img:0.npy").unwrap();
    for (i, sample) in samples.iter().enumerate() {
        assert_eq!(
            sample[0].as_slice().unwrap(),
            img.index_axis(ndarray::Axis(0), i)
                .to_owned()
                .as_slice()
                .unwrap()
        );
        assert_eq!(
            sample[1].as_slice().unwrap(),
            feats
                .index_axis(ndarray::Axis(0), i)
                .to_owned()
                .as_slice()
                .unwrap()
        );
    }
}

// ---- images ---------------------------------------------------------------------------------------------

fn write_png(path: &Path, width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)))
        .save(path)
        .unwrap();
}

fn images_dataset(name: &str, folder: &Path) -> DatasetSpec {
    let mut spec = dataset(name, DatasetFormat::Images, Some(folder.to_path_buf()));
    spec.mean = vec![127.5];
    spec.std = vec![127.5];
    spec
}

#[test]
fn images_are_read_in_name_order_normalised_nhwc_and_other_files_ignored() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("b.png"), 2, 2, |_, _| [255, 255, 255]);
    write_png(&dir.path().join("a.png"), 2, 2, |x, y| {
        [0, (x * 255) as u8, (y * 255) as u8]
    });
    write_png(&dir.path().join("c.PNG"), 2, 2, |_, _| [0, 0, 0]);
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let spec = images_dataset("photos", dir.path());
    let mut stream = open_one(&spec, &[input("x", &[1, 2, 2, 3])]).unwrap();
    assert_eq!(stream.len(), 3);
    let samples = read_all(&mut stream, 2).unwrap();
    assert!(samples.iter().all(|s| s[0].shape() == [1, 2, 2, 3]));
    // a.png: pixel (x=1, y=0) is [0, 255, 0] -> [-1, 1, -1].
    assert_eq!(samples[0][0][[0, 0, 1, 0]], -1.0);
    assert_eq!(samples[0][0][[0, 0, 1, 1]], 1.0);
    assert_eq!(samples[0][0][[0, 0, 1, 2]], -1.0);
    assert_eq!(samples[0][0][[0, 1, 0, 2]], 1.0);
    assert!(samples[1][0].iter().all(|&v| v == 1.0));
    assert!(samples[2][0].iter().all(|&v| v == -1.0));
}

#[test]
fn images_use_per_channel_mean_and_std() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("a.png"), 1, 1, |_, _| [10, 20, 30]);
    let mut spec = images_dataset("d", dir.path());
    spec.mean = vec![10.0, 10.0, 10.0];
    spec.std = vec![1.0, 2.0, 4.0];
    let samples = read_all(
        &mut open_one(&spec, &[input("x", &[1, 1, 1, 3])]).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(samples[0][0].as_slice().unwrap(), &[0.0, 5.0, 5.0]);
    spec.std = vec![1.0, 2.0];
    let err = open_one(&spec, &[input("x", &[1, 1, 1, 3])]).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::Normalization(_)),
        "{err}"
    );
}

#[test]
fn one_channel_input_reads_images_as_grayscale() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("a.png"), 3, 3, |_, _| [51, 51, 51]);
    let mut spec = images_dataset("d", dir.path());
    spec.mean = vec![0.0];
    spec.std = vec![255.0];
    let samples = read_all(
        &mut open_one(&spec, &[input("x", &[1, 3, 3, 1])]).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(samples[0][0].shape(), &[1, 3, 3, 1]);
    assert!(samples[0][0].iter().all(|&v| (v - 0.2).abs() < 1e-6));
}

#[test]
fn colour_images_become_grayscale_with_itu_601_weights() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("a.png"), 3, 1, |x, _| match x {
        0 => [255, 0, 0],
        1 => [0, 255, 0],
        _ => [0, 0, 255],
    });
    let mut spec = images_dataset("d", dir.path());
    spec.mean = vec![0.0];
    spec.std = vec![1.0];
    let samples = read_all(
        &mut open_one(&spec, &[input("x", &[1, 1, 3, 1])]).unwrap(),
        1,
    )
    .unwrap();
    // 0.299, 0.587 and 0.114 of 255, rounded as PIL rounds.
    assert_eq!(samples[0][0].as_slice().unwrap(), &[76.0, 150.0, 29.0]);
}

#[test]
fn images_are_resized_to_resize_and_a_size_mismatch_without_it_is_an_error() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("big.png"), 8, 6, |_, _| [200, 100, 0]);
    let mut spec = images_dataset("d", dir.path());
    let inputs = [input("x", &[1, 3, 4, 3])];
    let err = open_one(&spec, &inputs).unwrap().next_batch(1).unwrap_err();
    assert!(
        matches!(
            *err.kind,
            DatasetErrorKind::ImageSize {
                found: [6, 8],
                expected: [3, 4]
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("big.png") && err.to_string().contains("resize = [3, 4]"),
        "{err}"
    );
    spec.resize = Some([3, 4]);
    let samples = read_all(&mut open_one(&spec, &inputs).unwrap(), 1).unwrap();
    assert_eq!(samples[0][0].shape(), &[1, 3, 4, 3]);
    let red = (200.0 - 127.5) / 127.5;
    assert!(samples[0][0]
        .index_axis(ndarray::Axis(3), 0)
        .iter()
        .all(|&v| (v - red).abs() < 1e-6));
    spec.resize = Some([4, 4]);
    let err = open_one(&spec, &inputs).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::ResizeMismatch { .. }),
        "{err}"
    );
}

#[test]
fn jpeg_images_decode() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("tmp.png"), 4, 4, |_, _| [128, 128, 128]);
    image::open(dir.path().join("tmp.png"))
        .unwrap()
        .save(dir.path().join("a.jpg"))
        .unwrap();
    std::fs::remove_file(dir.path().join("tmp.png")).unwrap();
    let spec = images_dataset("d", dir.path());
    let samples = read_all(
        &mut open_one(&spec, &[input("x", &[1, 4, 4, 3])]).unwrap(),
        1,
    )
    .unwrap();
    assert!(
        samples[0][0].iter().all(|&v| v.abs() < 0.05),
        "{:?}",
        samples[0][0]
    );
}

#[test]
fn empty_image_folder_is_an_error() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("readme.md"), "no images here").unwrap();
    let spec = images_dataset("photos", dir.path());
    let err = open_one(&spec, &[input("x", &[1, 2, 2, 3])]).unwrap_err();
    assert!(matches!(*err.kind, DatasetErrorKind::EmptyFolder), "{err}");
    assert!(err.to_string().contains("dataset `photos`"));
}

#[test]
fn undecodable_image_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("a.png"), 2, 2, |_, _| [0, 0, 0]);
    std::fs::write(dir.path().join("b.png"), b"\x89PNG broken").unwrap();
    let spec = images_dataset("d", dir.path());
    let mut stream = open_one(&spec, &[input("x", &[1, 2, 2, 3])]).unwrap();
    let err = stream.next_batch(4).unwrap_err();
    assert_eq!(err.sample, Some(1));
    assert!(
        err.file.as_deref().is_some_and(|f| f.ends_with("b.png")),
        "{err}"
    );
}

#[test]
fn images_need_an_nhwc_input_with_one_or_three_channels() {
    let dir = TempDir::new().unwrap();
    write_png(&dir.path().join("a.png"), 2, 2, |_, _| [0, 0, 0]);
    let spec = images_dataset("d", dir.path());
    for shape in [&[1, 2, 2, 4][..], &[1, 4], &[2, 2, 2, 3]] {
        let err = open_one(&spec, &[input("x", shape)]).unwrap_err();
        assert!(
            matches!(*err.kind, DatasetErrorKind::ImageInputShape { .. }),
            "{shape:?}: {err}"
        );
    }
}

#[test]
fn multi_input_image_model_takes_one_dataset_per_input_through_the_map() {
    let dir = TempDir::new().unwrap();
    let (left, right) = (dir.path().join("left"), dir.path().join("right"));
    std::fs::create_dir_all(&left).unwrap();
    std::fs::create_dir_all(&right).unwrap();
    for i in 0..3u8 {
        write_png(&left.join(format!("{i}.png")), 2, 2, |_, _| [0, 0, 0]);
        write_png(&right.join(format!("{i}.png")), 2, 2, |_, _| {
            [255, 255, 255]
        });
    }
    let mut main = images_dataset("left", &left);
    main.inputs
        .insert("serving_default_a:0".into(), "left".into());
    let other = images_dataset("right", &right);
    map_to(&mut main, "serving_default_b:0", &other);
    let inputs = [
        input("serving_default_a:0", &[1, 2, 2, 3]),
        input("serving_default_b:0", &[1, 2, 2, 3]),
    ];
    let samples = read_all(&mut open(&main, &inputs).unwrap(), 2).unwrap();
    assert_eq!(samples.len(), 3);
    assert!(samples
        .iter()
        .all(|s| s[0].iter().all(|&v| v == -1.0) && s[1].iter().all(|&v| v == 1.0)));

    let mut unresolved = main.clone();
    unresolved
        .inputs
        .insert("serving_default_b:0".into(), "nowhere".into());
    unresolved.feeds.clear();
    let err = open(&unresolved, &inputs).unwrap_err();
    assert!(
        matches!(*err.kind, DatasetErrorKind::UnknownDataset { .. }),
        "{err}"
    );

    let files = digest_files(&unresolved);
    assert_eq!(files.len(), 3, "{files:?}");
    let files = digest_files(&main);
    assert_eq!(files.len(), 6);
    assert!(
        files[..3].iter().all(|f| f.starts_with(&left))
            && files[3..].iter().all(|f| f.starts_with(&right))
    );
}

// ---- random ---------------------------------------------------------------------------------------------

#[test]
fn random_data_is_seeded_in_range_synthetic_and_one_stream_per_input() {
    let mut spec = dataset("smoke", DatasetFormat::Random, None);
    spec.range = Some([-2.0, 3.0]);
    spec.seed = 42;
    let inputs = [input("a", &[1, 50]), input("b", &[1, 2, 2])];
    let mut stream = open_one(&spec, &inputs).unwrap();
    assert!(stream.is_synthetic());
    assert_eq!(stream.len(), DEFAULT_RANDOM_SAMPLES);
    let first = read_all(&mut stream, 7).unwrap();
    assert_eq!(first.len(), DEFAULT_RANDOM_SAMPLES);
    assert!(first
        .iter()
        .flatten()
        .flat_map(|a| a.iter())
        .all(|&v| (-2.0..=3.0).contains(&v)));
    assert!(first
        .iter()
        .all(|s| s[0].shape() == [1, 50] && s[1].shape() == [1, 2, 2]));
    // Same seed, same data, whatever the batch size.
    let again = read_all(&mut open_one(&spec, &inputs).unwrap(), 100).unwrap();
    assert_eq!(first, again);
    // Another seed, other data.
    spec.seed = 43;
    spec.samples = Some(3);
    let other = read_all(&mut open_one(&spec, &inputs).unwrap(), 100).unwrap();
    assert_eq!(other.len(), 3);
    assert_ne!(other[0], first[0]);
}

#[test]
fn random_range_must_be_ordered_and_finite() {
    let mut spec = dataset("smoke", DatasetFormat::Random, None);
    for range in [[1.0, 0.0], [0.0, f32::INFINITY], [f32::NAN, 1.0]] {
        spec.range = Some(range);
        let err = open_one(&spec, &[input("a", &[1, 2])]).unwrap_err();
        assert!(
            matches!(*err.kind, DatasetErrorKind::BadRange { .. }),
            "{range:?}: {err}"
        );
    }
}

#[test]
fn zero_samples_is_an_error() {
    let mut spec = dataset("smoke", DatasetFormat::Random, None);
    spec.samples = Some(0);
    let err = open_one(&spec, &[input("a", &[1, 2])]).unwrap_err();
    assert!(matches!(*err.kind, DatasetErrorKind::Empty), "{err}");
}

#[test]
fn npz_entry_naming_another_dataset_delegates_that_input() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("d.npz");
    write_npz(&path, false, &[("img", numbered(4, &[3]))]);
    let mut main = dataset("main", DatasetFormat::Npz, Some(path.clone()));
    let smoke = dataset("smoke", DatasetFormat::Random, None);
    map_to(&mut main, "noise", &smoke);
    let inputs = [input("img", &[1, 3]), input("noise", &[1, 2])];
    let mut stream = open(&main, &inputs).unwrap();
    assert_eq!(stream.len(), 4);
    assert!(stream.is_synthetic());
    assert_eq!(read_all(&mut stream, 3).unwrap().len(), 4);
    assert_eq!(digest_files(&main), vec![path]);
}
