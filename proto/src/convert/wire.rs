//! `TryFrom` wire → domain (naming the field that is wrong) and `From`
//! domain → wire.

use std::net::Ipv4Addr;
use std::time::Duration;

use bootwave_protocol::config::{
    AddrRange, BootRule, ClientArch, Ipv4Net, UnknownClients, format_mac,
};

use super::domain::default_host_name;
use super::{ConvertError, DhcpSpec, HostSpec, ProfileSpec, State, SubnetSpec, mac_field};
use crate::v1;

impl TryFrom<v1::Host> for HostSpec {
    type Error = ConvertError;

    fn try_from(h: v1::Host) -> Result<Self, ConvertError> {
        let mac = mac_field("mac", &h.mac)?;
        let name = non_empty(h.name).unwrap_or_else(|| default_host_name(&mac));
        for key in h.labels.keys() {
            if key.is_empty() || key.contains(['=', ',']) || key.chars().any(char::is_control) {
                return Err(ConvertError::new(
                    "labels",
                    format!(
                        "{key:?} is not a label key (non-empty, no '=', ',' or control characters)"
                    ),
                ));
            }
        }
        Ok(Self {
            mac,
            name,
            fixed_address: opt_ip("fixed_address", &h.fixed_address)?,
            hostname: non_empty(h.hostname),
            subnet: opt_net("subnet", &h.subnet)?,
            profile: non_empty(h.profile),
            labels: h.labels.into_iter().collect(),
        })
    }
}

impl From<&HostSpec> for v1::Host {
    fn from(h: &HostSpec) -> Self {
        Self {
            mac: format_mac(&h.mac),
            fixed_address: text(h.fixed_address),
            hostname: h.hostname.clone().unwrap_or_default(),
            subnet: text(h.subnet),
            profile: h.profile.clone().unwrap_or_default(),
            labels: h.labels.clone().into_iter().collect(),
            name: h.name.clone(),
        }
    }
}

impl TryFrom<v1::Subnet> for SubnetSpec {
    type Error = ConvertError;

    fn try_from(s: v1::Subnet) -> Result<Self, ConvertError> {
        let net = net_field("network", &s.network)?;
        let ranges = s
            .ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("ranges[{i}]");
                Ok(AddrRange {
                    start: ip(&format!("{field}.start"), &r.start)?,
                    end: ip(&format!("{field}.end"), &r.end)?,
                })
            })
            .collect::<Result<_, ConvertError>>()?;
        let boot_rules = s
            .boot_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule_from_wire(r).map_err(|e| e.within(&format!("boot_rules[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            net,
            ranges,
            routers: ips("routers", &s.routers)?,
            broadcast: opt_ip("broadcast", &s.broadcast)?,
            dns: ips("dns", &s.dns)?,
            ntp: ips("ntp", &s.ntp)?,
            domain: non_empty(s.domain),
            time_offset: s.time_offset,
            default_lease_time: secs(s.default_lease_time_s),
            max_lease_time: secs(s.max_lease_time_s),
            next_server: opt_ip("next_server", &s.next_server)?,
            unknown_clients: unknown_from_wire(s.unknown_clients),
            dynamic_bootp: s.dynamic_bootp,
            dynamic_bootp_lease_length: secs(s.dynamic_bootp_lease_length_s),
            boot_rules,
        })
    }
}

impl From<&SubnetSpec> for v1::Subnet {
    fn from(s: &SubnetSpec) -> Self {
        Self {
            network: s.net.to_string(),
            ranges: s
                .ranges
                .iter()
                .map(|r| v1::AddrRange {
                    start: r.start.to_string(),
                    end: r.end.to_string(),
                })
                .collect(),
            routers: s.routers.iter().map(ToString::to_string).collect(),
            dns: s.dns.iter().map(ToString::to_string).collect(),
            ntp: s.ntp.iter().map(ToString::to_string).collect(),
            domain: s.domain.clone().unwrap_or_default(),
            default_lease_time_s: s.default_lease_time.map_or(0, saturating_secs),
            max_lease_time_s: s.max_lease_time.map_or(0, saturating_secs),
            next_server: text(s.next_server),
            unknown_clients: unknown_to_wire(s.unknown_clients) as i32,
            boot_rules: s.boot_rules.iter().map(rule_to_wire).collect(),
            broadcast: text(s.broadcast),
            time_offset: s.time_offset,
            dynamic_bootp: s.dynamic_bootp,
            dynamic_bootp_lease_length_s: s.dynamic_bootp_lease_length.map_or(0, saturating_secs),
        }
    }
}

