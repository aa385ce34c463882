//! The seam between the TFTP core and whatever holds the files.
//!
//! The core never opens files. It asks a [`Resolver`] for a normalised path
//! and gets back shared, immutable bytes ([`FileData`]) that stay valid for as
//! long as a transfer holds them, even when the file is replaced meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Immutable bytes of one version of a file.
///
/// Implementations (a sealed memfd mapping, a heap buffer, generated script
/// text) guarantee that `bytes` returns the same slice for the life of the
/// value and that reading it can never fault.
pub trait FileData: Send + Sync + std::fmt::Debug {
    /// The file's contents.
    fn bytes(&self) -> &[u8];

    /// The length of the contents once converted to netascii (every LF
    /// and CR takes two bytes). The default counts on every call;
    /// implementations holding large files cache it, since it is asked
    /// once per netascii request.
    fn netascii_len(&self) -> u64 {
        super::netascii::converted_len(self.bytes())
    }

    /// The version of the source this was loaded from, for HTTP's `ETag`
    /// and `Last-Modified`; `None` for generated content.
    fn version(&self) -> Option<FileVersion> {
        None
    }

    /// A descriptor of a sealed file holding exactly [`bytes`](Self::bytes),
    /// when the implementation keeps one: HTTP then sends the body with
    /// `sendfile` (no copy through the process).
    fn sealed_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// The version of a file as the store loaded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileVersion {
    /// The source file's modification time.
    pub modified: std::time::SystemTime,
    /// A value that differs between versions of one name (a hash of the
    /// source's device, inode, size and times).
    pub tag: u64,
}

impl FileData for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// What the core asks the resolver.
#[derive(Debug, Clone, Copy)]
pub struct ResolveRequest<'a> {
    /// Path relative to the TFTP root, already normalised by the core:
    /// `/`-separated, no empty, `.` or `..` components, no leading `/`.
    pub path: &'a str,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The client's MAC address, when DHCP has seen it at this address.
    pub mac: Option<[u8; 6]>,
}

/// The resolver's answer.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// The file's current version.
    File(Arc<dyn FileData>),
    /// No such file (TFTP error 1).
    NotFound,
    /// The path exists but may not be served, e.g. a symlink leaving the
    /// root (TFTP error 2).
    Denied,
}

/// Maps a request to file bytes. Called on the hot path: must not block.
pub trait Resolver {
    /// Looks up one file.
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved;
}

impl<R: Resolver + ?Sized> Resolver for &R {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        (**self).resolve(request)
    }
}

impl<R: Resolver + ?Sized> Resolver for Box<R> {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        (**self).resolve(request)
    }
}

impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        (**self).resolve(request)
    }
}

/// Finds a client's MAC address from its IP address, for
/// [`ResolveRequest::mac`]. The driver provides one backed by the DHCP
/// bindings; closures `Fn(IpAddr) -> Option<[u8; 6]>` qualify.
pub trait MacLookup: Send {
    /// The MAC bound to `ip`, if known.
    fn mac_of(&self, ip: IpAddr) -> Option<[u8; 6]>;
}

impl<F> MacLookup for F
where
    F: Fn(IpAddr) -> Option<[u8; 6]> + Send,
{
    fn mac_of(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self(ip)
    }
}
