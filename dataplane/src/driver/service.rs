//! What a shard runs: the seam between the driver and a protocol core.

use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::time::Instant;

use bootwave_protocol::net::RecvMeta;

use super::tx::Tx;

/// A protocol service driven by one shard.
///
/// One loop iteration of a shard calls, in order: [`Service::on_datagram`]
/// for each datagram received since the last iteration,
/// [`Service::on_timeout`] if [`Service::poll_timeout`] has passed,
/// [`Service::flush`] once, and then sends everything queued in the [`Tx`].
/// The shard then sleeps until a datagram arrives, a send completes, the
/// next deadline passes, or it is told to stop.
pub trait Service {
    /// One received datagram on socket `sock` (an index into
    /// [`ShardContext::local_addrs`]). `data` is lent for this call only.
    fn on_datagram(&mut self, now: Instant, sock: usize, meta: &RecvMeta, data: &[u8], tx: &mut Tx);

    /// The next instant [`Service::on_timeout`] should run, if any.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Called when the instant from [`Service::poll_timeout`] has passed.
    fn on_timeout(&mut self, now: Instant, tx: &mut Tx);

    /// Called once per loop iteration after the batch of datagrams and
    /// timers, before the sends are submitted: the place for group commit
    /// (persist the batch, then release the replies it held back).
    fn flush(&mut self, now: Instant, tx: &mut Tx) {
        let _ = (now, tx);
    }

    /// Descriptors besides the sockets that the shard watches for
    /// readability (probe sockets); asked once, when the shard starts. The
    /// service keeps them open while the shard runs.
    fn watched_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }

    /// `watched_fds()[index]` is readable (or has an error pending): read
    /// what is queued, without blocking. Called in the same iteration as
    /// the datagrams, before timers and [`Service::flush`].
    fn on_readable(&mut self, now: Instant, index: usize, tx: &mut Tx) {
        let _ = (now, index, tx);
    }

    /// ICMP reported `dest` unreachable for a datagram sent from run-time
    /// socket `sock` (bound to `local`), read from the socket's error
    /// queue after a receive or send on it failed. Called in the same
    /// iteration as the datagrams.
    fn on_unreachable(
        &mut self,
        now: Instant,
        sock: usize,
        local: SocketAddrV4,
        dest: SocketAddrV4,
        tx: &mut Tx,
    ) {
        let _ = (now, sock, local, dest, tx);
    }

    /// Whether the shard should stop after this iteration (drain finished).
    fn should_stop(&self) -> bool {
        false
    }
}

/// What a shard tells the service factory about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardContext {
    /// Index of the shard, `0..shards`.
    pub shard: usize,
    /// Number of shards in the group.
    pub shards: usize,
    /// Bound address of each of the shard's sockets, in [`SocketSpec`]
    /// order; the service's `sock` indices point into this list.
    ///
    /// [`SocketSpec`]: super::SocketSpec
    pub local_addrs: Vec<SocketAddrV4>,
}
