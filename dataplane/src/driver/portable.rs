//! The portable backend: `ppoll`, `recvmmsg`, `sendmmsg`.
//!
//! For kernels or sandboxes without io_uring. Buffers are lent to the kernel
//! only for the duration of a system call.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::DriverError;
use super::ephemeral::{is_icmp_error, take_unreachable};
use super::msg::{Aligned, PKTINFO_SPACE, SOCKADDR_IN_LEN, SendPlan, empty_msghdr, recv_meta};
use super::service::Service;
use super::shard::{ShardStats, StopSignal, wait_for};
use super::tx::{Transmit, Tx};

/// Datagrams per `recvmmsg` and transmits per `sendmmsg`.
const BATCH: usize = 32;
/// Bytes per receive buffer.
const RECV_SIZE: usize = 2048;
/// `recvmmsg` calls per readable socket per wake, so one busy socket cannot
/// starve the others or the timers.
const RECV_ROUNDS: usize = 8;
/// Readiness events taken per `epoll_wait`.
const EPOLL_EVENTS: usize = 256;
/// Waits for a full send buffer before the rest of a batch is dropped.
const SEND_RETRIES: usize = 3;
/// How long one such wait lasts.
const SEND_WAIT_MS: libc::c_int = 100;

/// Runs the shard loop until it is told to stop; returns its counters.
pub(crate) fn run<S: Service>(
    sockets: &[UdpSocket],
    local: &[SocketAddrV4],
    service: &mut S,
    stop: &StopSignal,
    (gso, mut tx): (bool, Tx),
) -> Result<ShardStats, DriverError> {
    let watched = service.watched_fds();
    let mut shard = PortableShard::new(sockets, local, &watched, stop.fd(), gso)?;
    loop {
        shard.extra.register_opened(&mut tx)?;
        shard.send_all(&mut tx);
        shard.extra.unregister_closed(&mut tx);
        let stop_ready = shard.wait(wait_for(service.poll_timeout(), Instant::now()))?;
        let now = Instant::now();
        for sock in 0..shard.fds.len() {
            // POLLERR too: reading clears a pending socket error.
            if shard.pollfds[sock].revents & (libc::POLLIN | libc::POLLERR) != 0 {
                shard.recv_socket(sock, service, &mut tx, now);
            }
        }
        for index in 0..watched.len() {
            let pfd = &shard.pollfds[shard.fds.len() + index];
            if pfd.revents & (libc::POLLIN | libc::POLLERR) != 0 {
                service.on_readable(now, index, &mut tx);
            }
        }
        if shard.pollfds[shard.fds.len() + watched.len()].revents & libc::POLLIN != 0 {
            shard.recv_extra(service, &mut tx, now);
        }
        if service
            .poll_timeout()
            .is_some_and(|deadline| deadline <= now)
        {
            service.on_timeout(now, &mut tx);
        }
        service.flush(now, &mut tx);
        if stop_ready || stop.is_set() || service.should_stop() {
            break;
        }
    }
    shard.send_all(&mut tx);
    Ok(shard.stats)
}

/// The run-time sockets of a portable shard, in one epoll set whose
/// descriptor sits in the shard's poll list.
struct ExtraSockets {
    epoll: OwnedFd,
    /// Index of the first run-time socket.
    base: usize,
    /// By index minus `base`: descriptor and address.
    sockets: Vec<Option<(RawFd, SocketAddrV4)>>,
    events: Vec<libc::epoll_event>,
    ready: Vec<usize>,
}

