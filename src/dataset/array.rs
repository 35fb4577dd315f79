//! Samples from one `.npy` array (a file, or an `.npz` member), read one slice of the first axis at a time.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};

use super::error::{DatasetError, DatasetErrorKind};
use super::npy::{self, Dtype, ElementKind};
use super::source::{InputLayout, InputSource};

/// Where an array's bytes come from, for messages and integrity checks.
pub(crate) struct ArrayOrigin {
    /// Dataset name.
    pub dataset: String,
    /// The `.npy` or `.npz` file.
    pub file: PathBuf,
    /// The archive member's array name, for `.npz`.
    pub array: Option<String>,
    /// Bytes the array occupies uncompressed (file length, or the member's size).
    pub stored_len: u64,
    /// The member's CRC-32, for `.npz`.
    pub crc32: Option<u32>,
}

/// A reader that keeps a CRC-32 and a byte count of everything read through it.
struct Checksummed<R> {
    inner: R,
    crc: flate2::Crc,
    read: u64,
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A streamed array feeding one model input.
pub(crate) struct ArraySource {
    origin: ArrayOrigin,
    input: String,
    reader: Checksummed<BufReader<Box<dyn Read + Send>>>,
    dtype: Dtype,
    shape: Vec<usize>,
    sample_bytes: usize,
    samples: usize,
    available: usize,
    next: usize,
    buf: Vec<u8>,
    conversion: Option<String>,
}

/// What reading `dtype` into `layout`'s input converts, when the user should know: float64 narrowed to float32
/// (a note), integers fed unscaled to a float input (a warning: uint8 images calibrated as 0..255 for a model
/// trained on [0, 1] give ranges 255 times too wide, and nothing else would say so).
fn conversion(origin: &ArrayOrigin, layout: &InputLayout, dtype: &Dtype) -> Option<String> {
    use crate::tflite::fb::TensorType;
    let float_input = matches!(
        layout.dtype,
        TensorType::FLOAT32 | TensorType::FLOAT16 | TensorType::FLOAT64
    );
    if !float_input {
        return None;
    }
    let array = match &origin.array {
        Some(array) => format!("array `{array}` of {}", origin.file.display()),
        None => format!("array {}", origin.file.display()),
    };
    let what = format!(
        "dataset `{}`: {array} is {} ({})",
        origin.dataset,
        dtype.numpy_name(),
        dtype.descr
    );
    match (dtype.kind, dtype.size) {
        (ElementKind::Float, 8) => Some(format!(
            "{what}, converted to float32 for input `{}`",
            layout.name
        )),
        (ElementKind::Float, _) => None,
        _ => Some(format!(
            "{what}: integers fed unscaled to float input `{}`, so calibration sees them as stored ({}); if \
             the model expects scaled data (e.g. [0, 1]), save the array as float32 already scaled \
             (x.astype('float32') / 255 for 8-bit images)",
            layout.name,
            dtype.value_range()
        )),
    }
}

impl ArraySource {
    /// Reads the header from `reader` and checks the array against `layout`; `cap` is the dataset's `samples`.
    pub fn open(
        origin: ArrayOrigin,
        reader: Box<dyn Read + Send>,
        layout: &InputLayout,
        cap: Option<usize>,
    ) -> Result<ArraySource, DatasetError> {
        let fail = |kind| {
            DatasetError::new(origin.dataset.clone(), kind)
                .with_input(layout.name.clone())
                .with_file(origin.file.clone())
        };
        let named = |kind| match (&origin.array, kind) {
            (Some(array), DatasetErrorKind::NpyHeader(what)) => {
                DatasetErrorKind::NpyHeader(format!("array `{array}`: {what}"))
            }
            (_, kind) => kind,
        };
        let mut reader = Checksummed {
            inner: BufReader::new(reader),
            crc: flate2::Crc::new(),
            read: 0,
        };
        let header = npy::read_header(&mut reader).map_err(|kind| fail(named(kind)))?;
        let (&samples, sample_shape) = header
            .shape
            .split_first()
            .ok_or_else(|| fail(DatasetErrorKind::NoSampleAxis))?;
        let batch_dropped = layout.shape.first() == Some(&1) && sample_shape == &layout.shape[1..];
        if sample_shape != layout.shape.as_slice() && !batch_dropped {
            return Err(fail(DatasetErrorKind::ShapeMismatch {
                found: sample_shape.to_vec(),
                expected: layout.shape.clone(),
            }));
        }
        layout
            .check_feed(&header.dtype.descr, header.dtype.is_integer())
            .map_err(fail)?;
        let too_large = || {
            fail(DatasetErrorKind::NpyHeader(
                "array size overflows".to_string(),
            ))
        };
        let sample_bytes = layout
            .elements()
            .checked_mul(header.dtype.size)
            .ok_or_else(too_large)?;
        let data_len = u64::try_from(samples)
            .ok()
            .and_then(|n| n.checked_mul(sample_bytes as u64))
            .and_then(|len| len.checked_add(header.data_offset))
            .ok_or_else(too_large)?;
        if origin.stored_len < data_len {
            let present = origin.stored_len.saturating_sub(header.data_offset);
            let complete = present.checked_div(sample_bytes as u64).unwrap_or(0);
            return Err(fail(DatasetErrorKind::Truncated {
                complete: usize::try_from(complete).unwrap_or(usize::MAX),
                expected: samples,
            }));
        }
        let available = cap.map_or(samples, |cap| cap.min(samples));
        let conversion = conversion(&origin, layout, &header.dtype);
        Ok(ArraySource {
            conversion,
            input: layout.name.clone(),
            reader,
            dtype: header.dtype,
            shape: layout.shape.clone(),
            sample_bytes,
            samples,
            available,
            next: 0,
            buf: Vec::new(),
            origin,
        })
    }

