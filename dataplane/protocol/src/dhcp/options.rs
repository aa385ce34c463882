//! DHCP options (RFC 2132): a borrowed scanner and the request options the
//! server reads.
//!
//! [`Options`] walks the options area, then — when option 52 says so — the
//! `file` and `sname` fields, yielding `(code, data)` slices that borrow the
//! datagram. Pads are skipped, END stops an area, and an area that ends on an
//! option boundary without END is accepted. An option 52 inside an
//! overloaded field is an error (it would otherwise point the scanner back at
//! itself).

use std::net::Ipv4Addr;

use crate::config::ClientArch;

/// The HTTP boot architectures of option 93 (RFC 4578's registry):
/// 15 `efi-ia32-http` through 20 `bios-http`.
const HTTP_ARCH_FIRST: u16 = 15;
const HTTP_ARCH_LAST: u16 = 20;
use crate::dhcp::wire::{Packet, ParseError, field};

/// Option codes used by the server.
pub mod code {
    /// Pad.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Time offset.
    pub const TIME_OFFSET: u8 = 2;
    /// Routers.
    pub const ROUTERS: u8 = 3;
    /// Domain name servers.
    pub const DNS_SERVERS: u8 = 6;
    /// Host name.
    pub const HOST_NAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Broadcast address.
    pub const BROADCAST: u8 = 28;
    /// NTP servers.
    pub const NTP_SERVERS: u8 = 42;
    /// Vendor-specific information.
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_LIST: u8 = 55;
    /// Maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time.
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time.
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// TFTP server name.
    pub const TFTP_SERVER: u8 = 66;
    /// Boot file name.
    pub const BOOTFILE: u8 = 67;
    /// User class.
    pub const USER_CLASS: u8 = 77;
    /// Relay agent information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Client system architecture (RFC 4578).
    pub const CLIENT_ARCH: u8 = 93;
    /// Client network device interface (RFC 4578).
    pub const CLIENT_NDI: u8 = 94;
    /// Client machine identifier (RFC 4578).
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE encapsulated options.
    pub const IPXE_ENCAP: u8 = 175;
    /// End.
    pub const END: u8 = 255;
}

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// DHCPDISCOVER.
    Discover = 1,
    /// DHCPOFFER.
    Offer = 2,
    /// DHCPREQUEST.
    Request = 3,
    /// DHCPDECLINE.
    Decline = 4,
    /// DHCPACK.
    Ack = 5,
    /// DHCPNAK.
    Nak = 6,
    /// DHCPRELEASE.
    Release = 7,
    /// DHCPINFORM.
    Inform = 8,
}

impl MessageType {
    /// The type for an option 53 value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

/// The options of one area (options field, `file` or `sname`).
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> OptionIter<'a> {
    /// Scans `data` as a sequence of options.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<(u8, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let code = *self.data.get(self.pos)?;
            match code {
                code::PAD => self.pos += 1,
                code::END => {
                    self.pos = self.data.len();
                    return None;
                }
                _ => break,
            }
        }
        let code = self.data[self.pos];
        let value = self
            .data
            .get(self.pos + 1)
            .map(|&len| self.pos + 2..self.pos + 2 + usize::from(len))
            .and_then(|range| self.data.get(range));
        let Some(value) = value else {
            self.pos = self.data.len();
            return Some(Err(ParseError::OptionOverrun));
        };
        self.pos += 2 + value.len();
        Some(Ok((code, value)))
    }
}

/// All options of a message, following option 52 into `file` then `sname`.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    file: &'a [u8],
    sname: &'a [u8],
    iter: OptionIter<'a>,
    /// Which area is being scanned: 0 options, 1 file, 2 sname.
    area: u8,
    overload: Option<u8>,
    failed: bool,
}

impl<'a> Options<'a> {
    /// Scans `options`, then the fields option 52 names.
    pub fn new(options: &'a [u8], file: &'a [u8], sname: &'a [u8]) -> Self {
        Self {
            file,
            sname,
            iter: OptionIter::new(options),
            area: 0,
            overload: None,
            failed: false,
        }
    }

    /// Moves to the next overloaded area; false when none is left.
    fn advance_area(&mut self) -> bool {
        let overload = self.overload.unwrap_or(0);
        if self.area == 0 && overload & 1 != 0 {
            self.area = 1;
            self.iter = OptionIter::new(self.file);
            return true;
        }
        if self.area <= 1 && overload & 2 != 0 {
            self.area = 2;
            self.iter = OptionIter::new(self.sname);
            return true;
        }
        false
    }

