//! Tenant isolation, exhaustively: every RPC and every REST route called
//! with workspace B's key on workspace A's records finds nothing (NOT_FOUND
//! / 404, or a list without them), and A is unchanged afterwards. Calls
//! that create (upserts by key) create in B.

use std::collections::{BTreeSet, HashMap};

use kith::pb::kith::v1::{self as pb, *};
use prost::Message as _;
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::{Backend, TestApp, backend_tests, require};

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
    let mut entities = app.entities();
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
            customer_external_id: "acme".to_owned(),
            entities: vec![EntityUpsert {
                id: "e1".to_owned(),
                type_id: Some("seat-a".to_owned()),
                ..EntityUpsert::default()
            }],
        })
        .await
        .unwrap();
    let person = app
        .people()
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
    let mut users = app.users();
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
    let customer = app
        .customers()
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(a.customer.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    let mut entities = app.entities();
    let listed = entities
        .list_entities(ListEntitiesRequest {
            customer_external_id: "acme".to_owned(),
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
    let person = app
        .people()
        .get_person(GetPersonRequest {
            lookup: Some(get_person_request::Lookup::Id(a.person.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    let mut users = app.users();
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

/// Which RPCs the test has called, so that it fails when the contract has
/// one it does not exercise.
#[derive(Default)]
struct Called(BTreeSet<String>);

impl Called {
    /// Checks a gRPC call's outcome; `name` starts with the RPC's name.
    fn check<T: std::fmt::Debug>(
        &mut self,
        name: &str,
        result: Result<T, tonic::Status>,
        want: Outcome,
    ) {
        self.mark(name);
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

    /// Records a call whose outcome the test checks itself.
    fn mark(&mut self, name: &str) {
        let rpc = name.split_whitespace().next().expect("a name");
        self.0.insert(rpc.to_owned());
    }

    /// Every RPC of every `kith.v1` service in the served descriptor set
    /// was called.
    fn assert_every_rpc(&self) {
        let set = prost_types::FileDescriptorSet::decode(kith::pb::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let contract: BTreeSet<String> = set
            .file
            .iter()
            .filter(|file| file.package() == "kith.v1")
            .flat_map(|file| &file.service)
            .flat_map(|service| &service.method)
            .map(|method| method.name().to_owned())
            .collect();
        let missed: Vec<_> = contract.difference(&self.0).collect();
        assert!(
            missed.is_empty(),
            "RPCs the isolation test does not call: {missed:?}"
        );
        assert!(
            contract.len() >= 36,
            "the contract's RPCs were found: {contract:?}"
        );
    }
}

/// A's endpoint (disabled, so that it does not change while the test runs)
/// is out of B's reach on every WebhookService call, and B's list is empty.
async fn webhooks_find_nothing(app: &TestApp, b_key: &str, called: &mut Called) {
    use Outcome::*;
    let endpoint = app
        .webhooks()
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            endpoint: Some(WebhookEndpoint {
                url: "http://127.0.0.1:9/acme".to_owned(),
                description: "acme hook".to_owned(),
                enabled: Some(false),
                ..WebhookEndpoint::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    let id = endpoint.id.clone();
    let mut webhooks = app.webhooks_with(Some(b_key));
    let r = webhooks
        .get_webhook_endpoint(GetWebhookEndpointRequest { id: id.clone() })
        .await;
    called.check("GetWebhookEndpoint", r, NotFound);
    let r = webhooks
        .list_webhook_endpoints(ListWebhookEndpointsRequest::default())
        .await;
    called.check("ListWebhookEndpoints", r, NothingOfA);
    let r = webhooks
        .update_webhook_endpoint(UpdateWebhookEndpointRequest {
            id: id.clone(),
            endpoint: Some(WebhookEndpoint {
                description: "taken".to_owned(),
                ..WebhookEndpoint::default()
            }),
            update_mask: None,
        })
        .await;
    called.check("UpdateWebhookEndpoint", r, NotFound);
    let r = webhooks
        .rotate_webhook_secret(RotateWebhookSecretRequest { id: id.clone() })
        .await;
    called.check("RotateWebhookSecret", r, NotFound);
    let r = webhooks
        .enable_webhook_endpoint(EnableWebhookEndpointRequest { id: id.clone() })
        .await;
    called.check("EnableWebhookEndpoint", r, NotFound);
    let r = webhooks
        .replay_webhook(ReplayWebhookRequest {
            id: id.clone(),
            from: Some(replay_webhook_request::From::Since(
                prost_types::Timestamp::default(),
            )),
        })
        .await;
    called.check("ReplayWebhook", r, NotFound);
    let r = webhooks
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: id.clone(),
            ..ListWebhookDeliveriesRequest::default()
        })
        .await;
    called.check("ListWebhookDeliveries", r, NotFound);
    let r = webhooks
        .delete_webhook_endpoint(DeleteWebhookEndpointRequest { id: id.clone() })
        .await;
    called.check("DeleteWebhookEndpoint", r, NotFound);
    let r = webhooks
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            endpoint: Some(WebhookEndpoint {
                url: "http://127.0.0.1:9/b".to_owned(),
                enabled: Some(false),
                ..WebhookEndpoint::default()
            }),
        })
        .await;
    called.check("CreateWebhookEndpoint", r, NothingOfA);
    // A's endpoint is as A left it.
    let after = app
        .webhooks()
        .get_webhook_endpoint(GetWebhookEndpointRequest { id })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    assert_eq!(after, endpoint);
}

async fn another_workspaces_key_reaches_nothing_of_a_on_any_call(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let a = set_up_a(&app).await;
    let before = snapshot(&app, &a).await;
    let b_key = app.other_workspace_key().await;
    let mut customers = app.customers_with(Some(&b_key));
    let mut entities = app.entities_with(Some(&b_key));
    let mut people = app.people_with(Some(&b_key));
    let mut users = app.users_with(Some(&b_key));
    use Outcome::{NotFound, NothingOfA};
    let mut called = Called::default();

    // CustomerService
    let by_id = || Some(get_customer_request::Lookup::Id(a.customer.clone()));
    let r = customers
        .get_customer(GetCustomerRequest { lookup: by_id() })
        .await;
    called.check("GetCustomer by id", r, NotFound);
    let lookup = Some(get_customer_request::Lookup::ExternalId("acme".to_owned()));
    let r = customers.get_customer(GetCustomerRequest { lookup }).await;
    called.check("GetCustomer by external id", r, NotFound);
    let r = customers
        .list_customers(ListCustomersRequest::default())
        .await;
    called.check("ListCustomers", r, NothingOfA);
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
    called.check("UpdateCustomer", r, NotFound);
    let r = customers
        .add_customer_member(AddCustomerMemberRequest {
            customer_id: a.customer.clone(),
            user_id: a.user.clone(),
            role: 0,
        })
        .await;
    called.check("AddCustomerMember", r, NotFound);
    let r = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: a.customer.clone(),
            ..Default::default()
        })
        .await;
    called.check("ListCustomerMembers", r, NotFound);
    let r = customers
        .update_customer_member(UpdateCustomerMemberRequest {
            customer_id: a.customer.clone(),
            member_id: a.membership.clone(),
            role: MemberRole::Owner.into(),
        })
        .await;
    called.check("UpdateCustomerMember", r, NotFound);
    let r = customers
        .remove_customer_member(RemoveCustomerMemberRequest {
            customer_id: a.customer.clone(),
            member_id: a.membership.clone(),
        })
        .await;
    called.check("RemoveCustomerMember", r, NotFound);
    let r = customers
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(delete_customer_request::Lookup::Id(a.customer.clone())),
        })
        .await;
    called.check("DeleteCustomer", r, NotFound);

    // EntityService
    let r = entities
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_external_id: "acme".to_owned(),
            entities: vec![EntityUpsert {
                id: "e1".to_owned(),
                type_id: Some("seat-a".to_owned()),
                ..EntityUpsert::default()
            }],
        })
        .await;
    called.check("BatchUpsertEntities", r, NotFound);
    let r = entities
        .get_entity(GetEntityRequest {
            customer_external_id: "acme".to_owned(),
            entity_id: "e1".to_owned(),
        })
        .await;
    called.check("GetEntity", r, NotFound);
    let r = entities
        .list_entities(ListEntitiesRequest {
            customer_external_id: "acme".to_owned(),
            ..ListEntitiesRequest::default()
        })
        .await;
    called.check("ListEntities", r, NotFound);
    let ids = vec!["e1".to_owned()];
    let r = entities
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_external_id: "acme".to_owned(),
            ids: ids.clone(),
        })
        .await;
    called.check("BatchArchiveEntities", r, NotFound);
    let r = entities
        .batch_unarchive_entities(BatchUnarchiveEntitiesRequest {
            customer_external_id: "acme".to_owned(),
            ids,
        })
        .await;
    called.check("BatchUnarchiveEntities", r, NotFound);
    let r = entities
        .list_entity_types(ListEntityTypesRequest::default())
        .await;
    called.check("ListEntityTypes", r, NothingOfA);

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
        called.check("GetPerson", r, NotFound);
    }
    let r = people.list_people(ListPeopleRequest::default()).await;
    called.check("ListPeople", r, NothingOfA);
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
    called.check("UpdatePerson", r, NotFound);
    let r = people
        .delete_person(DeletePersonRequest {
            lookup: Some(delete_person_request::Lookup::ExternalId(
                "pat-a".to_owned(),
            )),
        })
        .await;
    called.check("DeletePerson", r, NotFound);

    // UserService
    let r = users.get_user(GetUserRequest { id: a.user.clone() }).await;
    called.check("GetUser", r, NotFound);
    let r = users
        .lookup_user(LookupUserRequest {
            keys: keys(&[("email", "u@a.example")]),
        })
        .await;
    called.check("LookupUser", r, NotFound);
    let r = users.list_users(ListUsersRequest::default()).await;
    called.check("ListUsers", r, NothingOfA);
    let r = users
        .upsert_user(UpsertUserRequest {
            id: Some(a.user.clone()),
            name: Some("hijacked".to_owned()),
            ..UpsertUserRequest::default()
        })
        .await;
    called.check("UpsertUser by A's id", r, NotFound);
    let r = users
        .upsert_user_trait(UpsertUserTraitRequest {
            keys: keys(&[("email", "u@a.example")]),
            r#trait: "logins".to_owned(),
            change: Some(upsert_user_trait_request::Change::Incr(1)),
            update_only: true,
        })
        .await;
    called.check("UpsertUserTrait", r, NotFound);
    let r = users
        .upsert_company(UpsertCompanyRequest {
            id: Some(a.customer.clone()),
            name: Some("hijacked".to_owned()),
            ..UpsertCompanyRequest::default()
        })
        .await;
    called.check("UpsertCompany by A's id", r, NotFound);
    let company_keys = || keys(&[("external_id", "acme")]);
    let r = users
        .lookup_company(LookupCompanyRequest {
            keys: company_keys(),
        })
        .await;
    called.check("LookupCompany", r, NotFound);
    let r = users
        .get_company(GetCompanyRequest {
            id: a.customer.clone(),
        })
        .await;
    called.check("GetCompany", r, NotFound);
    let r = users
        .upsert_company_trait(UpsertCompanyTraitRequest {
            keys: company_keys(),
            r#trait: "seats".to_owned(),
            change: Some(upsert_company_trait_request::Change::Incr(1)),
            update_only: true,
        })
        .await;
    called.check("UpsertCompanyTrait", r, NotFound);
    let r = users
        .get_or_create_company_membership(GetOrCreateCompanyMembershipRequest {
            company_id: a.customer.clone(),
            user_id: a.user.clone(),
        })
        .await;
    called.check("GetOrCreateCompanyMembership", r, NotFound);
    let r = users
        .list_company_memberships(ListCompanyMembershipsRequest {
            company_id: a.customer.clone(),
            ..ListCompanyMembershipsRequest::default()
        })
        .await;
    called.mark("ListCompanyMemberships");
    match r {
        Err(status) => assert_eq!(status.code(), Code::NotFound),
        Ok(reply) => assert!(reply.into_inner().memberships.is_empty()),
    }
    let r = users
        .delete_company_membership(DeleteCompanyMembershipRequest {
            id: a.membership.clone(),
        })
        .await;
    called.check("DeleteCompanyMembership", r, NotFound);
    let r = users
        .delete_user(DeleteUserRequest {
            lookup: Some(delete_user_request::Lookup::Id(a.user.clone())),
        })
        .await;
    called.check("DeleteUser", r, NotFound);
    let r = users
        .delete_company(DeleteCompanyRequest {
            keys: company_keys(),
        })
        .await;
    called.check("DeleteCompany", r, NotFound);

    // ChangeService
    let mut changes = app.changes_with(Some(&b_key));
    let r = changes.list_changes(ListChangesRequest::default()).await;
    called.check("ListChanges", r, NothingOfA);
    let a_cursor = app
        .changes()
        .list_changes(ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next_cursor;
    let r = changes
        .list_changes(ListChangesRequest {
            cursor: a_cursor.clone(),
            ..ListChangesRequest::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument, "A's cursor");
    let r = changes
        .watch(WatchRequest {
            cursor: a_cursor,
            ..WatchRequest::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument, "A's cursor");
    let r = changes.watch(WatchRequest::default()).await;
    let first = r.unwrap().into_inner().message().await;
    called.check("Watch", first, NothingOfA);

    webhooks_find_nothing(&app, &b_key, &mut called).await;

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
    called.mark("CreateCustomer");
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
    called.mark("BatchUpsertPeople");
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
    called.mark("UpsertUser by A's keys");
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
    called.mark("UpsertPerson");
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
    called.mark("ImportPeople");
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
    called.mark("BatchUpsertEntityTypes");

    assert_eq!(snapshot(&app, &a).await, before, "A is unchanged");
    called.assert_every_rpc();
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
