//! End-to-end tests: real servers and real clients in network namespaces.
//!
//! Each test runs against every server in [`SERVERS`]; adding
//! `Server::Bootwave` there runs the whole suite against the data plane.
//! These tests need root and the packages `tests/run` installs; without them
//! they fail, never skip.

mod dhcp_lease;
mod harness;
mod perfdhcp_relay;
mod tftp_download;

use bootwave_e2e::Server;

/// Servers every end-to-end test runs against.
const SERVERS: &[Server] = &[Server::Dnsmasq];
