//! `.npz` archives (numpy.savez / savez_compressed): a zip of `.npy` members, one per array.
//!
//! The zip crate reads the central directory; each member is then streamed from its own file handle
//! (inflated on the fly when deflated), so several inputs read their arrays side by side without loading them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

use super::array::{ArrayOrigin, ArraySource};
use super::error::{DatasetError, DatasetErrorKind};
use super::source::{bare_name, InputLayout};

/// The most a small array (labels, `label_output_index`) may hold: 2^25 int64 labels, far beyond any
/// evaluation set.
const MAX_SMALL_ARRAY_BYTES: u64 = 256 << 20;

/// An opened `.npz` archive: its arrays and where they are stored.
pub(crate) struct NpzArchive {
    dataset: String,
    path: PathBuf,
    archive: ZipArchive<File>,
    /// Array names (member names without `.npy`) with their member index, in archive order.
    arrays: Vec<(String, usize)>,
}

impl NpzArchive {
    /// Reads the archive's directory.
    pub fn open(dataset: &str, path: &Path) -> Result<NpzArchive, DatasetError> {
        let fail = |kind| DatasetError::new(dataset, kind).with_file(path);
        let (file, _) =
            crate::regular_file::open(path, crate::regular_file::UNBOUNDED, "an .npz file")
                .map_err(|e| fail(DatasetErrorKind::Io(e)))?;
        let archive = ZipArchive::new(file).map_err(|e| fail(DatasetErrorKind::Zip(e)))?;
        let arrays = (0..archive.len())
            .filter_map(|index| {
                let name = archive.name_for_index(index)?;
                Some((name.strip_suffix(".npy")?.to_string(), index))
            })
            .collect();
        Ok(NpzArchive {
            dataset: dataset.to_string(),
            path: path.to_path_buf(),
            archive,
            arrays,
        })
    }

