//! End-to-end tests: real servers and real clients in network namespaces.
//!
//! The suite-wide tests run against every server in [`SERVERS`] (dnsmasq as
//! the reference, then `bootwave-dataplane` on both backends). Tests of
//! bootwave-only behaviour are generated once per backend by
//! [`on_each_backend!`], so a failure names its backend. These tests need
//! root and the packages `tests/run` installs; without them they fail,
//! never skip.

mod control;
mod crash_restart;
mod demo;
mod dhcp_clients;
mod dhcp_lease;
mod dhcp_rules;
mod firmware_flow;
mod harness;
mod http_boot;
mod journal_upkeep;
mod log_flood;
mod perfdhcp_relay;
mod ping_check;
mod service;
mod tftp_download;
mod tftp_hostile;
mod tftp_large;
mod tftp_ports;
mod tftp_storm;
mod wave;

use bootwave_e2e::{Backend, Server};

/// Servers every suite-wide end-to-end test runs against.
const SERVERS: &[Server] = &[
    Server::Dnsmasq,
    Server::Bootwave(Backend::Uring),
    Server::Bootwave(Backend::Portable),
];

/// `on_each_backend!(check)` turns `fn check(server: Server) ->
/// anyhow::Result<()>` into tests `check::uring` and `check::portable`;
/// `on_each_backend!(check, dnsmasq)` adds `check::dnsmasq`, the reference
/// run. Attributes before a lone name (`#[ignore = "…"]`) go on both tests.
macro_rules! on_each_backend {
    ($(#[$attr:meta])* $name:ident) => {
        mod $name {
            #[test]
            $(#[$attr])*
            fn uring() -> anyhow::Result<()> {
                super::$name(bootwave_e2e::Server::Bootwave(bootwave_e2e::Backend::Uring))
            }

            #[test]
            $(#[$attr])*
            fn portable() -> anyhow::Result<()> {
                super::$name(bootwave_e2e::Server::Bootwave(bootwave_e2e::Backend::Portable))
            }
        }
    };
    ($name:ident, dnsmasq) => {
        mod $name {
            #[test]
            fn uring() -> anyhow::Result<()> {
                super::$name(bootwave_e2e::Server::Bootwave(bootwave_e2e::Backend::Uring))
            }

            #[test]
            fn portable() -> anyhow::Result<()> {
                super::$name(bootwave_e2e::Server::Bootwave(bootwave_e2e::Backend::Portable))
            }

            #[test]
            fn dnsmasq() -> anyhow::Result<()> {
                super::$name(bootwave_e2e::Server::Dnsmasq)
            }
        }
    };
}
pub(crate) use on_each_backend;
