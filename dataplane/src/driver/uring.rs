//! The io_uring backend: one ring per shard.

use std::io;
use std::mem::ManuallyDrop;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types::{Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

use super::DriverError;
use super::bufring::BufRing;
use super::ephemeral::{is_icmp_error, take_unreachable};
use super::msg::{PKTINFO_SPACE, SOCKADDR_IN_LEN, SendPlan, empty_msghdr, recv_meta};
use super::service::Service;
use super::shard::{ShardStats, StopSignal, wait_for};
use super::tx::{Transmit, Tx};

/// Buffer group id of the shard's receive buffers.
const BGID: u16 = 0;
/// How long a stopping shard waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Datagrams per window a send slot is sized for (more still work).
const SLOT_WINDOW: usize = 64;

/// Tunables of the io_uring backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringConfig {
    /// Submission queue entries; the completion queue gets four times as many.
    pub ring_entries: u32,
    /// Provided receive buffers per shard (a power of two, at most 32768).
    pub recv_buffers: u16,
    /// Bytes per receive buffer, including the 16-byte completion header,
    /// the source address (16) and the control data (32).
    pub recv_buffer_size: u32,
    /// Transmits in flight at once per shard.
    pub send_slots: usize,
}

impl Default for UringConfig {
    fn default() -> Self {
        Self {
            ring_entries: 1024,
            recv_buffers: 1024,
            recv_buffer_size: 2048,
            send_slots: 512,
        }
    }
}

/// Sets up a small ring with a provided-buffer ring and tears it down: the
/// test of whether this process may use the backend.
///
/// Runs on a short-lived thread of its own: tearing a ring down can leave
/// io_uring task work queued to the thread that created it, which would
/// interrupt (EINTR) a blocking system call of the caller.
pub(crate) fn probe() -> io::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(probe_here)
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("io_uring probe panicked")))
    })
}

fn probe_here() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let bufs = BufRing::new(2, 64)?;
    bufs.register(&ring, BGID)?;
    ring.submitter().unregister_buf_ring(BGID)?;
    drop(ring);
    drop(bufs);
    Ok(())
}

/// Runs the shard loop until it is told to stop; returns its counters.
pub(crate) fn run<S: Service>(
    sockets: &[UdpSocket],
    local: &[SocketAddrV4],
    service: &mut S,
    stop: &StopSignal,
    config: &UringConfig,
    (gso, mut tx): (bool, Tx),
) -> Result<ShardStats, DriverError> {
    let mut shard = UringShard::new(sockets, local, stop.fd(), config, gso)?;
    let result = shard.run_loop(service, stop, &mut tx);
    let stats = shard.stats;
    shard.close(&mut tx);
    result.map(|()| stats)
}

/// What a completion is for, packed in `user_data`: kind in the top byte,
/// then a 32-bit index and a 16-bit sub-index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Recv(usize),
    Send {
        slot: usize,
        op: usize,
    },
    Stop,
    Cancel,
    /// A readiness poll of the service's `index`-th watched descriptor.
    Watch(usize),
}

impl Tag {
    fn encode(self) -> u64 {
        match self {
            Self::Recv(sock) => (1 << 56) | ((sock as u64) << 16),
            Self::Send { slot, op } => (2 << 56) | ((slot as u64) << 16) | (op as u64 & 0xffff),
            Self::Stop => 3 << 56,
            Self::Cancel => 4 << 56,
            Self::Watch(index) => (5 << 56) | ((index as u64) << 16),
        }
    }

    fn decode(data: u64) -> Option<Self> {
        let index = ((data >> 16) & 0xffff_ffff) as usize;
        match data >> 56 {
            1 => Some(Self::Recv(index)),
            2 => Some(Self::Send {
                slot: index,
                op: (data & 0xffff) as usize,
            }),
            3 => Some(Self::Stop),
            4 => Some(Self::Cancel),
            5 => Some(Self::Watch(index)),
            _ => None,
        }
    }
}

