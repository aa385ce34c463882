//! [`DhcpProbe`]: a scripted DHCPv4 client for what real clients cannot do
//! on demand — send a captured DISCOVER, a DECLINE, hundreds of relayed
//! exchanges whose ACKs are recorded — built on `dhcproto`.
//!
//! Create a probe inside a client namespace with [`crate::Netns::run_inside`];
//! its socket stays in that namespace and the probe may then be used from
//! any thread.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{HarnessError, Result};

/// A DHCP client socket: broadcast on an interface, or a relay agent.
#[derive(Debug)]
pub struct DhcpProbe {
    socket: UdpSocket,
    dest: SocketAddrV4,
    /// `Some(relay address)` when the probe acts as a relay agent.
    giaddr: Option<Ipv4Addr>,
}

/// The parts of a server reply the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Option 53.
    pub kind: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `siaddr` (next server).
    pub siaddr: Ipv4Addr,
    /// The `file` field, if set.
    pub file: Option<String>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
}

/// A BOOTREPLY as a BOOTP client sees it (no option 53 needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReply {
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// Option 53, which a reply to BOOTP must not carry.
    pub dhcp_kind: Option<MessageType>,
    /// Option 51, which a reply to BOOTP must not carry either.
    pub lease_secs: Option<u32>,
}

