//! Assembling a reply: header, boot file, options by importance, and where
//! it goes.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::config::{BootRule, DEFAULT_PROFILE, DhcpSettings, Subnet, write_http_boot_url};
use crate::dhcp::event::{DropReason, Event, ShortBytes};
use crate::dhcp::options::{ClientOptions, MessageType, code};
use crate::dhcp::outcome::{CLIENT_PORT, Destination, SERVER_PORT, Transmit};
use crate::dhcp::rules::{self, ClientClass};
use crate::dhcp::snapshot::Snapshot;
use crate::dhcp::wire::{FLAG_BROADCAST, Packet};
use crate::dhcp::writer::{MIN_REPLY_LEN, ReplyWriter, reply_limit};
use crate::net::RecvMeta;

/// PXE vendor options (option 43): discovery control (sub-option 6) = 8,
/// "boot the file in the reply, no boot server discovery or menu", then end.
pub const PXE_VENDOR_OPTIONS: [u8; 4] = [6, 1, 8, 255];
/// iPXE encapsulated options (175) sent to iPXE clients: `no-pxedhcp`
/// (sub-option 176) = 1. This server already gave the boot file, so iPXE
/// skips its wait for ProxyDHCP offers (about 3 s per boot).
pub const IPXE_NO_PXEDHCP: [u8; 3] = [176, 1, 1];
/// Option 60 sent back to PXE clients.
pub const PXE_CLIENT: &[u8] = b"PXEClient";
/// Option 60 sent back to UEFI HTTP boot clients.
pub(crate) const HTTP_CLIENT: &[u8] = b"HTTPClient";
/// Option 51 value of a permanent binding.
pub const INFINITE_LEASE: u32 = u32::MAX;

/// A parsed request and where it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The message.
    pub(crate) packet: Packet<&'a [u8]>,
    /// Its options.
    pub(crate) opts: ClientOptions<'a>,
    /// Option 53 (`None`: BOOTP).
    pub(crate) kind: Option<MessageType>,
    /// The client.
    pub(crate) mac: [u8; 6],
    /// Receive metadata.
    pub(crate) meta: &'a RecvMeta,
    /// The ingress interface's addresses.
    pub(crate) iface: &'a [Ipv4Addr],
    /// The server identifier used in replies.
    pub(crate) server_id: Ipv4Addr,
    /// Index of the client's subnet in the snapshot.
    pub(crate) subnet: usize,
    /// `ciaddr` when a reply may go there (see `server::client_addr`).
    pub(crate) ciaddr: Option<Ipv4Addr>,
    /// Whether `ciaddr` is bound or reserved to the client's MAC.
    pub(crate) ciaddr_held: bool,
}

impl Request<'_> {
    /// Whether `id` (option 54) names this server.
    pub(crate) fn is_ours(&self, id: Ipv4Addr) -> bool {
        id == self.server_id || self.iface.contains(&id)
    }
}

/// What kind of reply to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK to a REQUEST.
    Ack,
    /// DHCPACK to an INFORM: no address, no lease time.
    Inform,
    /// DHCPNAK.
    Nak,
    /// BOOTREPLY to a BOOTP request.
    Bootp,
}

/// The lease time to give: the requested one clamped to the bounds, or the
/// default; in seconds.
pub(crate) fn lease_secs(settings: &DhcpSettings, subnet: &Subnet, requested: Option<u32>) -> u32 {
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(INFINITE_LEASE - 1);
    let max = secs(subnet.max_lease_time.unwrap_or(settings.max_lease_time));
    let min = secs(settings.min_lease_time).min(max);
    let default = secs(
        subnet
            .default_lease_time
            .unwrap_or(settings.default_lease_time),
    );
    requested.map_or(default.min(max), |r| r.clamp(min, max))
}

/// Where a reply goes (RFC 2131 §4.1).
///
/// Never where the kernel would have to ARP: a client with an address is
/// reached by writing its neighbour entry (as for an offer), and only when
/// the address is the client's own (bound or reserved to its MAC, or
/// granted by this very reply); otherwise the reply is broadcast on the
/// ingress link. `ciaddr` has been checked against the link and the source
/// address before (`server::client_addr`).
pub(crate) fn destination(req: &Request<'_>, kind: ReplyKind, yiaddr: Ipv4Addr) -> Destination {
    let giaddr = req.packet.giaddr();
    if !giaddr.is_unspecified() {
        return Destination::Relay(SocketAddrV4::new(giaddr, SERVER_PORT));
    }
    if kind == ReplyKind::Nak {
        return Destination::Broadcast;
    }
    if let Some(ciaddr) = req.ciaddr.filter(|_| kind != ReplyKind::Offer) {
        let granted = matches!(kind, ReplyKind::Ack | ReplyKind::Bootp) && yiaddr == ciaddr;
        if !(granted || req.ciaddr_held) {
            return Destination::Broadcast;
        }
        return Destination::Direct {
            addr: SocketAddrV4::new(ciaddr, CLIENT_PORT),
            mac: req.mac,
        };
    }
    if req.packet.broadcast() || yiaddr.is_unspecified() {
        return Destination::Broadcast;
    }
    Destination::Direct {
        addr: SocketAddrV4::new(yiaddr, CLIENT_PORT),
        mac: req.mac,
    }
}

