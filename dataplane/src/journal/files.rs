//! File names and the small file-system steps the journal is built from.

use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Write as _},
    path::{Path, PathBuf},
};

use super::{
    error::{JournalError, Result, io_err},
    format::{FileHeader, FileKind},
};

/// Longest accepted journal name.
const MAX_NAME_LEN: usize = 128;

/// The files making up the journal `name` in `dir`.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// The directory (synced after renames and removals).
    pub(crate) dir: PathBuf,
    /// `<name>.log`: the log; the journal exists iff this file exists.
    pub(crate) log: PathBuf,
    /// `<name>.snap`: the latest snapshot, if any.
    pub(crate) snap: PathBuf,
    /// `<name>.log.tmp`: a log being created.
    pub(crate) log_tmp: PathBuf,
    /// `<name>.snap.tmp`: a snapshot being written.
    pub(crate) snap_tmp: PathBuf,
}

impl Paths {
    /// Validates `name` and derives the file paths.
    pub(crate) fn new(dir: &Path, name: &str) -> Result<Self> {
        validate_name(name)?;
        let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
        Ok(Self {
            dir: dir.to_path_buf(),
            log: file(".log"),
            snap: file(".snap"),
            log_tmp: file(".log.tmp"),
            snap_tmp: file(".snap.tmp"),
        })
    }
}

/// Accepts plain file-name stems only, so a name can never escape `dir`.
fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 128 bytes"
    } else if name.starts_with('.') {
        "starts with a dot"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        "only ASCII letters, digits, '_', '-' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(JournalError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Makes renames, creations and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Removes `path`; a missing file is not an error.
pub(crate) fn remove_optional(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Creates (or truncates) `path` and writes `bytes`, without syncing.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    Ok(file)
}

/// Flushes a file's data (and the size) to stable storage.
pub(crate) fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(io_err("fdatasync", path))
}

/// Renames `from` to `to` (atomically replacing `to`).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(io_err("rename", from))
}

/// Writes a log header of `generation` starting at `first_seq` into
/// `<name>.log.tmp` and syncs it; the caller renames it into place.
pub(crate) fn write_log_temp(paths: &Paths, generation: u64, first_seq: u64) -> Result<File> {
    let header = FileHeader {
        kind: FileKind::Log,
        generation,
        first_seq,
        record_count: 0,
    };
    let file = write_new(&paths.log_tmp, &header.encode())?;
    sync_file(&file, &paths.log_tmp)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_stems() {
        let dir = Path::new("/var/lib/bootwave");
        let p = Paths::new(dir, "shard-3-of-8").expect("valid");
        assert_eq!(p.log, dir.join("shard-3-of-8.log"));
        assert_eq!(p.snap_tmp, dir.join("shard-3-of-8.snap.tmp"));
        for bad in [
            "",
            ".hidden",
            "../escape",
            "a/b",
            "sp ace",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(Paths::new(dir, bad), Err(JournalError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
    }
}
