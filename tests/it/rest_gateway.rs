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
    let seed_paths: Vec<&String> = paths.keys().filter(|p| !p.starts_with("/kith/")).collect();
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
        seed_paths.len(),
        33,
        "every seed path, once, Polar's /v1 copies included: {seed_paths:?}",
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

    // Each family's errors in its own shape, and the ones every route can
    // answer documented on every route.
    let error_of = |path: &str, method: &str, status: &str| {
        paths[path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        error_of("/api/customers/{id}", "patch", "422"),
        "#/components/schemas/RapidlyError"
    );
    assert_eq!(
        error_of("/api/v1-beta/entity-types", "put", "415"),
        "#/components/schemas/StiggError"
    );
    assert_eq!(
        error_of("/users", "get", "401"),
        "#/components/schemas/SchematicError"
    );
    assert_eq!(
        error_of("/api/v1/people", "post", "400"),
        "#/components/schemas/FlameupError",
        "Flameup answers a body that is not JSON with 400"
    );

    // Every kith.v1 method at its binding, from the descriptor set.
    let pool = prost_reflect::DescriptorPool::decode(kith::pb::FILE_DESCRIPTOR_SET).unwrap();
    for service in pool.services().filter(|s| s.package_name() == "kith.v1") {
        for method in service.methods() {
            let id = format!("kith_{}_{}", service.name(), method.name());
            assert!(operation_ids.contains(&id.as_str()), "{id} is documented");
        }
    }
    let get_customer = &paths["/kith/v1/customers/{id}"]["get"];
    assert_eq!(get_customer["parameters"][0]["in"], "path");
    assert_eq!(
        get_customer["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/kith.v1.GetCustomerResponse"
    );
    assert!(
        get_customer["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|parameter| parameter["name"] != "externalId"),
        "the path's id takes its oneof sibling out of the query"
    );
    assert_eq!(
        error_of("/kith/v1/customers/{id}", "get", "404"),
        "#/components/schemas/kith.Error"
    );
    assert!(schemas.contains_key("kith.v1.Customer"));
}
