//! The Schematic family (seed 001) through the REST gateway: the seed's
//! upsert, the documented user object, `{"data","params"}` envelopes,
//! `{"error": "…"}` errors, lookups by `keys[k]=v`, counts and memberships.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    the_seed_upsert_returns_the_documented_user,
    users_are_looked_up_listed_counted_and_deleted,
    companies_traits_and_memberships,
);

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.rest_json(
        method,
        path,
        Some(("X-Schematic-Api-Key", &app.key)),
        body.as_ref(),
    )
    .await
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

async fn the_seed_upsert_returns_the_documented_user(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    // The seed's SDK snippet sends `{}`: keys are required.
    let (status, reply) = call(&app, Method::POST, "/users", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reply["error"].as_str().unwrap().contains("keys"), "{reply}");

    let body = json!({
        "keys": { "email": "jane.doe@example.com" },
        "name": "Jane Doe",
        "traits": { "is_admin": true },
        "company": { "domain": "acme.com" },
        "last_seen_at": "2024-04-10T12:00:00Z"
    });
    let (status, reply) = call(&app, Method::POST, "/users", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["params"], json!({}));
    let user = &reply["data"];
    assert_eq!(
        sorted_keys(user),
        [
            "company_memberships",
            "created_at",
            "entity_traits",
            "environment_id",
            "id",
            "keys",
            "last_seen_at",
            "name",
            "traits",
            "updated_at"
        ]
    );
    assert_eq!(user["name"], "Jane Doe");
    assert_eq!(user["last_seen_at"], "2024-04-10T12:00:00.000Z");
    assert_eq!(user["traits"], json!({ "is_admin": true }));
    let key = &user["keys"][0];
    assert_eq!(
        sorted_keys(key),
        [
            "created_at",
            "definition",
            "definition_id",
            "entity_id",
            "entity_type",
            "environment_id",
            "id",
            "key",
            "updated_at",
            "value"
        ]
    );
    assert_eq!(
        (key["key"].clone(), key["value"].clone()),
        (json!("email"), json!("jane.doe@example.com"))
    );
    let entity_trait = &user["entity_traits"][0];
    assert_eq!(
        entity_trait["value"], "true",
        "trait values are strings here"
    );
    assert_eq!(entity_trait["definition"]["trait_type"], "boolean");
    assert_eq!(
        sorted_keys(&entity_trait["definition"]),
        [
            "created_at",
            "display_name",
            "entity_type",
            "hierarchy",
            "id",
            "trait_type",
            "updated_at"
        ]
    );
    let membership = &user["company_memberships"][0];
    assert_eq!(
        sorted_keys(membership),
        [
            "company",
            "company_id",
            "created_at",
            "id",
            "updated_at",
            "user_id"
        ]
    );
    let company = &membership["company"];
    for field in [
        "created_at",
        "environment_id",
        "id",
        "name",
        "updated_at",
        "last_seen_at",
        "logo_url",
    ] {
        assert!(company.get(field).is_some(), "company.{field}");
    }
    assert_eq!(membership["user_id"], user["id"]);

    let (status, created) = call(
        &app,
        Method::POST,
        "/users/create",
        Some(json!({ "keys": { "email": "new@example.com" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["data"]["keys"][0]["value"], "new@example.com");
    let anonymous = reqwest::Client::new()
        .get(format!("{}/users", app.rest))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.json::<Value>().await.unwrap()["error"].is_string());
}

async fn users_are_looked_up_listed_counted_and_deleted(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    for i in 0..3 {
        call(
            &app,
            Method::POST,
            "/users",
            Some(json!({ "keys": { "email": format!("u{i}@example.com") } })),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (status, found) = call(
        &app,
        Method::GET,
        "/users/lookup?keys[email]=u1@example.com",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = found["data"]["id"].as_str().unwrap().to_owned();
    let (status, missing) = call(
        &app,
        Method::GET,
        "/users/lookup?keys[email]=nobody@example.com",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing["error"].is_string());

    let (_, list) = call(&app, Method::GET, "/users?limit=2", None).await;
    let emails: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["keys"][0]["value"].clone())
        .collect();
    assert_eq!(
        emails,
        [json!("u2@example.com"), json!("u1@example.com")],
        "newest first"
    );
    let (_, rest) = call(&app, Method::GET, "/users?limit=2&offset=2", None).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    let (_, count) = call(&app, Method::GET, "/users/count", None).await;
    assert_eq!(count["data"]["count"], 3);

    let (status, two_users) = call(
        &app,
        Method::POST,
        "/users",
        Some(json!({ "keys": { "email": "u0@example.com", "user_id": "x" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{two_users}");
    let (status, clash) = call(
        &app,
        Method::POST,
        "/users",
        Some(json!({ "keys": { "email": "u2@example.com", "user_id": "x" } })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "keys of two users: {clash}"
    );

    let (status, deleted) = call(&app, Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(
        (status, deleted["data"].clone()),
        (StatusCode::OK, json!({ "deleted": true }))
    );
    let (status, by_keys) = call(
        &app,
        Method::POST,
        "/users/delete",
        Some(json!({ "keys": { "email": "u2@example.com" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_keys["data"]["keys"][0]["value"], "u2@example.com");
    let (_, count) = call(&app, Method::GET, "/users/count", None).await;
    assert_eq!(count["data"]["count"], 1);
}

async fn companies_traits_and_memberships(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (status, company) = call(
        &app,
        Method::POST,
        "/companies",
        Some(json!({ "keys": { "domain": "acme.com" }, "name": "Acme" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{company}");
    let company_id = company["data"]["id"].as_str().unwrap().to_owned();
    let (_, looked_up) = call(
        &app,
        Method::GET,
        "/companies/lookup?keys[domain]=acme.com",
        None,
    )
    .await;
    assert_eq!(looked_up["data"]["id"], company_id);
    let (_, by_id) = call(&app, Method::GET, &format!("/companies/{company_id}"), None).await;
    assert_eq!(by_id["data"]["name"], "Acme");
    let (_, traited) = call(
        &app,
        Method::POST,
        "/company-traits",
        Some(json!({ "keys": { "domain": "acme.com" }, "trait": "seats", "incr": 3 })),
    )
    .await;
    assert_eq!(traited["data"]["traits"], json!({ "seats": 3 }));

    let (_, user) = call(
        &app,
        Method::POST,
        "/users",
        Some(json!({ "keys": { "email": "m@acme.com" } })),
    )
    .await;
    let user_id = user["data"]["id"].as_str().unwrap().to_owned();
    let (_, counted) = call(
        &app,
        Method::POST,
        "/user-traits",
        Some(json!({ "keys": { "email": "m@acme.com" }, "trait": "logins", "incr": 2 })),
    )
    .await;
    assert_eq!(counted["data"]["traits"], json!({ "logins": 2 }));
    let (status, membership) = call(
        &app,
        Method::POST,
        "/company-memberships",
        Some(json!({ "company_id": company_id, "user_id": user_id })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{membership}");
    let membership_id = membership["data"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = call(
        &app,
        Method::GET,
        &format!("/company-memberships?company_id={company_id}"),
        None,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let (_, members) = call(
        &app,
        Method::GET,
        &format!("/users?company_id={company_id}"),
        None,
    )
    .await;
    assert_eq!(members["data"][0]["id"], user_id);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/company-memberships/{membership_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (_, count) = call(&app, Method::GET, "/companies/count", None).await;
    assert_eq!(count["data"]["count"], 1);
    let (_, companies) = call(&app, Method::GET, "/companies", None).await;
    assert_eq!(companies["data"][0]["id"], company_id);
    let (status, _) = call(
        &app,
        Method::POST,
        "/companies/delete",
        Some(json!({ "keys": { "domain": "acme.com" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, Method::GET, &format!("/companies/{company_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
