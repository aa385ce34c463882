//! Small operating-system helpers of the runtime: interface discovery and
//! signal handling.

pub mod ifaddrs;
pub mod signals;
