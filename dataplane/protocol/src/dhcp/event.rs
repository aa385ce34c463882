//! What happened to each message: events for observability and drop
//! counters.
//!
//! An [`Event`] is a fixed-size `Copy` value (no heap, no borrow) that the
//! driver may forward to logs or metrics. [`DropCounters`] counts, per
//! [`DropReason`], the messages that got no reply.

use std::net::Ipv4Addr;

use crate::config::ClientArch;
use crate::dhcp::options::MessageType;
use crate::dhcp::wire::ParseError;

/// Why a message got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than the fixed header.
    Truncated,
    /// Longer than the largest accepted message.
    Oversized,
    /// `op` is neither request nor reply.
    BadOp,
    /// `hlen` zero or above 16.
    BadHlen,
    /// Bad magic cookie.
    BadCookie,
    /// An option runs past the end of its area.
    OptionOverrun,
    /// Malformed or repeated option 52.
    BadOverload,
    /// Option 52 inside an overloaded field.
    NestedOverload,
    /// A BOOTREPLY or a server message type (OFFER, ACK, NAK).
    NotRequest,
    /// Not Ethernet (`htype` 1, `hlen` 6).
    UnsupportedHardware,
    /// Another shard owns this client.
    NotOurShard,
    /// A BOOTP request while BOOTP is off.
    BootpDisabled,
    /// Option 53 holds an unknown type.
    UnknownMessageType,
    /// No declared subnet for the relay or the ingress interface.
    NoSubnet,
    /// The driver gave no server address for the ingress interface.
    NoServerAddress,
    /// An unknown client on a subnet that denies them.
    UnknownClient,
    /// This shard's slice of the pool is exhausted.
    NoAddress,
    /// A REQUEST that selected another server.
    OtherServer,
    /// A REQUEST without the address it asks for.
    MissingAddress,
    /// INIT-REBOOT from a client this server has no record of (RFC 2131
    /// §4.3.2: stay silent).
    NoRecord,
    /// A NAK was due, but the server is not authoritative.
    NotAuthoritative,
    /// DECLINE or RELEASE of an address the client does not hold.
    NotHeld,
    /// The output buffer is too small for a reply.
    BufferTooSmall,
    /// A ping-check result for an unknown or finished probe.
    StaleProbe,
    /// `chaddr` is zero, broadcast or multicast: no client has it.
    BadChaddr,
    /// `ciaddr` is outside the subnet the datagram came from or, not
    /// relayed, differs from the IP source address: no reply goes there.
    BadCiaddr,
    /// A relayed datagram from a source that `dhcp.relays` does not list.
    UntrustedRelay,
    /// A BOOTP client without a fixed address on a subnet without
    /// `dynamic-bootp`.
    BootpNotDynamic,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 28] = [
        Self::Truncated,
        Self::Oversized,
        Self::BadOp,
        Self::BadHlen,
        Self::BadCookie,
        Self::OptionOverrun,
        Self::BadOverload,
        Self::NestedOverload,
        Self::NotRequest,
        Self::UnsupportedHardware,
        Self::NotOurShard,
        Self::BootpDisabled,
        Self::UnknownMessageType,
        Self::NoSubnet,
        Self::NoServerAddress,
        Self::UnknownClient,
        Self::NoAddress,
        Self::OtherServer,
        Self::MissingAddress,
        Self::NoRecord,
        Self::NotAuthoritative,
        Self::NotHeld,
        Self::BufferTooSmall,
        Self::StaleProbe,
        Self::BadChaddr,
        Self::BadCiaddr,
        Self::UntrustedRelay,
        Self::BootpNotDynamic,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Truncated => Self::Truncated,
            ParseError::Oversized => Self::Oversized,
            ParseError::BadOp => Self::BadOp,
            ParseError::BadHlen => Self::BadHlen,
            ParseError::BadCookie => Self::BadCookie,
            ParseError::OptionOverrun => Self::OptionOverrun,
            ParseError::BadOverload => Self::BadOverload,
            ParseError::NestedOverload => Self::NestedOverload,
        }
    }
}

/// Count of dropped messages per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    /// Counts one drop.
    pub(crate) fn bump(&mut self, reason: DropReason) {
        self.counts[reason.index()] += 1;
    }

    /// Drops for `reason` so far.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Every reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    /// Drops for all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Why a REQUEST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NakReason {
    /// The address is not on the client's network.
    WrongSubnet,
    /// The address is not this server's (shard's) to give to this client.
    NotOurs,
    /// The client's lease on it has ended and the address is taken or
    /// unknown.
    LeaseGone,
    /// A SELECTING REQUEST for an address this server did not offer to
    /// the client.
    NotOffered,
}

