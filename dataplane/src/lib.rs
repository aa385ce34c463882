//! bootwave data plane: the driver around the sans-IO protocol cores.
//!
//! - [`journal`]: the append-only lease journal (group commit, replay, compaction).
//! - [`store`]: the boot-file store that TFTP transfers read from.
//! - [`driver`]: sockets, io_uring and portable backends, shard threads.

pub mod driver;
pub mod journal;
pub mod store;
