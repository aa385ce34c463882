//! Subnets, their pools and their boot rules.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::{Field, duration, unicast, unknown_clients};
use crate::config::error::Rejection;
use crate::config::file::{FileBootRule, FileDhcp, FileSubnet, Scalar};
use crate::config::model::{
    AddrRange, BootRule, ClientArch, DhcpSettings, Ipv4Net, Subnet, UnknownClients,
};
use crate::config::values::{
    check_filename, check_http_path, check_name, format_duration, parse_arch_name, parse_net,
    parse_range,
};

/// Converts every subnet and checks that no two overlap.
pub(super) fn convert(
    files: &[FileSubnet],
    file_dhcp: &FileDhcp,
    dhcp: &DhcpSettings,
    default_unknown: UnknownClients,
) -> Result<Vec<Subnet>, Rejection> {
    let mut out: Vec<Subnet> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let subnet = convert_one(
            file,
            &format!("subnets[{i}]"),
            file_dhcp,
            dhcp,
            default_unknown,
        )?;
        if let Some((j, other)) = out
            .iter()
            .enumerate()
            .find(|(_, o)| o.net.contains(subnet.net.addr()) || subnet.net.contains(o.net.addr()))
        {
            return Err(Rejection::new(
                Some(file.network.span()),
                format!("subnets[{i}].network"),
                format!("{} overlaps subnets[{j}] ({})", subnet.net, other.net),
            ));
        }
        out.push(subnet);
    }
    Ok(out)
}

