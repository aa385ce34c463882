//! One scan of the TFTP root into an immutable [`Snapshot`].

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bootwave_protocol::tftp::FileVersion;

use super::root::RootDir;
use super::{BootFile, LoadReport, StoreOptions};

/// Coarsest file timestamp granularity we allow for (FAT: 2 s). A file
/// changed less than this before a scan began could change again without
/// its timestamps moving, so its version is not offered for reuse.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What a name in the store maps to.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// A loaded file version.
    File(Arc<BootFile>),
    /// The name exists but must not be served.
    Denied,
}

/// Identity of one version of a source file. When a file's key is unchanged
/// between scans, its bytes are taken to be unchanged and the loaded
/// [`BootFile`] is reused instead of copied again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SourceKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    /// Changes on every write and metadata change, and cannot be set from
    /// user space, unlike the mtime.
    ctime: (i64, i64),
}

impl SourceKey {
    /// Whether the last change lies within [`RACY_WINDOW`] of `scan_start`
    /// (or after it, or the clock is off): then a later change in the same
    /// timestamp tick would go unnoticed, as git's "racily clean" entries.
    fn is_racy(&self, scan_start: SystemTime) -> bool {
        let (Ok(secs), Ok(nanos)) = (u64::try_from(self.ctime.0), u32::try_from(self.ctime.1))
        else {
            return true;
        };
        let changed = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        changed + RACY_WINDOW > scan_start
    }

    /// The version HTTP reports: the mtime and a hash of the whole key.
    fn version(&self) -> FileVersion {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(self, &mut hasher);
        let (secs, nanos) = self.mtime;
        let modified = match (u64::try_from(secs), u32::try_from(nanos)) {
            (Ok(secs), Ok(nanos)) => SystemTime::UNIX_EPOCH + Duration::new(secs, nanos),
            _ => SystemTime::UNIX_EPOCH,
        };
        FileVersion {
            modified,
            tag: std::hash::Hasher::finish(&hasher),
        }
    }

    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// One immutable view of the root, swapped in whole by a reload.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    /// Normalised relative path → entry.
    pub(super) entries: HashMap<Box<str>, Entry>,
    /// `name/` prefixes of directory symlinks that leave the root: every path
    /// below them is denied rather than reported missing.
    pub(super) denied_dirs: Vec<Box<str>>,
    /// Loaded versions by source identity that the next scan may reuse
    /// (racily changed files are left out and copied again).
    pub(super) by_source: HashMap<SourceKey, Arc<BootFile>>,
    /// Canonical directories visited (the watcher watches these).
    pub(super) dirs: Vec<PathBuf>,
    /// What the scan found.
    pub(super) report: LoadReport,
}

impl Snapshot {
    /// Scans `root`, reusing versions from `previous` whose source is
    /// unchanged.
    pub(super) fn scan(root: &RootDir, options: &StoreOptions, previous: &Self) -> Self {
        let mut scan = Scan {
            root,
            options,
            previous: &previous.by_source,
            started: SystemTime::now(),
            loaded: HashMap::new(),
            next: Self::default(),
            total_bytes: 0,
            ancestors: Vec::new(),
        };
        scan.walk_dir(Path::new(""), "", 0);
        if scan.next.report.skipped_too_many > 0 {
            tracing::warn!(
                limit = options.max_files,
                skipped = scan.next.report.skipped_too_many,
                "TFTP root holds more files than the store accepts; the rest are not served"
            );
        }
        scan.next.report.files = scan.next.entries.len();
        scan.next.report.bytes = scan.total_bytes;
        scan.next
    }
}

/// The state of a scan in progress.
struct Scan<'a> {
    root: &'a RootDir,
    options: &'a StoreOptions,
    previous: &'a HashMap<SourceKey, Arc<BootFile>>,
    /// When the scan began (for the racy-change check).
    started: SystemTime,
    /// Every version loaded by this scan, so that aliases share one.
    loaded: HashMap<SourceKey, Arc<BootFile>>,
    next: Snapshot,
    /// Bytes of distinct versions loaded so far.
    total_bytes: u64,
    /// (dev, ino) of the directories on the current path: a directory met
    /// again below itself is a loop and is not entered.
    ancestors: Vec<(u64, u64)>,
}

