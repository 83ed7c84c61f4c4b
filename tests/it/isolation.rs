//! Tenant isolation, exhaustively: every RPC and every REST route called
//! with workspace B's key on workspace A's records finds nothing (NOT_FOUND
//! / 404, or a list without them), and A is unchanged afterwards. Calls
//! that create (upserts by key) create in B.

use std::collections::HashMap;

use kith::pb::kith::v1::{self as pb, *};
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::{Backend, Bearer, TestApp, backend_tests, require};

backend_tests!(another_workspaces_key_reaches_nothing_of_a_on_any_call);

/// A's records, and every id and key a caller could name them by.
struct RecordsOfA {
    customer: String,
    person: String,
    user: String,
    membership: String,
    workspace: String,
}

/// Strings that appear only in A's records: no reply to B may carry one.
const MARKERS: [&str; 5] = ["acme", "pat@a.example", "pat-a", "u@a.example", "seat-a"];

fn keys(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn set_up_a(app: &TestApp) -> RecordsOfA {
    let bearer = || Bearer::new(Some(&app.key));
    let customer = app
        .customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                external_id: Some("acme".to_owned()),
                email: Some("billing@acme.example".to_owned()),
                ..Customer::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let mut entities =
        entity_service_client::EntityServiceClient::with_interceptor(app.channel(), bearer());
    entities
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: "seat-a".to_owned(),
                display_name: "Seat".to_owned(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await
        .unwrap();
    entities
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_id: "acme".to_owned(),
            entities: vec![EntityUpsert {
                id: "e1".to_owned(),
                type_id: Some("seat-a".to_owned()),
                ..EntityUpsert::default()
            }],
        })
        .await
        .unwrap();
    let person =
        people_service_client::PeopleServiceClient::with_interceptor(app.channel(), bearer())
            .batch_upsert_people(BatchUpsertPeopleRequest {
                people: vec![PersonUpsert {
                    user_id: "pat-a".to_owned(),
                    email: Some("pat@a.example".to_owned()),
                    ..PersonUpsert::default()
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .people
            .remove(0);
    let mut users =
        user_service_client::UserServiceClient::with_interceptor(app.channel(), bearer());
    let user = users
        .upsert_user(UpsertUserRequest {
            keys: keys(&[("email", "u@a.example")]),
            ..UpsertUserRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let membership = users
        .get_or_create_company_membership(GetOrCreateCompanyMembershipRequest {
            company_id: customer.id.clone(),
            user_id: user.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    RecordsOfA {
        customer: customer.id,
        person: person.id,
        user: user.id,
        membership: membership.id,
        workspace: customer.workspace_id,
    }
}

/// Everything of A, read with A's key, to compare before and after.
async fn snapshot(app: &TestApp, a: &RecordsOfA) -> String {
    let bearer = || Bearer::new(Some(&app.key));
    let customer = app
        .customers()
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(a.customer.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    let mut entities =
        entity_service_client::EntityServiceClient::with_interceptor(app.channel(), bearer());
    let listed = entities
        .list_entities(ListEntitiesRequest {
            customer_id: "acme".to_owned(),
            include_archived: true,
            ..ListEntitiesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let types = entities
        .list_entity_types(ListEntityTypesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let person =
        people_service_client::PeopleServiceClient::with_interceptor(app.channel(), bearer())
            .get_person(GetPersonRequest {
                lookup: Some(get_person_request::Lookup::Id(a.person.clone())),
            })
            .await
            .unwrap()
            .into_inner();
    let mut users =
        user_service_client::UserServiceClient::with_interceptor(app.channel(), bearer());
    let user = users
        .get_user(GetUserRequest { id: a.user.clone() })
        .await
        .unwrap()
        .into_inner();
    let memberships = users
        .list_company_memberships(ListCompanyMembershipsRequest {
            company_id: a.customer.clone(),
            ..ListCompanyMembershipsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    format!("{customer:?}\n{listed:?}\n{types:?}\n{person:?}\n{user:?}\n{memberships:?}")
}

/// What a call by B must come to.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// NOT_FOUND / 404.
    NotFound,
    /// Success, with nothing of A in it (a list, or a record B created).
    NothingOfA,
    /// A count of zero (Schematic's `{"data": {"count": 0}}`).
    Empty,
}

fn check_grpc<T: std::fmt::Debug>(name: &str, result: Result<T, tonic::Status>, want: Outcome) {
    match (want, result) {
        (Outcome::NotFound, Err(status)) if status.code() == Code::NotFound => {}
        (Outcome::NothingOfA, Ok(reply)) => {
            let text = format!("{reply:?}");
            for marker in MARKERS {
                assert!(!text.contains(marker), "{name} showed B {marker:?}: {text}");
            }
        }
        (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
    }
}

async fn another_workspaces_key_reaches_nothing_of_a_on_any_call(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let a = set_up_a(&app).await;
    let before = snapshot(&app, &a).await;
    let b_key = app.other_workspace_key().await;
    let bearer = || Bearer::new(Some(&b_key));
    let mut customers = app.customers_with(Some(&b_key));
    let mut entities =
        entity_service_client::EntityServiceClient::with_interceptor(app.channel(), bearer());
    let mut people =
        people_service_client::PeopleServiceClient::with_interceptor(app.channel(), bearer());
    let mut users =
        user_service_client::UserServiceClient::with_interceptor(app.channel(), bearer());
    use Outcome::{NotFound, NothingOfA};

    // CustomerService
    let by_id = || Some(get_customer_request::Lookup::Id(a.customer.clone()));
    let r = customers
        .get_customer(GetCustomerRequest { lookup: by_id() })
        .await;
    check_grpc("GetCustomer by id", r, NotFound);
    let lookup = Some(get_customer_request::Lookup::ExternalId("acme".to_owned()));
    let r = customers.get_customer(GetCustomerRequest { lookup }).await;
    check_grpc("GetCustomer by external id", r, NotFound);
    let r = customers
        .list_customers(ListCustomersRequest::default())
        .await;
    check_grpc("ListCustomers", r, NothingOfA);
    let r = customers
        .update_customer(UpdateCustomerRequest {
            lookup: Some(update_customer_request::Lookup::ExternalId(
                "acme".to_owned(),
            )),
            customer: Some(Customer {
                name: Some("hijacked".to_owned()),
                ..Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".to_owned()],
            }),
        })
        .await;
    check_grpc("UpdateCustomer", r, NotFound);
    let r = customers
        .add_customer_member(AddCustomerMemberRequest {
            customer_id: a.customer.clone(),
            user_id: a.user.clone(),
            role: 0,
        })
        .await;
    check_grpc("AddCustomerMember", r, NotFound);
    let r = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: a.customer.clone(),
        })
        .await;
    check_grpc("ListCustomerMembers", r, NotFound);
    let r = customers
        .update_customer_member(UpdateCustomerMemberRequest {
            customer_id: a.customer.clone(),
            member_id: a.membership.clone(),
            role: MemberRole::Owner.into(),
        })
        .await;
    check_grpc("UpdateCustomerMember", r, NotFound);
    let r = customers
        .remove_customer_member(RemoveCustomerMemberRequest {
            customer_id: a.customer.clone(),
            member_id: a.membership.clone(),
        })
        .await;
    check_grpc("RemoveCustomerMember", r, NotFound);
    let r = customers
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(delete_customer_request::Lookup::Id(a.customer.clone())),
        })
        .await;
    check_grpc("DeleteCustomer", r, NotFound);

    // EntityService
    let r = entities
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_id: "acme".to_owned(),
            entities: vec![EntityUpsert {
                id: "e1".to_owned(),
                type_id: Some("seat-a".to_owned()),
                ..EntityUpsert::default()
            }],
        })
        .await;
    check_grpc("BatchUpsertEntities", r, NotFound);
    let r = entities
        .get_entity(GetEntityRequest {
            customer_id: "acme".to_owned(),
            entity_id: "e1".to_owned(),
        })
        .await;
    check_grpc("GetEntity", r, NotFound);
    let r = entities
        .list_entities(ListEntitiesRequest {
            customer_id: "acme".to_owned(),
            ..ListEntitiesRequest::default()
        })
        .await;
    check_grpc("ListEntities", r, NotFound);
    let ids = vec!["e1".to_owned()];
    let r = entities
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_id: "acme".to_owned(),
            ids: ids.clone(),
        })
        .await;
    check_grpc("BatchArchiveEntities", r, NotFound);
    let r = entities
        .batch_unarchive_entities(BatchUnarchiveEntitiesRequest {
            customer_id: "acme".to_owned(),
            ids,
        })
        .await;
    check_grpc("BatchUnarchiveEntities", r, NotFound);
    let r = entities
        .list_entity_types(ListEntityTypesRequest::default())
        .await;
    check_grpc("ListEntityTypes", r, NothingOfA);

    // PeopleService
    for lookup in [
        get_person_request::Lookup::Id(a.person.clone()),
        get_person_request::Lookup::ExternalId("pat-a".to_owned()),
        get_person_request::Lookup::Email("pat@a.example".to_owned()),
    ] {
        let r = people
            .get_person(GetPersonRequest {
                lookup: Some(lookup),
            })
            .await;
        check_grpc("GetPerson", r, NotFound);
    }
    let r = people.list_people(ListPeopleRequest::default()).await;
    check_grpc("ListPeople", r, NothingOfA);
    let r = people
        .update_person(UpdatePersonRequest {
            lookup: Some(update_person_request::Lookup::Id(a.person.clone())),
            person: Some(pb::Person {
                last_name: Some("hijacked".to_owned()),
                ..pb::Person::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["last_name".to_owned()],
            }),
        })
        .await;
    check_grpc("UpdatePerson", r, NotFound);
    let r = people
        .delete_person(DeletePersonRequest {
            lookup: Some(delete_person_request::Lookup::ExternalId(
                "pat-a".to_owned(),
            )),
        })
        .await;
    check_grpc("DeletePerson", r, NotFound);

    // UserService
    let r = users.get_user(GetUserRequest { id: a.user.clone() }).await;
    check_grpc("GetUser", r, NotFound);
    let r = users
        .lookup_user(LookupUserRequest {
            keys: keys(&[("email", "u@a.example")]),
        })
        .await;
    check_grpc("LookupUser", r, NotFound);
    let r = users.list_users(ListUsersRequest::default()).await;
    check_grpc("ListUsers", r, NothingOfA);
    let r = users
        .upsert_user(UpsertUserRequest {
            id: Some(a.user.clone()),
            name: Some("hijacked".to_owned()),
            ..UpsertUserRequest::default()
        })
        .await;
    check_grpc("UpsertUser by A's id", r, NotFound);
    let r = users
        .upsert_user_trait(UpsertUserTraitRequest {
            keys: keys(&[("email", "u@a.example")]),
            r#trait: "logins".to_owned(),
            change: Some(upsert_user_trait_request::Change::Incr(1)),
            update_only: true,
        })
        .await;
    check_grpc("UpsertUserTrait", r, NotFound);
    let r = users
        .upsert_company(UpsertCompanyRequest {
            id: Some(a.customer.clone()),
            name: Some("hijacked".to_owned()),
            ..UpsertCompanyRequest::default()
        })
        .await;
    check_grpc("UpsertCompany by A's id", r, NotFound);
    let company_keys = || keys(&[("external_id", "acme")]);
    let r = users
        .lookup_company(LookupCompanyRequest {
            keys: company_keys(),
        })
        .await;
    check_grpc("LookupCompany", r, NotFound);
    let r = users
        .upsert_company_trait(UpsertCompanyTraitRequest {
            keys: company_keys(),
            r#trait: "seats".to_owned(),
            change: Some(upsert_company_trait_request::Change::Incr(1)),
            update_only: true,
        })
        .await;
    check_grpc("UpsertCompanyTrait", r, NotFound);
    let r = users
        .get_or_create_company_membership(GetOrCreateCompanyMembershipRequest {
            company_id: a.customer.clone(),
            user_id: a.user.clone(),
        })
        .await;
    check_grpc("GetOrCreateCompanyMembership", r, NotFound);
    let r = users
        .list_company_memberships(ListCompanyMembershipsRequest {
            company_id: a.customer.clone(),
            ..ListCompanyMembershipsRequest::default()
        })
        .await;
    match r {
        Err(status) => assert_eq!(status.code(), Code::NotFound),
        Ok(reply) => assert!(reply.into_inner().memberships.is_empty()),
    }
    let r = users
        .delete_company_membership(DeleteCompanyMembershipRequest {
            id: a.membership.clone(),
        })
        .await;
    check_grpc("DeleteCompanyMembership", r, NotFound);
    let r = users
        .delete_user(DeleteUserRequest {
            lookup: Some(delete_user_request::Lookup::Id(a.user.clone())),
        })
        .await;
    check_grpc("DeleteUser", r, NotFound);
    let r = users
        .delete_company(DeleteCompanyRequest {
            keys: company_keys(),
        })
        .await;
    check_grpc("DeleteCompany", r, NotFound);

    rest_calls_find_nothing(&app, &a, &b_key).await;

    // Creating by A's keys creates B's own records.
    let r = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                external_id: Some("acme".to_owned()),
                email: Some("billing@acme.example".to_owned()),
                ..Customer::default()
            }),
        })
        .await;
    assert!(r.is_ok(), "B may use the same external id: {r:?}");
    let r = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![PersonUpsert {
                user_id: "pat-a".to_owned(),
                email: Some("pat@a.example".to_owned()),
                ..PersonUpsert::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.created_count, 1, "B's own person, not A's updated");
    let r = users
        .upsert_user(UpsertUserRequest {
            keys: keys(&[("email", "u@a.example")]),
            ..UpsertUserRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_ne!(r.id, a.user, "B's own user");
    let r = people
        .upsert_person(UpsertPersonRequest {
            person: Some(PersonUpsert {
                user_id: "pat-a".to_owned(),
                ..PersonUpsert::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(r.person.unwrap().id, a.person, "B's own person");
    let chunk = ImportPeopleRequest {
        people: vec![PersonUpsert {
            user_id: "pat-a".to_owned(),
            email: Some("pat@a.example".to_owned()),
            ..PersonUpsert::default()
        }],
    };
    let r = people
        .import_people(tokio_stream::iter([chunk]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.received_count, r.rejected_count), (1, 0));
    entities
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: "seat-a".to_owned(),
                display_name: "B's own seat".to_owned(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await
        .expect("B may use the same type id");

    assert_eq!(snapshot(&app, &a).await, before, "A is unchanged");
}

/// A gateway call: method, path, the family's key header, body, outcome.
type Route<'h> = (
    reqwest::Method,
    String,
    &'h (&'static str, String),
    Option<serde_json::Value>,
    Outcome,
);

/// Every gateway route, with B's key in each family's header.
async fn rest_calls_find_nothing(app: &TestApp, a: &RecordsOfA, b_key: &str) {
    use reqwest::Method;
    use serde_json::json;
    let flameup = ("authorization", format!("Bearer {b_key}"));
    let rapidly = flameup.clone();
    let stigg = ("x-api-key", b_key.to_owned());
    let schematic = ("x-schematic-api-key", b_key.to_owned());
    let ws = &a.workspace;
    let (p, c, u, m) = (&a.person, &a.customer, &a.user, &a.membership);
    let user_keys = json!({ "keys": { "email": "u@a.example" } });
    let company_keys = json!({ "keys": { "external_id": "acme" } });
    let routes: Vec<Route> = vec![
        // Flameup (seed 002)
        (
            Method::GET,
            format!("/api/v1/people/{p}"),
            &flameup,
            None,
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/api/v1/people/{p}"),
            &flameup,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/v1/people".into(),
            &flameup,
            None,
            Outcome::NothingOfA,
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/people/{p}"),
            &flameup,
            None,
            Outcome::NotFound,
        ),
        (
            Method::PUT,
            format!("/api/v1/workspaces/{ws}/people/{p}"),
            &flameup,
            Some(json!({ "firstName": "x" })),
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}/people/{p}"),
            &flameup,
            None,
            Outcome::NotFound,
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/people"),
            &flameup,
            Some(json!({ "userId": "pat-a" })),
            Outcome::NotFound,
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/people/upsert"),
            &flameup,
            Some(json!({ "userId": "pat-a" })),
            Outcome::NotFound,
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/people/batch"),
            &flameup,
            Some(json!({ "people": [{ "userId": "pat-a" }] })),
            Outcome::NotFound,
        ),
        // Rapidly (seed 003)
        (
            Method::GET,
            format!("/api/customers/{c}"),
            &rapidly,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/customers/external/acme".into(),
            &rapidly,
            None,
            Outcome::NotFound,
        ),
        (
            Method::PATCH,
            format!("/api/customers/{c}"),
            &rapidly,
            Some(json!({ "name": "x" })),
            Outcome::NotFound,
        ),
        (
            Method::PATCH,
            "/api/customers/external/acme".into(),
            &rapidly,
            Some(json!({ "name": "x" })),
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/api/customers/{c}"),
            &rapidly,
            None,
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            "/api/customers/external/acme".into(),
            &rapidly,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/customers".into(),
            &rapidly,
            None,
            Outcome::NothingOfA,
        ),
        // Stigg (seed 000)
        (
            Method::PUT,
            "/api/v1-beta/customers/acme/entities".into(),
            &stigg,
            Some(json!({ "entities": [{ "id": "e1", "entityTypeId": "seat-a" }] })),
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/v1-beta/customers/acme/entities/e1".into(),
            &stigg,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/v1-beta/customers/acme/entities".into(),
            &stigg,
            None,
            Outcome::NotFound,
        ),
        (
            Method::POST,
            "/api/v1-beta/customers/acme/entities/archive".into(),
            &stigg,
            Some(json!({ "ids": ["e1"] })),
            Outcome::NotFound,
        ),
        (
            Method::POST,
            "/api/v1-beta/customers/acme/entities/unarchive".into(),
            &stigg,
            Some(json!({ "ids": ["e1"] })),
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/api/v1-beta/entity-types".into(),
            &stigg,
            None,
            Outcome::NothingOfA,
        ),
        // Schematic (seed 001)
        (
            Method::GET,
            format!("/users/{u}"),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/users/lookup?keys[email]=u@a.example".into(),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/users".into(),
            &schematic,
            None,
            Outcome::NothingOfA,
        ),
        (
            Method::GET,
            "/users/count".into(),
            &schematic,
            None,
            Outcome::Empty,
        ),
        (
            Method::POST,
            "/user-traits".into(),
            &schematic,
            Some(
                json!({ "keys": { "email": "u@a.example" }, "trait": "logins", "incr": 1, "update_only": true }),
            ),
            Outcome::NotFound,
        ),
        (
            Method::GET,
            format!("/companies/{c}"),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/companies/lookup?keys[external_id]=acme".into(),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::GET,
            "/companies".into(),
            &schematic,
            None,
            Outcome::NothingOfA,
        ),
        (
            Method::GET,
            "/companies/count".into(),
            &schematic,
            None,
            Outcome::Empty,
        ),
        (
            Method::POST,
            "/company-traits".into(),
            &schematic,
            Some(
                json!({ "keys": { "external_id": "acme" }, "trait": "seats", "incr": 1, "update_only": true }),
            ),
            Outcome::NotFound,
        ),
        (
            Method::POST,
            "/company-memberships".into(),
            &schematic,
            Some(json!({ "company_id": c, "user_id": u })),
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/company-memberships/{m}"),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/users/{u}"),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::POST,
            "/users/delete".into(),
            &schematic,
            Some(user_keys),
            Outcome::NotFound,
        ),
        (
            Method::DELETE,
            format!("/companies/{c}"),
            &schematic,
            None,
            Outcome::NotFound,
        ),
        (
            Method::POST,
            "/companies/delete".into(),
            &schematic,
            Some(company_keys),
            Outcome::NotFound,
        ),
    ];
    for (method, path, (header, value), body, want) in routes {
        let (status, reply) = app
            .rest_json(method.clone(), &path, Some((header, value)), body.as_ref())
            .await;
        match want {
            Outcome::NotFound => assert_eq!(
                status,
                reqwest::StatusCode::NOT_FOUND,
                "{method} {path}: {reply}"
            ),
            Outcome::Empty => {
                assert!(status.is_success(), "{method} {path}: {status} {reply}");
                assert_eq!(reply["data"]["count"], 0, "{method} {path}: {reply}");
            }
            Outcome::NothingOfA => {
                assert!(status.is_success(), "{method} {path}: {status} {reply}");
                let text = reply.to_string();
                for marker in MARKERS {
                    assert!(
                        !text.contains(marker),
                        "{method} {path} showed B {marker:?}"
                    );
                }
            }
        }
    }
}