impl ExtraSockets {
    fn new(base: usize) -> Result<Self, DriverError> {
        // Safety: takes no pointers; the result is checked.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(DriverError::Sys {
                op: "epoll_create1",
                source: io::Error::last_os_error(),
            });
        }
        // Safety: a fresh descriptor nothing else owns.
        #[allow(unsafe_code)]
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            epoll,
            base,
            sockets: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_EVENTS],
            ready: Vec::with_capacity(EPOLL_EVENTS),
        })
    }

    fn get(&self, sock: usize) -> Option<(RawFd, SocketAddrV4)> {
        *self.sockets.get(sock.checked_sub(self.base)?)?
    }

    /// Adds every socket the service opened to the epoll set.
    fn register_opened(&mut self, tx: &mut Tx) -> Result<(), DriverError> {
        while let Some(sock) = tx.ephemeral().take_opened() {
            let Some((fd, local)) = tx.ephemeral().socket(sock) else {
                continue;
            };
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: sock as u64,
            };
            // Safety: `event` is live for the call; `fd` is an open socket
            // owned by `tx` until released below.
            #[allow(unsafe_code)]
            let rc = unsafe {
                libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
            };
            if rc < 0 {
                return Err(DriverError::Sys {
                    op: "epoll_ctl",
                    source: io::Error::last_os_error(),
                });
            }
            let index = sock - self.base;
            if self.sockets.len() <= index {
                self.sockets.resize(index + 1, None);
            }
            self.sockets[index] = Some((fd, local));
        }
        Ok(())
    }

    /// Removes every socket the service closed and releases it (sends
    /// queued before the close went out in `send_all`).
    fn unregister_closed(&mut self, tx: &mut Tx) {
        while let Some(sock) = tx.ephemeral().take_closing() {
            if let Some((fd, _)) = self.get(sock) {
                // Safety: `fd` is still open (released only below); a null
                // event is allowed for EPOLL_CTL_DEL.
                #[allow(unsafe_code)]
                unsafe {
                    libc::epoll_ctl(
                        self.epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        fd,
                        std::ptr::null_mut(),
                    )
                };
                self.sockets[sock - self.base] = None;
            }
            tx.ephemeral().release(sock);
        }
    }

    /// The run-time sockets with something to read, into `self.ready`.
    fn poll_ready(&mut self) {
        self.ready.clear();
        // Safety: `events` is a live array of the length passed; zero
        // timeout.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                0,
            )
        };
        for event in self.events.iter().take(usize::try_from(n).unwrap_or(0)) {
            self.ready.push(event.u64 as usize);
        }
    }
}

/// One shard's descriptors and batch storage.
struct PortableShard {
    fds: Vec<RawFd>,
    extra: ExtraSockets,
    local: Vec<SocketAddrV4>,
    pollfds: Vec<libc::pollfd>,
    recv: RecvBatch,
    plans: Vec<SendPlan>,
    transmits: Vec<Transmit>,
    mmsg: Vec<libc::mmsghdr>,
    op_info: Vec<(u32, bool)>,
    gso: bool,
    stats: ShardStats,
}

impl PortableShard {
    /// The poll set is the sockets, then `watched`, then the epoll set of
    /// the run-time sockets, then the stop eventfd.
    fn new(
        sockets: &[UdpSocket],
        local: &[SocketAddrV4],
        watched: &[RawFd],
        stop_fd: RawFd,
        gso: bool,
    ) -> Result<Self, DriverError> {
        let fds: Vec<RawFd> = sockets.iter().map(AsRawFd::as_raw_fd).collect();
        let extra = ExtraSockets::new(fds.len())?;
        let pollfds = fds
            .iter()
            .chain(watched)
            .chain([extra.epoll.as_raw_fd(), stop_fd].iter())
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(Self {
            fds,
            extra,
            local: local.to_vec(),
            pollfds,
            recv: RecvBatch::new(),
            plans: (0..BATCH).map(|_| SendPlan::with_capacity(64)).collect(),
            transmits: Vec::with_capacity(BATCH),
            mmsg: Vec::with_capacity(4 * BATCH),
            op_info: Vec::with_capacity(4 * BATCH),
            gso,
            stats: ShardStats::default(),
        })
    }

    /// Receives from every run-time socket that is readable.
    fn recv_extra<S: Service>(&mut self, service: &mut S, tx: &mut Tx, now: Instant) {
        self.extra.poll_ready();
        for i in 0..self.extra.ready.len() {
            let sock = self.extra.ready[i];
            self.recv_socket(sock, service, tx, now);
        }
    }

