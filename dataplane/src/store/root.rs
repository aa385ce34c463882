//! The TFTP root directory and opening files strictly beneath it.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags for every file opened from the root. `O_NONBLOCK` keeps a FIFO
/// planted under the root from blocking the scan; it does not affect reads
/// of regular files.
const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// `struct open_how` of `openat2(2)` (libc's is `#[non_exhaustive]`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Set once `openat2` answered `ENOSYS` (kernel older than 5.6, or a seccomp
/// filter that hides it).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The canonical TFTP root, held open for the duration of one scan.
pub(super) struct RootDir {
    /// Canonical absolute path (no symlinks, no `..`).
    path: PathBuf,
    /// The directory itself, anchor for `openat2`.
    fd: OwnedFd,
}

impl RootDir {
    /// Resolves `configured` to its canonical path and opens it.
    pub(super) fn open(configured: &Path) -> io::Result<Self> {
        let path = std::fs::canonicalize(configured)?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)?;
        Ok(Self {
            path,
            fd: dir.into(),
        })
    }

    /// The canonical root path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file at `rel` (relative, symlink-free, already checked to
    /// lie inside the root) for reading.
    ///
    /// With `openat2` the kernel refuses to leave the root and to follow any
    /// symlink on the way (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a
    /// directory swapped for a symlink between the scan's checks and this
    /// open fails with `EXDEV`/`ELOOP` instead of escaping. Without
    /// `openat2` only the last component is protected (`O_NOFOLLOW`).
    pub(super) fn open_file(&self, rel: &Path) -> io::Result<File> {
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match self.openat2(rel) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        "openat2 unavailable; symlink races in the TFTP root are only partly guarded"
                    );
                }
                other => return other,
            }
        }
        OpenOptions::new()
            .read(true)
            .custom_flags(OPEN_FLAGS | libc::O_NOFOLLOW)
            .open(self.path.join(rel))
    }

    fn openat2(&self, rel: &Path) -> io::Result<File> {
        let c_rel = CString::new(rel.as_os_str().as_bytes())?;
        let how = OpenHow {
            // Non-negative flag bits widen losslessly.
            flags: OPEN_FLAGS as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH
                | libc::RESOLVE_NO_SYMLINKS
                | libc::RESOLVE_NO_MAGICLINKS,
        };
        // Safety: `c_rel` is NUL-terminated and `how` is a correctly laid out
        // `open_how` whose size is passed alongside; both outlive the call.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                c_rel.as_ptr(),
                &how as *const OpenHow,
                size_of::<OpenHow>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = libc::c_int::try_from(rc).map_err(io::Error::other)?;
        // Safety: the syscall returned a fresh descriptor that nothing else owns.
        #[allow(unsafe_code)]
        let file = unsafe { File::from_raw_fd(raw) };
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn opens_plain_file_beneath() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/f"), b"abc").expect("write");
        let root = RootDir::open(dir.path()).expect("root");
        let mut s = String::new();
        root.open_file(Path::new("sub/f"))
            .expect("open")
            .read_to_string(&mut s)
            .expect("read");
        assert_eq!(s, "abc");
    }

    #[test]
    fn refuses_symlink_components_and_escapes() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
        std::os::unix::fs::symlink("out/secret", dir.path().join("leaf")).expect("symlink");
        let root = RootDir::open(dir.path()).expect("root");
        assert!(root.open_file(Path::new("leaf")).is_err());
        assert!(root.open_file(Path::new("out/secret")).is_err());
        assert!(root.open_file(Path::new("../x")).is_err());
    }
}
