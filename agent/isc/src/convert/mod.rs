//! The statement tree to a bootwave configuration draft.
//!
//! Scopes nest as in dhcpd: global → shared-network → subnet (→ pool), with
//! groups and hosts anywhere. Parameters are collected per scope and
//! inherited inward; boot rules are ordered innermost scope first (dhcpd
//! runs inner scopes last, so their `filename` wins). Host-level file names
//! become a boot profile named after the host, with rules placed first in
//! the subnets the host can appear in.

mod statement;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use bootwave_protocol::config::DEFAULT_MAX_LEASE_TIME;

use super::cond::{Matchers, OptionNames, condition};
use super::lexer::{Tok, Token};
use super::parser::Stmt;
use super::rules::{RuleDraft, flatten};
use super::{Note, Options, Pos};
use statement::{HostFields, Params, RangeDecl, ScopeKind};

/// Global DHCP settings found in the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DhcpDraft {
    pub(crate) default_lease: Option<u64>,
    pub(crate) max_lease: Option<u64>,
    pub(crate) min_lease: Option<u64>,
    pub(crate) authoritative: Option<bool>,
    pub(crate) allow_bootp: Option<bool>,
    pub(crate) use_host_decl_names: Option<bool>,
    pub(crate) ping_check: Option<bool>,
    pub(crate) ping_timeout: Option<u64>,
    pub(crate) unknown_clients_allowed: Option<bool>,
}

/// A converted subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubnetDraft {
    pub(crate) addr: Ipv4Addr,
    pub(crate) prefix: u8,
    pub(crate) pos: Pos,
    pub(crate) ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Whether a range of the subnet says `dynamic-bootp` (bootwave's
    /// `dynamic-bootp` applies to every range of the subnet).
    pub(crate) dynamic_bootp: bool,
    pub(crate) params: Params,
    pub(crate) rules: Vec<RuleOut>,
}

impl SubnetDraft {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

/// A boot rule placed in a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleOut {
    pub(crate) profile: Option<String>,
    pub(crate) matchers: Matchers,
    pub(crate) filename: String,
    pub(crate) next_server: Option<Ipv4Addr>,
    pub(crate) pos: Pos,
}

/// A converted host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostDraft {
    pub(crate) name: String,
    pub(crate) mac: String,
    pub(crate) fixed: Option<Ipv4Addr>,
    pub(crate) hostname: Option<String>,
    pub(crate) profile: Option<String>,
    pub(crate) pos: Pos,
}

/// Everything the emitter writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Draft {
    pub(crate) dhcp: DhcpDraft,
    pub(crate) tftp_root: Option<String>,
    pub(crate) subnets: Vec<SubnetDraft>,
    pub(crate) hosts: Vec<HostDraft>,
}

/// Host profile rules waiting for the subnets to be known.
struct PendingProfile {
    profile: String,
    rules: Vec<RuleDraft>,
    next_server: Option<Ipv4Addr>,
    /// The subnet the host was declared in, if any.
    subnet: Option<usize>,
    fixed: Option<Ipv4Addr>,
}

/// Converts a parsed dhcpd.conf.
pub(crate) fn convert(stmts: &[Stmt], options: &Options) -> (Draft, Vec<Note>) {
    let mut c = Converter {
        names: OptionNames::default(),
        notes: Vec::new(),
        draft: Draft::default(),
        pending: Vec::new(),
        group_profiles: HashSet::new(),
        class_rules: Vec::new(),
    };
    c.definitions(stmts);
    c.classes(stmts);
    c.draft.tftp_root = options.tftp_root.clone();
    let ctx = Ctx {
        kind: ScopeKind::Global,
        params: Params::default(),
        outer_rules: Vec::new(),
        group_rules: Vec::new(),
        subnet: None,
    };
    let (own, _, _) = c.scope(stmts, &ctx);
    let flat = flatten(stmts, &c.names, false, &mut c.notes);
    c.children(
        stmts,
        &Ctx {
            params: own,
            outer_rules: flat.rules,
            ..ctx
        },
    );
    c.place_profiles();
    c.dynamic_bootp();
    c.split_ranges();
    (c.draft, c.notes)
}

/// What a scope inherits.
#[derive(Clone)]
struct Ctx {
    kind: ScopeKind,
    params: Params,
    /// Rules of enclosing scopes, innermost first.
    outer_rules: Vec<RuleDraft>,
    /// Rules of enclosing groups (for host profiles), innermost first, with
    /// the profile name they are shared under.
    group_rules: Vec<(String, Vec<RuleDraft>)>,
    /// Index of the enclosing subnet.
    subnet: Option<usize>,
}

