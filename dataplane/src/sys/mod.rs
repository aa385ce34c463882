//! Small operating-system helpers of the runtime: interface discovery,
//! signal handling and private unix sockets.

pub mod ifaddrs;
pub mod signals;
pub mod unix_socket;
