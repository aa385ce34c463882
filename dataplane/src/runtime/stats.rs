//! Per-shard counters: plain integers on the shard, copied into shared
//! atomics every [`PUBLISH_EVERY`], rendered as Prometheus text by whoever
//! serves the metrics endpoint.
//!
//! A shard bumps [`Counters`] (no atomics on the data path) and calls
//! [`Published::store`] when [`PUBLISH_EVERY`] has passed; the renderer reads
//! the atomics with relaxed loads. A rendered value may be up to one period
//! old, and the slots of one shard are not read as one consistent set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bootwave_protocol::config::ClientArch;
use bootwave_protocol::dhcp::{DropCounters, DropReason, Event, MessageType, Verdict};
use bootwave_protocol::tftp::{Refusal, TftpCounters};

use crate::metrics::{Exposition, MetricKind, Value};

/// How often a shard copies its counters into the shared atomics.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Message type slots: 0 is BOOTP (no option 53), 1..=8 are option 53.
const MESSAGE_NAMES: [&str; 9] = [
    "bootp", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
];
/// Client architecture slots (option 93).
const ARCHES: [(&str, Option<ClientArch>); 9] = [
    ("none", None),
    ("bios", Some(ClientArch::BIOS)),
    ("efi-ia32", Some(ClientArch::EFI_IA32)),
    ("efi-x64", Some(ClientArch::EFI_X64)),
    ("efi-x64-alt", Some(ClientArch::EFI_X64_ALT)),
    ("efi-arm64", Some(ClientArch::EFI_ARM64)),
    ("efi-x64-http", Some(ClientArch::EFI_X64_HTTP)),
    ("efi-arm64-http", Some(ClientArch::EFI_ARM64_HTTP)),
    ("other", None),
];
/// Verdict slots.
const VERDICTS: [&str; 9] = [
    "offered",
    "acked",
    "informed",
    "nacked",
    "bootreply",
    "released",
    "declined",
    "probing",
    "dropped",
];
/// Drops decided by the runtime rather than the DHCP core.
const RUNTIME_DROPS: [&str; 6] = [
    "unselected_interface",
    "draining",
    "journal_failed",
    "send_failed",
    "tftp_unselected_interface",
    "tftp_port_unavailable",
];
/// Journal commit latency bucket bounds, in microseconds.
const LATENCY_BOUNDS_US: [u64; 10] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000,
];
/// TFTP counters, in slot order.
const TFTP_NAMES: [&str; 11] = [
    "transfers_started",
    "transfers_completed",
    "transfers_failed",
    "transfers_timed_out",
    "option_refusals",
    "retransmits",
    "data_blocks_sent",
    "bytes_sent",
    "malformed_dropped",
    "clients_evicted",
    "transfers_active",
];
/// TFTP error codes 0..=8.
const TFTP_ERRORS: usize = 9;
/// TFTP read requests refused by admission, by [`Refusal`].
const TFTP_REFUSALS: usize = Refusal::ALL.len();
/// Ping-check outcomes, in [`ProbeOutcome`] order.
const PROBE_NAMES: [&str; 8] = [
    "sent",
    "answered",
    "silent",
    "unavailable",
    "overflowed",
    "skipped_returning",
    "skipped_recent",
    "replaced",
];

const MSG: usize = 0;
const ARCH: usize = MSG + MESSAGE_NAMES.len();
const VERDICT: usize = ARCH + ARCHES.len();
const CORE_DROP: usize = VERDICT + VERDICTS.len();
const RUNTIME_DROP: usize = CORE_DROP + DropReason::ALL.len();
const TFTP: usize = RUNTIME_DROP + RUNTIME_DROPS.len();
const TFTP_ERR: usize = TFTP + TFTP_NAMES.len();
const TFTP_REFUSED: usize = TFTP_ERR + TFTP_ERRORS;
const JOURNAL_COMMITS: usize = TFTP_REFUSED + TFTP_REFUSALS;
const JOURNAL_RECORDS: usize = JOURNAL_COMMITS + 1;
const JOURNAL_ERRORS: usize = JOURNAL_RECORDS + 1;
const LATENCY: usize = JOURNAL_ERRORS + 1;
const LATENCY_SUM_US: usize = LATENCY + LATENCY_BOUNDS_US.len() + 1;
const PROBES: usize = LATENCY_SUM_US + 1;
const LOG_SUPPRESSED: usize = PROBES + PROBE_NAMES.len();
const BROADCAST_FALLBACKS: usize = LOG_SUPPRESSED + 1;
const JOURNAL_FAILED: usize = BROADCAST_FALLBACKS + 1;
const JOURNAL_COMPACTIONS: usize = JOURNAL_FAILED + 1;
const JOURNAL_RECOVERIES: usize = JOURNAL_COMPACTIONS + 1;
const JOURNAL_BYTES: usize = JOURNAL_RECOVERIES + 1;
const SLOTS: usize = JOURNAL_BYTES + 1;

