//! From the file's shape to the validated model: every check lives here.
//!
//! Defaults follow ISC dhcpd where it has one (lease times, authoritative
//! aside) and are listed in `assets/README.md`.

mod hosts;
mod profiles;
mod subnets;

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::error::Rejection;
use super::file::{FileConfig, FileDhcp, FileHttp, FileIpv6, FileJournal, FileTftp, Scalar};
use super::model::{
    Config, DhcpSettings, FsyncPolicy, HttpSettings, Ipv4Net, Ipv6Settings, JournalSettings,
    RouterAdvertisements, TftpAdmission, TftpSettings, UnknownClients,
};
use super::values::{format_duration, parse_duration, parse_ipv4, parse_net};

/// Default lease time (ISC dhcpd: 12 hours).
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(43_200);
/// Default maximum lease time (ISC dhcpd: 24 hours).
pub const DEFAULT_MAX_LEASE_TIME: Duration = Duration::from_secs(86_400);
/// Default time an offered address stays reserved.
pub const DEFAULT_OFFER_HOLD: Duration = Duration::from_secs(30);
/// Default time a declined address stays out of use.
pub const DEFAULT_DECLINE_QUARANTINE: Duration = Duration::from_secs(3_600);
/// Default ping-check wait: a host that owns an address answers an echo on
/// the local segment within a millisecond or two, and every offer of a
/// dynamic address waits this long, so shorter than ISC dhcpd's 1 s.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_millis(200);
/// Default TFTP root.
pub const DEFAULT_TFTP_ROOT: &str = "/srv/tftp";
/// Default journal directory.
pub const DEFAULT_JOURNAL_DIR: &str = "/var/lib/bootwave";
/// Default interval of `fsync = "batch"`.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(2);

/// Smallest block size RFC 2348 allows.
const MIN_BLKSIZE: u16 = 8;
/// Largest block size RFC 2348 allows.
const MAX_BLKSIZE: u16 = 65_464;
/// IPv4 + UDP + TFTP DATA header bytes subtracted from the MTU.
const TFTP_OVERHEAD: u16 = 20 + 8 + 4;

impl TryFrom<FileConfig> for Config {
    type Error = Rejection;

    fn try_from(file: FileConfig) -> Result<Self, Rejection> {
        let interfaces = interfaces(&file.interfaces)?;
        let dhcp = dhcp(&file.dhcp)?;
        let default_unknown =
            unknown_clients(file.dhcp.unknown_clients.as_ref(), "dhcp.unknown-clients")?
                .unwrap_or(UnknownClients::Allow);
        let subnets = subnets::convert(&file.subnets, &file.dhcp, &dhcp, default_unknown)?;
        let profiles = profiles::convert(&file.profiles)?;
        let hosts = hosts::convert(&file.hosts, &subnets, &profiles)?;
        Ok(Self {
            interfaces,
            dhcp,
            tftp: tftp(&file.tftp)?,
            http: file
                .http
                .as_ref()
                .map_or_else(|| Ok(HttpSettings::default()), http)?,
            journal: journal(&file.journal)?,
            ipv6: ipv6(&file.ipv6)?,
            subnets,
            hosts,
            profiles,
        })
    }
}

fn interfaces(names: &[Spanned<String>]) -> Result<Vec<String>, Rejection> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let key = format!("interfaces[{i}]");
        let text = name.get_ref();
        if text.is_empty() || text.len() > 15 || text.contains(['/', ' ', '\0']) {
            return Err(Rejection::new(
                Some(name.span()),
                key,
                format!("`{text}` is not an interface name (1-15 characters, no '/' or spaces)"),
            ));
        }
        if out.contains(text) {
            return Err(Rejection::new(
                Some(name.span()),
                key,
                format!("`{text}` is listed twice"),
            ));
        }
        out.push(text.clone());
    }
    Ok(out)
}

