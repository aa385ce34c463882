//! Host reservations and their cross-checks against subnets and rules.

use std::collections::HashSet;

use toml::Spanned;

use crate::config::error::Rejection;
use crate::config::file::FileHost;
use crate::config::model::{DEFAULT_PROFILE, Host, Subnet};
use crate::config::values::{check_name, format_mac, parse_ipv4, parse_mac};

/// Converts every host. Names and MACs are unique; a fixed address lies in a
/// declared subnet, outside its dynamic ranges, and belongs to one host; a
/// profile other than `default` is named by at least one boot rule (a typo
/// would otherwise silently boot the host with the default profile).
pub(super) fn convert(files: &[FileHost], subnets: &[Subnet]) -> Result<Vec<Host>, Rejection> {
    let profiles: HashSet<&str> = subnets
        .iter()
        .flat_map(|s| &s.boot_rules)
        .filter_map(|r| r.profile.as_deref())
        .chain([DEFAULT_PROFILE])
        .collect();
    let mut out: Vec<Host> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let key = format!("hosts[{i}]");
        let host = convert_one(file, &key, subnets, &profiles)?;
        let fail = |value: &Spanned<String>, field: &str, m: String| {
            Rejection::new(Some(value.span()), format!("{key}.{field}"), m)
        };
        if let Some(j) = out.iter().position(|o| o.name == host.name) {
            return Err(fail(
                &file.name,
                "name",
                format!("`{}` is already hosts[{j}]", host.name),
            ));
        }
        if let Some(j) = out.iter().position(|o| o.mac == host.mac) {
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
            && let Some(j) = out.iter().position(|o| o.fixed_address == Some(ip))
        {
            return Err(fail(
                value,
                "fixed-address",
                format!("{ip} is already hosts[{j}] ({})", out[j].name),
            ));
        }
        out.push(host);
    }
    Ok(out)
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
                    format!("no boot rule uses the profile `{text}`"),
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
    })
}

fn checked_name(value: &Spanned<String>, key: &str) -> Result<String, Rejection> {
    check_name(value.get_ref()).map_err(|m| Rejection::new(Some(value.span()), key, m))?;
    Ok(value.get_ref().clone())
}
