//! Scenario tests of the TFTP core: a [`pair::Pair`] of server and client
//! models over an in-memory network in virtual time, plus direct,
//! packet-by-packet checks.

mod client;
mod clients;
mod direct;
mod events;
mod loss;
mod pair;
mod ports;
mod support;
mod vectors;
