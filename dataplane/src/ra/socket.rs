//! A raw ICMPv6 socket for Neighbor Discovery messages: kernel-side type
//! filter, ingress interface and hop limit of every message, hop limit 255
//! on every send, the kernel's checksum.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use bootwave_protocol::ra::Received;

/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;
/// All-routers link-local multicast address: where solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Control buffer room for one `IPV6_PKTINFO` and one `IPV6_HOPLIMIT`.
const CONTROL_LEN: usize = 128;

/// A raw ICMPv6 socket that receives only the types it was opened for.
#[derive(Debug)]
pub struct Icmp6Socket {
    fd: OwnedFd,
}

impl Icmp6Socket {
    /// Opens the socket. It receives only ICMPv6 `types`, reports each
    /// message's ingress interface and hop limit, and sends with hop limit
    /// 255 (unicast and multicast) without looping multicast back to itself.
    /// `read_timeout` bounds each [`recv`](Self::recv).
    pub fn open(types: &[u8], read_timeout: Duration) -> io::Result<Self> {
        #[allow(unsafe_code)]
        // Safety: plain syscall with constant arguments, no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMPV6,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(unsafe_code)]
        // Safety: `fd` was just returned by socket(2), is valid and owned by
        // nothing else.
        let socket = Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        // One bit per type; a set bit blocks the type (RFC 3542 §3.2).
        let mut filter = [u32::MAX; 8];
        for &t in types {
            filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
        }
        socket.set(libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
        let on: libc::c_int = 1;
        socket.set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on)?;
        socket.set(libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
        let hops: libc::c_int = 255;
        socket.set(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
        socket.set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
        let off: libc::c_int = 0;
        socket.set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
        let timeout = libc::timeval {
            tv_sec: libc::time_t::try_from(read_timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(read_timeout.subsec_micros().max(1)),
        };
        socket.set(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(socket)
    }

    /// Joins multicast `group` on interface `ifindex` (the all-routers
    /// group, to hear solicitations, since a host joins it only when it
    /// forwards).
    pub fn join(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        self.set(libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)
    }

    /// The Ethernet address of interface `name` (`SIOCGIFHWADDR`, in the
    /// socket's network namespace); `None` for other link types.
    pub fn link_addr(&self, name: &str) -> Option<[u8; 6]> {
        // struct ifreq: 16 bytes of name, then a sockaddr (family, data).
        let mut ifreq = [0u8; 40];
        let name = name.as_bytes();
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return None;
        }
        ifreq[..name.len()].copy_from_slice(name);
        #[allow(unsafe_code)]
        // Safety: `ifreq` is a live, writable buffer larger than `struct
        // ifreq` (40 bytes on Linux), holding a NUL-terminated name.
        let rc =
            unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, ifreq.as_mut_ptr()) };
        let family = u16::from_ne_bytes([ifreq[16], ifreq[17]]);
        if rc != 0 || family != libc::ARPHRD_ETHER {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&ifreq[18..24]);
        (mac != [0; 6]).then_some(mac)
    }

    /// Receives one message into `buf`: its length and what the kernel
    /// said about it. `Ok(None)` when the read timeout passed first or the
    /// kernel left out the interface or hop limit.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Received)>> {
        // u64 elements keep the control buffer aligned for `cmsghdr`.
        let mut control = [0u64; CONTROL_LEN / 8];
        let mut from = empty_sockaddr();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        #[allow(unsafe_code)]
        // Safety: an all-zero msghdr is valid (null pointers, zero lengths);
        // every pointer is set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = CONTROL_LEN;
        #[allow(unsafe_code)]
        // Safety: `msg` points at `from`, `iov` (over `buf`) and `control`,
        // all live and writable for the lengths given, for the whole call.
        let got = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, 0) };
        if got < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        let len = usize::try_from(got).unwrap_or(0).min(buf.len());
        let control_len = msg.msg_controllen.min(CONTROL_LEN);
        let bytes: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let (ifindex, hop_limit) = read_control(&bytes[..control_len]);
        let src = Ipv6Addr::from(from.sin6_addr.s6_addr);
        Ok(ifindex.zip(hop_limit).map(|(ifindex, hop_limit)| {
            (
                len,
                Received {
                    ifindex,
                    src,
                    hop_limit,
                },
            )
        }))
    }

    /// Sends `payload` to `dst` out of interface `ifindex` (the scope of a
    /// link-local or link-scope multicast `dst`).
    pub fn send(&self, ifindex: u32, dst: Ipv6Addr, payload: &[u8]) -> io::Result<()> {
        let mut to = empty_sockaddr();
        to.sin6_addr.s6_addr = dst.octets();
        to.sin6_scope_id = ifindex;
        #[allow(unsafe_code)]
        // Safety: `payload` and `to` are live, initialised buffers of the
        // lengths passed; the fd is open while `self` lives.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        #[allow(unsafe_code)]
        // Safety: `value` is a live, initialised `T` and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn empty_sockaddr() -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
        sin6_scope_id: 0,
    }
}

/// Reads the ingress interface (`IPV6_PKTINFO`) and hop limit
/// (`IPV6_HOPLIMIT`) out of a control buffer, walking the `cmsghdr`s by
/// their byte layout (length, level, type, data aligned to a word).
fn read_control(control: &[u8]) -> (Option<u32>, Option<u8>) {
    const WORD: usize = size_of::<usize>();
    let header = size_of::<libc::cmsghdr>();
    let align = |n: usize| n.div_ceil(WORD) * WORD;
    let (mut ifindex, mut hop_limit) = (None, None);
    let mut at = 0;
    while let Some(head) = control.get(at..at + header) {
        let mut len_bytes = [0u8; WORD];
        len_bytes.copy_from_slice(&head[..WORD]);
        let len = usize::from_ne_bytes(len_bytes);
        let int_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[i..i + 4]);
            i32::from_ne_bytes(b)
        };
        let (level, kind) = (int_at(WORD), int_at(WORD + 4));
        if len < align(header) || at + len > control.len() {
            break;
        }
        let data = &control[at + align(header)..at + len];
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO && data.len() >= 20 {
            ifindex = Some(u32::from_ne_bytes([data[16], data[17], data[18], data[19]]));
        }
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT && data.len() >= 4 {
            let hops = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
            hop_limit = u8::try_from(hops).ok();
        }
        at += align(len);
    }
    (ifindex, hop_limit)
}