    fn error(&self, kind: DatasetErrorKind) -> DatasetError {
        DatasetError::new(self.origin.dataset.clone(), kind)
            .with_input(self.input.clone())
            .with_file(self.origin.file.clone())
            .with_sample(self.next)
    }

    fn read_sample(&mut self) -> Result<ArrayD<f32>, DatasetError> {
        self.buf.resize(self.sample_bytes, 0);
        if let Err(e) = self.reader.read_exact(&mut self.buf) {
            let kind = match e.kind() {
                io::ErrorKind::UnexpectedEof => DatasetErrorKind::Truncated {
                    complete: self.next,
                    expected: self.samples,
                },
                _ => DatasetErrorKind::Io(e),
            };
            return Err(self.error(kind));
        }
        let mut values = Vec::with_capacity(self.sample_bytes / self.dtype.size.max(1));
        self.dtype.decode_into(&self.buf, &mut values);
        let sample = ArrayD::from_shape_vec(IxDyn(&self.shape), values).map_err(|_| {
            self.error(DatasetErrorKind::ShapeMismatch {
                found: vec![self.buf.len()],
                expected: self.shape.clone(),
            })
        })?;
        self.next += 1;
        if self.next == self.samples {
            self.verify_checksum()?;
        }
        Ok(sample)
    }

    /// Once a member is read to its end, its CRC-32 must match the archive's (deflate itself has no checksum).
    fn verify_checksum(&self) -> Result<(), DatasetError> {
        let (Some(expected), Some(array)) = (self.origin.crc32, &self.origin.array) else {
            return Ok(());
        };
        let found = self.reader.crc.sum();
        if self.reader.read == self.origin.stored_len && found != expected {
            let kind = DatasetErrorKind::Checksum {
                array: array.clone(),
                found,
                expected,
            };
            return Err(self.error(kind));
        }
        Ok(())
    }
}

impl InputSource for ArraySource {
    fn dataset(&self) -> &str {
        &self.origin.dataset
    }

    fn available(&self) -> Option<usize> {
        Some(self.available)
    }

    fn file_of(&self, _index: usize) -> Option<PathBuf> {
        Some(self.origin.file.clone())
    }

    fn conversion(&self) -> Option<String> {
        self.conversion.clone()
    }

    fn read_next(&mut self, count: usize) -> Result<Vec<ArrayD<f32>>, DatasetError> {
        let count = count.min(self.available.saturating_sub(self.next));
        (0..count).map(|_| self.read_sample()).collect()
    }
}

/// Opens a plain `.npy` file as the source of one input.
pub(crate) fn open_npy(
    dataset: &str,
    path: &Path,
    layout: &InputLayout,
    cap: Option<usize>,
) -> Result<ArraySource, DatasetError> {
    let io_error = |e: io::Error| {
        DatasetError::new(dataset, DatasetErrorKind::Io(e))
            .with_input(layout.name.clone())
            .with_file(path)
    };
    let (file, stored_len) =
        crate::regular_file::open(path, crate::regular_file::UNBOUNDED, "an .npy file")
            .map_err(io_error)?;
    let origin = ArrayOrigin {
        dataset: dataset.to_string(),
        file: path.to_path_buf(),
        array: None,
        stored_len,
        crc32: None,
    };
    ArraySource::open(origin, Box::new(file), layout, cap)
}
