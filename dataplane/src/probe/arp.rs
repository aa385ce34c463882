//! ARP probes for on-link ping checks (RFC 5227 style): one ARP request
//! with a zero sender address, sent from a packet socket, and any ARP
//! packet whose sender is the probed address counts as an answer.
//!
//! Unlike an ICMP echo to an on-link address, an ARP probe leaves nothing in
//! the kernel's neighbour table: the kernel neither queues the probe waiting
//! for resolution nor creates an `INCOMPLETE` entry per candidate, and
//! replies to a request with a zero sender create no entry either.
//!
//! One [`ArpProber`] per shard: a packet socket bound to no interface (it
//! receives ARP from every interface and sends on the one named per probe),
//! non-blocking, read when the shard's ring or poll set finds it readable.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The most frames one [`ArpProber::poll_answers`] call reads.
const MAX_DRAIN: usize = 256;
/// Interfaces whose hardware address is remembered.
const MAX_INTERFACES: usize = 64;
/// `ETH_P_ARP`, in host order.
const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet/IPv4 ARP packet.
const ARP_LEN: usize = 28;
/// `ARPOP_REQUEST`.
const OP_REQUEST: u16 = 1;
/// `ARPOP_REPLY`.
const OP_REPLY: u16 = 2;

/// Why an ARP probe could not be set up or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArpError {
    /// The packet socket could not be opened (needs `CAP_NET_RAW`).
    #[error("open ARP packet socket: {0}")]
    Open(#[source] io::Error),
    /// The interface's hardware address could not be read (not Ethernet,
    /// or gone).
    #[error("hardware address of interface {ifindex}: {source}")]
    HardwareAddress {
        /// The interface.
        ifindex: u32,
        /// The OS error.
        source: io::Error,
    },
    /// The request could not be sent (`WouldBlock` when the socket buffer
    /// is full).
    #[error("send ARP probe for {addr}: {source}")]
    Send {
        /// The address probed.
        addr: Ipv4Addr,
        /// The OS error.
        source: io::Error,
    },
}

/// Sends ARP probes and reports which addresses something answered for.
#[derive(Debug)]
pub struct ArpProber {
    fd: OwnedFd,
    /// `(ifindex, hardware address)` of the interfaces probed so far.
    hw: Vec<(u32, [u8; 6])>,
    buf: Box<[u8; 1536]>,
}

impl ArpProber {
    /// Opens the packet socket.
    pub fn new() -> Result<Self, ArpError> {
        #[allow(unsafe_code)]
        // Safety: plain syscall with constant arguments, no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if fd < 0 {
            return Err(ArpError::Open(io::Error::last_os_error()));
        }
        #[allow(unsafe_code)]
        // Safety: `fd` was just returned by socket(2), is valid and owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd,
            hw: Vec::new(),
            buf: Box::new([0; 1536]),
        })
    }

    /// Broadcasts one ARP probe for `addr` on interface `ifindex`.
    pub fn send(&mut self, ifindex: u32, addr: Ipv4Addr) -> Result<(), ArpError> {
        let mac = self.hardware_address(ifindex)?;
        let msg = probe_request(mac, addr);
        let dest = link_addr(ifindex, [0xff; 6]);
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
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            let source = io::Error::last_os_error();
            return Err(ArpError::Send { addr, source });
        }
        Ok(())
    }

    /// Reads the ARP frames queued on the socket without blocking and calls
    /// `f` with the sender address of each one received from another host
    /// (requests and replies alike: a host that speaks ARP from an address
    /// holds it). Reads at most a bounded number of frames per call.
    pub fn poll_answers(&mut self, mut f: impl FnMut(Ipv4Addr)) -> usize {
        let mut reported = 0;
        for _ in 0..MAX_DRAIN {
            let (len, pkttype) = match self.recv() {
                Ok(got) => got,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::debug!(%err, "ARP probe socket error");
                    break;
                }
            };
            if pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if let Some(sender) = sender_of(&self.buf[..len]) {
                reported += 1;
                f(sender);
            }
        }
        reported
    }

    /// The socket, for registering with a poller (readable = frames queued).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The hardware address of `ifindex`, read once and remembered.
    fn hardware_address(&mut self, ifindex: u32) -> Result<[u8; 6], ArpError> {
        if let Some(&(_, mac)) = self.hw.iter().find(|(i, _)| *i == ifindex) {
            return Ok(mac);
        }
        let mac = read_hardware_address(&self.fd, ifindex)
            .map_err(|source| ArpError::HardwareAddress { ifindex, source })?;
        if self.hw.len() >= MAX_INTERFACES {
            self.hw.remove(0);
        }
        self.hw.push((ifindex, mac));
        Ok(mac)
    }

    /// Receives one frame into `self.buf`: its length and packet type.
    fn recv(&mut self) -> io::Result<(usize, u8)> {
        let mut from = link_addr(0, [0; 6]);
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        #[allow(unsafe_code)]
        // Safety: `buf` is writable for the length passed; `from`/`from_len`
        // describe a live sockaddr_ll the kernel may fill; the fd is open.
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
        Ok((len, from.sll_pkttype))
    }
}