    /// The archive's array names, in archive order.
    pub fn array_names(&self) -> Vec<String> {
        self.arrays.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Whether the archive holds `array`.
    pub fn has(&self, array: &str) -> bool {
        self.arrays.iter().any(|(name, _)| name == array)
    }

    /// The array that feeds `input`: the `mapped` one if given; else one named like the input (exactly, or
    /// both without `serving_default_` and `:0`); else, when the archive feeds a single input and holds a
    /// single array, that array.
    pub fn array_for(
        &self,
        input: &str,
        mapped: Option<&String>,
        single_input: bool,
    ) -> Result<String, DatasetErrorKind> {
        if let Some(array) = mapped {
            if self.has(array) {
                return Ok(array.to_string());
            }
            return Err(DatasetErrorKind::ArrayNotFound {
                array: array.to_string(),
                available: self.array_names(),
            });
        }
        if self.has(input) {
            return Ok(input.to_string());
        }
        let candidates: Vec<String> = self
            .arrays
            .iter()
            .filter(|(name, _)| bare_name(name) == bare_name(input))
            .map(|(name, _)| name.clone())
            .collect();
        match candidates.as_slice() {
            [] => {}
            [only] => return Ok(only.clone()),
            _ => return Err(DatasetErrorKind::AmbiguousArrays { candidates }),
        }
        if single_input && self.arrays.len() == 1 {
            return Ok(self.arrays[0].0.clone());
        }
        Err(DatasetErrorKind::InputNotFed {
            available: self.array_names(),
        })
    }

    /// Opens `array` for streaming into `layout`'s input; `cap` is the dataset's `samples`.
    pub fn open_array(
        &mut self,
        array: &str,
        layout: &InputLayout,
        cap: Option<usize>,
    ) -> Result<ArraySource, DatasetError> {
        let (reader, origin) = self
            .member(array)
            .map_err(|e| e.with_input(layout.name.clone()))?;
        ArraySource::open(origin, reader, layout, cap)
    }

    /// Reads a small array whole (labels, a scalar): its shape and its elements as f32.
    pub fn read_small_array(
        &mut self,
        array: &str,
    ) -> Result<(Vec<usize>, Vec<f32>), DatasetError> {
        let (reader, origin) = self.member(array)?;
        let fail =
            |kind| DatasetError::new(self.dataset.clone(), kind).with_file(self.path.clone());
        let mut reader = std::io::BufReader::new(reader);
        let header = super::npy::read_header(&mut reader).map_err(|kind| match kind {
            DatasetErrorKind::NpyHeader(what) => fail(DatasetErrorKind::NpyHeader(format!(
                "array `{array}`: {what}"
            ))),
            kind => fail(kind),
        })?;
        let elements = header
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        let len = elements
            .and_then(|n| n.checked_mul(header.dtype.size))
            .filter(|&n| n as u64 <= MAX_SMALL_ARRAY_BYTES)
            .ok_or_else(|| {
                fail(DatasetErrorKind::NpyHeader(format!(
                    "array `{array}` has shape {:?}; expected at most {MAX_SMALL_ARRAY_BYTES} bytes",
                    header.shape
                )))
            })?;
        let elements = elements.unwrap_or(0);
        // Read what is there rather than allocating what the header claims: a header promising 1 GiB in a
        // 1 KiB archive must cost 1 KiB.
        let mut bytes =
            Vec::with_capacity(len.min(usize::try_from(origin.stored_len).unwrap_or(0)));
        (&mut reader)
            .take(len as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(DatasetErrorKind::Io(e)))?;
        if bytes.len() < len {
            return Err(fail(DatasetErrorKind::NpyHeader(format!(
                "array `{array}` is truncated: {} of {len} data bytes",
                bytes.len()
            ))));
        }
        let mut values = Vec::with_capacity(elements);
        header.dtype.decode_into(&bytes, &mut values);
        Ok((header.shape, values))
    }

    /// A reader of `array`'s `.npy` bytes (inflated when deflated) and where they come from.
    fn member(&mut self, array: &str) -> Result<(Box<dyn Read + Send>, ArrayOrigin), DatasetError> {
        let fail =
            |kind| DatasetError::new(self.dataset.clone(), kind).with_file(self.path.clone());
        let Some(&(_, index)) = self.arrays.iter().find(|(name, _)| name == array) else {
            return Err(fail(DatasetErrorKind::ArrayNotFound {
                array: array.to_string(),
                available: self.array_names(),
            }));
        };
        let member = self
            .archive
            .by_index_raw(index)
            .map_err(|e| fail(DatasetErrorKind::Zip(e)))?;
        if member.encrypted() {
            return Err(fail(DatasetErrorKind::Encrypted {
                array: array.to_string(),
            }));
        }
        let (method, data_start, compressed, size, crc32) = (
            member.compression(),
            member.data_start(),
            member.compressed_size(),
            member.size(),
            member.crc32(),
        );
        drop(member);
        let io_error = |e| fail(DatasetErrorKind::Io(e));
        let (mut file, _) =
            crate::regular_file::open(&self.path, crate::regular_file::UNBOUNDED, "an .npz file")
                .map_err(io_error)?;
        file.seek(SeekFrom::Start(data_start)).map_err(io_error)?;
        let raw = file.take(compressed);
        // Compared with zip's constants: its `Deflated` variant exists only when zip inflates by itself.
        let reader: Box<dyn Read + Send> = if method == CompressionMethod::STORE {
            Box::new(raw)
        } else if method == CompressionMethod::DEFLATE {
            Box::new(flate2::read::DeflateDecoder::new(raw))
        } else {
            return Err(fail(DatasetErrorKind::CompressionMethod {
                array: array.to_string(),
                method: method.to_string(),
            }));
        };
        let origin = ArrayOrigin {
            dataset: self.dataset.clone(),
            file: self.path.clone(),
            array: Some(array.to_string()),
            stored_len: size,
            crc32: Some(crc32),
        };
        Ok((reader, origin))
    }
}