impl DhcpProbe {
    /// A client socket bound to `0.0.0.0:68` on `ifname` that broadcasts to
    /// `255.255.255.255:67`. Call inside the client namespace.
    pub fn broadcast(ifname: &str) -> Result<Self> {
        let socket = udp_socket(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), Some(ifname))?;
        Ok(Self {
            socket,
            dest: SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
            giaddr: None,
        })
    }

    /// A relay agent bound to `relay:67` that sends to `server:67` with
    /// `giaddr = relay`, `hops = 1`; the server answers to `relay:67`. Call
    /// inside a namespace holding `relay`.
    pub fn relay(relay: Ipv4Addr, server: Ipv4Addr) -> Result<Self> {
        let socket = udp_socket(SocketAddrV4::new(relay, 67), None)?;
        Ok(Self {
            socket,
            dest: SocketAddrV4::new(server, 67),
            giaddr: Some(relay),
        })
    }

    /// Sends `msg` (a relay stamps `giaddr` and `hops` first).
    pub fn send(&self, msg: &Message) -> Result<()> {
        let mut msg = msg.clone();
        if let Some(relay) = self.giaddr {
            msg.set_giaddr(relay).set_hops(1);
        }
        let mut buf = Vec::with_capacity(576);
        msg.encode(&mut Encoder::new(&mut buf))
            .map_err(|e| io_error("encoding a DHCP message", std::io::Error::other(e)))?;
        self.send_raw(&buf)
    }

    /// Sends `payload` as it is (e.g. a captured DISCOVER).
    pub fn send_raw(&self, payload: &[u8]) -> Result<()> {
        self.socket
            .send_to(payload, self.dest)
            .map(drop)
            .map_err(|e| io_error(&format!("sending to {}", self.dest), e))
    }

    /// Receives the next server reply (BOOTREPLY that decodes) within
    /// `limit`; `None` when nothing came.
    pub fn recv(&self, limit: Duration) -> Result<Option<Reply>> {
        self.recv_with(limit, parse_reply)
    }

    /// [`DhcpProbe::ask`] with `limit`, once more when nothing came (a
    /// datagram lost on a loaded machine).
    pub fn ask_twice(&self, msg: &Message, limit: Duration) -> Result<Option<Reply>> {
        match self.ask(msg, limit)? {
            Some(reply) => Ok(Some(reply)),
            None => self.ask(msg, limit),
        }
    }

    /// Sends the BOOTP request `msg` and waits up to `limit` for a
    /// BOOTREPLY with its xid (DHCP replies count too: the caller sees
    /// their option 53).
    pub fn ask_bootp(&self, msg: &Message, limit: Duration) -> Result<Option<BootReply>> {
        self.send(msg)?;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_with(left, parse_boot_reply)? {
                Some(reply) if reply.xid == msg.xid() => return Ok(Some(reply)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Replies of `kind` to the transactions `xids`, until all came or the
    /// line went quiet for `quiet`.
    pub fn collect(
        &self,
        xids: &[u32],
        kind: MessageType,
        quiet: Duration,
    ) -> Result<BTreeMap<u32, Reply>> {
        let mut got = BTreeMap::new();
        while got.len() < xids.len() {
            let Some(reply) = self.recv(quiet)? else {
                break;
            };
            if reply.kind == kind && xids.contains(&reply.xid) {
                got.insert(reply.xid, reply);
            }
        }
        Ok(got)
    }

    /// DORA for a batch of clients at once (`(xid, mac)`, DISCOVERs sent
    /// back to back, then the REQUESTs): the ACKs by xid. A client whose
    /// OFFER or ACK does not come while the line is busy (gaps below
    /// `quiet`) is missing from the result.
    pub fn dora_batch(
        &self,
        clients: &[(u32, [u8; 6])],
        quiet: Duration,
    ) -> Result<BTreeMap<u32, Reply>> {
        for &(xid, mac) in clients {
            self.send(&discover(mac, xid))?;
        }
        let xids: Vec<u32> = clients.iter().map(|&(xid, _)| xid).collect();
        let offers = self.collect(&xids, MessageType::Offer, quiet)?;
        for &(xid, mac) in clients {
            if let Some(offer) = offers.get(&xid) {
                let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.send(&request_selecting(mac, xid, offer.yiaddr, server))?;
            }
        }
        let wanted: Vec<u32> = offers.keys().copied().collect();
        self.collect(&wanted, MessageType::Ack, quiet)
    }

    fn recv_with<T>(&self, limit: Duration, parse: fn(&[u8]) -> Option<T>) -> Result<Option<T>> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| io_error("setting a read timeout", e))?;
            match self.socket.recv_from(&mut buf) {
                Ok((len, _)) => {
                    if let Some(reply) = parse(&buf[..len]) {
                        return Ok(Some(reply));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(io_error("receiving a DHCP reply", e)),
            }
        }
    }

    /// Sends `msg` and waits up to `limit` for a reply with its xid
    /// (replies to other transactions are dropped).
    pub fn ask(&self, msg: &Message, limit: Duration) -> Result<Option<Reply>> {
        self.send(msg)?;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(reply) if reply.xid == msg.xid() => return Ok(Some(reply)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// DISCOVER → OFFER → REQUEST → ACK for `mac`; `None` when a step got
    /// no answer within `limit`. Returns the ACK (or NAK).
    pub fn dora(&self, mac: [u8; 6], xid: u32, limit: Duration) -> Result<Option<Reply>> {
        let Some(offer) = self.ask(&discover(mac, xid), limit)? else {
            return Ok(None);
        };
        if offer.kind != MessageType::Offer {
            return Ok(Some(offer));
        }
        let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
        self.ask(&request_selecting(mac, xid, offer.yiaddr, server), limit)
    }
}

/// A DISCOVER from `mac` with the broadcast flag set.
pub fn discover(mac: [u8; 6], xid: u32) -> Message {
    let mut msg = base(mac, xid);
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::Hostname,
        OptionCode::AddressLeaseTime,
        OptionCode::ServerIdentifier,
    ]));
    msg
}

/// A REQUEST in SELECTING state: the offered `ip` from `server`.
pub fn request_selecting(mac: [u8; 6], xid: u32, ip: Ipv4Addr, server: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Request));
    opts.insert(DhcpOption::RequestedIpAddress(ip));
    opts.insert(DhcpOption::ServerIdentifier(server));
    msg
}

/// A REQUEST in INIT-REBOOT state: `ip` remembered from an earlier lease,
/// no server identifier, `ciaddr` zero.
pub fn request_init_reboot(mac: [u8; 6], xid: u32, ip: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Request));
    opts.insert(DhcpOption::RequestedIpAddress(ip));
    msg
}

