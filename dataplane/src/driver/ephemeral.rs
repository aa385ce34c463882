//! Sockets a service opens and closes while the shard runs: one per TFTP
//! transfer, each bound to a port the kernel draws at random from its
//! ephemeral range, so an off-path host cannot guess where a transfer
//! listens.
//!
//! The table lives in the shard's [`Tx`](super::Tx): the service opens a
//! socket with [`Tx::open_socket`](super::Tx::open_socket) (the socket
//! exists and is bound at once; its index follows the shard's fixed
//! sockets) and closes it with [`Tx::close_socket`](super::Tx::close_socket).
//! The backend, once per loop iteration, registers what was opened
//! (a multishot receive, or an epoll entry) and, after the sends queued
//! before the close were submitted, unregisters what was closed; only then
//! is the socket dropped and its index reused. The number of open sockets
//! is bounded by [`EphemeralSpec::max_sockets`]; running out of it, of file
//! descriptors (EMFILE, ENFILE) or of ports (EADDRINUSE) is an
//! [`OpenError`] the service counts, never a panic.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use super::socket::{local_v4, set_buffer, setsockopt};

/// How a shard's run-time sockets are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralSpec {
    /// Address each socket binds; port 0 lets the kernel draw the port.
    pub addr: SocketAddrV4,
    /// Most run-time sockets open at once in one shard (0: none).
    pub max_sockets: usize,
    /// `SO_RCVBUF` in bytes.
    pub recv_buffer: usize,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer: usize,
}

impl Default for EphemeralSpec {
    fn default() -> Self {
        Self {
            addr: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            max_sockets: 0,
            recv_buffer: 256 << 10,
            send_buffer: 1 << 20,
        }
    }
}

/// Why no socket was opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// [`EphemeralSpec::max_sockets`] are already open.
    #[error("{0} run-time sockets already open")]
    Full(usize),
    /// The kernel refused (EMFILE, ENFILE, EADDRINUSE, ENOBUFS, …).
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
}

#[derive(Debug)]
struct Entry {
    socket: UdpSocket,
    local: SocketAddrV4,
}

/// The run-time sockets of one shard.
#[derive(Debug)]
pub(crate) struct Ephemeral {
    spec: EphemeralSpec,
    /// Index of the first run-time socket (the number of fixed sockets).
    base: usize,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    open: usize,
    /// Opened, not yet registered with the backend.
    opened: Vec<usize>,
    /// Closed by the service, not yet unregistered.
    closing: Vec<usize>,
}

impl Ephemeral {
    pub(crate) fn new(base: usize, spec: EphemeralSpec) -> Self {
        Self {
            spec,
            base,
            entries: Vec::new(),
            free: Vec::new(),
            open: 0,
            opened: Vec::new(),
            closing: Vec::new(),
        }
    }

    /// Opens and binds a socket; returns its shard socket index and address.
    pub(crate) fn open(&mut self) -> Result<(usize, SocketAddrV4), OpenError> {
        if self.open >= self.spec.max_sockets {
            return Err(OpenError::Full(self.open));
        }
        let (socket, local) = open_socket(&self.spec)?;
        let entry = Some(Entry { socket, local });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.open += 1;
        let sock = self.base + slot;
        self.opened.push(sock);
        Ok((sock, local))
    }

    /// Asks for socket `sock` to be closed once the backend let go of it.
    pub(crate) fn close(&mut self, sock: usize) {
        if self.get(sock).is_some() && !self.closing.contains(&sock) {
            self.closing.push(sock);
        }
    }

    /// Whether `sock` is an open run-time socket.
    pub(crate) fn contains(&self, sock: usize) -> bool {
        self.get(sock).is_some()
    }

    /// Descriptor and address of run-time socket `sock`.
    pub(crate) fn socket(&self, sock: usize) -> Option<(RawFd, SocketAddrV4)> {
        self.get(sock)
            .map(|entry| (entry.socket.as_raw_fd(), entry.local))
    }

