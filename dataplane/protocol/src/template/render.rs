//! Rendering a parsed template with one host's values.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;

use super::{Part, Template, Var};

/// The values one rendering substitutes.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// `{{hostname}}`.
    pub hostname: &'a str,
    /// `{{name}}`.
    pub name: &'a str,
    /// `{{mac}}` and `{{mac-hyphen}}`.
    pub mac: [u8; 6],
    /// `{{ip}}`; `None` renders as nothing.
    pub ip: Option<Ipv4Addr>,
    /// `{{next-server}}`; `None` renders as nothing.
    pub next_server: Option<Ipv4Addr>,
    /// The port of `{{http-base}}` (`[http] port`).
    pub http_port: u16,
    /// `{{profile}}`.
    pub profile: &'a str,
    /// `{{label:KEY}}`; a missing key renders as nothing (configuration
    /// validation makes sure a host has every label its template uses).
    pub labels: &'a BTreeMap<String, String>,
}

impl Template {
    /// Appends the template rendered with `vars` to `out`. Cannot fail.
    pub fn render_into(&self, vars: &Vars<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Text(range) => {
                    out.extend_from_slice(self.source.as_bytes().get(range.clone()).unwrap_or(&[]));
                }
                Part::Var(var) => write_var(var, vars, out),
            }
        }
    }

    /// The template rendered with `vars`.
    pub fn render(&self, vars: &Vars<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source.len() + 64);
        self.render_into(vars, &mut out);
        out
    }
}

fn write_var(var: &Var, vars: &Vars<'_>, out: &mut Vec<u8>) {
    match var {
        Var::Hostname => out.extend_from_slice(vars.hostname.as_bytes()),
        Var::Name => out.extend_from_slice(vars.name.as_bytes()),
        Var::Mac => write_mac(&vars.mac, b':', out),
        Var::MacHyphen => write_mac(&vars.mac, b'-', out),
        Var::Ip => write_ip(vars.ip, out),
        Var::NextServer => write_ip(vars.next_server, out),
        Var::HttpBase => {
            out.extend_from_slice(b"http://");
            if vars.next_server.is_some() {
                write_ip(vars.next_server, out);
            } else {
                // iPXE's own variable: the server its DHCP reply named.
                out.extend_from_slice(b"${next-server}");
            }
            let _ = write!(out, ":{}", vars.http_port);
        }
        Var::Profile => out.extend_from_slice(vars.profile.as_bytes()),
        Var::Label(key) => {
            if let Some(value) = vars.labels.get(key) {
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
}

/// Appends `mac` as six lower-case hex pairs joined by `sep`.
pub fn write_mac(mac: &[u8; 6], sep: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0x0f)]);
    }
}

fn write_ip(ip: Option<Ipv4Addr>, out: &mut Vec<u8>) {
    if let Some(ip) = ip {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{ip}");
    }
}