/// A drop decided by the runtime (the DHCP core counts its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeDrop {
    /// A DHCP datagram from an interface that is not served.
    UnselectedInterface = 0,
    /// A DHCP datagram while draining.
    Draining = 1,
    /// A reply held back because its records could not be journaled.
    JournalFailed = 2,
    /// A reply or TFTP datagram the transmit queue refused.
    SendFailed = 3,
    /// A TFTP datagram from an interface that is neither served nor
    /// loopback.
    TftpUnselectedInterface = 4,
    /// No socket could be opened for a TFTP transfer (the per-shard bound,
    /// EMFILE, EADDRINUSE): the request was refused.
    TftpPortUnavailable = 5,
}

/// A ping-check outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// An echo request went out.
    Sent = 0,
    /// Something answered: the address is in use.
    Answered = 1,
    /// Nothing answered in time.
    Silent = 2,
    /// Not sent (no prober, or the send failed): offered unprobed.
    Unavailable = 3,
    /// The parking was full: offered unprobed.
    Overflowed = 4,
    /// Not probed: the address was the client's own binding.
    SkippedReturning = 5,
    /// Not probed: the address stayed silent to a probe moments ago.
    SkippedRecent = 6,
    /// A retransmitted DISCOVER replaced the one parked for its client.
    Replaced = 7,
}

/// The counters one shard keeps, as plain integers.
#[derive(Debug, Clone)]
pub struct Counters {
    slots: [u64; SLOTS],
}

impl Default for Counters {
    fn default() -> Self {
        Self { slots: [0; SLOTS] }
    }
}

impl Counters {
    /// Counts one handled DHCP message.
    pub fn dhcp_event(&mut self, event: &Event) {
        if matches!(event.verdict, Verdict::Dropped(_)) && event.xid == 0 && event.mac == [0; 6] {
            // Did not parse far enough to have a type or an arch.
        } else {
            let msg = event.message.map_or(0, |m| m as usize);
            if msg < MESSAGE_NAMES.len() {
                self.slots[MSG + msg] += 1;
            }
            self.slots[ARCH + arch_slot(event.arch)] += 1;
        }
        let verdict = match event.verdict {
            Verdict::Offered => 0,
            Verdict::Acked => 1,
            Verdict::Informed => 2,
            Verdict::Nacked(_) => 3,
            Verdict::BootReply => 4,
            Verdict::Released => 5,
            Verdict::Declined => 6,
            Verdict::Probing => 7,
            Verdict::Dropped(_) => 8,
        };
        self.slots[VERDICT + verdict] += 1;
    }

    /// Counts one runtime drop.
    pub fn drop(&mut self, reason: RuntimeDrop) {
        self.slots[RUNTIME_DROP + reason as usize] += 1;
    }

    /// Runtime drops counted for `reason` (tests).
    #[cfg(test)]
    pub(crate) fn dropped(&self, reason: RuntimeDrop) -> u64 {
        self.slots[RUNTIME_DROP + reason as usize]
    }

    /// Counts one ping-check outcome.
    pub fn probe(&mut self, outcome: ProbeOutcome) {
        self.probes(outcome, 1);
    }

    /// Counts `n` ping-check outcomes.
    pub fn probes(&mut self, outcome: ProbeOutcome, n: u64) {
        self.slots[PROBES + outcome as usize] += n;
    }

    /// Counts one journal commit of `records` records that took `latency`.
    pub fn journal_commit(&mut self, records: u32, latency: Duration) {
        self.slots[JOURNAL_COMMITS] += 1;
        self.slots[JOURNAL_RECORDS] += u64::from(records);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.slots[LATENCY + bucket] += 1;
        self.slots[LATENCY_SUM_US] = self.slots[LATENCY_SUM_US].saturating_add(us);
    }

