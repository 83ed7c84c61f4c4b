//! Compiles the `kith.v1` contract with protox (no system `protoc`), writes the
//! encoded descriptor set that server reflection serves, and generates the
//! tonic services.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";
const CONTRACT_DIR: &str = "proto/kith/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build no longer prints these itself; migrations are embedded by
    // `sqlx::migrate!`, so a changed migration must rebuild the crate too.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=migrations");

    let mut contract: Vec<PathBuf> = fs::read_dir(CONTRACT_DIR)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    contract.retain(|path| path.extension().is_some_and(|ext| ext == "proto"));
    contract.sort();

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&contract)?;

    // `encode_file_descriptor_set` keeps extension options such as
    // `google.api.http`, which reflection clients show; re-encoding the decoded
    // set through prost would drop them.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("kith_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::api::grpc::KithCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
