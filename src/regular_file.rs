//! Opening the files a user names (models, datasets, the config) only when they are regular files.
//!
//! A FIFO blocks on open or read until a writer comes, `/dev/zero` never ends and `/dev/random` never ends
//! either: reading one as a model or a dataset hangs or exhausts memory. Every input file goes through
//! [`open`] or [`read`], which refuse anything but a regular file (before opening it, so a FIFO cannot block)
//! and bound the read by the format's own size limit.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// The largest `.tflite` file: a flatbuffer addresses at most 2 GiB - 1 bytes.
pub(crate) const MAX_TFLITE_BYTES: u64 = (1 << 31) - 1;

/// The largest `quantize.toml` read: far beyond any real config, small enough to never exhaust memory.
pub(crate) const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// No bound beyond the file's own length (streamed formats: `.npy`, `.npz`, digests).
pub(crate) const UNBOUNDED: u64 = u64::MAX;

/// What a special file system entry is, in words (a folder, a FIFO, a device, a socket); `None` for a regular
/// file or an entry of no kind named here.
pub(crate) fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    None
}

fn refuse(meta: &Metadata, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "is {}; expected {what} (a regular file)",
            special_kind(meta).unwrap_or("not a regular file")
        ),
    )
}

/// Opens `path` for reading if it is a regular file (symlinks followed) of at most `limit` bytes; returns the
/// file and its length. `what` says what the file should be (`"a .tflite model"`), for the error.
pub(crate) fn open(path: &Path, limit: u64, what: &str) -> io::Result<(File, u64)> {
    // stat before open: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(&meta, what));
    }
    let file = File::open(path)?;
    // The path may have been replaced between the two calls: what was opened is what counts.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(&meta, what));
    }
    if meta.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {} bytes; {what} is at most {limit} bytes", meta.len()),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads the whole of `path` if it is a regular file of at most `limit` bytes (see [`open`]).
pub(crate) fn read(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let (file, len) = open(path, limit, what)?;
    // A file growing while it is read is read up to the limit and no further.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("grew beyond {limit} bytes while being read; {what} is at most {limit} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_devices_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), UNBOUNDED, "a model").unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
        #[cfg(unix)]
        {
            let err = read(Path::new("/dev/zero"), UNBOUNDED, "a model").unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.tflite");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo on this system: nothing to test
        }
        let err = open(&fifo, MAX_TFLITE_BYTES, "a .tflite model").unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn files_beyond_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert_eq!(read(&path, 100, "x").unwrap().len(), 100);
        let err = read(&path, 99, "a config").unwrap_err();
        assert!(err.to_string().contains("at most 99 bytes"), "{err}");
    }
}