    /// Copies the journal's state and counters (cumulative).
    pub fn set_journal(&mut self, j: &crate::journal::JournalGauges) {
        self.slots[JOURNAL_ERRORS] = j.failures;
        self.slots[JOURNAL_FAILED] = u64::from(j.failed);
        self.slots[JOURNAL_COMPACTIONS] = j.compactions;
        self.slots[JOURNAL_RECOVERIES] = j.recoveries;
        self.slots[JOURNAL_BYTES] = j.bytes;
    }

    /// Counts one reply broadcast because no neighbour entry could be
    /// written for its client.
    pub fn broadcast_fallback(&mut self) {
        self.slots[BROADCAST_FALLBACKS] += 1;
    }

    /// Counts one per-message log line suppressed by the line budget.
    pub fn log_suppressed(&mut self) {
        self.slots[LOG_SUPPRESSED] += 1;
    }

    /// Copies the DHCP core's drop counters (cumulative).
    pub fn set_core_drops(&mut self, drops: &DropCounters) {
        for (i, (_, n)) in drops.iter().enumerate() {
            self.slots[CORE_DROP + i] = n;
        }
    }

    /// Copies the TFTP core's counters (cumulative) and its active
    /// transfers.
    pub fn set_tftp(&mut self, c: &TftpCounters, active: usize) {
        let values = [
            c.transfers_started,
            c.transfers_completed,
            c.transfers_failed,
            c.transfers_timed_out,
            c.option_refusals,
            c.retransmits,
            c.data_blocks_sent,
            c.bytes_sent,
            c.malformed_dropped,
            c.clients_evicted,
            active as u64,
        ];
        self.slots[TFTP..TFTP + values.len()].copy_from_slice(&values);
        self.slots[TFTP_ERR..TFTP_ERR + TFTP_ERRORS].copy_from_slice(&c.errors_sent);
        self.slots[TFTP_REFUSED..TFTP_REFUSED + TFTP_REFUSALS].copy_from_slice(&c.refused);
    }
}

fn arch_slot(arch: Option<ClientArch>) -> usize {
    match arch {
        None => 0,
        Some(a) => ARCHES
            .iter()
            .position(|(_, known)| *known == Some(a))
            .unwrap_or(ARCHES.len() - 1),
    }
}

/// One shard's counters as shared atomics.
#[derive(Debug)]
pub struct Published {
    slots: [AtomicU64; SLOTS],
}