struct Converter {
    names: OptionNames,
    notes: Vec<Note>,
    draft: Draft,
    pending: Vec<PendingProfile>,
    /// Rules of the global `class` declarations, first match first: tried
    /// before every subnet's own (dhcpd ranks a class above the subnet).
    class_rules: Vec<RuleDraft>,
    group_profiles: HashSet<String>,
}

impl Converter {
    /// Reads every option definition (anywhere) so conditions can name them;
    /// reports them once, as they need no conversion.
    fn definitions(&mut self, stmts: &[Stmt]) {
        let mut seen: Vec<Pos> = Vec::new();
        collect_definitions(stmts, &mut self.names, &mut seen);
        if let (Some(first), Some(last)) = (seen.first(), seen.last()) {
            self.notes.push(Note::info(
                *first,
                format!(
                    "ignored: no effect: {} option space/code definitions (lines {}-{}); they are used only to read conditions",
                    seen.len(),
                    first.line,
                    last.line
                ),
            ));
        }
    }

    /// Converts the top-level `class "NAME" { match if COND; filename …; }`
    /// declarations into rules: the class's condition joined with each of
    /// its rules. Classes matched otherwise (`match` without `if`,
    /// subclasses, `spawn`) are reported, not converted.
    fn classes(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            let Stmt::Block { head, body, pos } = stmt else {
                continue;
            };
            let name = match head.iter().map(|t| &t.tok).collect::<Vec<_>>().as_slice() {
                [Tok::Word(w), Tok::Str(n) | Tok::Word(n)] if w == "class" => n.clone(),
                _ => continue,
            };
            let is_match = |s: &Stmt| {
                matches!(s, Stmt::Simple { words, .. }
                    if matches!(words.first().map(|t| &t.tok), Some(Tok::Word(w)) if w == "match"))
            };
            let matches: Vec<(&[Token], Pos)> = body
                .iter()
                .filter_map(|s| match s {
                    Stmt::Simple { words, pos } if is_match(s) => Some((&words[1..], *pos)),
                    _ => None,
                })
                .collect();
            let rest: Vec<Stmt> = body.iter().filter(|s| !is_match(s)).cloned().collect();
            let any_of = match matches.as_slice() {
                [(words, at)] => match words.split_first() {
                    Some((first, tokens)) if first.tok == Tok::Word("if".into()) => {
                        match condition(tokens, &self.names) {
                            Ok(cond) => {
                                self.notes
                                    .extend(cond.notes.into_iter().map(|n| Note::info(*at, n)));
                                cond.any_of
                            }
                            Err(text) => {
                                self.notes.push(Note::warn(*at, format!("not converted: class {name:?}: condition `{text}` cannot be expressed; its file names are dropped")));
                                continue;
                            }
                        }
                    }
                    _ => {
                        self.notes.push(Note::warn(*at, format!("not converted: class {name:?} is matched by value (subclasses or spawning are not supported); its file names are dropped")));
                        continue;
                    }
                },
                [] => {
                    self.notes.push(Note::warn(*pos, format!("not converted: class {name:?} has no `match if` (members added by subclass or `allow members of` are not supported)")));
                    continue;
                }
                [_, (_, at), ..] => {
                    self.notes.push(Note::warn(
                        *at,
                        format!("not converted: class {name:?} has more than one `match`"),
                    ));
                    continue;
                }
            };
            let flat = flatten(&rest, &self.names, true, &mut self.notes);
            for rule in &flat.rules {
                for alt in &any_of {
                    if let Some(matchers) = alt.and(&rule.matchers) {
                        self.class_rules.push(RuleDraft {
                            matchers,
                            ..rule.clone()
                        });
                    }
                }
            }
        }
    }

    /// Reads the `;` statements of one scope: its own parameters, host
    /// fields and ranges (global settings go straight into the draft).
    fn scope(&mut self, stmts: &[Stmt], ctx: &Ctx) -> (Params, HostFields, Vec<RangeDecl>) {
        let mut own = Params::default();
        let mut host = HostFields::default();
        let mut ranges = Vec::new();
        for stmt in stmts {
            if let Stmt::Simple { words, pos } = stmt {
                self.simple(words, *pos, ctx.kind, &mut own, &mut host, &mut ranges);
            }
        }
        (own, host, ranges)
    }

    fn children(&mut self, stmts: &[Stmt], ctx: &Ctx) {
        for stmt in stmts {
            let Stmt::Block { head, body, pos } = stmt else {
                continue;
            };
            let words: Vec<&Tok> = head.iter().map(|t| &t.tok).collect();
            match words.as_slice() {
                [Tok::Word(w), Tok::Word(a), Tok::Word(nm), Tok::Word(m)]
                    if w == "subnet" && nm == "netmask" =>
                {
                    self.subnet(a, m, body, ctx, *pos);
                }
                [Tok::Word(w), _] if w == "shared-network" => {
                    if ctx.kind != ScopeKind::Global {
                        self.notes.push(Note::warn(
                            *pos,
                            "shared-network inside another declaration; converted as if global",
                        ));
                    }
                    self.nested_scope(body, ctx, ScopeKind::Shared, *pos);
                }
                [Tok::Word(w)] if w == "group" => {
                    self.nested_scope(body, ctx, ScopeKind::Group, *pos)
                }
                [Tok::Word(w), name] if w == "host" => {
                    let name = match name {
                        Tok::Word(n) | Tok::Str(n) => n.clone(),
                        _ => String::new(),
                    };
                    self.host(&name, body, ctx, *pos);
                }
                [Tok::Word(w)] if w == "pool" && ctx.kind == ScopeKind::Subnet => {
                    self.pool(body, ctx, *pos)
                }
                // Read before the scopes (`classes`).
                [Tok::Word(w), _] if w == "class" && ctx.kind == ScopeKind::Global => {}
                [Tok::Word(w), _] if w == "class" => self.notes.push(Note::warn(
                    *pos,
                    "not converted: a class declared inside another declaration (the whole block is skipped); declare it at the top level",
                )),
                _ => {
                    let text: Vec<String> = head.iter().map(|t| t.tok.text()).collect();
                    self.notes.push(Note::warn(
                        *pos,
                        format!("not converted: `{} {{ … }}` is not supported (the whole block is skipped)", text.join(" ")),
                    ));
                }
            }
        }
    }

    fn nested_scope(&mut self, body: &[Stmt], ctx: &Ctx, kind: ScopeKind, pos: Pos) {
        let (own, _, _) = self.scope(
            body,
            &Ctx {
                kind,
                ..ctx.clone()
            },
        );
        let flat = flatten(body, &self.names, false, &mut self.notes);
        let mut inner = Ctx {
            kind,
            params: own.or(&ctx.params),
            ..ctx.clone()
        };
        if kind == ScopeKind::Group {
            if !flat.rules.is_empty() {
                let profile = format!(
                    "group-{}{}",
                    if pos.file > 0 {
                        format!("{}-", pos.file)
                    } else {
                        String::new()
                    },
                    pos.line
                );
                inner.group_rules.insert(0, (profile, flat.rules.clone()));
            }
        } else {
            inner.group_rules.clear();
        }
        inner.outer_rules = flat
            .rules
            .into_iter()
            .chain(ctx.outer_rules.iter().cloned())
            .collect();
        self.children(body, &inner);
    }

    fn subnet(&mut self, addr: &str, mask: &str, body: &[Stmt], ctx: &Ctx, pos: Pos) {
        let (Ok(addr), Ok(mask)) = (addr.parse::<Ipv4Addr>(), mask.parse::<Ipv4Addr>()) else {
            self.notes.push(Note::warn(
                pos,
                format!("not converted: `subnet {addr} netmask {mask}` is not an IPv4 network"),
            ));
            return;
        };
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            self.notes.push(Note::warn(
                pos,
                format!("not converted: netmask {mask} is not contiguous"),
            ));
            return;
        }
        let prefix = u8::try_from(bits.leading_ones()).unwrap_or(32);
        let network = Ipv4Addr::from(u32::from(addr) & bits);
        if network != addr {
            self.notes.push(Note::warn(
                pos,
                format!("subnet {addr} has host bits set; converted as {network}/{prefix}"),
            ));
        }
        let kind = ScopeKind::Subnet;
        let (own, _, ranges) = self.scope(
            body,
            &Ctx {
                kind,
                ..ctx.clone()
            },
        );
        let flat = flatten(body, &self.names, false, &mut self.notes);
        let index = self.draft.subnets.len();
        let rules = self
            .class_rules
            .iter()
            .chain(&flat.rules)
            .chain(&ctx.outer_rules)
            .map(|r| rule_out(r, None, None))
            .collect();
        let mut draft = SubnetDraft {
            addr: network,
            prefix,
            pos,
            ranges: Vec::new(),
            dynamic_bootp: false,
            params: Params::default(),
            rules,
        };
        draft.params = own.clone();
        self.inherit(&mut draft, &ctx.params, &own);
        self.add_ranges(&mut draft, ranges);
        if let Some((want, at)) = own.subnet_mask.or(ctx.params.subnet_mask)
            && want != mask
        {
            self.notes.push(Note::warn(at, format!("option subnet-mask {want} differs from the subnet's netmask {mask}; bootwave sends {mask}")));
        }
        self.draft.subnets.push(draft);
        let inner = Ctx {
            kind,
            params: own.or(&ctx.params),
            outer_rules: flat
                .rules
                .into_iter()
                .chain(ctx.outer_rules.iter().cloned())
                .collect(),
            group_rules: Vec::new(),
            subnet: Some(index),
        };
        self.children(body, &inner);
    }

    /// Fills subnet parameters the subnet does not set from enclosing scopes;
    /// inherited routers and broadcast apply only where they fit.
    fn inherit(&mut self, draft: &mut SubnetDraft, outer: &Params, own: &Params) {
        let mut merged = own.or(outer);
        if own.routers.is_none()
            && let Some((routers, at)) = &outer.routers
            && !routers.iter().all(|r| draft.contains(*r))
        {
            self.notes.push(Note::warn(
                *at,
                format!(
                    "option routers is outside subnet {}/{}; not applied there",
                    draft.addr, draft.prefix
                ),
            ));
            merged.routers = None;
        }
        if own.broadcast.is_none()
            && let Some((b, at)) = outer.broadcast
            && !draft.contains(b)
        {
            self.notes.push(Note::warn(
                at,
                format!(
                    "option broadcast-address {b} is outside subnet {}/{}; not applied there",
                    draft.addr, draft.prefix
                ),
            ));
            merged.broadcast = None;
        }
        draft.params = merged;
    }

    fn add_ranges(&mut self, draft: &mut SubnetDraft, ranges: Vec<RangeDecl>) {
        for (start, end, at, dynamic_bootp) in ranges {
            if !draft.contains(start) || !draft.contains(end) {
                self.notes.push(Note::warn(
                    at,
                    format!(
                        "not converted: range {start} {end} is not inside subnet {}/{}",
                        draft.addr, draft.prefix
                    ),
                ));
                continue;
            }
            draft.ranges.push((start.min(end), start.max(end)));
            if dynamic_bootp && !draft.dynamic_bootp {
                draft.dynamic_bootp = true;
                self.notes.push(Note::info(
                    at,
                    format!(
                        "range dynamic-bootp: subnet {}/{} gets dynamic-bootp = true; BOOTP clients may then take an address of any of its ranges, bound for the subnet's default lease time",
                        draft.addr, draft.prefix
                    ),
                ));
            }
        }
    }

    fn pool(&mut self, body: &[Stmt], ctx: &Ctx, pos: Pos) {
        let (own, _, ranges) = self.scope(
            body,
            &Ctx {
                kind: ScopeKind::Pool,
                ..ctx.clone()
            },
        );
        let flat = flatten(body, &self.names, false, &mut self.notes);
        if !flat.rules.is_empty() {
            self.notes.push(Note::warn(
                pos,
                "not converted: file names inside a pool (ignored)",
            ));
        }
        let Some(index) = ctx.subnet else { return };
        let mut subnet = self.draft.subnets[index].clone();
        self.add_ranges(&mut subnet, ranges);
        if let Some(allowed) = own.unknown_clients {
            subnet.params.unknown_clients = Some(allowed);
        }
        if let Some(permit) = own.dynamic_bootp_clients {
            subnet.params.dynamic_bootp_clients = Some(permit);
        }
        if let Some(length) = own.bootp_lease {
            subnet.params.bootp_lease = Some(length);
        }
        self.draft.subnets[index] = subnet;
        self.children(body, ctx);
    }

    fn host(&mut self, name: &str, body: &[Stmt], ctx: &Ctx, pos: Pos) {
        let (_, host, _) = self.scope(
            body,
            &Ctx {
                kind: ScopeKind::Host,
                ..ctx.clone()
            },
        );
        let flat = flatten(body, &self.names, false, &mut self.notes);
        for stmt in body {
            if let Stmt::Block { pos, .. } = stmt {
                self.notes.push(Note::warn(
                    *pos,
                    "not converted: a block inside a host (ignored)",
                ));
            }
        }
        let Some(mac) = host.mac.clone() else {
            self.notes.push(Note::warn(pos, format!("not converted: host {name} has no `hardware ethernet` (bootwave identifies hosts by MAC)")));
            return;
        };
        let clean = statement::clean_name(name);
        if clean != name {
            self.notes.push(Note::info(
                pos,
                format!("host name `{name}` written as `{clean}`"),
            ));
        }
        if let Some(other) = self
            .draft
            .hosts
            .iter()
            .find(|h| h.mac == mac || h.name == clean)
        {
            self.notes.push(Note::warn(
                pos,
                format!(
                    "not converted: host {clean} repeats the name or MAC of host {} (line {})",
                    other.name, other.pos.line
                ),
            ));
            return;
        }
        let mut profile = None;
        if !flat.rules.is_empty() {
            let rules = flat
                .rules
                .iter()
                .cloned()
                .chain(ctx.group_rules.iter().flat_map(|(_, r)| r.iter().cloned()))
                .collect();
            self.pending.push(PendingProfile {
                profile: clean.clone(),
                rules,
                next_server: host.next_server,
                subnet: ctx.subnet,
                fixed: host.fixed,
            });
            profile = Some(clean.clone());
        } else if let Some((group, rules)) = ctx.group_rules.first() {
            if self.group_profiles.insert(group.clone()) {
                self.pending.push(PendingProfile {
                    profile: group.clone(),
                    rules: rules.clone(),
                    next_server: None,
                    subnet: ctx.subnet,
                    fixed: None,
                });
            }
            profile = Some(group.clone());
            if host.next_server.is_some() {
                self.notes.push(Note::warn(
                    pos,
                    "not converted: host next-server without a host filename",
                ));
            }
        } else if host.next_server.is_some() {
            self.notes.push(Note::warn(
                pos,
                "not converted: host next-server without a host filename",
            ));
        }
        self.draft.hosts.push(HostDraft {
            name: clean,
            mac,
            fixed: host.fixed,
            hostname: host.hostname,
            profile,
            pos,
        });
    }

    /// Puts host and group profile rules first in the subnets they apply to.
    fn place_profiles(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            let targets: Vec<usize> = match (p.fixed, p.subnet) {
                (Some(ip), _) => self
                    .draft
                    .subnets
                    .iter()
                    .position(|s| s.contains(ip))
                    .into_iter()
                    .collect(),
                (None, Some(i)) => vec![i],
                (None, None) => (0..self.draft.subnets.len()).collect(),
            };
            for i in targets {
                let subnet = &mut self.draft.subnets[i];
                let at = subnet
                    .rules
                    .iter()
                    .take_while(|r| r.profile.is_some())
                    .count();
                let new: Vec<RuleOut> = p
                    .rules
                    .iter()
                    .map(|r| rule_out(r, Some(&p.profile), p.next_server))
                    .collect();
                subnet.rules.splice(at..at, new);
            }
        }
    }

    /// Cuts fixed addresses out of dynamic ranges (dhcpd tolerates the
    /// overlap; bootwave refuses it).
    /// Settles each subnet's `dynamic-bootp` (from `range dynamic-bootp`
    /// or an `allow dynamic bootp clients` permit) and its lease length,
    /// which bootwave bounds: never zero (ISC: no end), at most the maximum
    /// lease time.
    fn dynamic_bootp(&mut self) {
        let global_max = self
            .draft
            .dhcp
            .max_lease
            .unwrap_or(DEFAULT_MAX_LEASE_TIME.as_secs());
        for s in &mut self.draft.subnets {
            let net = format!("{}/{}", s.addr, s.prefix);
            match s.params.dynamic_bootp_clients {
                Some((true, at)) if !s.dynamic_bootp => {
                    s.dynamic_bootp = true;
                    self.notes.push(Note::info(at, format!("allow dynamic bootp clients: subnet {net} gets dynamic-bootp = true (for all of its ranges)")));
                }
                Some((false, at)) if s.dynamic_bootp => self.notes.push(Note::warn(at, format!("approximate: deny dynamic bootp clients in subnet {net}, which has a `range dynamic-bootp`: bootwave keeps dynamic-bootp = true for the whole subnet"))),
                Some((false, at)) => self.notes.push(Note::info(at, "ignored: no effect: deny dynamic bootp clients (bootwave gives BOOTP clients no pool address unless the subnet says dynamic-bootp)")),
                _ => {}
            }
            let Some((secs, at)) = s.params.bootp_lease else {
                continue;
            };
            let max = s.params.max_lease.unwrap_or(global_max);
            if !s.dynamic_bootp {
                s.params.bootp_lease = None;
                self.notes.push(Note::info(at, format!("ignored: no effect: dynamic-bootp-lease-length in subnet {net}, which has no dynamic BOOTP")));
            } else if secs == 0 {
                s.params.bootp_lease = None;
                self.notes.push(Note::warn(at, format!("approximate: dynamic-bootp-lease-length 0 (no end) in subnet {net}: bootwave never binds for ever; BOOTP bindings last the subnet's default lease time")));
            } else if secs > max {
                s.params.bootp_lease = Some((max, at));
                self.notes.push(Note::warn(at, format!("approximate: dynamic-bootp-lease-length {secs} in subnet {net} is above the maximum lease time; bootwave binds BOOTP clients for {max} s")));
            }
        }
    }

    fn split_ranges(&mut self) {
        let fixed: Vec<(Ipv4Addr, Pos, String)> = self
            .draft
            .hosts
            .iter()
            .filter_map(|h| h.fixed.map(|ip| (ip, h.pos, h.name.clone())))
            .collect();
        for subnet in &mut self.draft.subnets {
            for (ip, pos, name) in &fixed {
                let Some(i) = subnet
                    .ranges
                    .iter()
                    .position(|&(a, b)| a <= *ip && *ip <= b)
                else {
                    continue;
                };
                let (a, b) = subnet.ranges.remove(i);
                let ipn = u32::from(*ip);
                if a < *ip {
                    subnet.ranges.insert(i, (a, Ipv4Addr::from(ipn - 1)));
                }
                if *ip < b {
                    let at = if a < *ip { i + 1 } else { i };
                    subnet.ranges.insert(at, (Ipv4Addr::from(ipn + 1), b));
                }
                self.notes.push(Note::info(
                    *pos,
                    format!(
                        "fixed address {ip} of host {name} removed from the dynamic range {a}-{b}"
                    ),
                ));
            }
        }
    }
}