/// The multishot receive of one socket.
#[derive(Debug)]
struct Recv {
    fd: RawFd,
    local: SocketAddrV4,
    /// Only its name and control lengths matter; the request points at it.
    hdr: libc::msghdr,
    /// A request is in the kernel (no final completion seen yet).
    live: bool,
    /// A run-time socket the service closed: not re-armed, released at
    /// its final completion.
    closing: bool,
}

/// A transmit in flight and the storage its requests point at.
#[derive(Debug)]
struct Slot {
    transmit: Option<Transmit>,
    plan: SendPlan,
    pending: usize,
}

/// One shard's ring and everything the kernel may touch through it.
///
/// `bufs` and `slots` are freed only by [`UringShard::close`] once the
/// kernel is done with them; on any other exit (a panic) they leak.
struct UringShard {
    ring: IoUring,
    bufs: ManuallyDrop<BufRing>,
    recv: ManuallyDrop<Box<[Recv]>>,
    /// Receives of the run-time sockets ([`Tx::open_socket`]), by index
    /// minus `recv.len()`; boxed so a request's `msghdr` never moves.
    extra: ManuallyDrop<Vec<Option<Box<Recv>>>>,
    slots: ManuallyDrop<Box<[Slot]>>,
    free: Vec<usize>,
    cqes: Vec<(u64, i32, u32)>,
    stop_fd: RawFd,
    gso: bool,
    stats: ShardStats,
    /// Run-time sockets whose receive or send failed with an ICMP error
    /// this iteration: their error queues are read after the completions.
    errored: Vec<usize>,
}

