//! What a boot event tells a wave: the few facts the stage machine reads.

use bootwave_proto::convert::parse_mac;
use bootwave_proto::v1::{self, boot_event, http_event, tftp_event};

/// The user class iPXE sends in its DHCP requests.
pub const IPXE_USER_CLASS: &str = "iPXE";

/// One boot event, reduced to what moves a host between stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<'a> {
    /// A DHCP ACK.
    Ack {
        /// Whether the request carried user class "iPXE".
        ipxe: bool,
        /// The address acknowledged.
        address: &'a str,
        /// The boot file name the ACK named.
        filename: &'a str,
    },
    /// A DHCP NAK.
    Nak {
        /// The request refused (e.g. "REQUEST").
        message: &'a str,
        /// The address concerned.
        address: &'a str,
    },
    /// A TFTP read started.
    Started {
        /// The file requested.
        file: &'a str,
        /// Its size in bytes.
        size: u64,
    },
    /// A TFTP read completed.
    Completed {
        /// The file sent.
        file: &'a str,
        /// Bytes acknowledged.
        bytes: u64,
    },
    /// A TFTP read failed.
    Failed {
        /// The file requested.
        file: &'a str,
        /// Why.
        error: &'a str,
    },
}

impl<'a> Seen<'a> {
    /// The MAC and the fact of `event`; `None` for events that move no host
    /// (no MAC, a DHCP message without ACK or NAK, an ACK to an INFORM,
    /// unknown kinds).
    pub fn from_event(event: &'a v1::BootEvent) -> Option<([u8; 6], Self)> {
        let mac = parse_mac(&event.mac)?;
        let seen = match event.kind.as_ref()? {
            boot_event::Kind::Dhcp(d) => match d.reply.as_str() {
                // An ACK to an INFORM hands out no address: no boot stage.
                "ACK" if d.message == "INFORM" => return None,
                "ACK" => Self::Ack {
                    ipxe: d.user_class == IPXE_USER_CLASS,
                    address: &d.address,
                    filename: &d.filename,
                },
                "NAK" => Self::Nak {
                    message: &d.message,
                    address: &d.address,
                },
                _ => return None,
            },
            boot_event::Kind::Tftp(t) => match t.kind() {
                tftp_event::Kind::Started => Self::Started {
                    file: &t.file,
                    size: t.size,
                },
                tftp_event::Kind::Completed => Self::Completed {
                    file: &t.file,
                    bytes: t.bytes,
                },
                // Every block went out and only the final ACK is missing:
                // the client has the file (iPXE starts an image it fetched
                // at once, often before that ACK leaves).
                tftp_event::Kind::Failed if t.error == FINAL_ACK_MISSING => Self::Completed {
                    file: &t.file,
                    bytes: t.size,
                },
                tftp_event::Kind::Failed => Self::Failed {
                    file: &t.file,
                    error: &t.error,
                },
                tftp_event::Kind::Unspecified => return None,
            },
            // An HTTP download moves a host as a TFTP transfer of the same
            // file does.
            boot_event::Kind::Http(h) => match h.kind() {
                http_event::Kind::Started => Self::Started {
                    file: &h.file,
                    size: h.size,
                },
                http_event::Kind::Completed => Self::Completed {
                    file: &h.file,
                    bytes: h.bytes,
                },
                http_event::Kind::Failed => Self::Failed {
                    file: &h.file,
                    error: &h.error,
                },
                http_event::Kind::Unspecified => return None,
            },
        };
        Some((mac, seen))
    }
}

/// The data plane's outcome text of a transfer whose final ACK never came.
const FINAL_ACK_MISSING: &str = "final ACK missing";

/// Whether the TFTP or HTTP path `file` is the boot file `named` (a leading
/// `/` and `./` do not count, nor the `http://host[:port]` or
/// `tftp://host` of a URL).
pub fn same_file(file: &str, named: &str) -> bool {
    let norm = |s: &str| {
        let path = ["http://", "tftp://"]
            .iter()
            .find_map(|scheme| s.strip_prefix(scheme))
            .map_or(s, |rest| rest.find('/').map_or("", |at| &rest[at..]));
        path.trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned()
    };
    !named.is_empty() && norm(file) == norm(named)
}

/// A byte count for people: "812 B", "1.0 MB".
pub fn human_bytes(n: u64) -> String {
    // Display only: the precision lost converting to f64 does not show.
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", f / 1e6),
        _ => format!("{:.1} GB", f / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::same_file;

    #[test]
    fn urls_name_the_path_they_point_at() {
        assert!(same_file("ipxe.efi", "http://10.0.0.1/ipxe.efi"));
        assert!(same_file(
            "/efi/ipxe.efi",
            "http://10.0.0.1:8080/efi/ipxe.efi"
        ));
        assert!(same_file("refind.pxe", "tftp://10.0.0.1/refind.pxe"));
        assert!(same_file("./refind.pxe", "refind.pxe"));
        assert!(!same_file("ipxe.efi", "http://10.0.0.1/other.efi"));
        assert!(!same_file("ipxe.efi", "http://10.0.0.1"));
        assert!(!same_file("ipxe.efi", ""));
    }
}
