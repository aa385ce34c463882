//! Scalar value syntaxes of the configuration file: durations, hardware
//! addresses, client architectures, networks, address ranges and names.
//!
//! Each parser returns a human-readable reason on failure; the caller adds
//! the key and the file position.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::model::{AddrRange, ClientArch, Ipv4Net};

/// Architecture names accepted in `arch` (IANA "Processor Architecture
/// Types", option 93), in the order the summary prefers them.
pub(crate) const ARCH_NAMES: &[(&str, u16)] = &[
    ("bios", 0),
    ("pc98", 1),
    ("efi-itanium", 2),
    ("efi-ia32", 6),
    ("efi-x64", 7),
    ("efi-xscale", 8),
    ("efi-x64-alt", 9),
    ("efi-bc", 9),
    ("efi-arm32", 10),
    ("efi-arm64", 11),
    ("efi-ia32-http", 15),
    ("efi-x64-http", 16),
    ("efi-bc-http", 17),
    ("efi-arm32-http", 18),
    ("efi-arm64-http", 19),
    ("bios-http", 20),
    ("arm32-uboot", 21),
    ("arm64-uboot", 22),
    ("riscv32-efi", 25),
    ("riscv64-efi", 27),
];

/// A duration: a non-negative integer number of seconds, or a string of
/// `<integer><unit>` groups with units `ms`, `s`, `m`, `h`, `d`
/// (`"200ms"`, `"2h"`, `"1h30m"`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration (an integer number of seconds, or e.g. \"200ms\", \"30s\", \"2h\", \"1h30m\")"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let part = value.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats a duration the way the file accepts it, in the largest exact unit.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// An Ethernet address: six hex octets separated by `:` or `-`.
pub(crate) fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("`{text}` is not a MAC address (expected aa:bb:cc:dd:ee:ff)");
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = text.split(sep);
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// A client architecture by name (see [`ARCH_NAMES`]).
pub(crate) fn parse_arch_name(text: &str) -> Result<ClientArch, String> {
    let wanted = text.trim().to_ascii_lowercase();
    ARCH_NAMES
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|&(_, code)| ClientArch(code))
        .ok_or_else(|| {
            let names: Vec<&str> = ARCH_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown architecture `{text}` (use a number 0-65535 or one of {})",
                names.join(", ")
            )
        })
}

/// The preferred name of an architecture code, or its number.
pub(crate) fn arch_label(arch: ClientArch) -> String {
    ARCH_NAMES
        .iter()
        .find(|&&(_, code)| code == arch.0)
        .map_or_else(|| arch.0.to_string(), |(name, _)| (*name).to_owned())
}

/// An IPv4 address in dotted-quad form.
pub(crate) fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))
}

/// A network in CIDR form (`192.168.1.0/28`) whose host bits are zero.
pub(crate) fn parse_net(text: &str) -> Result<Ipv4Net, String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a network (expected e.g. 192.168.1.0/24)"))?;
    let addr = parse_ipv4(addr)?;
    let prefix: u8 = prefix
        .trim()
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`{prefix}` is not a prefix length (0-32)"))?;
    Ipv4Net::new(addr, prefix).ok_or_else(|| {
        let canonical = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        format!("{text} has host bits set (the network is {canonical}/{prefix})")
    })
}

/// The netmask bits of a prefix length.
pub(crate) fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// An address range `first-last` (spaces allowed around `-`), or a single
/// address.
pub(crate) fn parse_range(text: &str) -> Result<AddrRange, String> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    let start = parse_ipv4(start)?;
    let end = parse_ipv4(end)?;
    if start > end {
        return Err(format!("range {start}-{end} ends before it starts"));
    }
    Ok(AddrRange { start, end })
}

