//! The Rapidly family (seed 003) through the REST gateway: the seed's own
//! PATCH, its response shape, Polar's error bodies, lists, and the `/v1`
//! prefix Polar's SDKs use.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    the_seed_patch_returns_the_documented_customer,
    violations_are_reported_together_in_polar_shape,
    not_found_unauthorized_and_bad_ids_have_their_shapes,
    customers_are_created_listed_and_deleted,
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
        Some(("authorization", &format!("Bearer {}", app.key))),
        body.as_ref(),
    )
    .await
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, created) = call(app, Method::POST, "/api/customers", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn the_seed_patch_returns_the_documented_customer(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let created = create(&app, json!({ "email": "before@example.com" })).await;
    let id = created["id"].as_str().unwrap();
    let seed_body = json!({
        "metadata": {},
        "email": "customer@example.com",
        "name": "John Doe",
        "billing_address": {
            "country": "AD",
            "line1": "<string>",
            "line2": "<string>",
            "postal_code": "<string>",
            "city": "<string>",
            "state": "<string>"
        },
        "external_id": "usr_1337",
        "type": "team"
    });
    let (status, customer) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(seed_body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{customer}");
    let mut fields: Vec<_> = customer.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    let mut expected = vec![
        "id",
        "created_at",
        "modified_at",
        "metadata",
        "external_id",
        "email",
        "email_verified",
        "name",
        "billing_address",
        "workspace_id",
        "deleted_at",
        "avatar_url",
        "type",
        "members",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected, "seed 003's response fields");
    assert_eq!(customer["email"], "customer@example.com");
    assert_eq!(customer["email_verified"], false);
    assert_eq!(customer["external_id"], "usr_1337");
    assert_eq!(customer["type"], "team");
    assert_eq!(customer["billing_address"]["country"], "AD");
    assert_eq!(customer["billing_address"]["state"], "<string>");
    assert_eq!(customer["metadata"], json!({}));
    assert_eq!(customer["members"], json!([]));
    assert!(customer["modified_at"].is_string());
    assert!(customer["deleted_at"].is_null());
    assert!(
        customer["avatar_url"]
            .as_str()
            .unwrap()
            .starts_with("https://www.gravatar.com/avatar/")
    );

    // The same customer through Polar's prefix, and by external id.
    let (status, by_external) =
        call(&app, Method::GET, "/v1/customers/external/usr_1337", None).await;
    assert_eq!(status, StatusCode::OK);
    // Polar's prefix adds the fields Polar's SDKs require, and nothing else changes.
    let mut polar = by_external.as_object().unwrap().clone();
    assert_eq!(
        polar.remove("organization_id"),
        Some(customer["workspace_id"].clone())
    );
    assert_eq!(polar.remove("billing_name"), Some(json!("John Doe")));
    assert_eq!(polar.remove("tax_id"), Some(Value::Null));
    assert_eq!(polar.remove("first_user_event_at"), Some(Value::Null));
    assert_eq!(Value::Object(polar), customer);
    // Absent fields are kept; a null email changes nothing.
    let (_, kept) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(json!({ "email": null })),
    )
    .await;
    assert_eq!(kept["email"], "customer@example.com");
    assert_eq!(kept["name"], "John Doe");
}

async fn violations_are_reported_together_in_polar_shape(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let created = create(&app, json!({ "email": "a@example.com", "external_id": "ext", "type": "team", "billing_address": { "country": "US", "state": "NY" } })).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["billing_address"]["state"], "US-NY");

    let bad = json!({ "email": "not-an-email", "name": "n".repeat(257), "billing_address": { "country": "RU" }, "metadata": { "k": [1] } });
    let (status, reply) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(bad),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["error"], "RequestValidationError");
    let mut locs: Vec<_> = reply["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"].clone())
        .collect();
    locs.sort_by_key(ToString::to_string);
    assert_eq!(
        locs,
        [
            json!(["body", "billing_address", "country"]),
            json!(["body", "email"]),
            json!(["body", "metadata", "k"]),
            json!(["body", "name"]),
        ]
    );
    let email = reply["detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["loc"] == json!(["body", "email"]))
        .unwrap();
    assert_eq!(email["type"], "value_error");
    assert_eq!(
        email["input"], "not-an-email",
        "the offending value is echoed"
    );
    assert!(email["msg"].is_string());

    let transitions = json!({ "external_id": "other", "type": "individual" });
    let (status, reply) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(transitions),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let messages: Vec<_> = reply["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["msg"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        messages.contains(&"Customer external ID cannot be updated.".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages.contains(
            &"Customer type cannot be downgraded from 'team' to 'individual'.".to_owned()
        )
    );
    let (status, reply) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(json!({ "billing_address": null })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply["detail"][0]["msg"],
        "Customer billing address cannot be reset to null once set."
    );

    create(&app, json!({ "email": "taken@example.com" })).await;
    let (status, reply) = call(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        Some(json!({ "email": "TAKEN@example.com" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply["detail"][0]["msg"],
        "A customer with this email address already exists."
    );
    assert_eq!(reply["detail"][0]["loc"], json!(["body", "email"]));

    let (_, unchanged) = call(&app, Method::GET, &format!("/api/customers/{id}"), None).await;
    assert_eq!(unchanged, created, "no refused request wrote anything");
}

async fn not_found_unauthorized_and_bad_ids_have_their_shapes(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let missing = format!("/api/customers/{}", uuid::Uuid::new_v4());
    let (status, reply) = call(&app, Method::GET, &missing, None).await;
    assert_eq!(
        (status, reply),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "ResourceNotFound", "detail": "Not found" })
        )
    );
    let (status, reply) = call(&app, Method::GET, "/api/customers/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["detail"][0]["loc"], json!(["path", "id"]));
    let anonymous = reqwest::get(format!("{}/api/customers", app.rest))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "Unauthorized"
    );
    let malformed = reqwest::Client::new()
        .post(format!("{}/api/customers", app.rest))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        malformed.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "Polar answers bad JSON with 422"
    );
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"],
        "RequestValidationError"
    );
    let other_header = reqwest::Client::new()
        .get(format!("{}/api/customers", app.rest))
        .header("X-API-KEY", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_header.status(),
        StatusCode::UNAUTHORIZED,
        "only this family's header counts"
    );
    let (status, reply) = call(
        &app,
        Method::GET,
        "/api/customers/external/x/nothing-here",
        None,
    )
    .await;
    assert_eq!(
        (status, reply["error"].clone()),
        (StatusCode::NOT_FOUND, json!("ResourceNotFound"))
    );
    let other = app.other_workspace_key().await;
    let created = create(&app, json!({ "email": "mine@example.com" })).await;
    let theirs = reqwest::Client::new()
        .get(format!(
            "{}/api/customers/{}",
            app.rest,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs.status(),
        StatusCode::NOT_FOUND,
        "another workspace's customer is not found"
    );
}

