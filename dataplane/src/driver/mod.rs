//! Sockets, rings and shard threads: the I/O engine around the sans-IO cores.
//!
//! The driver is protocol-agnostic. It receives UDP datagrams, hands each to a
//! [`Service`] together with its [`RecvMeta`](bootwave_protocol::net::RecvMeta),
//! and sends whatever the service queued in its [`Tx`]. The DHCP and TFTP
//! cores are plugged in as services.
//!
//! # Threads
//!
//! [`spawn_shards`] starts N shard threads, each pinned to one CPU (shard `i`
//! on the `i % n`-th CPU the process may run on). A shard owns everything it
//! touches: its sockets, its ring (or poll set), its send slots, its receive
//! buffers and its service. Shards share nothing but the stop signal, so no
//! lock is taken on the data path.
//!
//! # Sockets
//!
//! Each [`SocketSpec`] gives every shard one socket. A
//! [`Binding::Group`] spec binds N sockets to the same address with
//! `SO_REUSEPORT`; the kernel then clones each broadcast datagram to every
//! socket of the group and sends all unicast from one source ip:port to one
//! socket. With [`Steering::Chaddr`] the group carries the classic BPF program
//! of [`bootwave_protocol::shard::cbpf_program`], which picks the socket (and
//! so the shard) from the DHCP `chaddr`, the same choice
//! [`bootwave_protocol::shard::shard_of`] makes. A [`Binding::PerShard`] spec
//! gives each shard a socket of its own (for example an ephemeral TFTP
//! transfer port), so replies to it come back to the shard that sent.
//!
//! # Backends
//!
//! - [`Backend::Uring`]: one `io_uring` per shard. Each socket has one
//!   multishot `RecvMsg` request drawing from a ring of provided buffers;
//!   sends are `SendMsg` requests; the loop sleeps in one `io_uring_enter`
//!   with a timeout equal to the service's next deadline. One loop iteration
//!   reaps every completion, runs the service over the batch, then submits
//!   the resulting sends with a single system call.
//! - [`Backend::Portable`]: `ppoll`, `recvmmsg` and `sendmmsg`. Chosen when
//!   the kernel or a seccomp filter (Docker's default profile) refuses
//!   io_uring (EPERM, ENOSYS, EACCES), or on request. The choice is made
//!   once, by setting up a small ring on a throw-away thread (tearing a ring
//!   down can queue io_uring task work to the thread that made it, which
//!   would interrupt that thread's next blocking system call with EINTR).
//!
//! Both backends wake for three things: a datagram, the service's next
//! deadline ([`Service::poll_timeout`], the `io_uring_enter` or `ppoll`
//! timeout, capped at 250 ms so [`Service::should_stop`] is polled), and the
//! stop eventfd that [`ShardGroup::stop`] writes.
//!
//! # Backpressure and limits
//!
//! - A transmit that finds no free send slot stays queued in [`Tx`]; the
//!   shard then sleeps until completions free slots. [`Tx::queued`] lets a
//!   service see the queue and slow down.
//! - A window holds at most [`MAX_WINDOW`] datagrams.
//! - A receive buffer of [`UringConfig::recv_buffer_size`] bytes carries
//!   64 bytes of header, address and control data; longer datagrams are
//!   truncated and dropped (counted in [`ShardStats::rx_dropped`]). The
//!   portable backend receives up to 2048 bytes.
//! - When every receive buffer is in use the multishot receive ends with
//!   ENOBUFS; the datagrams wait in the socket, the buffers are listed
//!   again as soon as the service has seen them, and the receive is
//!   re-armed in the same iteration ([`ShardStats::recv_no_buffers`]).
//!
//! # Buffer ownership
//!
//! io_uring lets the kernel write into and read from our memory after the
//! system call that submitted the request has returned, so every buffer has
//! one owner at a time:
//!
//! - **Receive buffers** (`uring` backend) live in one allocation per shard,
//!   cut into equal buffers and listed in a provided-buffer ring. A buffer
//!   listed in the ring belongs to the kernel. A completion naming buffer `b`
//!   hands `b` back to the shard, which lends it to the service as `&[u8]`
//!   for the duration of one `on_datagram` call and then lists it in the ring
//!   again. The allocation is freed only after the ring is closed and every
//!   receive request has ended; if that cannot be confirmed it is leaked.
//! - **The receive `msghdr`** of each socket (only its name and control
//!   lengths matter) is boxed and outlives the multishot request that
//!   points at it.
//! - **Send buffers**: a service gets a pooled `Vec<u8>` from [`Tx::buffer`],
//!   fills it and queues it, or queues a TFTP window: an
//!   `Arc<dyn FileData>` plus `[header | file slice]` [`Chunk`]s. When the
//!   backend takes a transmit from [`Tx`], it moves it into a send slot, a
//!   fixed-address cell of a slab allocated once per shard. The slot also
//!   holds the `sockaddr`, the `iovec`s, the `msghdr`s and the control
//!   messages the `SendMsg` requests point at. From submission until the
//!   last completion of the slot the kernel may read all of it, and nothing
//!   touches the slot. Then the `Vec<u8>` goes back to the pool and the
//!   `Arc` is dropped. The slab is bounded: when every slot is in flight,
//!   the rest stay queued in [`Tx`] until completions free slots. At
//!   shutdown the shard waits (bounded) for in-flight sends, and leaks the
//!   slab if they do not complete, rather than free memory the kernel may
//!   still read.
//! - The `portable` backend passes buffers only for the duration of a
//!   system call, so ownership never leaves the shard.
//!
//! # UDP GSO
//!
//! A TFTP window whose segments all have the same length (the last may be
//! shorter) goes out as one `sendmsg` with a `UDP_SEGMENT` control message:
//! the iovec list is `[hdr1, slice1, hdr2, slice2, …]`, the kernel
//! concatenates it and cuts it into datagrams of `4 + blksize` bytes, so no
//! payload is copied. Other windows, and every window when the kernel lacks
//! GSO, go as one `sendmsg` per datagram with a two-entry iovec.

mod backend;
mod bufring;
mod ephemeral;
mod msg;
mod portable;
mod service;
mod shard;
mod socket;
mod tx;
mod uring;

pub use backend::{Backend, BackendChoice, select_backend};
pub use ephemeral::{EphemeralSpec, OpenError};
pub use service::{Service, ShardContext};
pub use shard::{DriverConfig, ShardExit, ShardGroup, ShardStats, StopHandle, spawn_shards};
pub use socket::{Binding, SocketSpec, Steering, gso_supported};
#[cfg(test)]
pub(crate) use tx::Payload;
pub use tx::{Chunk, MAX_WINDOW, SourceHint, Tx, TxError};
pub use uring::UringConfig;

use std::io;
use std::net::SocketAddrV4;

/// Errors of socket setup, backend setup and shard threads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A socket could not be created, configured or bound.
    #[error("socket {addr}: {op}: {source}")]
    Socket {
        /// The address the socket was meant for.
        addr: SocketAddrV4,
        /// What was being done.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// io_uring could not be set up or a request could not be submitted.
    #[error("io_uring {op}: {source}")]
    Uring {
        /// What was being done.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// A system call of the shard loop failed.
    #[error("{op}: {source}")]
    Sys {
        /// The system call.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The configuration cannot be run (no shards, no sockets, …).
    #[error("invalid driver configuration: {0}")]
    Config(&'static str),
    /// A shard thread panicked.
    #[error("shard {0} panicked")]
    Panicked(usize),
}
