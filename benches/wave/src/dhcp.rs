//! DHCP messages as the simulated machines send them: the UEFI firmware's
//! PXE client first, iPXE second. Option sets and values follow packets
//! captured from OVMF 2022.11 and iPXE (Debian 1.0.0+git-20190125).

use std::net::Ipv4Addr;

use dhcproto::v4::{
    Architecture, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use dhcproto::{Decodable, Encodable};

/// Which DHCP client of the boot flow speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The firmware's PXE client (no user class).
    Firmware,
    /// iPXE, after the firmware started it (user class `iPXE`).
    Ipxe,
}

/// What one message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover,
    /// A request for the offered address from the offering server.
    Request {
        addr: Ipv4Addr,
        server: Ipv4Addr,
    },
}

/// Parameter request list of OVMF's PXE client.
const FIRMWARE_PRL: [u8; 35] = [
    1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66,
    67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
];
/// Parameter request list of iPXE.
const IPXE_PRL: [u8; 23] = [
    1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175,
    203,
];
/// iPXE's encapsulated option 175 (its version and features).
const IPXE_ENCAP: [u8; 39] = [
    0xb1, 0x05, 0x01, 0x1a, 0xf4, 0x10, 0x00, 0xeb, 0x03, 0x01, 0x00, 0x00, 0x17, 0x01, 0x01, 0x24,
    0x01, 0x01, 0x13, 0x01, 0x01, 0x11, 0x01, 0x01, 0x27, 0x01, 0x01, 0x29, 0x01, 0x01, 0x15, 0x01,
    0x01, 0x1b, 0x01, 0x01, 0x12, 0x01, 0x01,
];

/// Builds one client message, relayed through `giaddr` (or broadcast on a
/// link when `giaddr` is unspecified). `secs` is the time since the client
/// started, as firmware fills it.
pub fn build(
    client: Client,
    kind: Kind,
    mac: [u8; 6],
    xid: u32,
    secs: u16,
    giaddr: Ipv4Addr,
) -> Vec<u8> {
    let mut msg = Message::new(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        giaddr,
        &mac,
    );
    msg.set_opcode(Opcode::BootRequest)
        .set_xid(xid)
        .set_secs(secs)
        .set_flags(Flags::default().set_broadcast());
    if !giaddr.is_unspecified() {
        msg.set_hops(1);
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(match kind {
        Kind::Discover => MessageType::Discover,
        Kind::Request { .. } => MessageType::Request,
    }));
    if let Kind::Request { addr, server } = kind {
        opts.insert(DhcpOption::RequestedIpAddress(addr));
        opts.insert(DhcpOption::ServerIdentifier(server));
    }
    opts.insert(DhcpOption::MaxMessageSize(1472));
    opts.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
        7u16,
    )));
    opts.insert(DhcpOption::ClientMachineIdentifier(vec![0; 17]));
    let (prl, undi, ndi_minor): (&[u8], &str, u8) = match client {
        Client::Firmware => (&FIRMWARE_PRL, "003000", 0),
        Client::Ipxe => (&IPXE_PRL, "003010", 10),
    };
    opts.insert(DhcpOption::ClientNetworkInterface(1, 3, ndi_minor));
    opts.insert(DhcpOption::ClassIdentifier(
        format!("PXEClient:Arch:00007:UNDI:{undi}").into_bytes(),
    ));
    opts.insert(DhcpOption::ParameterRequestList(
        prl.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    if client == Client::Ipxe {
        opts.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(175),
            IPXE_ENCAP.to_vec(),
        )));
        let mut id = vec![1];
        id.extend_from_slice(&mac);
        opts.insert(DhcpOption::ClientIdentifier(id));
    }
    // Encoding a message built from valid parts cannot fail.
    msg.to_vec().unwrap_or_default()
}

/// What a server's reply says, as far as a booting machine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub kind: ReplyKind,
    pub yiaddr: Ipv4Addr,
    /// Server identifier (option 54), else the source of the reply.
    pub server: Option<Ipv4Addr>,
    /// Where to fetch the boot file from: `siaddr`.
    pub next_server: Ipv4Addr,
    /// Boot file: option 67, else the `file` field.
    pub file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Offer,
    Ack,
    Nak,
}

