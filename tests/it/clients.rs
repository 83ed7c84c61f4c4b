//! The generated clients in `clients/`, each driven by its own example
//! against a live server: Python over gRPC (grpcio), TypeScript over gRPC
//! (connect-node) and over gRPC-Web (connect-web on Node's fetch). Each
//! example checks every answer itself and exits non-zero on the first one
//! that breaks the contract.
//!
//! The Python pins (`clients/python/requirements.txt`) must be installed in
//! the folder `KITH_CLIENTS_PYTHONPATH` names, and the TypeScript client
//! built (`npm ci --prefix clients/typescript && npm run --prefix
//! clients/typescript build`); each is skipped loudly otherwise, and with
//! `KITH_REQUIRE_SDKS=1` (CI) a skip is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Backend, TestApp, backend_tests, require};
use crate::tls::{Authority, ServerFiles, ca_file};

backend_tests!(
    the_python_client_example_runs,
    the_typescript_client_example_runs_over_grpc,
    the_typescript_client_example_runs_over_grpc_web,
);

fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

fn skipped(what: &str) {
    assert!(
        std::env::var("KITH_REQUIRE_SDKS").as_deref() != Ok("1"),
        "KITH_REQUIRE_SDKS=1 but {what}"
    );
    eprintln!("=== generated client SKIPPED: {what} ===");
}

/// The folder holding the Python client's pinned packages, if installed.
fn python_packages() -> Option<String> {
    let folder = std::env::var("KITH_CLIENTS_PYTHONPATH")
        .ok()
        .filter(|folder| Path::new(folder).join("grpc_status").exists());
    if folder.is_none() {
        skipped(
            "KITH_CLIENTS_PYTHONPATH does not name a folder with clients/python/requirements.txt installed",
        );
    }
    folder
}

/// The built TypeScript client's `dist/`, if built.
fn typescript_build() -> Option<PathBuf> {
    let dist = clients().join("typescript/dist");
    if dist.join("example.js").exists() && dist.join("grpc_web_example.js").exists() {
        Some(dist)
    } else {
        skipped("clients/typescript is not built (npm ci && npm run build there)");
        None
    }
}

/// Runs an example with the server's address and key; its output is shown
/// when it fails.
async fn run(mut command: Command) {
    let output = tokio::task::spawn_blocking(move || command.output().expect("start the example"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the example failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("all steps passed"),
        "the example stopped early:\n{stdout}"
    );
}

async fn the_python_client_example_runs(backend: Backend) {
    let packages = require!(python_packages());
    let app = require!(TestApp::spawn(backend).await);
    let python_path = format!("{}:{packages}", clients().join("python").display());
    let mut command = Command::new("python3");
    command
        .arg(clients().join("python/example.py"))
        .args([app.grpc.to_string(), app.key.clone()])
        .env("PYTHONPATH", python_path);
    run(command).await;
}

/// The same walk through the API over TLS, the channel trusting only the
/// test's CA (TLS is the transport's: SQLite only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_example_runs_over_tls() {
    let packages = require!(python_packages());
    let ca = Authority::new("Kith test CA");
    let files = ServerFiles::new(&ca.server(), None);
    let app = TestApp::builder(Backend::Sqlite)
        .tls(files.tls(), Duration::from_secs(3600))
        .start()
        .await
        .expect("SQLite is always here");
    let dir = tempfile::TempDir::new().unwrap();
    let python_path = format!("{}:{packages}", clients().join("python").display());
    let mut command = Command::new("python3");
    command
        .arg(clients().join("python/example.py"))
        .args([app.grpc.to_string(), app.key.clone()])
        .arg(ca_file(dir.path(), &ca))
        .env("PYTHONPATH", python_path);
    run(command).await;
}

async fn the_typescript_client_example_runs_over_grpc(backend: Backend) {
    let dist = require!(typescript_build());
    let app = require!(TestApp::spawn(backend).await);
    let mut command = Command::new("node");
    command
        .arg(dist.join("example.js"))
        .args([format!("http://{}", app.grpc), app.key.clone()]);
    run(command).await;
}

async fn the_typescript_client_example_runs_over_grpc_web(backend: Backend) {
    let dist = require!(typescript_build());
    let app = require!(TestApp::spawn(backend).await);
    let mut command = Command::new("node");
    command
        .arg(dist.join("grpc_web_example.js"))
        .args([format!("http://{}", app.grpc), app.key.clone()]);
    run(command).await;
}