fn dhcp(file: &FileDhcp) -> Result<DhcpSettings, Rejection> {
    let default = duration(
        file.default_lease_time.as_ref(),
        "dhcp.default-lease-time",
        DEFAULT_LEASE_TIME,
    )?;
    let max = duration(
        file.max_lease_time.as_ref(),
        "dhcp.max-lease-time",
        DEFAULT_MAX_LEASE_TIME,
    )?;
    let min = duration(
        file.min_lease_time.as_ref(),
        "dhcp.min-lease-time",
        Duration::ZERO,
    )?;
    ordered(
        &min,
        "dhcp.min-lease-time",
        &default,
        "dhcp.default-lease-time",
    )?;
    ordered(
        &default,
        "dhcp.default-lease-time",
        &max,
        "dhcp.max-lease-time",
    )?;
    let offer_hold = duration(
        file.offer_hold.as_ref(),
        "dhcp.offer-hold",
        DEFAULT_OFFER_HOLD,
    )?;
    nonzero(&offer_hold, "dhcp.offer-hold")?;
    let ping_timeout = duration(
        file.ping_timeout.as_ref(),
        "dhcp.ping-timeout",
        DEFAULT_PING_TIMEOUT,
    )?;
    nonzero(&ping_timeout, "dhcp.ping-timeout")?;
    Ok(DhcpSettings {
        port: file.port.as_ref().map_or(67, |p| *p.get_ref()),
        default_lease_time: default.value,
        max_lease_time: max.value,
        min_lease_time: min.value,
        offer_hold: offer_hold.value,
        decline_quarantine: duration(
            file.decline_quarantine.as_ref(),
            "dhcp.decline-quarantine",
            DEFAULT_DECLINE_QUARANTINE,
        )?
        .value,
        authoritative: file.authoritative.unwrap_or(true),
        allow_bootp: file.allow_bootp.unwrap_or(true),
        use_host_decl_names: file.use_host_decl_names.unwrap_or(false),
        ping_check: file.ping_check.unwrap_or(false),
        ping_timeout: ping_timeout.value,
        relays: relays(&file.relays)?,
    })
}

/// `dhcp.relays`: networks (`10.0.0.0/24`) or single addresses.
fn relays(list: &[Spanned<String>]) -> Result<Vec<Ipv4Net>, Rejection> {
    let mut out: Vec<Ipv4Net> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let key = format!("dhcp.relays[{i}]");
        let value = text.get_ref();
        let net = if value.contains('/') {
            parse_net(value)
        } else {
            parse_net(&format!("{value}/32"))
        }
        .map_err(|m| Rejection::new(Some(text.span()), key.clone(), m))?;
        if out.contains(&net) {
            return Err(Rejection::new(
                Some(text.span()),
                key,
                format!("{net} is listed twice"),
            ));
        }
        out.push(net);
    }
    Ok(out)
}

fn tftp(file: &FileTftp) -> Result<TftpSettings, Rejection> {
    let max_blksize = int(file.max_blksize.as_ref(), 1468);
    if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&max_blksize.value) {
        return Err(max_blksize.reject(
            "tftp.max-blksize",
            format!(
                "{} is outside {MIN_BLKSIZE}-{MAX_BLKSIZE} (RFC 2348)",
                max_blksize.value
            ),
        ));
    }
    let mtu = int(file.mtu.as_ref(), 1500);
    if mtu.value < MIN_BLKSIZE + TFTP_OVERHEAD {
        return Err(mtu.reject(
            "tftp.mtu",
            format!(
                "{} leaves no room for a {MIN_BLKSIZE}-byte block (at least {})",
                mtu.value,
                MIN_BLKSIZE + TFTP_OVERHEAD
            ),
        ));
    }
    let max_windowsize = int(file.max_windowsize.as_ref(), 64);
    if max_windowsize.value == 0 {
        return Err(max_windowsize.reject("tftp.max-windowsize", "must be at least 1"));
    }
    let min_timeout = duration(
        file.min_timeout.as_ref(),
        "tftp.min-timeout",
        Duration::from_millis(200),
    )?;
    nonzero(&min_timeout, "tftp.min-timeout")?;
    let max_timeout = duration(
        file.max_timeout.as_ref(),
        "tftp.max-timeout",
        Duration::from_secs(3),
    )?;
    ordered(
        &min_timeout,
        "tftp.min-timeout",
        &max_timeout,
        "tftp.max-timeout",
    )?;
    let max_retries = int(file.max_retries.as_ref(), 10);
    if max_retries.value == 0 {
        return Err(max_retries.reject("tftp.max-retries", "must be at least 1"));
    }
    let max_transfers = int(file.max_transfers.as_ref(), 100_000);
    if max_transfers.value == 0 {
        return Err(max_transfers.reject("tftp.max-transfers", "must be at least 1"));
    }
    let defaults = TftpAdmission::DEFAULT;
    let mut admission = defaults;
    for (value, key, default, into) in [
        (
            &file.max_transfers_per_client,
            "tftp.max-transfers-per-client",
            defaults.max_transfers_per_client,
            &mut admission.max_transfers_per_client,
        ),
        (
            &file.new_transfers_per_second,
            "tftp.new-transfers-per-second",
            defaults.new_transfers_per_second,
            &mut admission.new_transfers_per_second,
        ),
        (
            &file.new_transfers_burst,
            "tftp.new-transfers-burst",
            defaults.new_transfers_burst,
            &mut admission.new_transfers_burst,
        ),
    ] {
        let field = int(value.as_ref(), default);
        if field.value == 0 {
            return Err(field.reject(key, "must be at least 1"));
        }
        *into = field.value;
    }
    Ok(TftpSettings {
        port: int(file.port.as_ref(), 69).value,
        root: path(file.root.as_ref(), "tftp.root", DEFAULT_TFTP_ROOT)?,
        max_blksize: max_blksize.value,
        mtu: mtu.value,
        max_windowsize: max_windowsize.value,
        min_timeout: min_timeout.value,
        max_timeout: max_timeout.value,
        max_retries: max_retries.value,
        max_transfers: max_transfers.value,
        admission,
    })
}

