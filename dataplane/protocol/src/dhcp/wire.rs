//! The BOOTP/DHCP message format (RFC 951, RFC 2131 §2): a checked view over
//! bytes.
//!
//! [`Packet::new_checked`] validates everything the fixed-layout accessors
//! rely on (length, `op`, `hlen`, the magic cookie); after it succeeds no
//! accessor can panic. Options are scanned lazily by [`Packet::options`],
//! which reports malformed option data as an error instead of panicking.

use std::net::Ipv4Addr;

use crate::dhcp::options::Options;

/// Byte offsets of the fixed header fields.
pub mod field {
    /// A byte range inside the message.
    pub type Field = core::ops::Range<usize>;

    /// Message op code (1 = BOOTREQUEST, 2 = BOOTREPLY).
    pub const OP: usize = 0;
    /// Hardware address type (1 = Ethernet).
    pub const HTYPE: usize = 1;
    /// Hardware address length.
    pub const HLEN: usize = 2;
    /// Relay hop count.
    pub const HOPS: usize = 3;
    /// Transaction id.
    pub const XID: Field = 4..8;
    /// Seconds since the client began.
    pub const SECS: Field = 8..10;
    /// Flags (bit 15: broadcast).
    pub const FLAGS: Field = 10..12;
    /// Client address (bound clients only).
    pub const CIADDR: Field = 12..16;
    /// "Your" address, given by the server.
    pub const YIADDR: Field = 16..20;
    /// Next server in the boot process.
    pub const SIADDR: Field = 20..24;
    /// Relay agent address.
    pub const GIADDR: Field = 24..28;
    /// Client hardware address.
    pub const CHADDR: Field = 28..44;
    /// Server host name (or overloaded options).
    pub const SNAME: Field = 44..108;
    /// Boot file name (or overloaded options).
    pub const FILE: Field = 108..236;
    /// The RFC 1048 magic cookie.
    pub const MAGIC: Field = 236..240;
    /// Start of the options area.
    pub const OPTIONS: usize = 240;
}

/// The RFC 1048 magic cookie that starts the options area.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// `op` of a client message.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a server message.
pub const BOOTREPLY: u8 = 2;
/// The broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// Length of the fixed header including the magic cookie.
pub const HEADER_LEN: usize = field::OPTIONS;
/// The longest message accepted: an Ethernet MTU worth of payload. Longer
/// datagrams are dropped as [`ParseError::Oversized`].
pub const MAX_MESSAGE_LEN: usize = 1500;

/// Why bytes are not a well-formed DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the 240-byte fixed header and magic cookie.
    #[error("message shorter than the fixed header")]
    Truncated,
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message longer than {MAX_MESSAGE_LEN} bytes")]
    Oversized,
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    #[error("op is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp,
    /// `hlen` is zero or larger than the 16-byte `chaddr` field.
    #[error("hardware address length is zero or above 16")]
    BadHlen,
    /// The options area does not start with the magic cookie.
    #[error("bad magic cookie")]
    BadCookie,
    /// An option's length byte or data runs past the end of its area.
    #[error("option runs past the end of its area")]
    OptionOverrun,
    /// Option 52 is malformed (length not 1, value not 1..=3) or repeated.
    #[error("malformed option overload")]
    BadOverload,
    /// Option 52 appears inside a `file` or `sname` field it overloads.
    #[error("option overload inside an overloaded field")]
    NestedOverload,
}

