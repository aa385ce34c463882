//! Unix sockets that only their owner can reach from the first moment, and
//! that never take the place of a socket a live process serves.
//!
//! The socket is bound inside a fresh mode-0700 directory next to the final
//! path, set to mode 0600 there, and then hard-linked to the final path:
//! nobody else can connect while its mode is still the umask's, and the
//! process-wide umask is never touched (other threads may be creating
//! files). Linking fails if the path exists, so two processes starting at
//! once cannot both win; an existing socket is removed only when nobody
//! accepts on it.

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The path exists and is not a socket (never removed).
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Another live process accepts on the socket (never removed).
    #[error("{0}: another process is serving on this socket")]
    InUse(PathBuf),
    /// Creating the directory, binding, linking or removing a stale socket
    /// failed.
    #[error("{path}: {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds a listening unix socket at `path` with mode 0600 (non-blocking).
///
/// Creates the parent directory if missing. A stale socket file (nobody
/// accepts on it) is replaced; a live one is refused with
/// [`BindError::InUse`].
pub fn bind_private(path: &Path) -> Result<UnixListener, BindError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BindError::Io { path, source }
    };
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let private = PrivateDir::create(parent, path)?;
    let staged = private.0.join("s");
    let listener = UnixListener::bind(&staged).map_err(io(&staged))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(io(&staged))?;
    listener.set_nonblocking(true).map_err(io(&staged))?;
    // Two attempts: the second follows the removal of a stale socket.
    for _ in 0..2 {
        match std::fs::hard_link(&staged, path) {
            Ok(()) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => remove_stale(path)?,
            Err(e) => return Err(io(path)(e)),
        }
    }
    Err(BindError::InUse(path.to_owned()))
}

/// Removes `path` if it is a socket nobody accepts on.
fn remove_stale(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket(path.to_owned()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(BindError::InUse(path.to_owned()));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BindError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// A mode-0700 directory removed (with its staged socket name) on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create(parent: &Path, target: &Path) -> Result<Self, BindError> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let stem = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut last = None;
        for _ in 0..16 {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let dir = parent.join(format!(".{stem}.{}.{n}.bind", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => return Err(BindError::Io { path: dir, source }),
            }
        }
        Err(BindError::Io {
            path: parent.to_owned(),
            source: last.unwrap_or_else(|| std::io::Error::other("no free directory name")),
        })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join("s"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn binds_with_mode_0600_and_leaves_no_staging_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let _listener = bind_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        UnixStream::connect(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("control.sock")]);
    }

    #[test]
    fn refuses_a_live_socket_and_keeps_it_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let _first = bind_private(&path).unwrap();
        let err = bind_private(&path).unwrap_err();
        assert!(matches!(err, BindError::InUse(_)), "{err}");
        UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        drop(bind_private(&path).unwrap());
        assert!(path.exists());
        let _second = bind_private(&path).unwrap();
        UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn never_removes_a_file_that_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        std::fs::write(&path, b"keep").unwrap();
        let err = bind_private(&path).unwrap_err();
        assert!(matches!(err, BindError::NotASocket(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    }
}