/// A REQUEST in RENEWING state: `ciaddr` set, no option 50 or 54.
pub fn request_renewing(mac: [u8; 6], xid: u32, ciaddr: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    msg.set_ciaddr(ciaddr).set_flags(Flags::default());
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    msg
}

/// A RELEASE of `ciaddr` to `server`.
pub fn release(mac: [u8; 6], xid: u32, ciaddr: Ipv4Addr, server: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    msg.set_ciaddr(ciaddr).set_flags(Flags::default());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Release));
    opts.insert(DhcpOption::ServerIdentifier(server));
    msg
}

/// An INFORM from `ciaddr`.
pub fn inform(mac: [u8; 6], xid: u32, ciaddr: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    msg.set_ciaddr(ciaddr);
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Inform));
    msg
}

/// A BOOTP request (RFC 951): no option 53, broadcast flag set.
pub fn bootp_request(mac: [u8; 6], xid: u32) -> Message {
    base(mac, xid)
}

/// A DECLINE of `ip` (found in use) to `server`.
pub fn decline(mac: [u8; 6], xid: u32, ip: Ipv4Addr, server: Ipv4Addr) -> Message {
    let mut msg = base(mac, xid);
    msg.set_flags(Flags::default());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Decline));
    opts.insert(DhcpOption::RequestedIpAddress(ip));
    opts.insert(DhcpOption::ServerIdentifier(server));
    msg
}

/// A locally administered MAC numbered `n` under the prefix `tag`.
pub fn test_mac(tag: u8, n: u32) -> [u8; 6] {
    let [_, b, c, d] = n.to_be_bytes();
    [0x02, tag, 0x00, b, c, d]
}

fn base(mac: [u8; 6], xid: u32) -> Message {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.set_opcode(Opcode::BootRequest)
        .set_flags(Flags::default().set_broadcast());
    msg
}

/// Decodes a BOOTREPLY carrying option 53; anything else is `None`.
pub fn parse_reply(bytes: &[u8]) -> Option<Reply> {
    let msg = Message::decode(&mut Decoder::new(bytes)).ok()?;
    if msg.opcode() != Opcode::BootReply {
        return None;
    }
    let opts = msg.opts();
    let kind = match opts.get(OptionCode::MessageType)? {
        DhcpOption::MessageType(kind) => *kind,
        _ => return None,
    };
    let addr = |code| match opts.get(code) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let chaddr = msg.chaddr().get(..6)?.try_into().ok()?;
    Some(Reply {
        kind,
        xid: msg.xid(),
        chaddr,
        yiaddr: msg.yiaddr(),
        siaddr: msg.siaddr(),
        file: msg
            .fname_str()
            .and_then(Result::ok)
            .map(|f| f.trim_end_matches('\0').to_owned())
            .filter(|f| !f.is_empty()),
        server_id: addr(OptionCode::ServerIdentifier),
        hostname: match opts.get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(name)) => Some(name.clone()),
            _ => None,
        },
        lease_secs: match opts.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(secs)) => Some(*secs),
            _ => None,
        },
    })
}

/// Decodes any BOOTREPLY; anything else is `None`.
pub fn parse_boot_reply(bytes: &[u8]) -> Option<BootReply> {
    let msg = Message::decode(&mut Decoder::new(bytes)).ok()?;
    if msg.opcode() != Opcode::BootReply {
        return None;
    }
    let opts = msg.opts();
    Some(BootReply {
        xid: msg.xid(),
        chaddr: msg.chaddr().get(..6)?.try_into().ok()?,
        yiaddr: msg.yiaddr(),
        dhcp_kind: match opts.get(OptionCode::MessageType) {
            Some(DhcpOption::MessageType(kind)) => Some(*kind),
            _ => None,
        },
        lease_secs: match opts.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(secs)) => Some(*secs),
            _ => None,
        },
    })
}