    /// Descriptor and address of socket `sock`, fixed or run-time.
    fn socket(&self, sock: usize) -> Option<(RawFd, SocketAddrV4)> {
        match (self.fds.get(sock), self.local.get(sock)) {
            (Some(&fd), Some(&local)) => Some((fd, local)),
            _ => self.extra.get(sock),
        }
    }

    /// Sleeps until a socket is readable, stop is raised, or `timeout`
    /// passes. Returns whether stop is raised.
    fn wait(&mut self, timeout: Duration) -> Result<bool, DriverError> {
        for pfd in &mut self.pollfds {
            pfd.revents = 0;
        }
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // Safety: `pollfds` is a live array of the length passed; `ts` lives
        // across the call; a null signal mask keeps the current one.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(DriverError::Sys {
                    op: "ppoll",
                    source: err,
                });
            }
        }
        let stop = self
            .pollfds
            .last()
            .is_some_and(|pfd| pfd.revents & libc::POLLIN != 0);
        Ok(stop)
    }

    /// Receives up to [`RECV_ROUNDS`] batches from socket `sock`.
    fn recv_socket<S: Service>(&mut self, sock: usize, service: &mut S, tx: &mut Tx, now: Instant) {
        let Some((fd, local)) = self.socket(sock) else {
            return;
        };
        let runtime = sock >= self.fds.len();
        for round in 0..RECV_ROUNDS {
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(err) => {
                    let errno = err.raw_os_error().unwrap_or(0);
                    // An ICMP error of a run-time socket, or a readiness
                    // with nothing to read (its error queue: the pending
                    // error went to a send): read the queue, or epoll
                    // would report it again and again.
                    if runtime && (is_icmp_error(errno) || (errno == libc::EAGAIN && round == 0)) {
                        self.report_unreachable(sock, fd, local, service, tx, now);
                        if is_icmp_error(errno) {
                            continue;
                        }
                    } else if errno != libc::EAGAIN && errno != libc::EINTR {
                        tracing::debug!(sock, error = %err, "recvmmsg failed");
                        self.stats.recv_errors += 1;
                    }
                    return;
                }
            };
            for i in 0..n {
                let (name, control, data, truncated) = self.recv.message(i);
                match recv_meta(name, control, local) {
                    Some(meta) if !truncated => {
                        self.stats.rx_datagrams += 1;
                        service.on_datagram(now, sock, &meta, data, tx);
                    }
                    _ => self.stats.rx_dropped += 1,
                }
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// Reads the error queue of run-time socket `sock` and tells the
    /// service which destinations ICMP reported unreachable.
    fn report_unreachable<S: Service>(
        &mut self,
        sock: usize,
        fd: RawFd,
        local: SocketAddrV4,
        service: &mut S,
        tx: &mut Tx,
        now: Instant,
    ) {
        let mut dests = Vec::new();
        take_unreachable(fd, &mut dests);
        for dest in dests {
            service.on_unreachable(now, sock, local, dest, tx);
        }
    }

    /// Sends everything queued, in batches of transmits for one socket.
    fn send_all(&mut self, tx: &mut Tx) {
        while let Some(first) = tx.pop() {
            let sock = first.sock;
            self.transmits.push(first);
            while self.transmits.len() < BATCH {
                match tx.pop() {
                    Some(next) if next.sock == sock => self.transmits.push(next),
                    Some(next) => {
                        tx.unpop(next);
                        break;
                    }
                    None => break,
                }
            }
            self.mmsg.clear();
            self.op_info.clear();
            for (plan, transmit) in self.plans.iter_mut().zip(&self.transmits) {
                plan.build(transmit, self.gso);
                for op in plan.ops() {
                    self.mmsg.push(libc::mmsghdr {
                        msg_hdr: op.hdr,
                        msg_len: 0,
                    });
                    self.op_info.push((op.datagrams, op.gso));
                }
            }
            if let Some((fd, _)) = self.socket(sock) {
                self.send_batch(fd);
            }
            for transmit in self.transmits.drain(..) {
                tx.recycle(transmit);
            }
        }
    }

    /// `sendmmsg` over `self.mmsg`, stepping over failed messages and
    /// waiting (bounded) while the socket buffer is full.
    fn send_batch(&mut self, fd: RawFd) {
        let mut at = 0;
        let mut retries = 0;
        let mut calls = 0;
        while at < self.mmsg.len() && calls < 2 * self.mmsg.len() + SEND_RETRIES {
            calls += 1;
            let rest = &mut self.mmsg[at..];
            // Safety: every header points into `self.plans` and the batch's
            // transmits, which are neither moved nor changed during the call.
            #[allow(unsafe_code)]
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                for &(datagrams, gso) in &self.op_info[at..at + rc as usize] {
                    self.stats.tx_datagrams += u64::from(datagrams);
                    self.stats.gso_sends += u64::from(gso);
                }
                at += rc as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if retries < SEND_RETRIES => {
                    retries += 1;
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // Safety: one live pollfd.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::poll(&mut pfd, 1, SEND_WAIT_MS)
                    };
                }
                Some(libc::EAGAIN) => break,
                errno => {
                    self.stats.tx_errors += 1;
                    if errno == Some(libc::EIO) && self.op_info[at].1 && self.gso {
                        tracing::warn!(
                            "UDP GSO send failed with EIO, sending windows datagram by datagram"
                        );
                        self.gso = false;
                    } else {
                        tracing::debug!(error = %err, "sendmmsg failed");
                    }
                    at += 1;
                }
            }
        }
        self.stats.tx_errors += (self.mmsg.len() - at) as u64;
    }
}

