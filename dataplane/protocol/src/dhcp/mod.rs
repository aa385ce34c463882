//! The DHCPv4 server core (RFC 2131, 2132, 3046, 4578; BOOTP per RFC 951),
//! sans-IO.
//!
//! One [`DhcpServer`] serves one shard of the data plane: it answers only
//! the clients whose MAC [`shard_of`](crate::shard::shard_of) assigns to it,
//! and hands out only its own slice of every dynamic range, so shards never
//! talk to each other. It reads the configuration from a [`SharedSnapshot`]
//! that a writer may swap at any time; each packet loads the current one
//! without locking.
//!
//! # Driving a shard
//!
//! At start, build the server and replay the journal into it — every
//! record, whatever shard count wrote it ([`LeaseTable::replay`] explains
//! why):
//!
//! ```
//! # use bootwave_protocol::dhcp::*;
//! # fn config() -> bootwave_protocol::config::Config { unimplemented!() }
//! # fn journal() -> Vec<Vec<u8>> { vec![] }
//! # fn run() {
//! let snapshot = Snapshot::shared(config());
//! let (shard, shards) = (0, 4);
//! let mut server = DhcpServer::new(snapshot.clone(), shard, shards);
//! for bytes in journal() {
//!     if let Ok(record) = LeaseRecord::decode(&bytes) {
//!         server.replay(&record);
//!     }
//! }
//! # }
//! ```
//!
//! Then, for every datagram received on port 67 (with `IP_PKTINFO`), call
//! [`DhcpServer::handle`] with the current wall-clock time, the receive
//! metadata, the IPv4 addresses of the ingress interface and a send buffer,
//! and carry out the [`Action`]:
//!
//! ```
//! # use std::net::Ipv4Addr;
//! # use bootwave_protocol::dhcp::*;
//! # use bootwave_protocol::net::RecvMeta;
//! # fn persist(_: &[u8]) {}
//! # fn send(_: &Transmit, _: &[u8]) {}
//! # fn ping(_: &Probe) {}
//! # fn step(server: &mut DhcpServer, now: UnixTime, meta: RecvMeta, iface: &[Ipv4Addr], datagram: &[u8]) {
//! let mut out = [0u8; MAX_MESSAGE_LEN];
//! let handled = server.handle(now, &meta, iface, datagram, &mut out);
//! match handled.action {
//!     Action::None => {}
//!     Action::Send(tx) => send(&tx, &out[..tx.len]),
//!     Action::Commit(commit) => {
//!         for record in commit.records() {
//!             persist(&record.encode()); // durable (per the fsync policy) ...
//!         }
//!         if let Some(tx) = commit.persisted() {
//!             send(&tx, &out[..tx.len]); // ... before the reply leaves
//!         }
//!     }
//!     Action::Probe(probe) => ping(&probe), // answers: server.probe_answered(..)
//! }
//! // `handled.event` summarises the message for logs and metrics.
//! # }
//! ```
//!
//! A [`Commit`] hides its reply until [`Commit::persisted`] is called: a
//! client must never hold an ACK for a binding a crash could forget.
//!
//! With `ping_check` on, a DISCOVER for a dynamic address yields
//! [`Action::Probe`] and is parked: send one probe (`probe.method`: ARP on
//! the ingress interface, or an ICMP echo) to `probe.addr`, and report
//! anything heard from that address with [`DhcpServer::probe_answered`],
//! or a probe that could not be sent with [`DhcpServer::probe_not_sent`];
//! each returns a [`Handled`] like `handle` (the OFFER, or a probe of
//! another address). The core keeps the deadline: once
//! [`DhcpServer::poll_timeout`] has passed, call
//! [`DhcpServer::next_timed_out_probe`] until `None` for the offers of the
//! silent ones.
//!
//! Timers: sleep until [`DhcpServer::poll_timeout`], then call
//! [`DhcpServer::handle_timeout`] and persist the `Expire` records it
//! returns (no reply waits on them). Expiry is also applied lazily on every
//! lookup, so a late timer never hands out a stale binding.
//!
//! # Replies
//!
//! [`Transmit::destination`] follows RFC 2131 §4.1: to the relay when
//! `giaddr` is set, to `ciaddr` when the client has one, broadcast when the
//! client asked for it (and for every NAK not relayed), else unicast to the
//! new address with the client MAC as the link-layer destination
//! ([`Destination::Direct`]; a driver that cannot do that broadcasts).
//!
//! # Layout
//!
//! `wire` (checked view), `options` (scanner), `writer` (reply into a
//! buffer), `snapshot` (config + lookup tables), `rules` (boot file choice),
//! `pool` (shard slices), `leases` (the table), `record` (journal records),
//! `exchange` (per-message behaviour), `reply` (options and addressing),
//! `server` (entry points), `event`, `outcome`, `time`.

mod event;
mod exchange;
mod hash;
mod leases;
mod options;
mod outcome;
mod pool;
mod probe;
mod record;
mod reply;
mod rules;
mod server;
mod snapshot;
mod time;
mod usage;
pub mod wire;
mod writer;

pub use event::{DropCounters, DropReason, Event, NakReason, ShortBytes, Verdict};
pub use leases::{Lease, LeaseState, LeaseTable, SWEEP_GRANULARITY};
pub use options::{ClientOptions, MessageType, OptionIter, Options, code};
pub use outcome::{
    Action, CLIENT_PORT, Commit, Destination, Handled, Probe, ProbeToken, SERVER_PORT, Transmit,
};
pub use pool::{range_contains, slice_addrs, slice_contains, slice_len, subnet_slice_contains};
pub use probe::{
    PROBE_BUFFER_BUDGET, PROBE_CAPACITY, PROBE_SLOT_OVERHEAD, ProbeCounters, ProbeMethod,
    RECENT_PROBE_CAPACITY, RECENT_PROBE_WINDOW,
};
pub use record::{LeaseRecord, RECORD_LEN, RECORD_VERSION, RecordError, RecordKind};
pub use reply::{INFINITE_LEASE, IPXE_NO_PXEDHCP, PXE_CLIENT, PXE_VENDOR_OPTIONS};
pub use rules::{
    ClientClass, matches as boot_rule_matches, select as select_boot_rule, user_class_is,
};
pub use server::{DhcpServer, MAX_PREALLOCATED_LEASES};
pub use snapshot::{SharedSnapshot, Snapshot};
pub use time::UnixTime;
pub use usage::PoolUsage;
pub use wire::{MAX_MESSAGE_LEN, Packet, ParseError};
pub use writer::{
    DEFAULT_MAX_LEN, IP_UDP_HEADERS, MIN_REPLY_LEN, ReplyWriter, WriteError, reply_limit,
};
