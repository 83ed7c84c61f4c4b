//! Search on every list, over the wire and on both backends: Unicode case
//! folding, wildcards that match themselves, no match across two fields,
//! paging through a search, the seed routes' own parameters, the same
//! results for a table of queries, and documents stored before search
//! existed rebuilt at start-up.

use kith::pb::kith::v1::{
    self as pb, BatchUpsertEntitiesRequest, BatchUpsertEntityTypesRequest,
    BatchUpsertPeopleRequest, CreateCustomerRequest, EntityTypeUpsert, EntityUpsert,
    ListCustomersRequest, ListEntitiesRequest, ListPeopleRequest, ListUsersRequest, PersonUpsert,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tonic::Code;

use crate::grpc_support::assert_error;
use kith::store::Store;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    customers_are_found_by_folded_name_email_and_external_id_prefix,
    a_query_never_matches_across_two_fields_and_wildcards_match_themselves,
    paging_through_a_search_returns_every_match_once,
    people_users_and_entities_are_searched_by_their_own_fields,
    the_seed_routes_search_with_their_own_parameters,
    a_table_of_queries_finds_the_same_records_on_both_backends,
    documents_stored_before_search_are_rebuilt,
);

/// The customers every test here searches: names, emails and external ids
/// that exercise folding, wildcards and field boundaries.
const CUSTOMERS: [(&str, &str, &str); 6] = [
    ("Élodie Durand", "elodie@example.com", "EXT-100"),
    ("Straße GmbH", "kontakt@strasse.de", "de-1"),
    ("Ada King", "king@x.io", "ada-1"),
    ("Percent Person", "50%_off@deals.io", "p-1"),
    ("Σίσυφος", "sisyphus@hill.gr", "gr-1"),
    ("ＫＩＴＨ Wide", "wide@example.com", "w-1"),
];

async fn create_customers(app: &TestApp) -> Vec<String> {
    let mut customers = app.customers();
    let mut ids = Vec::new();
    for (name, email, external_id) in CUSTOMERS {
        let created = customers
            .create_customer(CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: Some(name.to_owned()),
                    email: Some(email.to_owned()),
                    external_id: Some(external_id.to_owned()),
                    ..pb::Customer::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(created.customer.unwrap().id);
    }
    ids
}

/// The names of the customers `query` finds, in list order.
async fn customer_names(app: &TestApp, query: &str) -> Vec<String> {
    app.customers()
        .list_customers(ListCustomersRequest {
            query: query.to_owned(),
            ..ListCustomersRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .customers
        .into_iter()
        .map(|c| c.name.unwrap_or_default())
        .collect()
}

async fn customers_are_found_by_folded_name_email_and_external_id_prefix(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    create_customers(&app).await;
    for query in [
        "ÉLODIE",
        "élodie",
        "E\u{301}LODIE",
        "durand",
        "ELODIE@EXAMPLE",
    ] {
        assert_eq!(
            customer_names(&app, query).await,
            ["Élodie Durand"],
            "{query}"
        );
    }
    // Full case folding: ß is ss, final sigma is sigma, full-width is ASCII.
    assert_eq!(customer_names(&app, "STRASSE").await, ["Straße GmbH"]);
    assert_eq!(customer_names(&app, "ΣΊΣΥΦΟΣ").await, ["Σίσυφος"]);
    assert_eq!(customer_names(&app, "kith w").await, ["ＫＩＴＨ Wide"]);
    // The external id matches from its start only.
    assert_eq!(customer_names(&app, "ext-1").await, ["Élodie Durand"]);
    assert!(customer_names(&app, "xt-100").await.is_empty());
    // No query lists everyone.
    assert_eq!(customer_names(&app, "").await.len(), CUSTOMERS.len());
}

async fn a_query_never_matches_across_two_fields_and_wildcards_match_themselves(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    create_customers(&app).await;
    // "Ada King" then "king@x.io": joined by a space they would hold this.
    assert!(customer_names(&app, "king king").await.is_empty());
    assert!(customer_names(&app, "gking").await.is_empty());
    assert_eq!(customer_names(&app, "ada king").await, ["Ada King"]);
    for query in ["%", "_", "50%_", "%_off"] {
        assert_eq!(
            customer_names(&app, query).await,
            ["Percent Person"],
            "{query}"
        );
    }
    assert!(customer_names(&app, "5_%").await.is_empty());
    // The separator between fields is a control character, which a query
    // may not hold; neither may it be too long.
    assert_error(
        app.customers()
            .list_customers(ListCustomersRequest {
                query: "king\u{1f}king".to_owned(),
                ..ListCustomersRequest::default()
            })
            .await,
        Code::InvalidArgument,
        &["query"],
    );
    assert_error(
        app.customers()
            .list_customers(ListCustomersRequest {
                query: "k".repeat(513),
                ..ListCustomersRequest::default()
            })
            .await,
        Code::InvalidArgument,
        &["query"],
    );
}

async fn paging_through_a_search_returns_every_match_once(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    for i in 0..12 {
        let name = if i % 3 == 0 { "Other" } else { "Match" };
        customers
            .create_customer(CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: Some(format!("{name} {i}")),
                    email: Some(format!("c{i}@example.com")),
                    ..pb::Customer::default()
                }),
            })
            .await
            .unwrap();
    }
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = customers
            .list_customers(ListCustomersRequest {
                query: "MATCH".to_owned(),
                page_size: 3,
                page_token: token,
                ..ListCustomersRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.customers.into_iter().map(|c| c.name.unwrap()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        // The query is bound into the token: another query refuses it.
        assert_error(
            customers
                .list_customers(ListCustomersRequest {
                    query: "other".to_owned(),
                    page_size: 3,
                    page_token: token.clone(),
                    ..ListCustomersRequest::default()
                })
                .await,
            Code::InvalidArgument,
            &["page_token"],
        );
    }
    let expected: Vec<String> = (0..12)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("Match {i}"))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

fn person(external_id: &str, first: &str, last: &str, email: &str) -> PersonUpsert {
    let text = |s: &str| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.to_owned())),
    };
    PersonUpsert {
        user_id: external_id.to_owned(),
        email: Some(email.to_owned()),
        traits: Some(prost_types::Struct {
            fields: [("first_name", text(first)), ("last_name", text(last))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }),
        ..PersonUpsert::default()
    }
}