    fn fail(&mut self, e: ParseError) -> Option<Result<(u8, &'a [u8]), ParseError>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.iter.next() {
                None if self.advance_area() => continue,
                None => return None,
                Some(Err(e)) => return self.fail(e),
                Some(Ok((code::OVERLOAD, value))) => {
                    if self.area != 0 {
                        return self.fail(ParseError::NestedOverload);
                    }
                    match value {
                        [v @ 1..=3] if self.overload.is_none() => self.overload = Some(*v),
                        _ => return self.fail(ParseError::BadOverload),
                    }
                    return Some(Ok((code::OVERLOAD, value)));
                }
                Some(Ok(opt)) => return Some(Ok(opt)),
            }
        }
    }
}

/// The request options the server acts on, borrowed from the datagram.
///
/// The first occurrence of an option wins; values of the wrong length are
/// treated as absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientOptions<'a> {
    /// Option 53 raw value.
    pub message_type: Option<u8>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 55.
    pub parameter_list: Option<&'a [u8]>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<&'a [u8]>,
    /// Option 61.
    pub client_id: Option<&'a [u8]>,
    /// Option 77.
    pub user_class: Option<&'a [u8]>,
    /// Option 82, echoed back.
    pub relay_agent_info: Option<&'a [u8]>,
    /// Option 93, first architecture listed.
    pub client_arch: Option<ClientArch>,
    /// Option 97, echoed back.
    pub client_uuid: Option<&'a [u8]>,
    /// Whether option 175 is present.
    pub ipxe_encap: bool,
    /// Option 55 as a set of codes, for [`ClientOptions::wants`].
    requested: [u64; 4],
}

