//! The bootwave gRPC API (package `bootwave.v1`).
//!
//! - [`v1`]: the generated messages, the `BootwaveService` (agent API) and
//!   `DataplaneControl` (data-plane control endpoint) clients and servers.
//! - [`channel`]: client channels to `unix:/path` or `http://host:port`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//! - [`convert`]: wire messages ↔ validated domain values, and the desired
//!   state → [`bootwave_protocol::config::Config`] step that applies the data
//!   plane's own validation, so the agent never accepts what a data plane
//!   would refuse.
#![forbid(unsafe_code)]

pub mod channel;
pub mod convert;

/// Generated code of package `bootwave.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unnameable_types,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("bootwave.v1");
}

/// Largest gRPC message bootwave's servers and clients accept: a desired
/// state with 100,000s of hosts is tens of megabytes (gRPC's default limit
/// is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Encoded `FileDescriptorSet` of every `bootwave.v1` file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("bootwave_v1_descriptor");