/// Storage for one `recvmmsg` call; the headers point into the boxes, whose
/// heap addresses never change.
struct RecvBatch {
    bufs: Box<[u8]>,
    names: Box<[Aligned<SOCKADDR_IN_LEN>]>,
    controls: Box<[Aligned<PKTINFO_SPACE>]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl RecvBatch {
    fn new() -> Self {
        let mut bufs = vec![0u8; BATCH * RECV_SIZE].into_boxed_slice();
        let mut names = vec![Aligned::default(); BATCH].into_boxed_slice();
        let mut controls = vec![Aligned::default(); BATCH].into_boxed_slice();
        let mut iovs: Box<[libc::iovec]> = bufs
            .chunks_mut(RECV_SIZE)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            })
            .collect();
        let hdrs = (0..BATCH)
            .map(|i| {
                let mut hdr = empty_msghdr();
                hdr.msg_name = names[i].0.as_mut_ptr().cast();
                hdr.msg_iov = &mut iovs[i];
                hdr.msg_iovlen = 1;
                hdr.msg_control = controls[i].0.as_mut_ptr().cast();
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        Self {
            bufs,
            names,
            controls,
            iovs,
            hdrs,
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for hdr in self.hdrs.iter_mut() {
            hdr.msg_hdr.msg_namelen = SOCKADDR_IN_LEN as libc::socklen_t;
            hdr.msg_hdr.msg_controllen = PKTINFO_SPACE;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        debug_assert_eq!(self.iovs.len(), BATCH);
        // Safety: each header points at its own name, control and iovec
        // storage in this batch's boxes, with the lengths just reset; the
        // iovecs cover `bufs`. The kernel writes only within those lengths.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// Name, control data, payload and truncation flag of message `i`.
    fn message(&self, i: usize) -> (&[u8], &[u8], &[u8], bool) {
        let hdr = &self.hdrs[i];
        let name_len = (hdr.msg_hdr.msg_namelen as usize).min(SOCKADDR_IN_LEN);
        let control_len = hdr.msg_hdr.msg_controllen.min(PKTINFO_SPACE);
        let data_len = (hdr.msg_len as usize).min(RECV_SIZE);
        let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (
            &self.names[i].0[..name_len],
            &self.controls[i].0[..control_len],
            &self.bufs[i * RECV_SIZE..i * RECV_SIZE + data_len],
            truncated,
        )
    }
}
