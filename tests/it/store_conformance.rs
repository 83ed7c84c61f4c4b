//! The repository contract, proved on SQLite and on PostgreSQL alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use kith::domain::customer::{
    AddressInput, Customer, CustomerFilter, CustomerInput, CustomerLookup, CustomerPatch,
    CustomerPatchInput, CustomerType, MetadataValue, NewCustomer,
};
use kith::domain::entity::{self, EntityId, EntityTypeInput, EntityUpsertInput};
use kith::domain::page::PageRequest;
use kith::domain::user::{
    Keys, MembershipChange, MembershipInput, Upsert, UpsertInput, UserLookup,
};
use kith::domain::workspace::{NewApiKey, PresentedKey, WorkspaceName};
use kith::domain::{Change, WorkspaceId, now};
use kith::error::Error;
use kith::store::Store;

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
    a_changed_email_resets_verification,
    listing_pages_in_creation_order_without_gaps,
    listing_filters_by_email_external_id_and_typed_metadata,
    entity_batches_merge_in_the_store_and_archive_atomically,
    users_resolve_by_keys_merge_and_release_them_on_delete,
    a_company_key_external_id_is_the_customer_external_id,
);

async fn fresh(backend: Backend) -> Option<(TestDb, Arc<dyn Store>, WorkspaceId)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    let (workspace, _) = store.bootstrap().await.unwrap().unwrap();
    Some((db, store, workspace.id))
}

fn new_customer(email: &str, external_id: Option<&str>) -> NewCustomer {
    NewCustomer::parse(CustomerInput {
        email: Some(email.to_owned()),
        external_id: external_id.map(str::to_owned),
        ..CustomerInput::default()
    })
    .unwrap()
}

async fn insert(store: &dyn Store, workspace: WorkspaceId, customer: NewCustomer) -> Customer {
    let customer = customer.into_customer(workspace, now());
    store.insert_customer(&customer).await.unwrap();
    customer
}

fn patch(input: CustomerPatchInput) -> CustomerPatch {
    CustomerPatch::parse(input).unwrap()
}

async fn bootstrap_creates_one_default_workspace_and_key_once(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let store = db.store().await;
    let (workspace, key) = store
        .bootstrap()
        .await
        .unwrap()
        .expect("first start bootstraps");
    assert_eq!(workspace.name.as_str(), "default");
    assert!(
        store.bootstrap().await.unwrap().is_none(),
        "second start does not"
    );
    let presented = PresentedKey::parse(key.reveal()).unwrap();
    let stored = store.find_api_key(presented.id).await.unwrap().unwrap();
    assert_eq!(stored.admit(&presented).unwrap(), workspace.id);
}

async fn workspace_names_are_unique(backend: Backend) {
    let (_db, store, _) = require!(fresh(backend).await);
    let name = WorkspaceName::parse("acme").unwrap();
    let acme = store.create_workspace(&name).await.unwrap();
    match store.create_workspace(&name).await {
        Err(Error::AlreadyExists(v)) => assert_eq!(v.field, "name"),
        other => panic!("expected a name clash, got {other:?}"),
    }
    let by_name = store.find_workspace("acme").await.unwrap().unwrap();
    let by_id = store
        .find_workspace(&acme.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name, acme);
    assert_eq!(by_id, acme);
    assert!(store.find_workspace("nobody").await.unwrap().is_none());
}