    /// The next socket to register with the backend.
    pub(crate) fn take_opened(&mut self) -> Option<usize> {
        self.opened.pop()
    }

    /// The next socket to unregister; call [`Ephemeral::release`] once the
    /// backend holds nothing of it.
    pub(crate) fn take_closing(&mut self) -> Option<usize> {
        self.closing.pop()
    }

    /// Closes socket `sock` and frees its index.
    pub(crate) fn release(&mut self, sock: usize) {
        let Some(slot) = sock.checked_sub(self.base) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(slot)
            && entry.take().is_some()
        {
            self.open -= 1;
            self.free.push(slot);
            self.opened.retain(|&s| s != sock);
        }
    }

    fn get(&self, sock: usize) -> Option<&Entry> {
        self.entries.get(sock.checked_sub(self.base)?)?.as_ref()
    }
}

/// Error-queue messages read per [`take_unreachable`] call.
const MAX_ERRORS_PER_CALL: usize = 16;
/// `ICMP_DEST_UNREACH`.
const ICMP_DEST_UNREACH: u8 = 3;

/// Whether a failed receive or send on a run-time socket means that
/// ICMP reported an error its error queue now holds.
pub(crate) fn is_icmp_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN
    )
}

/// Reads the `IP_RECVERR` error queue of `fd` without blocking and
/// appends the destination of every datagram that ICMP reported
/// unreachable (port, host or network). Other errors are read and
/// dropped. Reads at most a few messages, so a flood of forged ICMP
/// costs a bounded amount per call.
pub(crate) fn take_unreachable(fd: RawFd, out: &mut Vec<SocketAddrV4>) {
    for _ in 0..MAX_ERRORS_PER_CALL {
        // Safety: all-zero is a valid `sockaddr_in`.
        #[allow(unsafe_code)]
        let mut name: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 16];
        let mut iov_byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: iov_byte.as_mut_ptr().cast(),
            iov_len: iov_byte.len(),
        };
        // Safety: all-zero is a valid `msghdr` (null pointers, zero lengths).
        #[allow(unsafe_code)]
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = (&raw mut name).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdr.msg_iov = &raw mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = size_of_val(&control);
        // Safety: every pointer in `hdr` points at a live local buffer of
        // the length given, for the duration of the call.
        #[allow(unsafe_code)]
        let rc =
            unsafe { libc::recvmsg(fd, &raw mut hdr, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            return;
        }
        // Safety: `hdr` was filled by the kernel; the CMSG macros stay
        // within `msg_control`/`msg_controllen`.
        #[allow(unsafe_code)]
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&hdr) };
        while !cmsg.is_null() {
            // Safety: `cmsg` is non-null and within the control buffer.
            #[allow(unsafe_code)]
            let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
            if level == libc::IPPROTO_IP && kind == libc::IP_RECVERR {
                // Safety: an IP_RECVERR message carries a
                // `sock_extended_err`; the read tolerates any alignment.
                #[allow(unsafe_code)]
                let err: libc::sock_extended_err =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                if err.ee_origin == libc::SO_EE_ORIGIN_ICMP && err.ee_type == ICMP_DEST_UNREACH {
                    out.push(SocketAddrV4::new(
                        u32::from_be(name.sin_addr.s_addr).into(),
                        u16::from_be(name.sin_port),
                    ));
                }
            }
            // Safety: as for CMSG_FIRSTHDR.
            #[allow(unsafe_code)]
            {
                cmsg = unsafe { libc::CMSG_NXTHDR(&hdr, cmsg) };
            }
        }
    }
}

