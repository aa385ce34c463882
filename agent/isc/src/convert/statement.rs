//! The `;` statements of a scope: what each one becomes, or why it cannot.

use std::net::Ipv4Addr;

use super::super::lexer::{Tok, Token};
use super::super::{Note, Pos};
use super::{Converter, definition};

/// The kind of scope a statement appears in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    /// Top level.
    Global,
    /// `shared-network`.
    Shared,
    /// `subnet`.
    Subnet,
    /// `pool` inside a subnet.
    Pool,
    /// `group`.
    Group,
    /// `host`.
    Host,
}

/// A `range` statement: first and last address, where it stands, and
/// whether it says `dynamic-bootp`.
pub(crate) type RangeDecl = (Ipv4Addr, Ipv4Addr, Pos, bool);

/// Subnet parameters one scope sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) routers: Option<(Vec<Ipv4Addr>, Pos)>,
    pub(crate) broadcast: Option<(Ipv4Addr, Pos)>,
    pub(crate) subnet_mask: Option<(Ipv4Addr, Pos)>,
    pub(crate) dns: Option<Vec<Ipv4Addr>>,
    pub(crate) ntp: Option<Vec<Ipv4Addr>>,
    pub(crate) domain: Option<String>,
    pub(crate) time_offset: Option<i32>,
    pub(crate) next_server: Option<Ipv4Addr>,
    pub(crate) default_lease: Option<u64>,
    pub(crate) max_lease: Option<u64>,
    pub(crate) unknown_clients: Option<bool>,
    /// `dynamic-bootp-lease-length`, seconds.
    pub(crate) bootp_lease: Option<(u64, Pos)>,
    /// `allow`/`deny dynamic bootp clients`.
    pub(crate) dynamic_bootp_clients: Option<(bool, Pos)>,
}

impl Params {
    /// This scope's values, falling back to `outer`'s.
    pub(crate) fn or(&self, outer: &Self) -> Self {
        Self {
            routers: self.routers.clone().or_else(|| outer.routers.clone()),
            broadcast: self.broadcast.or(outer.broadcast),
            subnet_mask: self.subnet_mask.or(outer.subnet_mask),
            dns: self.dns.clone().or_else(|| outer.dns.clone()),
            ntp: self.ntp.clone().or_else(|| outer.ntp.clone()),
            domain: self.domain.clone().or_else(|| outer.domain.clone()),
            time_offset: self.time_offset.or(outer.time_offset),
            next_server: self.next_server.or(outer.next_server),
            default_lease: self.default_lease.or(outer.default_lease),
            max_lease: self.max_lease.or(outer.max_lease),
            unknown_clients: self.unknown_clients.or(outer.unknown_clients),
            bootp_lease: self.bootp_lease.or(outer.bootp_lease),
            dynamic_bootp_clients: self.dynamic_bootp_clients.or(outer.dynamic_bootp_clients),
        }
    }
}

/// What a `host` block declares about the host itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostFields {
    pub(crate) mac: Option<String>,
    pub(crate) fixed: Option<Ipv4Addr>,
    pub(crate) hostname: Option<String>,
    pub(crate) next_server: Option<Ipv4Addr>,
}

/// A name bootwave accepts: characters other than letters, digits, `-`,
/// `_` and `.` become `-`.
pub(crate) fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    if cleaned.is_empty() {
        "host".to_owned()
    } else {
        cleaned
    }
}

/// Statements with no effect in bootwave, and why.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "log-facility",
        "bootwave logs through its own tracing output",
    ),
    ("ddns-updates", "bootwave does no dynamic DNS updates"),
    (
        "update-static-leases",
        "bootwave does no dynamic DNS updates",
    ),
    (
        "update-conflict-detection",
        "bootwave does no dynamic DNS updates",
    ),
    (
        "one-lease-per-client",
        "bootwave keeps one lease per client",
    ),
    (
        "lease-file-name",
        "bootwave keeps leases in its journal (journal.dir)",
    ),
    ("pid-file-name", "bootwave has no pid file"),
];