impl TryFrom<v1::Profile> for ProfileSpec {
    type Error = ConvertError;

    fn try_from(p: v1::Profile) -> Result<Self, ConvertError> {
        if p.name.is_empty() {
            return Err(ConvertError::new("name", "must not be empty"));
        }
        let rules = p
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                rule_from_wire(r)
                    .map(|r| BootRule {
                        profile: Some(p.name.clone()),
                        ..r
                    })
                    .map_err(|e| e.within(&format!("rules[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: p.name,
            rules,
            ipxe_script: non_empty(p.ipxe_script),
            script_path: non_empty(p.script_path),
        })
    }
}

impl From<&ProfileSpec> for v1::Profile {
    fn from(p: &ProfileSpec) -> Self {
        Self {
            name: p.name.clone(),
            rules: p.rules.iter().map(rule_to_wire).collect(),
            ipxe_script: p.ipxe_script.clone().unwrap_or_default(),
            script_path: p.script_path.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<Option<v1::DhcpSettings>> for DhcpSpec {
    type Error = ConvertError;

    fn try_from(d: Option<v1::DhcpSettings>) -> Result<Self, ConvertError> {
        let base = Self::default();
        let Some(d) = d else { return Ok(base) };
        let s = |v: Option<u32>, def: Duration| v.map_or(def, |v| Duration::from_secs(v.into()));
        let ms = |v: Option<u32>, def: Duration| v.map_or(def, |v| Duration::from_millis(v.into()));
        Ok(Self {
            default_lease_time: s(d.default_lease_time_s, base.default_lease_time),
            max_lease_time: s(d.max_lease_time_s, base.max_lease_time),
            min_lease_time: s(d.min_lease_time_s, base.min_lease_time),
            offer_hold: ms(d.offer_hold_ms, base.offer_hold),
            decline_quarantine: s(d.decline_quarantine_s, base.decline_quarantine),
            authoritative: d.authoritative.unwrap_or(base.authoritative),
            allow_bootp: d.allow_bootp.unwrap_or(base.allow_bootp),
            use_host_decl_names: d.use_host_decl_names.unwrap_or(base.use_host_decl_names),
            ping_check: d.ping_check.unwrap_or(base.ping_check),
            ping_timeout: ms(d.ping_timeout_ms, base.ping_timeout),
            unknown_clients: unknown_from_wire(d.unknown_clients),
            relays: relays("relays", &d.relays)?,
        })
    }
}

impl From<&DhcpSpec> for v1::DhcpSettings {
    fn from(d: &DhcpSpec) -> Self {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Self {
            default_lease_time_s: Some(saturating_secs(d.default_lease_time)),
            max_lease_time_s: Some(saturating_secs(d.max_lease_time)),
            min_lease_time_s: Some(saturating_secs(d.min_lease_time)),
            offer_hold_ms: Some(ms(d.offer_hold)),
            decline_quarantine_s: Some(saturating_secs(d.decline_quarantine)),
            authoritative: Some(d.authoritative),
            allow_bootp: Some(d.allow_bootp),
            use_host_decl_names: Some(d.use_host_decl_names),
            ping_check: Some(d.ping_check),
            ping_timeout_ms: Some(ms(d.ping_timeout)),
            unknown_clients: unknown_to_wire(d.unknown_clients) as i32,
            relays: d.relays.iter().map(ToString::to_string).collect(),
        }
    }
}

impl TryFrom<v1::DesiredState> for State {
    type Error = ConvertError;

    fn try_from(s: v1::DesiredState) -> Result<Self, ConvertError> {
        let mut state = Self {
            dhcp: DhcpSpec::try_from(s.dhcp).map_err(|e| e.within("dhcp"))?,
            ..Self::default()
        };
        for (i, w) in s.subnets.into_iter().enumerate() {
            let field = format!("subnets[{i}]");
            let subnet = SubnetSpec::try_from(w).map_err(|e| e.within(&field))?;
            if state.subnets.insert(subnet.net, subnet).is_some() {
                return Err(ConvertError::new(field, "network declared twice"));
            }
        }
        for (i, w) in s.hosts.into_iter().enumerate() {
            let field = format!("hosts[{i}]");
            let host = HostSpec::try_from(w).map_err(|e| e.within(&field))?;
            if state.hosts.insert(host.mac, host).is_some() {
                return Err(ConvertError::new(field, "MAC declared twice"));
            }
        }
        for (i, w) in s.profiles.into_iter().enumerate() {
            let field = format!("profiles[{i}]");
            let profile = ProfileSpec::try_from(w).map_err(|e| e.within(&field))?;
            if state.profiles.contains_key(&profile.name) {
                return Err(ConvertError::new(field, "name declared twice"));
            }
            state.profiles.insert(profile.name.clone(), profile);
        }
        Ok(state)
    }
}

impl From<&State> for v1::DesiredState {
    fn from(s: &State) -> Self {
        Self {
            dhcp: Some((&s.dhcp).into()),
            subnets: s.subnets.values().map(Into::into).collect(),
            hosts: s.hosts.values().map(Into::into).collect(),
            profiles: s.profiles.values().map(Into::into).collect(),
        }
    }
}

/// A wire boot rule as a domain rule.
pub fn rule_from_wire(r: v1::BootRule) -> Result<BootRule, ConvertError> {
    let arch = r
        .arch
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            u16::try_from(a).map(ClientArch).map_err(|_| {
                ConvertError::new(
                    format!("arch[{i}]"),
                    format!("{a} is not an architecture (0-65535)"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    if r.filename.is_empty() {
        return Err(ConvertError::new("filename", "must not be empty"));
    }
    Ok(BootRule {
        profile: non_empty(r.profile),
        arch,
        user_class: non_empty(r.user_class),
        ipxe_encap: r.ipxe_encap,
        filename: r.filename,
        next_server: opt_ip("next_server", &r.next_server)?,
        http: r.http,
    })
}

/// A domain boot rule as a wire rule.
pub fn rule_to_wire(r: &BootRule) -> v1::BootRule {
    v1::BootRule {
        profile: r.profile.clone().unwrap_or_default(),
        arch: r.arch.iter().map(|a| u32::from(a.0)).collect(),
        user_class: r.user_class.clone().unwrap_or_default(),
        ipxe_encap: r.ipxe_encap,
        filename: r.filename.clone(),
        next_server: text(r.next_server),
        http: r.http,
    }
}

fn unknown_from_wire(v: i32) -> Option<UnknownClients> {
    match v1::UnknownClients::try_from(v) {
        Ok(v1::UnknownClients::Allow) => Some(UnknownClients::Allow),
        Ok(v1::UnknownClients::Deny) => Some(UnknownClients::Deny),
        _ => None,
    }
}

fn unknown_to_wire(v: Option<UnknownClients>) -> v1::UnknownClients {
    match v {
        Some(UnknownClients::Allow) => v1::UnknownClients::Allow,
        Some(UnknownClients::Deny) => v1::UnknownClients::Deny,
        None => v1::UnknownClients::Unspecified,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn secs(v: u32) -> Option<Duration> {
    (v != 0).then(|| Duration::from_secs(v.into()))
}

fn saturating_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn ip(field: &str, text: &str) -> Result<Ipv4Addr, ConvertError> {
    text.parse()
        .map_err(|_| ConvertError::new(field, format!("{text:?} is not an IPv4 address")))
}

fn opt_ip(field: &str, text: &str) -> Result<Option<Ipv4Addr>, ConvertError> {
    if text.is_empty() {
        return Ok(None);
    }
    ip(field, text).map(Some)
}

fn ips(field: &str, list: &[String]) -> Result<Vec<Ipv4Addr>, ConvertError> {
    list.iter()
        .enumerate()
        .map(|(i, t)| ip(&format!("{field}[{i}]"), t))
        .collect()
}

/// Parses a CIDR network with host bits zero, or says which field is not
/// one.
pub fn net_field(field: &str, text: &str) -> Result<Ipv4Net, ConvertError> {
    let bad = || {
        ConvertError::new(
            field,
            format!("{text:?} is not a network (a.b.c.d/len, host bits zero)"),
        )
    };
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    Ipv4Net::new(addr, len).ok_or_else(bad)
}

/// Relay networks or single addresses (`/32`), none listed twice.
fn relays(field: &str, list: &[String]) -> Result<Vec<Ipv4Net>, ConvertError> {
    let mut out: Vec<Ipv4Net> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let net = if text.contains('/') {
            net_field(&field, text)?
        } else {
            let addr = ip(&field, text)?;
            Ipv4Net::new(addr, 32)
                .ok_or_else(|| ConvertError::new(&field, format!("{text:?} is not an address")))?
        };
        if out.contains(&net) {
            return Err(ConvertError::new(field, format!("{net} is listed twice")));
        }
        out.push(net);
    }
    Ok(out)
}

fn opt_net(field: &str, text: &str) -> Result<Option<Ipv4Net>, ConvertError> {
    if text.is_empty() {
        return Ok(None);
    }
    net_field(field, text).map(Some)
}
