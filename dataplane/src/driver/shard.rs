//! Shard threads: spawning, pinning, stopping, joining.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::{Backend, BackendChoice, select_backend};
use super::ephemeral::EphemeralSpec;
use super::service::{Service, ShardContext};
use super::socket::{SocketSpec, gso_supported, local_v4, open_spec};
use super::tx::Tx;
use super::uring::UringConfig;
use super::{DriverError, portable, uring};

/// Longest a shard sleeps without a deadline, so a service's
/// [`Service::should_stop`] is seen even when nothing happens.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// How to run a shard group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Number of shard threads (at least 1).
    pub shards: usize,
    /// Which backend to use.
    pub backend: BackendChoice,
    /// The listening sockets; each shard gets one per spec, in this order.
    pub sockets: Vec<SocketSpec>,
    /// Pin shard `i` to the `i % n`-th CPU of the process's affinity mask.
    pub pin_threads: bool,
    /// io_uring tunables.
    pub uring: UringConfig,
    /// Behave as if io_uring were refused (ENOSYS), to exercise the fallback.
    pub simulate_uring_unavailable: bool,
    /// Sockets a service may open while running ([`Tx::open_socket`]).
    pub ephemeral: EphemeralSpec,
}

impl DriverConfig {
    /// `shards` pinned shards over `sockets`, backend chosen automatically.
    pub fn new(shards: usize, sockets: Vec<SocketSpec>) -> Self {
        Self {
            shards,
            backend: BackendChoice::Auto,
            sockets,
            pin_threads: true,
            uring: UringConfig::default(),
            simulate_uring_unavailable: false,
            ephemeral: EphemeralSpec::default(),
        }
    }
}

/// Counters of one shard, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStats {
    /// Datagrams handed to the service.
    pub rx_datagrams: u64,
    /// Datagrams dropped: truncated, or without a readable source address.
    pub rx_dropped: u64,
    /// Receive errors other than buffer exhaustion.
    pub recv_errors: u64,
    /// Multishot receives ended because every buffer was in use (ENOBUFS).
    pub recv_no_buffers: u64,
    /// Multishot receives re-armed after ending.
    pub recv_rearms: u64,
    /// Datagrams the kernel accepted for sending.
    pub tx_datagrams: u64,
    /// Send calls that failed.
    pub tx_errors: u64,
    /// Send calls that carried `UDP_SEGMENT` (one per GSO batch).
    pub gso_sends: u64,
}

/// What a shard hands back when it stops.
#[derive(Debug)]
pub struct ShardExit<S> {
    /// Index of the shard.
    pub shard: usize,
    /// The service, with whatever state it ended in.
    pub service: S,
    /// The shard's counters.
    pub stats: ShardStats,
}

/// A running group of shards.
#[derive(Debug)]
pub struct ShardGroup<S> {
    backend: Backend,
    gso: bool,
    stop: Arc<StopSignal>,
    local_addrs: Vec<Vec<SocketAddrV4>>,
    handles: Vec<JoinHandle<Result<ShardExit<S>, DriverError>>>,
}

/// Stops a shard group from anywhere (a signal handler thread, a control
/// socket).
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<StopSignal>);

impl StopHandle {
    /// Tells every shard to finish its sends and stop.
    pub fn stop(&self) {
        self.0.raise();
    }
}

impl<S> ShardGroup<S> {
    /// The backend the shards run.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether windows go out with UDP GSO.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Bound addresses of shard `shard`'s sockets, in spec order.
    pub fn local_addrs(&self, shard: usize) -> &[SocketAddrV4] {
        self.local_addrs.get(shard).map_or(&[], Vec::as_slice)
    }

    /// A handle that stops the group.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Tells every shard to finish its sends and stop.
    pub fn stop(&self) {
        self.stop.raise();
    }

    /// Waits for every shard to stop (after [`ShardGroup::stop`], or when
    /// each service says [`Service::should_stop`]). Returns the shards in
    /// index order, or the first error after joining all of them.
    pub fn join(mut self) -> Result<Vec<ShardExit<S>>, DriverError> {
        let mut exits = Vec::with_capacity(self.handles.len());
        let mut first_error = None;
        for (shard, handle) in std::mem::take(&mut self.handles).into_iter().enumerate() {
            match handle.join() {
                Ok(Ok(exit)) => exits.push(exit),
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(_) => {
                    first_error.get_or_insert(DriverError::Panicked(shard));
                }
            }
        }
        first_error.map_or(Ok(exits), Err)
    }
}

