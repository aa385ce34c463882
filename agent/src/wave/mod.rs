//! Reboot waves: following a set of hosts through their network boot, from
//! the boot events of every data plane.
//!
//! - [`observe`]: what an event tells (ACK, NAK, transfer started, …).
//! - [`host`]: the per-host stage machine (sans-IO; the stages and what
//!   moves a host between them are documented there).
//! - [`core`]: one wave: its hosts, counts, timings and timeout (sans-IO).
//! - [`registry`]: the agent's waves, in memory, fed with every event.
//! - [`api`]: host selection and the `WatchWave` stream.

pub mod api;
pub mod core;
pub mod host;
pub mod observe;
pub mod registry;

#[cfg(test)]
mod tests;

pub use self::core::{STAGES, StageCounts, Wave, WaveSpec};
pub use host::{DoneRule, HostTrack};
pub use registry::{NewWave, WaveError, Waves};
