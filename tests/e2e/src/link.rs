//! Links between namespaces: [`VethPair`] and [`Bridge`].

use crate::error::Result;
use crate::netns::{Netns, check_ifname};

/// A veth pair whose two ends live in two namespaces, both set up.
///
/// The ends are created directly inside their namespaces, so their names
/// never appear in (or clash with) the machine's own namespace. Dropping the
/// pair deletes it; deleting either namespace deletes it too.
#[derive(Debug)]
pub struct VethPair {
    a_ns: String,
    a_if: String,
    b_if: String,
}

impl VethPair {
    /// Creates `a_if` in `a` linked to `b_if` in `b` and sets both up.
    pub fn create(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<Self> {
        check_ifname(a_if)?;
        check_ifname(b_if)?;
        a.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ])?;
        let pair = Self {
            a_ns: a.name().to_owned(),
            a_if: a_if.to_owned(),
            b_if: b_if.to_owned(),
        };
        a.ip(&["link", "set", a_if, "up"])?;
        b.ip(&["link", "set", b_if, "up"])?;
        Ok(pair)
    }

    /// The name of the end in the first namespace.
    pub fn a_if(&self) -> &str {
        &self.a_if
    }

    /// The name of the end in the second namespace.
    pub fn b_if(&self) -> &str {
        &self.b_if
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = crate::netns::run_ip(&["-n", &self.a_ns, "link", "del", &self.a_if]);
    }
}

/// A Linux bridge inside a namespace (a switch for several clients), with
/// STP off and no forwarding delay so ports forward at once.
#[derive(Debug)]
pub struct Bridge {
    ns: String,
    name: String,
}

impl Bridge {
    /// Creates bridge `name` inside `ns` and sets it up.
    pub fn create(ns: &Netns, name: &str) -> Result<Self> {
        check_ifname(name)?;
        ns.ip(&[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ns.ip(&["link", "set", name, "up"])?;
        Ok(Self {
            ns: ns.name().to_owned(),
            name: name.to_owned(),
        })
    }

    /// The bridge's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes `port` (an interface inside the bridge's namespace) a port.
    pub fn attach(&self, port: &str) -> Result<()> {
        crate::netns::run_ip(&["-n", &self.ns, "link", "set", port, "master", &self.name])?;
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = crate::netns::run_ip(&["-n", &self.ns, "link", "del", &self.name]);
    }
}
