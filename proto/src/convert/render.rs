//! The desired state → the data plane's validated `Config`, through the
//! configuration file schema and `bootwave_protocol::config::parse`, so that
//! exactly the data plane's checks apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use bootwave_protocol::config::{self, BootRule, Config, ConfigError, UnknownClients, format_mac};
use bootwave_protocol::template::Template;
use serde::Serialize;

use super::{ConvertError, State};

impl State {
    /// Builds the state into a data-plane configuration with default
    /// `interfaces`, `[tftp]`, `[http]` and `[journal]` sections, refusing what the
    /// data plane would refuse.
    pub fn to_config(&self) -> Result<Config, ConvertError> {
        self.check_references()?;
        // Hosts (the bulk: up to 100,000s) are handed over as values, the
        // rest as configuration text: both get the data plane's checks.
        let used = self.template_labels();
        let text = Self::text(&self.file(&used, false))?;
        let hosts: Vec<config::Host> = self
            .hosts
            .values()
            .map(|h| config::Host {
                name: h.name.clone(),
                mac: h.mac,
                fixed_address: h.fixed_address,
                hostname: h.hostname.clone(),
                profile: h.profile.clone(),
                labels: used_labels(&h.labels, &used),
            })
            .collect();
        config::parse(&text, "desired state", Path::new("/"))
            .and_then(|c| c.with_hosts(hosts, "desired state"))
            .map_err(|e| self.locate(&e))
    }

    /// As [`to_config`](Self::to_config), with the machine-local settings
    /// (`interfaces`, the DHCP port, `[tftp]`, `[http]`, `[journal]`, `[ipv6]`) taken
    /// from `local`.
    pub fn to_config_with(&self, local: &Config) -> Result<Config, ConvertError> {
        let mut config = self.to_config()?;
        config.interfaces.clone_from(&local.interfaces);
        config.dhcp.port = local.dhcp.port;
        config.tftp = local.tftp.clone();
        config.http = local.http.clone();
        config.journal = local.journal.clone();
        config.ipv6 = local.ipv6;
        Ok(config)
    }

    /// The configuration file text of this state (the `[dhcp]` section,
    /// subnets with their effective rules, hosts, profiles with their
    /// script templates). Hosts carry only the labels some template uses:
    /// the data plane needs no others.
    pub fn render(&self) -> Result<String, ConvertError> {
        Self::text(&self.file(&self.template_labels(), true))
    }

    fn text(file: &File) -> Result<String, ConvertError> {
        toml::to_string(file).map_err(|e| ConvertError::new("state", e.to_string()))
    }

    /// The configuration file shape of this state, with or without its
    /// hosts; hosts carry the labels in `used`.
    fn file(&self, used: &BTreeSet<String>, with_hosts: bool) -> File {
        File {
            dhcp: FileDhcp {
                default_lease_time: self.dhcp.default_lease_time.as_secs(),
                max_lease_time: self.dhcp.max_lease_time.as_secs(),
                min_lease_time: self.dhcp.min_lease_time.as_secs(),
                offer_hold: millis(self.dhcp.offer_hold),
                decline_quarantine: self.dhcp.decline_quarantine.as_secs(),
                authoritative: self.dhcp.authoritative,
                allow_bootp: self.dhcp.allow_bootp,
                use_host_decl_names: self.dhcp.use_host_decl_names,
                ping_check: self.dhcp.ping_check,
                ping_timeout: millis(self.dhcp.ping_timeout),
                unknown_clients: self.dhcp.unknown_clients.map(policy),
                relays: self.dhcp.relays.iter().map(ToString::to_string).collect(),
            },
            subnets: self.subnets.values().map(|s| self.file_subnet(s)).collect(),
            hosts: self
                .hosts
                .values()
                .filter(|_| with_hosts)
                .map(|h| FileHost {
                    name: h.name.clone(),
                    mac: format_mac(&h.mac),
                    fixed_address: h.fixed_address.map(|a| a.to_string()),
                    hostname: h.hostname.clone(),
                    profile: h.profile.clone(),
                    labels: used_labels(&h.labels, used),
                })
                .collect(),
            profiles: self
                .profiles
                .values()
                .map(|p| FileProfile {
                    name: p.name.clone(),
                    script: p.ipxe_script.as_ref().and(p.script_path.clone()),
                    template: p.ipxe_script.clone(),
                })
                .collect(),
        }
    }

