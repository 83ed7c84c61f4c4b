//! The official client SDKs, unchanged but for their base URL, against the
//! REST gateway. The Python ones come from PyPI (`tests/sdk/requirements.txt`)
//! installed into the folder `KITH_SDK_PYTHONPATH` names; the TypeScript ones
//! from npm (`tests/sdk/package.json`) installed into `tests/sdk/node_modules`.
//! Without them these tests are skipped, loudly, unless `KITH_REQUIRE_SDKS=1`
//! (CI), when that is a failure.

use std::io::Write as _;
use std::process::Command;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    polar_python_sdk_manages_customers,
    schematic_python_sdk_manages_users_and_companies,
    stigg_python_sdk_manages_entities,
    polar_typescript_sdk_manages_customers,
    schematic_typescript_sdk_manages_users_and_companies,
);

fn skipped(what: &str) {
    assert!(
        std::env::var("KITH_REQUIRE_SDKS").map_or(true, |v| v != "1"),
        "KITH_REQUIRE_SDKS=1 but {what}"
    );
    // Straight to stderr: libtest captures print macros, not this.
    let _ = writeln!(std::io::stderr(), "==== SDK test SKIPPED: {what} ====");
}

fn sdk_path() -> Option<String> {
    let path = std::env::var("KITH_SDK_PYTHONPATH")
        .ok()
        .filter(|p| !p.is_empty());
    if path.is_none() {
        skipped(
            "KITH_SDK_PYTHONPATH does not name a folder with tests/sdk/requirements.txt installed",
        );
    }
    path
}

/// The folder whose `node_modules` holds the TypeScript SDKs, if installed.
fn node_sdks() -> Option<String> {
    let dir = format!("{}/tests/sdk", env!("CARGO_MANIFEST_DIR"));
    if std::path::Path::new(&dir)
        .join("node_modules/@polar-sh/sdk")
        .exists()
    {
        Some(dir)
    } else {
        skipped("tests/sdk/node_modules is missing (npm install --prefix tests/sdk)");
        None
    }
}

async fn run_node(app: &TestApp, script: &str, dir: String) {
    let script = format!("{dir}/{script}");
    let (base, key) = (app.rest.clone(), app.key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([&base, &key])
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the SDK script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn polar_typescript_sdk_manages_customers(backend: Backend) {
    let dir = require!(node_sdks());
    let app = require!(TestApp::spawn(backend).await);
    run_node(&app, "polar_typescript.mjs", dir).await;
}

async fn schematic_typescript_sdk_manages_users_and_companies(backend: Backend) {
    let dir = require!(node_sdks());
    let app = require!(TestApp::spawn(backend).await);
    run_node(&app, "schematic_typescript.mjs", dir).await;
}

async fn run_script(app: &TestApp, script: &str, python_path: String) {
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let (base, key) = (app.rest.clone(), app.key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([&base, &key])
            .env("PYTHONPATH", python_path)
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the SDK script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn polar_python_sdk_manages_customers(backend: Backend) {
    let python_path = require!(sdk_path());
    let app = require!(TestApp::spawn(backend).await);
    run_script(&app, "polar_python.py", python_path).await;
}

async fn schematic_python_sdk_manages_users_and_companies(backend: Backend) {
    let python_path = require!(sdk_path());
    let app = require!(TestApp::spawn(backend).await);
    run_script(&app, "schematic_python.py", python_path).await;
}

async fn stigg_python_sdk_manages_entities(backend: Backend) {
    let python_path = require!(sdk_path());
    let app = require!(TestApp::spawn(backend).await);
    let client = reqwest::Client::new();
    let customer = client
        .post(format!("{}/api/customers", app.rest))
        .bearer_auth(&app.key)
        .json(&serde_json::json!({ "email": "billing@acme.com", "external_id": "acme" }))
        .send()
        .await
        .unwrap();
    assert!(customer.status().is_success());
    let types = client
        .put(format!("{}/api/v1-beta/entity-types", app.rest))
        .header("X-API-KEY", &app.key)
        .json(&serde_json::json!({ "types": [{ "id": "user", "displayName": "User" }] }))
        .send()
        .await
        .unwrap();
    assert!(types.status().is_success());
    run_script(&app, "stigg_python.py", python_path).await;
}
