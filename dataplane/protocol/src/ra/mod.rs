//! IPv6 router discovery, reduced to what ends a network boot loader's wait.
//!
//! iPXE configures IPv6 next to DHCPv4 and waits for both: it sends Router
//! Solicitations (RFC 4861 §4.1) and, when no Router Advertisement comes,
//! gives up only after about 13 s. Any well-formed advertisement that
//! arrives while it solicits ends that wait; with the M and O flags clear it
//! starts no DHCPv6 either. So the data plane can answer with the least an
//! advertisement may say: router lifetime 0 ("I am not a default router"),
//! no prefix, no flags, only the source link-layer address option.
//!
//! - [`wire`]: checked parsing of solicitations and advertisements, and
//!   building the minimal advertisement.
//! - [`responder`]: the per-interface state machine that decides what to
//!   send, where and when (virtual time in, transmits out).
//!
//! The driver owns the raw ICMPv6 socket: it checks that a datagram came on
//! a served interface, hands in the hop limit and source address the kernel
//! reported, and sends each [`Transmit`] with hop limit 255 from the
//! interface's link-local address. The kernel fills the ICMPv6 checksum of
//! raw ICMPv6 sockets, so the bytes built here leave it zero.

pub mod responder;
pub mod wire;

pub use responder::{ALL_NODES, Outcome, Received, Responder, Transmit};
pub use wire::{
    ADVERTISEMENT_LEN, NdOption, ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, RaError,
    RouterAdvertisement, RouterSolicitation,
};

/// The hop limit every Neighbor Discovery message carries on the wire, and
/// the only one a receiver accepts (RFC 4861 §6.1.1): proof that the packet
/// was not forwarded by a router.
pub const ND_HOP_LIMIT: u8 = 255;
