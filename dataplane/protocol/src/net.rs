//! Words shared between the driver and the protocol cores.

use std::net::{IpAddr, SocketAddr};

/// What the driver knows about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Destination address of the datagram (IP_PKTINFO `ipi_addr`): the
    /// broadcast address or one of ours.
    pub dst_ip: IpAddr,
    /// Local UDP port the datagram arrived on.
    pub local_port: u16,
    /// Ingress interface index (IP_PKTINFO `ipi_ifindex`); 0 when unknown.
    pub ifindex: u32,
}
