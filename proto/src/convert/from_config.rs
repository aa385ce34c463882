//! A parsed configuration file → the desired state (for `bootwave apply`).

use bootwave_protocol::config::Config;

use super::{DhcpSpec, HostSpec, ProfileSpec, State, SubnetSpec};

impl From<&Config> for State {
    /// Subnets keep their rules as written (rules naming a profile stay in
    /// the subnet); profiles keep their script (template text and path) and
    /// have no rules of their own; hosts keep their labels and have no
    /// subnet.
    fn from(c: &Config) -> Self {
        let d = &c.dhcp;
        let dhcp = DhcpSpec {
            default_lease_time: d.default_lease_time,
            max_lease_time: d.max_lease_time,
            min_lease_time: d.min_lease_time,
            offer_hold: d.offer_hold,
            decline_quarantine: d.decline_quarantine,
            authoritative: d.authoritative,
            allow_bootp: d.allow_bootp,
            use_host_decl_names: d.use_host_decl_names,
            ping_check: d.ping_check,
            ping_timeout: d.ping_timeout,
            unknown_clients: None,
            relays: d.relays.clone(),
        };
        let subnets = c
            .subnets
            .iter()
            .map(|s| {
                let spec = SubnetSpec {
                    net: s.net,
                    ranges: s.ranges.clone(),
                    routers: s.routers.clone(),
                    broadcast: (s.broadcast != s.net.broadcast()).then_some(s.broadcast),
                    dns: s.dns_servers.clone(),
                    ntp: s.ntp_servers.clone(),
                    domain: s.domain_name.clone(),
                    time_offset: s.time_offset,
                    default_lease_time: s.default_lease_time,
                    max_lease_time: s.max_lease_time,
                    next_server: s.next_server,
                    unknown_clients: Some(s.unknown_clients),
                    dynamic_bootp: s.dynamic_bootp,
                    dynamic_bootp_lease_length: s.dynamic_bootp_lease_length,
                    boot_rules: s.boot_rules.clone(),
                };
                (s.net, spec)
            })
            .collect();
        let hosts = c
            .hosts
            .iter()
            .map(|h| {
                let spec = HostSpec {
                    mac: h.mac,
                    name: h.name.clone(),
                    fixed_address: h.fixed_address,
                    hostname: h.hostname.clone(),
                    subnet: None,
                    profile: h.profile.clone(),
                    labels: h.labels.clone(),
                };
                (h.mac, spec)
            })
            .collect();
        Self {
            dhcp,
            subnets,
            hosts,
            profiles: c
                .profiles
                .iter()
                .map(|p| {
                    let spec = ProfileSpec {
                        name: p.name.clone(),
                        rules: Vec::new(),
                        ipxe_script: p.script.as_ref().map(|s| s.template.source().to_owned()),
                        script_path: p.script.as_ref().map(|s| s.path.clone()),
                    };
                    (p.name.clone(), spec)
                })
                .collect(),
        }
    }
}
