//! What the data planes last saw from each MAC, in a table of bounded size.

use std::collections::HashMap;

use bootwave_proto::convert::parse_mac;
use bootwave_proto::v1::{self, boot_event, http_event, tftp_event};

use crate::wave::observe::human_bytes;

/// MACs kept by default.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// The latest boot events of each MAC. When full, the eighth of the MACs
/// seen longest ago is dropped to make room.
#[derive(Debug)]
pub struct LastSeenTable {
    capacity: usize,
    entries: HashMap<[u8; 6], Entry>,
    /// Update counter: orders entries by recency.
    clock: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    updated: u64,
    seen: v1::LastSeen,
}

impl LastSeenTable {
    /// A table of at most `capacity` MACs (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            clock: 0,
        }
    }

    /// What was last seen from `mac`.
    pub fn get(&self, mac: &[u8; 6]) -> Option<&v1::LastSeen> {
        self.entries.get(mac).map(|e| &e.seen)
    }

    /// MACs held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no MAC is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `event`; events without a MAC are ignored.
    pub fn record(&mut self, event: &v1::BootEvent) {
        let Some(mac) = parse_mac(&event.mac) else {
            return;
        };
        let Some(kind) = &event.kind else {
            return;
        };
        if !self.entries.contains_key(&mac) && self.entries.len() >= self.capacity {
            self.evict();
        }
        self.clock += 1;
        let entry = self.entries.entry(mac).or_insert_with(|| Entry {
            updated: 0,
            seen: v1::LastSeen::default(),
        });
        entry.updated = self.clock;
        let seen = &mut entry.seen;
        seen.time_unix_ms = event.time_unix_us / 1000;
        seen.dataplane.clone_from(&event.dataplane);
        match kind {
            boot_event::Kind::Dhcp(d) => {
                seen.arch = d.arch;
                seen.user_class.clone_from(&d.user_class);
                seen.vendor_class.clone_from(&d.vendor_class);
                if !d.address.is_empty() {
                    seen.address.clone_from(&d.address);
                }
                seen.last_dhcp = match d.reply.as_str() {
                    "" => d.message.clone(),
                    reply => format!("{} -> {reply}", d.message),
                };
                if d.reply == "NAK" {
                    seen.last_error = format!("NAK to {} for {}", d.message, d.address);
                } else if !d.drop_reason.is_empty() {
                    seen.last_error = format!("{} dropped: {}", d.message, d.drop_reason);
                }
            }
            boot_event::Kind::Tftp(t) => {
                seen.last_file.clone_from(&t.file);
                seen.last_file_outcome = match t.kind() {
                    tftp_event::Kind::Started => format!("started ({})", human_bytes(t.size)),
                    tftp_event::Kind::Completed => format!(
                        "completed ({} in {} ms, {} retransmits)",
                        human_bytes(t.bytes),
                        t.duration_ms,
                        t.retransmits
                    ),
                    tftp_event::Kind::Failed => format!("failed: {}", t.error),
                    tftp_event::Kind::Unspecified => String::new(),
                };
                if t.kind() == tftp_event::Kind::Failed {
                    seen.last_error = format!("{}: {}", t.file, t.error);
                }
            }
            boot_event::Kind::Http(h) => {
                seen.last_file = format!("http: {}", h.file);
                seen.last_file_outcome = match h.kind() {
                    http_event::Kind::Started => format!("started ({})", human_bytes(h.size)),
                    http_event::Kind::Completed => format!(
                        "completed ({} in {} ms)",
                        human_bytes(h.bytes),
                        h.duration_ms
                    ),
                    http_event::Kind::Failed => format!("failed: {}", h.error),
                    http_event::Kind::Unspecified => String::new(),
                };
                if h.kind() == http_event::Kind::Failed {
                    seen.last_error = format!("http {}: {}", h.file, h.error);
                }
            }
        }
    }

    /// Drops the eighth of the entries updated longest ago (at least one).
    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.entries.values().map(|e| e.updated).collect();
        let drop = (ages.len() / 8).max(1);
        let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        self.entries.retain(|_, e| e.updated > cutoff);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(mac: &str, kind: boot_event::Kind) -> v1::BootEvent {
        v1::BootEvent {
            time_unix_us: 5_000_000,
            mac: mac.into(),
            dataplane: "unix:/dp".into(),
            kind: Some(kind),
            ..Default::default()
        }
    }

    fn nak(mac: &str) -> v1::BootEvent {
        event(
            mac,
            boot_event::Kind::Dhcp(v1::DhcpEvent {
                message: "REQUEST".into(),
                reply: "NAK".into(),
                arch: Some(7),
                user_class: "iPXE".into(),
                address: "10.0.0.9".into(),
                ..Default::default()
            }),
        )
    }

    #[test]
    fn dhcp_then_tftp_fill_one_entry() {
        let mut t = LastSeenTable::new(4);
        t.record(&nak("02:00:00:00:00:01"));
        t.record(&event(
            "02:00:00:00:00:01",
            boot_event::Kind::Tftp(v1::TftpEvent {
                kind: tftp_event::Kind::Completed.into(),
                file: "refind.pxe".into(),
                bytes: 812,
                duration_ms: 3,
                ..Default::default()
            }),
        ));
        let seen = t.get(&[2, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(seen.time_unix_ms, 5_000);
        assert_eq!((seen.arch, seen.user_class.as_str()), (Some(7), "iPXE"));
        assert_eq!(seen.last_dhcp, "REQUEST -> NAK");
        assert_eq!(seen.last_error, "NAK to REQUEST for 10.0.0.9");
        assert_eq!(seen.address, "10.0.0.9");
        assert_eq!(seen.last_file, "refind.pxe");
        assert_eq!(
            seen.last_file_outcome,
            "completed (812 B in 3 ms, 0 retransmits)"
        );
        assert_eq!(seen.dataplane, "unix:/dp");
    }

    #[test]
    fn a_full_table_drops_the_least_recently_seen() {
        let mut t = LastSeenTable::new(8);
        for i in 0..8 {
            t.record(&nak(&format!("02:00:00:00:00:{i:02x}")));
        }
        t.record(&nak("02:00:00:00:00:00"));
        t.record(&nak("02:00:00:00:00:ff"));
        assert_eq!(t.len(), 8);
        assert!(t.get(&[2, 0, 0, 0, 0, 1]).is_none(), "seen longest ago");
        assert!(t.get(&[2, 0, 0, 0, 0, 0]).is_some(), "refreshed");
        assert!(t.get(&[2, 0, 0, 0, 0, 0xff]).is_some());
        t.record(&event("", boot_event::Kind::Dhcp(v1::DhcpEvent::default())));
        assert_eq!(t.len(), 8, "no MAC, nothing recorded");
    }
}
