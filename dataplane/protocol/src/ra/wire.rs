//! Router Solicitation and Router Advertisement messages (RFC 4861 §4.1,
//! §4.2, §4.6.1): checked views over received ICMPv6 bytes and the
//! advertisement this server sends.
//!
//! Offsets are those of the ICMPv6 message (the kernel strips the IPv6
//! header from what a raw ICMPv6 socket delivers).

use super::ND_HOP_LIMIT;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Bytes of the advertisement [`RouterAdvertisement::emit`] writes with a
/// source link-layer address option (16 fixed + 8 option).
pub const ADVERTISEMENT_LEN: usize = RA_OPTIONS + OPTION_BLOCK;

/// Option type: source link-layer address.
pub const OPT_SOURCE_LINK_ADDR: u8 = 1;
/// Option type: prefix information.
pub const OPT_PREFIX_INFO: u8 = 3;

/// Byte offsets inside the messages.
mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: std::ops::Range<usize> = 2..4;
    pub(super) const CUR_HOP_LIMIT: usize = 4;
    pub(super) const FLAGS: usize = 5;
    pub(super) const ROUTER_LIFETIME: std::ops::Range<usize> = 6..8;
    pub(super) const REACHABLE_TIME: std::ops::Range<usize> = 8..12;
    pub(super) const RETRANS_TIMER: std::ops::Range<usize> = 12..16;
}
/// Where a solicitation's options start.
const RS_OPTIONS: usize = 8;
/// Where an advertisement's options start.
const RA_OPTIONS: usize = 16;
/// Options come in blocks of 8 bytes; their length byte counts blocks.
const OPTION_BLOCK: usize = 8;
/// The "managed address configuration" flag.
const FLAG_MANAGED: u8 = 0x80;
/// The "other configuration" flag.
const FLAG_OTHER: u8 = 0x40;

/// Why received bytes are not a valid solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaError {
    /// Shorter than the message's fixed part.
    #[error("{len} bytes is too short for ICMPv6 type {kind}")]
    TooShort {
        /// The ICMPv6 type expected.
        kind: u8,
        /// The bytes received.
        len: usize,
    },
    /// Another ICMPv6 type.
    #[error("ICMPv6 type {0} is not the message expected")]
    WrongType(u8),
    /// A code other than 0.
    #[error("ICMPv6 code {0} is not 0")]
    BadCode(u8),
    /// The IPv6 hop limit was not 255, so a router forwarded the packet.
    #[error("hop limit {0} is not 255")]
    HopLimit(u8),
    /// An option has length 0 or runs past the end of the message.
    #[error("option at byte {offset} has a bad length")]
    OptionLength {
        /// Offset of the option in the ICMPv6 message.
        offset: usize,
    },
    /// A solicitation from the unspecified address carries a link-layer
    /// address option, which RFC 4861 §6.1.1 forbids.
    #[error("a solicitation from :: carries a link-layer address")]
    LinkAddrFromUnspecified,
}

/// One Neighbor Discovery option: its type and the bytes after the type
/// and length bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    /// The option type.
    pub kind: u8,
    /// The option's bytes after type and length.
    pub body: &'a [u8],
}

/// The options of a checked message; every length was validated, so
/// iterating cannot fail.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = NdOption<'a>;

    fn next(&mut self) -> Option<NdOption<'a>> {
        let len = usize::from(*self.rest.get(1)?) * OPTION_BLOCK;
        let option = self.rest.get(..len)?;
        self.rest = &self.rest[len..];
        Some(NdOption {
            kind: option[0],
            body: &option[2..],
        })
    }
}

/// Checks that the options in `bytes[start..]` tile it exactly.
fn check_options(bytes: &[u8], start: usize) -> Result<Options<'_>, RaError> {
    let mut offset = start;
    while offset < bytes.len() {
        let blocks = bytes.get(offset + 1).copied().unwrap_or(0);
        let len = usize::from(blocks) * OPTION_BLOCK;
        if len == 0 || offset + len > bytes.len() {
            return Err(RaError::OptionLength { offset });
        }
        offset += len;
    }
    Ok(Options {
        rest: &bytes[start..],
    })
}

