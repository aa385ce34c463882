//! Renders a converted draft as commented bootwave TOML.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::convert::{Draft, RuleOut, SubnetDraft};

/// The TOML text of `draft`; `files` names the input files by number (the
/// main file first).
pub(crate) fn emit(draft: &Draft, files: &[String]) -> String {
    let origin = files.first().map_or("?", String::as_str);
    let name =
        |pos: super::Pos| comment(files.get(usize::from(pos.file)).map_or("?", String::as_str));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# bootwave configuration converted from {} by `bootwave import isc-dhcpd`.",
        comment(origin)
    );
    out.push_str("# Comments name the dhcpd.conf line each entry came from. Review the\n");
    out.push_str("# importer's warnings: they list what could not be converted.\n\n");
    emit_dhcp(&mut out, draft);
    out.push_str("\n[tftp]\n");
    match &draft.tftp_root {
        Some(root) => {
            let _ = writeln!(out, "root = {}", string(root));
        }
        None => out.push_str(
            "# dhcpd.conf does not name the TFTP directory; set it here.\n# root = \"/srv/tftp\"\n",
        ),
    }
    for subnet in &draft.subnets {
        emit_subnet(&mut out, subnet, &name);
    }
    for host in &draft.hosts {
        let _ = writeln!(out, "\n[[hosts]]  # {}:{}", name(host.pos), host.pos.line);
        let _ = writeln!(out, "name = {}", string(&host.name));
        let _ = writeln!(out, "mac = {}", string(&host.mac));
        if let Some(ip) = host.fixed {
            let _ = writeln!(out, "fixed-address = \"{ip}\"");
        }
        if let Some(name) = &host.hostname {
            let _ = writeln!(out, "hostname = {}", string(name));
        }
        if let Some(profile) = &host.profile {
            let _ = writeln!(out, "profile = {}", string(profile));
        }
    }
    out
}

fn emit_dhcp(out: &mut String, draft: &Draft) {
    let d = &draft.dhcp;
    out.push_str("[dhcp]\n");
    let secs = [
        ("default-lease-time", d.default_lease),
        ("max-lease-time", d.max_lease),
        ("min-lease-time", d.min_lease),
        ("ping-timeout", d.ping_timeout),
    ];
    for (key, value) in secs {
        if let Some(v) = value {
            let _ = writeln!(out, "{key} = {v}");
        }
    }
    let flags = [
        ("authoritative", d.authoritative),
        ("allow-bootp", d.allow_bootp),
        ("use-host-decl-names", d.use_host_decl_names),
        ("ping-check", d.ping_check),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            let _ = writeln!(out, "{key} = {v}");
        }
    }
    if d.ping_check.is_none() {
        out.push_str("# dhcpd pings an address before offering it unless `ping-check false`.\nping-check = true\n");
    }
    if d.authoritative.is_none() {
        out.push_str("# dhcpd.conf is not `authoritative`: dhcpd would not NAK foreign requests.\nauthoritative = false\n");
    }
    if let Some(allow) = d.unknown_clients_allowed {
        let _ = writeln!(
            out,
            "unknown-clients = \"{}\"",
            if allow { "allow" } else { "deny" }
        );
    }
}

fn emit_subnet(out: &mut String, s: &SubnetDraft, name: &dyn Fn(super::Pos) -> String) {
    let p = &s.params;
    let _ = writeln!(out, "\n[[subnets]]  # {}:{}", name(s.pos), s.pos.line);
    let _ = writeln!(out, "network = \"{}/{}\"", s.addr, s.prefix);
    let ranges: Vec<String> = s
        .ranges
        .iter()
        .map(|(a, b)| string(&format!("{a}-{b}")))
        .collect();
    if !ranges.is_empty() {
        let _ = writeln!(out, "ranges = [{}]", ranges.join(", "));
    }
    if s.dynamic_bootp {
        out.push_str("dynamic-bootp = true\n");
        if let Some((secs, _)) = p.bootp_lease {
            let _ = writeln!(out, "dynamic-bootp-lease-length = {secs}");
        }
    }
    if let Some((routers, _)) = &p.routers {
        let _ = writeln!(out, "routers = {}", ips(routers));
    }
    if let Some((b, _)) = p.broadcast {
        let _ = writeln!(out, "broadcast = \"{b}\"");
    }
    if let Some(dns) = &p.dns {
        let _ = writeln!(out, "dns-servers = {}", ips(dns));
    }
    if let Some(ntp) = &p.ntp {
        let _ = writeln!(out, "ntp-servers = {}", ips(ntp));
    }
    if let Some(domain) = &p.domain {
        let _ = writeln!(out, "domain-name = {}", string(domain));
    }
    if let Some(offset) = p.time_offset {
        let _ = writeln!(out, "time-offset = {offset}");
    }
    if let Some(next) = p.next_server {
        let _ = writeln!(out, "next-server = \"{next}\"");
    }
    if let Some(v) = p.default_lease {
        let _ = writeln!(out, "default-lease-time = {v}");
    }
    if let Some(v) = p.max_lease {
        let _ = writeln!(out, "max-lease-time = {v}");
    }
    if let Some(allow) = p.unknown_clients {
        let _ = writeln!(
            out,
            "unknown-clients = \"{}\"",
            if allow { "allow" } else { "deny" }
        );
    }
    for rule in &s.rules {
        emit_rule(out, rule, name);
    }
}

fn emit_rule(out: &mut String, r: &RuleOut, name: &dyn Fn(super::Pos) -> String) {
    let _ = writeln!(
        out,
        "\n[[subnets.boot-rules]]  # {}:{}",
        name(r.pos),
        r.pos.line
    );
    if let Some(profile) = &r.profile {
        let _ = writeln!(out, "profile = {}", string(profile));
    }
    if let Some(arch) = &r.matchers.arch {
        let list: Vec<String> = arch.iter().map(u16::to_string).collect();
        let _ = writeln!(out, "arch = [{}]", list.join(", "));
    }
    if let Some(class) = &r.matchers.user_class {
        let _ = writeln!(out, "user-class = {}", string(class));
    }
    if let Some(encap) = r.matchers.encap {
        let _ = writeln!(out, "ipxe-encap = {encap}");
    }
    let _ = writeln!(out, "filename = {}", string(&r.filename));
    if let Some(next) = r.next_server {
        let _ = writeln!(out, "next-server = \"{next}\"");
    }
}

fn ips(list: &[Ipv4Addr]) -> String {
    let quoted: Vec<String> = list.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A TOML basic string.
fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a `#` comment (no line breaks).
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
