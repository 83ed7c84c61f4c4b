//! The `kith` command as scripts use it: exact outputs, on both backends.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use kith::domain::workspace::PresentedKey;

use crate::harness::{Backend, TestDb, backend_tests, require};

backend_tests!(
    first_serve_prints_the_bootstrap_key_once,
    workspaces_and_keys_are_managed_from_the_command_line,
);

fn kith(args: &[&str], database_url: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(args)
        .args(["--database-url", database_url])
        .output()
        .expect("run kith");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Starts `kith serve`, waits until it logs that it is serving, stops it,
/// and returns the first line it printed on stdout.
fn first_serve_line(database_url: &str) -> Option<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--no-rest",
            "--log-format",
            "json",
        ])
        .args(["--database-url", database_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kith serve");
    let stdout = child.stdout.take().unwrap();
    let first_line =
        std::thread::spawn(move || BufReader::new(stdout).lines().next().and_then(Result::ok));
    let serving = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(r#""message":"serving""#));
    assert!(serving, "kith serve exited before serving");
    child.kill().unwrap();
    child.wait().unwrap();
    first_line.join().unwrap()
}

async fn first_serve_prints_the_bootstrap_key_once(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let url = db.url.clone();
    let first = tokio::task::spawn_blocking(move || first_serve_line(&url))
        .await
        .unwrap();
    let line = first.expect("the first start prints a line");
    let key = line
        .strip_prefix("API key: ")
        .expect("the line starts with `API key: `");
    let presented = PresentedKey::parse(key).unwrap();
    let service = db.service().await;
    let stored = service.find_api_key(presented.id).await.unwrap().unwrap();
    let workspace = service.find_workspace("default").await.unwrap().unwrap();
    assert_eq!(stored.admit(&presented).unwrap().workspace, workspace.id);

    let url = db.url.clone();
    let second = tokio::task::spawn_blocking(move || first_serve_line(&url))
        .await
        .unwrap();
    assert_eq!(second, None, "a second start prints no key");
}

async fn workspaces_and_keys_are_managed_from_the_command_line(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let (ok, id, _) = kith(&["workspaces", "create", "acme"], &url);
        assert!(ok);
        let id = id.trim();
        assert!(
            uuid::Uuid::try_parse(id).is_ok(),
            "prints the new workspace id: {id}"
        );
        let (ok, _, err) = kith(&["workspaces", "create", "acme"], &url);
        assert!(!ok && err.contains("already exists"), "{err}");

        let (ok, by_name, _) = kith(&["keys", "create", "--workspace", "acme"], &url);
        assert!(ok);
        assert_eq!(by_name.lines().count(), 1, "the key alone on stdout");
        let key = PresentedKey::parse(by_name.trim()).expect("a usable key");
        let (ok, by_id, _) = kith(&["keys", "create", "--workspace", id], &url);
        assert!(ok && by_id.trim().starts_with("kith_"));

        let (ok, listed, _) = kith(&["keys", "list", "--workspace", "acme"], &url);
        assert!(ok);
        assert_eq!(
            listed.lines().count(),
            3,
            "a header and two keys:\n{listed}"
        );
        assert!(listed.contains(&key.id.to_string()));
        assert!(
            !listed.contains(by_name.trim()),
            "keys themselves are never listed"
        );

        let (ok, _, _) = kith(&["keys", "revoke", &key.id.to_string()], &url);
        assert!(ok);
        let (_, listed, _) = kith(&["keys", "list", "--workspace", "acme"], &url);
        let revoked_line = listed
            .lines()
            .find(|l| l.contains(&key.id.to_string()))
            .unwrap();
        assert!(
            !revoked_line.trim_end().ends_with('-'),
            "shows the revocation time: {revoked_line}"
        );

        let (ok, _, err) = kith(&["keys", "create", "--workspace", "nobody"], &url);
        assert!(!ok && err.contains("no workspace"), "{err}");
    })
    .await
    .unwrap();
    // The revoked key no longer opens the workspace.
    let service = db.service().await;
    let keys = service
        .list_api_keys(service.find_workspace("acme").await.unwrap().unwrap().id)
        .await
        .unwrap();
    assert_eq!(keys.iter().filter(|k| k.revoked_at.is_some()).count(), 1);
}

/// A `--cors-origin` that could never match a browser's `Origin` header is
/// refused at start, naming the flag, rather than silently allowing nothing.
#[test]
fn a_cors_origin_with_a_path_is_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(["serve", "--cors-origin", "https://console.example.com/"])
        .args(["--database-url", "sqlite::memory:"])
        .output()
        .expect("run kith");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--cors-origin") && stderr.contains("an origin has no path"),
        "{stderr}"
    );
}

/// TLS flags come as a pair, and files that cannot be read stop the start
/// with the file's name, before any port is taken.
#[test]
fn tls_flags_are_checked_at_start() {
    let serve = |flags: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kith"))
            .args(["serve", "--database-url", "sqlite::memory:"])
            .args(["--grpc-addr", "127.0.0.1:0", "--rest-addr", "127.0.0.1:0"])
            .args(flags)
            .output()
            .expect("run kith");
        assert!(!output.status.success(), "{flags:?} must not start");
        String::from_utf8(output.stderr).unwrap()
    };
    let alone = serve(&["--tls-cert", "server.pem"]);
    assert!(alone.contains("--tls-key"), "{alone}");
    let missing = serve(&[
        "--tls-cert",
        "/nonexistent/server.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert!(
        missing.contains("/nonexistent/server.pem") && missing.contains("TLS"),
        "{missing}"
    );
}
