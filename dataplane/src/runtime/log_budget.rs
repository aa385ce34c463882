//! A budget for per-message log lines, so that a flood cannot turn the log
//! into the bottleneck (or fill the disk it lives on).
//!
//! Each shard owns one [`LogBudget`]: at most `per_second` lines in each
//! one-second window; what goes over is counted by kind and reported in one
//! summary line per `summary_every`. The operator who wants every line turns
//! on `debug`, where nothing is limited; the boot events on the event bus are
//! never limited.

use std::time::{Duration, Instant};

/// Lines per second a shard writes at the default level.
pub const LINES_PER_SECOND: u32 = 100;
/// How often a shard reports what it suppressed.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// What a suppressed line was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// An OFFER (or BOOTREPLY) went out.
    Offered = 0,
    /// An ACK went out.
    Acked = 1,
    /// A NAK went out.
    Nacked = 2,
    /// Anything else (RELEASE, DECLINE, INFORM, ping checks).
    Other = 3,
}

/// The names of [`LineKind`], in slot order.
const KIND_NAMES: [&str; 4] = ["offered", "acked", "nacked", "other"];

/// The line budget of one shard.
#[derive(Debug)]
pub struct LogBudget {
    per_second: u32,
    summary_every: Duration,
    window_start: Option<Instant>,
    used: u32,
    summary_start: Option<Instant>,
    suppressed: [u64; KIND_NAMES.len()],
}

/// What was suppressed over one summary period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// Lines suppressed, by kind (see [`Suppressed::by_kind`]).
    counts: [u64; KIND_NAMES.len()],
    /// The period they were suppressed in.
    pub period: Duration,
}

impl Suppressed {
    /// All suppressed lines.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(kind, count)` for every kind.
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KIND_NAMES.iter().copied().zip(self.counts.iter().copied())
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new(LINES_PER_SECOND, SUMMARY_EVERY)
    }
}

impl LogBudget {
    /// A budget of `per_second` lines per second, summarised every
    /// `summary_every`.
    pub fn new(per_second: u32, summary_every: Duration) -> Self {
        Self {
            per_second,
            summary_every,
            window_start: None,
            used: 0,
            summary_start: None,
            suppressed: [0; KIND_NAMES.len()],
        }
    }

    /// True when a line of `kind` may be written at `now`; otherwise it is
    /// counted for the next summary.
    pub fn admit(&mut self, now: Instant, kind: LineKind) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            return true;
        }
        if self.summary_start.is_none() {
            self.summary_start = Some(now);
        }
        self.suppressed[kind as usize] += 1;
        false
    }

    /// When the next summary is due: `None` while nothing is suppressed.
    pub fn summary_at(&self) -> Option<Instant> {
        self.summary_start.map(|start| start + self.summary_every)
    }

    /// The summary, once its period has passed since the first suppressed
    /// line; resets the counts.
    pub fn take_summary(&mut self, now: Instant) -> Option<Suppressed> {
        let start = self.summary_start?;
        let period = now.saturating_duration_since(start);
        if period < self.summary_every {
            return None;
        }
        self.summary_start = None;
        Some(Suppressed {
            counts: std::mem::take(&mut self.suppressed),
            period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_budget_per_second_and_the_rest_summarised() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(3, Duration::from_secs(10));
        let ms = |n| t0 + Duration::from_millis(n);
        let admitted: Vec<bool> = (0..5)
            .map(|i| budget.admit(ms(i), LineKind::Acked))
            .collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert!(!budget.admit(ms(500), LineKind::Offered));
        assert_eq!(budget.summary_at(), Some(ms(3) + Duration::from_secs(10)));
        // A new second: a fresh budget.
        assert!(budget.admit(ms(1_000), LineKind::Offered));
        assert_eq!(budget.take_summary(ms(9_000)), None, "not due yet");
        let summary = budget.take_summary(ms(10_003)).expect("due");
        assert_eq!(summary.total(), 3);
        let kinds: Vec<_> = summary.by_kind().collect();
        assert_eq!(
            kinds,
            [("offered", 1), ("acked", 2), ("nacked", 0), ("other", 0)]
        );
        assert_eq!(budget.summary_at(), None, "nothing suppressed since");
        assert_eq!(budget.take_summary(ms(30_000)), None);
    }
}