impl<S> Drop for ShardGroup<S> {
    fn drop(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        self.stop.raise();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Opens the sockets, picks the backend and starts `config.shards` shard
/// threads, each running the service `make_service` builds for it.
///
/// `make_service` runs on the shard's own thread after pinning, so the
/// service's memory is allocated near its CPU.
pub fn spawn_shards<S, F>(
    config: DriverConfig,
    make_service: F,
) -> Result<ShardGroup<S>, DriverError>
where
    S: Service + Send + 'static,
    F: Fn(&ShardContext) -> S + Send + Sync + 'static,
{
    if config.shards == 0 {
        return Err(DriverError::Config("zero shards"));
    }
    if config.sockets.is_empty() {
        return Err(DriverError::Config("no sockets"));
    }
    let simulate = config.simulate_uring_unavailable;
    let backend = select_backend(config.backend, || {
        if simulate {
            Err(io::Error::from_raw_os_error(libc::ENOSYS))
        } else {
            uring::probe()
        }
    })?;
    let gso = gso_supported();
    let shards = config.shards;
    let mut sockets: Vec<Vec<UdpSocket>> = (0..shards).map(|_| Vec::new()).collect();
    for spec in &config.sockets {
        for (shard, socket) in open_spec(spec, shards)?.into_iter().enumerate() {
            sockets[shard].push(socket);
        }
    }
    let mut local_addrs = Vec::with_capacity(shards);
    for (shard_sockets, spec) in sockets.iter().zip(std::iter::repeat(&config.sockets)) {
        let addrs = shard_sockets
            .iter()
            .zip(spec)
            .map(|(socket, spec)| local_v4(socket, spec.addr))
            .collect::<Result<Vec<_>, _>>()?;
        local_addrs.push(addrs);
    }
    let stop = Arc::new(StopSignal::new().map_err(|source| DriverError::Sys {
        op: "eventfd",
        source,
    })?);
    let cpus = if config.pin_threads {
        allowed_cpus()
    } else {
        Vec::new()
    };
    let make_service = Arc::new(make_service);
    let mut group = ShardGroup {
        backend,
        gso,
        stop: stop.clone(),
        local_addrs: local_addrs.clone(),
        handles: Vec::with_capacity(shards),
    };
    for (shard, (shard_sockets, local)) in sockets.into_iter().zip(local_addrs).enumerate() {
        let cpu = (!cpus.is_empty()).then(|| cpus[shard % cpus.len()]);
        let stop = stop.clone();
        let make_service = make_service.clone();
        let uring_config = config.uring;
        let ephemeral = config.ephemeral;
        let spawned = std::thread::Builder::new()
            .name(format!("bootwave-shard-{shard}"))
            .spawn(move || {
                if let Some(cpu) = cpu
                    && let Err(err) = pin_to_cpu(cpu)
                {
                    tracing::warn!(shard, cpu, error = %err, "could not pin shard thread");
                }
                let context = ShardContext {
                    shard,
                    shards,
                    local_addrs: local.clone(),
                };
                let mut service = make_service(&context);
                let tx = Tx::with_ephemeral(shard_sockets.len(), ephemeral);
                let stats = match backend {
                    Backend::Uring => uring::run(
                        &shard_sockets,
                        &local,
                        &mut service,
                        &stop,
                        &uring_config,
                        (gso, tx),
                    ),
                    Backend::Portable => {
                        portable::run(&shard_sockets, &local, &mut service, &stop, (gso, tx))
                    }
                }?;
                Ok(ShardExit {
                    shard,
                    service,
                    stats,
                })
            });
        match spawned {
            Ok(handle) => group.handles.push(handle),
            Err(source) => {
                drop(group);
                return Err(DriverError::Sys {
                    op: "spawn shard thread",
                    source,
                });
            }
        }
    }
    Ok(group)
}

/// The stop signal: a flag, and an eventfd that every shard polls. The
/// eventfd is written once and never read, so it stays readable for all.
#[derive(Debug)]
pub(crate) struct StopSignal {
    flag: AtomicBool,
    fd: OwnedFd,
}

impl StopSignal {
    fn new() -> io::Result<Self> {
        // Safety: eventfd takes no pointers; the result is checked below.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // Safety: `fd` is a fresh descriptor that nothing else owns.
        #[allow(unsafe_code)]
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            flag: AtomicBool::new(false),
            fd,
        })
    }

    /// The eventfd to poll for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether stop was raised.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    fn raise(&self) {
        self.flag.store(true, Ordering::Release);
        let one: u64 = 1;
        // Safety: writes 8 bytes from a live u64 to our eventfd. A failure
        // (counter overflow) leaves it readable, which is all we need.
        #[allow(unsafe_code)]
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                size_of::<u64>(),
            )
        };
    }
}

/// How long a shard may sleep: until `deadline`, at most [`MAX_WAIT`].
pub(crate) fn wait_for(deadline: Option<Instant>, now: Instant) -> Duration {
    deadline.map_or(MAX_WAIT, |d| d.saturating_duration_since(now).min(MAX_WAIT))
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // Safety: cpu_set_t is plain bits; all-zero is the empty set.
    #[allow(unsafe_code)]
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // Safety: `set` is a live cpu_set_t of the size passed.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| {
            // Safety: `cpu` < CPU_SETSIZE, inside the set's bits.
            #[allow(unsafe_code)]
            unsafe {
                libc::CPU_ISSET(cpu, &set)
            }
        })
        .collect()
}

/// Pins the calling thread to `cpu`.
fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // Safety: cpu_set_t is plain bits; all-zero is the empty set.
    #[allow(unsafe_code)]
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Safety: `cpu` < CPU_SETSIZE, inside the set's bits.
    #[allow(unsafe_code)]
    unsafe {
        libc::CPU_SET(cpu, &mut set)
    };
    // Safety: `set` is a live cpu_set_t of the size passed; 0 is this thread.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_bounded_and_never_negative() {
        let now = Instant::now();
        assert_eq!(wait_for(None, now), MAX_WAIT);
        assert_eq!(
            wait_for(Some(now), now + Duration::from_secs(1)),
            Duration::ZERO
        );
        let soon = now + Duration::from_millis(5);
        assert_eq!(wait_for(Some(soon), now), Duration::from_millis(5));
        assert_eq!(wait_for(Some(now + Duration::from_secs(60)), now), MAX_WAIT);
    }

    #[test]
    fn stop_signal_makes_the_eventfd_readable() {
        let stop = StopSignal::new().unwrap();
        assert!(!stop.is_set());
        stop.raise();
        assert!(stop.is_set());
        let mut pfd = libc::pollfd {
            fd: stop.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Safety: one live pollfd, zero timeout.
        #[allow(unsafe_code)]
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert_eq!(n, 1);
    }

    #[test]
    fn this_thread_can_be_pinned_to_an_allowed_cpu() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        std::thread::spawn(move || pin_to_cpu(cpus[cpus.len() - 1]))
            .join()
            .unwrap()
            .unwrap();
    }
}
