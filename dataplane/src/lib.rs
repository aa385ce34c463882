//! bootwave data plane: the driver around the sans-IO protocol cores.
//!
//! - [`journal`]: the append-only lease journal (group commit, replay, compaction).
//! - [`store`]: the boot-file store that TFTP transfers read from.
//! - [`scripts`]: per-host iPXE scripts rendered from profile templates.
//! - [`driver`]: sockets, io_uring and portable backends, shard threads.
//! - [`events`]: boot events and lease mirrors the shards publish for the
//!   control endpoint.
//! - [`logs`]: the log subscriber and its non-blocking writer.
//! - [`metrics`]: Prometheus text exposition and the scrape endpoint.
//! - [`neigh`]: ARP entries so unicast replies need no ARP request.
//! - [`probe`]: ICMP echo probes for the DHCP ping check.
//! - [`ra`]: IPv6 Router Advertisements that end iPXE's IPv6 wait.
//! - [`runtime`]: the running server: wires the cores, journals and store
//!   into shards; signals, reload and drain.
//! - [`sys`]: small OS helpers (interfaces, signals).

pub mod control;
pub mod driver;
pub mod events;
pub mod http;
pub mod journal;
pub mod logs;
pub use bootwave_daemon::metrics;
pub mod neigh;
pub mod probe;
pub mod ra;
pub mod runtime;
pub mod scripts;
pub mod store;
pub mod sys;