/// A host or domain name: 1-253 bytes of letters, digits, `-`, `_` and `.`.
pub(crate) fn check_name(text: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if text.is_empty() || text.len() > 253 || !text.chars().all(ok_char) {
        return Err(format!(
            "`{text}` is not a valid name (1-253 letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(())
}

/// A boot file name: 1-255 bytes of printable characters.
pub(crate) fn check_filename(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("the file name is empty".to_owned());
    }
    if text.len() > 255 {
        return Err(format!(
            "the file name is {} bytes long (at most 255)",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("the file name contains a control character".to_owned());
    }
    Ok(())
}

/// Longest path an `http = true` rule may name: its URL
/// (`http://` + a dotted quad + `:65535` + `/` + the path) must fit the 255
/// bytes of option 67.
pub const MAX_HTTP_PATH: usize = 255 - (7 + 15 + 6 + 1);

/// Writes the URL an `http = true` rule hands out for `path`:
/// `http://HOST[:PORT]/PATH`, the port left out when it is 80 and the
/// path's leading slashes trimmed. The DHCP reply (into a stack buffer),
/// `check` and the agent's `explain` all spell it with this.
pub fn write_http_boot_url(
    out: &mut impl std::fmt::Write,
    host: impl std::fmt::Display,
    port: u16,
    path: &str,
) -> std::fmt::Result {
    write!(out, "http://{host}")?;
    if port != 80 {
        write!(out, ":{port}")?;
    }
    write!(out, "/{}", path.trim_start_matches('/'))
}

/// Checks the `filename` of an `http = true` rule: a path (not already a
/// URL) of URL path characters, short enough for option 67 once made a URL.
pub(crate) fn check_http_path(text: &str) -> Result<(), String> {
    if text.contains("://") {
        return Err(
            "is already a URL; with `http = true` it is the path on this server (leave `http` out to hand out a URL as written)"
                .to_owned(),
        );
    }
    let path = text.trim_start_matches('/');
    if path.len() > MAX_HTTP_PATH {
        return Err(format!(
            "is {} bytes long; with `http = true` at most {MAX_HTTP_PATH} (the URL must fit option 67)",
            path.len()
        ));
    }
    let url_char = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%/?".contains(c);
    if let Some(bad) = text.chars().find(|&c| !url_char(c)) {
        return Err(format!(
            "contains {bad:?}, which a URL path cannot hold as is (write it percent-encoded)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_groups() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "h", "2x", "-3s", "1.5s", "s2", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_format_in_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        let d = Duration::from_millis(1500);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn macs_accept_colons_and_dashes() {
        let want = [0x02, 0, 0, 0, 0, 0xab];
        assert_eq!(parse_mac("02:00:00:00:00:ab"), Ok(want));
        assert_eq!(parse_mac("02-00-00-00-00-AB"), Ok(want));
        assert_eq!(format_mac(&want), "02:00:00:00:00:ab");
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:0:0:0:0:1",
            "02:00-00:00:00:01",
            "zz:00:00:00:00:00",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn networks_must_be_canonical() {
        let net = parse_net("192.168.1.0/28").expect("canonical");
        assert_eq!(net.broadcast(), Ipv4Addr::new(192, 168, 1, 15));
        let err = parse_net("192.168.1.1/28").expect_err("host bits");
        assert!(err.contains("192.168.1.0/28"), "{err}");
        assert!(parse_net("192.168.1.0/33").is_err());
        assert!(parse_net("192.168.1.0").is_err());
    }

    #[test]
    fn ranges_and_arches() {
        let r = parse_range("10.0.0.5 - 10.0.0.9").expect("range");
        assert_eq!(
            (r.start, r.end),
            (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 9))
        );
        assert!(parse_range("10.0.0.9-10.0.0.5").is_err());
        let single = parse_range("10.0.0.7").expect("single");
        assert_eq!(single.start, single.end);
        assert_eq!(parse_arch_name("EFI-x64"), Ok(ClientArch::EFI_X64));
        assert_eq!(parse_arch_name("efi-x64-alt"), Ok(ClientArch::EFI_X64_ALT));
        assert!(parse_arch_name("amiga").is_err());
        assert_eq!(arch_label(ClientArch(9)), "efi-x64-alt");
        assert_eq!(arch_label(ClientArch(4000)), "4000");
    }
}