/// Smallest `http.max-request-size`: a request line with a path of the
/// longest accepted length and a few headers.
const MIN_HTTP_REQUEST_SIZE: u32 = 1024;
/// Largest `http.max-request-size`.
const MAX_HTTP_REQUEST_SIZE: u32 = 1 << 20;

fn http(file: &FileHttp) -> Result<HttpSettings, Rejection> {
    let defaults = HttpSettings::default();
    let port = int(file.port.as_ref(), defaults.port);
    if port.value == 0 {
        return Err(port.reject("http.port", "must be a port number (1-65535)"));
    }
    let per_client = int(
        file.max_connections_per_client.as_ref(),
        defaults.max_connections_per_client,
    );
    if per_client.value == 0 {
        return Err(per_client.reject("http.max-connections-per-client", "must be at least 1"));
    }
    let total = int(file.max_connections.as_ref(), defaults.max_connections);
    if total.value == 0 {
        return Err(total.reject("http.max-connections", "must be at least 1"));
    }
    if per_client.value > total.value {
        return Err(per_client.reject(
            "http.max-connections-per-client",
            format!(
                "{} is more than http.max-connections ({})",
                per_client.value, total.value
            ),
        ));
    }
    let header_timeout = duration(
        file.header_timeout.as_ref(),
        "http.header-timeout",
        defaults.header_timeout,
    )?;
    nonzero(&header_timeout, "http.header-timeout")?;
    let idle_timeout = duration(
        file.idle_timeout.as_ref(),
        "http.idle-timeout",
        defaults.idle_timeout,
    )?;
    nonzero(&idle_timeout, "http.idle-timeout")?;
    let size = int(file.max_request_size.as_ref(), defaults.max_request_size);
    if !(MIN_HTTP_REQUEST_SIZE..=MAX_HTTP_REQUEST_SIZE).contains(&size.value) {
        return Err(size.reject(
            "http.max-request-size",
            format!(
                "{} is outside {MIN_HTTP_REQUEST_SIZE}-{MAX_HTTP_REQUEST_SIZE} bytes",
                size.value
            ),
        ));
    }
    Ok(HttpSettings {
        enabled: file.enabled.unwrap_or(true),
        port: port.value,
        max_connections_per_client: per_client.value,
        max_connections: total.value,
        header_timeout: header_timeout.value,
        idle_timeout: idle_timeout.value,
        max_request_size: size.value,
    })
}

fn journal(file: &FileJournal) -> Result<JournalSettings, Rejection> {
    let interval = duration(
        file.fsync_interval.as_ref(),
        "journal.fsync-interval",
        DEFAULT_FSYNC_INTERVAL,
    )?;
    let fsync = match file
        .fsync
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("batch", _)) => {
            nonzero(&interval, "journal.fsync-interval")?;
            FsyncPolicy::Batch(interval.value)
        }
        Some((policy @ ("always" | "never"), _)) => {
            if interval.span.is_some() {
                return Err(interval.reject(
                    "journal.fsync-interval",
                    format!("only applies to fsync = \"batch\", not \"{policy}\""),
                ));
            }
            if policy == "always" {
                FsyncPolicy::Always
            } else {
                FsyncPolicy::Never
            }
        }
        Some((other, span)) => {
            return Err(Rejection::new(
                Some(span),
                "journal.fsync",
                format!("`{other}` is not a policy (use \"always\", \"batch\" or \"never\")"),
            ));
        }
    };
    Ok(JournalSettings {
        dir: path(file.dir.as_ref(), "journal.dir", DEFAULT_JOURNAL_DIR)?,
        fsync,
    })
}

