//! What `bootwave-dataplane` and `bootwave-agent` share at their edges:
//!
//! - [`metrics`]: the Prometheus text exposition and the scrape endpoint;
//! - [`unix_socket`]: unix sockets bound mode 0600 inside a private
//!   directory, never over a live peer's socket.
//!
//! No `unsafe` and no async runtime: the data plane's threads and the
//! agent's tokio tasks both use these.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod unix_socket;
