//! bootwave control agent (the `bootwave` command-line client is the
//! `bootwave-cli` crate, the ISC importer `bootwave-isc`).
//!
//! - [`store`]: the durable desired state (redb), one generation per change.
//! - [`service`]: the `bootwave.v1.BootwaveService` handlers.
//! - [`push`]: pushing each generation to the data planes, and re-syncing
//!   those that fall behind.
//! - [`explain`]: which subnet, rule and profile decide each boot stage.
//! - [`events`]: boot events of every data plane fanned in, and "last
//!   seen" per MAC.
//! - [`wave`]: reboot waves followed through their boot stages.
//! - [`server`]: listeners (TCP with a bearer token, or a unix socket),
//!   health and reflection.
//! - [`config`]: the agent's configuration file (`--config`).
//! - [`metrics`]: the Prometheus endpoint (`--metrics`).
#![forbid(unsafe_code)]

pub mod config;
pub mod events;
pub mod explain;
pub mod metrics;
pub mod push;
pub mod server;
pub mod service;
pub mod store;
pub mod wave;
