//! Changes between two desired states, so that a data plane one generation
//! behind gets only what changed instead of the whole state.
//!
//! [`Delta::between`] computes the changes from one [`State`] to another;
//! [`Delta::apply_to`] replays them, so that
//! `Delta::between(&a, &b).apply_to(&mut a)` leaves `a == b`. On the wire a
//! delta is a [`v1::StateDelta`], checked field by field like every other
//! message.

use std::collections::BTreeMap;

use bootwave_protocol::config::Ipv4Net;

use super::wire::net_field;
use super::{ConvertError, DhcpSpec, HostSpec, ProfileSpec, State, SubnetSpec, mac_field};
use crate::v1;

/// What changed from one state to the next.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delta {
    /// Hosts added or replaced.
    pub put_hosts: Vec<HostSpec>,
    /// Hosts removed, by MAC.
    pub delete_hosts: Vec<[u8; 6]>,
    /// Subnets added or replaced.
    pub put_subnets: Vec<SubnetSpec>,
    /// Subnets removed, by network.
    pub delete_subnets: Vec<Ipv4Net>,
    /// Profiles added or replaced.
    pub put_profiles: Vec<ProfileSpec>,
    /// Profiles removed, by name.
    pub delete_profiles: Vec<String>,
    /// New global DHCP settings, when they changed.
    pub dhcp: Option<DhcpSpec>,
}

impl Delta {
    /// The changes that turn `old` into `new`.
    pub fn between(old: &State, new: &State) -> Self {
        let (put_hosts, delete_hosts) = diff(&old.hosts, &new.hosts);
        let (put_subnets, delete_subnets) = diff(&old.subnets, &new.subnets);
        let (put_profiles, delete_profiles) = diff(&old.profiles, &new.profiles);
        Self {
            put_hosts,
            delete_hosts,
            put_subnets,
            delete_subnets,
            put_profiles,
            delete_profiles,
            dhcp: (old.dhcp != new.dhcp).then(|| new.dhcp.clone()),
        }
    }

    /// Replays the changes on `state`: deletions first, then puts.
    pub fn apply_to(self, state: &mut State) {
        for mac in &self.delete_hosts {
            state.hosts.remove(mac);
        }
        for net in &self.delete_subnets {
            state.subnets.remove(net);
        }
        for name in &self.delete_profiles {
            state.profiles.remove(name);
        }
        state
            .hosts
            .extend(self.put_hosts.into_iter().map(|h| (h.mac, h)));
        state
            .subnets
            .extend(self.put_subnets.into_iter().map(|s| (s.net, s)));
        state
            .profiles
            .extend(self.put_profiles.into_iter().map(|p| (p.name.clone(), p)));
        if let Some(dhcp) = self.dhcp {
            state.dhcp = dhcp;
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes() == 0 && self.dhcp.is_none()
    }

    /// How many hosts, subnets and profiles it puts or deletes.
    pub fn changes(&self) -> usize {
        self.put_hosts.len()
            + self.delete_hosts.len()
            + self.put_subnets.len()
            + self.delete_subnets.len()
            + self.put_profiles.len()
            + self.delete_profiles.len()
    }
}

/// Entries of `new` that are absent from or differ in `old`, and keys of
/// `old` absent from `new`.
fn diff<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> (Vec<V>, Vec<K>) {
    let put = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(_, v)| v.clone())
        .collect();
    let deleted = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (put, deleted)
}

