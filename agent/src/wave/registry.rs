//! The agent's waves: started, fed with every boot event, timed out,
//! watched, finished.
//!
//! Waves live in memory only: an agent restart forgets them (the boot events
//! they were built from are not kept either). At most [`MAX_WAVES`] are kept;
//! starting one more drops the oldest finished wave, and is refused while
//! that many are running.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bootwave_proto::v1;
use tokio::sync::watch;

use super::core::{StageCounts, Wave, WaveSpec};
use super::host::DoneRule;

/// Most waves kept.
pub const MAX_WAVES: usize = 32;

/// Why a wave call failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaveError {
    /// No wave has this id.
    #[error("wave {0} not found")]
    NotFound(String),
    /// No wave was started yet.
    #[error("no wave started yet")]
    NoWave,
    /// Too many waves are running to start another.
    #[error("{0} waves are running; finish one first")]
    TooMany(usize),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct NewWave {
    /// Free text.
    pub name: String,
    /// Hosts not done after this many milliseconds fail.
    pub timeout_ms: u32,
    /// The hosts: MAC and host name.
    pub hosts: Vec<([u8; 6], String)>,
}

/// Every wave of the agent.
#[derive(Debug, Default)]
pub struct Waves {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    waves: VecDeque<Tracked>,
    started: u64,
}

#[derive(Debug)]
struct Tracked {
    wave: Wave,
    start: Instant,
    /// Bumped on every change; watchers wait on it.
    changes: watch::Sender<u64>,
}

impl Tracked {
    fn at_ms(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.start).as_millis();
        u32::try_from(ms).unwrap_or(u32::MAX)
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }
}

impl Waves {
    /// No waves.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts following `new` from `now` (wall clock `now_unix_ms`).
    pub fn start(
        &self,
        new: NewWave,
        now: Instant,
        now_unix_ms: i64,
    ) -> Result<v1::Wave, WaveError> {
        let mut inner = self.lock();
        if inner.waves.len() >= MAX_WAVES {
            let oldest_finished = inner.waves.iter().position(|t| t.wave.is_finished());
            match oldest_finished {
                Some(i) => drop(inner.waves.remove(i)),
                None => return Err(WaveError::TooMany(inner.waves.len())),
            }
        }
        inner.started += 1;
        let spec = WaveSpec {
            id: format!("{:x}-{}", now_unix_ms / 1000, inner.started),
            name: new.name,
            started_unix_ms: now_unix_ms,
            timeout_ms: new.timeout_ms,
            done: DoneRule::default(),
        };
        let wave = Wave::new(spec, new.hosts);
        let reply = wave.to_wire(true);
        inner.waves.push_back(Tracked {
            wave,
            start: now,
            changes: watch::Sender::new(0),
        });
        Ok(reply)
    }

    /// Feeds one boot event, seen at `now`, to every running wave.
    pub fn observe(&self, event: &v1::BootEvent, now: Instant) {
        let mut inner = self.lock();
        for t in inner.waves.iter_mut().filter(|t| !t.wave.is_finished()) {
            let at = t.at_ms(now);
            if t.wave.observe(at, event) {
                t.changed();
            }
        }
    }

    /// Times out the running waves whose timeout passed at `now`.
    pub fn tick(&self, now: Instant) {
        let mut inner = self.lock();
        for t in &mut inner.waves {
            let at = t.at_ms(now);
            if t.wave.handle_timeout(at) {
                t.changed();
            }
        }
    }

    /// The wave `id` (empty: the latest), with hosts when asked.
    pub fn get(&self, id: &str, hosts: bool) -> Result<v1::Wave, WaveError> {
        let inner = self.lock();
        Ok(find(&inner, id)?.wave.to_wire(hosts))
    }

    /// Stops following the wave `id` (empty: the latest) at `now`; returns
    /// its final state.
    pub fn finish(&self, id: &str, now: Instant) -> Result<v1::Wave, WaveError> {
        let mut inner = self.lock();
        let i = position(&inner, id)?;
        let t = &mut inner.waves[i];
        let at = t.at_ms(now);
        if t.wave.finish(at) {
            t.changed();
        }
        Ok(t.wave.to_wire(true))
    }

    /// Every wave kept, oldest first, without hosts.
    pub fn list(&self) -> Vec<v1::Wave> {
        let inner = self.lock();
        inner.waves.iter().map(|t| t.wave.to_wire(false)).collect()
    }

    /// The id of wave `id` (empty: the latest) and a receiver that sees
    /// each of its changes.
    pub fn subscribe(&self, id: &str) -> Result<(String, watch::Receiver<u64>), WaveError> {
        let inner = self.lock();
        let t = find(&inner, id)?;
        Ok((t.wave.id().to_owned(), t.changes.subscribe()))
    }

    /// Hosts per stage summed over the running waves (for metrics; one pass
    /// over at most [`MAX_WAVES`] counters).
    pub fn stage_counts(&self) -> StageCounts {
        let inner = self.lock();
        let mut sum = StageCounts::default();
        for t in inner.waves.iter().filter(|t| !t.wave.is_finished()) {
            for (s, c) in sum.iter_mut().zip(t.wave.stage_counts()) {
                *s += c;
            }
        }
        sum
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole waves behind (every
        // update is a single assignment sequence); keep serving them.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn position(inner: &Inner, id: &str) -> Result<usize, WaveError> {
    if id.is_empty() {
        return inner.waves.len().checked_sub(1).ok_or(WaveError::NoWave);
    }
    inner
        .waves
        .iter()
        .position(|t| t.wave.id() == id)
        .ok_or_else(|| WaveError::NotFound(id.to_owned()))
}

fn find<'a>(inner: &'a Inner, id: &str) -> Result<&'a Tracked, WaveError> {
    position(inner, id).map(|i| &inner.waves[i])
}

impl crate::metrics::WaveStages for Waves {
    fn stage_counts(&self) -> Vec<(String, u64)> {
        super::STAGES
            .iter()
            .zip(Self::stage_counts(self))
            .map(|(stage, n)| (stage.as_str_name().to_owned(), u64::from(n)))
            .collect()
    }
}
