//! The rules that moved out of the transports, each through every
//! transport that serves it, and the races that used to span two
//! transactions: each write is now one.

use std::collections::HashMap;

use kith::pb::kith::v1::{
    self as pb, AddCustomerMemberRequest, CreateCustomerRequest, GetCustomerRequest,
    ListCompanyMembershipsRequest, ListCustomerMembersRequest, MemberRole,
    RemoveCustomerMemberRequest, UpdateCustomerMemberRequest, UpdateCustomerRequest,
    UpsertUserRequest, get_customer_request, update_customer_request,
};
use prost_types::FieldMask;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::grpc_support::assert_error;
use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    an_update_by_external_id_changes_neither_it_nor_the_type_on_either_transport,
    racing_creates_of_one_person_make_one_person_and_one_201,
    an_update_racing_a_delete_never_brings_the_person_back,
    a_removed_member_stays_removed_when_a_role_change_races_the_removal,
    listing_memberships_needs_a_company_or_a_user_on_either_transport,
    error_paths_keep_map_keys_as_sent_in_every_family,
    each_family_sizes_pages_by_its_own_rule,
    every_response_carries_its_request_id,
);

fn bearer(app: &TestApp) -> String {
    format!("Bearer {}", app.key)
}

async fn rapidly(app: &TestApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    app.rest_json(
        method,
        path,
        Some(("authorization", &bearer(app))),
        Some(&body),
    )
    .await
}