/// How a message was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An OFFER was sent.
    Offered,
    /// An ACK was sent.
    Acked,
    /// An ACK to an INFORM was sent.
    Informed,
    /// A NAK was sent.
    Nacked(NakReason),
    /// A BOOTREPLY was sent to a BOOTP client.
    BootReply,
    /// The client released its address.
    Released,
    /// The client declined its address.
    Declined,
    /// The address is being ping-checked before the OFFER.
    Probing,
    /// No reply.
    Dropped(DropReason),
}

/// A byte string of at most `N` bytes, cut when longer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortBytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> ShortBytes<N> {
    /// The first `N` (at most 255) bytes of `b`.
    pub fn new(b: &[u8]) -> Self {
        let len = b.len().min(N).min(255);
        let mut bytes = [0u8; N];
        bytes[..len].copy_from_slice(&b[..len]);
        Self {
            len: len as u8, // ≤ 255 by the `min` above.
            bytes,
        }
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for ShortBytes<N> {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl<const N: usize> std::fmt::Debug for ShortBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One handled message, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Option 53 (`None`: BOOTP, or the message did not parse that far).
    pub message: Option<MessageType>,
    /// Transaction id.
    pub xid: u32,
    /// Client MAC (zero if unknown).
    pub mac: [u8; 6],
    /// Option 93.
    pub arch: Option<ClientArch>,
    /// Whether option 77 was present.
    pub user_class: bool,
    /// The start of option 77 as sent (iPXE sends the bare `iPXE`;
    /// RFC 3004 clients frame each class with a length byte); empty when
    /// absent. See [`Event::user_class_text`].
    pub user_class_value: ShortBytes<32>,
    /// Whether option 175 was present.
    pub ipxe_encap: bool,
    /// The start of option 60.
    pub vendor_class: ShortBytes<32>,
    /// The boot file chosen (cut to 64 bytes).
    pub boot_file: ShortBytes<64>,
    /// The address offered, acknowledged, released or declined.
    pub addr: Option<Ipv4Addr>,
    /// What the server did.
    pub verdict: Verdict,
    /// The lease time an ACK granted, in seconds.
    pub lease_secs: Option<u32>,
}

impl Event {
    /// Option 77 as text: a single RFC 3004 length-framed class is
    /// unwrapped, a bare string (as iPXE sends it) is kept as is.
    pub fn user_class_text(&self) -> std::borrow::Cow<'_, str> {
        let raw = self.user_class_value.as_bytes();
        let framed = raw
            .split_first()
            .filter(|(len, rest)| usize::from(**len) == rest.len() && !rest.is_empty());
        String::from_utf8_lossy(framed.map_or(raw, |(_, rest)| rest))
    }
}

impl Default for Event {
    fn default() -> Self {
        Self {
            message: None,
            xid: 0,
            mac: [0; 6],
            arch: None,
            user_class: false,
            user_class_value: ShortBytes::default(),
            ipxe_encap: false,
            vendor_class: ShortBytes::default(),
            boot_file: ShortBytes::default(),
            addr: None,
            verdict: Verdict::Dropped(DropReason::Truncated),
            lease_secs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_per_reason() {
        let mut c = DropCounters::default();
        c.bump(DropReason::BadCookie);
        c.bump(DropReason::BadCookie);
        c.bump(DropReason::StaleProbe);
        assert_eq!(c.get(DropReason::BadCookie), 2);
        assert_eq!(c.get(DropReason::StaleProbe), 1);
        assert_eq!(c.get(DropReason::Truncated), 0);
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().count(), DropReason::ALL.len());
    }

    #[test]
    fn reasons_have_distinct_slots() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn user_class_text_unwraps_one_framed_class() {
        let with = |raw: &[u8]| Event {
            user_class_value: ShortBytes::new(raw),
            ..Event::default()
        };
        assert_eq!(with(b"iPXE").user_class_text(), "iPXE");
        assert_eq!(with(b"\x04iPXE").user_class_text(), "iPXE");
        assert_eq!(with(b"\x05iPXE").user_class_text(), "\u{5}iPXE");
        assert_eq!(with(b"").user_class_text(), "");
    }

    #[test]
    fn short_bytes_cut() {
        let s = ShortBytes::<4>::new(b"PXEClient");
        assert_eq!(s.as_bytes(), b"PXEC");
        assert!(ShortBytes::<4>::default().is_empty());
    }
}
