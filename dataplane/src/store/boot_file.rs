//! One immutable version of a file's bytes, held in a sealed memfd mapping.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use memmap2::{Mmap, MmapOptions};

use bootwave_protocol::tftp::{FileData, FileVersion};

use super::StoreError;

/// Seals applied before mapping: the size and the contents are frozen, and
/// the seal set itself can no longer change.
const SEALS: libc::c_int =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

/// Longest memfd name we pass (the kernel allows 249 bytes).
const MEMFD_NAME_MAX: usize = 200;

/// Immutable bytes of one version of a boot file.
///
/// The bytes live in an anonymous memory file (`memfd`) that is sealed
/// against shrinking, growing and writing, then mapped read-only. Whatever
/// happens to the file on disk afterwards (rewrite, truncation, deletion),
/// reading [`bytes`](FileData::bytes) can neither fault with `SIGBUS` nor see
/// different contents. The memfd's descriptor is closed once mapped (the
/// mapping keeps the memory alive), so a store of ten thousand files does not
/// hold ten thousand descriptors, except for files of `SENDFILE_SIZES`,
/// whose descriptor is kept for HTTP's `sendfile` (their body then goes to
/// the socket without a copy through the process). The mapping is a
/// `memmap2::Mmap`; dropping the value unmaps the memory.
///
/// Empty files hold no memfd and no mapping.
pub struct BootFile {
    /// The read-only mapping; `None` for an empty file.
    map: Option<Mmap>,
    /// Length once converted to netascii, counted at the first netascii
    /// request for this version and kept (the bytes never change).
    netascii_len: OnceLock<u64>,
    /// The source version it was loaded from (HTTP validators).
    version: Option<FileVersion>,
    /// The sealed memfd, kept for files of [`SENDFILE_SIZES`].
    fd: Option<OwnedFd>,
}

/// Files of these sizes keep their memfd open for `sendfile`. Smaller ones
/// go out in one `writev` with their head, where a copy costs less than the
/// extra call. Larger ones are copied too: measured over a veth pair
/// (benches/http-peers.sh, 1,000 connections), `sendfile` serves a 1 MiB
/// file 1.3× faster than a copy and a 50 MiB one 2× slower. A file that
/// stays in the CPU caches (as 1 MiB does) is cheapest passed by
/// reference; a file larger than the caches is read cold by the receiver
/// from the page itself, where a copy would hand it a socket buffer that
/// is still hot. The upper bound, a quarter of the 32 MiB last-level
/// cache of the machine measured, lies between the two sizes measured.
pub(crate) const SENDFILE_SIZES: std::ops::RangeInclusive<usize> = 64 * 1024..=8 * 1024 * 1024;

impl BootFile {
    /// Copies the whole of `source` into a new sealed mapping.
    ///
    /// `name` labels the memfd (visible in `/proc/<pid>/maps` as
    /// `/memfd:bootwave:<name>`). Fails with [`StoreError::TooLarge`] when
    /// `source` yields more than `max_len` bytes.
    pub fn from_reader(name: &str, source: impl Read, max_len: u64) -> Result<Self, StoreError> {
        let Some((fd, len)) = fill_sealed(name, source, max_len)? else {
            return Ok(Self::empty());
        };
        let len = usize::try_from(len).map_err(|_| StoreError::TooLarge { limit: max_len })?;
        let mut file = Self::map(&fd, len)?;
        if SENDFILE_SIZES.contains(&len) {
            file.fd = Some(fd);
        }
        Ok(file)
    }

    /// Copies `bytes` into a new sealed mapping (generated content, tests).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        // A slice length always fits in u64 on supported targets.
        Self::from_reader(name, bytes, bytes.len() as u64)
    }

    /// An empty file: no memfd, no mapping.
    pub fn empty() -> Self {
        Self {
            map: None,
            netascii_len: OnceLock::new(),
            version: None,
            fd: None,
        }
    }

    /// Records the version of the source the bytes came from.
    pub fn set_version(&mut self, version: FileVersion) {
        self.version = Some(version);
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |map| map.len())
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maps `len` (> 0) bytes of the sealed memfd `fd` read-only.
    fn map(fd: &OwnedFd, len: usize) -> Result<Self, StoreError> {
        // Safety: the memfd is sealed against shrinking, growing and writing
        // (`fill_sealed` applied the seals or failed), so the mapped bytes can neither
        // change nor vanish (no SIGBUS) while the mapping lives. `populate`
        // pre-faults the pages so that the first transfer does not pay for it.
        #[allow(unsafe_code)]
        let map =
            unsafe { MmapOptions::new().len(len).populate().map(fd) }.map_err(StoreError::Map)?;
        Ok(Self {
            map: Some(map),
            netascii_len: OnceLock::new(),
            version: None,
            fd: None,
        })
    }
}