/// Checks type, code, hop limit and fixed length of a received message.
fn check_header(bytes: &[u8], kind: u8, fixed: usize, hop_limit: u8) -> Result<(), RaError> {
    let Some(&got) = bytes.get(field::TYPE) else {
        return Err(RaError::TooShort {
            kind,
            len: bytes.len(),
        });
    };
    if got != kind {
        return Err(RaError::WrongType(got));
    }
    if bytes.len() < fixed {
        return Err(RaError::TooShort {
            kind,
            len: bytes.len(),
        });
    }
    if bytes[field::CODE] != 0 {
        return Err(RaError::BadCode(bytes[field::CODE]));
    }
    if hop_limit != ND_HOP_LIMIT {
        return Err(RaError::HopLimit(hop_limit));
    }
    Ok(())
}

/// The Ethernet address in a source link-layer address option, when the
/// options hold one of Ethernet's size.
fn source_link_addr(options: Options<'_>) -> Option<[u8; 6]> {
    options
        .filter(|o| o.kind == OPT_SOURCE_LINK_ADDR)
        .find_map(|o| o.body.get(..6).and_then(|b| b.try_into().ok()))
}

/// A received Router Solicitation that passed RFC 4861 §6.1.1 validation
/// (except the checksum, which the kernel verifies): no accessor can panic.
#[derive(Debug, Clone, Copy)]
pub struct RouterSolicitation<'a> {
    bytes: &'a [u8],
}

impl<'a> RouterSolicitation<'a> {
    /// Validates `icmp` (the ICMPv6 message) received with IPv6 hop limit
    /// `hop_limit` from a source that is unspecified (`::`) or not.
    pub fn new_checked(
        icmp: &'a [u8],
        hop_limit: u8,
        from_unspecified: bool,
    ) -> Result<Self, RaError> {
        check_header(icmp, ROUTER_SOLICITATION, RS_OPTIONS, hop_limit)?;
        let options = check_options(icmp, RS_OPTIONS)?;
        let rs = Self { bytes: icmp };
        if from_unspecified && source_link_addr(options).is_some() {
            return Err(RaError::LinkAddrFromUnspecified);
        }
        Ok(rs)
    }

    /// The options the solicitation carries.
    pub fn options(&self) -> Options<'a> {
        Options {
            rest: &self.bytes[RS_OPTIONS..],
        }
    }

    /// The soliciting host's Ethernet address, when it sent one.
    pub fn source_link_addr(&self) -> Option<[u8; 6]> {
        source_link_addr(self.options())
    }
}

/// The fixed fields of a Router Advertisement and its source link-layer
/// address; other options are reached through [`RouterAdvertisement::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterAdvertisement {
    /// Hop limit hosts should use (0: unspecified).
    pub cur_hop_limit: u8,
    /// M flag: addresses come from DHCPv6.
    pub managed: bool,
    /// O flag: other configuration comes from DHCPv6.
    pub other: bool,
    /// Seconds the sender serves as a default router; 0: it is none.
    pub router_lifetime: u16,
    /// Reachable time in milliseconds (0: unspecified).
    pub reachable_time: u32,
    /// Retransmission timer in milliseconds (0: unspecified).
    pub retrans_timer: u32,
    /// The sender's Ethernet address (source link-layer address option).
    pub source_link_addr: Option<[u8; 6]>,
}

impl RouterAdvertisement {
    /// The least an advertisement can say: not a default router, no
    /// flags, every parameter unspecified, only the sender's link-layer
    /// address (which spares the host a neighbour solicitation).
    pub fn minimal(source_link_addr: Option<[u8; 6]>) -> Self {
        Self {
            cur_hop_limit: 0,
            managed: false,
            other: false,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_link_addr,
        }
    }