fn ipv6(file: &FileIpv6) -> Result<Ipv6Settings, Rejection> {
    let router_advertisements = match file.router_advertisements.as_ref() {
        None => RouterAdvertisements::default(),
        Some(value) => match value.get_ref().as_str() {
            "off" => RouterAdvertisements::Off,
            "minimal" => RouterAdvertisements::Minimal,
            other => {
                return Err(Rejection::new(
                    Some(value.span()),
                    "ipv6.router-advertisements",
                    format!("`{other}` is not a mode (use \"off\" or \"minimal\")"),
                ));
            }
        },
    };
    Ok(Ipv6Settings {
        router_advertisements,
    })
}

/// A value together with the span it came from (`None`: defaulted).
#[derive(Debug, Clone)]
pub(crate) struct Field<T> {
    pub(crate) value: T,
    pub(crate) span: Option<Range<usize>>,
}

impl<T> Field<T> {
    pub(crate) fn reject(&self, key: &str, message: impl Into<String>) -> Rejection {
        Rejection::new(self.span.clone(), key, message)
    }
}

/// An integer setting or its default.
fn int<T: Copy>(value: Option<&Spanned<T>>, default: T) -> Field<T> {
    value.map_or(
        Field {
            value: default,
            span: None,
        },
        |v| Field {
            value: *v.get_ref(),
            span: Some(v.span()),
        },
    )
}

/// A duration setting or its default.
pub(crate) fn duration(
    value: Option<&Spanned<Scalar>>,
    key: &str,
    default: Duration,
) -> Result<Field<Duration>, Rejection> {
    let Some(value) = value else {
        return Ok(Field {
            value: default,
            span: None,
        });
    };
    let span = Some(value.span());
    let parsed = match value.get_ref() {
        Scalar::Int(secs) => u64::try_from(*secs)
            .map(Duration::from_secs)
            .map_err(|_| format!("{secs} is negative")),
        Scalar::Str(text) => parse_duration(text),
    };
    parsed
        .map(|value| Field {
            value,
            span: span.clone(),
        })
        .map_err(|message| Rejection::new(span, key, message))
}

/// Requires `low ≤ high`, blaming whichever of the two was written (the
/// higher one when both were).
pub(crate) fn ordered(
    low: &Field<Duration>,
    low_key: &str,
    high: &Field<Duration>,
    high_key: &str,
) -> Result<(), Rejection> {
    if low.value <= high.value {
        return Ok(());
    }
    let (lo, hi) = (format_duration(low.value), format_duration(high.value));
    let default_note = |f: &Field<Duration>| {
        if f.span.is_none() {
            " (the default)"
        } else {
            ""
        }
    };
    if high.span.is_some() || low.span.is_none() {
        Err(high.reject(
            high_key,
            format!("{hi} is less than {low_key} {lo}{}", default_note(low)),
        ))
    } else {
        Err(low.reject(
            low_key,
            format!("{lo} exceeds {high_key} {hi}{}", default_note(high)),
        ))
    }
}

fn nonzero(value: &Field<Duration>, key: &str) -> Result<(), Rejection> {
    if value.value.is_zero() {
        return Err(value.reject(key, "must be greater than zero"));
    }
    Ok(())
}

fn path(value: Option<&Spanned<String>>, key: &str, default: &str) -> Result<PathBuf, Rejection> {
    let Some(value) = value else {
        return Ok(PathBuf::from(default));
    };
    if value.get_ref().is_empty() || value.get_ref().contains('\0') {
        return Err(Rejection::new(
            Some(value.span()),
            key,
            "is not a usable path",
        ));
    }
    Ok(PathBuf::from(value.get_ref()))
}

/// `"allow"` or `"deny"`.
pub(crate) fn unknown_clients(
    value: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<UnknownClients>, Rejection> {
    let Some(value) = value else { return Ok(None) };
    match value.get_ref().as_str() {
        "allow" => Ok(Some(UnknownClients::Allow)),
        "deny" => Ok(Some(UnknownClients::Deny)),
        other => Err(Rejection::new(
            Some(value.span()),
            key,
            format!("`{other}` is not a policy (use \"allow\" or \"deny\")"),
        )),
    }
}

/// An address that a client is told to contact (router, server): not
/// unspecified, not a broadcast, not multicast.
pub(crate) fn unicast(value: &Spanned<String>, key: &str) -> Result<Ipv4Addr, Rejection> {
    let ip = parse_ipv4(value.get_ref()).map_err(|m| Rejection::new(Some(value.span()), key, m))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(Rejection::new(
            Some(value.span()),
            key,
            format!("{ip} is not a unicast address"),
        ));
    }
    Ok(ip)
}
