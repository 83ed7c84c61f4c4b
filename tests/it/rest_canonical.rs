//! The contract's own REST routes: every binding of every method served
//! from the descriptor set, the proto3 JSON mapping both ways, AIP-193
//! errors, the change log as JSON pages and as an NDJSON stream, and an
//! NDJSON import.

use std::time::Duration;

use prost_reflect::{DescriptorPool, Value as Reflected};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    every_binding_of_every_method_reaches_its_method,
    json_mapping_round_trips_and_binds_path_query_and_body,
    errors_are_aip_193_with_their_details,
    the_change_log_pages_as_json_and_streams_as_ndjson,
    an_import_reads_one_message_per_line,
    the_documented_rules_are_the_rules_kept,
);

impl TestApp {
    fn bearer(&self) -> (&'static str, String) {
        ("authorization", format!("Bearer {}", self.key))
    }

    async fn kith(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let (header, value) = self.bearer();
        self.rest_json(method, path, Some((header, &value)), body)
            .await
    }
}

/// Every `(HTTP method, path template, gRPC method)` the contract declares.
fn declared_bindings() -> Vec<(Method, String, String)> {
    let pool = DescriptorPool::decode(kith::pb::FILE_DESCRIPTOR_SET).unwrap();
    let http = pool.get_extension_by_name("google.api.http").unwrap();
    let mut bindings = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == "kith.v1") {
        for method in service.methods() {
            let options = method.options();
            let Reflected::Message(rule) = options.get_extension(&http).into_owned() else {
                panic!("{} has no rule", method.full_name());
            };
            let mut rules = vec![rule.clone()];
            if let Some(Reflected::List(more)) = rule
                .get_field_by_name("additional_bindings")
                .map(std::borrow::Cow::into_owned)
            {
                rules.extend(more.into_iter().filter_map(|r| match r {
                    Reflected::Message(r) => Some(r),
                    _ => None,
                }));
            }
            for rule in rules {
                for (verb, method_name) in [
                    ("get", Method::GET),
                    ("post", Method::POST),
                    ("patch", Method::PATCH),
                    ("put", Method::PUT),
                    ("delete", Method::DELETE),
                ] {
                    if rule.has_field_by_name(verb)
                        && let Some(Reflected::String(path)) =
                            rule.get_field_by_name(verb).as_deref()
                    {
                        bindings.push((method_name, path.clone(), method.full_name().to_owned()));
                    }
                }
            }
        }
    }
    bindings
}

/// Each binding, its variables filled with a value no record has, called
/// with an empty body: the answer comes from the method itself (a result,
/// or an error the service gave with its ErrorInfo), never from routing.
async fn every_binding_of_every_method_reaches_its_method(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let bindings = declared_bindings();
    assert!(
        bindings.len() >= 40,
        "the contract's bindings: {}",
        bindings.len()
    );
    let client = reqwest::Client::new();
    let (header, value) = app.bearer();
    for (verb, template, method) in &bindings {
        assert!(
            template.starts_with("/kith/v1/"),
            "{template}: under the project's prefix"
        );
        let path: String = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    // Keep a verb after the variable, if any.
                    segment
                        .split_once('}')
                        .map_or(String::new(), |(_, rest)| format!("nobody{rest}"))
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let mut request = client
            .request(verb.clone(), format!("{}{path}", app.rest))
            .header(header, &value);
        if *verb != Method::GET && *verb != Method::DELETE {
            request = request
                .header("content-type", "application/json")
                .body("{}");
        }
        let response = tokio::time::timeout(Duration::from_secs(10), request.send())
            .await
            .expect("an answer")
            .unwrap();
        let status = response.status();
        let streaming = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.to_str().unwrap().contains("ndjson"));
        let body: Value = if streaming {
            // A stream: its first line is enough.
            let mut response = response;
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .expect("a first line")
                .unwrap()
                .unwrap();
            let line = chunk.split(|b| *b == b'\n').next().unwrap();
            serde_json::from_slice(line).unwrap()
        } else {
            response.json().await.unwrap()
        };
        if let Some(error) = body.get("error") {
            let reached = error["details"]
                .as_array()
                .is_some_and(|details| details.iter().any(|d| d["domain"] == "kith"));
            assert!(
                reached,
                "{verb} {template} ({method}) was answered by the router: {status} {body}"
            );
        } else {
            assert!(status.is_success(), "{verb} {template}: {status} {body}");
        }
    }
}