    /// Validates a received advertisement (RFC 4861 §6.1.2, checksum
    /// aside) and returns its fields and all its options.
    pub fn parse(icmp: &[u8], hop_limit: u8) -> Result<(Self, Options<'_>), RaError> {
        check_header(icmp, ROUTER_ADVERTISEMENT, RA_OPTIONS, hop_limit)?;
        let options = check_options(icmp, RA_OPTIONS)?;
        let be32 = |r: std::ops::Range<usize>| {
            u32::from_be_bytes([
                icmp[r.start],
                icmp[r.start + 1],
                icmp[r.start + 2],
                icmp[r.start + 3],
            ])
        };
        let flags = icmp[field::FLAGS];
        let ra = Self {
            cur_hop_limit: icmp[field::CUR_HOP_LIMIT],
            managed: flags & FLAG_MANAGED != 0,
            other: flags & FLAG_OTHER != 0,
            router_lifetime: u16::from_be_bytes([
                icmp[field::ROUTER_LIFETIME.start],
                icmp[field::ROUTER_LIFETIME.start + 1],
            ]),
            reachable_time: be32(field::REACHABLE_TIME),
            retrans_timer: be32(field::RETRANS_TIMER),
            source_link_addr: source_link_addr(options.clone()),
        };
        Ok((ra, options))
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        RA_OPTIONS + self.source_link_addr.map_or(0, |_| OPTION_BLOCK)
    }

