//! Boot events of every data plane, fanned in.
//!
//! One task per data plane ([`fanin::follow`]) subscribes to its
//! `WatchEvents`, stamps each event with the data plane's endpoint and
//! [`Events::publish`]es it: the event updates the "last seen" table, moves
//! the hosts of the running waves, and goes out on a bounded broadcast that
//! every `BootwaveService.WatchEvents` stream reads. A reader too slow for
//! the broadcast loses the oldest events; the next event it gets says how
//! many (`missed_before`). Publishing never waits for a reader.

pub mod api;
pub mod fanin;
pub mod last_seen;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bootwave_proto::v1;
use tokio::sync::broadcast;

use crate::wave::Waves;
use last_seen::LastSeenTable;

/// Events buffered for the slowest reader.
pub const BROADCAST_CAPACITY: usize = 4096;

/// The agent-wide event hub.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Arc<v1::BootEvent>>,
    last_seen: Mutex<LastSeenTable>,
    waves: Arc<Waves>,
}

impl Events {
    /// A hub feeding `waves`, keeping at most `last_seen_capacity` MACs.
    pub fn new(waves: Arc<Waves>, last_seen_capacity: usize) -> Self {
        Self {
            tx: broadcast::Sender::new(BROADCAST_CAPACITY),
            last_seen: Mutex::new(LastSeenTable::new(last_seen_capacity)),
            waves,
        }
    }

    /// Records `event` (already stamped with its data plane) and sends it to
    /// every reader.
    pub fn publish(&self, event: v1::BootEvent) {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(&event);
        self.waves.observe(&event, Instant::now());
        // No reader is not an error: the event is simply not streamed.
        let _ = self.tx.send(Arc::new(event));
    }

    /// A reader of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<v1::BootEvent>> {
        self.tx.subscribe()
    }

    /// What was last seen from `mac`.
    pub fn last_seen(&self, mac: &[u8; 6]) -> Option<v1::LastSeen> {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(mac)
            .cloned()
    }
}
