//! Generates the gRPC code and the file descriptor set (for reflection) from
//! `bootwave/v1/*.proto`, with the vendored `protoc` so that a fresh machine
//! needs no system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "bootwave/v1/types.proto",
        "bootwave/v1/events.proto",
        "bootwave/v1/agent.proto",
        "bootwave/v1/dataplane.proto",
    ];
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("bootwave_v1_descriptor.bin"))
        .btree_map(".")
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