    /// Writes the advertisement into `out` and returns its length
    /// ([`buffer_len`](Self::buffer_len)). The checksum stays zero: the
    /// kernel computes it for raw ICMPv6 sockets.
    pub fn emit(&self, out: &mut [u8; ADVERTISEMENT_LEN]) -> usize {
        out.fill(0);
        out[field::TYPE] = ROUTER_ADVERTISEMENT;
        out[field::CODE] = 0;
        out[field::CHECKSUM].fill(0);
        out[field::CUR_HOP_LIMIT] = self.cur_hop_limit;
        out[field::FLAGS] = (if self.managed { FLAG_MANAGED } else { 0 })
            | (if self.other { FLAG_OTHER } else { 0 });
        out[field::ROUTER_LIFETIME].copy_from_slice(&self.router_lifetime.to_be_bytes());
        out[field::REACHABLE_TIME].copy_from_slice(&self.reachable_time.to_be_bytes());
        out[field::RETRANS_TIMER].copy_from_slice(&self.retrans_timer.to_be_bytes());
        if let Some(mac) = self.source_link_addr {
            out[RA_OPTIONS] = OPT_SOURCE_LINK_ADDR;
            out[RA_OPTIONS + 1] = 1;
            out[RA_OPTIONS + 2..RA_OPTIONS + 8].copy_from_slice(&mac);
        }
        self.buffer_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Router Solicitation captured from iPXE (Debian's ipxe.efi
    /// 1.0.0+git-20190125, firmware test, MAC 52:54:00:78:00:01, from
    /// fe80::5054:ff:fe78:1 to ff02::2, hop limit 255): type 133, code 0,
    /// checksum, 4 reserved bytes, a source link-layer address option.
    const IPXE_RS: [u8; 16] = [
        0x85, 0x00, 0xd9, 0x93, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x52, 0x54, 0x00, 0x78, 0x00,
        0x01,
    ];

    #[test]
    fn solicitation_with_link_address_parses() {
        let rs = RouterSolicitation::new_checked(&IPXE_RS, 255, false).expect("valid RS");
        assert_eq!(rs.source_link_addr(), Some([0x52, 0x54, 0, 0x78, 0, 1]));
        assert_eq!(rs.options().count(), 1);
        let bare = RouterSolicitation::new_checked(&IPXE_RS[..8], 255, true).expect("bare RS");
        assert_eq!(bare.source_link_addr(), None);
        assert_eq!(bare.options().count(), 0);
    }

    #[test]
    fn invalid_solicitations_are_refused() {
        let check =
            |bytes: &[u8], hop, unspec| RouterSolicitation::new_checked(bytes, hop, unspec).err();
        assert_eq!(check(&IPXE_RS, 64, false), Some(RaError::HopLimit(64)));
        assert_eq!(
            check(&IPXE_RS, 255, true),
            Some(RaError::LinkAddrFromUnspecified)
        );
        assert_eq!(
            check(&IPXE_RS[..7], 255, false),
            Some(RaError::TooShort { kind: 133, len: 7 })
        );
        assert_eq!(
            check(&[], 255, false),
            Some(RaError::TooShort { kind: 133, len: 0 })
        );
        let mut other = IPXE_RS;
        other[0] = 135;
        assert_eq!(check(&other, 255, false), Some(RaError::WrongType(135)));
        let mut code = IPXE_RS;
        code[1] = 1;
        assert_eq!(check(&code, 255, false), Some(RaError::BadCode(1)));
        let mut zero_len = IPXE_RS;
        zero_len[9] = 0;
        assert_eq!(
            check(&zero_len, 255, false),
            Some(RaError::OptionLength { offset: 8 })
        );
        let mut long = IPXE_RS;
        long[9] = 2;
        assert_eq!(
            check(&long, 255, false),
            Some(RaError::OptionLength { offset: 8 })
        );
        assert_eq!(
            check(&IPXE_RS[..12], 255, false),
            Some(RaError::OptionLength { offset: 8 })
        );
        assert_eq!(
            check(&IPXE_RS[..9], 255, false),
            Some(RaError::OptionLength { offset: 8 })
        );
    }

    #[test]
    fn minimal_advertisement_bytes() {
        let mut out = [0xa5; ADVERTISEMENT_LEN];
        let mac = [0x02, 0, 0, 0, 0, 0x01];
        let len = RouterAdvertisement::minimal(Some(mac)).emit(&mut out);
        assert_eq!(len, ADVERTISEMENT_LEN);
        assert_eq!(
            out,
            [
                134, 0, 0, 0, // type, code, checksum (kernel)
                0, 0, 0, 0, // hop limit, flags, router lifetime 0
                0, 0, 0, 0, 0, 0, 0, 0, // reachable, retrans
                1, 1, 0x02, 0, 0, 0, 0, 0x01, // source link-layer address
            ]
        );
        let len = RouterAdvertisement::minimal(None).emit(&mut out);
        assert_eq!(len, 16);
        assert!(out.iter().skip(1).all(|b| *b == 0));
    }

    #[test]
    fn advertisement_round_trips_and_exposes_options() {
        let ra = RouterAdvertisement {
            cur_hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 1800,
            reachable_time: 30_000,
            retrans_timer: 1_000,
            source_link_addr: Some([1, 2, 3, 4, 5, 6]),
        };
        let mut out = [0; ADVERTISEMENT_LEN];
        let len = ra.emit(&mut out);
        assert_eq!(out[5], 0xc0);
        let (back, options) = RouterAdvertisement::parse(&out[..len], 255).expect("valid RA");
        assert_eq!(back, ra);
        assert_eq!(
            options.map(|o| o.kind).collect::<Vec<_>>(),
            vec![OPT_SOURCE_LINK_ADDR]
        );
        // A prefix information option (4 blocks) shows in the options.
        let mut with_prefix = out[..len].to_vec();
        with_prefix.extend_from_slice(&[OPT_PREFIX_INFO, 4]);
        with_prefix.extend_from_slice(&[0; 30]);
        let (_, options) = RouterAdvertisement::parse(&with_prefix, 255).expect("valid RA");
        let kinds: Vec<_> = options.map(|o| o.kind).collect();
        assert_eq!(kinds, vec![OPT_SOURCE_LINK_ADDR, OPT_PREFIX_INFO]);
        assert_eq!(
            RouterAdvertisement::parse(&out[..len], 1).err(),
            Some(RaError::HopLimit(1))
        );
        assert_eq!(
            RouterAdvertisement::parse(&IPXE_RS, 255).err(),
            Some(RaError::WrongType(133))
        );
    }
}
