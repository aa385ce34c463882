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

/// One step of xorshift64 (Marsaglia): `state` must not be 0. Cheap,
/// deterministic randomness for jitter, loss and stand-in files; nothing
/// here needs more.
pub fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
