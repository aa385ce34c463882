//! Host reservations and their cross-checks against subnets and rules.
//!
//! A host is checked as a typed value ([`Host`]), whichever way it came:
//! from a `[[hosts]]` entry (whose MAC and address are parsed first) or
//! handed in by the agent's API ([`Config::with_hosts`]). The checks
//! allocate nothing for a valid host; the key and position of an error are
//! built only when there is one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::ops::Range;

use toml::Spanned;

use crate::config::error::{ConfigError, Rejection};
use crate::config::file::FileHost;
use crate::config::model::{Config, DEFAULT_PROFILE, Host, Profile, Subnet, check_label_value};
use crate::config::values::{check_name, format_mac, parse_ipv4, parse_mac};
use crate::template::check_label_key;

/// Converts every `[[hosts]]` entry and checks them as [`check_all`] does;
/// errors point at the offending value.
pub(super) fn convert(
    files: &[FileHost],
    subnets: &[Subnet],
    declared: &[Profile],
) -> Result<Vec<Host>, Rejection> {
    let mut out: Vec<Host> = Vec::with_capacity(files.len());
    // A value that does not parse stops the conversion; a fault of an
    // earlier entry is still the one reported.
    let mut unparsed = None;
    for (i, file) in files.iter().enumerate() {
        match parse_entry(file, i) {
            Ok(host) => out.push(host),
            Err(r) => {
                unparsed = Some(r);
                break;
            }
        }
    }
    check_all(&out, subnets, declared).map_err(|bad| {
        let span = span_of(&files[bad.index], &bad.field);
        bad.reject(span)
    })?;
    match unparsed {
        Some(r) => Err(r),
        None => Ok(out),
    }
}

/// The values of entry `i`, with its MAC and address parsed.
fn parse_entry(file: &FileHost, i: usize) -> Result<Host, Rejection> {
    let at = |value: &Spanned<String>, field: &str, m: String| {
        Rejection::new(Some(value.span()), format!("hosts[{i}].{field}"), m)
    };
    let mac = parse_mac(file.mac.get_ref()).map_err(|m| at(&file.mac, "mac", m))?;
    let fixed_address = file
        .fixed_address
        .as_ref()
        .map(|v| parse_ipv4(v.get_ref()).map_err(|m| at(v, "fixed-address", m)))
        .transpose()?;
    let labels = file.labels.as_ref().map_or_else(BTreeMap::new, |table| {
        table
            .get_ref()
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect()
    });
    Ok(Host {
        name: file.name.get_ref().clone(),
        mac,
        fixed_address,
        hostname: file.hostname.as_ref().map(|h| h.get_ref().clone()),
        profile: file.profile.as_ref().map(|p| p.get_ref().clone()),
        labels,
    })
}

impl Config {
    /// This configuration with `hosts` as its `[[hosts]]` (replacing any),
    /// refused exactly as the same entries in a file would be; errors name
    /// the key (`hosts[3].fixed-address`) and have no position. This is how
    /// host reservations handed in as values (by the agent's API) get the
    /// file's checks without writing and reading TOML.
    pub fn with_hosts(mut self, hosts: Vec<Host>, origin: &str) -> Result<Self, ConfigError> {
        // No span: the error has no position, and no text is needed.
        check_all(&hosts, &self.subnets, &self.profiles)
            .map_err(|bad| bad.reject(None).locate(origin, ""))?;
        self.hosts = hosts;
        Ok(self)
    }
}

/// The part of a host an error is about.
#[derive(Debug)]
enum Field {
    Name,
    Mac,
    FixedAddress,
    Hostname,
    Profile,
    /// The labels as a whole (one a template needs is missing).
    Labels,
    /// A label's key.
    LabelKey(String),
    /// A label's value.
    LabelValue(String),
}

/// Why the host at `index` was refused.
#[derive(Debug)]
struct Bad {
    index: usize,
    field: Field,
    message: String,
}

impl Bad {
    fn reject(self, span: Option<Range<usize>>) -> Rejection {
        let i = self.index;
        let key = match &self.field {
            Field::Name => format!("hosts[{i}].name"),
            Field::Mac => format!("hosts[{i}].mac"),
            Field::FixedAddress => format!("hosts[{i}].fixed-address"),
            Field::Hostname => format!("hosts[{i}].hostname"),
            Field::Profile => format!("hosts[{i}].profile"),
            Field::Labels => format!("hosts[{i}].labels"),
            Field::LabelKey(k) | Field::LabelValue(k) => format!("hosts[{i}].labels.{k}"),
        };
        Rejection::new(span, key, self.message)
    }
}

