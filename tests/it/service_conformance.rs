//! The use cases called in process, without a transport, proved on SQLite
//! and on PostgreSQL alike: the rules each one applies and what it stores.

use std::collections::BTreeMap;

use kith::domain::customer::{
    AddressInput, Customer, CustomerFilter, CustomerFilterInput, CustomerInput, CustomerLookup,
    CustomerPatch, CustomerPatchInput, CustomerType, MetadataValue, NewCustomer,
};
use kith::domain::entity::{self, EntityId, EntityTypeInput, EntityUpsertInput};
use kith::domain::page::{KITH_PAGES, PageRequest};
use kith::domain::user::{
    CompanyLookup, CompanyUpsert, Keys, MembershipChange, MembershipInput, Upsert, UpsertInput,
    UserLookup,
};
use kith::domain::workspace::{NewApiKey, PresentedKey, WorkspaceName};
use kith::domain::{Caller, Change, now};
use kith::error::{Error, FieldPath, UniqueIndex};
use kith::service::Service;

use crate::harness::{Backend, TestDb, backend_tests, require};

backend_tests!(
    bootstrap_creates_one_default_workspace_and_key_once,
    workspace_names_are_unique,
    api_keys_are_found_listed_and_revoked,
    customers_are_found_by_id_and_external_id,
    customers_are_invisible_to_other_workspaces,
    email_and_external_id_are_unique_among_live_customers,
    deleted_customers_are_not_found_and_free_their_keys,
    updates_apply_the_domain_rules_atomically,
    an_update_by_external_id_cannot_change_it_or_the_type,
    a_changed_email_resets_verification,
    listing_pages_in_creation_order_without_gaps,
    listing_filters_by_email_external_id_and_typed_metadata,
    entity_batches_merge_and_archive_atomically,
    users_resolve_by_keys_merge_and_release_them_on_delete,
    a_company_key_external_id_is_the_customer_external_id,
);

async fn fresh(backend: Backend) -> Option<(TestDb, Service, Caller)> {
    let db = TestDb::new(backend).await?;
    let service = db.service().await;
    let (workspace, key) = service.bootstrap().await.unwrap().unwrap();
    let caller = Caller::new(workspace.id, key.id);
    Some((db, service, caller))
}

/// A caller of another workspace, made for the test.
async fn other_caller(service: &Service) -> Caller {
    let workspace = service
        .create_workspace(WorkspaceName::parse("other").unwrap())
        .await
        .unwrap();
    let key = service.create_api_key(workspace.id).await.unwrap();
    Caller::new(workspace.id, key.id)
}

fn first_page() -> PageRequest {
    PageRequest::parse(&KITH_PAGES, None, "", "").unwrap()
}

fn new_customer(email: &str, external_id: Option<&str>) -> NewCustomer {
    NewCustomer::parse(CustomerInput {
        email: Some(email.to_owned()),
        external_id: external_id.map(str::to_owned),
        ..CustomerInput::default()
    })
    .unwrap()
}

async fn insert(service: &Service, caller: &Caller, customer: NewCustomer) -> Customer {
    service
        .create_customer(caller, customer)
        .await
        .unwrap()
        .customer
}

fn patch(input: CustomerPatchInput, lookup: &CustomerLookup) -> CustomerPatch {
    CustomerPatch::parse(input, lookup).unwrap()
}

fn keys(pairs: &[(&str, &str)]) -> Keys {
    Keys::parse(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        &FieldPath::field("keys"),
        true,
    )
    .unwrap()
}

async fn bootstrap_creates_one_default_workspace_and_key_once(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let service = db.service().await;
    let (workspace, key) = service
        .bootstrap()
        .await
        .unwrap()
        .expect("first start bootstraps");
    assert_eq!(workspace.name.as_str(), "default");
    assert!(
        service.bootstrap().await.unwrap().is_none(),
        "second start does not"
    );
    let presented = PresentedKey::parse(key.reveal()).unwrap();
    let stored = service.find_api_key(presented.id).await.unwrap().unwrap();
    let caller = stored.admit(&presented).unwrap();
    assert_eq!((caller.workspace, caller.key), (workspace.id, key.id));
}

