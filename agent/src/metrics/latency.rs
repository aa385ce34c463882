//! How long a committed change takes to reach every data plane.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bootwave_daemon::metrics::{Exposition, Histogram};

/// Upper bounds of the push latency buckets, in seconds.
const BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Push latency: a histogram of complete pushes and a count of incomplete
/// ones. Lock-free; shared by the pushers and the scrape thread.
#[derive(Debug)]
pub struct PushLatency {
    complete: Histogram,
    incomplete: AtomicU64,
}

impl Default for PushLatency {
    fn default() -> Self {
        Self {
            complete: Histogram::new(BOUNDS),
            incomplete: AtomicU64::new(0),
        }
    }
}

impl PushLatency {
    /// Records one push that took `elapsed`; `complete` when every data
    /// plane acknowledged it (only those enter the histogram).
    pub fn record(&self, elapsed: Duration, complete: bool) {
        if complete {
            self.complete.observe(elapsed.as_secs_f64());
        } else {
            self.incomplete.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pushes every data plane acknowledged.
    pub fn complete(&self) -> u64 {
        self.complete.snapshot().count
    }

    /// Pushes some data plane did not acknowledge.
    pub fn incomplete(&self) -> u64 {
        self.incomplete.load(Ordering::Relaxed)
    }

    /// Writes `bootwave_agent_push_seconds` and
    /// `bootwave_agent_push_incomplete_total`.
    pub(super) fn render(&self, exp: &mut Exposition<'_>) {
        exp.histogram(
            "bootwave_agent_push_seconds",
            "Time from a committed change to the last data plane's acknowledgement.",
            &[],
            &self.complete,
        );
        exp.counter(
            "bootwave_agent_push_incomplete_total",
            "Pushes that some data plane did not acknowledge.",
            &[],
            self.incomplete(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_pushes_are_timed_and_incomplete_ones_counted() {
        let latency = PushLatency::default();
        latency.record(Duration::from_millis(3), true);
        latency.record(Duration::from_millis(30), true);
        latency.record(Duration::from_secs(10), false);
        assert_eq!((latency.complete(), latency.incomplete()), (2, 1));
        let mut text = String::new();
        latency.render(&mut Exposition::new(&mut text));
        assert!(text.contains("bootwave_agent_push_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("bootwave_agent_push_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("bootwave_agent_push_seconds_count 2\n"));
        assert!(text.contains("bootwave_agent_push_incomplete_total 1\n"));
    }
}
