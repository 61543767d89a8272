//! Compiles the driver's provider API (`proto/service.proto`) with a protoc
//! shipped as a crates.io package, so a fresh machine needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Bounds repeated fields on the wire before decoding (src/server/codec.rs).
        .codec_path("crate::server::codec::BoundedCodec")
        // These carry tokens (attributes) and secret values (file contents):
        // their Debug is written by hand in src/lib.rs and prints neither.
        .skip_debug([
            ".v1alpha1.MountRequest",
            ".v1alpha1.MountResponse",
            ".v1alpha1.File",
        ])
        .compile_with_config(config, &["proto/service.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/service.proto");
    Ok(())
}
