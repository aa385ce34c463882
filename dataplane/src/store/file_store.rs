//! The store: a lock-free, atomically reloaded map of boot files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};

use super::root::RootDir;
use super::scan::{Entry, Snapshot};
use super::{BootFile, StoreError};

/// Bounds on what one scan of the root loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most names (files and denied names) in the store; further files are
    /// left out (not found) and counted.
    pub max_files: usize,
    /// Most bytes held across all distinct file versions of one snapshot;
    /// files beyond the budget are denied and counted.
    pub max_total_bytes: u64,
    /// Largest single file; larger files are denied and counted.
    pub max_file_size: u64,
    /// Deepest directory nesting entered below the root.
    pub max_depth: usize,
    /// Most directories entered, counting each path through a directory
    /// symlink; bounds the walk of a tree full of aliases.
    pub max_dirs: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_total_bytes: 4 << 30,
            max_file_size: 1 << 30,
            max_depth: 16,
            max_dirs: 10_000,
        }
    }
}

/// What one load or reload found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names in the store (served files plus denied names).
    pub files: usize,
    /// Bytes held by the distinct file versions of the snapshot.
    pub bytes: u64,
    /// Versions copied into new memfds by this scan.
    pub copied: usize,
    /// Versions taken unchanged from the previous snapshot.
    pub reused: usize,
    /// Names that map to "access denied".
    pub denied: usize,
    /// Files left out because the store was full.
    pub skipped_too_many: usize,
    /// Files denied for exceeding the per-file size limit.
    pub skipped_too_large: usize,
    /// Files denied because the total byte budget was spent.
    pub skipped_over_budget: usize,
    /// Directories not entered because they are nested too deep.
    pub skipped_too_deep: usize,
    /// Directories not entered because the directory limit was reached.
    pub skipped_dirs: usize,
    /// Entries whose name is not UTF-8.
    pub skipped_non_utf8: usize,
    /// FIFOs, sockets, devices.
    pub skipped_special: usize,
    /// Directory symlinks leading back into their own ancestry.
    pub loops: usize,
    /// Entries that could not be listed, resolved or read.
    pub errors: usize,
}

/// All regular files under a TFTP root, loaded into sealed memory and keyed
/// by normalised relative path. See the [module docs](super) for the design.
pub struct FileStore {
    /// The root as configured; re-resolved on every reload.
    root: PathBuf,
    options: StoreOptions,
    current: ArcSwap<Snapshot>,
    /// Serialises reloads (signal, control API, watcher) so an older scan
    /// never replaces a newer one.
    reload_lock: Mutex<()>,
}

impl FileStore {
    /// Loads every file under `root`.
    pub fn open(root: impl Into<PathBuf>, options: StoreOptions) -> Result<Self, StoreError> {
        let store = Self {
            root: root.into(),
            options,
            current: ArcSwap::from_pointee(Snapshot::default()),
            reload_lock: Mutex::new(()),
        };
        store.reload()?;
        Ok(store)
    }

    /// Rescans the root and atomically replaces the map. Files whose source
    /// identity (device, inode, size, mtime, ctime) is unchanged keep their
    /// loaded version; only new or changed files are copied, as are files
    /// that had changed within 2 s of the previous scan (their timestamps
    /// may not have moved since). Lookups never wait for a reload, and
    /// transfers holding an old version keep it.
    ///
    /// On error (root gone or unreadable) the previous map stays in place.
    pub fn reload(&self) -> Result<LoadReport, StoreError> {
        let _serial = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let root = RootDir::open(&self.root).map_err(|source| StoreError::Root {
            path: self.root.clone(),
            source,
        })?;
        let previous = self.current.load_full();
        let next = Snapshot::scan(&root, &self.options, &previous);
        let report = next.report;
        self.current.store(Arc::new(next));
        tracing::info!(
            root = %root.path().display(),
            files = report.files,
            bytes = report.bytes,
            copied = report.copied,
            reused = report.reused,
            denied = report.denied,
            "boot-file store loaded"
        );
        Ok(report)
    }

    /// Looks up one normalised path. Takes no lock and touches no disk.
    pub fn lookup(&self, path: &str) -> Resolved {
        let snapshot = self.current.load();
        match snapshot.entries.get(path) {
            Some(Entry::File(file)) => Resolved::File(Arc::clone(file) as _),
            Some(Entry::Denied) => Resolved::Denied,
            None if snapshot
                .denied_dirs
                .iter()
                .any(|dir| path.starts_with(&**dir)) =>
            {
                Resolved::Denied
            }
            None => Resolved::NotFound,
        }
    }

    /// The current version of a served file, if any.
    pub fn file(&self, path: &str) -> Option<Arc<BootFile>> {
        match self.current.load().entries.get(path) {
            Some(Entry::File(file)) => Some(Arc::clone(file)),
            _ => None,
        }
    }

    /// What the scan behind the current map found.
    pub fn report(&self) -> LoadReport {
        self.current.load().report
    }

    /// The root as configured.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits applied by every scan.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Canonical directories of the current map (watched by the watcher).
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        self.current.load().dirs.clone()
    }
}

/// Shards share the store as `Arc<FileStore>`, which is a [`Resolver`] too.
impl Resolver for FileStore {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        self.lookup(request.path)
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.root)
            .field("options", &self.options)
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}
