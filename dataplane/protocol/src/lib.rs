//! Sans-IO protocol cores for bootwave.
//!
//! This crate holds the DHCPv4 and TFTP server logic as deterministic state
//! machines. It contains no networking code, starts no threads and never reads
//! the clock: the caller (the data-plane driver) hands in datagrams together
//! with the current time, and gets back bytes to send and actions to carry out
//! (persist a lease record, probe an address, arm a timer).
//!
//! The modules:
//! - [`config`]: the validated runtime configuration (parsed from TOML).
//! - [`dhcp`]: the DHCPv4 server core, the lease table and the lease journal.
//! - [`tftp`]: the TFTP server core (RFC 1350, 2347, 2348, 2349, 7440).
//! - [`net`]: receive metadata shared with the driver.
//! - [`ra`]: minimal IPv6 Router Advertisements that end a boot loader's
//!   IPv6 wait.
//! - [`shard`]: which shard owns a client, and its BPF twin.
//! - [`template`]: per-host iPXE script templates.
#![forbid(unsafe_code)]

pub mod config;
pub mod dhcp;
pub mod http;
pub mod net;
pub mod ra;
pub mod shard;
pub mod template;
pub mod tftp;
