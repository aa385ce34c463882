//! `msghdr` plumbing shared by both backends: control messages, socket
//! addresses, and the send plan that turns a transmit into `sendmsg` calls.
//!
//! Control messages and addresses are read and written as bytes, so none of
//! this needs `unsafe`; the system calls that use the pointers live in the
//! backends.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use bootwave_protocol::net::RecvMeta;

use super::tx::{Chunk, Payload, SourceHint, Transmit};

/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: a UDP datagram's payload limit, rounded down.
const GSO_MAX_BYTES: usize = 65_000;

/// Bytes of a `struct cmsghdr`.
const CMSG_HDR: usize = size_of::<libc::cmsghdr>();
/// Bytes of a `struct in_pktinfo`.
const PKTINFO_LEN: usize = size_of::<libc::in_pktinfo>();
/// Room for one `IP_PKTINFO` control message (`CMSG_SPACE`).
pub(crate) const PKTINFO_SPACE: usize = cmsg_space(PKTINFO_LEN);
/// Room for the send-side control messages: `IP_PKTINFO` and `UDP_SEGMENT`.
const SEND_CONTROL: usize = PKTINFO_SPACE + cmsg_space(size_of::<u16>());
/// Bytes of a `struct sockaddr_in`.
pub(crate) const SOCKADDR_IN_LEN: usize = size_of::<libc::sockaddr_in>();

/// Bytes with the alignment control messages and socket addresses need.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Aligned<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Default for Aligned<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

/// `CMSG_ALIGN`.
const fn cmsg_align(len: usize) -> usize {
    let word = size_of::<usize>();
    (len + word - 1) & !(word - 1)
}

/// `CMSG_SPACE`.
const fn cmsg_space(len: usize) -> usize {
    CMSG_HDR + cmsg_align(len)
}

/// Writes one control message at `at`; returns the offset after it.
/// `buf` must have `cmsg_space(data.len())` bytes from `at`.
fn put_cmsg(
    buf: &mut [u8],
    at: usize,
    level: libc::c_int,
    kind: libc::c_int,
    data: &[u8],
) -> usize {
    let word = size_of::<usize>();
    buf[at..at + word].copy_from_slice(&(CMSG_HDR + data.len()).to_ne_bytes());
    buf[at + word..at + word + 4].copy_from_slice(&level.to_ne_bytes());
    buf[at + word + 4..at + word + 8].copy_from_slice(&kind.to_ne_bytes());
    buf[at + CMSG_HDR..at + CMSG_HDR + data.len()].copy_from_slice(data);
    at + cmsg_space(data.len())
}