/// A non-blocking UDP socket with `IP_PKTINFO`, bound to `spec.addr`.
/// No `SO_REUSEADDR`: a port the kernel draws is this socket's alone.
/// `IP_RECVERR` queues the ICMP errors of its sends ([`take_unreachable`]):
/// a transfer whose client's kernel rejects it can be ended at once.
fn open_socket(spec: &EphemeralSpec) -> Result<(UdpSocket, SocketAddrV4), OpenError> {
    let fail = |op| move |source| OpenError::Sys { op, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking(), Some(Protocol::UDP))
        .map_err(fail("socket"))?;
    let fd = socket.as_raw_fd();
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, &1 as &libc::c_int)
        .map_err(fail("IP_PKTINFO"))?;
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_RECVERR, &1 as &libc::c_int)
        .map_err(fail("IP_RECVERR"))?;
    set_buffer(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, spec.recv_buffer)
        .map_err(fail("SO_RCVBUF"))?;
    set_buffer(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, spec.send_buffer)
        .map_err(fail("SO_SNDBUF"))?;
    socket.bind(&spec.addr.into()).map_err(fail("bind"))?;
    let socket: UdpSocket = socket.into();
    let local = local_v4(&socket, spec.addr).map_err(|_| OpenError::Sys {
        op: "getsockname",
        source: io::Error::from(io::ErrorKind::AddrNotAvailable),
    })?;
    Ok((socket, local))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(max_sockets: usize) -> EphemeralSpec {
        EphemeralSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            max_sockets,
            ..EphemeralSpec::default()
        }
    }

    #[test]
    fn sockets_get_indices_after_the_fixed_ones_and_their_own_ports() {
        let mut e = Ephemeral::new(3, spec(8));
        let (a, addr_a) = e.open().unwrap();
        let (b, addr_b) = e.open().unwrap();
        assert_eq!((a, b), (3, 4));
        assert_ne!(addr_a.port(), 0);
        assert_ne!(addr_a.port(), addr_b.port());
        assert_eq!(e.socket(a).unwrap().1, addr_a);
        assert_eq!(e.take_opened(), Some(4));
        assert_eq!(e.take_opened(), Some(3));
        assert_eq!(e.take_opened(), None);
    }

    #[test]
    fn the_bound_is_kept_and_released_indices_are_reused() {
        let mut e = Ephemeral::new(1, spec(2));
        let (a, _) = e.open().unwrap();
        e.open().unwrap();
        assert!(matches!(e.open(), Err(OpenError::Full(2))));
        e.close(a);
        e.close(a);
        assert_eq!(e.take_closing(), Some(a));
        assert_eq!(e.take_closing(), None);
        assert!(e.contains(a), "open until released");
        e.release(a);
        assert!(!e.contains(a));
        let (again, _) = e.open().unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn a_released_port_is_closed() {
        let mut e = Ephemeral::new(0, spec(1));
        let (sock, addr) = e.open().unwrap();
        e.release(sock);
        // Nothing listens there any more: the port can be bound again.
        UdpSocket::bind(addr).unwrap();
    }

    #[test]
    fn an_icmp_port_unreachable_names_the_destination() {
        let mut e = Ephemeral::new(0, spec(1));
        let (sock, _) = e.open().unwrap();
        let (fd, _) = e.socket(sock).unwrap();
        // A port nobody listens on: the kernel answers with ICMP port
        // unreachable, queued on the sender's error queue.
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = match gone.local_addr().unwrap() {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        drop(gone);
        let socket = &e.entries[0].as_ref().unwrap().socket;
        socket.send_to(b"x", dest).unwrap();
        let mut found = Vec::new();
        for _ in 0..100 {
            take_unreachable(fd, &mut found);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found, [dest]);
        take_unreachable(fd, &mut found);
        assert_eq!(found.len(), 1, "read once");
    }

    #[test]
    fn unknown_indices_are_ignored() {
        let mut e = Ephemeral::new(2, spec(1));
        e.close(0);
        e.close(9);
        e.release(1);
        assert_eq!(e.take_closing(), None);
        assert!(!e.contains(2));
    }
}