impl Converter {
    /// Converts one `;` statement of a scope of `kind`.
    pub(super) fn simple(
        &mut self,
        words: &[Token],
        pos: Pos,
        kind: ScopeKind,
        params: &mut Params,
        host: &mut HostFields,
        ranges: &mut Vec<RangeDecl>,
    ) {
        let toks: Vec<&Tok> = words.iter().map(|t| &t.tok).collect();
        let text = toks.iter().map(|t| t.text()).collect::<Vec<_>>().join(" ");
        let Some(Tok::Word(first)) = toks.first() else {
            self.notes.push(Note::warn(
                pos,
                format!("not converted: `{text}` is not a statement"),
            ));
            return;
        };
        let args = &toks[1..];
        let result = match first.as_str() {
            "filename" | "include" => Ok(()), // rules / parser
            "option" if definition(words).is_some() => Ok(()),
            "option" => self.option(args, pos, kind, params, host),
            "default-lease-time" | "max-lease-time" | "min-lease-time" => self.lease(first, args, pos, kind, params),
            "next-server" => ip(args).map(|ip| match kind {
                ScopeKind::Host => host.next_server = Some(ip),
                ScopeKind::Group | ScopeKind::Pool => self.unsupported_here(pos, "next-server", kind),
                _ => params.next_server = Some(ip),
            }),
            "range" => self.range(args, pos, kind, ranges),
            "dynamic-bootp-lease-length" => number(args).map(|n| match kind {
                ScopeKind::Host | ScopeKind::Group => self.unsupported_here(pos, "dynamic-bootp-lease-length", kind),
                ScopeKind::Pool => {
                    self.notes.push(Note::warn(pos, "approximate: a pool's dynamic-bootp-lease-length applies to its whole subnet"));
                    params.bootp_lease = Some((n, pos));
                }
                _ => params.bootp_lease = Some((n, pos)),
            }),
            "dynamic-bootp-lease-cutoff" => Err("bootwave ends a dynamic BOOTP binding after dynamic-bootp-lease-length only, not at a fixed date".to_owned()),
            "stash-agent-options" => flag(args).map(|_| {
                self.notes.push(Note::info(pos, "ignored: no effect: stash-agent-options (bootwave keeps no relay agent options; to answer only known relays, list them in [dhcp] relays)"));
            }),
            "authoritative" if args.is_empty() => {
                self.global_setting(pos, kind, "authoritative");
                self.draft.dhcp.authoritative = Some(true);
                Ok(())
            }
            "not" if matches!(args, [Tok::Word(a)] if a == "authoritative") => {
                self.global_setting(pos, kind, "not authoritative");
                self.draft.dhcp.authoritative = Some(false);
                Ok(())
            }
            "ping-check" => flag(args).map(|on| {
                self.global_setting(pos, kind, "ping-check");
                self.draft.dhcp.ping_check = Some(on);
            }),
            "ping-timeout" => number(args).map(|n| {
                self.global_setting(pos, kind, "ping-timeout");
                self.draft.dhcp.ping_timeout = Some(n);
            }),
            "use-host-decl-names" => flag(args).map(|on| {
                self.global_setting(pos, kind, "use-host-decl-names");
                self.draft.dhcp.use_host_decl_names = Some(on);
            }),
            "allow" | "deny" | "ignore" => self.permit(first == "allow", args, pos, kind, params),
            "get-lease-hostnames" => flag(args).map(|on| {
                if on {
                    self.notes.push(Note::warn(pos, "not converted: get-lease-hostnames (bootwave does no reverse DNS; pool clients get no host name)"));
                } else {
                    self.notes.push(Note::info(pos, "ignored: no effect: get-lease-hostnames off"));
                }
            }),
            "ddns-update-style" => match args {
                [Tok::Word(v)] if v == "none" => {
                    self.notes.push(Note::info(pos, "ignored: no effect: ddns-update-style none (bootwave does no dynamic DNS updates)"));
                    Ok(())
                }
                _ => Err("bootwave does no dynamic DNS updates".to_owned()),
            },
            "hardware" => match (kind, args) {
                (ScopeKind::Host, [Tok::Word(t), Tok::Word(mac)]) if t == "ethernet" => mac_addr(mac).map(|m| host.mac = Some(m)),
                (ScopeKind::Host, _) => Err("only `hardware ethernet` is supported".to_owned()),
                _ => Err("only valid inside a host".to_owned()),
            },
            "fixed-address" => match kind {
                ScopeKind::Host => self.fixed_address(args, pos, host),
                _ => Err("only valid inside a host".to_owned()),
            },
            "server-name" => match (kind, args) {
                (ScopeKind::Host, [Tok::Str(name) | Tok::Word(name)]) => {
                    self.notes.push(Note::info(pos, "server-name sent to the host as its host name (option 12)"));
                    host.hostname = Some(clean_name(name));
                    Ok(())
                }
                _ => Err("bootwave sends no server name outside a host".to_owned()),
            },
            word => match NO_EFFECT.iter().find(|(w, _)| *w == word) {
                Some((_, why)) => {
                    self.notes.push(Note::info(pos, format!("ignored: no effect: {word} ({why})")));
                    Ok(())
                }
                None => Err("not supported".to_owned()),
            },
        };
        if let Err(why) = result {
            self.notes
                .push(Note::warn(pos, format!("not converted: `{text}`: {why}")));
        }
    }

