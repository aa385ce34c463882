//! The TFTP server core.

mod file;

pub use file::{FileData, ResolveRequest, Resolved, Resolver};
