//! The boot-event broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use bootwave_protocol::dhcp::{DropReason, Event, Verdict};
use bootwave_protocol::tftp::TransferEvent;
use tokio::sync::broadcast;

use crate::http::HttpEvent;

/// Events the bus keeps for its slowest subscriber by default: a burst of
/// about one second of a large reboot wave.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// What happened.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// A DHCP message was handled.
    Dhcp(Event),
    /// A TFTP transfer started or ended.
    Tftp(TransferEvent),
    /// An HTTP download started or ended, or a GET was refused.
    Http(HttpEvent),
}

/// The [`BusEvent::shard`] of events of the HTTP server, which is no shard.
pub const HTTP_THREAD: u32 = u32::MAX;

/// One event with where and when it was seen.
#[derive(Debug, Clone)]
pub struct BusEvent {
    /// Wall-clock time at which the shard published it.
    pub time: SystemTime,
    /// The shard that saw it ([`HTTP_THREAD`] for the HTTP server).
    pub shard: u32,
    /// What happened.
    pub kind: EventKind,
}

impl BusEvent {
    /// The client's MAC, when known.
    pub fn mac(&self) -> Option<[u8; 6]> {
        match &self.kind {
            EventKind::Dhcp(e) => (e.mac != [0; 6]).then_some(e.mac),
            EventKind::Tftp(e) => e.mac(),
            EventKind::Http(e) => e.mac,
        }
    }
}

/// The publishing side, cloned into every shard and the control endpoint.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<BusEvent>,
    /// Live [`Subscriber`]s: read by every publish, so one atomic load
    /// instead of the channel's receiver count behind its lock.
    watchers: Arc<AtomicUsize>,
}

/// A subscription to the bus: the channel's receiver, counted as a watcher
/// until dropped.
#[derive(Debug)]
pub struct Subscriber {
    rx: broadcast::Receiver<BusEvent>,
    watchers: Arc<AtomicUsize>,
}

impl std::ops::Deref for Subscriber {
    type Target = broadcast::Receiver<BusEvent>;

    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl std::ops::DerefMut for Subscriber {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventBus {
    /// A bus keeping at most `capacity` (at least 1) events for its
    /// slowest subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            watchers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new subscriber: it sees events published from now on.
    pub fn subscribe(&self) -> Subscriber {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Subscriber {
            rx: self.tx.subscribe(),
            watchers: Arc::clone(&self.watchers),
        }
    }

    /// Whether anyone subscribed: one relaxed atomic load. Publishers check
    /// this before building an event; an event published while a
    /// subscription starts or ends may be built for nobody or missed by
    /// the newcomer, as with any subscription that starts mid-stream.
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Publishes a DHCP event of `shard`. A broadcast that another shard
    /// owns is not an event: the owner reports it.
    pub fn publish_dhcp(&self, shard: u32, event: &Event) {
        if !self.is_watched() || event.verdict == Verdict::Dropped(DropReason::NotOurShard) {
            return;
        }
        self.send(shard, EventKind::Dhcp(*event));
    }

    /// Publishes a TFTP transfer event of `shard`.
    pub fn publish_tftp(&self, shard: u32, event: TransferEvent) {
        if self.is_watched() {
            self.send(shard, EventKind::Tftp(event));
        }
    }

    /// Publishes an event of the HTTP server.
    pub fn publish_http(&self, event: HttpEvent) {
        if self.is_watched() {
            self.send(HTTP_THREAD, EventKind::Http(event));
        }
    }

    fn send(&self, shard: u32, kind: EventKind) {
        // `send` never blocks; it fails only when the last subscriber left
        // since the check, and then nobody wants the event.
        let _ = self.tx.send(BusEvent {
            time: SystemTime::now(),
            shard,
            kind,
        });
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dhcp(mac: [u8; 6], verdict: Verdict) -> Event {
        Event {
            mac,
            verdict,
            ..Event::default()
        }
    }

    #[test]
    fn unwatched_events_go_nowhere_and_watched_ones_arrive_in_order() {
        let bus = EventBus::new(8);
        bus.publish_dhcp(0, &dhcp([2, 0, 0, 0, 0, 1], Verdict::Offered));
        let mut rx = bus.subscribe();
        assert!(bus.is_watched());
        bus.publish_dhcp(1, &dhcp([2, 0, 0, 0, 0, 2], Verdict::Offered));
        bus.publish_dhcp(1, &dhcp([2, 0, 0, 0, 0, 3], Verdict::Acked));
        let first = rx.try_recv().unwrap();
        assert_eq!((first.shard, first.mac()), (1, Some([2, 0, 0, 0, 0, 2])));
        assert_eq!(rx.try_recv().unwrap().mac(), Some([2, 0, 0, 0, 0, 3]));
        assert!(rx.try_recv().is_err(), "the unwatched event was not kept");
    }

    #[test]
    fn the_bus_is_watched_while_a_subscriber_lives() {
        let bus = EventBus::new(8);
        let publisher = bus.clone();
        assert!(!publisher.is_watched());
        let first = bus.subscribe();
        let second = publisher.subscribe();
        drop(first);
        assert!(publisher.is_watched() && bus.is_watched());
        drop(second);
        assert!(!publisher.is_watched() && !bus.is_watched());
    }

    #[test]
    fn other_shards_broadcasts_are_not_events() {
        let bus = EventBus::new(8);
        let mut rx = bus.subscribe();
        let foreign = dhcp(
            [2, 0, 0, 0, 0, 1],
            Verdict::Dropped(DropReason::NotOurShard),
        );
        bus.publish_dhcp(0, &foreign);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_slow_subscriber_learns_how_many_it_missed() {
        let bus = EventBus::new(4);
        let mut rx = bus.subscribe();
        for i in 0..10u8 {
            bus.publish_dhcp(0, &dhcp([2, 0, 0, 0, 0, i], Verdict::Acked));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
        assert_eq!(rx.try_recv().unwrap().mac(), Some([2, 0, 0, 0, 0, 6]));
    }
}
