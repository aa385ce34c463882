//! bootwave control agent and command-line client.
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
//! - [`cli`]: the `bootwave` command-line client.
//! - [`isc`]: the ISC dhcpd.conf importer.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod events;
pub mod explain;
pub mod isc;
pub mod metrics;
pub mod push;
pub mod server;
pub mod service;
pub mod store;
pub mod wave;