/// Where in its file entry the value `field` names is.
fn span_of(file: &FileHost, field: &Field) -> Option<Range<usize>> {
    let span = |v: Option<&Spanned<String>>| v.map(Spanned::span);
    let table = file.labels.as_ref().map(Spanned::span);
    match field {
        Field::Name => Some(file.name.span()),
        Field::Mac => Some(file.mac.span()),
        Field::FixedAddress => span(file.fixed_address.as_ref()),
        Field::Hostname => span(file.hostname.as_ref()),
        Field::Profile => span(file.profile.as_ref()),
        Field::LabelKey(_) => table,
        Field::LabelValue(k) => file
            .labels
            .as_ref()
            .and_then(|t| t.get_ref().get(k))
            .map(Spanned::span),
        Field::Labels => table
            .or_else(|| span(file.profile.as_ref()))
            .or_else(|| Some(file.name.span())),
    }
}

/// Checks every host. Names and MACs are unique; a fixed address lies in a
/// declared subnet, outside its dynamic ranges, and belongs to one host; a
/// profile other than `default` is named by at least one boot rule or
/// `[[profiles]]` entry (a typo would otherwise silently boot the host with
/// the default profile); a host has every label its profile's script
/// template uses. The first host in order with a fault is reported; each
/// host's own faults come before its clashes with earlier hosts.
fn check_all(hosts: &[Host], subnets: &[Subnet], declared: &[Profile]) -> Result<(), Bad> {
    let profiles: HashSet<&str> = subnets
        .iter()
        .flat_map(|s| &s.boot_rules)
        .filter_map(|r| r.profile.as_deref())
        .chain(declared.iter().map(|p| p.name.as_str()))
        .chain([DEFAULT_PROFILE])
        .collect();
    // Index of the first host with each name, MAC and fixed address: the
    // checks stay linear in the number of hosts (100,000 reservations).
    let mut names: HashMap<&str, usize> = HashMap::with_capacity(hosts.len());
    let mut macs: HashMap<[u8; 6], usize> = HashMap::with_capacity(hosts.len());
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::with_capacity(hosts.len());
    for (index, host) in hosts.iter().enumerate() {
        let bad = |field: Field, message: String| Bad {
            index,
            field,
            message,
        };
        check_one(host, subnets, &profiles, declared).map_err(|(f, m)| bad(f, m))?;
        if let Some(&j) = names.get(host.name.as_str()) {
            let m = format!("`{}` is already hosts[{j}]", host.name);
            return Err(bad(Field::Name, m));
        }
        if let Some(&j) = macs.get(&host.mac) {
            let (mac, other) = (format_mac(&host.mac), &hosts[j].name);
            return Err(bad(
                Field::Mac,
                format!("{mac} is already hosts[{j}] ({other})"),
            ));
        }
        if let Some(ip) = host.fixed_address
            && let Some(&j) = ips.get(&ip)
        {
            let m = format!("{ip} is already hosts[{j}] ({})", hosts[j].name);
            return Err(bad(Field::FixedAddress, m));
        }
        names.insert(&host.name, index);
        macs.insert(host.mac, index);
        if let Some(ip) = host.fixed_address {
            ips.insert(ip, index);
        }
    }
    Ok(())
}

/// One host's own checks (not against other hosts).
fn check_one(
    host: &Host,
    subnets: &[Subnet],
    profiles: &HashSet<&str>,
    declared: &[Profile],
) -> Result<(), (Field, String)> {
    check_name(&host.name).map_err(|m| (Field::Name, m))?;
    if let Some(ip) = host.fixed_address {
        let fail = |m: String| (Field::FixedAddress, m);
        let subnet = subnets
            .iter()
            .find(|s| s.net.contains(ip))
            .ok_or_else(|| fail(format!("{ip} is not inside any declared subnet")))?;
        if subnet.net.prefix() <= 30 && (ip == subnet.net.addr() || ip == subnet.net.broadcast()) {
            return Err(fail(format!(
                "{ip} is the network or broadcast address of {}",
                subnet.net
            )));
        }
        if let Some(r) = subnet.ranges.iter().find(|r| r.start <= ip && ip <= r.end) {
            return Err(fail(format!(
                "{ip} is inside the dynamic range {}-{} of {}",
                r.start, r.end, subnet.net
            )));
        }
    }
    if let Some(hostname) = &host.hostname {
        check_name(hostname).map_err(|m| (Field::Hostname, m))?;
    }
    if let Some(profile) = &host.profile {
        check_name(profile).map_err(|m| (Field::Profile, m))?;
        if !profiles.contains(profile.as_str()) {
            return Err((
                Field::Profile,
                format!(
                    "no boot rule uses the profile `{profile}` and no [[profiles]] entry declares it"
                ),
            ));
        }
    }
    for (key, value) in &host.labels {
        check_label_key(key).map_err(|m| {
            let m = format!("`{key}` is not a label key ({m})");
            (Field::LabelKey(key.clone()), m)
        })?;
        check_label_value(value).map_err(|m| (Field::LabelValue(key.clone()), m.to_owned()))?;
    }
    required_labels(host, declared)
}

