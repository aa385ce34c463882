//! Probes for the DHCP ping check: before offering an address, ask whether
//! some host already answers on it. On-link candidates are asked with one
//! ARP probe ([`ArpProber`]); candidates behind a relay, or every candidate
//! when no packet socket can be opened, with an ICMP echo ([`Prober`]).
//!
//! A [`Prober`] is one non-blocking socket and no thread and no timer: the
//! driver calls [`Prober::send`] when the DHCP core asks for a probe, the
//! shard's ring (or poll set) watches [`Prober::raw_fd`], and when it is
//! readable [`Prober::poll_replies`] reports the addresses that answered.
//! Which addresses are awaited, and until when, is the DHCP core's business
//! (its ping-check slots): the prober reports every echo reply that carries
//! its nonce, and the core ignores those it waits for no more.
//!
//! The socket is an unprivileged ICMP "ping" socket when
//! `net.ipv4.ping_group_range` admits the process's group (the kernel then
//! picks the echo identifier and delivers only replies to it), and a raw
//! ICMP socket (`CAP_NET_RAW`) otherwise.

mod arp;
mod icmp;

pub use arp::{ArpError, ArpProber};

use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most datagrams one [`Prober::poll_replies`] call reads.
const MAX_DRAIN: usize = 256;
/// `ICMP_FILTER` from `linux/icmp.h`: a bit mask of ICMP types a raw
/// socket drops.
const ICMP_FILTER: libc::c_int = 1;

/// Which kind of ICMP socket a [`Prober`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`: needs the group in `ping_group_range`.
    Ping,
    /// `SOCK_RAW` + `IPPROTO_ICMP`: needs `CAP_NET_RAW`.
    Raw,
}

/// Why a probe could not be set up or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The ICMP socket could not be opened.
    #[error("open {kind:?} ICMP socket: {source}")]
    Open {
        /// The last kind tried.
        kind: SocketKind,
        /// The OS error.
        source: io::Error,
    },
    /// The echo request could not be sent (`WouldBlock` when the socket
    /// buffer is full).
    #[error("send echo request to {addr}: {source}")]
    Send {
        /// The address probed.
        addr: Ipv4Addr,
        /// The OS error.
        source: io::Error,
    },
}

/// Sends ICMP echo requests and reports which probed addresses answered.
#[derive(Debug)]
pub struct Prober {
    fd: OwnedFd,
    kind: SocketKind,
    /// The identifier of raw-socket requests (ping sockets ignore it).
    ident: u16,
    /// Carried in every request's payload; replies must echo it.
    nonce: u64,
    buf: Box<[u8; 1536]>,
}

impl Prober {
    /// Opens a ping socket, or a raw socket when ping sockets are not
    /// permitted (`EACCES`/`EPERM`) or not built into the kernel.
    pub fn new() -> Result<Self, ProbeError> {
        match Self::with_kind(SocketKind::Ping) {
            Err(ProbeError::Open { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EPROTONOSUPPORT)
                ) =>
            {
                tracing::debug!(%source, "ping socket refused, using a raw ICMP socket");
                Self::with_kind(SocketKind::Raw)
            }
            other => other,
        }
    }

    /// Opens exactly the given kind of socket.
    pub fn with_kind(kind: SocketKind) -> Result<Self, ProbeError> {
        let fd = open_socket(kind).map_err(|source| ProbeError::Open { kind, source })?;
        if kind == SocketKind::Raw {
            filter_echo_replies(&fd);
        }
        let nonce = RandomState::new().build_hasher().finish();
        Ok(Self {
            fd,
            kind,
            ident: (nonce >> 48) as u16,
            nonce,
            buf: Box::new([0; 1536]),
        })
    }

    /// The kind of socket in use.
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Sends an echo request to `addr` with `token` as its sequence number.
    pub fn send(&mut self, addr: Ipv4Addr, token: u16) -> Result<(), ProbeError> {
        let msg = icmp::echo_request(self.ident, token, self.nonce);
        let dest = sockaddr_in(addr);
        #[allow(unsafe_code)]
        // Safety: `msg` and `dest` are live, initialised buffers of the
        // lengths passed; the fd is open while `self` lives.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                (&raw const dest).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            let source = io::Error::last_os_error();
            return Err(ProbeError::Send { addr, source });
        }
        Ok(())
    }

    /// Reads the replies queued on the socket without blocking and calls `f`
    /// with the source of each echo reply to one of this prober's requests
    /// (it echoes the prober's random nonce, and on a raw socket its
    /// identifier). Anything else received is ignored. Returns how many
    /// replies were reported; reads at most a bounded number of datagrams
    /// per call, so a reply flood cannot hold the caller.
    pub fn poll_replies(&mut self, mut f: impl FnMut(Ipv4Addr)) -> usize {
        let mut reported = 0;
        for _ in 0..MAX_DRAIN {
            let (len, from) = match self.recv() {
                Ok(got) => got,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    // Such as a queued ICMP error; it is cleared by reading it.
                    tracing::debug!(%err, "ICMP probe socket error");
                    continue;
                }
            };
            let with_ip_header = self.kind == SocketKind::Raw;
            let Some(reply) = icmp::parse_reply(&self.buf[..len], with_ip_header) else {
                continue;
            };
            let ours = reply.nonce == self.nonce
                && (self.kind == SocketKind::Ping || reply.ident == self.ident);
            if ours {
                reported += 1;
                f(from);
            }
        }
        reported
    }

    /// The socket, for registering with a poller (readable = replies queued).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives one datagram into `self.buf`: its length and source.
    fn recv(&mut self) -> io::Result<(usize, Ipv4Addr)> {
        let mut from = sockaddr_in(Ipv4Addr::UNSPECIFIED);
        let mut from_len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        #[allow(unsafe_code)]
        // Safety: `buf` is writable for the length passed; `from`/`from_len`
        // describe a live sockaddr_in the kernel may fill; the fd is open.
        let got = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &mut from_len,
            )
        };
        // A negative count is an error; the conversion fails exactly then.
        let len = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
        Ok((len, Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr))))
    }
}

impl AsFd for Prober {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn open_socket(kind: SocketKind) -> io::Result<OwnedFd> {
    let ty = match kind {
        SocketKind::Ping => libc::SOCK_DGRAM,
        SocketKind::Raw => libc::SOCK_RAW,
    };
    #[allow(unsafe_code)]
    // Safety: plain syscall with constant arguments, no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // Safety: `fd` was just returned by socket(2), is valid and owned by
    // nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asks the kernel to drop every ICMP type but echo reply on a raw socket,
/// so other hosts' errors and requests do not wake the driver. Only an
/// optimisation: replies are checked anyway.
fn filter_echo_replies(fd: &OwnedFd) {
    let drop_all_but_reply: u32 = !1;
    #[allow(unsafe_code)]
    // Safety: the option value is a live u32 and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_RAW,
            ICMP_FILTER,
            (&raw const drop_all_but_reply).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(err = %io::Error::last_os_error(), "ICMP_FILTER not set");
    }
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}
