//! The reboot-wave simulator's parts: the clients' messages ([`dhcp`],
//! [`tftp`]), one machine's way through the boot ([`node`]), the sockets
//! ([`net`]) and HTTP downloads ([`http`]), the reflector that measures the
//! simulator's own ceiling ([`reflector`]) and the report ([`report`]).

pub mod dhcp;
pub mod http;
pub mod net;
pub mod node;
pub mod reflector;
pub mod report;
pub mod tftp;