async fn json_mapping_round_trips_and_binds_path_query_and_body(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    // The body of a `body: "customer"` binding is the field's message.
    let (status, created) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({
                "email": "ada@example.com",
                "externalId": "ada-1",
                "name": "Ada",
                "metadata": { "seats": { "intValue": "3" } },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let customer = &created["customer"];
    assert_eq!(customer["externalId"], "ada-1", "lowerCamel names");
    assert_eq!(
        customer["type"], "CUSTOMER_TYPE_INDIVIDUAL",
        "enums by name"
    );
    assert_eq!(
        customer["metadata"]["seats"]["intValue"], "3",
        "int64 as a string"
    );
    assert!(
        customer["createdAt"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 timestamps"
    );
    assert!(customer.get("deletedAt").is_none(), "unset fields left out");
    let id = customer["id"].as_str().unwrap();

    // A path variable, and an additional binding to another oneof member.
    let (_, by_id) = app
        .kith(Method::GET, &format!("/kith/v1/customers/{id}"), None)
        .await;
    let (_, by_external) = app
        .kith(Method::GET, "/kith/v1/customers/external/ada-1", None)
        .await;
    assert_eq!(by_id["customer"], *customer);
    assert_eq!(by_external["customer"], *customer);

    // A FieldMask as a query parameter, beside a body field.
    let (status, patched) = app
        .kith(
            Method::PATCH,
            &format!("/kith/v1/customers/{id}?update_mask=name"),
            Some(&json!({ "name": "Ada L.", "email": "ignored@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["customer"]["name"], "Ada L.");
    assert_eq!(
        patched["customer"]["email"], "ada@example.com",
        "only the masked field"
    );

    // Query parameters: an int32 page size in either spelling, a repeated
    // enum, a nested field and a map entry.
    for _ in 0..3 {
        app.kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({ "email": format!("{}@example.com", uuid::Uuid::new_v4()) })),
        )
        .await;
    }
    let (_, page) = app
        .kith(Method::GET, "/kith/v1/customers?pageSize=2", None)
        .await;
    assert_eq!(page["customers"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, next) = app
        .kith(
            Method::GET,
            &format!("/kith/v1/customers?page_size=2&page_token={token}"),
            None,
        )
        .await;
    assert_eq!(next["customers"].as_array().unwrap().len(), 2);
    let (_, changes) = app
        .kith(
            Method::GET,
            &format!("/kith/v1/changes?filter.kinds=CHANGE_KIND_CUSTOMER&filter.record_id={id}"),
            None,
        )
        .await;
    let kinds: Vec<&Value> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["kind"])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!("CHANGE_KIND_CUSTOMER"),
            &json!("CHANGE_KIND_CUSTOMER")
        ]
    );
    let (status, user) = app
        .kith(
            Method::POST,
            "/kith/v1/users:upsert",
            Some(&json!({ "keys": { "email": "u@example.com" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let (status, found) = app
        .kith(
            Method::GET,
            "/kith/v1/users:lookup?keys[email]=u@example.com",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["user"]["id"], user["user"]["id"]);
}

async fn errors_are_aip_193_with_their_details(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (status, body) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({ "email": "not an email" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = &body["error"];
    assert_eq!(error["code"], 400);
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    let details = error["details"].as_array().unwrap();
    assert_eq!(
        details[0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    assert_eq!(details[0]["reason"], "ERROR_REASON_INVALID_FIELD");
    assert_eq!(
        details[1]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(details[1]["fieldViolations"][0]["field"], "email");

    let nobody = format!("/kith/v1/customers/{}", uuid::Uuid::new_v4());
    let (status, body) = app.kith(Method::GET, &nobody, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["details"][0]["metadata"]["resource"],
        "customer"
    );

    let (status, body) = app
        .rest_json(Method::GET, "/kith/v1/customers", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    let (status, body) = app
        .kith(Method::GET, "/kith/v1/changes?cursor=tampered", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["details"][1]["fieldViolations"][0]["field"],
        "cursor"
    );

    // What routing refuses, in the same shape.
    let (status, body) = app.kith(Method::PUT, "/kith/v1/customers", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], 405);
    let refused = reqwest::Client::new()
        .put(format!("{}/kith/v1/customers", app.rest))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let allow = refused.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "a 405 names the path's methods: {allow}"
    );
    let (status, body) = app.kith(Method::GET, "/kith/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let (status, body) = app
        .kith(Method::GET, "/kith/v1/customers?bogus=1", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["details"][1]["fieldViolations"][0]["field"],
        "bogus"
    );
    let (status, body) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({ "email": 7 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["details"][1]["fieldViolations"][0]["field"],
        "body"
    );
}

async fn the_change_log_pages_as_json_and_streams_as_ndjson(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    for i in 0..5 {
        app.kith(
            Method::POST,
            "/kith/v1/people:upsert",
            Some(&json!({ "person": { "userId": format!("p{i}") } })),
        )
        .await;
    }
    // Pages of two, resumed by cursor, until an empty page.
    let mut seqs = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .kith(
                Method::GET,
                &format!("/kith/v1/changes?page_size=2&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let changes = page["changes"].as_array().cloned().unwrap_or_default();
        if changes.is_empty() {
            break;
        }
        seqs.extend(
            changes
                .iter()
                .map(|c| c["seq"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        assert!(
            changes
                .iter()
                .all(|c| c["person"]["externalId"].is_string())
        );
        cursor = page["nextCursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    // A watch from that cursor: a checkpoint line, then the next write.
    let (header, value) = app.bearer();
    let mut stream = reqwest::Client::new()
        .get(format!(
            "{}/kith/v1/changes:watch?cursor={cursor}",
            app.rest
        ))
        .header(header, &value)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "application/x-ndjson");
    let mut lines = String::new();
    let mut next_line = async || -> Value {
        loop {
            if let Some((line, rest)) = lines.split_once('\n') {
                let value = serde_json::from_str(line).unwrap();
                lines = rest.to_owned();
                return value;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await
                .expect("a line within 10 s")
                .unwrap()
                .expect("the stream goes on");
            lines.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let checkpoint = next_line().await;
    assert!(checkpoint.get("changes").is_none(), "{checkpoint}");
    app.kith(
        Method::POST,
        "/kith/v1/people:upsert",
        Some(&json!({ "person": { "userId": "later" } })),
    )
    .await;
    let message = next_line().await;
    assert_eq!(message["changes"][0]["seq"], "6");
    assert_eq!(message["changes"][0]["person"]["externalId"], "later");
}

async fn an_import_reads_one_message_per_line(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (header, value) = app.bearer();
    let body = "{\"people\":[{\"userId\":\"i1\"}]}\n\n{\"people\":[{\"userId\":\"i2\"},{\"userId\":\"i3\"}]}\n";
    let response = reqwest::Client::new()
        .post(format!("{}/kith/v1/people:import", app.rest))
        .header(header, &value)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["createdCount"], "3");
    assert_eq!(reply["receivedCount"], "3");
    let response = reqwest::Client::new()
        .post(format!("{}/kith/v1/people:import", app.rest))
        .header(header, &value)
        .body("{\"people\":[{\"userId\":\"i4\"}]}\nnot json\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "a bad line refuses the stream"
    );
    let (_, listed) = app
        .kith(Method::GET, "/kith/v1/people?page_size=10", None)
        .await;
    assert_eq!(
        listed["people"].as_array().unwrap().len(),
        3,
        "nothing of a refused import"
    );
}

/// The first number `key` holds anywhere in `schema` (a bound, inside its
/// `anyOf` with `null`).
fn bound(schema: &Value, key: &str) -> Option<u64> {
    match schema {
        Value::Object(object) => object
            .get(key)
            .and_then(Value::as_u64)
            .or_else(|| object.values().find_map(|inner| bound(inner, key))),
        Value::Array(items) => items.iter().find_map(|inner| bound(inner, key)),
        _ => None,
    }
}

fn violated_field(body: &Value) -> &str {
    body["error"]["details"][1]["fieldViolations"][0]["field"]
        .as_str()
        .unwrap_or_default()
}

/// What `proto/kith/v1/rules.proto` lets the contract declare is what the
/// domain keeps: a value at a bound `/openapi.json` documents is taken, one
/// past it refused with its field named; a oneof that must be set, a
/// REQUIRED body, a field the message lacks are refused as documented.
async fn the_documented_rules_are_the_rules_kept(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let document: Value = reqwest::get(format!("{}/openapi.json", app.rest))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &document["components"]["schemas"];
    let customer = &schemas["kith.v1.Customer"];
    assert_eq!(customer["additionalProperties"], false);

    let longest_name = bound(&customer["properties"]["name"], "maxLength").unwrap();
    let name = |chars: u64| "n".repeat(usize::try_from(chars).unwrap());
    let (status, _) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({"email": "ada@example.com", "name": name(longest_name)})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a name of {longest_name} characters"
    );
    let (status, body) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({"email": "bob@example.com", "name": name(longest_name + 1)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(violated_field(&body), "name");

    let batch = &document["paths"]["/kith/v1/people:batchUpsert"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["people"];
    let (fewest, most) = (
        bound(batch, "minItems").unwrap(),
        bound(batch, "maxItems").unwrap(),
    );
    let people = |count: u64| -> Value {
        let people: Vec<Value> = (0..count)
            .map(|i| json!({"userId": format!("user-{i}")}))
            .collect();
        json!({ "people": people })
    };
    for (count, expected) in [
        (fewest, StatusCode::OK),
        (most, StatusCode::OK),
        (fewest - 1, StatusCode::BAD_REQUEST),
        (most + 1, StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = app
            .kith(
                Method::POST,
                "/kith/v1/people:batchUpsert",
                Some(&people(count)),
            )
            .await;
        assert_eq!(status, expected, "a batch of {count}: {body}");
    }

    let changes = document["paths"]["/kith/v1/changes"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let page_size = changes
        .iter()
        .find(|parameter| parameter["name"] == "pageSize")
        .unwrap();
    let largest = bound(&page_size["schema"], "maximum").unwrap();
    let page = |size: u64| format!("/kith/v1/changes?pageSize={size}");
    assert_eq!(
        app.kith(Method::GET, &page(largest), None).await.0,
        StatusCode::OK
    );
    let (status, body) = app.kith(Method::GET, &page(largest + 1), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(violated_field(&body), "page_size");

    // A metadata value names its kind: the oneof must be set.
    let metadata_value = schemas["kith.v1.MetadataValue"].to_string();
    assert!(metadata_value.contains("oneOf"), "{metadata_value}");
    let (status, _) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({"email": "cy@example.com", "metadata": {"plan": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An update's customer is REQUIRED: `null` is no customer.
    let id = uuid::Uuid::new_v4();
    let (status, body) = app
        .kith(
            Method::PATCH,
            &format!("/kith/v1/customers/{id}"),
            Some(&Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(violated_field(&body), "customer");

    let (status, body) = app
        .kith(
            Method::POST,
            "/kith/v1/customers",
            Some(&json!({"email": "dee@example.com", "nickname": "D"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An enum in the query by number, as the mapping reads it in a body.
    let (status, body) = app
        .kith(Method::GET, "/kith/v1/people?status=3", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