/// Reads a server's reply; `None` for anything else (requests, garbage).
pub fn parse_reply(bytes: &[u8]) -> Option<Reply> {
    let msg = Message::from_bytes(bytes).ok()?;
    if msg.opcode() != Opcode::BootReply || msg.chaddr().len() < 6 {
        return None;
    }
    let kind = match msg.opts().msg_type()? {
        MessageType::Offer => ReplyKind::Offer,
        MessageType::Ack => ReplyKind::Ack,
        MessageType::Nak => ReplyKind::Nak,
        _ => return None,
    };
    let server = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    let file = match msg.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => Some(b.clone()),
        _ => msg.fname().map(<[u8]>::to_vec),
    }
    .map(|b| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    })
    .filter(|f| !f.is_empty());
    let mut chaddr = [0; 6];
    chaddr.copy_from_slice(&msg.chaddr()[..6]);
    Some(Reply {
        xid: msg.xid(),
        chaddr,
        kind,
        yiaddr: msg.yiaddr(),
        server,
        next_server: msg.siaddr(),
        file,
    })
}

/// Reads a client's message (for the reflector): its type, xid, MAC,
/// relay address and whether iPXE sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub msg: Message,
    pub kind: MessageType,
    pub ipxe: bool,
}

pub fn parse_request(bytes: &[u8]) -> Option<Request> {
    let msg = Message::from_bytes(bytes).ok()?;
    if msg.opcode() != Opcode::BootRequest || msg.chaddr().len() < 6 {
        return None;
    }
    let kind = msg.opts().msg_type()?;
    let ipxe = matches!(
        msg.opts().get(OptionCode::UserClass),
        Some(DhcpOption::UserClass(c)) if c.as_slice() == b"iPXE"
    );
    Some(Request { msg, kind, ipxe })
}

/// The reflector's answer to a request: OFFER or ACK with `addr`, the boot
/// file for its client, from `server`.
pub fn reflect(req: &Request, addr: Ipv4Addr, server: Ipv4Addr, file: &str) -> Option<Vec<u8>> {
    let kind = match req.kind {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => MessageType::Ack,
        _ => return None,
    };
    let mut msg = Message::new(
        Ipv4Addr::UNSPECIFIED,
        addr,
        server,
        req.msg.giaddr(),
        &req.msg.chaddr()[..6],
    );
    msg.set_opcode(Opcode::BootReply)
        .set_xid(req.msg.xid())
        .set_flags(req.msg.flags())
        .set_fname_str(file);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server));
    opts.insert(DhcpOption::AddressLeaseTime(7200));
    opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 0, 0)));
    msg.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0xb0, 0, 0, 0, 7];

    #[test]
    fn firmware_and_ipxe_discovers_carry_the_captured_identity() {
        let fw = build(
            Client::Firmware,
            Kind::Discover,
            MAC,
            7,
            0,
            Ipv4Addr::new(10, 0, 0, 2),
        );
        let req = parse_request(&fw).expect("parses");
        assert_eq!(req.kind, MessageType::Discover);
        assert!(!req.ipxe);
        assert_eq!(req.msg.giaddr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(req.msg.hops(), 1);
        assert!(matches!(
            req.msg.opts().get(OptionCode::ClassIdentifier),
            Some(DhcpOption::ClassIdentifier(v)) if v.as_slice() == b"PXEClient:Arch:00007:UNDI:003000"
        ));
        let ipxe = build(
            Client::Ipxe,
            Kind::Request {
                addr: Ipv4Addr::new(10, 1, 0, 5),
                server: Ipv4Addr::new(10, 0, 0, 1),
            },
            MAC,
            8,
            3,
            Ipv4Addr::UNSPECIFIED,
        );
        let req = parse_request(&ipxe).expect("parses");
        assert_eq!(req.kind, MessageType::Request);
        assert!(req.ipxe);
        assert_eq!(req.msg.hops(), 0);
        assert!(req.msg.opts().get(OptionCode::from(175)).is_some());
    }

    #[test]
    fn a_reflected_offer_reads_back_as_an_offer_with_its_file() {
        let fw = build(
            Client::Firmware,
            Kind::Discover,
            MAC,
            9,
            0,
            Ipv4Addr::LOCALHOST,
        );
        let req = parse_request(&fw).expect("parses");
        let offer = reflect(
            &req,
            Ipv4Addr::new(127, 16, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
            "ipxe.efi",
        )
        .expect("answer");
        let reply = parse_reply(&offer).expect("reply");
        assert_eq!(reply.kind, ReplyKind::Offer);
        assert_eq!(reply.xid, 9);
        assert_eq!(reply.chaddr, MAC);
        assert_eq!(reply.file.as_deref(), Some("ipxe.efi"));
        assert_eq!(reply.server, Some(Ipv4Addr::new(127, 0, 0, 2)));
        // Its own request is not a reply.
        assert!(parse_reply(&fw).is_none());
        assert!(parse_reply(b"garbage").is_none());
    }
}