    fn option(
        &mut self,
        args: &[&Tok],
        pos: Pos,
        kind: ScopeKind,
        params: &mut Params,
        host: &mut HostFields,
    ) -> Result<(), String> {
        let [Tok::Word(name), values @ ..] = args else {
            return Err("option without a name".to_owned());
        };
        if kind == ScopeKind::Host && name == "host-name" {
            let [Tok::Str(v) | Tok::Word(v)] = values else {
                return Err("expected one name".to_owned());
            };
            host.hostname = Some(clean_name(v));
            return Ok(());
        }
        let subnet_level = matches!(
            kind,
            ScopeKind::Global | ScopeKind::Shared | ScopeKind::Subnet
        );
        let known = [
            "routers",
            "broadcast-address",
            "subnet-mask",
            "domain-name",
            "domain-name-servers",
            "ntp-servers",
            "time-offset",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!("option {name} is not supported"));
        }
        if !subnet_level {
            self.unsupported_here(pos, &format!("option {name}"), kind);
            return Ok(());
        }
        match name.as_str() {
            "routers" => params.routers = Some((ip_list(values)?, pos)),
            "broadcast-address" => params.broadcast = Some((ip(values)?, pos)),
            "subnet-mask" => params.subnet_mask = Some((ip(values)?, pos)),
            "domain-name-servers" => params.dns = Some(ip_list(values)?),
            "ntp-servers" => params.ntp = Some(ip_list(values)?),
            "time-offset" => {
                params.time_offset = Some(match values {
                    [Tok::Word(n)] => n
                        .parse()
                        .map_err(|_| format!("`{n}` is not a number of seconds"))?,
                    _ => return Err("expected a number of seconds".to_owned()),
                });
            }
            _ => {
                params.domain = Some(match values {
                    [Tok::Str(d)] if !d.is_empty() && clean_name(d) == *d => d.clone(),
                    _ => return Err("expected one quoted domain name".to_owned()),
                });
            }
        }
        Ok(())
    }

    fn lease(
        &mut self,
        word: &str,
        args: &[&Tok],
        pos: Pos,
        kind: ScopeKind,
        params: &mut Params,
    ) -> Result<(), String> {
        let secs = number(args)?;
        match (kind, word) {
            (ScopeKind::Global, "default-lease-time") => self.draft.dhcp.default_lease = Some(secs),
            (ScopeKind::Global, "max-lease-time") => self.draft.dhcp.max_lease = Some(secs),
            (ScopeKind::Shared | ScopeKind::Subnet, "default-lease-time") => {
                params.default_lease = Some(secs)
            }
            (ScopeKind::Shared | ScopeKind::Subnet, "max-lease-time") => {
                params.max_lease = Some(secs)
            }
            (ScopeKind::Global | ScopeKind::Shared | ScopeKind::Subnet, _) => {
                self.global_setting(pos, kind, word);
                self.draft.dhcp.min_lease = Some(secs);
            }
            _ => self.unsupported_here(pos, word, kind),
        }
        Ok(())
    }

    fn range(
        &mut self,
        args: &[&Tok],
        pos: Pos,
        kind: ScopeKind,
        ranges: &mut Vec<RangeDecl>,
    ) -> Result<(), String> {
        if !matches!(kind, ScopeKind::Subnet | ScopeKind::Pool) {
            return Err("a range must be inside a subnet".to_owned());
        }
        let (args, dynamic_bootp) = match args {
            [Tok::Word(d), rest @ ..] if d == "dynamic-bootp" => (rest, true),
            _ => (args, false),
        };
        let (start, end) = match args {
            [a] => (ip(&[*a])?, ip(&[*a])?),
            [a, b] => (ip(&[*a])?, ip(&[*b])?),
            _ => return Err("expected one or two addresses".to_owned()),
        };
        ranges.push((start, end, pos, dynamic_bootp));
        Ok(())
    }

    fn permit(
        &mut self,
        allow: bool,
        args: &[&Tok],
        pos: Pos,
        kind: ScopeKind,
        params: &mut Params,
    ) -> Result<(), String> {
        if let [Tok::Word(d), Tok::Word(b), Tok::Word(c)] = args
            && d == "dynamic"
            && b == "bootp"
            && c == "clients"
        {
            return match kind {
                ScopeKind::Subnet | ScopeKind::Pool => {
                    params.dynamic_bootp_clients = Some((allow, pos));
                    Ok(())
                }
                _ => Err(
                    "bootwave sets dynamic BOOTP per subnet (inside a subnet or its pool)"
                        .to_owned(),
                ),
            };
        }
        let [Tok::Word(what)] = args else {
            return Err("not supported".to_owned());
        };
        match what.as_str() {
            "booting" if allow => self.notes.push(Note::info(
                pos,
                "ignored: no effect: allow booting (bootwave always answers boot requests)",
            )),
            "booting" => return Err("bootwave cannot refuse booting to some clients".to_owned()),
            "bootp" => {
                self.global_setting(pos, kind, "allow/deny bootp");
                self.draft.dhcp.allow_bootp = Some(allow);
            }
            "unknown-clients" => {
                match kind {
                    ScopeKind::Global => self.draft.dhcp.unknown_clients_allowed = Some(allow),
                    ScopeKind::Shared | ScopeKind::Subnet => params.unknown_clients = Some(allow),
                    ScopeKind::Pool => {
                        self.notes.push(Note::warn(pos, "approximate: a pool's unknown-clients permit applies to its whole subnet"));
                        params.unknown_clients = Some(allow);
                    }
                    _ => self.unsupported_here(pos, "unknown-clients", kind),
                }
            }
            _ => return Err("not supported".to_owned()),
        }
        Ok(())
    }

    fn fixed_address(
        &mut self,
        args: &[&Tok],
        pos: Pos,
        host: &mut HostFields,
    ) -> Result<(), String> {
        let first = args.first().ok_or("expected an address")?;
        let addr = ip(&[*first]).map_err(|_| {
            format!(
                "`{}` is not an IPv4 address (host names are not resolved)",
                first.text()
            )
        })?;
        if args.len() > 1 {
            self.notes.push(Note::warn(
                pos,
                format!("approximate: only the first fixed address ({addr}) is kept"),
            ));
        }
        host.fixed = Some(addr);
        Ok(())
    }

    /// A setting bootwave has only globally, met in an inner scope.
    fn global_setting(&mut self, pos: Pos, kind: ScopeKind, what: &str) {
        if kind != ScopeKind::Global {
            self.notes.push(Note::info(
                pos,
                format!("{what} applies to every subnet in bootwave (set globally)"),
            ));
        }
    }

    fn unsupported_here(&mut self, pos: Pos, what: &str, kind: ScopeKind) {
        let scope = match kind {
            ScopeKind::Host => "host",
            ScopeKind::Group => "group",
            ScopeKind::Pool => "pool",
            _ => "this scope",
        };
        self.notes.push(Note::warn(
            pos,
            format!("not converted: {what} in a {scope} (bootwave sets it per subnet only)"),
        ));
    }
}

