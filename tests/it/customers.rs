//! CustomerService over the wire: CRUD, masks, every seed 003 rule with its
//! code and field path, tenancy and a 32-way race.

use std::collections::HashMap;

use kith::pb::kith::v1::{
    self as pb, CreateCustomerRequest, CustomerType, DeleteCustomerRequest, GetCustomerRequest,
    ListCustomersRequest, MetadataValue, UpdateCustomerRequest, get_customer_request,
    metadata_value::Kind, update_customer_request,
};
use prost_types::FieldMask;
use tonic::Code;

use crate::grpc_support::{assert_error, error_of};
use crate::harness::{Authed, Backend, TestApp, backend_tests, require};
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;

backend_tests!(
    customer_lifecycle_create_update_get_list_delete,
    update_changes_only_masked_fields,
    update_without_mask_changes_populated_fields,
    field_rules_report_every_violation_with_its_path,
    metadata_rules,
    billing_address_rules,
    transitions_are_refused_together_and_write_nothing,
    uniqueness_clashes_name_their_field,
    deleting_frees_email_and_external_id,
    another_workspace_sees_nothing,
    thirty_two_racing_creates_with_one_email_yield_one_customer,
    listing_pages_and_filters,
);

type Client = CustomerServiceClient<Authed>;

fn string(value: &str) -> MetadataValue {
    MetadataValue {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}

fn customer(email: &str) -> pb::Customer {
    pb::Customer {
        email: Some(email.to_owned()),
        ..pb::Customer::default()
    }
}

async fn create(
    client: &mut Client,
    customer: pb::Customer,
) -> Result<pb::Customer, tonic::Status> {
    client
        .create_customer(CreateCustomerRequest {
            customer: Some(customer),
        })
        .await
        .map(|r| r.into_inner().customer.unwrap())
}

async fn get(client: &mut Client, id: &str) -> Result<pb::Customer, tonic::Status> {
    client
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(id.to_owned())),
        })
        .await
        .map(|r| r.into_inner().customer.unwrap())
}

async fn update(
    client: &mut Client,
    id: &str,
    customer: pb::Customer,
    mask: &[&str],
) -> Result<pb::Customer, tonic::Status> {
    client
        .update_customer(UpdateCustomerRequest {
            lookup: Some(update_customer_request::Lookup::Id(id.to_owned())),
            customer: Some(customer),
            update_mask: (!mask.is_empty()).then(|| FieldMask {
                paths: mask.iter().map(ToString::to_string).collect(),
            }),
        })
        .await
        .map(|r| r.into_inner().customer.unwrap())
}

