//! Hostile input: NUL bytes, deep nesting, oversized messages and forged
//! page tokens are refused with INVALID_ARGUMENT naming the field (or the
//! transport's size limit), never INTERNAL, and nothing is written.

use std::collections::HashMap;

use kith::pb::kith::v1::{
    BatchUpsertEntitiesRequest, BatchUpsertEntityTypesRequest, BatchUpsertPeopleRequest,
    CreateCustomerRequest, Customer, EntityTypeUpsert, EntityUpsert, ListCustomersRequest,
    ListPeopleRequest, MetadataValue, PersonUpsert, UpsertUserRequest, metadata_value,
};
use prost_types::{ListValue, Struct, Value, value::Kind};
use tonic::Code;

use crate::grpc_support::{assert_error, error_of};
use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    nul_bytes_anywhere_are_invalid_arguments,
    traits_nested_too_deep_are_refused,
    messages_over_the_size_limit_are_refused,
    forged_and_foreign_page_tokens_are_refused,
    invalid_utf8_is_an_invalid_argument_on_both_transports,
);

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn object(pairs: &[(&str, Value)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

async fn nul_bytes_anywhere_are_invalid_arguments(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    let person = |traits: Struct| PersonUpsert {
        user_id: "p1".to_owned(),
        email: Some("p1@example.com".to_owned()),
        traits: Some(traits),
        status: 0,
    };
    let in_value = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person(object(&[("note", string("a\0b"))]))],
        })
        .await;
    assert_error(in_value, Code::InvalidArgument, &["people[0].traits.note"]);
    let nested = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: vec![string("fine"), string("\0")],
        })),
    };
    let in_list = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person(object(&[("tags", nested)]))],
        })
        .await;
    assert_error(in_list, Code::InvalidArgument, &["people[0].traits.tags"]);
    let in_key = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person(object(&[("no\0te", string("x"))]))],
        })
        .await;
    assert_eq!(error_of(in_key).0, Code::InvalidArgument);

    let mut customers = app.customers();
    let metadata = HashMap::from([(
        "note".to_owned(),
        MetadataValue {
            kind: Some(metadata_value::Kind::StringValue("a\0b".to_owned())),
        },
    )]);
    let customer = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("c@example.com".to_owned()),
                metadata,
                ..Customer::default()
            }),
        })
        .await;
    assert_error(customer, Code::InvalidArgument, &["metadata.note"]);

    customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                external_id: Some("owner".to_owned()),
                email: Some("owner@example.com".to_owned()),
                ..Customer::default()
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
    let entity = entities
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_external_id: "owner".to_owned(),
            entities: vec![EntityUpsert {
                id: "s1".to_owned(),
                type_id: Some("seat".to_owned()),
                display_name: None,
                metadata: HashMap::from([("note".to_owned(), "a\0b".to_owned())]),
            }],
        })
        .await;
    assert_eq!(error_of(entity).0, Code::InvalidArgument);

    let mut users = app.users();
    let user = users
        .upsert_user(UpsertUserRequest {
            keys: HashMap::from([("email".to_owned(), "u@example.com".to_owned())]),
            traits: Some(object(&[("note", string("a\0b"))])),
            ..UpsertUserRequest::default()
        })
        .await;
    assert_eq!(error_of(user).0, Code::InvalidArgument);
    let user_key = users
        .upsert_user(UpsertUserRequest {
            keys: HashMap::from([("email".to_owned(), "u\0@example.com".to_owned())]),
            ..UpsertUserRequest::default()
        })
        .await;
    assert_eq!(error_of(user_key).0, Code::InvalidArgument);

    let listed = people
        .list_people(ListPeopleRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.people.is_empty(), "nothing was written");
}

async fn traits_nested_too_deep_are_refused(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    let nested = |levels: usize| {
        let mut tree = string("bottom");
        for _ in 0..levels {
            tree = Value {
                kind: Some(Kind::StructValue(object(&[("down", tree)]))),
            };
        }
        PersonUpsert {
            user_id: "deep".to_owned(),
            traits: Some(object(&[("tree", tree)])),
            ..PersonUpsert::default()
        }
    };
    // Deeper than Kith keeps, within what protobuf decodes: the field.
    let refused = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![nested(20)],
        })
        .await;
    assert_error(refused, Code::InvalidArgument, &["people[0].traits.tree"]);
    // Past the decoder's own recursion limit: a malformed request.
    let refused = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![nested(64)],
        })
        .await;
    let (code, reason, _) = error_of(refused);
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "ERROR_REASON_INVALID_FIELD")
    );
}

async fn messages_over_the_size_limit_are_refused(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    let huge = "x".repeat(5 * 1024 * 1024);
    let refused = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![PersonUpsert {
                user_id: "big".to_owned(),
                traits: Some(object(&[("blob", string(&huge))])),
                ..PersonUpsert::default()
            }],
        })
        .await
        .expect_err("a 5 MiB message is over the limit");
    // tonic's decode limit (4 MiB) answers OUT_OF_RANGE.
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused}"
    );

    // The gateway's limit (413) is tested in rest_flameup, with a body the
    // socket takes whole: one this size may be cut off mid-upload.
}

async fn forged_and_foreign_page_tokens_are_refused(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    for i in 0..3 {
        customers
            .create_customer(CreateCustomerRequest {
                customer: Some(Customer {
                    email: Some(format!("c{i}@example.com")),
                    ..Customer::default()
                }),
            })
            .await
            .unwrap();
    }
    let page = customers
        .list_customers(ListCustomersRequest {
            page_size: 1,
            ..ListCustomersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let token = page.next_page_token;
    assert!(!token.is_empty());

    let other = app.other_workspace_key().await;
    let foreign = app
        .customers_with(Some(&other))
        .list_customers(ListCustomersRequest {
            page_size: 1,
            page_token: token.clone(),
            ..ListCustomersRequest::default()
        })
        .await;
    assert_error(foreign, Code::InvalidArgument, &["page_token"]);

    let mut forged = token.into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    for token in [
        String::from_utf8(forged).unwrap(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "not a token".to_owned(),
    ] {
        let refused = customers
            .list_customers(ListCustomersRequest {
                page_size: 1,
                page_token: token,
                ..ListCustomersRequest::default()
            })
            .await;
        assert_error(refused, Code::InvalidArgument, &["page_token"]);
    }
}

/// `PersonUpsert` with its `user_id` as raw bytes, to put what no string
/// can hold on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct RawPerson {
    #[prost(bytes = "vec", tag = "1")]
    user_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawBatch {
    #[prost(message, repeated, tag = "1")]
    people: Vec<RawPerson>,
}

async fn invalid_utf8_is_an_invalid_argument_on_both_transports(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut grpc = tonic::client::Grpc::new(app.channel());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(RawBatch {
        people: vec![RawPerson {
            user_id: vec![b'a', 0xff, 0xfe, b'z'],
        }],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.key).parse().unwrap(),
    );
    let refused = grpc
        .unary::<_, kith::pb::kith::v1::BatchUpsertPeopleResponse, _>(
            request,
            http::uri::PathAndQuery::from_static("/kith.v1.PeopleService/BatchUpsertPeople"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let (code, reason, _) = error_of(refused);
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "ERROR_REASON_INVALID_FIELD")
    );

    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/people", app.rest))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(b"{\"userId\":\"a\xff\xfez\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_error");
}
