//! `bootwave apply -f FILE`: the difference between a file and the agent's
//! state, entry by entry.

use std::collections::BTreeMap;

use bootwave_proto::convert::State;
use bootwave_protocol::config::format_mac;

/// One line of a difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DiffLine {
    /// `+` added, `-` removed, `~` changed.
    pub(super) sign: char,
    /// `host 02:00:…`, `subnet 10.0.0.0/24`, `profile rescue`, `dhcp`.
    pub(super) what: String,
}

/// What changes when `current` becomes `next`.
pub(super) fn diff(current: &State, next: &State) -> Vec<DiffLine> {
    let mut out = Vec::new();
    if current.dhcp != next.dhcp {
        out.push(DiffLine {
            sign: '~',
            what: "dhcp settings".into(),
        });
    }
    entries(&mut out, "subnet", &current.subnets, &next.subnets, |k| {
        k.to_string()
    });
    entries(
        &mut out,
        "profile",
        &current.profiles,
        &next.profiles,
        Clone::clone,
    );
    entries(&mut out, "host", &current.hosts, &next.hosts, format_mac);
    out
}

fn entries<K: Ord, V: PartialEq>(
    out: &mut Vec<DiffLine>,
    kind: &str,
    current: &BTreeMap<K, V>,
    next: &BTreeMap<K, V>,
    name: impl Fn(&K) -> String,
) {
    for (k, v) in current {
        match next.get(k) {
            None => out.push(DiffLine {
                sign: '-',
                what: format!("{kind} {}", name(k)),
            }),
            Some(n) if n != v => out.push(DiffLine {
                sign: '~',
                what: format!("{kind} {}", name(k)),
            }),
            Some(_) => {}
        }
    }
    for k in next.keys().filter(|k| !current.contains_key(k)) {
        out.push(DiffLine {
            sign: '+',
            what: format!("{kind} {}", name(k)),
        });
    }
}
