//! What the gateway serves beside the families: its health and its OpenAPI
//! document.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    health_answers_without_a_key,
    the_openapi_document_covers_every_family
);

async fn health_answers_without_a_key(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let response = reqwest::get(format!("{}/healthz", app.rest)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok");
}

async fn the_openapi_document_covers_every_family(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let response = reqwest::get(format!("{}/openapi.json", app.rest))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/customers/{id}", "patch"),
        ("/v1/customers", "get"),
        ("/api/v1-beta/customers/{customer_id}/entities", "put"),
        ("/users", "post"),
        ("/users/lookup", "get"),
        ("/api/v1/workspaces/{workspace_id}/people/batch", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
    assert_eq!(
        paths.len(),
        33,
        "every path, once, Polar's /v1 copies included: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    let mut operation_ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operation ids are unique");
    assert!(paths["/v1/customers/{id}"]["patch"].is_object());
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "CustomerView",
        "EntityView",
        "UserView",
        "PersonView",
        "BatchView",
    ] {
        assert!(schemas.contains_key(schema), "{schema} is described");
    }
    let batch = &paths["/api/v1/workspaces/{workspace_id}/people/batch"]["post"];
    assert!(batch["responses"]["200"].is_object() && batch["responses"]["422"].is_object());
}
