//! Which interfaces the runtime answers on, and with which addresses.

use std::net::Ipv4Addr;

use bootwave_protocol::config::{Config, ServedInterface, select_interfaces};

use crate::sys::ifaddrs::Interface;

/// The interfaces chosen at start, looked up by ingress ifindex on every
/// datagram.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The served interfaces as the configuration selected them.
    pub interfaces: Vec<ServedInterface>,
    /// Per served interface: its index and every IPv4 address it holds,
    /// those inside a declared subnet first.
    addrs: Vec<(u32, Vec<Ipv4Addr>)>,
    /// Indices of loopback interfaces (TFTP answers there too).
    loopback: Vec<u32>,
    /// Why nothing is served, when nothing is.
    pub idle_reason: Option<String>,
}

impl Served {
    /// Selects the interfaces of `config` among `machine`. When none
    /// matches, DHCP stays idle and the reason is kept for the log.
    pub fn select(config: &Config, machine: &[Interface]) -> Self {
        let listed: Vec<_> = machine.iter().map(|i| i.machine.clone()).collect();
        let loopback = machine
            .iter()
            .filter(|i| i.loopback)
            .map(|i| i.machine.index)
            .collect();
        let (interfaces, idle_reason) = match select_interfaces(config, &listed) {
            Ok(chosen) => (chosen, None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        let addrs = interfaces
            .iter()
            .map(|served| {
                let mut all: Vec<Ipv4Addr> = served.addrs.iter().map(|(ip, _)| *ip).collect();
                let others = listed
                    .iter()
                    .filter(|m| m.index == served.index)
                    .flat_map(|m| m.addrs.iter().map(|(ip, _)| *ip));
                for ip in others {
                    if !all.contains(&ip) {
                        all.push(ip);
                    }
                }
                (served.index, all)
            })
            .collect();
        Self {
            interfaces,
            addrs,
            loopback,
            idle_reason,
        }
    }

    /// The addresses of served interface `ifindex`; `None` when that
    /// interface is not served (the datagram must be dropped).
    pub fn dhcp_addrs(&self, ifindex: u32) -> Option<&[Ipv4Addr]> {
        self.addrs
            .iter()
            .find(|(index, _)| *index == ifindex)
            .map(|(_, addrs)| addrs.as_slice())
    }

    /// The name of served interface `ifindex`.
    pub fn name_of(&self, ifindex: u32) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|i| i.index == ifindex)
            .map(|i| i.name.as_str())
    }

    /// Whether TFTP may answer a datagram that arrived on `ifindex`: a
    /// served interface or loopback.
    pub fn tftp_allowed(&self, ifindex: u32) -> bool {
        self.loopback.contains(&ifindex) || self.addrs.iter().any(|(i, _)| *i == ifindex)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bootwave_protocol::config::{MachineInterface, parse};

    use super::*;

    fn machine() -> Vec<Interface> {
        let iface = |name: &str, index, addrs: Vec<(Ipv4Addr, u8)>, loopback| Interface {
            machine: MachineInterface {
                name: name.to_owned(),
                index,
                addrs,
            },
            loopback,
        };
        vec![
            iface("lo", 1, vec![(Ipv4Addr::LOCALHOST, 8)], true),
            iface("uplink", 2, vec![(Ipv4Addr::new(192, 0, 2, 2), 24)], false),
            iface(
                "boot",
                3,
                vec![
                    (Ipv4Addr::new(172, 16, 0, 9), 24),
                    (Ipv4Addr::new(10, 0, 0, 1), 24),
                ],
                false,
            ),
        ]
    }

    fn config(extra: &str) -> Config {
        let text = format!("{extra}\n[[subnets]]\nnetwork = \"10.0.0.0/24\"\n");
        parse(&text, "test.toml", Path::new(".")).expect("valid")
    }

    #[test]
    fn only_interfaces_in_a_subnet_answer_dhcp() {
        let served = Served::select(&config(""), &machine());
        assert_eq!(served.idle_reason, None);
        assert_eq!(served.dhcp_addrs(2), None, "the uplink is never answered");
        assert_eq!(
            served.dhcp_addrs(1),
            None,
            "loopback is not chosen implicitly"
        );
        assert_eq!(
            served.dhcp_addrs(3),
            Some(&[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(172, 16, 0, 9)][..])
        );
        assert!(served.tftp_allowed(1) && served.tftp_allowed(3));
        assert!(!served.tftp_allowed(2));
    }

    #[test]
    fn no_match_leaves_dhcp_idle_with_a_reason() {
        let mut m = machine();
        m.pop();
        let served = Served::select(&config(""), &m);
        assert!(served.interfaces.is_empty());
        assert!(served.idle_reason.is_some());
        assert_eq!(served.dhcp_addrs(2), None);
        assert!(served.tftp_allowed(1));
    }
}