impl Default for Published {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Published {
    /// Copies `counters` in.
    pub fn store(&self, counters: &Counters) {
        for (slot, &v) in self.slots.iter().zip(&counters.slots) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn get(&self, slot: usize) -> u64 {
        self.slots[slot].load(Ordering::Relaxed)
    }

    /// TFTP transfers in flight at the last publication.
    pub fn tftp_active(&self) -> u64 {
        self.get(TFTP + TFTP_NAMES.len() - 1)
    }

    /// Messages counted by verdict `index` of the render order (for tests).
    pub fn messages(&self, kind: MessageType) -> u64 {
        self.get(MSG + kind as usize)
    }
}

/// Appends the Prometheus text exposition of every shard's counters.
pub fn render(shards: &[Arc<Published>], out: &mut String) {
    let mut exp = Exposition::new(out);
    let names: Vec<String> = (0..shards.len()).map(|i| i.to_string()).collect();
    let each = || shards.iter().zip(names.iter().map(String::as_str));
    let labelled = |exp: &mut Exposition<'_>,
                    name: &str,
                    help: &str,
                    label: &str,
                    values: &[&str],
                    base: usize| {
        exp.header(name, help, MetricKind::Counter);
        for (p, shard) in each() {
            for (i, value) in values.iter().enumerate() {
                exp.sample(name, &[("shard", shard), (label, value)], p.get(base + i));
            }
        }
    };
    labelled(
        &mut exp,
        "bootwave_dhcp_messages_total",
        "DHCP messages received, by type.",
        "type",
        &MESSAGE_NAMES,
        MSG,
    );
    let arch_names: Vec<&str> = ARCHES.iter().map(|(n, _)| *n).collect();
    labelled(
        &mut exp,
        "bootwave_dhcp_client_arch_total",
        "DHCP messages received, by client architecture (option 93).",
        "arch",
        &arch_names,
        ARCH,
    );
    labelled(
        &mut exp,
        "bootwave_dhcp_verdicts_total",
        "DHCP messages by outcome (NAKs are nacked, declines declined).",
        "verdict",
        &VERDICTS,
        VERDICT,
    );
    let reasons: Vec<String> = DropReason::ALL.iter().map(|r| format!("{r:?}")).collect();
    let reasons: Vec<&str> = reasons.iter().map(String::as_str).collect();
    labelled(
        &mut exp,
        "bootwave_dhcp_dropped_total",
        "DHCP messages dropped by the core, by reason.",
        "reason",
        &reasons,
        CORE_DROP,
    );
    labelled(
        &mut exp,
        "bootwave_runtime_dropped_total",
        "Datagrams or replies dropped by the runtime, by reason.",
        "reason",
        &RUNTIME_DROPS,
        RUNTIME_DROP,
    );
    let codes: Vec<String> = (0..TFTP_ERRORS).map(|c| c.to_string()).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    labelled(
        &mut exp,
        "bootwave_tftp_errors_sent_total",
        "TFTP ERROR packets sent, by code.",
        "code",
        &codes,
        TFTP_ERR,
    );
    let refusals: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
    labelled(
        &mut exp,
        "bootwave_tftp_refused_total",
        "TFTP read requests refused by admission, by reason.",
        "reason",
        &refusals,
        TFTP_REFUSED,
    );
    labelled(
        &mut exp,
        "bootwave_dhcp_ping_checks_total",
        "Ping checks, by outcome.",
        "outcome",
        &PROBE_NAMES,
        PROBES,
    );
    for (i, name) in TFTP_NAMES.iter().enumerate() {
        let (metric, kind) = if *name == "transfers_active" {
            (format!("bootwave_tftp_{name}"), MetricKind::Gauge)
        } else {
            (format!("bootwave_tftp_{name}_total"), MetricKind::Counter)
        };
        exp.header(&metric, "TFTP server counter.", kind);
        for (p, shard) in each() {
            exp.sample(&metric, &[("shard", shard)], p.get(TFTP + i));
        }
    }
    for (name, slot, help) in [
        (
            "bootwave_journal_commits_total",
            JOURNAL_COMMITS,
            "Journal commit groups written.",
        ),
        (
            "bootwave_journal_records_total",
            JOURNAL_RECORDS,
            "Lease records journaled.",
        ),
        (
            "bootwave_journal_errors_total",
            JOURNAL_ERRORS,
            "Journal failures: writes, syncs, compactions and recovery attempts.",
        ),
        (
            "bootwave_journal_compactions_total",
            JOURNAL_COMPACTIONS,
            "Journal compactions completed (recoveries included).",
        ),
        (
            "bootwave_journal_recoveries_total",
            JOURNAL_RECOVERIES,
            "Journals written again after a failure (ACKs resumed).",
        ),
        (
            "bootwave_log_lines_suppressed_total",
            LOG_SUPPRESSED,
            "Per-message log lines over the per-shard budget (counted, not written).",
        ),
        (
            "bootwave_dhcp_broadcast_fallbacks_total",
            BROADCAST_FALLBACKS,
            "Replies broadcast because no neighbour entry could be written for the client.",
        ),
    ] {
        for (p, shard) in each() {
            exp.counter(name, help, &[("shard", shard)], p.get(slot));
        }
    }
    for (name, slot, help) in [
        (
            "bootwave_journal_failed",
            JOURNAL_FAILED,
            "1 while the journal cannot be written and ACKs that need it are not sent.",
        ),
        (
            "bootwave_journal_bytes",
            JOURNAL_BYTES,
            "Journal bytes on disk (log and snapshot).",
        ),
    ] {
        exp.header(name, help, MetricKind::Gauge);
        for (p, shard) in each() {
            exp.sample(name, &[("shard", shard)], p.get(slot));
        }
    }
    exp.counter(
        "bootwave_log_lines_dropped_total",
        "Log lines dropped because the log writer could not keep up.",
        &[],
        crate::logs::dropped_lines(),
    );
    let name = "bootwave_journal_commit_seconds";
    exp.header(
        name,
        "Journal group commit latency (write and, when due, sync).",
        MetricKind::Histogram,
    );
    for (p, shard) in each() {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += p.get(LATENCY + i);
            let le = (*bound as f64 / 1e6).to_string();
            exp.sample(
                &format!("{name}_bucket"),
                &[("shard", shard), ("le", &le)],
                cumulative,
            );
        }
        cumulative += p.get(LATENCY + LATENCY_BOUNDS_US.len());
        exp.sample(
            &format!("{name}_bucket"),
            &[("shard", shard), ("le", "+Inf")],
            cumulative,
        );
        let sum = p.get(LATENCY_SUM_US) as f64 / 1e6;
        exp.sample(
            &format!("{name}_sum"),
            &[("shard", shard)],
            Value::Float(sum),
        );
        exp.sample(&format!("{name}_count"), &[("shard", shard)], cumulative);
    }
}

/// The pool gauges of every DHCP shard, as counted by the shards about
/// once a second: addresses of each subnet's slice by state.
pub fn render_pools(mirrors: &[Arc<crate::events::LeaseMirror>], out: &mut String) {
    let mut exp = Exposition::new(out);
    let name = "bootwave_dhcp_pool_addresses";
    exp.header(
        name,
        "Dynamic addresses of each subnet's slice, by state (free, offered, bound, quarantined).",
        MetricKind::Gauge,
    );
    for mirror in mirrors {
        let shard = mirror.shard().to_string();
        for usage in mirror.pools() {
            let subnet = usage.network.to_string();
            for (state, n) in [
                ("free", usage.free()),
                ("offered", usage.offered),
                ("bound", usage.bound),
                ("quarantined", usage.quarantined),
            ] {
                exp.sample(
                    name,
                    &[("subnet", &subnet), ("shard", &shard), ("state", state)],
                    n,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_render_per_shard() {
        let mut c = Counters::default();
        let event = Event {
            message: Some(MessageType::Discover),
            xid: 7,
            mac: [2, 0, 0, 0, 0, 1],
            arch: Some(ClientArch::EFI_X64),
            verdict: Verdict::Offered,
            ..Event::default()
        };
        c.dhcp_event(&event);
        c.dhcp_event(&event);
        c.drop(RuntimeDrop::UnselectedInterface);
        c.journal_commit(3, Duration::from_micros(700));
        let shard = Arc::new(Published::default());
        shard.store(&c);
        assert_eq!(shard.messages(MessageType::Discover), 2);
        let mut text = String::new();
        render(&[shard, Arc::new(Published::default())], &mut text);
        assert!(text.contains("bootwave_dhcp_messages_total{shard=\"0\",type=\"discover\"} 2"));
        assert!(text.contains("bootwave_dhcp_messages_total{shard=\"1\",type=\"discover\"} 0"));
        assert!(text.contains("bootwave_dhcp_client_arch_total{shard=\"0\",arch=\"efi-x64\"} 2"));
        assert!(text.contains("bootwave_dhcp_verdicts_total{shard=\"0\",verdict=\"offered\"} 2"));
        assert!(text.contains(
            "bootwave_runtime_dropped_total{shard=\"0\",reason=\"unselected_interface\"} 1"
        ));
        assert!(text.contains("bootwave_journal_records_total{shard=\"0\"} 3"));
        let mut tftp = TftpCounters::default();
        tftp.refused[Refusal::Rate as usize] = 7;
        c.set_tftp(&tftp, 2);
        let shard = Arc::new(Published::default());
        shard.store(&c);
        assert_eq!(shard.tftp_active(), 2);
        let mut text = String::new();
        render(&[shard], &mut text);
        assert!(text.contains("bootwave_tftp_refused_total{shard=\"0\",reason=\"rate\"} 7"));
        assert!(
            text.contains("bootwave_tftp_refused_total{shard=\"0\",reason=\"per_client_cap\"} 0")
        );
        assert!(
            text.contains("bootwave_journal_commit_seconds_bucket{shard=\"0\",le=\"0.0005\"} 0")
        );
        assert!(
            text.contains("bootwave_journal_commit_seconds_bucket{shard=\"0\",le=\"0.001\"} 1")
        );
        assert!(text.contains("bootwave_journal_commit_seconds_count{shard=\"0\"} 1"));
        assert!(text.contains("bootwave_journal_failed{shard=\"0\"} 0"));
        c.set_journal(&crate::journal::JournalGauges {
            failed: true,
            failures: 3,
            compactions: 2,
            recoveries: 1,
            bytes: 4096,
        });
        let shard = Arc::new(Published::default());
        shard.store(&c);
        let mut text = String::new();
        render(&[shard], &mut text);
        for line in [
            "# TYPE bootwave_journal_failed gauge",
            "bootwave_journal_failed{shard=\"0\"} 1",
            "bootwave_journal_errors_total{shard=\"0\"} 3",
            "bootwave_journal_compactions_total{shard=\"0\"} 2",
            "bootwave_journal_recoveries_total{shard=\"0\"} 1",
            "bootwave_journal_bytes{shard=\"0\"} 4096",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
