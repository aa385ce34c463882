//! Prometheus metrics: the text exposition format and a scrape endpoint.
//!
//! The hot path only touches atomics ([`Histogram::observe`],
//! [`CounterVec::inc`]); text is produced when a scrape arrives, by the
//! render closure given to [`serve`], which writes families with an
//! [`Exposition`]:
//!
//! ```
//! use std::sync::Arc;
//! use bootwave_daemon::metrics::{self, Exposition, Histogram};
//!
//! let latency = Arc::new(Histogram::new(&[0.001, 0.01, 0.1]));
//! let seen = Arc::clone(&latency);
//! let render: metrics::Render = Arc::new(move |out: &mut String| {
//!     let mut exp = Exposition::new(out);
//!     exp.histogram("reply_seconds", "Time to reply.", &[], &seen);
//! });
//! let server = metrics::serve("127.0.0.1:0".parse().unwrap(), render).unwrap();
//! latency.observe(0.004);
//! drop(server); // stops and joins the thread
//! ```

mod counter;
mod exposition;
mod histogram;
mod http;
mod server;

pub use counter::{CounterId, CounterVec};
pub use exposition::{CONTENT_TYPE, Exposition, MetricKind, Value};
pub use histogram::{Histogram, HistogramSnapshot};
pub use server::{MetricsError, MetricsServer, Render, serve};
