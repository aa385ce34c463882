//! The service every shard runs: DHCP on its [`SocketRole::Dhcp`] socket
//! (on the DHCP shards only), TFTP on [`SocketRole::TftpListen`] and the
//! per-transfer sockets, counters published to the metrics endpoint.

use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bootwave_protocol::net::RecvMeta;

use super::dhcp::DhcpSide;
use super::stats::{Counters, PUBLISH_EVERY, Published, RuntimeDrop};
use super::tftp::TftpSide;
use crate::driver::{Service, Tx};

/// The fixed sockets of every shard, in the order the driver opens them
/// (their shard socket index); run-time sockets (one per TFTP transfer)
/// follow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRole {
    /// The DHCP group (port 67), steered by `chaddr`.
    Dhcp,
    /// The TFTP listen group (port 69), spread by the kernel.
    TftpListen,
}

impl SocketRole {
    /// Every role, in socket-index order.
    pub const ALL: [Self; 2] = [Self::Dhcp, Self::TftpListen];

    /// The shard socket index of this role.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The role of shard socket `sock`; `None` for a run-time socket.
    pub fn of(sock: usize) -> Option<Self> {
        Self::ALL.get(sock).copied()
    }
}

/// Flags the main thread raises for every shard.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop accepting DHCP messages and TFTP requests; let transfers end.
    pub draining: AtomicBool,
}

/// One shard's DHCP and TFTP state.
#[derive(Debug)]
pub struct ShardService {
    /// `None` on shards beyond the DHCP shard count: they see broadcast
    /// clones on the DHCP socket and ignore them.
    dhcp: Option<DhcpSide>,
    tftp: TftpSide,
    control: Arc<Control>,
    draining: bool,
    counters: Counters,
    published: Arc<Published>,
    next_publish: Instant,
}

impl ShardService {
    /// A shard serving `dhcp` and `tftp`, publishing into `published`.
    pub fn new(
        dhcp: Option<DhcpSide>,
        tftp: TftpSide,
        control: Arc<Control>,
        published: Arc<Published>,
    ) -> Self {
        Self {
            dhcp,
            tftp,
            control,
            draining: false,
            counters: Counters::default(),
            published,
            next_publish: Instant::now(),
        }
    }

    /// Notices a drain request once.
    fn check_drain(&mut self) {
        if !self.draining && self.control.draining.load(Ordering::Relaxed) {
            self.draining = true;
            self.tftp.drain();
        }
    }

    fn publish(&mut self, now: Instant) {
        if let Some(dhcp) = &self.dhcp {
            self.counters.set_core_drops(dhcp.server().counters());
        }
        let tftp = self.tftp.server();
        self.counters
            .set_tftp(tftp.counters(), tftp.active_transfers());
        self.published.store(&self.counters);
        self.next_publish = now + PUBLISH_EVERY;
    }

    /// Shutdown: the last journal sync.
    pub fn finish(&mut self) {
        let now = Instant::now();
        if let Some(dhcp) = &mut self.dhcp {
            dhcp.finish(now);
        }
        self.publish(now);
    }
}

impl Service for ShardService {
    fn on_datagram(
        &mut self,
        now: Instant,
        sock: usize,
        meta: &RecvMeta,
        data: &[u8],
        tx: &mut Tx,
    ) {
        self.check_drain();
        if SocketRole::of(sock) == Some(SocketRole::Dhcp) {
            let Some(dhcp) = &mut self.dhcp else {
                return;
            };
            if self.draining {
                self.counters.drop(RuntimeDrop::Draining);
                return;
            }
            dhcp.on_datagram(meta, data, tx, &mut self.counters);
        } else {
            self.tftp
                .on_datagram(now, meta, data, tx, &mut self.counters);
        }
    }

    fn on_unreachable(
        &mut self,
        now: Instant,
        _sock: usize,
        local: SocketAddrV4,
        dest: SocketAddrV4,
        tx: &mut Tx,
    ) {
        self.tftp.on_unreachable(now, local.port(), dest, tx);
    }

    fn watched_fds(&self) -> Vec<RawFd> {
        self.dhcp
            .as_ref()
            .map_or_else(Vec::new, DhcpSide::watched_fds)
    }

    fn on_readable(&mut self, _now: Instant, index: usize, tx: &mut Tx) {
        if let Some(dhcp) = &mut self.dhcp {
            dhcp.on_readable(index, tx, &mut self.counters);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let now = Instant::now();
        [
            self.tftp.poll_timeout(),
            self.dhcp.as_ref().and_then(|dhcp| dhcp.poll_timeout(now)),
            Some(self.next_publish),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_timeout(&mut self, now: Instant, tx: &mut Tx) {
        self.check_drain();
        self.tftp.on_timeout(now, tx, &mut self.counters);
        if let Some(dhcp) = &mut self.dhcp {
            dhcp.on_timeout(now, tx, &mut self.counters);
        }
        if now >= self.next_publish {
            self.publish(now);
        }
    }

    fn flush(&mut self, now: Instant, tx: &mut Tx) {
        if let Some(dhcp) = &mut self.dhcp {
            dhcp.flush(now, tx, &mut self.counters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SocketRole;

    #[test]
    fn every_role_is_found_at_its_own_index_and_run_time_sockets_have_none() {
        for (i, role) in SocketRole::ALL.into_iter().enumerate() {
            assert_eq!((role.index(), SocketRole::of(i)), (i, Some(role)));
        }
        assert_eq!(SocketRole::of(SocketRole::ALL.len()), None);
    }
}