impl UringShard {
    fn new(
        sockets: &[UdpSocket],
        local: &[SocketAddrV4],
        stop_fd: RawFd,
        config: &UringConfig,
        gso: bool,
    ) -> Result<Self, DriverError> {
        let fail = |op| move |source| DriverError::Uring { op, source };
        let entries = config.ring_entries.max(8);
        let ring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(entries * 4).build(entries))
            .map_err(fail("setup"))?;
        let bufs = BufRing::new(config.recv_buffers, config.recv_buffer_size)
            .map_err(fail("buffer ring"))?;
        bufs.register(&ring, BGID)
            .map_err(fail("register buffer ring"))?;
        let recv = sockets
            .iter()
            .zip(local)
            .map(|(socket, &local)| {
                let mut hdr = empty_msghdr();
                hdr.msg_namelen = SOCKADDR_IN_LEN as libc::socklen_t;
                hdr.msg_controllen = PKTINFO_SPACE;
                Recv {
                    fd: socket.as_raw_fd(),
                    local,
                    hdr,
                    live: false,
                    closing: false,
                }
            })
            .collect();
        let slots_n = config.send_slots.max(1);
        let slots = (0..slots_n)
            .map(|_| Slot {
                transmit: None,
                plan: SendPlan::with_capacity(SLOT_WINDOW),
                pending: 0,
            })
            .collect();
        Ok(Self {
            ring,
            bufs: ManuallyDrop::new(bufs),
            recv: ManuallyDrop::new(recv),
            extra: ManuallyDrop::new(Vec::new()),
            slots: ManuallyDrop::new(slots),
            free: (0..slots_n).rev().collect(),
            cqes: Vec::with_capacity(entries as usize * 4),
            stop_fd,
            gso,
            stats: ShardStats::default(),
            errored: Vec::new(),
        })
    }

    fn run_loop<S: Service>(
        &mut self,
        service: &mut S,
        stop: &StopSignal,
        tx: &mut Tx,
    ) -> Result<(), DriverError> {
        for sock in 0..self.recv.len() {
            self.arm_recv(sock)?;
        }
        let watched = service.watched_fds();
        for index in 0..watched.len() {
            self.arm_watch(&watched, index)?;
        }
        let stop_poll = opcode::PollAdd::new(Fd(self.stop_fd), libc::POLLIN as u32)
            .build()
            .user_data(Tag::Stop.encode());
        // Safety: a poll request holds no pointer into our memory.
        #[allow(unsafe_code)]
        unsafe {
            push_sqe(&mut self.ring, &stop_poll)?
        };
        let mut stopping = false;
        while !stopping {
            self.register_opened(tx)?;
            self.push_sends(tx)?;
            self.unregister_closed(tx)?;
            self.enter(wait_for(service.poll_timeout(), Instant::now()))?;
            let now = Instant::now();
            self.reap();
            for i in 0..self.cqes.len() {
                let (data, res, flags) = self.cqes[i];
                match Tag::decode(data) {
                    Some(Tag::Recv(sock)) => {
                        self.on_recv(sock, res, flags, tx, Some((&mut *service, now)))?
                    }
                    Some(Tag::Send { slot, op }) => self.on_send(slot, op, res, tx),
                    Some(Tag::Stop) => stopping = true,
                    Some(Tag::Watch(index)) => {
                        if res < 0 && -res != libc::EINTR {
                            tracing::debug!(
                                index,
                                errno = -res,
                                "poll of a watched descriptor failed"
                            );
                        } else {
                            service.on_readable(now, index, tx);
                        }
                        self.arm_watch(&watched, index)?;
                    }
                    Some(Tag::Cancel) | None => {}
                }
            }
            self.bufs.publish();
            self.report_unreachable(service, tx, now);
            if service
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                service.on_timeout(now, tx);
            }
            service.flush(now, tx);
            stopping |= stop.is_set() || service.should_stop();
        }
        Ok(())
    }

    /// Queues a one-shot readiness poll of `watched[index]`, re-armed after
    /// each completion: a descriptor still readable completes again at
    /// once, so nothing queued on it waits for the next packet. Polls still
    /// queued at shutdown end with the ring.
    fn arm_watch(&mut self, watched: &[RawFd], index: usize) -> Result<(), DriverError> {
        let Some(&fd) = watched.get(index) else {
            return Ok(());
        };
        let entry = opcode::PollAdd::new(Fd(fd), (libc::POLLIN | libc::POLLERR) as u32)
            .build()
            .user_data(Tag::Watch(index).encode());
        // Safety: a poll request holds no pointer into our memory.
        #[allow(unsafe_code)]
        unsafe {
            push_sqe(&mut self.ring, &entry)?
        };
        Ok(())
    }

    /// Queues a multishot receive on socket `sock`.
    fn arm_recv(&mut self, sock: usize) -> Result<(), DriverError> {
        let Some(recv) = recv_mut(&mut self.recv, &mut self.extra, sock) else {
            return Ok(());
        };
        let entry = opcode::RecvMsgMulti::new(Fd(recv.fd), &recv.hdr, BGID)
            .build()
            .user_data(Tag::Recv(sock).encode());
        // Safety: `recv.hdr` is boxed in `self.recv`, which outlives every
        // request (freed only after the ring is closed and receives ended);
        // buffer group BGID is registered and stays registered.
        #[allow(unsafe_code)]
        unsafe {
            push_sqe(&mut self.ring, &entry)?
        };
        recv.live = true;
        Ok(())
    }

    /// One receive completion. Without a service (shutdown) the datagram is
    /// dropped and the request not re-armed.
    fn on_recv<S: Service>(
        &mut self,
        sock: usize,
        res: i32,
        flags: u32,
        tx: &mut Tx,
        service: Option<(&mut S, Instant)>,
    ) -> Result<(), DriverError> {
        let Some(recv) = recv_ref(&self.recv, &self.extra, sock) else {
            return Ok(());
        };
        let more = cqueue::more(flags);
        let rearm = service.is_some() && !recv.closing;
        if res < 0 {
            if -res == libc::ENOBUFS {
                self.stats.recv_no_buffers += 1;
            } else if is_icmp_error(-res) && tx.ephemeral().contains(sock) {
                self.errored.push(sock);
            } else if -res != libc::ECANCELED {
                tracing::debug!(sock, errno = -res, "receive failed");
                self.stats.recv_errors += 1;
            }
        } else if let Some(bid) = cqueue::buffer_select(flags) {
            let buffer = self.bufs.buffer(bid, res as usize);
            match RecvMsgOut::parse(buffer, &recv.hdr) {
                Ok(out) if !out.is_payload_truncated() => {
                    match (
                        recv_meta(out.name_data(), out.control_data(), recv.local),
                        service,
                    ) {
                        (Some(meta), Some((service, now))) => {
                            self.stats.rx_datagrams += 1;
                            service.on_datagram(now, sock, &meta, out.payload_data(), tx);
                        }
                        (None, _) => self.stats.rx_dropped += 1,
                        (Some(_), None) => {}
                    }
                }
                _ => self.stats.rx_dropped += 1,
            }
            self.bufs.push(bid);
        }
        if !more {
            if let Some(recv) = recv_mut(&mut self.recv, &mut self.extra, sock) {
                recv.live = false;
            }
            if rearm {
                self.stats.recv_rearms += 1;
                self.arm_recv(sock)?;
            } else {
                self.release_closed(sock, tx);
            }
        }
        Ok(())
    }

    /// Arms a receive on every run-time socket the service opened.
    fn register_opened(&mut self, tx: &mut Tx) -> Result<(), DriverError> {
        while let Some(sock) = tx.ephemeral().take_opened() {
            let Some((fd, local)) = tx.ephemeral().socket(sock) else {
                continue;
            };
            let index = sock - self.recv.len();
            if self.extra.len() <= index {
                self.extra.resize_with(index + 1, || None);
            }
            let mut hdr = empty_msghdr();
            hdr.msg_namelen = SOCKADDR_IN_LEN as libc::socklen_t;
            hdr.msg_controllen = PKTINFO_SPACE;
            // The index is free: its previous receive reached its final
            // completion before the socket was released.
            self.extra[index] = Some(Box::new(Recv {
                fd,
                local,
                hdr,
                live: false,
                closing: false,
            }));
            self.arm_recv(sock)?;
        }
        Ok(())
    }

    /// Cancels the receive of every run-time socket the service closed;
    /// the socket is released at the receive's final completion.
    fn unregister_closed(&mut self, tx: &mut Tx) -> Result<(), DriverError> {
        while let Some(sock) = tx.ephemeral().take_closing() {
            let Some(recv) = recv_mut(&mut self.recv, &mut self.extra, sock) else {
                tx.ephemeral().release(sock);
                continue;
            };
            if recv.closing {
                continue;
            }
            recv.closing = true;
            if !recv.live {
                self.release_closed(sock, tx);
                continue;
            }
            let entry = opcode::AsyncCancel::new(Tag::Recv(sock).encode())
                .build()
                .user_data(Tag::Cancel.encode());
            // Safety: a cancel request holds no pointer into our memory.
            #[allow(unsafe_code)]
            unsafe {
                push_sqe(&mut self.ring, &entry)?
            };
        }
        Ok(())
    }

    /// Frees a closed run-time socket whose receive has ended.
    fn release_closed(&mut self, sock: usize, tx: &mut Tx) {
        let Some(index) = sock.checked_sub(self.recv.len()) else {
            return;
        };
        if let Some(entry) = self.extra.get_mut(index)
            && entry.as_ref().is_some_and(|r| r.closing && !r.live)
        {
            *entry = None;
            tx.ephemeral().release(sock);
        }
    }

    /// Moves queued transmits into free slots and queues their requests.
    fn push_sends(&mut self, tx: &mut Tx) -> Result<(), DriverError> {
        while let Some(&index) = self.free.last() {
            let Some(transmit) = tx.pop() else { break };
            let Some(fd) = recv_ref(&self.recv, &self.extra, transmit.sock).map(|r| r.fd) else {
                tx.recycle(transmit);
                continue;
            };
            let slot = &mut self.slots[index];
            let transmit = slot.transmit.insert(transmit);
            slot.plan.build(transmit, self.gso);
            for (op, msg) in slot.plan.ops().iter().enumerate() {
                let entry = opcode::SendMsg::new(Fd(fd), &msg.hdr)
                    .build()
                    .user_data(Tag::Send { slot: index, op }.encode());
                // Safety: the msghdr, its address, iovecs and control data
                // live in slot `index` of the boxed slab, and the iovecs
                // point into the slot's transmit (a Vec or an Arc'd file).
                // The slot is not touched until all `pending` requests have
                // completed, and the slab outlives the ring.
                #[allow(unsafe_code)]
                unsafe {
                    push_sqe(&mut self.ring, &entry)?
                };
                slot.pending += 1;
            }
            self.free.pop();
        }
        Ok(())
    }

    /// Reads the error queue of every socket that failed with an ICMP
    /// error and tells the service which destinations were unreachable.
    fn report_unreachable<S: Service>(&mut self, service: &mut S, tx: &mut Tx, now: Instant) {
        if self.errored.is_empty() {
            return;
        }
        self.errored.sort_unstable();
        self.errored.dedup();
        let mut dests = Vec::new();
        for sock in std::mem::take(&mut self.errored) {
            let Some((fd, local)) = tx.ephemeral().socket(sock) else {
                continue;
            };
            dests.clear();
            take_unreachable(fd, &mut dests);
            for &dest in &dests {
                service.on_unreachable(now, sock, local, dest, tx);
            }
        }
    }

    /// One send completion.
    fn on_send(&mut self, index: usize, op: usize, res: i32, tx: &mut Tx) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(msg) = slot.plan.ops().get(op) else {
            return;
        };
        if res < 0 {
            self.stats.tx_errors += 1;
            if let Some(transmit) = &slot.transmit
                && is_icmp_error(-res)
            {
                // The send consumed the socket's pending error; its error
                // queue still says which destination was unreachable.
                self.errored.push(transmit.sock);
            }
            if msg.gso && -res == libc::EIO && self.gso {
                tracing::warn!(
                    "UDP GSO send failed with EIO, sending windows datagram by datagram"
                );
                self.gso = false;
            } else {
                tracing::debug!(errno = -res, "send failed");
            }
        } else {
            self.stats.tx_datagrams += u64::from(msg.datagrams);
            self.stats.gso_sends += u64::from(msg.gso);
        }
        slot.pending = slot.pending.saturating_sub(1);
        if slot.pending == 0
            && let Some(transmit) = slot.transmit.take()
        {
            tx.recycle(transmit);
            self.free.push(index);
        }
    }

    /// Submits queued requests and waits up to `wait` for one completion.
    fn enter(&mut self, wait: Duration) -> Result<(), DriverError> {
        let ts = Timespec::from(wait);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(DriverError::Uring {
                op: "enter",
                source,
            }),
        }
    }

    /// Copies every available completion into `self.cqes`.
    fn reap(&mut self) {
        self.cqes.clear();
        let mut cq = self.ring.completion();
        cq.sync();
        self.cqes
            .extend(cq.map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
    }

    /// Stops: sends what is queued, waits for in-flight sends, cancels the
    /// receives, and frees the kernel-shared memory only if all of that
    /// finished in time.
    fn close(mut self, tx: &mut Tx) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let clean = self.drain(tx, deadline).unwrap_or(false);
        let Self {
            ring,
            bufs,
            recv,
            extra,
            slots,
            ..
        } = self;
        drop(ring);
        if clean {
            drop(ManuallyDrop::into_inner(bufs));
            drop(ManuallyDrop::into_inner(recv));
            drop(ManuallyDrop::into_inner(extra));
            drop(ManuallyDrop::into_inner(slots));
        } else {
            tracing::warn!("io_uring requests still in flight at shutdown; leaking their buffers");
        }
    }

    fn drain(&mut self, tx: &mut Tx, deadline: Instant) -> Result<bool, DriverError> {
        let mut cancelled = false;
        loop {
            self.push_sends(tx)?;
            let sending = tx.queued() > 0 || self.free.len() < self.slots.len();
            if !sending && !cancelled {
                for sock in 0..self.recv.len() + self.extra.len() {
                    if recv_ref(&self.recv, &self.extra, sock).is_some_and(|r| r.live) {
                        let entry = opcode::AsyncCancel::new(Tag::Recv(sock).encode())
                            .build()
                            .user_data(Tag::Cancel.encode());
                        // Safety: a cancel request holds no pointer into our memory.
                        #[allow(unsafe_code)]
                        unsafe {
                            push_sqe(&mut self.ring, &entry)?
                        };
                    }
                }
                cancelled = true;
            }
            let receiving = self
                .recv
                .iter()
                .chain(self.extra.iter().flatten().map(|r| &**r))
                .any(|r| r.live);
            if !sending && !receiving {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.enter(deadline - now)?;
            self.reap();
            for i in 0..self.cqes.len() {
                let (data, res, flags) = self.cqes[i];
                match Tag::decode(data) {
                    Some(Tag::Recv(sock)) => {
                        self.on_recv::<NoService>(sock, res, flags, tx, None)?
                    }
                    Some(Tag::Send { slot, op }) => self.on_send(slot, op, res, tx),
                    _ => {}
                }
            }
            self.bufs.publish();
        }
    }
}