fn convert_one(
    file: &FileSubnet,
    key: &str,
    file_dhcp: &FileDhcp,
    dhcp: &DhcpSettings,
    default_unknown: UnknownClients,
) -> Result<Subnet, Rejection> {
    let net = parse_net(file.network.get_ref())
        .map_err(|m| Rejection::new(Some(file.network.span()), format!("{key}.network"), m))?;
    let routers = file
        .routers
        .iter()
        .enumerate()
        .map(|(i, r)| host_address(r, &format!("{key}.routers[{i}]"), net))
        .collect::<Result<Vec<_>, _>>()?;
    let broadcast = match &file.broadcast {
        None => net.broadcast(),
        Some(b) => {
            let ip = crate::config::values::parse_ipv4(b.get_ref())
                .map_err(|m| Rejection::new(Some(b.span()), format!("{key}.broadcast"), m))?;
            if !net.contains(ip) {
                return Err(Rejection::new(
                    Some(b.span()),
                    format!("{key}.broadcast"),
                    format!("{ip} is outside {net}"),
                ));
            }
            ip
        }
    };
    let ranges = ranges(file, key, net, &routers, broadcast)?;
    let servers = |list: &[Spanned<String>], name: &str| {
        list.iter()
            .enumerate()
            .map(|(i, s)| unicast(s, &format!("{key}.{name}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
    };
    let domain_name = match &file.domain_name {
        None => None,
        Some(d) => {
            check_name(d.get_ref())
                .map_err(|m| Rejection::new(Some(d.span()), format!("{key}.domain-name"), m))?;
            Some(d.get_ref().clone())
        }
    };
    let (default_lease_time, max_lease_time) = lease_overrides(file, key, file_dhcp, dhcp)?;
    let dynamic_bootp_lease_length = bootp_lease_length(file, key, dhcp, max_lease_time)?;
    Ok(Subnet {
        net,
        ranges,
        routers,
        broadcast,
        dns_servers: servers(&file.dns_servers, "dns-servers")?,
        ntp_servers: servers(&file.ntp_servers, "ntp-servers")?,
        domain_name,
        time_offset: file.time_offset.as_ref().map(|t| *t.get_ref()),
        next_server: file
            .next_server
            .as_ref()
            .map(|n| unicast(n, &format!("{key}.next-server")))
            .transpose()?,
        default_lease_time,
        max_lease_time,
        unknown_clients: unknown_clients(
            file.unknown_clients.as_ref(),
            &format!("{key}.unknown-clients"),
        )?
        .unwrap_or(default_unknown),
        dynamic_bootp: file.dynamic_bootp.unwrap_or(false),
        dynamic_bootp_lease_length,
        boot_rules: file
            .boot_rules
            .iter()
            .enumerate()
            .map(|(i, r)| boot_rule(r, &format!("{key}.boot-rules[{i}]")))
            .collect::<Result<_, _>>()?,
    })
}

/// An address of a machine inside `net`: not the network or broadcast
/// address (except in /31 and /32 networks, which have neither).
fn host_address(value: &Spanned<String>, key: &str, net: Ipv4Net) -> Result<Ipv4Addr, Rejection> {
    let ip = unicast(value, key)?;
    if !net.contains(ip) {
        return Err(Rejection::new(
            Some(value.span()),
            key,
            format!("{ip} is outside {net}"),
        ));
    }
    if net.prefix() <= 30 && (ip == net.addr() || ip == net.broadcast()) {
        return Err(Rejection::new(
            Some(value.span()),
            key,
            format!("{ip} is the network or broadcast address of {net}"),
        ));
    }
    Ok(ip)
}

fn ranges(
    file: &FileSubnet,
    key: &str,
    net: Ipv4Net,
    routers: &[Ipv4Addr],
    broadcast: Ipv4Addr,
) -> Result<Vec<AddrRange>, Rejection> {
    let mut out: Vec<AddrRange> = Vec::with_capacity(file.ranges.len());
    for (i, text) in file.ranges.iter().enumerate() {
        let key = format!("{key}.ranges[{i}]");
        let fail = |m: String| Rejection::new(Some(text.span()), key.clone(), m);
        let range = parse_range(text.get_ref()).map_err(&fail)?;
        for end in [range.start, range.end] {
            if !net.contains(end) {
                return Err(fail(format!("{end} is outside {net}")));
            }
        }
        let within = |ip: Ipv4Addr| range.start <= ip && ip <= range.end;
        if net.prefix() <= 30 && (within(net.addr()) || within(net.broadcast())) {
            return Err(fail(format!(
                "includes the network or broadcast address of {net}"
            )));
        }
        if within(broadcast) {
            return Err(fail(format!("includes the broadcast address {broadcast}")));
        }
        if let Some(router) = routers.iter().find(|&&r| within(r)) {
            return Err(fail(format!("includes the router {router}")));
        }
        if let Some(j) = out
            .iter()
            .position(|o| o.start <= range.end && range.start <= o.end)
        {
            return Err(fail(format!("overlaps ranges[{j}]")));
        }
        out.push(range);
    }
    Ok(out)
}

fn lease_overrides(
    file: &FileSubnet,
    key: &str,
    file_dhcp: &FileDhcp,
    dhcp: &DhcpSettings,
) -> Result<(Option<std::time::Duration>, Option<std::time::Duration>), Rejection> {
    let default_key = format!("{key}.default-lease-time");
    let max_key = format!("{key}.max-lease-time");
    let global = |value, span: Option<std::ops::Range<usize>>| Field { value, span };
    let default = match &file.default_lease_time {
        Some(v) => duration(Some(v), &default_key, dhcp.default_lease_time)?,
        None => global(
            dhcp.default_lease_time,
            file_dhcp.default_lease_time.as_ref().map(Spanned::span),
        ),
    };
    let max = match &file.max_lease_time {
        Some(v) => duration(Some(v), &max_key, dhcp.max_lease_time)?,
        None => global(
            dhcp.max_lease_time,
            file_dhcp.max_lease_time.as_ref().map(Spanned::span),
        ),
    };
    if default.value < dhcp.min_lease_time {
        return Err(default.reject(
            &default_key,
            format!(
                "{} is less than dhcp.min-lease-time {}",
                format_duration(default.value),
                format_duration(dhcp.min_lease_time)
            ),
        ));
    }
    if default.value > max.value {
        let (lo, hi) = (format_duration(default.value), format_duration(max.value));
        return Err(if file.default_lease_time.is_some() {
            let max_name = if file.max_lease_time.is_some() {
                max_key.as_str()
            } else {
                "dhcp.max-lease-time"
            };
            default.reject(&default_key, format!("{lo} exceeds {max_name} {hi}"))
        } else {
            max.reject(
                &max_key,
                format!("{hi} is less than dhcp.default-lease-time {lo}"),
            )
        });
    }
    Ok((
        file.default_lease_time.as_ref().map(|_| default.value),
        file.max_lease_time.as_ref().map(|_| max.value),
    ))
}

/// `dynamic-bootp-lease-length`: only with `dynamic-bootp = true`, above
/// zero and within the subnet's maximum lease time.
fn bootp_lease_length(
    file: &FileSubnet,
    key: &str,
    dhcp: &DhcpSettings,
    max_lease_time: Option<std::time::Duration>,
) -> Result<Option<std::time::Duration>, Rejection> {
    let Some(value) = &file.dynamic_bootp_lease_length else {
        return Ok(None);
    };
    let key = format!("{key}.dynamic-bootp-lease-length");
    let length = duration(Some(value), &key, dhcp.default_lease_time)?;
    if file.dynamic_bootp != Some(true) {
        return Err(length.reject(&key, "only applies with dynamic-bootp = true"));
    }
    if length.value.is_zero() {
        return Err(length.reject(&key, "must be greater than zero"));
    }
    let max = max_lease_time.unwrap_or(dhcp.max_lease_time);
    if length.value > max {
        return Err(length.reject(
            &key,
            format!(
                "{} exceeds the maximum lease time {}",
                format_duration(length.value),
                format_duration(max)
            ),
        ));
    }
    Ok(Some(length.value))
}

fn boot_rule(file: &FileBootRule, key: &str) -> Result<BootRule, Rejection> {
    check_filename(file.filename.get_ref())
        .map_err(|m| Rejection::new(Some(file.filename.span()), format!("{key}.filename"), m))?;
    let http = file.http.unwrap_or(false);
    if http {
        check_http_path(file.filename.get_ref()).map_err(|m| {
            Rejection::new(Some(file.filename.span()), format!("{key}.filename"), m)
        })?;
    }
    let profile = match &file.profile {
        None => None,
        Some(p) => {
            check_name(p.get_ref())
                .map_err(|m| Rejection::new(Some(p.span()), format!("{key}.profile"), m))?;
            Some(p.get_ref().clone())
        }
    };
    let user_class = match &file.user_class {
        None => None,
        Some(u) if u.get_ref().is_empty() || u.get_ref().len() > 255 => {
            return Err(Rejection::new(
                Some(u.span()),
                format!("{key}.user-class"),
                "must be 1-255 bytes long",
            ));
        }
        Some(u) => Some(u.get_ref().clone()),
    };
    Ok(BootRule {
        profile,
        arch: file
            .arch
            .as_ref()
            .map_or(Ok(Vec::new()), |a| arches(a, &format!("{key}.arch")))?,
        user_class,
        ipxe_encap: file.ipxe_encap,
        filename: file.filename.get_ref().clone(),
        next_server: file
            .next_server
            .as_ref()
            .map(|n| unicast(n, &format!("{key}.next-server")))
            .transpose()?,
        http,
    })
}

fn arches(
    list: &Spanned<crate::config::file::ArchList>,
    key: &str,
) -> Result<Vec<ClientArch>, Rejection> {
    if list.get_ref().0.is_empty() {
        return Err(Rejection::new(
            Some(list.span()),
            key,
            "an empty list matches nothing; leave `arch` out to match every architecture",
        ));
    }
    let mut out = Vec::new();
    for (value, span) in &list.get_ref().0 {
        let fail = |m: String| Rejection::new(span.clone().or_else(|| Some(list.span())), key, m);
        let arch = match value {
            Scalar::Int(n) => u16::try_from(*n)
                .map(ClientArch)
                .map_err(|_| fail(format!("{n} is not an architecture number (0-65535)")))?,
            Scalar::Str(s) => match s.parse::<u16>() {
                Ok(n) => ClientArch(n),
                Err(_) => parse_arch_name(s).map_err(fail)?,
            },
        };
        if !out.contains(&arch) {
            out.push(arch);
        }
    }
    Ok(out)
}
