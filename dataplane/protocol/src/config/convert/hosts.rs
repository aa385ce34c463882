//! Host reservations and their cross-checks against subnets and rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use toml::Spanned;

use crate::config::error::{ConfigError, Location, Rejection};
use crate::config::file::FileHost;
use crate::config::model::{Config, DEFAULT_PROFILE, Host, Profile, Subnet, check_label_value};
use crate::config::values::{check_name, format_mac, parse_ipv4, parse_mac};
use crate::template::check_label_key;

/// Converts every host. Names and MACs are unique; a fixed address lies in a
/// declared subnet, outside its dynamic ranges, and belongs to one host; a
/// profile other than `default` is named by at least one boot rule or
/// `[[profiles]]` entry (a typo would otherwise silently boot the host with
/// the default profile); a host has every label its profile's script
/// template uses.
pub(super) fn convert(
    files: &[FileHost],
    subnets: &[Subnet],
    declared: &[Profile],
) -> Result<Vec<Host>, Rejection> {
    let profiles: HashSet<&str> = subnets
        .iter()
        .flat_map(|s| &s.boot_rules)
        .filter_map(|r| r.profile.as_deref())
        .chain(declared.iter().map(|p| p.name.as_str()))
        .chain([DEFAULT_PROFILE])
        .collect();
    let mut out: Vec<Host> = Vec::with_capacity(files.len());
    // Index of the first host with each name, MAC and fixed address: the
    // checks stay linear in the number of hosts (100,000 reservations).
    let mut names: HashMap<String, usize> = HashMap::with_capacity(files.len());
    let mut macs: HashMap<[u8; 6], usize> = HashMap::with_capacity(files.len());
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let key = format!("hosts[{i}]");
        let host = convert_one(file, &key, subnets, &profiles)?;
        required_labels(&host, file, &key, declared)?;
        let fail = |value: &Spanned<String>, field: &str, m: String| {
            Rejection::new(Some(value.span()), format!("{key}.{field}"), m)
        };
        if let Some(&j) = names.get(host.name.as_str()) {
            return Err(fail(
                &file.name,
                "name",
                format!("`{}` is already hosts[{j}]", host.name),
            ));
        }
        if let Some(&j) = macs.get(&host.mac) {
            return Err(fail(
                &file.mac,
                "mac",
                format!(
                    "{} is already hosts[{j}] ({})",
                    format_mac(&host.mac),
                    out[j].name
                ),
            ));
        }
        if let (Some(ip), Some(value)) = (host.fixed_address, &file.fixed_address)
            && let Some(&j) = ips.get(&ip)
        {
            return Err(fail(
                value,
                "fixed-address",
                format!("{ip} is already hosts[{j}] ({})", out[j].name),
            ));
        }
        names.insert(host.name.clone(), i);
        macs.insert(host.mac, i);
        if let Some(ip) = host.fixed_address {
            ips.insert(ip, i);
        }
        out.push(host);
    }
    Ok(out)
}

impl Config {
    /// This configuration with `hosts` as its `[[hosts]]` (replacing any),
    /// refused exactly as the same entries in a file would be; errors name
    /// the key (`hosts[3].fixed-address`) and have no position. This is how
    /// host reservations handed in as values (by the agent's API) get the
    /// file's checks without the cost of writing and reading TOML
    /// (100,000 hosts take a fraction of a second).
    pub fn with_hosts(mut self, hosts: &[Host], origin: &str) -> Result<Self, ConfigError> {
        let text = |s: String| Spanned::new(0..0, s);
        let files: Vec<FileHost> = hosts
            .iter()
            .map(|h| FileHost {
                name: text(h.name.clone()),
                mac: text(format_mac(&h.mac)),
                fixed_address: h.fixed_address.map(|ip| text(ip.to_string())),
                hostname: h.hostname.clone().map(text),
                profile: h.profile.clone().map(text),
                labels: (!h.labels.is_empty()).then(|| {
                    let table = h
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), text(v.clone())))
                        .collect();
                    Spanned::new(0..0, table)
                }),
            })
            .collect();
        self.hosts =
            convert(&files, &self.subnets, &self.profiles).map_err(|r| ConfigError::Invalid {
                location: Location {
                    origin: origin.to_owned(),
                    position: None,
                },
                key: r.key,
                message: r.message,
            })?;
        Ok(self)
    }
}

