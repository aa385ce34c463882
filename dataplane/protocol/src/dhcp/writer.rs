//! Writing a reply straight into the caller's send buffer.
//!
//! [`ReplyWriter`] copies the header fields a reply shares with its request,
//! then takes options in order of importance. An option that no longer fits
//! the options area (within the size the client accepts) goes into the
//! unused `sname` field, announced by option 52 (RFC 2131 §4.1); one that
//! fits nowhere is dropped, and the options after it may still fit. A tail
//! option (the relay agent information, which RFC 3046 wants last) has its
//! room reserved up front. Nothing allocates.

use std::net::Ipv4Addr;

use crate::dhcp::options::code;
use crate::dhcp::wire::{BOOTREPLY, HEADER_LEN, MAGIC_COOKIE, Packet, field};

/// The smallest reply sent: a BOOTP message with a full 64-byte vendor area
/// (RFC 951). Shorter replies are padded.
pub const MIN_REPLY_LEN: usize = 300;
/// The largest DHCP message every client accepts: a 576-byte IP datagram
/// less the IP and UDP headers (RFC 2131 §2).
pub const DEFAULT_MAX_LEN: usize = 548;
/// IP plus UDP header length, subtracted from option 57.
pub const IP_UDP_HEADERS: usize = 28;

/// Why a reply could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The buffer (or the size limit) is below [`MIN_REPLY_LEN`].
    #[error("output buffer shorter than {MIN_REPLY_LEN} bytes")]
    BufferTooSmall,
}

/// The size limit of a reply: what option 57 allows (never below the
/// 548-byte minimum every client accepts), capped by `buffer_len`.
pub fn reply_limit(max_message_size: Option<u16>, buffer_len: usize) -> usize {
    let client = max_message_size
        .map(|m| usize::from(m).saturating_sub(IP_UDP_HEADERS))
        .unwrap_or(0);
    client.max(DEFAULT_MAX_LEN).min(buffer_len)
}

/// A reply being written into a borrowed buffer.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    buf: &'a mut [u8],
    /// Next option byte in the options area.
    pos: usize,
    /// End of the room for ordinary options in the options area.
    main_end: usize,
    /// Next option byte in `sname`.
    sname_pos: usize,
    /// Room reserved for the tail option (0: none).
    tail_room: usize,
    spilled: bool,
    dropped: u16,
}

