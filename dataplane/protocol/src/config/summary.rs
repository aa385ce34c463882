//! A readable account of what a validated configuration declares.

use std::fmt;

use super::model::{BootRule, Config, FsyncPolicy, Host, Subnet, UnknownClients};
use super::values::{arch_label, format_duration, format_mac, write_http_boot_url};

impl Config {
    /// A multi-line, human-readable summary of the configuration (what
    /// `bootwave-dataplane check` prints).
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }
}

/// Display adapter returned by [`Config::summary`].
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a>(&'a Config);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        if c.interfaces.is_empty() {
            writeln!(
                f,
                "interfaces: every interface with an address inside a declared subnet"
            )?;
        } else {
            writeln!(f, "interfaces: {}", c.interfaces.join(", "))?;
        }
        let d = &c.dhcp;
        writeln!(
            f,
            "dhcp: port {}, lease {} (min {}, max {}), offer hold {}, decline quarantine {}",
            d.port,
            format_duration(d.default_lease_time),
            format_duration(d.min_lease_time),
            format_duration(d.max_lease_time),
            format_duration(d.offer_hold),
            format_duration(d.decline_quarantine),
        )?;
        writeln!(
            f,
            "      {}, bootp {}, host-decl-names {}, ping-check {}",
            if d.authoritative {
                "authoritative"
            } else {
                "not authoritative"
            },
            on_off(d.allow_bootp),
            on_off(d.use_host_decl_names),
            if d.ping_check {
                format!("on (timeout {})", format_duration(d.ping_timeout))
            } else {
                "off".to_owned()
            },
        )?;
        let t = &c.tftp;
        writeln!(
            f,
            "tftp: port {}, root {}, blksize ≤ {} (mtu {}), windowsize ≤ {}, timeout {}..{}, {} retries, ≤ {} transfers per shard",
            t.port,
            t.root.display(),
            t.max_blksize,
            t.mtu,
            t.max_windowsize,
            format_duration(t.min_timeout),
            format_duration(t.max_timeout),
            t.max_retries,
            t.max_transfers,
        )?;
        let fsync = match c.journal.fsync {
            FsyncPolicy::Always => "fsync always".to_owned(),
            FsyncPolicy::Batch(every) => format!("fsync batched every {}", format_duration(every)),
            FsyncPolicy::Never => "fsync never".to_owned(),
        };
        writeln!(f, "journal: {}, {fsync}", c.journal.dir.display())?;
        let h = &c.http;
        if h.enabled {
            writeln!(
                f,
                "http: port {}, ≤ {} connections ({} per client), header timeout {}, idle timeout {}",
                h.port,
                h.max_connections,
                h.max_connections_per_client,
                format_duration(h.header_timeout),
                format_duration(h.idle_timeout),
            )?;
        } else {
            writeln!(f, "http: off")?;
        }
        for subnet in &c.subnets {
            write_subnet(f, subnet, c.http.port)?;
        }
        let http_rules = c
            .subnets
            .iter()
            .flat_map(|s| &s.boot_rules)
            .filter(|r| r.http)
            .count();
        if http_rules > 0 && !h.enabled {
            writeln!(
                f,
                "warning: {http_rules} boot rule(s) with `http = true` hand out http:// URLs of port {}, but [http] is off here: another server must serve them",
                h.port
            )?;
        }
        for host in &c.hosts {
            write_host(f, host)?;
        }
        write!(
            f,
            "{} subnet(s), {} host(s)",
            c.subnets.len(),
            c.hosts.len()
        )
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_subnet(f: &mut fmt::Formatter<'_>, s: &Subnet, http_port: u16) -> fmt::Result {
    let pool: u64 = s
        .ranges
        .iter()
        .map(|r| u64::from(u32::from(r.end) - u32::from(r.start)) + 1)
        .sum();
    let ranges: Vec<String> = s
        .ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect();
    writeln!(
        f,
        "subnet {}: {pool} dynamic address(es) {}",
        s.net,
        if ranges.is_empty() {
            "(none)".to_owned()
        } else {
            ranges.join(", ")
        }
    )?;
    let mut details = vec![
        format!("netmask {}", s.net.netmask()),
        format!("broadcast {}", s.broadcast),
    ];
    if !s.routers.is_empty() {
        details.push(format!("routers {}", list(&s.routers)));
    }
    if !s.dns_servers.is_empty() {
        details.push(format!("dns {}", list(&s.dns_servers)));
    }
    if !s.ntp_servers.is_empty() {
        details.push(format!("ntp {}", list(&s.ntp_servers)));
    }
    if let Some(domain) = &s.domain_name {
        details.push(format!("domain {domain}"));
    }
    if let Some(offset) = s.time_offset {
        details.push(format!("time offset {offset}s"));
    }
    if let Some(next) = s.next_server {
        details.push(format!("next-server {next}"));
    }
    if let Some(lease) = s.default_lease_time {
        details.push(format!("lease {}", format_duration(lease)));
    }
    if let Some(lease) = s.max_lease_time {
        details.push(format!("max lease {}", format_duration(lease)));
    }
    details.push(match s.unknown_clients {
        UnknownClients::Allow => "unknown clients allowed".to_owned(),
        UnknownClients::Deny => "unknown clients denied".to_owned(),
    });
    writeln!(f, "  {}", details.join(", "))?;
    if s.boot_rules.is_empty() {
        writeln!(f, "  no boot rules: clients get no boot file")?;
    }
    for (i, rule) in s.boot_rules.iter().enumerate() {
        let text = RuleText {
            rule,
            next_server: rule.next_server.or(s.next_server),
            http_port,
        };
        writeln!(f, "  rule {}: {text}", i + 1)?;
    }
    Ok(())
}