impl FileData for BootFile {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    fn netascii_len(&self) -> u64 {
        *self
            .netascii_len
            .get_or_init(|| bootwave_protocol::tftp::netascii_len(self.bytes()))
    }

    fn version(&self) -> Option<FileVersion> {
        self.version
    }

    fn sealed_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd as _;
        self.fd.as_ref().map(|fd| fd.as_fd())
    }
}

impl std::fmt::Debug for BootFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootFile")
            .field("len", &self.len())
            .finish()
    }
}

/// Creates a memfd, copies at most `max_len` bytes of `source` into it and
/// seals it. Returns `None` for empty contents (no memfd kept).
fn fill_sealed(
    name: &str,
    source: impl Read,
    max_len: u64,
) -> Result<Option<(OwnedFd, u64)>, StoreError> {
    let fd = memfd_create(name)?;
    let mut memfd = File::from(fd);
    let copied = io::copy(&mut source.take(max_len.saturating_add(1)), &mut memfd)
        .map_err(StoreError::Copy)?;
    if copied > max_len {
        return Err(StoreError::TooLarge { limit: max_len });
    }
    if copied == 0 {
        return Ok(None);
    }
    let fd = OwnedFd::from(memfd);
    // Safety: F_ADD_SEALS on a descriptor we own; takes an int argument.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
    if rc != 0 {
        return Err(StoreError::Seal(io::Error::last_os_error()));
    }
    Ok(Some((fd, copied)))
}

/// `memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING)` named `bootwave:<name>`.
fn memfd_create(name: &str) -> Result<OwnedFd, StoreError> {
    let mut label: String = format!("bootwave:{name}")
        .chars()
        .filter(|&c| c != '\0')
        .collect();
    while label.len() > MEMFD_NAME_MAX {
        label.pop();
    }
    let label = CString::new(label).map_err(|e| StoreError::Memfd(io::Error::other(e)))?;
    // Safety: `label` is a valid NUL-terminated string that outlives the call.
    #[allow(unsafe_code)]
    let raw =
        unsafe { libc::memfd_create(label.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(StoreError::Memfd(io::Error::last_os_error()));
    }
    // Safety: `raw` is a fresh descriptor that nothing else owns.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use std::io::{Seek as _, SeekFrom, Write as _};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn copies_contents() {
        let file = BootFile::from_bytes("a", b"hello boot").expect("memfd");
        assert_eq!(file.bytes(), b"hello boot");
        assert_eq!(file.len(), 10);
    }

    #[test]
    fn netascii_len_counts_expansions() {
        let file = BootFile::from_bytes("t", b"a\nb\r\n").expect("memfd");
        assert_eq!(file.netascii_len(), 8);
        assert_eq!(file.netascii_len(), 8, "cached value");
    }

    #[test]
    fn empty_has_no_mapping() {
        let file = BootFile::from_bytes("empty", b"").expect("memfd");
        assert!(file.is_empty());
        assert_eq!(file.bytes(), b"");
    }

    #[test]
    fn too_large_is_refused() {
        let err = BootFile::from_reader("big", &[7u8; 100][..], 99).expect_err("limit");
        assert!(matches!(err, StoreError::TooLarge { limit: 99 }), "{err:?}");
        let ok = BootFile::from_reader("exact", &[7u8; 100][..], 100).expect("at limit");
        assert_eq!(ok.len(), 100);
    }

    #[test]
    fn memfd_is_sealed_against_resize_and_write() {
        let (fd, len) = fill_sealed("sealed", &b"0123456789"[..], 100)
            .expect("fill")
            .expect("non-empty");
        assert_eq!(len, 10);
        // Safety (test): F_GET_SEALS on an owned descriptor.
        #[allow(unsafe_code)]
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals, SEALS);
        let mut file = File::from(fd);
        assert!(file.set_len(0).is_err(), "shrink must be refused");
        assert!(file.set_len(100).is_err(), "grow must be refused");
        file.seek(SeekFrom::Start(0)).expect("seek");
        assert!(file.write_all(b"x").is_err(), "write must be refused");
    }

    #[test]
    fn label_with_long_or_odd_name_is_accepted() {
        let name = "é\0x".repeat(300);
        let file = BootFile::from_bytes(&name, b"x").expect("memfd");
        assert_eq!(file.bytes(), b"x");
    }

    #[test]
    fn shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BootFile>();
        let file = Arc::new(BootFile::from_bytes("t", &[3u8; 4096]).expect("memfd"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let file = Arc::clone(&file);
                std::thread::spawn(move || file.bytes().iter().map(|&b| u64::from(b)).sum::<u64>())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), 3 * 4096);
        }
    }
}
