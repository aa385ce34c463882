//! `ListLeases`: the shards' lease mirrors, filtered and in wire form.

use std::net::Ipv4Addr;
use std::sync::Arc;

use bootwave_proto::v1::{Lease as WireLease, ListLeasesRequest};
use bootwave_protocol::config::{Ipv4Net, format_mac};
use bootwave_protocol::dhcp::{Lease, LeaseState, UnixTime};
use tonic::Status;

use crate::events::LeaseMirror;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Filter {
    mac: Option<[u8; 6]>,
    subnet: Option<Ipv4Net>,
}

impl Filter {
    /// The filter of `request`; `INVALID_ARGUMENT` names a bad field.
    pub(super) fn parse(request: &ListLeasesRequest) -> Result<Self, Status> {
        let mac = match request.mac.trim() {
            "" => None,
            text => Some(bootwave_proto::convert::parse_mac(text).ok_or_else(|| {
                Status::invalid_argument(format!("mac: `{text}` is not a MAC address"))
            })?),
        };
        let subnet = match request.subnet.trim() {
            "" => None,
            text => Some(parse_cidr(text).ok_or_else(|| {
                Status::invalid_argument(format!("subnet: `{text}` is not a network (a.b.c.d/n)"))
            })?),
        };
        Ok(Self { mac, subnet })
    }

    fn matches(&self, lease: &Lease) -> bool {
        self.mac.is_none_or(|mac| mac == lease.mac)
            && self.subnet.is_none_or(|net| net.contains(lease.addr))
    }
}

/// `a.b.c.d/n`, host bits ignored.
fn parse_cidr(text: &str) -> Option<Ipv4Net> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|&p| p <= 32)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Net::new(Ipv4Addr::from(u32::from(addr) & mask), prefix)
}

/// Every lease of `mirrors` that `filter` lets through at `now`, ordered
/// by address.
pub(super) fn list(mirrors: &[Arc<LeaseMirror>], filter: Filter, now: UnixTime) -> Vec<WireLease> {
    let mut out: Vec<WireLease> = mirrors
        .iter()
        .flat_map(|mirror| {
            let shard = mirror.shard();
            mirror
                .leases(now)
                .into_iter()
                .filter(|l| filter.matches(l))
                .map(move |l| to_proto(&l, shard))
        })
        .collect();
    out.sort_by_key(|l| l.address.parse::<Ipv4Addr>().ok());
    out
}

fn to_proto(lease: &Lease, shard: u32) -> WireLease {
    let expires_unix_s = if lease.until == UnixTime::NEVER {
        0
    } else {
        i64::try_from(lease.until.as_millis() / 1000).unwrap_or(i64::MAX)
    };
    WireLease {
        mac: format_mac(&lease.mac),
        address: lease.addr.to_string(),
        state: state_name(lease.state).to_owned(),
        expires_unix_s,
        shard,
        dataplane: String::new(),
    }
}

/// The wire name of a state: `offered`, `bound`, `declined`, `released`,
/// and also `expired` (a binding that ran out) and `abandoned` (answered a
/// ping check).
fn state_name(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Declined => "declined",
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        LeaseState::Abandoned => "abandoned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_with_host_bits_ignored() {
        let net = parse_cidr("10.0.1.7/16").map(|n| n.to_string());
        assert_eq!(net.as_deref(), Some("10.0.0.0/16"));
        assert_eq!(parse_cidr("0.0.0.0/0").map(|n| n.prefix()), Some(0));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0/8"] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