/// A read-only view of a DHCP message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them; accessors may then panic on short
    /// input. Use [`Packet::new_checked`] for anything from the network.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps bytes after checking length, `op`, `hlen` and the magic cookie.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// The checks behind [`Packet::new_checked`].
    pub fn check(&self) -> Result<(), ParseError> {
        let data = self.buffer.as_ref();
        if data.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::Oversized);
        }
        if data.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if !matches!(data[field::OP], BOOTREQUEST | BOOTREPLY) {
            return Err(ParseError::BadOp);
        }
        if !(1..=16).contains(&data[field::HLEN]) {
            return Err(ParseError::BadHlen);
        }
        if data[field::MAGIC] != MAGIC_COOKIE {
            return Err(ParseError::BadCookie);
        }
        Ok(())
    }

    /// The underlying bytes.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn ip(&self, f: field::Field) -> Ipv4Addr {
        let b = &self.bytes()[f];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// `op`.
    pub fn op(&self) -> u8 {
        self.bytes()[field::OP]
    }

    /// `htype`.
    pub fn htype(&self) -> u8 {
        self.bytes()[field::HTYPE]
    }

    /// `hlen` (1..=16 after [`Packet::new_checked`]).
    pub fn hlen(&self) -> u8 {
        self.bytes()[field::HLEN]
    }

    /// `hops`.
    pub fn hops(&self) -> u8 {
        self.bytes()[field::HOPS]
    }

    /// `xid`.
    pub fn xid(&self) -> u32 {
        let b = &self.bytes()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// `secs`.
    pub fn secs(&self) -> u16 {
        let b = &self.bytes()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// `flags`.
    pub fn flags(&self) -> u16 {
        let b = &self.bytes()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Whether the client asked for broadcast replies.
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    /// `ciaddr`.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip(field::CIADDR)
    }

    /// `yiaddr`.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip(field::YIADDR)
    }

    /// `siaddr`.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.ip(field::SIADDR)
    }

    /// `giaddr`.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip(field::GIADDR)
    }

    /// The whole 16-byte `chaddr` field.
    pub fn chaddr(&self) -> &[u8] {
        &self.bytes()[field::CHADDR]
    }

    /// The Ethernet address, when `htype` is 1 and `hlen` is 6.
    pub fn ethernet_addr(&self) -> Option<[u8; 6]> {
        if self.htype() != 1 || self.hlen() != 6 {
            return None;
        }
        let c = self.chaddr();
        Some([c[0], c[1], c[2], c[3], c[4], c[5]])
    }

    /// The `sname` field.
    pub fn sname(&self) -> &[u8] {
        &self.bytes()[field::SNAME]
    }

    /// The `file` field.
    pub fn file(&self) -> &[u8] {
        &self.bytes()[field::FILE]
    }

    /// The options area after the magic cookie.
    pub fn options_area(&self) -> &[u8] {
        &self.bytes()[field::OPTIONS..]
    }

    /// Scans the options, following an option 52 overload into `file` and
    /// then `sname` (RFC 2131 §4.1).
    pub fn options(&self) -> Options<'_> {
        Options::new(self.options_area(), self.file(), self.sname())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid request: Ethernet, the given MAC, cookie, options.
    pub(crate) fn request(mac: [u8; 6], options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m[field::OP] = BOOTREQUEST;
        m[field::HTYPE] = 1;
        m[field::HLEN] = 6;
        m[field::XID].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        m[28..34].copy_from_slice(&mac);
        m[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m
    }

    #[test]
    fn fields_read_back() {
        let mut m = request([1, 2, 3, 4, 5, 6], &[255]);
        m[field::FLAGS].copy_from_slice(&[0x80, 0]);
        m[field::GIADDR].copy_from_slice(&[10, 0, 0, 1]);
        let p = Packet::new_checked(&m[..]).expect("valid");
        assert_eq!(p.op(), BOOTREQUEST);
        assert_eq!(p.xid(), 0x1234_5678);
        assert!(p.broadcast());
        assert_eq!(p.giaddr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.ethernet_addr(), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(p.options_area(), &[255]);
    }

    #[test]
    fn rejects_malformed_headers() {
        let good = request([1; 6], &[255]);
        let check = |m: &[u8]| Packet::new_checked(m).err();
        assert_eq!(check(&good[..239]), Some(ParseError::Truncated));
        assert_eq!(check(&[]), Some(ParseError::Truncated));
        assert_eq!(
            check(&vec![0u8; MAX_MESSAGE_LEN + 1]),
            Some(ParseError::Oversized)
        );
        let mut m = good.clone();
        m[field::OP] = 3;
        assert_eq!(check(&m), Some(ParseError::BadOp));
        let mut m = good.clone();
        m[field::HLEN] = 0;
        assert_eq!(check(&m), Some(ParseError::BadHlen));
        m[field::HLEN] = 17;
        assert_eq!(check(&m), Some(ParseError::BadHlen));
        let mut m = good.clone();
        m[field::MAGIC.start] = 0;
        assert_eq!(check(&m), Some(ParseError::BadCookie));
        assert_eq!(check(&good), None);
    }

    #[test]
    fn non_ethernet_has_no_mac() {
        let mut m = request([1; 6], &[255]);
        m[field::HLEN] = 8;
        let p = Packet::new_checked(&m[..]).expect("valid");
        assert_eq!(p.ethernet_addr(), None);
    }
}
