//! The Stigg family (seed 000) through the REST gateway: the seed's own
//! upsert, camelCase `{"data": …}` bodies, both type field names, cursor
//! pages, archive, entity types and `{"error":{"code","message"}}`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    the_seed_upsert_returns_the_documented_entities,
    errors_have_the_stigg_shape,
    entities_page_by_record_cursors_and_archive,
);

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.rest_json(method, path, Some(("X-API-KEY", &app.key)), body.as_ref())
        .await
}

/// A customer whose Stigg id (external id) is `owner`, and the `user` type.
async fn setup(app: &TestApp, owner: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/customers", app.rest))
        .bearer_auth(&app.key)
        .json(&json!({ "email": format!("{owner}@example.com"), "external_id": owner }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, types) = call(app, Method::PUT, "/api/v1-beta/entity-types", Some(json!({ "types": [{ "id": "user", "displayName": "User", "attributionKeys": ["email"] }] }))).await;
    assert_eq!(status, StatusCode::OK, "{types}");
}

async fn the_seed_upsert_returns_the_documented_entities(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    setup(&app, "acme").await;
    let seed = json!({
        "entities": [
            { "id": "user-7f3a0c1d", "typeRefId": "user", "metadata": { "email": "jane@acme.com", "role": "admin" } },
            { "id": "user-c4d1b2e9", "typeRefId": "user", "metadata": { "email": "john@acme.com" } }
        ]
    });
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/acme/entities",
        Some(seed),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let first = &data[0];
    assert_eq!(first["id"], "user-7f3a0c1d");
    assert_eq!(first["typeId"], "user");
    assert_eq!(first["entityTypeId"], "user", "the current SDKs' name too");
    assert_eq!(
        first["metadata"],
        json!({ "email": "jane@acme.com", "role": "admin" })
    );
    assert!(first["archivedAt"].is_null());
    let created_at = first["createdAt"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );
    let mut fields: Vec<_> = first.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "archivedAt",
            "createdAt",
            "entityTypeId",
            "id",
            "metadata",
            "typeId",
            "updatedAt"
        ]
    );

    // `entityTypeId` is accepted as the type on input too.
    let aliased = json!({ "entities": [{ "id": "user-new", "entityTypeId": "user" }] });
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/acme/entities",
        Some(aliased),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, one) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities/user-7f3a0c1d",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"], *first);
}

async fn errors_have_the_stigg_shape(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    setup(&app, "acme").await;
    let anonymous = reqwest::Client::new()
        .get(format!("{}/api/v1-beta/customers/acme/entities", app.rest))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap(),
        json!({ "error": { "code": "UNAUTHENTICATED", "message": "Invalid or missing API key" } })
    );
    let bearer = reqwest::Client::new()
        .get(format!("{}/api/v1-beta/customers/acme/entities", app.rest))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer.status(),
        StatusCode::UNAUTHORIZED,
        "Stigg's key header is X-API-KEY"
    );
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/acme/entities",
        Some(json!({ "entities": "many" })),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("BAD_REQUEST"))
    );
    let (status, reply) = call(&app, Method::GET, "/api/v1-beta/nothing-here", None).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND"))
    );
    let mut entities: Vec<Value> = (0..100)
        .map(|i| json!({ "id": format!("e{i}"), "typeRefId": "user" }))
        .collect();
    entities[57]["id"] = json!("jane@acme.com");
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/acme/entities",
        Some(json!({ "entities": entities })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["code"], "BAD_REQUEST");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entities[57].id"),
        "{reply}"
    );
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/acme/entities",
        Some(json!({ "entities": [{ "id": "e" }] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entities[0].typeRefId"),
        "{reply}"
    );
    let (status, reply) = call(
        &app,
        Method::PUT,
        "/api/v1-beta/customers/nobody/entities",
        Some(json!({ "entities": [{ "id": "e", "typeRefId": "user" }] })),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND"))
    );
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities?limit=0",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let malformed = reqwest::Client::new()
        .put(format!("{}/api/v1-beta/customers/acme/entities", app.rest))
        .header("X-API-KEY", &app.key)
        .header("content-type", "application/json")
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"]["code"],
        "BAD_REQUEST"
    );
}

async fn entities_page_by_record_cursors_and_archive(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    setup(&app, "acme").await;
    for i in 0..5 {
        // One batch per entity, so their creation order is known.
        let body = json!({ "entities": [{ "id": format!("e{i}"), "typeRefId": "user" }] });
        call(
            &app,
            Method::PUT,
            "/api/v1-beta/customers/acme/entities",
            Some(body),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let ids = |page: &Value| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, first) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities?limit=2",
        None,
    )
    .await;
    assert_eq!(ids(&first), ["e0", "e1"]);
    assert!(first["pagination"]["prev"].is_null());
    let next = first["pagination"]["next"].as_str().unwrap();
    let (_, second) = call(
        &app,
        Method::GET,
        &format!("/api/v1-beta/customers/acme/entities?limit=2&after={next}"),
        None,
    )
    .await;
    assert_eq!(ids(&second), ["e2", "e3"]);
    let prev = second["pagination"]["prev"].as_str().unwrap();
    let (_, back) = call(
        &app,
        Method::GET,
        &format!("/api/v1-beta/customers/acme/entities?limit=2&before={prev}"),
        None,
    )
    .await;
    assert_eq!(ids(&back), ["e0", "e1"], "before pages backwards");

    let (status, archived) = call(
        &app,
        Method::POST,
        "/api/v1-beta/customers/acme/entities/archive",
        Some(json!({ "ids": ["e0"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(archived, json!({ "data": { "ids": ["e0"] } }));
    let (_, live) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities?limit=100",
        None,
    )
    .await;
    assert_eq!(ids(&live).len(), 4);
    let (_, all) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities?limit=100&includeArchived=true",
        None,
    )
    .await;
    assert_eq!(ids(&all).len(), 5);
    call(
        &app,
        Method::POST,
        "/api/v1-beta/customers/acme/entities/unarchive",
        Some(json!({ "ids": ["e0"] })),
    )
    .await;
    let (_, live) = call(
        &app,
        Method::GET,
        "/api/v1-beta/customers/acme/entities?limit=100&entityTypeId=user",
        None,
    )
    .await;
    assert_eq!(ids(&live).len(), 5);
    let (_, types) = call(&app, Method::GET, "/api/v1-beta/entity-types", None).await;
    assert_eq!(types["data"][0]["attributionKeys"], json!(["email"]));
}
