//! Small operating-system helpers of the runtime: interface discovery,
//! signal handling, process limits, capabilities and private unix sockets.

pub mod caps;
pub mod ifaddrs;
pub mod limits;
pub mod signals;