/// Stands in for the service type while draining, when no datagram is
/// delivered.
enum NoService {}

impl Service for NoService {
    fn on_datagram(
        &mut self,
        _: Instant,
        _: usize,
        _: &bootwave_protocol::net::RecvMeta,
        _: &[u8],
        _: &mut Tx,
    ) {
        match *self {}
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match *self {}
    }
    fn on_timeout(&mut self, _: Instant, _: &mut Tx) {
        match *self {}
    }
}

/// The receive of socket `sock`: a fixed one, or a run-time one after them.
fn recv_ref<'a>(recv: &'a [Recv], extra: &'a [Option<Box<Recv>>], sock: usize) -> Option<&'a Recv> {
    match sock.checked_sub(recv.len()) {
        None => recv.get(sock),
        Some(index) => extra.get(index)?.as_deref(),
    }
}

/// Mutable [`recv_ref`].
fn recv_mut<'a>(
    recv: &'a mut [Recv],
    extra: &'a mut [Option<Box<Recv>>],
    sock: usize,
) -> Option<&'a mut Recv> {
    match sock.checked_sub(recv.len()) {
        None => recv.get_mut(sock),
        Some(index) => extra.get_mut(index)?.as_deref_mut(),
    }
}

/// Pushes one request, submitting first if the queue is full.
///
/// # Safety
///
/// Every pointer in `entry` must stay valid until its completion.
#[allow(unsafe_code)]
unsafe fn push_sqe(ring: &mut IoUring, entry: &squeue::Entry) -> Result<(), DriverError> {
    for _ in 0..2 {
        // Safety: forwarded from this function's contract.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit().map_err(|source| DriverError::Uring {
            op: "submit",
            source,
        })?;
    }
    Err(DriverError::Uring {
        op: "submission queue full",
        source: io::Error::from_raw_os_error(libc::EBUSY),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for tag in [
            Tag::Recv(0),
            Tag::Recv(7),
            Tag::Send { slot: 511, op: 63 },
            Tag::Send { slot: 0, op: 0 },
            Tag::Stop,
            Tag::Cancel,
            Tag::Watch(0),
            Tag::Watch(3),
        ] {
            assert_eq!(Tag::decode(tag.encode()), Some(tag));
        }
        assert_eq!(Tag::decode(0), None);
    }
}