impl<'a> ClientOptions<'a> {
    /// Scans every option of `packet`; any malformed option fails the whole
    /// message.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Self, ParseError> {
        let data: &'a [u8] = packet.into_inner();
        let mut o = Self::default();
        let options = Options::new(
            &data[field::OPTIONS..],
            &data[field::FILE],
            &data[field::SNAME],
        );
        for opt in options {
            let (code, v) = opt?;
            o.take(code, v);
        }
        Ok(o)
    }

    fn take(&mut self, code: u8, v: &'a [u8]) {
        fn first<T>(slot: &mut Option<T>, value: Option<T>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        let ip = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        match code {
            code::MESSAGE_TYPE => first(&mut self.message_type, v.first().copied()),
            code::REQUESTED_IP => first(&mut self.requested_ip, ip(v)),
            code::SERVER_ID => first(&mut self.server_id, ip(v)),
            code::LEASE_TIME => first(
                &mut self.lease_time,
                <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes),
            ),
            code::PARAMETER_LIST if self.parameter_list.is_none() => {
                self.parameter_list = Some(v);
                for &c in v {
                    self.requested[usize::from(c >> 6)] |= 1 << (c & 63);
                }
            }
            code::MAX_MESSAGE_SIZE => first(
                &mut self.max_message_size,
                <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes),
            ),
            code::VENDOR_CLASS => first(&mut self.vendor_class, Some(v)),
            code::CLIENT_ID => first(&mut self.client_id, Some(v)),
            code::USER_CLASS => first(&mut self.user_class, Some(v)),
            code::RELAY_AGENT_INFO => first(&mut self.relay_agent_info, Some(v)),
            code::CLIENT_ARCH => first(
                &mut self.client_arch,
                v.get(..2)
                    .map(|a| ClientArch(u16::from_be_bytes([a[0], a[1]]))),
            ),
            code::CLIENT_UUID => first(&mut self.client_uuid, Some(v)),
            code::IPXE_ENCAP => self.ipxe_encap = true,
            _ => {}
        }
    }

    /// Whether the client listed `code` in option 55; true when it sent no
    /// list at all (then every configured option is sent).
    pub fn wants(&self, code: u8) -> bool {
        self.parameter_list.is_none() || self.asked_for(code)
    }

    /// Whether the client listed `code` in option 55 (false without a list).
    pub fn asked_for(&self, code: u8) -> bool {
        self.requested[usize::from(code >> 6)] & (1 << (code & 63)) != 0
    }

    /// Whether the vendor class says this is PXE firmware (or iPXE posing
    /// as it): it starts with `PXEClient`.
    pub fn is_pxe(&self) -> bool {
        self.vendor_class
            .is_some_and(|v| v.starts_with(b"PXEClient"))
    }

    /// Whether the client is HTTP boot firmware: its vendor class starts
    /// with `HTTPClient`, or its option 93 is one of the HTTP boot
    /// architectures (15–20: `efi-ia32-http` … `bios-http`). Such a client
    /// takes only a reply that says `HTTPClient` in option 60, with a URL
    /// as its boot file.
    pub fn is_http_client(&self) -> bool {
        self.vendor_class
            .is_some_and(|v| v.starts_with(b"HTTPClient"))
            || self
                .client_arch
                .is_some_and(|a| (HTTP_ARCH_FIRST..=HTTP_ARCH_LAST).contains(&a.0))
    }

    /// Whether the client is iPXE: it sent iPXE's encapsulated options
    /// (175) or the user class `iPXE`.
    pub fn is_ipxe(&self) -> bool {
        self.ipxe_encap || self.user_class == Some(b"iPXE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::wire::Packet;
    use crate::dhcp::wire::tests::request;

    fn scan(m: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ParseError> {
        let p = Packet::new_checked(m).expect("header");
        p.options()
            .map(|o| o.map(|(c, v)| (c, v.to_vec())))
            .collect()
    }

    #[test]
    fn pads_and_end() {
        let m = request([1; 6], &[0, 0, 53, 1, 1, 0, 255, 53, 1, 3]);
        assert_eq!(scan(&m), Ok(vec![(53, vec![1])]));
    }

    #[test]
    fn missing_end_on_boundary_is_accepted() {
        let m = request([1; 6], &[53, 1, 1]);
        assert_eq!(scan(&m), Ok(vec![(53, vec![1])]));
    }

    #[test]
    fn overruns_are_errors() {
        for tail in [&[53u8][..], &[53, 2, 1], &[12, 200, 0, 0]] {
            let m = request([1; 6], tail);
            assert_eq!(scan(&m), Err(ParseError::OptionOverrun), "{tail:?}");
        }
    }

    #[test]
    fn overload_reads_file_then_sname() {
        let mut m = request([1; 6], &[52, 1, 3, 53, 1, 1, 255]);
        m[field::FILE.start..field::FILE.start + 4].copy_from_slice(&[12, 2, b'h', b'i']);
        m[field::FILE.start + 4] = 255;
        m[field::SNAME.start..field::SNAME.start + 3].copy_from_slice(&[50, 1, 9]);
        let got = scan(&m).expect("valid");
        let codes: Vec<u8> = got.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, vec![52, 53, 12, 50]);
    }

    #[test]
    fn sname_only_overload_skips_file() {
        let mut m = request([1; 6], &[52, 1, 2, 255]);
        m[field::FILE.start..field::FILE.start + 3].copy_from_slice(&[12, 1, b'x']);
        m[field::SNAME.start..field::SNAME.start + 3].copy_from_slice(&[50, 1, 9]);
        let codes: Vec<u8> = scan(&m).expect("valid").iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, vec![52, 50]);
    }

    #[test]
    fn overload_inside_overloaded_field_is_an_error() {
        let mut m = request([1; 6], &[52, 1, 1, 255]);
        m[field::FILE.start..field::FILE.start + 3].copy_from_slice(&[52, 1, 1]);
        assert_eq!(scan(&m), Err(ParseError::NestedOverload));
    }

    #[test]
    fn malformed_or_repeated_overload_is_an_error() {
        for opts in [
            &[52u8, 1, 0, 255][..],
            &[52, 1, 4],
            &[52, 2, 1, 1],
            &[52, 1, 1, 52, 1, 1],
        ] {
            let m = request([1; 6], opts);
            assert_eq!(scan(&m), Err(ParseError::BadOverload), "{opts:?}");
        }
    }

    #[test]
    fn client_options_first_wins_and_lengths_checked() {
        let m = request(
            [1; 6],
            &[
                53, 1, 3, 53, 1, 1, 50, 4, 10, 0, 0, 7, 54, 3, 1, 2, 3, 51, 4, 0, 0, 1, 0, 57, 2,
                5, 192, 93, 2, 0, 7, 77, 4, b'i', b'P', b'X', b'E', 175, 0, 55, 2, 1, 3, 255,
            ],
        );
        let p = Packet::new_checked(&m[..]).expect("header");
        let o = ClientOptions::parse(&p).expect("options");
        assert_eq!(o.message_type, Some(3));
        assert_eq!(o.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(o.server_id, None);
        assert_eq!(o.lease_time, Some(256));
        assert_eq!(o.max_message_size, Some(1472));
        assert_eq!(o.client_arch, Some(ClientArch::EFI_X64));
        assert_eq!(o.user_class, Some(&b"iPXE"[..]));
        assert!(o.ipxe_encap);
        assert!(o.wants(1) && !o.wants(6) && o.asked_for(3));
        assert!(!o.asked_for(255) && !o.asked_for(0) && !o.asked_for(64));
        let none = ClientOptions::default();
        assert!(none.wants(6) && !none.asked_for(6));
    }

    #[test]
    fn message_type_round_trip() {
        for v in 1..=8 {
            assert_eq!(MessageType::from_u8(v).map(|t| t as u8), Some(v));
        }
        assert_eq!(MessageType::from_u8(0), None);
        assert_eq!(MessageType::from_u8(9), None);
    }
}
