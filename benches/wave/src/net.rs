//! Sockets of the simulator: one for DHCP (bound to the relay address, as
//! a relay agent's is) and one for every machine's TFTP, which receives
//! for all leased addresses at once (`IP_PKTINFO` tells whose a datagram
//! is) and sends from each machine's own address.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use anyhow::Context as _;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmsg,
    setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams read per `recvmmsg`.
pub const BATCH: usize = 64;
/// Largest datagram read (TFTP blocks up to 1,468 bytes plus headers).
const MAX_DATAGRAM: usize = 2048;

/// A non-blocking UDP socket bound to `addr` with large buffers.
pub fn udp(addr: SocketAddrV4, pktinfo: bool) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // Root may exceed the sysctl limits; others get what the limits allow.
    let big = 128 << 20;
    if setsockopt(&s, sockopt::RcvBufForce, &big).is_err() {
        let _ = s.set_recv_buffer_size(big);
    }
    if setsockopt(&s, sockopt::SndBufForce, &big).is_err() {
        let _ = s.set_send_buffer_size(big);
    }
    if pktinfo {
        setsockopt(&s, sockopt::Ipv4PacketInfo, &true).context("IP_PKTINFO")?;
        let _ = setsockopt(&s, sockopt::IpFreebind, &true);
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(addr).into())
        .with_context(|| format!("binding {addr}"))?;
    Ok(s.into())
}

/// One datagram read by [`Receiver::recv`]: its length in the batch's
/// buffer, its source, and the address it was sent to.
#[derive(Debug, Clone, Copy)]
pub struct Datagram {
    /// Index of its buffer in [`Receiver::bufs`].
    pub slot: usize,
    pub len: usize,
    pub from: SocketAddrV4,
    pub to: Ipv4Addr,
}

/// Batched receive with the destination address of every datagram.
#[derive(Debug)]
pub struct Receiver {
    headers: MultiHeaders<SockaddrIn>,
    pub bufs: Vec<Vec<u8>>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Self {
        Self {
            headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(libc::in_pktinfo))),
            bufs: vec![vec![0; MAX_DATAGRAM]; BATCH],
        }
    }

    /// Reads up to [`BATCH`] datagrams into `self.bufs`; empty when none
    /// is waiting.
    pub fn recv(&mut self, sock: &UdpSocket, out: &mut Vec<Datagram>) -> io::Result<()> {
        out.clear();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(b.as_mut_slice())])
            .collect();
        let res = match recvmmsg(
            sock.as_raw_fd(),
            &mut self.headers,
            &mut iovs,
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for (slot, msg) in res.enumerate() {
            let Some(from) = msg.address else { continue };
            let mut to = Ipv4Addr::UNSPECIFIED;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                        to = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                    }
                }
            }
            out.push(Datagram {
                slot,
                len: msg.bytes,
                from: SocketAddrV4::new(from.ip(), from.port()),
                to,
            });
        }
        Ok(())
    }
}

/// Sends `bytes` to `dst` from the local address `src`.
pub fn send_from(
    sock: &UdpSocket,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    bytes: &[u8],
) -> io::Result<()> {
    let info = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(src).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let dst = SockaddrIn::from(dst);
    sendmsg(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::Ipv4PacketInfo(&info)],
        MsgFlags::MSG_DONTWAIT,
        Some(&dst),
    )
    .map(drop)
    .map_err(Into::into)
}