impl From<&Delta> for v1::StateDelta {
    fn from(d: &Delta) -> Self {
        Self {
            put_hosts: d.put_hosts.iter().map(Into::into).collect(),
            delete_hosts: d
                .delete_hosts
                .iter()
                .map(bootwave_protocol::config::format_mac)
                .collect(),
            put_subnets: d.put_subnets.iter().map(Into::into).collect(),
            delete_subnets: d.delete_subnets.iter().map(ToString::to_string).collect(),
            put_profiles: d.put_profiles.iter().map(Into::into).collect(),
            delete_profiles: d.delete_profiles.clone(),
            dhcp: d.dhcp.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<v1::StateDelta> for Delta {
    type Error = ConvertError;

    fn try_from(w: v1::StateDelta) -> Result<Self, ConvertError> {
        let put_hosts = w
            .put_hosts
            .into_iter()
            .enumerate()
            .map(|(i, h)| HostSpec::try_from(h).map_err(|e| e.within(&format!("put_hosts[{i}]"))))
            .collect::<Result<_, _>>()?;
        let delete_hosts = w
            .delete_hosts
            .iter()
            .enumerate()
            .map(|(i, m)| mac_field(&format!("delete_hosts[{i}]"), m))
            .collect::<Result<_, _>>()?;
        let put_subnets = w
            .put_subnets
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                SubnetSpec::try_from(s).map_err(|e| e.within(&format!("put_subnets[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        let delete_subnets = w
            .delete_subnets
            .iter()
            .enumerate()
            .map(|(i, n)| net_field(&format!("delete_subnets[{i}]"), n))
            .collect::<Result<_, _>>()?;
        let put_profiles = w
            .put_profiles
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                ProfileSpec::try_from(p).map_err(|e| e.within(&format!("put_profiles[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        if let Some((i, _)) = w
            .delete_profiles
            .iter()
            .enumerate()
            .find(|(_, n)| n.is_empty())
        {
            return Err(ConvertError::new(
                format!("delete_profiles[{i}]"),
                "empty profile name",
            ));
        }
        Ok(Self {
            put_hosts,
            delete_hosts,
            put_subnets,
            delete_subnets,
            put_profiles,
            delete_profiles: w.delete_profiles,
            dhcp: w
                .dhcp
                .map(|d| DhcpSpec::try_from(Some(d)).map_err(|e| e.within("dhcp")))
                .transpose()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host(last: u8, ip: &str, profile: Option<&str>) -> HostSpec {
        HostSpec {
            mac: [2, 0, 0, 0, 0, last],
            name: format!("node-{last}"),
            fixed_address: Some(ip.parse().unwrap()),
            hostname: None,
            subnet: None,
            profile: profile.map(str::to_owned),
            labels: BTreeMap::new(),
        }
    }

    fn state(hosts: &[HostSpec]) -> State {
        let mut s = State::default();
        for h in hosts {
            s.hosts.insert(h.mac, h.clone());
        }
        s
    }

    #[test]
    fn replaying_the_delta_gives_the_new_state() {
        let old = state(&[
            host(1, "10.0.0.1", None),
            host(2, "10.0.0.2", None),
            host(3, "10.0.0.3", None),
        ]);
        let mut new = state(&[
            host(1, "10.0.0.1", None),
            host(2, "10.0.0.2", Some("rescue")),
            host(4, "10.0.0.4", None),
        ]);
        new.dhcp.authoritative = false;
        let delta = Delta::between(&old, &new);
        assert_eq!(delta.put_hosts.len(), 2, "changed host 2, new host 4");
        assert_eq!(delta.delete_hosts, vec![[2, 0, 0, 0, 0, 3]]);
        assert!(delta.dhcp.is_some());
        let mut replayed = old.clone();
        delta.apply_to(&mut replayed);
        assert_eq!(replayed, new);
    }

    #[test]
    fn equal_states_give_an_empty_delta() {
        let s = state(&[host(1, "10.0.0.1", None)]);
        let delta = Delta::between(&s, &s);
        assert!(delta.is_empty());
        assert_eq!(delta.changes(), 0);
    }

    #[test]
    fn the_wire_form_round_trips() {
        let old = state(&[host(1, "10.0.0.1", None), host(3, "10.0.0.3", None)]);
        let new = state(&[host(1, "10.0.0.9", None)]);
        let delta = Delta::between(&old, &new);
        let back = Delta::try_from(v1::StateDelta::from(&delta)).unwrap();
        assert_eq!(back, delta);
    }

    #[test]
    fn bad_wire_fields_are_named() {
        let w = v1::StateDelta {
            delete_hosts: vec!["02:00:00:00:00:01".into(), "nope".into()],
            ..Default::default()
        };
        let e = Delta::try_from(w).unwrap_err();
        assert_eq!(e.field, "delete_hosts[1]");
        let w = v1::StateDelta {
            delete_subnets: vec!["10.0.0.1/24".into()],
            ..Default::default()
        };
        assert_eq!(Delta::try_from(w).unwrap_err().field, "delete_subnets[0]");
        let w = v1::StateDelta {
            delete_profiles: vec![String::new()],
            ..Default::default()
        };
        assert_eq!(Delta::try_from(w).unwrap_err().field, "delete_profiles[0]");
        let w = v1::StateDelta {
            put_hosts: vec![v1::Host {
                mac: "zz".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(
            Delta::try_from(w)
                .unwrap_err()
                .field
                .starts_with("put_hosts[0].")
        );
    }
}
