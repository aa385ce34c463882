//! Which of the machine's interfaces to serve.
//!
//! With `interfaces` empty, bootwave does what ISC dhcpd does: it serves every
//! interface holding an IPv4 address inside a declared subnet. Loopback is
//! never chosen automatically (name it explicitly to serve it, e.g. in
//! tests). With `interfaces` set, exactly those are served, in that order,
//! and a name the machine does not have is an error.

use std::net::Ipv4Addr;

use super::model::{Config, Ipv4Net};

/// One interface of the machine as the driver lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInterface {
    /// Kernel name (`eth0`).
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// IPv4 addresses with their prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// An interface the data plane serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedInterface {
    /// Kernel name.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// The machine's addresses on this interface that lie in a declared
    /// subnet, each with that subnet.
    pub addrs: Vec<(Ipv4Addr, Ipv4Net)>,
}

/// Why no interface set could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterfaceError {
    /// `interfaces` names an interface the machine does not have.
    #[error("interfaces: the machine has no interface named `{name}`")]
    Unknown {
        /// The configured name.
        name: String,
    },
    /// `interfaces` is empty and no interface holds an address inside a
    /// declared subnet.
    #[error(
        "no interface has an IPv4 address inside a declared subnet ({subnets}); declare the subnet of an interface or list interfaces explicitly"
    )]
    NoneInSubnets {
        /// The declared subnets, comma separated.
        subnets: String,
    },
}

/// Chooses the interfaces to serve (see the module documentation).
pub fn select_interfaces(
    config: &Config,
    machine: &[MachineInterface],
) -> Result<Vec<ServedInterface>, InterfaceError> {
    let served = |iface: &MachineInterface| ServedInterface {
        name: iface.name.clone(),
        index: iface.index,
        addrs: iface
            .addrs
            .iter()
            .filter_map(|&(ip, _)| {
                config
                    .subnets
                    .iter()
                    .find(|s| s.net.contains(ip))
                    .map(|s| (ip, s.net))
            })
            .collect(),
    };
    if !config.interfaces.is_empty() {
        return config
            .interfaces
            .iter()
            .map(|name| {
                machine
                    .iter()
                    .find(|i| &i.name == name)
                    .map(served)
                    .ok_or_else(|| InterfaceError::Unknown { name: name.clone() })
            })
            .collect();
    }
    let chosen: Vec<ServedInterface> = machine
        .iter()
        .filter(|i| !is_loopback(i))
        .map(served)
        .filter(|s| !s.addrs.is_empty())
        .collect();
    if chosen.is_empty() {
        let subnets: Vec<String> = config.subnets.iter().map(|s| s.net.to_string()).collect();
        return Err(InterfaceError::NoneInSubnets {
            subnets: subnets.join(", "),
        });
    }
    Ok(chosen)
}

fn is_loopback(iface: &MachineInterface) -> bool {
    iface.name == "lo" || iface.addrs.iter().any(|(ip, _)| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(interfaces: &str) -> Config {
        let text = format!(
            "interfaces = [{interfaces}]\n\
             [[subnets]]\nnetwork = \"192.168.1.0/28\"\n\
             [[subnets]]\nnetwork = \"10.0.0.0/8\"\n\
             [[subnets]]\nnetwork = \"127.0.0.0/8\"\n"
        );
        super::super::parse(&text, "test.toml", Path::new("/etc")).expect("valid config")
    }

    fn iface(name: &str, index: u32, addrs: &[(&str, u8)]) -> MachineInterface {
        MachineInterface {
            name: name.to_owned(),
            index,
            addrs: addrs
                .iter()
                .map(|(ip, p)| (ip.parse().expect("ip"), *p))
                .collect(),
        }
    }

    fn machine() -> Vec<MachineInterface> {
        vec![
            iface("lo", 1, &[("127.0.0.1", 8)]),
            iface("eth0", 2, &[("203.0.113.7", 24)]),
            iface("bond0", 3, &[("198.51.100.1", 24), ("192.168.1.1", 28)]),
            iface("eth1", 4, &[]),
            iface("eth2", 5, &[("10.9.8.7", 16)]),
        ]
    }

    #[test]
    fn auto_selects_interfaces_with_an_address_in_a_subnet() {
        let chosen = select_interfaces(&config(""), &machine()).expect("some match");
        let names: Vec<(&str, u32)> = chosen.iter().map(|s| (s.name.as_str(), s.index)).collect();
        assert_eq!(names, [("bond0", 3), ("eth2", 5)]);
        let net = chosen[0].addrs[0].1;
        assert_eq!(chosen[0].addrs, [(Ipv4Addr::new(192, 168, 1, 1), net)]);
        assert_eq!(net.to_string(), "192.168.1.0/28");
        assert_eq!(chosen[1].addrs[0].1.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn auto_never_selects_loopback_but_explicit_may() {
        let only_lo = vec![
            iface("lo", 1, &[("127.0.0.1", 8)]),
            iface("lo2", 7, &[("127.0.0.2", 8)]),
        ];
        let err = select_interfaces(&config(""), &only_lo).expect_err("loopback skipped");
        assert!(matches!(err, InterfaceError::NoneInSubnets { .. }), "{err}");
        let chosen = select_interfaces(&config("\"lo\""), &only_lo).expect("explicit lo");
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].index, 1);
        assert_eq!(chosen[0].addrs[0].0, Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn explicit_names_are_served_in_order_and_unknown_names_fail() {
        let chosen =
            select_interfaces(&config("\"eth1\", \"bond0\""), &machine()).expect("both exist");
        let names: Vec<&str> = chosen.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["eth1", "bond0"]);
        assert!(chosen[0].addrs.is_empty());
        let err = select_interfaces(&config("\"eth9\""), &machine()).expect_err("unknown");
        assert_eq!(
            err,
            InterfaceError::Unknown {
                name: "eth9".to_owned()
            }
        );
    }
}