    fn file_subnet(&self, s: &super::SubnetSpec) -> FileSubnet {
        let ips = |v: &[std::net::Ipv4Addr]| v.iter().map(ToString::to_string).collect();
        FileSubnet {
            network: s.net.to_string(),
            ranges: s
                .ranges
                .iter()
                .map(|r| format!("{}-{}", r.start, r.end))
                .collect(),
            routers: ips(&s.routers),
            broadcast: s.broadcast.map(|a| a.to_string()),
            dns_servers: ips(&s.dns),
            ntp_servers: ips(&s.ntp),
            domain_name: s.domain.clone(),
            time_offset: s.time_offset,
            next_server: s.next_server.map(|a| a.to_string()),
            default_lease_time: s.default_lease_time.map(|d| d.as_secs()),
            max_lease_time: s.max_lease_time.map(|d| d.as_secs()),
            unknown_clients: s.unknown_clients.map(policy),
            dynamic_bootp: s.dynamic_bootp.then_some(true),
            dynamic_bootp_lease_length: s.dynamic_bootp_lease_length.map(|d| d.as_secs()),
            boot_rules: self
                .effective_rules(s)
                .iter()
                .map(|(_, r)| file_rule(r))
                .collect(),
        }
    }

    /// The label keys the profiles' script templates use (a template that
    /// does not parse uses none here; the parser reports it).
    fn template_labels(&self) -> BTreeSet<String> {
        self.profiles
            .values()
            .filter_map(|p| Template::parse(p.ipxe_script.as_deref()?).ok())
            .flat_map(|t| t.label_keys().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// Checks what the file schema cannot express: a host's `subnet` exists
    /// and holds its fixed address.
    fn check_references(&self) -> Result<(), ConvertError> {
        for host in self.hosts.values() {
            let Some(net) = host.subnet else { continue };
            let field = format!("host {}: subnet", format_mac(&host.mac));
            if !self.subnets.contains_key(&net) {
                return Err(ConvertError::new(
                    field,
                    format!("no subnet {net} is declared"),
                ));
            }
            if let Some(ip) = host.fixed_address.filter(|ip| !net.contains(*ip)) {
                return Err(ConvertError::new(
                    field,
                    format!("fixed address {ip} is outside {net}"),
                ));
            }
        }
        Ok(())
    }

    /// Rewrites a configuration error's key (`hosts[2].profile`) into the
    /// object it is about (`host 02:00:00:00:00:01: profile`).
    fn locate(&self, e: &ConfigError) -> ConvertError {
        let ConfigError::Invalid { key, message, .. } = e else {
            return ConvertError::new("state", e.to_string());
        };
        let indexed = |prefix: &str| -> Option<(usize, String)> {
            let rest = key.strip_prefix(prefix)?;
            let (index, tail) = rest.split_once(']')?;
            Some((index.parse().ok()?, tail.trim_start_matches('.').to_owned()))
        };
        let object = if let Some((i, tail)) = indexed("hosts[") {
            self.hosts
                .values()
                .nth(i)
                .map(|h| (format!("host {}", format_mac(&h.mac)), tail))
        } else if let Some((i, tail)) = indexed("profiles[") {
            self.profiles
                .keys()
                .nth(i)
                .map(|n| (format!("profile {n}"), tail))
        } else if let Some((i, tail)) = indexed("subnets[") {
            self.subnets
                .keys()
                .nth(i)
                .map(|n| (format!("subnet {n}"), tail))
        } else {
            None
        };
        match object {
            Some((object, tail)) if tail.is_empty() => ConvertError::new(object, message.clone()),
            Some((object, tail)) => ConvertError::new(format!("{object}: {tail}"), message.clone()),
            None => ConvertError::new(key.clone(), message.clone()),
        }
    }
}

/// The labels of `labels` whose key is in `used`.
fn used_labels(
    labels: &BTreeMap<String, String>,
    used: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| used.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn policy(u: UnknownClients) -> &'static str {
    match u {
        UnknownClients::Allow => "allow",
        UnknownClients::Deny => "deny",
    }
}

fn file_rule(r: &BootRule) -> FileRule {
    FileRule {
        profile: r.profile.clone(),
        arch: (!r.arch.is_empty()).then(|| r.arch.iter().map(|a| a.0).collect()),
        user_class: r.user_class.clone(),
        ipxe_encap: r.ipxe_encap,
        filename: r.filename.clone(),
        next_server: r.next_server.map(|a| a.to_string()),
        http: r.http.then_some(true),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    dhcp: FileDhcp,
    subnets: Vec<FileSubnet>,
    hosts: Vec<FileHost>,
    profiles: Vec<FileProfile>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileDhcp {
    default_lease_time: u64,
    max_lease_time: u64,
    min_lease_time: u64,
    offer_hold: String,
    decline_quarantine: u64,
    authoritative: bool,
    allow_bootp: bool,
    use_host_decl_names: bool,
    ping_check: bool,
    ping_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown_clients: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    relays: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileSubnet {
    network: String,
    ranges: Vec<String>,
    routers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broadcast: Option<String>,
    dns_servers: Vec<String>,
    ntp_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_offset: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_lease_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_lease_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown_clients: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamic_bootp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamic_bootp_lease_length: Option<u64>,
    boot_rules: Vec<FileRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipxe_encap: Option<bool>,
    filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileHost {
    name: String,
    mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileProfile {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    script: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<String>,
}