async fn customer_lifecycle_create_update_get_list_delete(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let created = create(
        &mut client,
        pb::Customer {
            email: Some("ada@example.com".into()),
            name: Some("Ada".into()),
            external_id: Some("usr_1337".into()),
            metadata: HashMap::from([("plan".to_owned(), string("pro"))]),
            ..pb::Customer::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        created.r#type,
        CustomerType::Individual as i32,
        "unset type is individual"
    );
    assert_eq!(
        created.updated_at, created.created_at,
        "a new customer was last updated when it was created"
    );
    assert!(created.deleted_at.is_none());
    assert!(
        created
            .avatar_url
            .starts_with("https://www.gravatar.com/avatar/")
    );
    assert!(!created.email_verified);
    assert!(!created.workspace_id.is_empty());

    let updated = update(
        &mut client,
        &created.id,
        pb::Customer {
            name: Some("Ada Lovelace".into()),
            ..pb::Customer::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    assert_eq!(updated.name.as_deref(), Some("Ada Lovelace"));
    assert_ne!(
        updated.updated_at, updated.created_at,
        "an update moves updated_at"
    );

    let by_external = client
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::ExternalId("usr_1337".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(by_external, updated);

    let listed = client
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers, std::slice::from_ref(&updated));
    assert!(listed.next_page_token.is_empty());

    let deleted = client
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::Id(created.id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    let (code, reason, _) = error_of(get(&mut client, &created.id).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "ERROR_REASON_NOT_FOUND")
    );
}

async fn update_changes_only_masked_fields(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let created = create(
        &mut client,
        pb::Customer {
            email: Some("m@example.com".into()),
            name: Some("Kept".into()),
            metadata: HashMap::from([("a".to_owned(), string("1"))]),
            ..pb::Customer::default()
        },
    )
    .await
    .unwrap();
    // Every field is sent, but only metadata is named: the rest is ignored.
    let sent = pb::Customer {
        email: Some("other@example.com".into()),
        name: Some("Ignored".into()),
        metadata: HashMap::from([("b".to_owned(), string("2"))]),
        ..pb::Customer::default()
    };
    let updated = update(&mut client, &created.id, sent, &["metadata"])
        .await
        .unwrap();
    assert_eq!(updated.email.as_deref(), Some("m@example.com"));
    assert_eq!(updated.name.as_deref(), Some("Kept"));
    assert_eq!(
        updated.metadata,
        HashMap::from([("b".to_owned(), string("2"))]),
        "a sent map replaces the stored one"
    );

    // A named field left unset is cleared; an empty name reads as unset.
    let cleared = update(
        &mut client,
        &created.id,
        pb::Customer::default(),
        &["name", "metadata"],
    )
    .await
    .unwrap();
    assert_eq!(cleared.name, None);
    assert!(cleared.metadata.is_empty());
    let empty_name = pb::Customer {
        name: Some(String::new()),
        ..pb::Customer::default()
    };
    let renamed = update(&mut client, &created.id, empty_name, &["name"])
        .await
        .unwrap();
    assert_eq!(renamed.name, None);

    assert_error(
        update(
            &mut client,
            &created.id,
            pb::Customer::default(),
            &["id", "nickname"],
        )
        .await,
        Code::InvalidArgument,
        &["update_mask", "update_mask"],
    );
}

async fn update_without_mask_changes_populated_fields(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let created = create(
        &mut client,
        pb::Customer {
            email: Some("p@example.com".into()),
            name: Some("Kept".into()),
            ..pb::Customer::default()
        },
    )
    .await
    .unwrap();
    let sent = pb::Customer {
        r#type: CustomerType::Team.into(),
        ..pb::Customer::default()
    };
    let updated = update(&mut client, &created.id, sent, &[]).await.unwrap();
    assert_eq!(updated.r#type, CustomerType::Team as i32);
    assert_eq!(updated.name.as_deref(), Some("Kept"));
    assert_eq!(updated.email.as_deref(), Some("p@example.com"));
}

async fn field_rules_report_every_violation_with_its_path(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let bad = pb::Customer {
        email: Some("not-an-email".into()),
        name: Some("n".repeat(257)),
        external_id: Some("x".repeat(256)),
        billing_address: Some(pb::BillingAddress {
            country: "XX".into(),
            ..pb::BillingAddress::default()
        }),
        ..pb::Customer::default()
    };
    let (code, reason, mut fields) = error_of(create(&mut client, bad).await);
    fields.sort();
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(reason, "ERROR_REASON_INVALID_FIELD");
    assert_eq!(
        fields,
        ["billing_address.country", "email", "external_id", "name"]
    );

    assert_error(
        create(&mut client, pb::Customer::default()).await,
        Code::InvalidArgument,
        &["email"],
    );
    // A team may be created without an email.
    let team = pb::Customer {
        r#type: CustomerType::Team.into(),
        name: Some("Acme".into()),
        ..pb::Customer::default()
    };
    let team = create(&mut client, team).await.unwrap();
    assert_eq!(team.avatar_url, "");

    let created = create(&mut client, customer("ok@example.com"))
        .await
        .unwrap();
    let long = pb::Customer {
        name: Some("n".repeat(257)),
        email: Some("bad@".into()),
        ..pb::Customer::default()
    };
    assert_error(
        update(&mut client, &created.id, long, &["name", "email"]).await,
        Code::InvalidArgument,
        &["email", "name"],
    );
    assert_eq!(
        get(&mut client, &created.id).await.unwrap(),
        created,
        "nothing was written"
    );
    // An email cannot be removed: named but unset means "no change" (seed 003).
    let kept = update(
        &mut client,
        &created.id,
        pb::Customer::default(),
        &["email"],
    )
    .await
    .unwrap();
    assert_eq!(kept.email.as_deref(), Some("ok@example.com"));
    assert_error(
        get(&mut client, "not-a-uuid").await,
        Code::InvalidArgument,
        &["id"],
    );
}

async fn metadata_rules(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let too_many: HashMap<_, _> = (0..51).map(|i| (format!("k{i}"), string("v"))).collect();
    assert_error(
        create(
            &mut client,
            pb::Customer {
                metadata: too_many,
                ..customer("a@example.com")
            },
        )
        .await,
        Code::InvalidArgument,
        &["metadata"],
    );
    let bad = HashMap::from([
        ("k".repeat(41), string("v")),
        ("empty".to_owned(), string("")),
        ("long".to_owned(), string(&"v".repeat(501))),
        (
            "nan".to_owned(),
            MetadataValue {
                kind: Some(Kind::FloatValue(f64::NAN)),
            },
        ),
        ("unset".to_owned(), MetadataValue { kind: None }),
    ]);
    let with_bad = pb::Customer {
        metadata: bad,
        r#type: 7,
        ..customer("a@example.com")
    };
    let (code, _, mut fields) = error_of(create(&mut client, with_bad).await);
    fields.sort();
    assert_eq!(code, Code::InvalidArgument);
    let long_key = format!("metadata.{}", "k".repeat(41));
    assert_eq!(
        fields,
        [
            "metadata.empty",
            long_key.as_str(),
            "metadata.long",
            "metadata.nan",
            "metadata.unset",
            "type"
        ],
        "wire-level and rule violations are reported together"
    );

    let fifty: HashMap<_, _> = (0..50)
        .map(|i| {
            let kind = match i % 4 {
                0 => Kind::StringValue("x".repeat(500)),
                1 => Kind::IntValue(-i),
                2 => Kind::FloatValue(1.5),
                _ => Kind::BoolValue(true),
            };
            (format!("{:0>40}", i), MetadataValue { kind: Some(kind) })
        })
        .collect();
    let created = create(
        &mut client,
        pb::Customer {
            metadata: fifty.clone(),
            ..customer("a@example.com")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        created.metadata, fifty,
        "the limits themselves are allowed and round-trip typed"
    );
}

async fn billing_address_rules(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let address = |country: &str, state: Option<&str>| pb::BillingAddress {
        country: country.to_owned(),
        state: state.map(str::to_owned),
        line1: Some(String::new()),
        ..pb::BillingAddress::default()
    };
    let with = |address| pb::Customer {
        billing_address: Some(address),
        ..customer("b@example.com")
    };

    let created = create(&mut client, with(address("us", Some("ca"))))
        .await
        .unwrap();
    let stored = created.billing_address.clone().unwrap();
    assert_eq!(stored.country, "US");
    assert_eq!(stored.state.as_deref(), Some("US-CA"));
    assert_eq!(stored.line1, None, "empty lines read as unset");

    for (country, state, field) in [
        ("RU", None, "billing_address.country"),
        ("ZZ", None, "billing_address.country"),
        ("", None, "billing_address.country"),
        ("US", Some("ZZ"), "billing_address.state"),
        ("CA", Some("XX"), "billing_address.state"),
    ] {
        assert_error(
            create(&mut client, with(address(country, state))).await,
            Code::InvalidArgument,
            &[field],
        );
    }
    let canada = create(
        &mut client,
        pb::Customer {
            billing_address: Some(address("CA", Some("CA-QC"))),
            ..customer("c@example.com")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        canada.billing_address.unwrap().state.as_deref(),
        Some("CA-QC")
    );
    let france = create(
        &mut client,
        pb::Customer {
            billing_address: Some(address("fr", Some("Île-de-France"))),
            ..customer("f@example.com")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        france.billing_address.unwrap().state.as_deref(),
        Some("Île-de-France")
    );

    assert_error(
        update(
            &mut client,
            &created.id,
            pb::Customer::default(),
            &["billing_address"],
        )
        .await,
        Code::FailedPrecondition,
        &["billing_address"],
    );
    let moved = update(
        &mut client,
        &created.id,
        pb::Customer {
            billing_address: Some(address("de", None)),
            ..pb::Customer::default()
        },
        &["billing_address"],
    )
    .await
    .unwrap();
    assert_eq!(moved.billing_address.unwrap().country, "DE");
}

async fn transitions_are_refused_together_and_write_nothing(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let created = create(&mut client, customer("t@example.com"))
        .await
        .unwrap();

    // external_id may be set once; the same value again is a no-op.
    let set = pb::Customer {
        external_id: Some("ext_1".into()),
        ..pb::Customer::default()
    };
    let with_external = update(&mut client, &created.id, set.clone(), &["external_id"])
        .await
        .unwrap();
    assert_eq!(with_external.external_id.as_deref(), Some("ext_1"));
    update(&mut client, &created.id, set, &["external_id"])
        .await
        .unwrap();

    let team = pb::Customer {
        r#type: CustomerType::Team.into(),
        ..pb::Customer::default()
    };
    let team = update(&mut client, &created.id, team, &["type"])
        .await
        .unwrap();
    assert_eq!(team.r#type, CustomerType::Team as i32);

    let refused = pb::Customer {
        external_id: Some("ext_2".into()),
        r#type: CustomerType::Individual.into(),
        name: Some("Would change".into()),
        ..pb::Customer::default()
    };
    let (code, reason, mut fields) = error_of(
        update(
            &mut client,
            &created.id,
            refused,
            &["external_id", "type", "name"],
        )
        .await,
    );
    fields.sort();
    assert_eq!(code, Code::FailedPrecondition);
    assert_eq!(reason, "ERROR_REASON_FORBIDDEN_TRANSITION");
    assert_eq!(fields, ["external_id", "type"]);

    // Clearing counts as a change too: team → unset is a downgrade.
    assert_error(
        update(
            &mut client,
            &created.id,
            pb::Customer::default(),
            &["type", "external_id"],
        )
        .await,
        Code::FailedPrecondition,
        &["external_id", "type"],
    );
    assert_eq!(
        get(&mut client, &created.id).await.unwrap(),
        team,
        "nothing was written"
    );
}

async fn uniqueness_clashes_name_their_field(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    create(
        &mut client,
        pb::Customer {
            external_id: Some("e1".into()),
            ..customer("u@example.com")
        },
    )
    .await
    .unwrap();
    let (code, reason, fields) = error_of(create(&mut client, customer("U@Example.COM")).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::AlreadyExists, "ERROR_REASON_ALREADY_EXISTS")
    );
    assert_eq!(fields, ["email"]);
    assert_error(
        create(
            &mut client,
            pb::Customer {
                external_id: Some("e1".into()),
                ..customer("v@example.com")
            },
        )
        .await,
        Code::AlreadyExists,
        &["external_id"],
    );
    let other = create(&mut client, customer("w@example.com"))
        .await
        .unwrap();
    assert_error(
        update(
            &mut client,
            &other.id,
            customer("u@example.com"),
            &["email"],
        )
        .await,
        Code::AlreadyExists,
        &["email"],
    );
    let taken = pb::Customer {
        external_id: Some("e1".into()),
        ..pb::Customer::default()
    };
    assert_error(
        update(&mut client, &other.id, taken, &["external_id"]).await,
        Code::AlreadyExists,
        &["external_id"],
    );
}

async fn deleting_frees_email_and_external_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let first = pb::Customer {
        external_id: Some("e".into()),
        ..customer("d@example.com")
    };
    create(&mut client, first.clone()).await.unwrap();
    client
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::ExternalId("e".into())),
        })
        .await
        .unwrap();
    let second = create(&mut client, first).await.unwrap();
    let again = client
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::Id(second.id.clone())),
        })
        .await
        .unwrap();
    assert!(again.into_inner().customer.unwrap().deleted_at.is_some());
    let twice = client
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::Id(second.id.clone())),
        })
        .await;
    assert_error(twice, Code::NotFound, &[]);
}