/// Finds `IP_PKTINFO` in received control data: `(ipi_addr, ipi_ifindex)`.
pub(crate) fn parse_pktinfo(control: &[u8]) -> Option<(Ipv4Addr, u32)> {
    let word = size_of::<usize>();
    let mut at = 0;
    while at + CMSG_HDR <= control.len() {
        let len = usize::from_ne_bytes(control[at..at + word].try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(control[at + word..at + word + 4].try_into().ok()?);
        let kind =
            libc::c_int::from_ne_bytes(control[at + word + 4..at + word + 8].try_into().ok()?);
        if len < CMSG_HDR || at + len > control.len() {
            return None;
        }
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO && len >= CMSG_HDR + PKTINFO_LEN {
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            let data = &control[at + CMSG_HDR..at + CMSG_HDR + PKTINFO_LEN];
            let ifindex = libc::c_int::from_ne_bytes(data[0..4].try_into().ok()?);
            let addr = Ipv4Addr::new(data[8], data[9], data[10], data[11]);
            return Some((addr, u32::try_from(ifindex).unwrap_or(0)));
        }
        at += cmsg_align(len);
    }
    None
}

/// Reads a received `sockaddr_in`.
pub(crate) fn parse_sockaddr_v4(name: &[u8]) -> Option<SocketAddrV4> {
    if name.len() < 8 || u16::from_ne_bytes([name[0], name[1]]) != libc::AF_INET as u16 {
        return None;
    }
    let port = u16::from_be_bytes([name[2], name[3]]);
    Some(SocketAddrV4::new(
        Ipv4Addr::new(name[4], name[5], name[6], name[7]),
        port,
    ))
}

/// The [`RecvMeta`] of a datagram from its name and control data.
pub(crate) fn recv_meta(name: &[u8], control: &[u8], local: SocketAddrV4) -> Option<RecvMeta> {
    let src = parse_sockaddr_v4(name)?;
    let (dst_ip, ifindex) = parse_pktinfo(control).unwrap_or((*local.ip(), 0));
    Some(RecvMeta {
        src: SocketAddr::V4(src),
        dst_ip: IpAddr::V4(dst_ip),
        local_port: local.port(),
        ifindex,
    })
}

/// A `sockaddr_in` for `addr`.
pub(crate) fn sockaddr_v4(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// An empty `msghdr`.
pub(crate) fn empty_msghdr() -> libc::msghdr {
    libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    }
}

/// One `sendmsg` of a plan.
#[derive(Debug)]
pub(crate) struct MsgOp {
    /// The header the system call reads; valid once the plan is built.
    pub(crate) hdr: libc::msghdr,
    /// Datagrams this call puts on the wire.
    pub(crate) datagrams: u32,
    /// Whether this call carries `UDP_SEGMENT`.
    pub(crate) gso: bool,
    iov_start: usize,
    iov_len: usize,
    control: Aligned<SEND_CONTROL>,
    control_len: usize,
}

/// Everything the `sendmsg` calls of one transmit point at.
///
/// The `msghdr`s point into the plan itself (address, iovecs, control) and
/// the iovecs into the transmit's buffers, so from [`SendPlan::build`] until
/// the last call completes neither the plan nor the transmit's buffers may
/// move or change. Moving the transmit value itself is fine: its `Vec` and
/// `Arc` contents stay where they are.
#[derive(Debug)]
pub(crate) struct SendPlan {
    name: libc::sockaddr_in,
    iov: Vec<libc::iovec>,
    ops: Vec<MsgOp>,
}

impl SendPlan {
    /// An empty plan with room for a window of `window` datagrams.
    pub(crate) fn with_capacity(window: usize) -> Self {
        Self {
            name: sockaddr_v4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            iov: Vec::with_capacity(2 * window),
            ops: Vec::with_capacity(window),
        }
    }

    /// The `sendmsg` calls, valid after [`SendPlan::build`].
    pub(crate) fn ops(&self) -> &[MsgOp] {
        &self.ops
    }

    /// Plans the calls for `transmit`, using GSO for uniform windows when
    /// `gso` is set.
    pub(crate) fn build(&mut self, transmit: &Transmit, gso: bool) {
        self.iov.clear();
        self.ops.clear();
        self.name = sockaddr_v4(transmit.dst);
        match &transmit.payload {
            Payload::Bytes(bytes) => {
                self.iov.push(iovec(bytes));
                self.push_op(0, 1, transmit.src, None, 1);
            }
            Payload::Window { file, chunks } => {
                let bytes = file.bytes();
                let segment = if gso { gso_segment(chunks) } else { None };
                match segment {
                    Some(payload_len) => self.plan_gso(bytes, chunks, payload_len, transmit.src),
                    None => {
                        for chunk in chunks {
                            let start = self.iov.len();
                            self.push_chunk(bytes, chunk);
                            self.push_op(start, 2, transmit.src, None, 1);
                        }
                    }
                }
            }
        }
        self.link();
    }

    fn plan_gso(
        &mut self,
        bytes: &[u8],
        chunks: &[Chunk],
        payload_len: usize,
        src: Option<SourceHint>,
    ) {
        let segment = 4 + payload_len;
        let per_call = (GSO_MAX_BYTES / segment).clamp(1, GSO_MAX_SEGMENTS);
        for batch in chunks.chunks(per_call) {
            let start = self.iov.len();
            for chunk in batch {
                self.push_chunk(bytes, chunk);
            }
            let gso = (batch.len() > 1).then_some(segment);
            let datagrams = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            self.push_op(start, 2 * batch.len(), src, gso, datagrams);
        }
    }

    /// Two iovecs: the header inside the transmit's chunk list and the file
    /// slice. The range was checked by `Tx::send_window`.
    fn push_chunk(&mut self, bytes: &[u8], chunk: &Chunk) {
        self.iov.push(iovec(&chunk.header));
        let slice = bytes
            .get(chunk.start..chunk.start + chunk.len)
            .unwrap_or_default();
        self.iov.push(iovec(slice));
    }

    fn push_op(
        &mut self,
        iov_start: usize,
        iov_len: usize,
        src: Option<SourceHint>,
        gso: Option<usize>,
        datagrams: u32,
    ) {
        let mut control = Aligned::default();
        let mut len = 0;
        if let Some(src) = src {
            let mut info = [0u8; PKTINFO_LEN];
            let ifindex = libc::c_int::try_from(src.ifindex).unwrap_or(0);
            info[0..4].copy_from_slice(&ifindex.to_ne_bytes());
            info[4..8].copy_from_slice(&src.addr.octets());
            len = put_cmsg(
                &mut control.0,
                len,
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                &info,
            );
        }
        if let Some(segment) = gso {
            let size = u16::try_from(segment).unwrap_or(u16::MAX);
            len = put_cmsg(
                &mut control.0,
                len,
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                &size.to_ne_bytes(),
            );
        }
        self.ops.push(MsgOp {
            hdr: empty_msghdr(),
            datagrams,
            gso: gso.is_some(),
            iov_start,
            iov_len,
            control,
            control_len: len,
        });
    }

    /// Points every `msghdr` at the plan's storage. Runs after all pushes,
    /// so no vector grows afterwards.
    fn link(&mut self) {
        let name = (&mut self.name as *mut libc::sockaddr_in).cast();
        for op in &mut self.ops {
            op.hdr.msg_name = name;
            op.hdr.msg_namelen = SOCKADDR_IN_LEN as libc::socklen_t;
            op.hdr.msg_iov = self.iov[op.iov_start..].as_mut_ptr();
            op.hdr.msg_iovlen = op.iov_len;
            op.hdr.msg_control = if op.control_len == 0 {
                std::ptr::null_mut()
            } else {
                op.control.0.as_mut_ptr().cast()
            };
            op.hdr.msg_controllen = op.control_len;
        }
    }
}

/// The payload length shared by all but the last chunk, when the last is
/// not longer and there is more than one chunk; `None` when the window must
/// go datagram by datagram.
fn gso_segment(chunks: &[Chunk]) -> Option<usize> {
    let (last, rest) = chunks.split_last()?;
    let first = rest.first()?;
    let uniform = rest.iter().all(|c| c.len == first.len) && last.len <= first.len;
    uniform.then_some(first.len)
}

/// An iovec over bytes the kernel will only read.
fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use bootwave_protocol::tftp::FileData;

    use super::*;

    fn chunk(block: u16, start: usize, len: usize) -> Chunk {
        let [hi, lo] = block.to_be_bytes();
        Chunk {
            header: [0, 3, hi, lo],
            start,
            len,
        }
    }

    fn window(chunks: Vec<Chunk>, file_len: usize) -> Transmit {
        let file: Arc<dyn FileData> = Arc::new(vec![7u8; file_len]);
        Transmit {
            sock: 0,
            dst: "127.0.0.1:69".parse().unwrap(),
            src: Some(SourceHint {
                ifindex: 1,
                addr: Ipv4Addr::LOCALHOST,
            }),
            payload: Payload::Window { file, chunks },
        }
    }

    #[test]
    fn pktinfo_round_trips_through_bytes() {
        let mut buf = [0u8; PKTINFO_SPACE];
        let mut info = [0u8; PKTINFO_LEN];
        info[0..4].copy_from_slice(&7i32.to_ne_bytes());
        info[8..12].copy_from_slice(&[127, 0, 0, 5]);
        let end = put_cmsg(&mut buf, 0, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
        assert_eq!(end, PKTINFO_SPACE);
        assert_eq!(parse_pktinfo(&buf), Some((Ipv4Addr::new(127, 0, 0, 5), 7)));
    }

    #[test]
    fn malformed_control_is_ignored() {
        assert_eq!(parse_pktinfo(&[0xff; 40]), None);
        assert_eq!(parse_pktinfo(&[0; 3]), None);
        assert_eq!(parse_sockaddr_v4(&[0; 16]), None);
    }

    #[test]
    fn sockaddr_round_trips() {
        let addr: SocketAddrV4 = "10.1.2.3:6767".parse().unwrap();
        let raw = sockaddr_v4(addr);
        let mut bytes = [0u8; 16];
        bytes[0..2].copy_from_slice(&raw.sin_family.to_ne_bytes());
        bytes[2..4].copy_from_slice(&raw.sin_port.to_ne_bytes());
        bytes[4..8].copy_from_slice(&raw.sin_addr.s_addr.to_ne_bytes());
        assert_eq!(parse_sockaddr_v4(&bytes), Some(addr));
    }

    #[test]
    fn uniform_window_becomes_gso_batches() {
        let chunks: Vec<Chunk> = (0..100)
            .map(|i| chunk(i, i as usize * 1024, 1024))
            .collect();
        let transmit = window(chunks, 200 * 1024);
        let mut plan = SendPlan::with_capacity(100);
        plan.build(&transmit, true);
        // 65000 / 1028 = 63 segments per call.
        let sizes: Vec<u32> = plan.ops().iter().map(|op| op.datagrams).collect();
        assert_eq!(sizes, vec![63, 37]);
        assert!(plan.ops().iter().all(|op| op.gso));
        assert_eq!(plan.ops()[0].hdr.msg_iovlen, 126);
        assert_eq!(plan.ops()[0].hdr.msg_controllen, SEND_CONTROL);
    }

    #[test]
    fn uneven_window_goes_datagram_by_datagram() {
        let chunks = vec![chunk(1, 0, 512), chunk(2, 512, 100), chunk(3, 612, 512)];
        let transmit = window(chunks, 2048);
        let mut plan = SendPlan::with_capacity(3);
        plan.build(&transmit, true);
        assert_eq!(plan.ops().len(), 3);
        assert!(
            plan.ops()
                .iter()
                .all(|op| !op.gso && op.hdr.msg_iovlen == 2)
        );
        assert_eq!(plan.ops()[1].hdr.msg_controllen, PKTINFO_SPACE);
    }

    #[test]
    fn short_last_chunk_still_uses_gso() {
        assert_eq!(
            gso_segment(&[chunk(1, 0, 512), chunk(2, 512, 0)]),
            Some(512)
        );
        assert_eq!(gso_segment(&[chunk(1, 0, 512)]), None);
        assert_eq!(gso_segment(&[chunk(1, 0, 100), chunk(2, 100, 512)]), None);
    }
}
