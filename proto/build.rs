//! Generates the tonic/prost code for every `.proto` under `codesync/`, with the
//! protoc shipped inside `protoc-bin-vendored` so no system protoc is needed.

use std::path::PathBuf;

const SERVICES: [&str; 9] =
    ["auth", "rooms", "documents", "presence", "history", "execution", "assistant", "notifications", "analytics"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc_path = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded, and prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc_path) };

    let mut proto_files: Vec<PathBuf> =
        SERVICES.iter().map(|service| PathBuf::from(format!("codesync/{service}/v1/{service}.proto"))).collect();
    // The events the services publish, beside their gRPC contracts.
    proto_files.push(PathBuf::from("codesync/events/v1/events.proto"));
    for proto_file in &proto_files {
        println!("cargo:rerun-if-changed={}", proto_file.display());
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("codesync_descriptor.bin"))
        // A method a service does not implement answers UNIMPLEMENTED; streams are boxed.
        .generate_default_stubs(true)
        // Yjs updates and y-protocols frames pass through without copies.
        .bytes(".codesync.documents.v1")
        .compile_protos(&proto_files, &[PathBuf::from(".")])?;
    Ok(())
}