fn rule_out(rule: &RuleDraft, profile: Option<&str>, next_server: Option<Ipv4Addr>) -> RuleOut {
    RuleOut {
        profile: profile.map(str::to_owned),
        matchers: rule.matchers.clone(),
        filename: rule.filename.clone(),
        next_server,
        pos: rule.pos,
    }
}

fn collect_definitions(stmts: &[Stmt], names: &mut OptionNames, seen: &mut Vec<Pos>) {
    for stmt in stmts {
        match stmt {
            Stmt::Simple { words, pos } => {
                if let Some(def) = definition(words) {
                    if let Some((name, code, encap)) = def {
                        names.define(&name, code, encap.as_deref());
                    }
                    seen.push(*pos);
                }
            }
            Stmt::Block { body, .. } => collect_definitions(body, names, seen),
            Stmt::If { branches } => {
                for b in branches {
                    collect_definitions(&b.body, names, seen);
                }
            }
        }
    }
}

/// `option space X;` → `Some(None)`; `option NAME code N = TYPE…;` →
/// `Some(Some((NAME, N, encapsulated space)))`; anything else → `None`.
#[allow(clippy::type_complexity)]
pub(crate) fn definition(words: &[Token]) -> Option<Option<(String, u16, Option<String>)>> {
    let toks: Vec<&Tok> = words.iter().map(|t| &t.tok).collect();
    match toks.as_slice() {
        [Tok::Word(o), Tok::Word(s), Tok::Word(_), ..] if o == "option" && s == "space" => {
            Some(None)
        }
        [
            Tok::Word(o),
            Tok::Word(name),
            Tok::Word(c),
            Tok::Word(code),
            Tok::Eq,
            rest @ ..,
        ] if o == "option" && c == "code" => {
            let code: u16 = code.parse().ok()?;
            let encap = match rest {
                [Tok::Word(e), Tok::Word(space)] if e == "encapsulate" => Some(space.clone()),
                _ => None,
            };
            Some(Some((name.clone(), code, encap)))
        }
        _ => None,
    }
}