impl Scan<'_> {
    /// Loads the directory at `rel` (relative to the canonical root, free of
    /// symlinks) whose entries are named `prefix` + name in the store.
    fn walk_dir(&mut self, rel: &Path, prefix: &str, depth: usize) {
        let abs = self.root.path().join(rel);
        let id = match fs::metadata(&abs) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(error) => return self.failed(&abs, &error),
        };
        if self.ancestors.contains(&id) {
            tracing::warn!(dir = %abs.display(), name = prefix, "directory loop in the TFTP root; not followed");
            self.next.report.loops += 1;
            return;
        }
        if depth > self.options.max_depth {
            tracing::warn!(dir = %abs.display(), limit = self.options.max_depth, "TFTP root nested too deep; not entered");
            self.next.report.skipped_too_deep += 1;
            return;
        }
        if self.next.dirs.len() >= self.options.max_dirs {
            tracing::warn!(dir = %abs.display(), limit = self.options.max_dirs, "TFTP root holds too many directories; not entered");
            self.next.report.skipped_dirs += 1;
            return;
        }
        let listing = match fs::read_dir(&abs) {
            Ok(listing) => listing,
            Err(error) => return self.failed(&abs, &error),
        };
        self.next.dirs.push(abs.clone());
        self.ancestors.push(id);
        for dirent in listing {
            let dirent = match dirent {
                Ok(dirent) => dirent,
                Err(error) => {
                    self.failed(&abs, &error);
                    break;
                }
            };
            let Ok(name) = dirent.file_name().into_string() else {
                tracing::warn!(path = %dirent.path().display(), "file name is not UTF-8; not served");
                self.next.report.skipped_non_utf8 += 1;
                continue;
            };
            let key = format!("{prefix}{name}");
            let child = rel.join(&name);
            match dirent.file_type() {
                Ok(t) if t.is_dir() => self.walk_dir(&child, &format!("{key}/"), depth + 1),
                Ok(t) if t.is_file() => self.add_file(key, &child),
                Ok(t) if t.is_symlink() => self.add_symlink(key, &child, depth),
                Ok(_) => self.special(&dirent.path()),
                Err(error) => self.failed(&dirent.path(), &error),
            }
        }
        self.ancestors.pop();
    }

    /// Follows the symlink at `rel` if its canonical target lies inside the
    /// root; otherwise its name is denied.
    fn add_symlink(&mut self, key: String, rel: &Path, depth: usize) {
        let abs = self.root.path().join(rel);
        let target = match fs::canonicalize(&abs) {
            Ok(target) => target,
            Err(error) => return self.failed(&abs, &error),
        };
        let is_dir = target.is_dir();
        let Ok(inside) = target.strip_prefix(self.root.path()) else {
            tracing::warn!(link = %abs.display(), target = %target.display(), "symlink leaves the TFTP root; denied");
            if is_dir {
                self.next.denied_dirs.push(format!("{key}/").into());
            }
            return self.deny(key);
        };
        let inside = inside.to_path_buf();
        if is_dir {
            self.walk_dir(&inside, &format!("{key}/"), depth + 1);
        } else {
            self.add_file(key, &inside);
        }
    }

    /// Loads (or reuses) the regular file at `rel` under the name `key`.
    fn add_file(&mut self, key: String, rel: &Path) {
        if self.next.entries.len() >= self.options.max_files {
            self.next.report.skipped_too_many += 1;
            return;
        }
        let abs = self.root.path().join(rel);
        let file = match self.root.open_file(rel) {
            Ok(file) => file,
            Err(error) if is_denial(&error) => {
                tracing::warn!(path = %abs.display(), %error, "boot file cannot be opened; denied");
                return self.deny(key);
            }
            Err(error) => return self.failed(&abs, &error),
        };
        let meta = match file.metadata() {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return self.special(&abs),
            Err(error) => return self.failed(&abs, &error),
        };
        let source = SourceKey::of(&meta);
        if let Some(version) = self.loaded.get(&source) {
            let version = Arc::clone(version);
            self.next.entries.insert(key.into(), Entry::File(version));
            return;
        }
        if meta.size() > self.options.max_file_size {
            tracing::warn!(path = %abs.display(), size = meta.size(), limit = self.options.max_file_size, "boot file too large; denied");
            self.next.report.skipped_too_large += 1;
            return self.deny(key);
        }
        let budget = self
            .options
            .max_total_bytes
            .saturating_sub(self.total_bytes);
        if meta.size() > budget {
            tracing::warn!(path = %abs.display(), size = meta.size(), limit = self.options.max_total_bytes, "boot files exceed the total size limit; denied");
            self.next.report.skipped_over_budget += 1;
            return self.deny(key);
        }
        let version = match self.previous.get(&source) {
            Some(version) => {
                self.next.report.reused += 1;
                Arc::clone(version)
            }
            None => {
                match BootFile::from_reader(&key, &file, self.options.max_file_size.min(budget)) {
                    Ok(mut version) => {
                        self.next.report.copied += 1;
                        version.set_version(source.version());
                        Arc::new(version)
                    }
                    Err(error) => {
                        tracing::warn!(path = %abs.display(), %error, "boot file not loaded; denied");
                        self.next.report.errors += 1;
                        return self.deny(key);
                    }
                }
            }
        };
        // A length always fits in u64.
        self.total_bytes += version.len() as u64;
        if !source.is_racy(self.started) {
            self.next.by_source.insert(source, Arc::clone(&version));
        }
        self.loaded.insert(source, Arc::clone(&version));
        self.next.entries.insert(key.into(), Entry::File(version));
    }

    fn deny(&mut self, key: String) {
        if self.next.entries.len() >= self.options.max_files {
            self.next.report.skipped_too_many += 1;
            return;
        }
        self.next.report.denied += 1;
        self.next.entries.insert(key.into(), Entry::Denied);
    }

    fn special(&mut self, path: &Path) {
        tracing::debug!(path = %path.display(), "not a regular file or directory; skipped");
        self.next.report.skipped_special += 1;
    }

    fn failed(&mut self, path: &Path, error: &io::Error) {
        tracing::warn!(path = %path.display(), %error, "TFTP root entry skipped");
        self.next.report.errors += 1;
    }
}

/// Errors meaning "exists, but may not be read": permissions, or `openat2`
/// refusing a symlink or an escape that appeared after the scan's checks.
fn is_denial(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
        || matches!(error.raw_os_error(), Some(libc::ELOOP | libc::EXDEV))
}