impl<'a> ReplyWriter<'a> {
    /// Starts a BOOTREPLY to `request` in `buf`, at most `limit` bytes long,
    /// keeping `tail_len` bytes (code, length and data) for the tail option.
    /// Every header field is zeroed except those copied from the request:
    /// htype, hlen, xid, flags, giaddr and chaddr.
    pub fn new(
        buf: &'a mut [u8],
        limit: usize,
        request: &Packet<&[u8]>,
        tail_len: usize,
    ) -> Result<Self, WriteError> {
        let limit = limit.min(buf.len());
        if limit < MIN_REPLY_LEN {
            return Err(WriteError::BufferTooSmall);
        }
        let buf = &mut buf[..limit];
        let req = request.into_inner();
        buf[..HEADER_LEN].fill(0);
        buf[field::OP] = BOOTREPLY;
        buf[field::HTYPE] = req[field::HTYPE];
        buf[field::HLEN] = req[field::HLEN];
        buf[field::XID].copy_from_slice(&req[field::XID]);
        buf[field::FLAGS].copy_from_slice(&req[field::FLAGS]);
        buf[field::GIADDR].copy_from_slice(&req[field::GIADDR]);
        buf[field::CHADDR].copy_from_slice(&req[field::CHADDR]);
        buf[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
        // END plus room for option 52 if options spill into `sname`.
        let fixed = HEADER_LEN + 1 + 3;
        let tail_room = if fixed + tail_len <= limit {
            tail_len
        } else {
            0
        };
        Ok(Self {
            buf,
            pos: HEADER_LEN,
            main_end: limit - 4 - tail_room,
            sname_pos: field::SNAME.start,
            tail_room,
            spilled: false,
            dropped: 0,
        })
    }

    fn set_ip(&mut self, f: field::Field, ip: Ipv4Addr) {
        self.buf[f].copy_from_slice(&ip.octets());
    }

    /// Sets `ciaddr`.
    pub fn set_ciaddr(&mut self, ip: Ipv4Addr) {
        self.set_ip(field::CIADDR, ip);
    }

    /// Sets `yiaddr`.
    pub fn set_yiaddr(&mut self, ip: Ipv4Addr) {
        self.set_ip(field::YIADDR, ip);
    }

    /// Sets `siaddr`.
    pub fn set_siaddr(&mut self, ip: Ipv4Addr) {
        self.set_ip(field::SIADDR, ip);
    }

    /// Sets `flags`.
    pub fn set_flags(&mut self, flags: u16) {
        self.buf[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    /// Puts a boot file name in `file`; false (field left empty) when it
    /// does not fit with its terminating NUL.
    pub fn set_file(&mut self, name: &[u8]) -> bool {
        if name.len() >= field::FILE.len() {
            return false;
        }
        self.buf[field::FILE.start..field::FILE.start + name.len()].copy_from_slice(name);
        true
    }

    /// Appends an option; false when it fits nowhere and was dropped.
    pub fn option(&mut self, code: u8, data: &[u8]) -> bool {
        let Ok(len) = u8::try_from(data.len()) else {
            self.dropped += 1;
            return false;
        };
        let need = 2 + data.len();
        let at = if self.pos + need <= self.main_end {
            self.pos += need;
            self.pos - need
        } else if self.sname_pos + need < field::SNAME.end {
            // `<`: one byte of `sname` stays for its END.
            self.spilled = true;
            self.sname_pos += need;
            self.sname_pos - need
        } else {
            self.dropped += 1;
            return false;
        };
        self.buf[at] = code;
        self.buf[at + 1] = len;
        self.buf[at + 2..at + need].copy_from_slice(data);
        true
    }

    /// Appends an option holding one big-endian `u32`.
    pub fn option_u32(&mut self, code: u8, v: u32) -> bool {
        self.option(code, &v.to_be_bytes())
    }

    /// Appends an option holding one address.
    pub fn option_ip(&mut self, code: u8, ip: Ipv4Addr) -> bool {
        self.option(code, &ip.octets())
    }

    /// How many options were dropped for lack of room.
    pub fn dropped(&self) -> u16 {
        self.dropped
    }

    /// Closes the options (option 52 if `sname` was used, the tail option if
    /// its room was reserved, END), pads to [`MIN_REPLY_LEN`], and returns
    /// the reply length.
    pub fn finish(self, tail: Option<(u8, &[u8])>) -> usize {
        let Self { buf, mut pos, .. } = self;
        if self.spilled {
            buf[pos..pos + 3].copy_from_slice(&[code::OVERLOAD, 1, 2]);
            pos += 3;
            buf[self.sname_pos] = code::END;
        }
        if let Some((code, data)) = tail
            && let Ok(len) = u8::try_from(data.len())
            && 2 + data.len() <= self.tail_room
        {
            buf[pos] = code;
            buf[pos + 1] = len;
            buf[pos + 2..pos + 2 + data.len()].copy_from_slice(data);
            pos += 2 + data.len();
        }
        buf[pos] = code::END;
        pos += 1;
        if pos < MIN_REPLY_LEN {
            buf[pos..MIN_REPLY_LEN].fill(0);
            pos = MIN_REPLY_LEN;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::options::ClientOptions;
    use crate::dhcp::wire::tests::request;

    fn start<'b>(buf: &'b mut [u8], limit: usize, req: &[u8], tail: usize) -> ReplyWriter<'b> {
        let p = Packet::new_checked(req).expect("request");
        ReplyWriter::new(buf, limit, &p, tail).expect("room")
    }

    #[test]
    fn header_copied_and_padded() {
        let mut req = request([1, 2, 3, 4, 5, 6], &[53, 1, 1, 255]);
        req[field::FLAGS].copy_from_slice(&[0x80, 0]);
        req[field::CIADDR].copy_from_slice(&[9, 9, 9, 9]);
        let mut buf = [0xa5u8; 600];
        let mut w = start(&mut buf, 600, &req, 0);
        w.set_yiaddr(Ipv4Addr::new(10, 0, 0, 5));
        assert!(w.set_file(b"ipxe.efi"));
        assert!(w.option(53, &[2]));
        let len = w.finish(None);
        assert_eq!(len, MIN_REPLY_LEN);
        let p = Packet::new_checked(&buf[..len]).expect("reply parses");
        assert_eq!(p.op(), BOOTREPLY);
        assert_eq!(p.xid(), 0x1234_5678);
        assert!(p.broadcast());
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED, "ciaddr is not copied");
        assert_eq!(p.yiaddr(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(&p.file()[..9], b"ipxe.efi\0");
        assert!(buf[244..300].iter().all(|&b| b == 0), "padding zeroed");
    }

    #[test]
    fn spills_into_sname_then_drops() {
        let req = request([1; 6], &[255]);
        let mut buf = [0xa5u8; 1500];
        let mut w = start(&mut buf, 300, &req, 0);
        // 300 - 240 - 4 = 56 bytes of main room.
        assert!(w.option(12, &[b'a'; 50])); // 52 bytes, main
        assert!(w.option(15, &[b'b'; 30])); // sname
        assert!(w.option(6, &[1; 28])); // 30 more: 62 < 63, sname
        assert!(!w.option(42, &[2; 8])); // no room anywhere
        assert!(w.option(2, &[])); // 2 bytes: main still has 4
        assert_eq!(w.dropped(), 1);
        let len = w.finish(None);
        assert_eq!(len, 300);
        let p = Packet::new_checked(&buf[..len]).expect("reply parses");
        let codes: Vec<u8> = p.options().map(|o| o.expect("well-formed").0).collect();
        assert_eq!(codes, vec![12, 2, 52, 15, 6]);
    }

    #[test]
    fn tail_is_last_and_reserved() {
        let req = request([1; 6], &[255]);
        let mut buf = [0u8; 1500];
        let mut w = start(&mut buf, 300, &req, 6);
        assert!(w.option(12, &[b'a'; 48]));
        assert!(!w.option(12, &[b'a'; 80]));
        let len = w.finish(Some((82, &[1, 2, 9, 9])));
        let p = Packet::new_checked(&buf[..len]).expect("reply parses");
        let opts: Vec<(u8, Vec<u8>)> = p
            .options()
            .map(|o| o.map(|(c, v)| (c, v.to_vec())).expect("well-formed"))
            .collect();
        assert_eq!(opts.last(), Some(&(82, vec![1, 2, 9, 9])));
        let parsed = ClientOptions::parse(&p).expect("options");
        assert_eq!(parsed.relay_agent_info, Some(&[1u8, 2, 9, 9][..]));
    }

    #[test]
    fn small_buffers_are_refused() {
        let req = request([1; 6], &[255]);
        let p = Packet::new_checked(&req[..]).expect("request");
        let mut buf = [0u8; 299];
        assert_eq!(
            ReplyWriter::new(&mut buf, 1500, &p, 0).err(),
            Some(WriteError::BufferTooSmall)
        );
    }

    #[test]
    fn limit_follows_option_57() {
        assert_eq!(reply_limit(None, 1500), 548);
        assert_eq!(reply_limit(Some(300), 1500), 548);
        assert_eq!(reply_limit(Some(1472), 1500), 1444);
        assert_eq!(reply_limit(Some(9000), 1500), 1500);
        assert_eq!(reply_limit(None, 400), 400);
    }
}
