//! Small operating-system helpers of the runtime: interface discovery,
//! signal handling, process limits and private unix sockets.

pub mod ifaddrs;
pub mod limits;
pub mod signals;
