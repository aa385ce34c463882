//! One reboot wave: its hosts, its timeout, its counts and timings.
//!
//! Sans-IO: events and "milliseconds since the wave started" go in, the
//! wave's state comes out. The caller owns the clock.

use std::collections::BTreeMap;

use bootwave_proto::v1::{self, WaveStage};

use super::host::{DoneRule, HostTrack};
use super::observe::Seen;

/// Every stage, in flow order (the index of a stage in [`StageCounts`]).
pub const STAGES: [WaveStage; 8] = [
    WaveStage::Waiting,
    WaveStage::DhcpFirmware,
    WaveStage::FirmwareFile,
    WaveStage::DhcpIpxe,
    WaveStage::Script,
    WaveStage::BootFiles,
    WaveStage::Done,
    WaveStage::Failed,
];

/// Hosts per stage, indexed like [`STAGES`].
pub type StageCounts = [u32; 8];

/// What a new wave follows.
#[derive(Debug, Clone)]
pub struct WaveSpec {
    /// Its id.
    pub id: String,
    /// Free text.
    pub name: String,
    /// Wall-clock start, milliseconds since the Unix epoch (shown only).
    pub started_unix_ms: i64,
    /// Hosts not done after this long fail.
    pub timeout_ms: u32,
    /// Which completed transfer means done.
    pub done: DoneRule,
}

/// A wave and where each of its hosts is.
#[derive(Debug, Clone)]
pub struct Wave {
    spec: WaveSpec,
    hosts: BTreeMap<[u8; 6], HostTrack>,
    counts: StageCounts,
    finished_at_ms: Option<u32>,
}

impl Wave {
    /// A wave following `hosts` (MAC and host name), all `WAITING`.
    pub fn new(spec: WaveSpec, hosts: impl IntoIterator<Item = ([u8; 6], String)>) -> Self {
        let hosts: BTreeMap<_, _> = hosts
            .into_iter()
            .map(|(mac, name)| (mac, HostTrack::new(mac, name)))
            .collect();
        let mut counts = StageCounts::default();
        counts[0] = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
        Self {
            spec,
            hosts,
            counts,
            finished_at_ms: None,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Whether it is over (every host done or failed, timed out, or
    /// finished by hand).
    pub fn is_finished(&self) -> bool {
        self.finished_at_ms.is_some()
    }

    /// Hosts per stage.
    pub fn stage_counts(&self) -> StageCounts {
        self.counts
    }

    /// A host of the wave.
    pub fn host(&self, mac: &[u8; 6]) -> Option<&HostTrack> {
        self.hosts.get(mac)
    }

    /// When [`Wave::handle_timeout`] must be called next (ms since start);
    /// `None` once finished.
    pub fn poll_timeout(&self) -> Option<u32> {
        (!self.is_finished()).then_some(self.spec.timeout_ms)
    }

    /// Applies one boot event seen at `at_ms`; returns whether the wave
    /// changed. Events of MACs outside the wave, and every event once the
    /// wave is finished, change nothing.
    pub fn observe(&mut self, at_ms: u32, event: &v1::BootEvent) -> bool {
        if self.is_finished() {
            return false;
        }
        let Some((mac, seen)) = Seen::from_event(event) else {
            return false;
        };
        let Some(host) = self.hosts.get_mut(&mac) else {
            return false;
        };
        let before = host.stage();
        if !host.observe(at_ms, &seen, &self.spec.done) {
            return false;
        }
        let after = host.stage();
        move_count(&mut self.counts, before, after);
        if self.settled() {
            self.finished_at_ms = Some(at_ms);
        }
        true
    }

    /// Fails every host not done once the timeout passed; returns whether
    /// the wave changed.
    pub fn handle_timeout(&mut self, at_ms: u32) -> bool {
        if self.is_finished() || at_ms < self.spec.timeout_ms {
            return false;
        }
        for host in self.hosts.values_mut() {
            let before = host.stage();
            if host.time_out(at_ms) {
                move_count(&mut self.counts, before, host.stage());
            }
        }
        self.finished_at_ms = Some(at_ms);
        true
    }

    /// Stops following the wave at `at_ms` (hosts keep their stage);
    /// returns whether it was running.
    pub fn finish(&mut self, at_ms: u32) -> bool {
        if self.is_finished() {
            return false;
        }
        self.finished_at_ms = Some(at_ms);
        true
    }

    /// The wave on the wire; hosts when asked, and always once finished.
    pub fn to_wire(&self, with_hosts: bool) -> v1::Wave {
        let hosts = if with_hosts || self.is_finished() {
            self.hosts.values().map(HostTrack::to_wire).collect()
        } else {
            Vec::new()
        };
        v1::Wave {
            id: self.spec.id.clone(),
            name: self.spec.name.clone(),
            started_unix_ms: self.spec.started_unix_ms,
            finished_unix_ms: self
                .finished_at_ms
                .map_or(0, |at| self.spec.started_unix_ms + i64::from(at)),
            finished: self.is_finished(),
            timeout_s: self.spec.timeout_ms / 1000,
            counts: STAGES
                .iter()
                .zip(self.counts)
                .map(|(&stage, hosts)| v1::StageCount {
                    stage: stage.into(),
                    hosts,
                })
                .collect(),
            hosts,
            timings: self.timings(),
        }
    }

    /// Time from the start to reaching each stage after `WAITING`, over the
    /// hosts whose current timeline reached it.
    fn timings(&self) -> Vec<v1::StageTiming> {
        STAGES[1..]
            .iter()
            .map(|&stage| {
                let mut times: Vec<u32> = self
                    .hosts
                    .values()
                    .filter_map(|h| h.timeline().iter().find(|m| m.stage == stage))
                    .map(|m| m.at_ms)
                    .collect();
                times.sort_unstable();
                v1::StageTiming {
                    stage: stage.into(),
                    hosts: u32::try_from(times.len()).unwrap_or(u32::MAX),
                    p50_ms: times
                        .get(times.len().saturating_sub(1) / 2)
                        .copied()
                        .unwrap_or(0),
                    max_ms: times.last().copied().unwrap_or(0),
                }
            })
            .collect()
    }

    fn settled(&self) -> bool {
        let ended = self.counts[6] + self.counts[7];
        usize::try_from(ended).is_ok_and(|n| n == self.hosts.len())
    }
}

/// The index of `stage` in [`STAGES`].
pub fn stage_index(stage: WaveStage) -> Option<usize> {
    STAGES.iter().position(|&s| s == stage)
}

fn move_count(counts: &mut StageCounts, from: WaveStage, to: WaveStage) {
    if let (Some(f), Some(t)) = (stage_index(from), stage_index(to)) {
        counts[f] = counts[f].saturating_sub(1);
        counts[t] += 1;
    }
}