/// The UDP payload of a capture file in `/work/shared/captures` format: the
/// hex line that follows `# UDP payload` (or, failing that, the full frame's
/// hex minus 42 bytes of Ethernet, IPv4 and UDP headers).
pub fn capture_payload(text: &str) -> Result<Vec<u8>> {
    let hex_lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    let after = |marker: &str| {
        let at = text
            .lines()
            .position(|l| l.starts_with('#') && l.to_ascii_lowercase().contains(marker))?;
        hex_lines.iter().find(|(i, _)| *i > at).map(|(_, l)| *l)
    };
    let bad = |what: &str| HarnessError::Parse {
        what: what.to_owned(),
        text: text.chars().take(400).collect(),
    };
    let (hex, skip) = match after("udp payload") {
        Some(hex) => (hex, 0),
        None => (after("frame").ok_or_else(|| bad("capture has no hex"))?, 42),
    };
    let bytes = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad("capture hex is malformed"))?;
    bytes
        .get(skip..)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad("capture frame is too short"))
}

fn udp_socket(bind: SocketAddrV4, device: Option<&str>) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| io_error("creating a UDP socket", e))?;
    socket
        .set_reuse_address(true)
        .and_then(|()| socket.set_broadcast(true))
        .map_err(|e| io_error("setting socket options", e))?;
    if let Some(device) = device {
        socket
            .bind_device(Some(device.as_bytes()))
            .map_err(|e| io_error(&format!("binding to device {device}"), e))?;
    }
    socket
        .bind(&bind.into())
        .map_err(|e| io_error(&format!("binding {bind}"), e))?;
    Ok(socket.into())
}

fn io_error(what: &str, source: std::io::Error) -> HarnessError {
    HarnessError::Io {
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_round_trips_through_the_parser() {
        let mac = test_mac(7, 0x0102_0304);
        let mut msg = discover(mac, 0xdead_beef);
        msg.set_opcode(Opcode::BootReply)
            .set_yiaddr(Ipv4Addr::new(10, 77, 0, 10))
            .set_fname_str("ipxe.efi");
        msg.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Offer));
        msg.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 1)));
        let mut buf = Vec::new();
        msg.encode(&mut Encoder::new(&mut buf)).expect("encodes");
        let reply = parse_reply(&buf).expect("a reply");
        assert_eq!(reply.kind, MessageType::Offer);
        assert_eq!(reply.xid, 0xdead_beef);
        assert_eq!(reply.chaddr, [0x02, 7, 0, 2, 3, 4]);
        assert_eq!(reply.yiaddr, Ipv4Addr::new(10, 77, 0, 10));
        assert_eq!(reply.file.as_deref(), Some("ipxe.efi"));
        assert_eq!(reply.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
    }

    #[test]
    fn requests_are_not_replies() {
        let mut buf = Vec::new();
        discover([2, 0, 0, 0, 0, 1], 1)
            .encode(&mut Encoder::new(&mut buf))
            .expect("encodes");
        assert_eq!(parse_reply(&buf), None);
    }

    #[test]
    fn shared_captures_yield_their_dhcp_payload() {
        for name in ["dhcpdiscover_ovmf.hex", "dhcpdiscover_ipxe.hex"] {
            let path = std::path::Path::new(crate::CAPTURES_DIR).join(name);
            let text = std::fs::read_to_string(&path).expect("capture readable");
            let payload = capture_payload(&text).expect("payload");
            let msg = Message::decode(&mut Decoder::new(&payload)).expect("decodes");
            assert_eq!(msg.opcode(), Opcode::BootRequest, "{name}");
            assert_eq!(msg.chaddr(), [0x52, 0x54, 0x00, 0x77, 0x00, 0x10], "{name}");
            assert_eq!(
                msg.opts().get(OptionCode::MessageType),
                Some(&DhcpOption::MessageType(MessageType::Discover)),
                "{name}"
            );
        }
    }
}
