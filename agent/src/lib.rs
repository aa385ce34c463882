//! bootwave control agent and command-line client.
#![forbid(unsafe_code)]

pub mod isc;
