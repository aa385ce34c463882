//! Wall-clock time as the DHCP core sees it.
//!
//! Leases outlive the process, so the core speaks absolute wall-clock time
//! (the journal stores it) rather than a monotonic `Instant`. The core never
//! reads a clock: the driver passes the current time into every call.

use std::time::Duration;

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);
    /// A time that never comes: the end of a permanent (BOOTP) binding.
    pub const NEVER: Self = Self(u64::MAX);

    /// A time from milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// A time from whole seconds since the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`UnixTime::NEVER`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// `self + secs` seconds, saturating.
    pub fn add_secs(self, secs: u32) -> Self {
        Self(self.0.saturating_add(u64::from(secs) * 1000))
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = UnixTime::from_secs(10);
        assert_eq!(t.as_millis(), 10_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(5)).as_millis(),
            10_005
        );
        assert_eq!(UnixTime::NEVER.add_secs(7), UnixTime::NEVER);
        assert_eq!(t.add_secs(2).saturating_since(t), Duration::from_secs(2));
        assert_eq!(t.saturating_since(t.add_secs(1)), Duration::ZERO);
    }
}
