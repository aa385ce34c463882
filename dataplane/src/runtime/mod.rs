//! The data-plane runtime: wires configuration, interfaces, journals, the
//! boot-file store and the protocol cores into running shards.
//!
//! # Start-up
//!
//! 1. Block `SIGTERM`, `SIGINT` and `SIGHUP` before any thread exists, so
//!    every thread inherits the mask and only the main thread takes them.
//! 2. Read and validate the configuration; list the machine's interfaces
//!    (`getifaddrs`) and select the served ones
//!    ([`select_interfaces`](bootwave_protocol::config::select_interfaces)).
//!    **Safety rule**: a DHCP datagram whose ingress interface is not served
//!    is dropped, so the data plane never answers on, say, the machine's
//!    uplink. When nothing matches, DHCP stays idle (with a warning) and
//!    the process keeps running. TFTP answers on served interfaces and on
//!    loopback only.
//! 3. Load the TFTP root into the [`FileStore`](crate::store::FileStore)
//!    and start its inotify watcher.
//! 4. Choose how many shards answer DHCP ([`leases::dhcp_shards`]): one,
//!    unless every dynamic pool gives each DHCP shard at least
//!    [`leases::MIN_SLICE`] addresses, since each DHCP shard hands out only
//!    its slice of a pool and a split small pool would strand addresses.
//!    Journals ([`leases::prepare`]): replay every journal of the journal
//!    directory into every DHCP shard's `DhcpServer` (whatever shard count wrote
//!    them), write each shard's live leases into `shard-<i>-of-<n>` with
//!    `create_from`, then retire the journals of other layouts. Until the
//!    retirement both layouts exist, so a crash in between loses nothing.
//! 5. Spawn the shards ([`spawn_shards`](crate::driver::spawn_shards)), each
//!    with three sockets: 0 = DHCP group on `0.0.0.0:<dhcp.port>` steered by
//!    `chaddr` among the DHCP shards (the others ignore the broadcast
//!    clones they see), 1 = TFTP listen group on `0.0.0.0:<tftp.port>` (kernel
//!    hash), 2 = the shard's own ephemeral TFTP data port, handed to its
//!    `TftpServer`. Print a one-screen summary of what is served where.
//!
//! # A shard ([`ShardService`])
//!
//! DHCP (`dhcp` module): each datagram goes to the core with the ingress
//! interface's addresses. `Send` replies leave at once. `Commit` is
//! persist-then-send: the records are appended to the shard's journal and
//! the reply is copied into a small held queue; `flush` (once per loop
//! iteration) commits the journal once for the whole batch (group commit)
//! and releases the replies whose records are acknowledged
//! (`acked_seq`). Under `fsync = batch` the shard's timer follows
//! `next_sync_at` and syncs then. A journal failure (a full disk, an I/O
//! error) is logged, held replies are dropped and no ACK that needs the
//! journal leaves (OFFERs go on): a client never holds a lease a crash
//! could forget. The journal retries by itself every 1–2 s and ACKs resume
//! once it can be written ([`ShardJournal`](crate::journal::ShardJournal));
//! the same upkeep compacts it while running. Replies follow the core's destination; for "unicast
//! to `yiaddr`" an ARP entry `yiaddr → chaddr` is written first
//! ([`neigh`](crate::neigh)), and when that fails the reply is broadcast;
//! broadcasts leave by the ingress interface (`IP_PKTINFO`). On a port
//! other than 67, relays are answered on that port and clients on the next
//! one (ISC dhcpd's `-p`). Ping checks: `Action::Probe` sends one ARP probe
//! through the shard's [`ArpProber`](crate::probe::ArpProber) (on-link) or
//! one ICMP echo through its [`Prober`](crate::probe::Prober) (relayed);
//! both sockets are watched by the ring or poll set, and every answer read
//! goes to `probe_answered`, which resumes the DISCOVER at once. The
//! deadlines are the core's (`poll_timeout`, then `next_timed_out_probe`).
//! A probe that cannot be sent is reported with `probe_not_sent` (offered
//! unprobed, counted), and start-up says when a prober is missing.
//!
//! TFTP (`tftp` module): every datagram of socket 1 (the listen group) and
//! of the transfer sockets (one per transfer, on a random ephemeral port the
//! kernel draws, opened with `Tx::open_socket` and closed when the core
//! releases the port) goes to the core with its real local port and
//! destination address; DATA runs from
//! `TxQueue::batches` become one `send_window` each (the file `Arc` is kept
//! until the send completes, UDP GSO when possible), control packets go
//! in pooled buffers. After `handle_timeout`, while the core's deadline is
//! already past, it runs again (bounded).
//!
//! Counters stay plain integers on the shard and are copied into shared
//! atomics every 250 ms ([`stats`]); [`stats::render`] writes them as
//! Prometheus text.
//!
//! # Signals
//!
//! `SIGHUP`: re-read the configuration; if it does not validate, log why and
//! keep the old one; otherwise swap the DHCP snapshot (one atomic swap seen
//! by every shard), reload the file store and log what changed. Interfaces,
//! ports, the journal and the shard count are fixed at start.
//! `SIGTERM`/`SIGINT`: drain: DHCP stops answering, TFTP refuses new
//! requests, transfers in flight run until they end or the drain timeout
//! passes (a second signal stops at once); then the shards stop, journals
//! get a last sync, and the process exits 0.

pub mod dhcp;
pub mod interfaces;
pub mod leases;
pub mod log_budget;
mod run;
pub mod service;
pub mod stats;
mod summary;
pub mod tftp;

pub use run::{Options, load_config, run};
pub use service::{Control, ShardService};

/// Why the runtime could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration file could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system error.
        source: std::io::Error,
    },
    /// The configuration file did not validate.
    #[error("{0}")]
    Config(#[from] bootwave_protocol::config::ConfigError),
    /// A journal could not be replayed, created or retired.
    #[error("lease journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// The TFTP root could not be loaded.
    #[error("tftp root: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Sockets, backend or shard threads failed.
    #[error("driver: {0}")]
    Driver(#[from] crate::driver::DriverError),
    /// The metrics endpoint could not be started.
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
}
