//! Operation sequences for fuzzing the TFTP core: bytes in, a sequence of
//! requests, ACKs, blind datagrams, ICMP reports and time steps against a
//! server, with the invariants checked after every step (a broken one is
//! a panic). Built for the unit tests and for the cargo-fuzz targets
//! (`--cfg fuzzing`), never into the shipped library.

pub mod admission;
pub mod ops;

#[cfg(test)]
mod tests;