async fn another_workspace_sees_nothing(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut mine = app.customers();
    let theirs_key = app.other_workspace_key().await;
    let mut theirs = app.customers_with(Some(&theirs_key));
    let created = create(
        &mut mine,
        pb::Customer {
            external_id: Some("x".into()),
            ..customer("i@example.com")
        },
    )
    .await
    .unwrap();

    assert_error(get(&mut theirs, &created.id).await, Code::NotFound, &[]);
    let by_external = theirs
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::ExternalId("x".into())),
        })
        .await;
    assert_error(by_external, Code::NotFound, &[]);
    assert_error(
        update(
            &mut theirs,
            &created.id,
            pb::Customer {
                name: Some("hijack".into()),
                ..pb::Customer::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
        &[],
    );
    let deleted = theirs
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::Id(created.id.clone())),
        })
        .await;
    assert_error(deleted, Code::NotFound, &[]);
    let listed = theirs
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.customers.is_empty());
    assert_eq!(
        get(&mut mine, &created.id).await.unwrap(),
        created,
        "A is unchanged"
    );
}

async fn thirty_two_racing_creates_with_one_email_yield_one_customer(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let calls = (0..32).map(|i| {
        let mut client = app.customers();
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tokio::spawn(async move { create(&mut client, customer(email)).await })
    });
    let handles: Vec<_> = calls.collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one create wins");
    for result in results.into_iter().filter(Result::is_err) {
        assert_error(result, Code::AlreadyExists, &["email"]);
    }
    let listed = app
        .customers()
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.into_inner().customers.len(), 1);
}

