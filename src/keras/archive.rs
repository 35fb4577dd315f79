//! The `.keras` archive: a zip holding `config.json` (the layer graph) and `model.weights.h5` (the weights).

use std::io::{Cursor, Read};

use zip::{CompressionMethod, ZipArchive};

use super::error::KerasErrorKind;

/// The two members litequant reads from a `.keras` file.
pub struct KerasArchive {
    /// `config.json`, as text.
    pub config: String,
    /// `model.weights.h5`, as bytes.
    pub weights: Vec<u8>,
}

/// Reads `config.json` and `model.weights.h5` from the bytes of a `.keras` file.
pub fn read_archive(bytes: &[u8]) -> Result<KerasArchive, KerasErrorKind> {
    let mut archive =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| KerasErrorKind::Archive(e.to_string()))?;
    let config = member(&mut archive, "config.json")?;
    let config = String::from_utf8(config).map_err(|_| KerasErrorKind::CorruptMember {
        member: "config.json".into(),
        reason: "not UTF-8 text".into(),
    })?;
    let weights = member(&mut archive, "model.weights.h5")?;
    Ok(KerasArchive { config, weights })
}

/// A member's bytes, inflated when deflated, checked against its CRC-32.
fn member(archive: &mut ZipArchive<Cursor<&[u8]>>, name: &str) -> Result<Vec<u8>, KerasErrorKind> {
    let corrupt = |reason: String| KerasErrorKind::CorruptMember {
        member: name.to_string(),
        reason,
    };
    let Some(index) = archive.index_for_name(name) else {
        return Err(KerasErrorKind::MissingMember(name.to_string()));
    };
    let entry = archive
        .by_index_raw(index)
        .map_err(|e| corrupt(e.to_string()))?;
    let (method, size, crc32) = (entry.compression(), entry.size(), entry.crc32());
    // zip is built without its own inflater (the npz reader streams through flate2 the same way).
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 30));
    let read = if method == CompressionMethod::STORE {
        entry.take(size).read_to_end(&mut data)
    } else if method == CompressionMethod::DEFLATE {
        flate2::read::DeflateDecoder::new(entry)
            .take(size)
            .read_to_end(&mut data)
    } else {
        return Err(corrupt(format!("compression method {method} is not read")));
    };
    read.map_err(|e| corrupt(e.to_string()))?;
    if data.len() as u64 != size {
        return Err(corrupt(format!(
            "{} bytes where the directory says {size}",
            data.len()
        )));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    if crc.sum() != crc32 {
        return Err(corrupt("CRC-32 mismatch".into()));
    }
    Ok(data)
}