async fn workspace_names_are_unique(backend: Backend) {
    let (_db, service, _) = require!(fresh(backend).await);
    let name = WorkspaceName::parse("acme").unwrap();
    let acme = service.create_workspace(name.clone()).await.unwrap();
    let clash = service.create_workspace(name).await.unwrap_err();
    assert!(
        clash.is_clash_on(&[UniqueIndex::WorkspaceName]),
        "expected a name clash, got {clash:?}"
    );
    assert_eq!(clash.violations()[0].field.to_string(), "name");
    let by_name = service.find_workspace("acme").await.unwrap().unwrap();
    let by_id = service
        .find_workspace(&acme.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name, acme);
    assert_eq!(by_id, acme);
    assert!(service.find_workspace("nobody").await.unwrap().is_none());
}

async fn api_keys_are_found_listed_and_revoked(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let key = service.create_api_key(caller.workspace).await.unwrap();
    let listed = service.list_api_keys(caller.workspace).await.unwrap();
    assert_eq!(listed.len(), 2, "bootstrap key and the new one");
    assert!(
        listed
            .iter()
            .any(|k| k.id == key.id && k.revoked_at.is_none())
    );

    let revoked = service.revoke_api_key(key.id).await.unwrap();
    let first = revoked.revoked_at.expect("revoked");
    let again = service.revoke_api_key(key.id).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first),
        "revoking twice keeps the first time"
    );
    let presented = PresentedKey::parse(key.reveal()).unwrap();
    let stored = service.find_api_key(key.id).await.unwrap().unwrap();
    assert!(matches!(
        stored.admit(&presented),
        Err(Error::Unauthenticated)
    ));

    let unknown = NewApiKey::generate(caller.workspace);
    assert!(service.find_api_key(unknown.id).await.unwrap().is_none());
    assert!(matches!(
        service.revoke_api_key(unknown.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn customers_are_found_by_id_and_external_id(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let mut input = CustomerInput {
        email: Some("Ada@Example.com".into()),
        external_id: Some("usr_1".into()),
        name: Some("Ada".into()),
        kind: Some(CustomerType::Team),
        billing_address: Some(AddressInput {
            country: "us".into(),
            state: Some("ny".into()),
            city: Some("New York".into()),
            ..AddressInput::default()
        }),
        ..CustomerInput::default()
    };
    input.metadata = Some(BTreeMap::from([
        ("plan".to_owned(), MetadataValue::String("pro".into())),
        ("seats".to_owned(), MetadataValue::Int(3)),
        ("ratio".to_owned(), MetadataValue::Float(0.5)),
        ("trial".to_owned(), MetadataValue::Bool(false)),
    ]));
    let created = insert(&service, &caller, NewCustomer::parse(input).unwrap()).await;

    let by_id = service
        .get_customer(&caller, &CustomerLookup::Id(created.id))
        .await
        .unwrap();
    let by_external = service
        .get_customer(&caller, &CustomerLookup::by_external_id("usr_1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        by_id.customer, created,
        "every field reads back exactly as written"
    );
    assert_eq!(by_external.customer, created);
    let address = by_id.customer.billing_address.unwrap().lines();
    assert_eq!(
        (address.country.as_str(), address.state.as_deref()),
        ("US", Some("US-NY"))
    );
}

async fn customers_are_invisible_to_other_workspaces(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let other = other_caller(&service).await;
    let customer = insert(
        &service,
        &caller,
        new_customer("a@example.com", Some("ext")),
    )
    .await;
    let by_id = CustomerLookup::Id(customer.id);
    let by_external = CustomerLookup::by_external_id("ext").unwrap();
    for lookup in [&by_id, &by_external] {
        assert!(matches!(
            service.get_customer(&other, lookup).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            service
                .update_customer(&other, lookup, &CustomerPatch::default())
                .await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            service.delete_customer(&other, lookup).await,
            Err(Error::NotFound { .. })
        ));
    }
    let listed = service
        .list_customers(&other, &CustomerFilter::default(), &first_page())
        .await
        .unwrap()
        .items;
    assert!(listed.items.is_empty());
    // The same email and external id are free in another workspace.
    insert(&service, &other, new_customer("a@example.com", Some("ext"))).await;
    let mine = service.get_customer(&caller, &by_id).await.unwrap();
    assert!(mine.customer.deleted_at.is_none());
}

async fn email_and_external_id_are_unique_among_live_customers(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    insert(
        &service,
        &caller,
        new_customer("a@example.com", Some("ext")),
    )
    .await;

    let field_of = |error: Error| match error {
        Error::AlreadyExists { violation, .. } => violation.field.to_string(),
        other => panic!("expected a clash, got {other:?}"),
    };
    let email_clash = service
        .create_customer(&caller, new_customer("A@EXAMPLE.com", None))
        .await
        .unwrap_err();
    assert_eq!(
        field_of(email_clash),
        "email",
        "emails compare case-insensitively"
    );
    let external_clash = service
        .create_customer(&caller, new_customer("b@example.com", Some("ext")))
        .await
        .unwrap_err();
    assert_eq!(field_of(external_clash), "external_id");

    let second = insert(&service, &caller, new_customer("b@example.com", None)).await;
    let lookup = CustomerLookup::Id(second.id);
    let steal_email = CustomerPatchInput {
        email: Change::Set("a@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let result = service
        .update_customer(&caller, &lookup, &patch(steal_email, &lookup))
        .await
        .unwrap_err();
    assert_eq!(field_of(result), "email");
}

async fn deleted_customers_are_not_found_and_free_their_keys(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let customer = insert(
        &service,
        &caller,
        new_customer("a@example.com", Some("ext")),
    )
    .await;
    let lookup = CustomerLookup::by_external_id("ext").unwrap();
    let deleted = service.delete_customer(&caller, &lookup).await.unwrap();
    assert_eq!(deleted.customer.id, customer.id);
    assert!(deleted.customer.deleted_at.is_some());

    let by_id = CustomerLookup::Id(customer.id);
    assert!(matches!(
        service.get_customer(&caller, &by_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        service.delete_customer(&caller, &by_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        service
            .update_customer(&caller, &by_id, &CustomerPatch::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    let listed = service
        .list_customers(&caller, &CustomerFilter::default(), &first_page())
        .await
        .unwrap()
        .items;
    assert!(listed.items.is_empty());

    let reborn = insert(
        &service,
        &caller,
        new_customer("A@example.com", Some("ext")),
    )
    .await;
    let found = service.get_customer(&caller, &lookup).await.unwrap();
    assert_eq!(found.customer.id, reborn.id);
}

async fn updates_apply_the_domain_rules_atomically(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let team = NewCustomer::parse(CustomerInput {
        email: Some("t@example.com".into()),
        external_id: Some("team_1".into()),
        kind: Some(CustomerType::Team),
        ..CustomerInput::default()
    })
    .unwrap();
    let customer = insert(&service, &caller, team).await;
    let lookup = CustomerLookup::Id(customer.id);

    let refused = CustomerPatchInput {
        external_id: Change::Set("team_2".into()),
        kind: Change::Set(CustomerType::Individual),
        name: Change::Set("Renamed".into()),
        ..CustomerPatchInput::default()
    };
    match service
        .update_customer(&caller, &lookup, &patch(refused, &lookup))
        .await
    {
        Err(Error::ForbiddenTransition(v)) => {
            let fields: Vec<_> = v.iter().map(|v| v.field.to_string()).collect();
            assert_eq!(fields, ["external_id", "type"]);
        }
        other => panic!("expected refused transitions, got {other:?}"),
    }
    let unchanged = service.get_customer(&caller, &lookup).await.unwrap();
    assert_eq!(
        unchanged.customer, customer,
        "a refused update writes nothing"
    );

    let accepted = CustomerPatchInput {
        external_id: Change::Set("team_1".into()),
        name: Change::Set("Renamed".into()),
        ..CustomerPatchInput::default()
    };
    let updated = service
        .update_customer(&caller, &lookup, &patch(accepted, &lookup))
        .await
        .unwrap();
    assert_eq!(updated.customer.name.as_ref().unwrap().as_str(), "Renamed");
    assert!(updated.customer.modified_at.is_some());
    assert_eq!(
        service.get_customer(&caller, &lookup).await.unwrap(),
        updated
    );
}

async fn an_update_by_external_id_cannot_change_it_or_the_type(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    insert(
        &service,
        &caller,
        new_customer("e@example.com", Some("keep-me")),
    )
    .await;
    let lookup = CustomerLookup::by_external_id("keep-me").unwrap();
    let renaming = CustomerPatchInput {
        external_id: Change::Set("keep-me".into()),
        kind: Change::Set(CustomerType::Team),
        ..CustomerPatchInput::default()
    };
    let refused = CustomerPatch::parse(renaming.clone(), &lookup).unwrap_err();
    let mut fields: Vec<_> = refused
        .violations()
        .iter()
        .map(|v| v.field.to_string())
        .collect();
    fields.sort();
    assert_eq!(fields, ["external_id", "type"]);
    assert!(
        CustomerPatch::parse(renaming, &CustomerLookup::Id(uuid::Uuid::nil())).is_ok(),
        "by id, the same change is the transition rules' to judge"
    );
}

async fn a_changed_email_resets_verification(backend: Backend) {
    let (db, service, caller) = require!(fresh(backend).await);
    let mut customer = new_customer("v@example.com", None).into_customer(caller.workspace, now());
    customer.email_verified = true;
    // Verified customers only come from outside the API.
    let store = db.store().await;
    let mut tx = store.write().await.unwrap();
    tx.insert_customer(&customer).await.unwrap();
    tx.commit().await.unwrap();
    let lookup = CustomerLookup::Id(customer.id);

    let same = CustomerPatchInput {
        email: Change::Set("v@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let kept = service
        .update_customer(&caller, &lookup, &patch(same, &lookup))
        .await
        .unwrap()
        .customer;
    assert!(kept.email_verified, "the same email keeps verification");
    assert!(kept.modified_at.is_none(), "nothing changed");

    let new = CustomerPatchInput {
        email: Change::Set("w@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let changed = service
        .update_customer(&caller, &lookup, &patch(new, &lookup))
        .await
        .unwrap()
        .customer;
    assert!(!changed.email_verified);
    let stored = service.get_customer(&caller, &lookup).await.unwrap();
    assert!(!stored.customer.email_verified);
}

async fn listing_pages_in_creation_order_without_gaps(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let mut existing = Vec::new();
    for i in 0..7 {
        let customer = insert(
            &service,
            &caller,
            new_customer(&format!("c{i}@example.com"), None),
        )
        .await;
        existing.push((customer.created_at, customer.id));
    }
    existing.sort();
    let filter = CustomerFilter::default();
    let query = filter.canonical(caller.workspace);
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut late = None;
    loop {
        let page = PageRequest::parse(&KITH_PAGES, Some(3), &token, &query).unwrap();
        let result = service
            .list_customers(&caller, &filter, &page)
            .await
            .unwrap()
            .items;
        seen.extend(result.items.iter().map(|c| c.customer.id));
        // A customer created mid-walk must not make the walk skip or repeat
        // the ones that existed before it (it may itself appear or not).
        if late.is_none() {
            late = Some(
                insert(&service, &caller, new_customer("late@example.com", None))
                    .await
                    .id,
            );
        }
        match result.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    seen.retain(|id| Some(*id) != late);
    let expected: Vec<_> = existing.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        seen, expected,
        "every earlier customer once, in (created_at, id) order"
    );
}

async fn listing_filters_by_email_external_id_and_typed_metadata(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let with_metadata = |email: &str, pairs: Vec<(&str, MetadataValue)>| {
        NewCustomer::parse(CustomerInput {
            email: Some(email.into()),
            metadata: Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            ..CustomerInput::default()
        })
        .unwrap()
    };
    let pro = insert(
        &service,
        &caller,
        with_metadata(
            "pro@example.com",
            vec![
                ("plan", MetadataValue::String("pro".into())),
                ("seats", MetadataValue::Int(3)),
                ("vip", MetadataValue::Bool(true)),
            ],
        ),
    )
    .await;
    let free = insert(
        &service,
        &caller,
        with_metadata(
            "free@example.com",
            vec![
                ("plan", MetadataValue::String("free".into())),
                ("seats", MetadataValue::Float(1.0)),
                ("vip", MetadataValue::Int(1)),
            ],
        ),
    )
    .await;
    let external = insert(
        &service,
        &caller,
        new_customer("x@example.com", Some("ext-9")),
    )
    .await;

    let ids = |filter: CustomerFilter| {
        let service = service.clone();
        async move {
            let page = service
                .list_customers(&caller, &filter, &first_page())
                .await
                .unwrap()
                .items;
            page.items
                .into_iter()
                .map(|c| c.customer.id)
                .collect::<Vec<_>>()
        }
    };
    let metadata = |pairs: Vec<(&str, MetadataValue)>| {
        CustomerFilter::parse(CustomerFilterInput {
            metadata: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..CustomerFilterInput::default()
        })
        .unwrap()
    };
    assert_eq!(
        ids(CustomerFilter::parse(CustomerFilterInput {
            email: "PRO@example.com",
            ..CustomerFilterInput::default()
        })
        .unwrap())
        .await,
        [pro.id]
    );
    assert_eq!(
        ids(CustomerFilter::parse(CustomerFilterInput {
            external_id: "ext-9",
            ..CustomerFilterInput::default()
        })
        .unwrap())
        .await,
        [external.id]
    );
    assert_eq!(
        ids(metadata(vec![(
            "plan",
            MetadataValue::String("pro".into())
        )]))
        .await,
        [pro.id]
    );
    assert_eq!(
        ids(metadata(vec![("seats", MetadataValue::Int(1))])).await,
        [free.id],
        "numbers compare by value"
    );
    assert_eq!(
        ids(metadata(vec![("vip", MetadataValue::Bool(true))])).await,
        [pro.id],
        "a boolean is not the integer 1"
    );
    assert_eq!(
        ids(metadata(vec![("vip", MetadataValue::Int(1))])).await,
        [free.id]
    );
    assert_eq!(
        ids(metadata(vec![
            ("plan", MetadataValue::String("pro".into())),
            ("seats", MetadataValue::Int(3))
        ]))
        .await,
        [pro.id]
    );
    assert!(
        ids(metadata(vec![(
            "plan",
            MetadataValue::String("gold".into())
        )]))
        .await
        .is_empty()
    );
}

async fn entity_batches_merge_and_archive_atomically(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let owner = entity::parse_owner("owner-1", "customer_id").unwrap();
    insert(
        &service,
        &caller,
        new_customer("o@example.com", Some("owner-1")),
    )
    .await;
    let types = entity::parse_type_batch(vec![EntityTypeInput {
        id: "user".into(),
        display_name: "User".into(),
        ..EntityTypeInput::default()
    }])
    .unwrap();
    service
        .batch_upsert_entity_types(&caller, &types)
        .await
        .unwrap();

    let item = |id: &str, pairs: &[(&str, &str)]| EntityUpsertInput {
        id: id.to_owned(),
        type_id: Some("user".to_owned()),
        metadata: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..EntityUpsertInput::default()
    };
    let first =
        entity::parse_batch(vec![item("a", &[("x", "1"), ("y", "2")]), item("b", &[])]).unwrap();
    service
        .batch_upsert_entities(&caller, &owner, &first)
        .await
        .unwrap();
    let second = entity::parse_batch(vec![item("a", &[("y", ""), ("z", "3")])]).unwrap();
    let merged = service
        .batch_upsert_entities(&caller, &owner, &second)
        .await
        .unwrap();
    let a = EntityId::parse("a", "id").unwrap();
    let stored = service.get_entity(&caller, &owner, &a).await.unwrap();
    assert_eq!(merged[0], stored);
    let keys: Vec<_> = stored.metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["x", "z"]);

    let ghost = EntityId::parse("ghost", "id").unwrap();
    let b = EntityId::parse("b", "id").unwrap();
    assert!(matches!(
        service
            .set_entities_archived(&caller, &owner, &[b.clone(), ghost], true)
            .await,
        Err(Error::NotFound { .. })
    ));
    let still = service.get_entity(&caller, &owner, &b).await.unwrap();
    assert!(
        still.archived_at.is_none(),
        "a refused archive writes nothing"
    );
    let archived = service
        .set_entities_archived(&caller, &owner, std::slice::from_ref(&b), true)
        .await
        .unwrap();
    assert_eq!(
        service.get_entity(&caller, &owner, &b).await.unwrap(),
        archived[0]
    );
    assert!(archived[0].archived_at.is_some());
}

fn user_upsert(pairs: &[(&str, &str)]) -> Upsert {
    Upsert::parse(
        UpsertInput {
            keys: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..UpsertInput::default()
        },
        MembershipInput::default(),
    )
    .unwrap()
}

fn company_upsert(pairs: &[(&str, &str)]) -> CompanyUpsert {
    CompanyUpsert::parse(UpsertInput {
        keys: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..UpsertInput::default()
    })
    .unwrap()
}

async fn users_resolve_by_keys_merge_and_release_them_on_delete(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let (created, was_created) = service
        .upsert_user(&caller, &user_upsert(&[("email", "a@example.com")]))
        .await
        .unwrap();
    assert!(was_created);
    let (merged, was_created) = service
        .upsert_user(
            &caller,
            &user_upsert(&[("email", "a@example.com"), ("user_id", "u1")]),
        )
        .await
        .unwrap();
    assert!(!was_created);
    assert_eq!(merged.user.id, created.user.id);
    assert_eq!(merged.user.keys.get("user_id"), Some("u1"));
    let by_keys = UserLookup::Keys(keys(&[("user_id", "u1")]));
    assert_eq!(service.get_user(&caller, &by_keys).await.unwrap(), merged);

    service
        .upsert_user(&caller, &user_upsert(&[("email", "b@example.com")]))
        .await
        .unwrap();
    let both = user_upsert(&[("email", "b@example.com"), ("user_id", "u1")]);
    assert!(matches!(
        service.upsert_user(&caller, &both).await,
        Err(Error::InvalidArgument(_))
    ));

    service.delete_user(&caller, &by_keys).await.unwrap();
    assert!(matches!(
        service.get_user(&caller, &by_keys).await,
        Err(Error::NotFound { .. })
    ));
    let (reborn, was_created) = service
        .upsert_user(&caller, &user_upsert(&[("user_id", "u1")]))
        .await
        .unwrap();
    assert!(
        was_created && reborn.user.id != created.user.id,
        "the keys were released"
    );
    assert_eq!(merged.memberships, Vec::new());
    assert_eq!(MembershipChange::default(), MembershipChange::Keep);
}

async fn a_company_key_external_id_is_the_customer_external_id(backend: Backend) {
    let (_db, service, caller) = require!(fresh(backend).await);
    let customer = insert(
        &service,
        &caller,
        new_customer("billing@acme.com", Some("acme")),
    )
    .await;
    let (company, created) = service
        .upsert_company(
            &caller,
            &company_upsert(&[("external_id", "acme"), ("domain", "acme.com")]),
        )
        .await
        .unwrap();
    assert!(!created, "the customer is the company");
    assert_eq!(company.id, customer.id);
    let by_domain = CompanyLookup::Keys(keys(&[("domain", "acme.com")]));
    assert_eq!(
        service.get_company(&caller, &by_domain).await.unwrap().id,
        customer.id
    );

    service
        .delete_customer(&caller, &CustomerLookup::Id(customer.id))
        .await
        .unwrap();
    assert!(matches!(
        service.get_company(&caller, &by_domain).await,
        Err(Error::NotFound { .. })
    ));
    let (fresh_company, created) = service
        .upsert_company(&caller, &company_upsert(&[("domain", "acme.com")]))
        .await
        .unwrap();
    assert!(
        created && fresh_company.id != customer.id,
        "deleting the customer released its keys"
    );
}