fn ip(args: &[&Tok]) -> Result<Ipv4Addr, String> {
    match args {
        [Tok::Word(w)] => w
            .parse()
            .map_err(|_| format!("`{w}` is not an IPv4 address")),
        _ => Err("expected one IPv4 address".to_owned()),
    }
}

/// `a, b, c` — addresses separated by commas.
fn ip_list(args: &[&Tok]) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for (i, tok) in args.iter().enumerate() {
        match (i % 2, tok) {
            (0, _) => {
                out.push(ip(&[*tok]).map_err(|e| format!("{e} (host names are not resolved)"))?)
            }
            (_, Tok::Comma) => {}
            _ => return Err("expected addresses separated by commas".to_owned()),
        }
    }
    if out.is_empty() || args.len().is_multiple_of(2) {
        return Err("expected addresses separated by commas".to_owned());
    }
    Ok(out)
}

/// `on`/`off`/`true`/`false`/`1`/`0`, with an optional leading `=`.
fn flag(args: &[&Tok]) -> Result<bool, String> {
    let value = match args {
        [Tok::Eq, v] | [v] => v,
        [] => return Ok(true),
        _ => return Err("expected on or off".to_owned()),
    };
    match value {
        Tok::Word(w) if matches!(w.as_str(), "on" | "true" | "1") => Ok(true),
        Tok::Word(w) if matches!(w.as_str(), "off" | "false" | "0") => Ok(false),
        other => Err(format!("`{}` is not on or off", other.text())),
    }
}

fn number(args: &[&Tok]) -> Result<u64, String> {
    match args {
        [Tok::Word(w)] | [Tok::Eq, Tok::Word(w)] => {
            w.parse().map_err(|_| format!("`{w}` is not a number"))
        }
        _ => Err("expected a number".to_owned()),
    }
}

/// `0:1:a:bb:cc:dd` → `00:01:0a:bb:cc:dd`.
fn mac_addr(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(format!("`{text}` is not an Ethernet address"));
    }
    Ok(parts
        .iter()
        .map(|p| format!("{:0>2}", p.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(":"))
}