async fn customers_are_created_listed_and_deleted(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    for i in 0..5 {
        create(&app, json!({ "email": format!("c{i}@example.com"), "metadata": { "tier": if i % 2 == 0 { "even" } else { "odd" } } })).await;
    }
    let (status, page) = call(&app, Method::GET, "/api/customers?limit=2&page=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["pagination"],
        json!({ "total_count": 5, "max_page": 3 })
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (_, newest) = call(&app, Method::GET, "/v1/customers/?limit=100", None).await;
    let (_, oldest) = call(
        &app,
        Method::GET,
        "/api/customers?limit=100&sorting=created_at",
        None,
    )
    .await;
    let mut reversed = oldest["items"].as_array().unwrap().clone();
    reversed.reverse();
    assert_eq!(newest["items"].as_array().unwrap().len(), 5);
    let created = |v: &Value| v["created_at"].as_str().unwrap().to_owned();
    assert!(
        newest["items"]
            .as_array()
            .unwrap()
            .windows(2)
            .all(|w| created(&w[0]) >= created(&w[1])),
        "newest first by default"
    );
    let (_, even) = call(
        &app,
        Method::GET,
        "/api/customers?metadata[tier]=even",
        None,
    )
    .await;
    assert_eq!(even["pagination"]["total_count"], 3);
    let (status, bad) = call(&app, Method::GET, "/api/customers?sorting=size", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["detail"][0]["loc"], json!(["query", "sorting"]));

    let (_, one) = call(
        &app,
        Method::GET,
        "/api/customers?email=C1@example.com",
        None,
    )
    .await;
    let id = one["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(&app, Method::DELETE, &format!("/api/customers/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, Method::GET, &format!("/api/customers/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, after) = call(&app, Method::GET, "/api/customers", None).await;
    assert_eq!(after["pagination"]["total_count"], 4);
}