async fn listing_pages_and_filters(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        create(
            &mut client,
            pb::Customer {
                metadata: HashMap::from([("tier".to_owned(), string(tier))]),
                ..customer(&format!("l{i}@example.com"))
            },
        )
        .await
        .unwrap();
    }
    let even = HashMap::from([("tier".to_owned(), string("even"))]);
    let first = client
        .list_customers(ListCustomersRequest {
            page_size: 2,
            metadata: even.clone(),
            ..ListCustomersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.customers.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_customers(ListCustomersRequest {
            page_size: 2,
            metadata: even.clone(),
            page_token: first.next_page_token.clone(),
            ..ListCustomersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.customers.len(), 1);
    assert!(second.next_page_token.is_empty());
    let emails: Vec<_> = first
        .customers
        .iter()
        .chain(&second.customers)
        .map(|c| c.email.clone().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["l0@example.com", "l2@example.com", "l4@example.com"]
    );

    // A token only continues its own query.
    let (code, reason, fields) = error_of(
        client
            .list_customers(ListCustomersRequest {
                page_token: first.next_page_token,
                ..ListCustomersRequest::default()
            })
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "ERROR_REASON_INVALID_PAGE_TOKEN")
    );
    assert_eq!(fields, ["page_token"]);
    assert_error(
        client
            .list_customers(ListCustomersRequest {
                page_size: -1,
                ..ListCustomersRequest::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_size"],
    );
    let by_email = client
        .list_customers(ListCustomersRequest {
            email: "L3@EXAMPLE.COM".into(),
            ..ListCustomersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_email.customers.len(), 1);
}