async fn people_users_and_entities_are_searched_by_their_own_fields(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![
                person("crm-ÉLO-7", "Élodie", "Martin", "elo@example.com"),
                person("crm-2", "Grace", "Hopper", "grace@navy.mil"),
            ],
        })
        .await
        .unwrap();
    let found = async |search: &str| -> Vec<String> {
        app.people()
            .list_people(ListPeopleRequest {
                search: search.to_owned(),
                ..ListPeopleRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .people
            .into_iter()
            .map(|p| p.external_id)
            .collect()
    };
    assert_eq!(found("ÉLODIE").await, ["crm-ÉLO-7"]);
    assert_eq!(found("NAVY.MIL").await, ["crm-2"]);
    // The external id from its start, case-insensitively; not inside it.
    assert_eq!(found("CRM-élo").await, ["crm-ÉLO-7"]);
    assert!(found("lo-7").await.is_empty());
    assert!(found("martin elo").await.is_empty(), "across two fields");
    // The full name is a field of its own.
    assert_eq!(found("Élodie MARTIN").await, ["crm-ÉLO-7"]);
    assert_eq!(found("  grace hopper ").await, ["crm-2"], "trimmed");

    // Users: the name and every key value.
    let app = &app;
    let schematic = |body: Value| async move {
        app.rest_json(
            Method::POST,
            "/users",
            Some(("X-Schematic-Api-Key", &app.key)),
            Some(&body),
        )
        .await
    };
    let (status, _) = schematic(json!({
        "keys": { "email": "Ada@Analytical.Engine", "crm": "U-77" },
        "name": "Ada Lovelace",
    }))
    .await;
    assert_eq!(status, StatusCode::OK);
    schematic(json!({ "keys": { "email": "bob@example.com" }, "name": "Bob" })).await;
    let users = async |query: &str| -> Vec<String> {
        app.users()
            .list_users(ListUsersRequest {
                query: query.to_owned(),
                ..ListUsersRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .users
            .into_iter()
            .map(|u| u.name)
            .collect()
    };
    assert_eq!(users("LOVELACE").await, ["Ada Lovelace"]);
    assert_eq!(users("analytical.ENGINE").await, ["Ada Lovelace"]);
    assert_eq!(users("u-7").await, ["Ada Lovelace"]);
    // A key value changed by a later upsert is what is searched.
    schematic(json!({ "keys": { "email": "Ada@Analytical.Engine", "crm": "U-99" } })).await;
    assert!(users("u-77").await.is_empty());
    assert_eq!(users("u-99").await, ["Ada Lovelace"]);

    // Entities of one customer: the id from its start, the display name and
    // metadata values inside.
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some("owner@example.com".to_owned()),
                external_id: Some("owner-1".to_owned()),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap();
    let mut entities = app.entities();
    entities
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: "seat".to_owned(),
                display_name: "Seat".to_owned(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await
        .unwrap();
    let entity = |id: &str, name: &str, region: &str| EntityUpsert {
        id: id.to_owned(),
        type_id: Some("seat".to_owned()),
        display_name: Some(name.to_owned()),
        metadata: [("region".to_owned(), region.to_owned())].into(),
    };
    entities
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_external_id: "owner-1".to_owned(),
            entities: vec![
                entity("Seat-A1", "Window seat", "Zürich"),
                entity("seat-b2", "Aisle", "Genève"),
            ],
        })
        .await
        .unwrap();
    let found = async |query: &str| -> Vec<String> {
        app.entities()
            .list_entities(ListEntitiesRequest {
                customer_external_id: "owner-1".to_owned(),
                query: query.to_owned(),
                ..ListEntitiesRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entities
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(found("SEAT-a").await, ["Seat-A1"]);
    assert_eq!(found("seat").await, ["Seat-A1", "seat-b2"]);
    assert_eq!(found("ZÜRICH").await, ["Seat-A1"]);
    assert_eq!(found("window").await, ["Seat-A1"]);
    assert!(found("a1").await.is_empty(), "an id matches from its start");
}

async fn the_seed_routes_search_with_their_own_parameters(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let ids = create_customers(&app).await;
    let get = async |path: &str, header: &str, value: &str| {
        app.rest_json(Method::GET, path, Some((header, value)), None)
            .await
    };
    let bearer = format!("Bearer {}", app.key);

    // Rapidly (Polar): `query`.
    let (status, body) = get("/v1/customers?query=%C3%89LODIE", "Authorization", &bearer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["items"][0]["name"], "Élodie Durand");
    assert_eq!(body["pagination"]["total_count"], 1);

    // Schematic: `q` and `ids` on companies and users.
    let schematic = ("X-Schematic-Api-Key", app.key.as_str());
    let (status, body) = get("/companies?q=strasse", schematic.0, schematic.1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Straße GmbH"]);
    let path = format!("/companies?ids={}&ids={}", ids[0], ids[2]);
    let (status, body) = get(&path, schematic.0, schematic.1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    let (status, body) = get("/companies?ids=not-a-uuid", schematic.0, schematic.1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ids"), "{body}");
    app.rest_json(
        Method::POST,
        "/users",
        Some(schematic),
        Some(&json!({ "keys": { "email": "grace@navy.mil" }, "name": "Grace Hopper" })),
    )
    .await;
    let (status, body) = get("/users?q=HOPPER", schematic.0, schematic.1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["name"], "Grace Hopper");
    assert_eq!(body["params"]["q"], "HOPPER");
    let (_, body) = get("/users/count?q=nobody", schematic.0, schematic.1).await;
    assert_eq!(body["data"]["count"], 0);

    // Flameup: `search`, now with the external id's start.
    let people = app.people();
    let mut people = people;
    people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person("crm-1", "Zoë", "Ng", "zoe@example.com")],
        })
        .await
        .unwrap();
    let (status, body) = get("/api/v1/people?search=CRM-", "Authorization", &bearer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["people"][0]["external_id"], "crm-1", "{body}");
}

/// Queries and the customers each must find, in creation order: run
/// against each backend, so both return exactly this.
const QUERY_TABLE: [(&str, &[&str]); 12] = [
    (
        "e",
        &[
            "Élodie Durand",
            "Straße GmbH",
            "Percent Person",
            "ＫＩＴＨ Wide",
        ],
    ),
    ("É", &["Élodie Durand"]),
    ("example.com", &["Élodie Durand", "ＫＩＴＨ Wide"]),
    ("ss", &["Straße GmbH"]),
    ("SS", &["Straße GmbH"]),
    ("σ", &["Σίσυφος"]),
    ("ς", &["Σίσυφος"]),
    ("io", &["Ada King", "Percent Person"]),
    ("-1", &[]),
    ("gr-", &["Σίσυφος"]),
    ("\\", &[]),
    ("ｗｉｄｅ", &["ＫＩＴＨ Wide"]),
];

async fn a_table_of_queries_finds_the_same_records_on_both_backends(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    create_customers(&app).await;
    for (query, expected) in QUERY_TABLE {
        assert_eq!(
            customer_names(&app, query).await,
            expected,
            "query {query:?}"
        );
    }
}

async fn documents_stored_before_search_are_rebuilt(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let url = app.database_url().to_owned();
    create_customers(&app).await;
    app.people()
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person("crm-1", "Zoë", "Ng", "zoe@example.com")],
        })
        .await
        .unwrap();
    // As a database from before search: documents empty, version 0.
    let forget = [
        "UPDATE customers SET search_text = '', search_key = '', search_version = 0",
        "UPDATE people SET search_text = '', search_key = '', search_version = 0",
    ];
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            for statement in forget {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            for statement in forget {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
    }
    assert!(customer_names(&app, "élodie").await.is_empty(), "forgotten");
    // What a start does before serving (Application::build).
    Store::connect(&url)
        .await
        .unwrap()
        .rebuild_search_documents()
        .await
        .unwrap();
    assert_eq!(customer_names(&app, "élodie").await, ["Élodie Durand"]);
    assert_eq!(customer_names(&app, "ext-").await, ["Élodie Durand"]);
    let found = app
        .people()
        .list_people(ListPeopleRequest {
            search: "zoë".to_owned(),
            ..ListPeopleRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .people;
    assert_eq!(found.len(), 1);
}