/// Writes the reply into `out` and says where it goes.
pub(crate) fn write(
    snap: &Snapshot,
    req: &Request<'_>,
    kind: ReplyKind,
    yiaddr: Ipv4Addr,
    lease: Option<u32>,
    out: &mut [u8],
    event: &mut Event,
) -> Result<Transmit, DropReason> {
    let subnet = snap.subnet(req.subnet).ok_or(DropReason::NoSubnet)?;
    let limit = match (kind, req.opts.max_message_size) {
        (ReplyKind::Bootp, None) => MIN_REPLY_LEN,
        (_, max) => reply_limit(max, out.len()),
    };
    let tail = req
        .opts
        .relay_agent_info
        .map(|v| (code::RELAY_AGENT_INFO, v));
    let tail_len = tail.map_or(0, |(_, v)| v.len() + 2);
    let mut w = ReplyWriter::new(out, limit, &req.packet, tail_len)
        .map_err(|_| DropReason::BufferTooSmall)?;
    if kind == ReplyKind::Nak {
        if !req.packet.giaddr().is_unspecified() {
            w.set_flags(req.packet.flags() | FLAG_BROADCAST);
        }
        w.option(code::MESSAGE_TYPE, &[MessageType::Nak as u8]);
        w.option_ip(code::SERVER_ID, req.server_id);
    } else {
        fill(snap, subnet, req, kind, yiaddr, lease, &mut w, event);
    }
    Ok(Transmit {
        destination: destination(req, kind, yiaddr),
        src_ip: req.server_id,
        ifindex: req.meta.ifindex,
        len: w.finish(tail),
    })
}

/// Writes everything but a NAK's few fields, most important option first.
#[allow(clippy::too_many_arguments)]
fn fill(
    snap: &Snapshot,
    subnet: &Subnet,
    req: &Request<'_>,
    kind: ReplyKind,
    yiaddr: Ipv4Addr,
    lease: Option<u32>,
    w: &mut ReplyWriter<'_>,
    event: &mut Event,
) {
    let opts = &req.opts;
    let host = snap.host(&req.mac);
    if matches!(kind, ReplyKind::Ack | ReplyKind::Inform) {
        w.set_ciaddr(req.packet.ciaddr());
    }
    w.set_yiaddr(yiaddr);
    let class = ClientClass {
        profile: host
            .and_then(|h| h.profile.as_deref())
            .unwrap_or(DEFAULT_PROFILE),
        arch: opts.client_arch,
        user_class: opts.user_class,
        ipxe_encap: opts.ipxe_encap,
    };
    let rule = rules::select(&subnet.boot_rules, &class);
    let next_server = rule.and_then(|r| r.next_server).or(subnet.next_server);
    if let Some(ns) = next_server {
        w.set_siaddr(ns);
    }
    let http_port = snap.config().http.port;
    let file = rule.map(|r| BootFile::of(r, next_server.unwrap_or(req.server_id), http_port));
    if let Some(f) = &file {
        w.set_file(f.as_bytes());
        event.boot_file = ShortBytes::new(f.as_bytes());
    }

    let message = match kind {
        ReplyKind::Offer => Some(MessageType::Offer),
        ReplyKind::Bootp => None,
        _ => Some(MessageType::Ack),
    };
    if let Some(m) = message {
        w.option(code::MESSAGE_TYPE, &[m as u8]);
        w.option_ip(code::SERVER_ID, req.server_id);
    }
    if let Some(secs) = lease.filter(|_| message.is_some()) {
        w.option_u32(code::LEASE_TIME, secs);
        if secs != INFINITE_LEASE {
            w.option_u32(code::RENEWAL_TIME, secs / 2);
            w.option_u32(code::REBINDING_TIME, (u64::from(secs) * 7 / 8) as u32);
        }
    }
    w.option_ip(code::SUBNET_MASK, subnet.net.netmask());
    for opt in crate::dhcp::options::OptionIter::new(snap.subnet_options(req.subnet)).flatten() {
        if opts.wants(opt.0) {
            w.option(opt.0, opt.1);
        }
    }
    let host_name = host.and_then(|h| {
        h.hostname.as_deref().or_else(|| {
            snap.config()
                .dhcp
                .use_host_decl_names
                .then_some(h.name.as_str())
        })
    });
    if let Some(name) = host_name.filter(|_| opts.wants(code::HOST_NAME)) {
        w.option(code::HOST_NAME, name.as_bytes());
    }
    if opts.is_http_client() {
        // No PXE vendor options: HTTP boot firmware has no PXE menu.
        w.option(code::VENDOR_CLASS, HTTP_CLIENT);
    } else if opts.is_pxe() {
        w.option(code::VENDOR_CLASS, PXE_CLIENT);
        w.option(code::VENDOR_SPECIFIC, &PXE_VENDOR_OPTIONS);
    }
    if opts.is_ipxe() {
        w.option(code::IPXE_ENCAP, &IPXE_NO_PXEDHCP);
    }
    if let Some(uuid) = opts.client_uuid {
        w.option(code::CLIENT_UUID, uuid);
    }
    if let Some(ns) = next_server.filter(|_| opts.asked_for(code::TFTP_SERVER)) {
        let mut text = [0u8; 15];
        let len = dotted_quad(ns, &mut text);
        w.option(code::TFTP_SERVER, &text[..len]);
    }
    if let Some(f) = file.as_ref().filter(|_| opts.asked_for(code::BOOTFILE)) {
        w.option(code::BOOTFILE, f.as_bytes());
    }
}

