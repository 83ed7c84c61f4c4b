//! The official client SDKs, unchanged but for their base URL, against the
//! REST gateway. They are Python packages from PyPI (`tests/sdk/
//! requirements.txt`), installed into the folder `KITH_SDK_PYTHONPATH`
//! names; without it this half is skipped, loudly, unless
//! `KITH_REQUIRE_SDKS=1` (CI), when that is a failure.

use std::io::Write as _;
use std::process::Command;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    polar_python_sdk_manages_customers,
    schematic_python_sdk_manages_users_and_companies,
    stigg_python_sdk_manages_entities,
);

fn sdk_path() -> Option<String> {
    let path = std::env::var("KITH_SDK_PYTHONPATH")
        .ok()
        .filter(|p| !p.is_empty());
    if path.is_none() {
        assert!(
            std::env::var("KITH_REQUIRE_SDKS").map_or(true, |v| v != "1"),
            "KITH_REQUIRE_SDKS=1 but KITH_SDK_PYTHONPATH is not set"
        );
        let _ = writeln!(
            std::io::stderr(),
            "==== SDK tests SKIPPED: set KITH_SDK_PYTHONPATH to a folder with tests/sdk/requirements.txt installed ===="
        );
    }
    path
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