async fn api_keys_are_found_listed_and_revoked(backend: Backend) {
    let (_db, store, workspace) = require!(fresh(backend).await);
    let key = NewApiKey::generate(workspace);
    store.insert_api_key(&key).await.unwrap();
    let listed = store.list_api_keys(workspace).await.unwrap();
    assert_eq!(listed.len(), 2, "bootstrap key and the new one");
    assert!(
        listed
            .iter()
            .any(|k| k.id == key.id && k.revoked_at.is_none())
    );

    let revoked = store.revoke_api_key(key.id).await.unwrap();
    let first = revoked.revoked_at.expect("revoked");
    let again = store.revoke_api_key(key.id).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first),
        "revoking twice keeps the first time"
    );
    let presented = PresentedKey::parse(key.reveal()).unwrap();
    let stored = store.find_api_key(key.id).await.unwrap().unwrap();
    assert!(matches!(
        stored.admit(&presented),
        Err(Error::Unauthenticated)
    ));

    let unknown = NewApiKey::generate(workspace);
    assert!(store.find_api_key(unknown.id).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_api_key(unknown.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn customers_are_found_by_id_and_external_id(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
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
    let created = insert(store.as_ref(), ws, NewCustomer::parse(input).unwrap()).await;

    let by_id = store
        .get_customer(ws, &CustomerLookup::Id(created.id))
        .await
        .unwrap();
    let by_external = store
        .get_customer(ws, &CustomerLookup::by_external_id("usr_1").unwrap())
        .await
        .unwrap();
    assert_eq!(by_id, created, "every field reads back exactly as written");
    assert_eq!(by_external, created);
    let address = by_id.billing_address.unwrap().lines();
    assert_eq!(
        (address.country.as_str(), address.state.as_deref()),
        ("US", Some("US-NY"))
    );
}

async fn customers_are_invisible_to_other_workspaces(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let other = store
        .create_workspace(&WorkspaceName::parse("other").unwrap())
        .await
        .unwrap()
        .id;
    let customer = insert(
        store.as_ref(),
        ws,
        new_customer("a@example.com", Some("ext")),
    )
    .await;
    let by_id = CustomerLookup::Id(customer.id);
    let by_external = CustomerLookup::by_external_id("ext").unwrap();
    for lookup in [&by_id, &by_external] {
        assert!(matches!(
            store.get_customer(other, lookup).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store
                .update_customer(other, lookup, &CustomerPatch::default())
                .await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store.delete_customer(other, lookup).await,
            Err(Error::NotFound { .. })
        ));
    }
    let page = PageRequest::parse(0, "", "").unwrap();
    let listed = store
        .list_customers(other, &CustomerFilter::default(), &page)
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    // The same email and external id are free in another workspace.
    insert(
        store.as_ref(),
        other,
        new_customer("a@example.com", Some("ext")),
    )
    .await;
    assert!(
        store
            .get_customer(ws, &by_id)
            .await
            .unwrap()
            .deleted_at
            .is_none()
    );
}

async fn email_and_external_id_are_unique_among_live_customers(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    insert(
        store.as_ref(),
        ws,
        new_customer("a@example.com", Some("ext")),
    )
    .await;

    let clash = |email: &str, external: Option<&str>| {
        new_customer(email, external).into_customer(ws, now())
    };
    let field_of = |result: Result<(), Error>| match result {
        Err(Error::AlreadyExists(v)) => v.field,
        other => panic!("expected a clash, got {other:?}"),
    };
    let email_clash = store.insert_customer(&clash("A@EXAMPLE.com", None)).await;
    assert_eq!(
        field_of(email_clash),
        "email",
        "emails compare case-insensitively"
    );
    let external_clash = store
        .insert_customer(&clash("b@example.com", Some("ext")))
        .await;
    assert_eq!(field_of(external_clash), "external_id");

    let second = insert(store.as_ref(), ws, new_customer("b@example.com", None)).await;
    let steal_email = CustomerPatchInput {
        email: Change::Set("a@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let result = store
        .update_customer(ws, &CustomerLookup::Id(second.id), &patch(steal_email))
        .await;
    assert_eq!(field_of(result.map(drop)), "email");
}

async fn deleted_customers_are_not_found_and_free_their_keys(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let customer = insert(
        store.as_ref(),
        ws,
        new_customer("a@example.com", Some("ext")),
    )
    .await;
    let lookup = CustomerLookup::by_external_id("ext").unwrap();
    let deleted = store.delete_customer(ws, &lookup).await.unwrap();
    assert_eq!(deleted.id, customer.id);
    assert!(deleted.deleted_at.is_some());

    let by_id = CustomerLookup::Id(customer.id);
    assert!(matches!(
        store.get_customer(ws, &by_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_customer(ws, &by_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .update_customer(ws, &by_id, &CustomerPatch::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    let page = PageRequest::parse(0, "", "").unwrap();
    let listed = store
        .list_customers(ws, &CustomerFilter::default(), &page)
        .await
        .unwrap();
    assert!(listed.items.is_empty());

    let reborn = insert(
        store.as_ref(),
        ws,
        new_customer("A@example.com", Some("ext")),
    )
    .await;
    assert_eq!(store.get_customer(ws, &lookup).await.unwrap().id, reborn.id);
}

async fn updates_apply_the_domain_rules_atomically(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let team = NewCustomer::parse(CustomerInput {
        email: Some("t@example.com".into()),
        external_id: Some("team_1".into()),
        kind: Some(CustomerType::Team),
        ..CustomerInput::default()
    })
    .unwrap();
    let customer = insert(store.as_ref(), ws, team).await;
    let lookup = CustomerLookup::Id(customer.id);

    let refused = CustomerPatchInput {
        external_id: Change::Set("team_2".into()),
        kind: Change::Set(CustomerType::Individual),
        name: Change::Set("Renamed".into()),
        ..CustomerPatchInput::default()
    };
    match store.update_customer(ws, &lookup, &patch(refused)).await {
        Err(Error::ForbiddenTransition(v)) => {
            let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["external_id", "type"]);
        }
        other => panic!("expected refused transitions, got {other:?}"),
    }
    let unchanged = store.get_customer(ws, &lookup).await.unwrap();
    assert_eq!(unchanged, customer, "a refused update writes nothing");

    let accepted = CustomerPatchInput {
        external_id: Change::Set("team_1".into()),
        name: Change::Set("Renamed".into()),
        ..CustomerPatchInput::default()
    };
    let updated = store
        .update_customer(ws, &lookup, &patch(accepted))
        .await
        .unwrap();
    assert_eq!(updated.name.as_ref().unwrap().as_str(), "Renamed");
    assert!(updated.modified_at.is_some());
    assert_eq!(store.get_customer(ws, &lookup).await.unwrap(), updated);
}

async fn a_changed_email_resets_verification(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let mut customer = new_customer("v@example.com", None).into_customer(ws, now());
    customer.email_verified = true;
    store.insert_customer(&customer).await.unwrap();
    let lookup = CustomerLookup::Id(customer.id);

    let same = CustomerPatchInput {
        email: Change::Set("v@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let kept = store
        .update_customer(ws, &lookup, &patch(same))
        .await
        .unwrap();
    assert!(kept.email_verified, "the same email keeps verification");
    assert!(kept.modified_at.is_none(), "nothing changed");

    let new = CustomerPatchInput {
        email: Change::Set("w@example.com".into()),
        ..CustomerPatchInput::default()
    };
    let changed = store
        .update_customer(ws, &lookup, &patch(new))
        .await
        .unwrap();
    assert!(!changed.email_verified);
    assert!(
        !store
            .get_customer(ws, &lookup)
            .await
            .unwrap()
            .email_verified
    );
}

async fn listing_pages_in_creation_order_without_gaps(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let mut existing = Vec::new();
    for i in 0..7 {
        let customer = insert(
            store.as_ref(),
            ws,
            new_customer(&format!("c{i}@example.com"), None),
        )
        .await;
        existing.push((customer.created_at, customer.id));
    }
    existing.sort();
    let filter = CustomerFilter::default();
    let query = filter.canonical(ws);
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut late = None;
    loop {
        let page = PageRequest::parse(3, &token, &query).unwrap();
        let result = store.list_customers(ws, &filter, &page).await.unwrap();
        seen.extend(result.items.iter().map(|c| c.id));
        // A customer created mid-walk must not make the walk skip or repeat
        // the ones that existed before it (it may itself appear or not).
        if late.is_none() {
            late = Some(
                insert(store.as_ref(), ws, new_customer("late@example.com", None))
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
    let (_db, store, ws) = require!(fresh(backend).await);
    let with_metadata = |email: &str, pairs: Vec<(&str, MetadataValue)>| {
        NewCustomer::parse(CustomerInput {
            email: Some(email.into()),
            metadata: Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            ..CustomerInput::default()
        })
        .unwrap()
    };
    let pro = insert(
        store.as_ref(),
        ws,
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
        store.as_ref(),
        ws,
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
        store.as_ref(),
        ws,
        new_customer("x@example.com", Some("ext-9")),
    )
    .await;

    let ids = |filter: CustomerFilter| {
        let store = store.clone();
        async move {
            let page = PageRequest::parse(0, "", &filter.canonical(ws)).unwrap();
            let page = store.list_customers(ws, &filter, &page).await.unwrap();
            page.items.into_iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    let metadata = |pairs: Vec<(&str, MetadataValue)>| {
        CustomerFilter::parse(
            "",
            "",
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        )
        .unwrap()
    };
    assert_eq!(
        ids(CustomerFilter::parse("PRO@example.com", "", BTreeMap::new()).unwrap()).await,
        [pro.id]
    );
    assert_eq!(
        ids(CustomerFilter::parse("", "ext-9", BTreeMap::new()).unwrap()).await,
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

async fn entity_batches_merge_in_the_store_and_archive_atomically(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let owner = entity::parse_owner("owner-1").unwrap();
    insert(
        store.as_ref(),
        ws,
        new_customer("o@example.com", Some("owner-1")),
    )
    .await;
    let types = entity::parse_type_batch(vec![EntityTypeInput {
        id: "user".into(),
        display_name: "User".into(),
        ..EntityTypeInput::default()
    }])
    .unwrap();
    store.upsert_entity_types(ws, &types).await.unwrap();

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
    store.upsert_entities(ws, &owner, &first).await.unwrap();
    let second = entity::parse_batch(vec![item("a", &[("y", ""), ("z", "3")])]).unwrap();
    let merged = store.upsert_entities(ws, &owner, &second).await.unwrap();
    let a = EntityId::parse("a", "id").unwrap();
    let stored = store.get_entity(ws, &owner, &a).await.unwrap();
    assert_eq!(merged[0], stored);
    let keys: Vec<_> = stored.metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["x", "z"]);

    let ghost = EntityId::parse("ghost", "id").unwrap();
    let b = EntityId::parse("b", "id").unwrap();
    assert!(matches!(
        store
            .set_entities_archived(ws, &owner, &[b.clone(), ghost], true)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        store
            .get_entity(ws, &owner, &b)
            .await
            .unwrap()
            .archived_at
            .is_none()
    );
    let archived = store
        .set_entities_archived(ws, &owner, std::slice::from_ref(&b), true)
        .await
        .unwrap();
    assert_eq!(store.get_entity(ws, &owner, &b).await.unwrap(), archived[0]);
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

async fn users_resolve_by_keys_merge_and_release_them_on_delete(backend: Backend) {
    let (_db, store, ws) = require!(fresh(backend).await);
    let (created, was_created) = store
        .upsert_user(ws, &user_upsert(&[("email", "a@example.com")]))
        .await
        .unwrap();
    assert!(was_created);
    let (merged, was_created) = store
        .upsert_user(
            ws,
            &user_upsert(&[("email", "a@example.com"), ("user_id", "u1")]),
        )
        .await
        .unwrap();
    assert!(!was_created);
    assert_eq!(merged.user.id, created.user.id);
    assert_eq!(merged.user.keys.get("user_id"), Some("u1"));
    let by_keys = UserLookup::Keys(
        Keys::parse(
            [("user_id".to_owned(), "u1".to_owned())].into(),
            "keys",
            true,
        )
        .unwrap(),
    );
    assert_eq!(store.get_user(ws, &by_keys).await.unwrap(), merged);

    store
        .upsert_user(ws, &user_upsert(&[("email", "b@example.com")]))
        .await
        .unwrap();
    let both = user_upsert(&[("email", "b@example.com"), ("user_id", "u1")]);
    assert!(matches!(
        store.upsert_user(ws, &both).await,
        Err(Error::InvalidArgument(_))
    ));

    store.delete_user(ws, &by_keys).await.unwrap();
    assert!(matches!(
        store.get_user(ws, &by_keys).await,
        Err(Error::NotFound { .. })
    ));
    let (reborn, was_created) = store
        .upsert_user(ws, &user_upsert(&[("user_id", "u1")]))
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
    let (_db, store, ws) = require!(fresh(backend).await);
    let customer = insert(
        store.as_ref(),
        ws,
        new_customer("billing@acme.com", Some("acme")),
    )
    .await;
    let (company, created) = store
        .upsert_company(
            ws,
            &user_upsert(&[("external_id", "acme"), ("domain", "acme.com")]),
        )
        .await
        .unwrap();
    assert!(!created, "the customer is the company");
    assert_eq!(company.id, customer.id);
    let by_domain = Keys::parse(
        [("domain".to_owned(), "acme.com".to_owned())].into(),
        "keys",
        true,
    )
    .unwrap();
    assert_eq!(
        store.lookup_company(ws, &by_domain).await.unwrap().id,
        customer.id
    );

    store
        .delete_customer(ws, &CustomerLookup::Id(customer.id))
        .await
        .unwrap();
    assert!(matches!(
        store.lookup_company(ws, &by_domain).await,
        Err(Error::NotFound { .. })
    ));
    let (fresh_company, created) = store
        .upsert_company(ws, &user_upsert(&[("domain", "acme.com")]))
        .await
        .unwrap();
    assert!(
        created && fresh_company.id != customer.id,
        "deleting the customer released its keys"
    );
}