/// The hardware address of `ifindex` (`SIOCGIFHWADDR`), Ethernet only.
fn read_hardware_address(fd: &OwnedFd, ifindex: u32) -> io::Result<[u8; 6]> {
    let name = crate::neigh::ifname_of(ifindex)
        .map_err(|err| io::Error::new(io::ErrorKind::NotFound, err.to_string()))?;
    #[allow(unsafe_code)]
    // Safety: an all-zero ifreq is a valid value of this plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    #[allow(unsafe_code)]
    // Safety: SIOCGIFHWADDR reads the name from and writes the address into
    // the live `req`; the fd is open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &raw mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // Safety: on success the kernel filled `ifru_hwaddr`, the union member
    // SIOCGIFHWADDR writes.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("not an Ethernet interface (type {})", hw.sa_family),
        ));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data) {
        *d = s as u8;
    }
    Ok(mac)
}

fn link_addr(ifindex: u32, mac: [u8; 6]) -> libc::sockaddr_ll {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&mac);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_ARP.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    }
}

/// An ARP request "who has `addr`" from `mac` with a zero sender address
/// (an RFC 5227 probe: nobody learns a mapping from it).
pub(crate) fn probe_request(mac: [u8; 6], addr: Ipv4Addr) -> [u8; ARP_LEN] {
    let mut msg = [0u8; ARP_LEN];
    msg[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    msg[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    msg[4] = 6;
    msg[5] = 4;
    msg[6..8].copy_from_slice(&OP_REQUEST.to_be_bytes());
    msg[8..14].copy_from_slice(&mac);
    // Sender protocol address (14..18) and target hardware address (18..24)
    // stay zero.
    msg[24..28].copy_from_slice(&addr.octets());
    msg
}

/// The sender protocol address of an Ethernet/IPv4 ARP request or reply,
/// unless it is zero (another host's own probe) or the frame is not one.
pub(crate) fn sender_of(frame: &[u8]) -> Option<Ipv4Addr> {
    let arp = frame.get(..ARP_LEN)?;
    let well_formed = arp[0..2] == 1u16.to_be_bytes()
        && arp[2..4] == 0x0800u16.to_be_bytes()
        && arp[4] == 6
        && arp[5] == 4;
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    if !well_formed || !matches!(op, OP_REQUEST | OP_REPLY) {
        return None;
    }
    let sender = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    (!sender.is_unspecified()).then_some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_has_a_zero_sender_and_names_its_target() {
        let mac = [2, 0, 0, 0, 0, 1];
        let msg = probe_request(mac, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(&msg[6..8], &[0, 1]);
        assert_eq!(&msg[8..14], &mac);
        assert_eq!(&msg[14..18], &[0; 4]);
        assert_eq!(&msg[24..28], &[10, 0, 0, 9]);
        // Our own probe is no answer.
        assert_eq!(sender_of(&msg), None);
    }

    #[test]
    fn replies_and_requests_name_their_sender_and_junk_is_ignored() {
        let mut reply = probe_request([2, 0, 0, 0, 0, 2], Ipv4Addr::new(10, 0, 0, 1));
        reply[7] = 2;
        reply[14..18].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(sender_of(&reply), Some(Ipv4Addr::new(10, 0, 0, 9)));
        let mut request = reply;
        request[7] = 1;
        assert_eq!(sender_of(&request), Some(Ipv4Addr::new(10, 0, 0, 9)));
        // Padding after the ARP payload (short frames are padded) is fine.
        let mut padded = reply.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(sender_of(&padded), Some(Ipv4Addr::new(10, 0, 0, 9)));
        let mut bad_op = reply;
        bad_op[7] = 3;
        assert_eq!(sender_of(&bad_op), None);
        let mut not_ipv4 = reply;
        not_ipv4[2] = 0x86;
        assert_eq!(sender_of(&not_ipv4), None);
        assert_eq!(sender_of(&reply[..27]), None);
        assert_eq!(sender_of(&[]), None);
    }
}
