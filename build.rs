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
    println!("cargo:rustc-env=KITH_GIT_COMMIT={}", git_commit());

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

/// The commit being built, for `kith_build_info`: `KITH_GIT_COMMIT` if the
/// packager sets it, else what git says, else `unknown` (a source tarball).
fn git_commit() -> String {
    println!("cargo:rerun-if-env-changed=KITH_GIT_COMMIT");
    if let Ok(commit) = env::var("KITH_GIT_COMMIT") {
        return commit;
    }
    // A new commit moves the branch HEAD names; a checkout moves HEAD.
    println!("cargo:rerun-if-changed=.git/HEAD");
    // A file that does not exist would rerun this script on every build.
    if let Ok(head) = fs::read_to_string(".git/HEAD")
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        for moved_by_commit in [format!(".git/{branch}"), ".git/packed-refs".to_owned()] {
            if fs::metadata(&moved_by_commit).is_ok() {
                println!("cargo:rerun-if-changed={moved_by_commit}");
            }
        }
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_owned())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