async fn an_update_by_external_id_changes_neither_it_nor_the_type_on_either_transport(
    backend: Backend,
) {
    let app = require!(TestApp::spawn(backend).await);
    let (status, created) = rapidly(
        &app,
        Method::POST,
        "/api/customers",
        json!({ "email": "fixed@example.com", "external_id": "fixed" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // REST: naming either field at all is refused, even as null.
    for body in [
        json!({ "type": "team", "name": "Renamed" }),
        json!({ "external_id": "other" }),
        json!({ "type": null }),
    ] {
        let (status, reply) =
            rapidly(&app, Method::PATCH, "/api/customers/external/fixed", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        let messages: Vec<_> = reply["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["msg"].as_str().unwrap())
            .collect();
        assert!(
            messages.contains(&"cannot be changed when updating by external id"),
            "{reply}"
        );
    }
    // By id the same change is the transition rules' to judge.
    let id = created["id"].as_str().unwrap();
    let (status, reply) = rapidly(
        &app,
        Method::PATCH,
        &format!("/api/customers/{id}"),
        json!({ "type": "team" }),
    )
    .await;
    assert_eq!(
        (status, reply["type"].clone()),
        (StatusCode::OK, json!("team"))
    );

    // gRPC: the same rule, on the field the mask names.
    let mut customers = app.customers();
    let by_external = || Some(update_customer_request::Lookup::ExternalId("fixed".into()));
    let refused = customers
        .update_customer(UpdateCustomerRequest {
            lookup: by_external(),
            customer: Some(pb::Customer {
                external_id: Some("other".into()),
                ..pb::Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["external_id".into()],
            }),
        })
        .await;
    assert_error(refused, Code::InvalidArgument, &["external_id"]);
    // `*` means every field this update may change, and renames.
    let renamed = customers
        .update_customer(UpdateCustomerRequest {
            lookup: by_external(),
            customer: Some(pb::Customer {
                name: Some("Fixed".into()),
                email: Some("fixed@example.com".into()),
                ..pb::Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["*".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Fixed"));
    assert_eq!(renamed.external_id.as_deref(), Some("fixed"));
    // Without a mask, the record read by external id goes back whole: its
    // external id and type are left as they are, the rest changes.
    let echoed = customers
        .update_customer(UpdateCustomerRequest {
            lookup: by_external(),
            customer: Some(pb::Customer {
                name: Some("Echoed".into()),
                external_id: Some("something else".into()),
                r#type: pb::CustomerType::Individual.into(),
                ..renamed
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(echoed.name.as_deref(), Some("Echoed"));
    assert_eq!(echoed.external_id.as_deref(), Some("fixed"));
    assert_eq!(echoed.r#type(), pb::CustomerType::Team, "the type stays");
}

async fn racing_creates_of_one_person_make_one_person_and_one_201(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let bearer = bearer(&app);
    let mut racers = Vec::new();
    for i in 0..16 {
        let (rest, bearer) = (app.rest.clone(), bearer.clone());
        racers.push(tokio::spawn(async move {
            let body = json!({ "userId": "racer", "traits": { "first_name": format!("R{i}") } });
            let response = reqwest::Client::new()
                .post(format!("{rest}/api/v1/people"))
                .header("authorization", bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut statuses: HashMap<StatusCode, usize> = HashMap::new();
    for racer in racers {
        let (status, body) = racer.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == StatusCode::CONFLICT {
            assert_eq!(body["error"]["code"], "already_exists", "{body}");
            assert!(
                body["error"]["details"]["fields"]["userId"].is_string(),
                "{body}"
            );
        }
    }
    assert_eq!(
        statuses,
        HashMap::from([(StatusCode::CREATED, 1), (StatusCode::CONFLICT, 15)]),
        "one create wins, the rest learn the person exists"
    );
    let (status, listed) = app
        .rest_json(
            Method::GET,
            "/api/v1/people?limit=100",
            Some(("authorization", &bearer)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["people"].as_array().unwrap().len(), 1);
}

async fn an_update_racing_a_delete_never_brings_the_person_back(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let bearer = bearer(&app);
    let workspace = app.workspace_id().await;
    for round in 0..16 {
        let user_id = format!("ghost-{round}");
        let (status, _) = app
            .rest_json(
                Method::POST,
                "/api/v1/people",
                Some(("authorization", &bearer)),
                Some(&json!({ "userId": user_id })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let path = format!("/api/v1/workspaces/{workspace}/people/{user_id}");
        let update = {
            let (rest, bearer, path) = (app.rest.clone(), bearer.clone(), path.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .put(format!("{rest}{path}"))
                    .header("authorization", bearer)
                    .json(&json!({ "traits": { "plan": "pro" } }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        };
        let delete = {
            let (rest, bearer, path) = (app.rest.clone(), bearer.clone(), path.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .delete(format!("{rest}{path}"))
                    .header("authorization", bearer)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        };
        let (updated, deleted) = (update.await.unwrap(), delete.await.unwrap());
        assert_eq!(deleted, StatusCode::OK);
        assert!(
            updated == StatusCode::OK || updated == StatusCode::NOT_FOUND,
            "an update either ran first or found no one: {updated}"
        );
        let (status, _) = app
            .rest_json(
                Method::GET,
                &format!("/api/v1/people/{user_id}"),
                Some(("authorization", &bearer)),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "round {round}: a deleted person stays deleted"
        );
    }
}

async fn a_removed_member_stays_removed_when_a_role_change_races_the_removal(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let customer = app
        .customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some("team@example.com".into()),
                r#type: pb::CustomerType::Team.into(),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    for round in 0..16 {
        let user = app
            .users()
            .upsert_user(UpsertUserRequest {
                keys: HashMap::from([("email".into(), format!("m{round}@example.com"))]),
                ..UpsertUserRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        let member = app
            .customers()
            .add_customer_member(AddCustomerMemberRequest {
                customer_id: customer.id.clone(),
                user_id: user.id.clone(),
                role: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        let (mut updating, mut removing) = (app.customers(), app.customers());
        let update = updating.update_customer_member(UpdateCustomerMemberRequest {
            customer_id: customer.id.clone(),
            member_id: member.id.clone(),
            role: MemberRole::Owner.into(),
        });
        let remove = removing.remove_customer_member(RemoveCustomerMemberRequest {
            customer_id: customer.id.clone(),
            member_id: member.id.clone(),
        });
        let (updated, removed) = tokio::join!(update, remove);
        assert!(removed.is_ok(), "the removal always finds the member");
        match updated {
            Ok(_) => {}
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
        let members = app
            .customers()
            .list_customer_members(ListCustomerMembersRequest {
                customer_id: customer.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .members;
        assert!(
            members.iter().all(|m| m.id != member.id),
            "round {round}: a removed member is never re-created"
        );
    }
}

async fn listing_memberships_needs_a_company_or_a_user_on_either_transport(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let refused = app
        .users()
        .list_company_memberships(ListCompanyMembershipsRequest::default())
        .await;
    assert_error(refused, Code::InvalidArgument, &["company_id"]);
    let (status, reply) = app
        .rest_json(
            Method::GET,
            "/company-memberships",
            Some(("x-schematic-api-key", &app.key)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply["error"], "company_id: set company_id, user_id or both",
        "the same rule, in Schematic's shape"
    );
}

async fn error_paths_keep_map_keys_as_sent_in_every_family(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    // Stigg renames its fields (`typeRefId`) but not a metadata key.
    let (status, _) = rapidly(
        &app,
        Method::POST,
        "/api/customers",
        json!({ "email": "owner@example.com", "external_id": "owner" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, reply) = app
        .rest_json(
            Method::PUT,
            "/api/v1-beta/customers/owner/entities",
            Some(("x-api-key", &app.key)),
            Some(&json!({ "entities": [{
                "id": "e1",
                "typeRefId": "no such type!",
                "metadata": { "parent_customer_id": 7 }
            }] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("entities[0].metadata.parent_customer_id: must be a string"),
        "{message}"
    );
    assert!(message.contains("entities[0].typeRefId"), "{message}");

    // Flameup spells `userId` but keeps a trait's own name.
    let path = format!(
        "/api/v1/workspaces/{}/people/batch",
        app.workspace_id().await
    );
    let (status, reply) = app
        .rest_json(
            Method::POST,
            &path,
            Some(("authorization", &bearer(&app))),
            Some(&json!({ "people": [{ "traits": { "user_id_hash": "a\u{0}b" } }] })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = reply["error"]["details"]["fields"].as_object().unwrap();
    let mut names: Vec<_> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["people[0].traits.user_id_hash", "people[0].userId"]);
}

async fn each_family_sizes_pages_by_its_own_rule(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (status, _) = rapidly(
        &app,
        Method::POST,
        "/api/customers",
        json!({ "email": "owner@example.com", "external_id": "owner" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let stigg = |method, path: &str, body: Option<Value>| {
        let path = path.to_owned();
        let app = &app;
        async move {
            app.rest_json(method, &path, Some(("x-api-key", &app.key)), body.as_ref())
                .await
        }
    };
    let (status, _) = stigg(
        Method::PUT,
        "/api/v1-beta/entity-types",
        Some(json!({ "types": [{ "id": "seat", "displayName": "Seat" }] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let entities: Vec<_> = (0..25)
        .map(|i| json!({ "id": format!("e{i}"), "typeRefId": "seat" }))
        .collect();
    let (status, _) = stigg(
        Method::PUT,
        "/api/v1-beta/customers/owner/entities",
        Some(json!({ "entities": entities })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = stigg(Method::GET, "/api/v1-beta/customers/owner/entities", None).await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        20,
        "Stigg's default"
    );
    for refused in ["0", "101"] {
        let (status, reply) = stigg(
            Method::GET,
            &format!("/api/v1-beta/customers/owner/entities?limit={refused}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={refused}: {reply}");
    }

    // More customers and people than any page holds.
    let mut customers = app.customers();
    for i in 0..120 {
        customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    email: Some(format!("c{i}@example.com")),
                    ..pb::Customer::default()
                }),
            })
            .await
            .unwrap();
    }
    for batch in 0..2 {
        app.people()
            .batch_upsert_people(pb::BatchUpsertPeopleRequest {
                people: (0..60)
                    .map(|i| pb::PersonUpsert {
                        user_id: format!("p{batch}-{i}"),
                        ..pb::PersonUpsert::default()
                    })
                    .collect(),
            })
            .await
            .unwrap();
    }
    let items = |reply: &Value, key: &str| reply[key].as_array().map_or(0, Vec::len);

    // Polar lowers a large limit to 100 instead of refusing it; its
    // default is 10.
    let polar = |path: &str| {
        let path = path.to_owned();
        let app = &app;
        async move {
            app.rest_json(
                Method::GET,
                &path,
                Some(("authorization", &bearer(app))),
                None,
            )
            .await
        }
    };
    let (status, reply) = polar("/api/customers?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(items(&reply, "items"), 100, "Polar's ceiling");
    let (_, reply) = polar("/api/customers").await;
    assert_eq!(items(&reply, "items"), 10, "Polar's default");
    // Schematic defaults to and caps at 100.
    for path in ["/companies", "/companies?limit=500"] {
        let (status, reply) = app
            .rest_json(
                Method::GET,
                path,
                Some(("x-schematic-api-key", &app.key)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(items(&reply, "data"), 100, "{path}");
    }
    // Flameup defaults to 50 and caps at 100.
    for (path, expected) in [("/api/v1/people", 50), ("/api/v1/people?limit=500", 100)] {
        let (status, reply) = polar(path).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(items(&reply, "people"), expected, "{path}");
    }
    // gRPC lowers too, and reads 0 as its default.
    let grpc = app
        .entities()
        .list_entities(pb::ListEntitiesRequest {
            customer_external_id: "owner".into(),
            page_size: 0,
            ..pb::ListEntitiesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.entities.len(), 25, "50 by default, all 25 here");
    for (page_size, expected) in [(0, 50), (500, 100)] {
        let page = customers
            .list_customers(pb::ListCustomersRequest {
                page_size,
                ..pb::ListCustomersRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.customers.len(), expected, "page_size {page_size}");
    }
}

async fn every_response_carries_its_request_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    // REST: a caller's id is returned; without one, a fresh one is made.
    let response = reqwest::Client::new()
        .get(format!("{}/api/customers", app.rest))
        .bearer_auth(&app.key)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = reqwest::Client::new()
        .get(format!("{}/api/customers/not-a-uuid", app.rest))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::try_parse(&made).is_ok(), "{made}");

    // gRPC: in the response metadata, errors included.
    let mut request = tonic::Request::new(GetCustomerRequest {
        lookup: Some(get_customer_request::Lookup::Id(
            uuid::Uuid::new_v4().to_string(),
        )),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "grpc-trace-7".parse().unwrap());
    let status = app.customers().get_customer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "grpc-trace-7"
    );
    let reply = app
        .customers()
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .unwrap();
    let made = reply
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::try_parse(made).is_ok(), "{made}");
}
