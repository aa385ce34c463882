//! The pushed state on disk: the last state the agent pushed, kept under
//! the journal directory so that a data plane restarted while the agent is
//! away serves it at once.
//!
//! `pushed-state.pb` holds one [`v1::AppliedState`] (history, generation,
//! time, the whole desired state) behind a small header: the magic
//! `BWPUSH1\n`, the body's length (u64, big endian) and its CRC32. It is
//! replaced atomically (temp file, fsync, rename, directory fsync), so a
//! crash leaves the old or the new state, never a mix. A file that fails
//! its checks is refused with a [`PersistError`]; the caller falls back to
//! the local configuration file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bootwave_proto::convert::State;
use bootwave_proto::v1;
use prost::Message as _;

use super::Origin;

/// The file name under the journal directory.
pub const FILE_NAME: &str = "pushed-state.pb";
const MAGIC: &[u8; 8] = b"BWPUSH1\n";
const HEADER: usize = 8 + 8 + 4;
/// Largest persisted state read back (a desired state with 100,000s of
/// hosts is tens of megabytes).
const MAX_BYTES: u64 = bootwave_proto::MAX_MESSAGE_BYTES as u64;

/// A pushed state with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// History, generation and time.
    pub origin: Origin,
    /// The state.
    pub state: State,
}

/// Why a persisted state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Reading, writing or syncing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a persisted state or is damaged.
    #[error("{path}: corrupt persisted state: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The persisted state's path under `journal_dir`.
pub fn path(journal_dir: &Path) -> PathBuf {
    journal_dir.join(FILE_NAME)
}

/// Reads the persisted state under `journal_dir` (`None`: there is none).
pub fn load(journal_dir: &Path) -> Result<Option<Applied>, PersistError> {
    let path = path(journal_dir);
    let io = |source| PersistError::Io {
        path: path.clone(),
        source,
    };
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.clone(),
        reason,
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.len() > MAX_BYTES + HEADER as u64 {
        return Err(corrupt(format!("{} bytes is too large", meta.len())));
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    let body = check_frame(&bytes).map_err(corrupt)?;
    let wire = v1::AppliedState::decode(body).map_err(|e| corrupt(e.to_string()))?;
    if wire.history.is_empty() || wire.generation == 0 {
        return Err(corrupt("no history or generation".to_owned()));
    }
    let state = State::try_from(wire.state.unwrap_or_default())
        .map_err(|e| corrupt(format!("state: {e}")))?;
    Ok(Some(Applied {
        origin: Origin {
            history: wire.history,
            generation: wire.generation,
            applied_unix_ms: wire.applied_unix_ms,
        },
        state,
    }))
}

/// Replaces the persisted state under `journal_dir` with `state` of
/// `origin`, atomically and durably.
pub fn save(journal_dir: &Path, origin: &Origin, state: &State) -> Result<(), PersistError> {
    let wire = v1::AppliedState {
        history: origin.history.clone(),
        generation: origin.generation,
        applied_unix_ms: origin.applied_unix_ms,
        state: Some(v1::DesiredState::from(state)),
    };
    let body = wire.encode_to_vec();
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(body.len() as u64).to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    write_atomically(&path(journal_dir), &bytes)
}

/// Removes the persisted state (the file owns everything again).
pub fn remove(journal_dir: &Path) -> Result<(), PersistError> {
    let path = path(journal_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PersistError::Io { path, source }),
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date, counting eras of
    // 400 years (146,097 days) from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The body of a framed file, or why it is not one.
fn check_frame(bytes: &[u8]) -> Result<&[u8], String> {
    let (header, body) = bytes
        .split_at_checked(HEADER)
        .ok_or_else(|| format!("{} bytes is shorter than the header", bytes.len()))?;
    if &header[..8] != MAGIC {
        return Err("not a bootwave pushed state (bad magic)".to_owned());
    }
    let len = u64::from_be_bytes(header[8..16].try_into().map_err(|_| "header")?);
    if len != body.len() as u64 {
        return Err(format!(
            "truncated: {} body bytes, header says {len}",
            body.len()
        ));
    }
    let crc = u32::from_be_bytes(header[16..20].try_into().map_err(|_| "header")?);
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_owned());
    }
    Ok(body)
}

/// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over
/// `path` and fsyncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PersistError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("pb.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn applied() -> Applied {
        let wire = v1::DesiredState {
            subnets: vec![v1::Subnet {
                network: "10.0.0.0/24".into(),
                ..Default::default()
            }],
            hosts: vec![v1::Host {
                mac: "02:00:00:00:00:01".into(),
                fixed_address: "10.0.0.5".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        Applied {
            origin: Origin {
                history: "h1".into(),
                generation: 9,
                applied_unix_ms: 1_700_000_000_000,
            },
            state: State::try_from(wire).unwrap(),
        }
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_796_286_860_999), "2026-12-03T08:34:20Z");
    }

    #[test]
    fn a_saved_state_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none(), "nothing yet");
        let a = applied();
        save(dir.path(), &a.origin, &a.state).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(applied()));
        let mut next = applied().origin;
        next.generation = 10;
        save(dir.path(), &next, &a.state).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().origin.generation, 10);
        assert!(!dir.path().join("pushed-state.pb.tmp").exists());
        remove(dir.path()).unwrap();
        assert!(load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let a = applied();
        save(dir.path(), &a.origin, &a.state).unwrap();
        let file = path(dir.path());
        let good = std::fs::read(&file).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let cases: [(&[u8], &str); 5] = [
            (&good[..good.len() - 3], "truncated"),
            (&flipped, "checksum"),
            (b"garbage", "shorter than the header"),
            (&[b'x'; 64], "bad magic"),
            (b"", "shorter than the header"),
        ];
        for (bytes, reason) in cases {
            std::fs::write(&file, bytes).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert!(
                matches!(&err, PersistError::Corrupt { reason: r, .. } if r.contains(reason)),
                "{reason}: {err}"
            );
        }
    }
}
