//! What the control endpoint sees of the shards: their boot events and
//! their leases, published without ever making a shard wait.
//!
//! - [`EventBus`]: a bounded, lossy broadcast of [`BusEvent`]s (a DHCP
//!   message handled, a TFTP transfer or an HTTP download started or
//!   ended). Shards and the HTTP thread publish
//!   with a non-blocking send, and only when someone subscribed: with no
//!   subscriber an event costs one atomic load. A subscriber that reads
//!   too slowly loses the oldest events and learns how many it missed.
//! - [`LeaseMirror`]: one per DHCP shard, a copy of the leases of the
//!   clients the shard owns, updated once per commit group from the
//!   addresses the shard touched. The shard only ever `try_lock`s it, so a
//!   reader copying the mirror delays the update, never the shard.
//!
//! Wall-clock time stamps are taken here, in the driver; the protocol
//! cores know only monotonic time.

mod bus;
mod mirror;

pub use bus::{BusEvent, DEFAULT_CAPACITY, EventBus, EventKind, HTTP_THREAD, Subscriber};
pub use mirror::{LeaseMirror, MAX_DEFERRED};
