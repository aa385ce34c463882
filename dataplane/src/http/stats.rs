//! HTTP counters, shared with the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use bootwave_protocol::http::Status;

use crate::metrics::Exposition;

/// Why a connection was refused or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Over `max-connections-per-client`.
    PerClient,
    /// Over `max-connections`.
    Total,
    /// `accept` failed (e.g. out of descriptors).
    Accept,
    /// The request head did not arrive within `header-timeout`.
    HeaderTimeout,
    /// No progress within `idle-timeout`.
    IdleTimeout,
}

impl Refused {
    const ALL: [Self; 5] = [
        Self::PerClient,
        Self::Total,
        Self::Accept,
        Self::HeaderTimeout,
        Self::IdleTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::PerClient => "per_client",
            Self::Total => "total",
            Self::Accept => "accept_failed",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// Counters the HTTP thread writes and a scrape reads.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: [AtomicU64; Status::ALL.len()],
    bytes: AtomicU64,
    active: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
}

impl HttpStats {
    pub(super) fn request(&self, status: Status) {
        self.requests[status.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sent(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn opened(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self, why: Refused) {
        let i = Refused::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered with `status` so far.
    pub fn requests(&self, status: Status) -> u64 {
        self.requests[status.index()].load(Ordering::Relaxed)
    }

    /// Writes the HTTP families as Prometheus text.
    pub fn render(&self, out: &mut String) {
        let mut exp = Exposition::new(out);
        for status in Status::ALL {
            exp.counter(
                "bootwave_http_requests_total",
                "HTTP requests answered, by status.",
                &[("status", super::status_label(status))],
                self.requests(status),
            );
        }
        exp.counter(
            "bootwave_http_bytes_total",
            "File bytes sent over HTTP.",
            &[],
            self.bytes.load(Ordering::Relaxed),
        );
        exp.gauge(
            "bootwave_http_connections",
            "HTTP connections open.",
            &[],
            self.active.load(Ordering::Relaxed),
        );
        for why in Refused::ALL {
            exp.counter(
                "bootwave_http_refused_total",
                "HTTP connections refused or cut, by reason.",
                &[("reason", why.label())],
                self.refused[Refused::ALL.iter().position(|r| *r == why).unwrap_or(0)]
                    .load(Ordering::Relaxed),
            );
        }
    }
}
