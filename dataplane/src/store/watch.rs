//! Reloading the store when files under the root change (inotify).

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{FileStore, StoreError};

/// Directory events that trigger a reload. `IN_MODIFY` is left out on
/// purpose: writers are followed by `IN_CLOSE_WRITE`, and per-write events
/// would only keep postponing the reload.
const WATCH_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// Reads of the inotify descriptor per wake-up before polling again.
const MAX_READS_PER_WAKE: usize = 64;

/// Timing of the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Longest a reload is postponed by a steady stream of events.
    pub max_delay: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// A running watcher; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct WatchHandle {
    /// eventfd the thread polls next to inotify; written on drop.
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // Safety: writes 8 bytes from a live buffer to an eventfd we own.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if rc < 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "waking the file watcher failed");
            return;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("file watcher thread panicked");
        }
    }
}

impl FileStore {
    /// Starts a watcher thread with default timing; see [`Self::watch_with`].
    pub fn watch(self: &Arc<Self>) -> Result<WatchHandle, StoreError> {
        self.watch_with(WatchOptions::default())
    }

    /// Watches the root and every directory loaded from it, and reloads the
    /// store once events have been quiet for `options.debounce`. When this
    /// returns, the watches are in place; one reload follows right away to
    /// catch changes made since the store was loaded. The thread holds only
    /// a weak reference to the store and ends when the handle is dropped.
    pub fn watch_with(self: &Arc<Self>, options: WatchOptions) -> Result<WatchHandle, StoreError> {
        // Safety: plain syscall with flag arguments.
        #[allow(unsafe_code)]
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        let inotify = new_fd(raw)?;
        // Safety: plain syscall with flag arguments.
        #[allow(unsafe_code)]
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        let wake = Arc::new(new_fd(raw)?);
        let mut watcher = Watcher {
            store: Arc::downgrade(self),
            inotify,
            wake: Arc::clone(&wake),
            watched: HashSet::new(),
            options,
            full_warned: false,
        };
        watcher.rewatch(&self.dirs());
        let thread = std::thread::Builder::new()
            .name("bootwave-store-watch".into())
            .spawn(move || watcher.run())
            .map_err(StoreError::Spawn)?;
        Ok(WatchHandle {
            wake,
            thread: Some(thread),
        })
    }
}

/// The watcher thread's state.
struct Watcher {
    store: Weak<FileStore>,
    inotify: OwnedFd,
    wake: Arc<OwnedFd>,
    /// Watch descriptors returned by the last `rewatch`.
    watched: HashSet<i32>,
    options: WatchOptions,
    /// Whether running out of inotify watches was already reported.
    full_warned: bool,
}

impl Watcher {
    fn run(mut self) {
        // (first event, last event) of the pending batch. Starts pending so
        // that changes made between the load and the watch are picked up.
        let now = Instant::now();
        let mut pending = Some((now, now));
        loop {
            let timeout = pending.map(|p| self.due(p).saturating_duration_since(Instant::now()));
            let (woken, changed) = match self.poll(timeout) {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::error!(%error, "file watcher stopped");
                    return;
                }
            };
            if woken {
                return;
            }
            let now = Instant::now();
            if changed {
                self.drain();
                pending = Some((pending.map_or(now, |(first, _)| first), now));
            }
            let Some(batch) = pending else { continue };
            if now < self.due(batch) {
                continue;
            }
            let Some(store) = self.store.upgrade() else {
                return;
            };
            if let Err(error) = store.reload() {
                tracing::warn!(%error, "reload after file change failed; previous files still served");
            }
            let new_dirs = self.rewatch(&store.dirs());
            // Files created in a directory before it was watched raise no
            // event: scan once more after new watches.
            pending = new_dirs.then_some((now, now));
        }
    }

    /// When a batch of events (first, last) is due for a reload.
    fn due(&self, (first, last): (Instant, Instant)) -> Instant {
        (last + self.options.debounce).min(first + self.options.max_delay)
    }

    /// Waits for the wake eventfd or inotify; `None` waits without limit.
    /// Returns (woken, inotify readable).
    fn poll(&self, timeout: Option<Duration>) -> io::Result<(bool, bool)> {
        let timeout_ms = timeout.map_or(-1, |t| {
            // Round up so a due time is never polled for 0 ms repeatedly.
            i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        });
        let mut fds = [
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Safety: `fds` is a live array of two pollfd and its length is passed.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                return Ok((false, false));
            }
            return Err(error);
        }
        Ok((fds[0].revents != 0, fds[1].revents != 0))
    }

    /// Discards queued events: every kind (overflow included) means the same
    /// thing, "rescan".
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        for _ in 0..MAX_READS_PER_WAKE {
            // Safety: reads into a live buffer of the given length.
            #[allow(unsafe_code)]
            let n =
                unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
        }
    }

    /// Adds a watch on each directory (re-adding an existing watch is a
    /// no-op). Returns whether any directory was not watched before.
    fn rewatch(&mut self, dirs: &[PathBuf]) -> bool {
        let mut watched = HashSet::with_capacity(dirs.len());
        for dir in dirs {
            let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else {
                continue;
            };
            // Safety: `c_dir` is NUL-terminated and outlives the call.
            #[allow(unsafe_code)]
            let wd = unsafe {
                libc::inotify_add_watch(self.inotify.as_raw_fd(), c_dir.as_ptr(), WATCH_MASK)
            };
            if wd >= 0 {
                watched.insert(wd);
                continue;
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ENOSPC) && !self.full_warned {
                self.full_warned = true;
                tracing::warn!(
                    "out of inotify watches (fs.inotify.max_user_watches); some directories are not watched"
                );
            } else if error.kind() != io::ErrorKind::NotFound {
                tracing::debug!(dir = %dir.display(), %error, "inotify_add_watch failed");
            }
        }
        let new = !watched.is_subset(&self.watched);
        self.watched = watched;
        new
    }
}

/// Takes ownership of a descriptor returned by a syscall, or its error.
fn new_fd(raw: libc::c_int) -> Result<OwnedFd, StoreError> {
    if raw < 0 {
        return Err(StoreError::Watch(io::Error::last_os_error()));
    }
    // Safety: `raw` was just returned by the kernel and nothing else owns it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok(fd)
}