fn convert_one(
    file: &FileHost,
    key: &str,
    subnets: &[Subnet],
    profiles: &HashSet<&str>,
) -> Result<Host, Rejection> {
    let name = checked_name(&file.name, &format!("{key}.name"))?;
    let mac = parse_mac(file.mac.get_ref())
        .map_err(|m| Rejection::new(Some(file.mac.span()), format!("{key}.mac"), m))?;
    let fixed_address = match &file.fixed_address {
        None => None,
        Some(value) => {
            let key = format!("{key}.fixed-address");
            let fail = |m: String| Rejection::new(Some(value.span()), key.clone(), m);
            let ip = parse_ipv4(value.get_ref()).map_err(fail)?;
            let subnet = subnets
                .iter()
                .find(|s| s.net.contains(ip))
                .ok_or_else(|| fail(format!("{ip} is not inside any declared subnet")))?;
            if subnet.net.prefix() <= 30
                && (ip == subnet.net.addr() || ip == subnet.net.broadcast())
            {
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
            Some(ip)
        }
    };
    let hostname = file
        .hostname
        .as_ref()
        .map(|h| checked_name(h, &format!("{key}.hostname")))
        .transpose()?;
    let profile = match &file.profile {
        None => None,
        Some(p) => {
            let text = checked_name(p, &format!("{key}.profile"))?;
            if !profiles.contains(text.as_str()) {
                return Err(Rejection::new(
                    Some(p.span()),
                    format!("{key}.profile"),
                    format!(
                        "no boot rule uses the profile `{text}` and no [[profiles]] entry declares it"
                    ),
                ));
            }
            Some(text)
        }
    };
    Ok(Host {
        name,
        mac,
        fixed_address,
        hostname,
        profile,
        labels: labels(file, key)?,
    })
}

/// `labels = { KEY = "value", … }`: keys as in `{{label:KEY}}`, values
/// without control characters.
fn labels(file: &FileHost, key: &str) -> Result<BTreeMap<String, String>, Rejection> {
    let Some(table) = &file.labels else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, value) in table.get_ref() {
        let key = format!("{key}.labels.{name}");
        check_label_key(name).map_err(|m| {
            Rejection::new(
                Some(table.span()),
                key.clone(),
                format!("`{name}` is not a label key ({m})"),
            )
        })?;
        check_label_value(value.get_ref())
            .map_err(|m| Rejection::new(Some(value.span()), key, m))?;
        out.insert(name.clone(), value.get_ref().clone());
    }
    Ok(out)
}

/// Refuses a host whose profile's template uses a label the host lacks:
/// the script would otherwise be served with a hole in it.
fn required_labels(
    host: &Host,
    file: &FileHost,
    key: &str,
    declared: &[Profile],
) -> Result<(), Rejection> {
    let profile = host.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    let Some(script) = declared
        .iter()
        .find(|p| p.name == profile)
        .and_then(|p| p.script.as_ref())
    else {
        return Ok(());
    };
    let Some(missing) = script
        .template
        .label_keys()
        .find(|k| !host.labels.contains_key(*k))
    else {
        return Ok(());
    };
    let span = file
        .labels
        .as_ref()
        .map(Spanned::span)
        .or_else(|| file.profile.as_ref().map(Spanned::span))
        .unwrap_or_else(|| file.name.span());
    Err(Rejection::new(
        Some(span),
        format!("{key}.labels"),
        format!(
            "the script template of profile `{profile}` uses {{{{label:{missing}}}}}, which this host does not have"
        ),
    ))
}

fn checked_name(value: &Spanned<String>, key: &str) -> Result<String, Rejection> {
    check_name(value.get_ref()).map_err(|m| Rejection::new(Some(value.span()), key, m))?;
    Ok(value.get_ref().clone())
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
            .with_hosts(&[decl(1, "10.0.0.5"), decl(2, "10.0.0.6")], "api")
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
            }) = base().with_hosts(&hosts, "api")
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
            base().with_hosts(&[decl(1, "10.0.0.5"), twin], "api")
        else {
            panic!("duplicate MAC accepted");
        };
        assert_eq!(key, "hosts[1].mac");
    }
}