/// One boot rule as `conditions → file`; an `http = true` rule's file is
/// the URL it hands out, on `next_server` (the rule's or the subnet's) or
/// else the answering server's own address.
struct RuleText<'a> {
    rule: &'a BootRule,
    next_server: Option<std::net::Ipv4Addr>,
    http_port: u16,
}

impl fmt::Display for RuleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rule;
        let mut conditions = Vec::new();
        if let Some(profile) = &r.profile {
            conditions.push(format!("profile {profile}"));
        }
        if !r.arch.is_empty() {
            let arches: Vec<String> = r.arch.iter().map(|&a| arch_label(a)).collect();
            conditions.push(format!("arch {}", arches.join("|")));
        }
        if let Some(class) = &r.user_class {
            conditions.push(format!("user-class {class:?}"));
        }
        match r.ipxe_encap {
            Some(true) => conditions.push("with option 175".to_owned()),
            Some(false) => conditions.push("without option 175".to_owned()),
            None => {}
        }
        if conditions.is_empty() {
            conditions.push("any client".to_owned());
        }
        if r.http {
            write!(f, "{} → ", conditions.join(", "))?;
            match self.next_server {
                Some(host) => write_http_boot_url(f, host, self.http_port, &r.filename)?,
                None => write_http_boot_url(f, "<this server>", self.http_port, &r.filename)?,
            }
        } else {
            write!(f, "{} → {}", conditions.join(", "), r.filename)?;
        }
        if let Some(next) = r.next_server.filter(|_| !r.http) {
            write!(f, " from {next}")?;
        }
        Ok(())
    }
}

fn write_host(f: &mut fmt::Formatter<'_>, h: &Host) -> fmt::Result {
    let address = h
        .fixed_address
        .map_or_else(|| "dynamic address".to_owned(), |ip| format!("fixed {ip}"));
    write!(f, "host {}: {}, {address}", h.name, format_mac(&h.mac))?;
    if let Some(name) = &h.hostname {
        write!(f, ", host name {name}")?;
    }
    if let Some(profile) = &h.profile {
        write!(f, ", profile {profile}")?;
    }
    writeln!(f)
}
