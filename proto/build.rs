//! Compiles Bellwether's `.proto` files with `protox`, so no system `protoc` is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &["bellwether/v1/release.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
