//! The boot-file store: every file under the TFTP root, held in memory that
//! cannot change or fault underneath a transfer.
//!
//! # Files as sealed memory
//!
//! Each regular file is copied once into a `memfd` that is then sealed
//! (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL`) and mapped
//! read-only: a [`BootFile`]. Mapping the file on disk directly would be
//! cheaper to load, but any truncation of it (an operator copying a new
//! `ipxe.efi` over the old one) would turn the next read into `SIGBUS` and
//! take down every shard. A sealed memfd can neither shrink nor be written,
//! so a transfer's bytes stay valid and unchanged whatever happens on disk.
//! The memfd's descriptor is closed once mapped; the mapping keeps it alive.
//! Empty files hold no mapping. Generated content can use any other
//! [`FileData`](bootwave_protocol::tftp::FileData), e.g. `Vec<u8>`.
//!
//! # Lookups
//!
//! [`FileStore`] keeps a map from normalised relative path (`/`-separated,
//! UTF-8) to a loaded version or "denied", behind an `ArcSwap`: a lookup
//! takes no lock, allocates nothing and never touches the disk, including
//! for missing names (PXE clients probe many). Matching is exact and
//! case-sensitive, like the file system; no case-folding fallback.
//! Shards resolve through a cloned `Arc<FileStore>`, optionally wrapped in a
//! [`DynamicResolver`] whose hook answers first (per-host iPXE scripts).
//!
//! # What is loaded
//!
//! The root is walked recursively. Names that are not UTF-8 are skipped with
//! a warning. A symlink is followed only when its canonical target lies
//! inside the canonical root; otherwise its name (and, for a directory, every
//! name below it) answers "denied". Directory symlinks that lead back into
//! their own ancestry are not followed. Files are opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` on their resolved path, so
//! a symlink swapped in during the scan cannot escape the root. Unreadable
//! files answer "denied". FIFOs, sockets and devices are skipped.
//!
//! [`StoreOptions`] bound a scan: at most 10,000 names (the rest are left
//! out), 1 GiB per file and 4 GiB across the snapshot (files beyond those are
//! denied), 16 directory levels, 10,000 directories entered (a path through
//! a directory symlink counts again). Nothing over a limit fails the load; each
//! case is logged and counted in the [`LoadReport`]. A name reached through
//! two paths (a symlink alias) shares one loaded version.
//!
//! # Reloads
//!
//! [`FileStore::reload`] scans the root again and swaps the new map in
//! atomically. A file whose (device, inode, size, mtime, ctime) is unchanged
//! keeps its loaded version (the same `Arc`), so an unchanged large image is
//! not copied again; only new or changed files are. A file that had changed
//! less than 2 s before the previous scan began is copied again regardless,
//! as git does with "racily clean" entries: a same-size rewrite within one
//! timestamp tick would leave its whole identity unchanged. Transfers
//! already running keep the `Arc` they resolved and finish with that
//! version; later lookups see the new one. Reloads are serialised; if the
//! root cannot be opened the previous map stays. While transfers still hold
//! old versions, memory use can briefly exceed the byte budget. Deploy tools
//! should write a temporary file and rename it over the old one: an in-place
//! rewrite can be loaded half-written (the next reload corrects it).
//!
//! The data plane calls `reload` on `SIGHUP` and on a control-API request.
//! [`FileStore::watch`] adds a background thread that watches the root and
//! every loaded directory with inotify (close-after-write, create, delete,
//! move in or out, attribute change) and reloads after 100 ms without events
//! (at most 1 s after the first event of a burst). The thread sleeps in
//! `poll` on inotify and an eventfd; dropping the [`WatchHandle`] writes the
//! eventfd and joins the thread. New subdirectories get watches after each
//! reload, followed by one more scan. Not seen by the watcher: in-place
//! writes through a descriptor that stays open, and replacing the root
//! itself through a symlink swap; send `SIGHUP` for those.

mod boot_file;
mod dynamic;
mod error;
mod file_store;
mod root;
mod scan;
mod watch;

pub use boot_file::BootFile;
pub use dynamic::DynamicResolver;
pub use error::StoreError;
pub use file_store::{FileStore, LoadReport, StoreOptions};
pub use watch::{WatchHandle, WatchOptions};