/// Refuses a host whose profile's template uses a label the host lacks:
/// the script would otherwise be served with a hole in it.
fn required_labels(host: &Host, declared: &[Profile]) -> Result<(), (Field, String)> {
    let profile = host.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    let Some(script) = declared
        .iter()
        .find(|p| p.name == profile)
        .and_then(|p| p.script.as_ref())
    else {
        return Ok(());
    };
    match script
        .template
        .label_keys()
        .find(|k| !host.labels.contains_key(*k))
    {
        None => Ok(()),
        Some(missing) => Err((
            Field::Labels,
            format!(
                "the script template of profile `{profile}` uses {{{{label:{missing}}}}}, which this host does not have"
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn base() -> Config {
        let text = "[[subnets]]\nnetwork = \"10.0.0.0/24\"\nranges = [\"10.0.0.100-10.0.0.200\"]\n";
        parse(text, "base.toml", Path::new("/")).unwrap()
    }

    fn decl(last: u8, ip: &str) -> Host {
        Host {
            name: format!("node-{last}"),
            mac: [2, 0, 0, 0, 0, last],
            fixed_address: Some(ip.parse().unwrap()),
            hostname: None,
            profile: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn values_get_the_checks_of_file_entries() {
        let ok = base()
            .with_hosts(vec![decl(1, "10.0.0.5"), decl(2, "10.0.0.6")], "api")
            .unwrap();
        assert_eq!(ok.hosts.len(), 2);
        assert_eq!(ok.hosts[1].fixed_address, Some("10.0.0.6".parse().unwrap()));

        let cases = [
            (
                vec![decl(1, "10.0.0.5"), decl(1, "10.0.0.6")],
                "hosts[1].name",
            ),
            (
                vec![decl(1, "10.0.0.5"), decl(2, "10.0.0.5")],
                "hosts[1].fixed-address",
            ),
            (vec![decl(1, "10.0.0.150")], "hosts[0].fixed-address"),
            (vec![decl(1, "10.9.0.1")], "hosts[0].fixed-address"),
        ];
        for (hosts, key) in cases {
            let Err(ConfigError::Invalid {
                key: got, location, ..
            }) = base().with_hosts(hosts.clone(), "api")
            else {
                panic!("{hosts:?} accepted");
            };
            assert_eq!(got, key);
            assert_eq!(location.position, None);
            assert_eq!(location.origin, "api");
        }
        let mut twin = decl(2, "10.0.0.6");
        twin.mac = [2, 0, 0, 0, 0, 1];
        let Err(ConfigError::Invalid { key, .. }) =
            base().with_hosts(vec![decl(1, "10.0.0.5"), twin], "api")
        else {
            panic!("duplicate MAC accepted");
        };
        assert_eq!(key, "hosts[1].mac");
    }

    #[test]
    fn the_first_faulty_entry_is_reported_even_when_a_later_one_does_not_parse() {
        let text = "[[subnets]]\nnetwork = \"10.0.0.0/24\"\n\
            [[hosts]]\nname = \"bad name\"\nmac = \"02:00:00:00:00:01\"\n\
            [[hosts]]\nname = \"b\"\nmac = \"zz\"\n";
        let Err(ConfigError::Invalid { key, location, .. }) = parse(text, "t.toml", Path::new("/"))
        else {
            panic!("accepted");
        };
        assert_eq!(key, "hosts[0].name");
        assert_eq!(location.position.map(|(line, _)| line), Some(4));

        let text = text.replace("bad name", "a");
        let Err(ConfigError::Invalid { key, .. }) = parse(&text, "t.toml", Path::new("/")) else {
            panic!("accepted");
        };
        assert_eq!(key, "hosts[1].mac");
    }

    #[test]
    fn label_faults_of_values_name_the_label() {
        let mut host = decl(1, "10.0.0.5");
        host.labels.insert("rack".into(), "a\nb".into());
        let Err(ConfigError::Invalid { key, .. }) = base().with_hosts(vec![host], "api") else {
            panic!("control character accepted");
        };
        assert_eq!(key, "hosts[0].labels.rack");
    }
}
