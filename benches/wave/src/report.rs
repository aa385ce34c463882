//! What a wave did: per-stage times, failures by cause, the per-machine
//! timelines (JSON lines) and the last line scripts read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::node::{Node, Stage};

/// Counters of the driver itself.
#[derive(Debug, Default)]
pub struct DriverStats {
    pub sent: u64,
    pub received: u64,
    pub send_errors: u64,
    pub stray: u64,
    /// Datagrams dropped on purpose (`--loss`).
    pub lost: u64,
}

#[derive(Debug)]
pub struct Summary {
    pub nodes: usize,
    pub done: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Per stage (and "total"): durations in milliseconds, sorted.
    stages: Vec<(&'static str, Vec<f64>)>,
    causes: BTreeMap<String, usize>,
    retransmits: u64,
    bytes: u64,
    sent: u64,
    received: u64,
    send_errors: u64,
    stray: u64,
    lost: u64,
    script_retries: u64,
}

/// A failure's cause without its numbers, so that like failures group.
fn cause_class(cause: &str) -> String {
    let mut out = String::with_capacity(cause.len());
    let mut digits = false;
    for c in cause.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out
}

/// Stage `i` of a node's timeline lasts until the next mark (or the end).
fn stage_durations(n: &Node) -> Vec<(Stage, Duration)> {
    let mut out = Vec::new();
    for (k, &(stage, at)) in n.marks.iter().enumerate() {
        let end = match n.marks.get(k + 1) {
            Some(&(_, next)) => next,
            None if n.is_done() => n.finished.unwrap_or(at),
            None => continue,
        };
        out.push((stage, end.saturating_sub(at)));
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Summary {
    pub fn new(nodes: &[Node], elapsed: Duration, stats: &DriverStats) -> Self {
        let mut stages: Vec<(&'static str, Vec<f64>)> =
            Stage::ALL.iter().map(|s| (s.name(), Vec::new())).collect();
        let mut total = Vec::new();
        let mut causes = BTreeMap::new();
        for n in nodes {
            for (stage, d) in stage_durations(n) {
                if let Some(slot) = stages.iter_mut().find(|s| s.0 == stage.name()) {
                    slot.1.push(d.as_secs_f64() * 1e3);
                }
            }
            if n.is_done() {
                total.push(n.finished.unwrap_or_default().as_secs_f64() * 1e3);
            }
            if let Some(c) = &n.cause {
                *causes.entry(cause_class(c)).or_insert(0) += 1;
            }
        }
        stages.push(("total", total));
        for s in &mut stages {
            s.1.sort_by(f64::total_cmp);
        }
        let done = nodes.iter().filter(|n| n.is_done()).count();
        Self {
            nodes: nodes.len(),
            done,
            failed: nodes.len() - done,
            elapsed,
            stages,
            causes,
            retransmits: nodes.iter().map(|n| u64::from(n.retransmits)).sum(),
            bytes: nodes.iter().map(|n| n.bytes).sum(),
            sent: stats.sent,
            received: stats.received,
            send_errors: stats.send_errors,
            stray: stats.stray,
            lost: stats.lost,
            script_retries: nodes.iter().map(|n| u64::from(n.script_retries)).sum(),
        }
    }

    pub fn table(&self, reflector: bool) -> String {
        let mut t = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            t,
            "{} wave of {} machines: {} done, {} failed in {:.2} s ({:.1} machines/s, {:.1} MB/s of files)",
            if reflector {
                "reflector (the simulator's own ceiling)"
            } else {
                "server"
            },
            self.nodes,
            self.done,
            self.failed,
            secs,
            self.done as f64 / secs,
            self.bytes as f64 / secs / 1e6,
        );
        let _ = writeln!(
            t,
            "{:<14} {:>8} {:>10} {:>10} {:>10}",
            "stage (ms)", "count", "p50", "p99", "max"
        );
        for (name, v) in &self.stages {
            let _ = writeln!(
                t,
                "{:<14} {:>8} {:>10.1} {:>10.1} {:>10.1}",
                name,
                v.len(),
                pct(v, 0.5),
                pct(v, 0.99),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(
            t,
            "retransmits {}  datagrams sent {} received {}  send errors {}  stray {}",
            self.retransmits, self.sent, self.received, self.send_errors, self.stray
        );
        if self.script_retries > 0 {
            let _ = writeln!(
                t,
                "script retries (a failed fetch, the script's pause, its files again) {}",
                self.script_retries
            );
        }
        if self.lost > 0 {
            let _ = writeln!(t, "lost on purpose (--loss) {}", self.lost);
        }
        for (cause, count) in &self.causes {
            let _ = writeln!(t, "failed: {count} × {cause}");
        }
        t
    }

    /// The contract: `wave: nodes N done D failed F time S s`.
    pub fn last_line(&self) -> String {
        format!(
            "wave: nodes {} done {} failed {} time {:.2} s",
            self.nodes,
            self.done,
            self.failed,
            self.elapsed.as_secs_f64()
        )
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One JSON object per machine: its MAC, address, outcome, the start of
/// every stage and the end (milliseconds since the wave began).
pub fn write_json(path: &Path, nodes: &[Node]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for n in nodes {
        let stages: serde_json::Map<String, serde_json::Value> = n
            .marks
            .iter()
            .map(|(s, at)| {
                (
                    s.name().to_owned(),
                    serde_json::json!(at.as_millis() as u64),
                )
            })
            .collect();
        let line = serde_json::json!({
            "node": n.index,
            "mac": mac_text(n.mac),
            "addr": n.addr.map(|a| a.to_string()),
            "done": n.is_done(),
            "stages_ms": stages,
            "end_ms": n.finished.map(|d| d.as_millis() as u64),
            "retransmits": n.retransmits,
            "script_retries": n.script_retries,
            "bytes": n.bytes,
            "cause": n.cause,
        });
        writeln!(f, "{line}")?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_group_without_their_numbers() {
        assert_eq!(
            cause_class("tftp timeout for ipxe.efi after 1468 bytes"),
            "tftp timeout for ipxe.efi after N bytes"
        );
    }

    #[test]
    fn percentiles_pick_from_the_sorted_list() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 0.5), 51.0);
        assert_eq!(pct(&v, 0.99), 99.0);
        assert!(pct(&[], 0.5).is_nan());
    }
}