/// The boot file a rule hands out: its `filename` as written, or for an
/// `http = true` rule the URL of that path on the HTTP port of `server`
/// (built on the stack: no allocation per reply).
// One lives on the stack for the length of one reply; boxing the URL would
// allocate per reply.
#[allow(clippy::large_enum_variant)]
pub(crate) enum BootFile<'a> {
    Name(&'a [u8]),
    Url { buf: [u8; 255], len: usize },
}

impl<'a> BootFile<'a> {
    /// What `rule` hands out when `server` is the next server's address and
    /// `http_port` the `[http]` port.
    pub(crate) fn of(rule: &'a BootRule, server: Ipv4Addr, http_port: u16) -> Self {
        if !rule.http {
            return Self::Name(rule.filename.as_bytes());
        }
        let mut url = UrlBuf {
            buf: [0; 255],
            len: 0,
        };
        // Cannot fail: `UrlBuf` takes every write (and cuts what does not
        // fit; the path was bounded at load, `MAX_HTTP_PATH`, so nothing is).
        let _ = write_http_boot_url(&mut url, server, http_port, &rule.filename);
        Self::Url {
            buf: url.buf,
            len: url.len,
        }
    }

    /// The bytes of the `file` field and option 67.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Name(name) => name,
            Self::Url { buf, len } => &buf[..*len],
        }
    }
}

/// A URL being written on the stack: what does not fit is cut, never
/// written out of bounds.
struct UrlBuf {
    buf: [u8; 255],
    len: usize,
}

impl std::fmt::Write for UrlBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `ip` as dotted-quad text (what option 66 carries) into `out` and
/// returns its length; "255.255.255.255" is the longest at 15 bytes.
fn dotted_quad(ip: Ipv4Addr, out: &mut [u8; 15]) -> usize {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            out[len] = b'0' + d;
            len += 1;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_quad_matches_display() {
        for ip in [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(10, 99, 100, 255),
            Ipv4Addr::new(255, 255, 255, 255),
        ] {
            let mut text = [0u8; 15];
            let len = dotted_quad(ip, &mut text);
            assert_eq!(&text[..len], ip.to_string().as_bytes());
        }
    }

    #[test]
    fn lease_time_bounds() {
        let cfg = crate::dhcp::snapshot::tests::guide_config();
        let (settings, subnet) = (&cfg.dhcp, &cfg.subnets[0]);
        assert_eq!(lease_secs(settings, subnet, None), 7200);
        assert_eq!(lease_secs(settings, subnet, Some(1)), 60);
        assert_eq!(lease_secs(settings, subnet, Some(600)), 600);
        assert_eq!(lease_secs(settings, subnet, Some(u32::MAX)), 7200);
        let mut short = subnet.clone();
        short.max_lease_time = Some(std::time::Duration::from_secs(30));
        assert_eq!(lease_secs(settings, &short, None), 30, "max below min wins");
        assert_eq!(lease_secs(settings, &short, Some(10)), 30);
    }
}
