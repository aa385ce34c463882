//! Errors of the boot-file store.

use std::io;
use std::path::PathBuf;

/// Why the store, one of its files, or its watcher could not be set up.
///
/// Per-file problems met while scanning the root (unreadable, too large,
/// non-UTF-8 name) are not errors: they are logged, counted in
/// [`LoadReport`](super::LoadReport) and the file is left out or denied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The TFTP root could not be resolved, opened or listed.
    #[error("TFTP root {}", path.display())]
    Root {
        /// The root as configured.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// `memfd_create` failed (out of memory or file descriptors).
    #[error("creating a memfd")]
    Memfd(#[source] io::Error),
    /// Reading the source or writing the memfd failed.
    #[error("copying file contents into the memfd")]
    Copy(#[source] io::Error),
    /// The file holds more bytes than the limit allows.
    #[error("file larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// Sealing the memfd failed.
    #[error("sealing the memfd")]
    Seal(#[source] io::Error),
    /// Mapping the sealed memfd failed.
    #[error("mapping the memfd")]
    Map(#[source] io::Error),
    /// Setting up inotify or the watcher's wake-up eventfd failed.
    #[error("setting up the file watcher")]
    Watch(#[source] io::Error),
    /// The watcher thread could not be started.
    #[error("starting the file watcher thread")]
    Spawn(#[source] io::Error),
}
