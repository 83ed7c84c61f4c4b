//! The repository contract: every method of `Store`, `Session` and
//! `Transaction`, proved on SQLite and on PostgreSQL alike. These tests
//! speak to the store directly, below the service: rows in, rows out, what
//! the database refuses, and nothing of another workspace.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use kith::domain::change::{Change, ChangeFilter, ChangeKind, ChangeOperation, LoggedChange};
use kith::domain::customer::{
    Customer, CustomerFilter, CustomerFilterInput, CustomerInput, CustomerLookup, MetadataValue,
    NewCustomer,
};
use kith::domain::entity::{self, Entity, EntityFilter, EntityId, EntityType, EntityTypeInput};
use kith::domain::page::{KITH_PAGES, PageRequest};
use kith::domain::person::{self, PersonFilter, PersonLookup, PersonUpsertInput};
use kith::domain::user::{
    self, Keys, MemberRole, Membership, MembershipFilter, MembershipInput, Upsert, UpsertInput,
    UserFilter,
};
use kith::domain::workspace::{ApiKeyId, NewApiKey, Workspace, WorkspaceName};
use kith::domain::{WorkspaceId, now};
use kith::error::{Error, FieldPath, UniqueIndex};
use kith::store::{KeyOwners, Store};
use serde_json::{Map, json};
use uuid::Uuid;

use crate::harness::{Backend, TestDb, backend_tests, require};

backend_tests!(
    a_transaction_commits_whole_or_not_at_all,
    workspaces_and_keys_round_trip_and_revoke_once,
    customers_round_trip_scoped_to_their_workspace,
    customers_list_count_and_filter,
    unique_indexes_name_their_clash,
    entities_and_types_round_trip_with_cursors,
    people_insert_atomically_and_lock_by_what_a_batch_names,
    people_are_found_listed_updated_and_deleted,
    users_keys_and_companies_round_trip,
    memberships_are_created_once_changed_listed_and_deleted,
    deleting_a_user_and_a_companys_keys_and_members,
    the_change_log_numbers_per_workspace_filters_and_prunes,
    new_people_and_their_changes_are_written_together_or_not_at_all,
);

fn change(kind: ChangeKind, record_id: &str, owner_id: Option<&str>) -> Change {
    Change {
        kind,
        operation: ChangeOperation::Created,
        record_id: record_id.to_owned(),
        external_id: Some(format!("ext-{record_id}")),
        owner_id: owner_id.map(str::to_owned),
        record: record_id.as_bytes().to_vec(),
    }
}

async fn append(store: &Store, workspace: WorkspaceId, key: ApiKeyId, changes: &[Change]) -> i64 {
    let mut tx = store.write().await.unwrap();
    let last = tx
        .append_changes(workspace, key, changes, now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    last
}

async fn logged(store: &Store, workspace: WorkspaceId, filter: &ChangeFilter) -> Vec<LoggedChange> {
    store
        .read()
        .await
        .unwrap()
        .changes_after(workspace, 0, filter, 100)
        .await
        .unwrap()
}

/// A store on a fresh database with two workspaces.
async fn fresh(backend: Backend) -> Option<(TestDb, Store, WorkspaceId, WorkspaceId)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    let mut tx = store.write().await.unwrap();
    let mut ids = Vec::new();
    for name in ["mine", "theirs"] {
        let workspace = Workspace::new(WorkspaceName::parse(name).unwrap(), now());
        tx.insert_workspace(&workspace).await.unwrap();
        ids.push(workspace.id);
    }
    tx.commit().await.unwrap();
    Some((db, store, ids[0], ids[1]))
}

fn customer(workspace: WorkspaceId, email: &str, external_id: Option<&str>) -> Customer {
    NewCustomer::parse(CustomerInput {
        email: Some(email.to_owned()),
        external_id: external_id.map(str::to_owned),
        ..CustomerInput::default()
    })
    .unwrap()
    .into_customer(workspace, now())
}

async fn insert_customers(store: &Store, customers: &[&Customer]) {
    let mut tx = store.write().await.unwrap();
    for customer in customers {
        tx.insert_customer(customer).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// People inserted as new, in a transaction of their own.
async fn insert_people(
    store: &Store,
    people: &[kith::domain::person::Person],
) -> Result<(), Error> {
    let mut tx = store.write().await?;
    tx.insert_people(people).await?;
    tx.commit().await
}

fn page(size: i64) -> PageRequest {
    PageRequest::parse(&KITH_PAGES, Some(size), "", "").unwrap()
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

fn new_user(pairs: &[(&str, &str)]) -> user::User {
    let upsert = Upsert::parse(
        UpsertInput {
            keys: keys(pairs).as_map().clone(),
            name: Some("Ada".into()),
            traits: json!({ "plan": "pro" }).as_object().unwrap().clone(),
            ..UpsertInput::default()
        },
        MembershipInput::default(),
    )
    .unwrap();
    user::apply_user(None, &upsert, now())
}

async fn the_change_log_numbers_per_workspace_filters_and_prunes(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let key = ApiKeyId(Uuid::new_v4());
    let first = [
        change(ChangeKind::Customer, "c1", None),
        change(ChangeKind::Entity, "e1", Some("c1")),
        change(ChangeKind::Entity, "e2", Some("c2")),
    ];
    assert_eq!(append(&store, mine, key, &first).await, 3);
    assert_eq!(
        append(
            &store,
            mine,
            key,
            &[change(ChangeKind::Customer, "c1", None)]
        )
        .await,
        4
    );
    assert_eq!(
        append(
            &store,
            theirs,
            key,
            &[change(ChangeKind::Person, "p1", None)]
        )
        .await,
        1,
        "each workspace numbers its own"
    );
    // A transaction dropped after appending leaves no number taken.
    let mut tx = store.write().await.unwrap();
    tx.append_changes(mine, key, &first, now()).await.unwrap();
    drop(tx);
    let mut session = store.read().await.unwrap();
    let horizon = session.log_horizon(mine).await.unwrap();
    assert_eq!((horizon.last_seq, horizon.pruned_seq), (4, 0));

    let all = logged(&store, mine, &ChangeFilter::default()).await;
    let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(all[1].change, first[1], "a change round-trips");
    assert_eq!(all[1].api_key, key);
    let after_two = session
        .changes_after(mine, 2, &ChangeFilter::default(), 1)
        .await
        .unwrap();
    assert_eq!(after_two.iter().map(|c| c.seq).collect::<Vec<_>>(), [3]);
    let entities = ChangeFilter {
        kinds: vec![ChangeKind::Entity],
        ..ChangeFilter::default()
    };
    assert_eq!(logged(&store, mine, &entities).await.len(), 2);
    let owned = ChangeFilter {
        owner_id: Some("c2".into()),
        ..ChangeFilter::default()
    };
    assert_eq!(logged(&store, mine, &owned).await[0].change.record_id, "e2");
    let history = ChangeFilter {
        record_id: Some("c1".into()),
        ..ChangeFilter::default()
    };
    let seqs: Vec<i64> = logged(&store, mine, &history)
        .await
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [1, 4]);
    drop(session);

    // Nothing is old enough yet; then everything is, slice by slice.
    assert_eq!(
        store
            .prune_changes(now() - Duration::hours(1), 2)
            .await
            .unwrap(),
        0
    );
    let later = now() + Duration::seconds(1);
    let mut pruned = 0;
    loop {
        match store.prune_changes(later, 2).await.unwrap() {
            0 => break,
            deleted => pruned += deleted,
        }
    }
    assert_eq!(pruned, 5, "both workspaces' changes");
    let horizon = store.read().await.unwrap().log_horizon(mine).await.unwrap();
    assert_eq!((horizon.last_seq, horizon.pruned_seq), (4, 4));
    assert!(
        logged(&store, mine, &ChangeFilter::default())
            .await
            .is_empty()
    );
    assert_eq!(
        append(
            &store,
            mine,
            key,
            &[change(ChangeKind::Customer, "c3", None)]
        )
        .await,
        5,
        "numbers go on after pruning"
    );
}

async fn new_people_and_their_changes_are_written_together_or_not_at_all(backend: Backend) {
    let (_db, store, mine, _) = require!(fresh(backend).await);
    let key = ApiKeyId(Uuid::new_v4());
    let people = person::create_all(mine, &upserts(&[("p1", None), ("p2", None)]), now()).unwrap();
    let changes: Vec<Change> = people
        .iter()
        .map(|p| change(ChangeKind::Person, &p.id.to_string(), None))
        .collect();
    store
        .insert_people_logged(mine, key, &people, &changes, now())
        .await
        .unwrap();
    let stored = logged(&store, mine, &ChangeFilter::default()).await;
    assert_eq!(stored.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stored[0].change, changes[0]);

    // One person who exists: neither the new one nor any change is written.
    let mixed = person::create_all(mine, &upserts(&[("p3", None), ("p1", None)]), now()).unwrap();
    let clash = store
        .insert_people_logged(mine, key, &mixed, &changes, now())
        .await
        .unwrap_err();
    assert!(
        clash.is_clash_on(&[UniqueIndex::PersonExternalId]),
        "{clash:?}"
    );
    let mut session = store.read().await.unwrap();
    let p3 = PersonLookup::by_external_id("p3").unwrap();
    assert!(session.person(mine, &p3).await.unwrap().is_none());
    assert_eq!(session.log_horizon(mine).await.unwrap().last_seq, 2);
}

async fn a_transaction_commits_whole_or_not_at_all(backend: Backend) {
    let (_db, store, mine, _) = require!(fresh(backend).await);
    assert_eq!(store.backend(), backend_name(backend));
    store.ping().await.unwrap();
    assert_eq!(
        store
            .read()
            .await
            .unwrap()
            .count_workspaces()
            .await
            .unwrap(),
        2
    );

    let dropped = customer(mine, "dropped@example.com", None);
    {
        let mut tx = store.write().await.unwrap();
        tx.insert_customer(&dropped).await.unwrap();
        // Seen inside the transaction that wrote it…
        let inside = tx.customer(mine, &CustomerLookup::Id(dropped.id)).await;
        assert_eq!(inside.unwrap().as_ref(), Some(&dropped));
    }
    // …and nowhere once it is dropped without a commit.
    let outside = store
        .read()
        .await
        .unwrap()
        .customer(mine, &CustomerLookup::Id(dropped.id))
        .await
        .unwrap();
    assert_eq!(outside, None, "a dropped transaction rolls back");

    // After a failed statement the transaction cannot commit, on either
    // backend (SQLite alone would keep the statements before it).
    let first = customer(mine, "first@example.com", None);
    let mut tx = store.write().await.unwrap();
    tx.insert_customer(&first).await.unwrap();
    let clash = customer(mine, "FIRST@example.com", None);
    assert!(tx.insert_customer(&clash).await.is_err());
    assert!(matches!(tx.commit().await, Err(Error::Internal(_))));
    let session = &mut store.read().await.unwrap();
    assert_eq!(
        session
            .customer(mine, &CustomerLookup::Id(first.id))
            .await
            .unwrap(),
        None
    );
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn workspaces_and_keys_round_trip_and_revoke_once(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let mut session = store.read().await.unwrap();
    let by_name = session.find_workspace("mine").await.unwrap().unwrap();
    assert_eq!(by_name.id, mine);
    let by_id = session.find_workspace(&theirs.to_string()).await.unwrap();
    assert_eq!(by_id.unwrap().name.as_str(), "theirs");
    assert!(session.find_workspace("nobody").await.unwrap().is_none());
    drop(session);

    let first = NewApiKey::generate(mine);
    let second = NewApiKey::generate(mine);
    let other = NewApiKey::generate(theirs);
    let mut tx = store.write().await.unwrap();
    for key in [&first, &second, &other] {
        tx.insert_api_key(key).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut session = store.read().await.unwrap();
    let listed: Vec<_> = session
        .list_api_keys(mine)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    let mut expected = vec![(first.created_at, first.id), (second.created_at, second.id)];
    expected.sort_by_key(|(at, id)| (*at, id.0));
    assert_eq!(
        listed,
        expected.into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
        "a workspace's keys only, oldest first"
    );
    let found = session.find_api_key(other.id).await.unwrap().unwrap();
    assert_eq!(found.workspace_id, theirs, "a key is found by id alone");
    assert_eq!(found.secret_hash, other.secret_hash);
    drop(session);

    let mut tx = store.write().await.unwrap();
    let at = now();
    let revoked = tx.revoke_api_key(first.id, at).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    let again = tx
        .revoke_api_key(first.id, at + Duration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(at), "the first revocation stands");
    let unknown = NewApiKey::generate(mine);
    assert!(tx.revoke_api_key(unknown.id, at).await.unwrap().is_none());
    tx.commit().await.unwrap();
}

async fn customers_round_trip_scoped_to_their_workspace(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let ada = NewCustomer::parse(CustomerInput {
        email: Some("Ada@Example.com".into()),
        external_id: Some("ada".into()),
        name: Some("Ada".into()),
        metadata: Some(BTreeMap::from([
            ("plan".to_owned(), MetadataValue::String("pro".into())),
            ("seats".to_owned(), MetadataValue::Int(3)),
        ])),
        ..CustomerInput::default()
    })
    .unwrap()
    .into_customer(mine, now());
    insert_customers(&store, &[&ada]).await;
    let by_id = CustomerLookup::Id(ada.id);
    let by_external = CustomerLookup::by_external_id("ada").unwrap();

    let mut session = store.read().await.unwrap();
    for lookup in [&by_id, &by_external] {
        assert_eq!(
            session.customer(mine, lookup).await.unwrap(),
            Some(ada.clone())
        );
        assert_eq!(session.customer(theirs, lookup).await.unwrap(), None);
    }
    drop(session);

    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.lock_customer(theirs, &by_id).await.unwrap(), None);
    let mut changed = tx.lock_customer(mine, &by_external).await.unwrap().unwrap();
    changed.email_verified = true;
    changed.modified_at = Some(now());
    tx.update_customer(&changed).await.unwrap();
    tx.commit().await.unwrap();
    let stored = store
        .read()
        .await
        .unwrap()
        .customer(mine, &by_id)
        .await
        .unwrap();
    assert_eq!(stored, Some(changed.clone()), "every field written back");

    let mut tx = store.write().await.unwrap();
    let at = now();
    assert!(
        tx.soft_delete_customer(theirs, &by_id, at)
            .await
            .unwrap()
            .is_none()
    );
    let deleted = tx
        .soft_delete_customer(mine, &by_external, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.deleted_at, Some(at));
    assert!(
        tx.soft_delete_customer(mine, &by_id, at)
            .await
            .unwrap()
            .is_none(),
        "only a live customer is deleted"
    );
    tx.commit().await.unwrap();
    let mut session = store.read().await.unwrap();
    assert_eq!(session.customer(mine, &by_id).await.unwrap(), None);
    let free = customer(mine, "ada@example.com", Some("ada"));
    drop(session);
    insert_customers(&store, &[&free]).await;
}

async fn customers_list_count_and_filter(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let mut made = Vec::new();
    for i in 0..5 {
        let mut c = customer(mine, &format!("c{i}@example.com"), Some(&format!("x{i}")));
        c.metadata = kith::domain::customer::Metadata::parse(BTreeMap::from([(
            "even".to_owned(),
            MetadataValue::Bool(i % 2 == 0),
        )]))
        .unwrap();
        made.push(c);
    }
    let theirs_customer = customer(theirs, "c0@example.com", Some("x0"));
    let mut all: Vec<&Customer> = made.iter().collect();
    all.push(&theirs_customer);
    insert_customers(&store, &all).await;

    let mut session = store.read().await.unwrap();
    let everyone = CustomerFilter::default();
    assert_eq!(session.count_customers(mine, &everyone).await.unwrap(), 5);
    let first = session
        .list_customers(mine, &everyone, &page(3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.next_token.expect("a second page");
    let next = PageRequest::parse(&KITH_PAGES, Some(3), &token, "").unwrap();
    let second = session
        .list_customers(mine, &everyone, &next)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next_token.is_none());
    let mut listed: Vec<Uuid> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|c| c.id)
        .collect();
    let mut expected: Vec<_> = made.iter().map(|c| (c.created_at, c.id)).collect();
    expected.sort();
    assert_eq!(
        listed,
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );

    let newest = session
        .list_customers(mine, &everyone, &page(2).newest_first().skipping(1))
        .await
        .unwrap();
    listed.reverse();
    assert_eq!(
        newest.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        listed[1..3],
        "newest first, after an offset"
    );

    let even = CustomerFilter::parse(CustomerFilterInput {
        metadata: BTreeMap::from([("even".to_owned(), MetadataValue::Bool(true))]),
        ..CustomerFilterInput::default()
    })
    .unwrap();
    assert_eq!(session.count_customers(mine, &even).await.unwrap(), 3);
    let by_email = CustomerFilter::parse(CustomerFilterInput {
        email: "C3@EXAMPLE.COM",
        ..CustomerFilterInput::default()
    })
    .unwrap();
    let found = session
        .list_customers(mine, &by_email, &page(10))
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        [made[3].id]
    );
    let by_external = CustomerFilter::parse(CustomerFilterInput {
        external_id: "x4",
        ..CustomerFilterInput::default()
    })
    .unwrap();
    assert_eq!(
        session.count_customers(mine, &by_external).await.unwrap(),
        1
    );
    assert_eq!(session.count_customers(theirs, &everyone).await.unwrap(), 1);
}

async fn unique_indexes_name_their_clash(backend: Backend) {
    let (_db, store, mine, _) = require!(fresh(backend).await);
    let index_of = |error: Error| match error {
        Error::AlreadyExists { index, violation } => (index, violation.field.to_string()),
        other => panic!("expected a clash, got {other:?}"),
    };
    insert_customers(
        &store,
        &[&customer(mine, "taken@example.com", Some("taken"))],
    )
    .await;
    for (clash, index, field) in [
        (
            customer(mine, "TAKEN@example.com", None),
            UniqueIndex::CustomerEmail,
            "email",
        ),
        (
            customer(mine, "other@example.com", Some("taken")),
            UniqueIndex::CustomerExternalId,
            "external_id",
        ),
    ] {
        let mut tx = store.write().await.unwrap();
        let error = tx.insert_customer(&clash).await.unwrap_err();
        assert_eq!(index_of(error), (Some(index), field.to_owned()));
    }
    let mut tx = store.write().await.unwrap();
    let name = WorkspaceName::parse("mine").unwrap();
    let error = tx
        .insert_workspace(&Workspace::new(name, now()))
        .await
        .unwrap_err();
    assert_eq!(index_of(error).0, Some(UniqueIndex::WorkspaceName));
}

async fn entities_and_types_round_trip_with_cursors(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let owner = customer(mine, "owner@example.com", Some("owner"));
    insert_customers(&store, &[&owner]).await;
    let batch = entity::parse_type_batch(vec![
        EntityTypeInput {
            id: "seat".into(),
            display_name: "Seat".into(),
            attribution_keys: vec!["email".into()],
            archived: None,
        },
        EntityTypeInput {
            id: "team".into(),
            display_name: "Team".into(),
            ..EntityTypeInput::default()
        },
    ])
    .unwrap();
    let types: Vec<EntityType> = batch.iter().map(|t| t.apply(None, now())).collect();
    let mut tx = store.write().await.unwrap();
    let stored = tx.write_entity_types(mine, &types).await.unwrap();
    assert_eq!(stored.len(), 2);
    // A second writer that computed a new key for an existing type gets
    // the stored row back, key and creation time included.
    let mut again = types[0].clone();
    again.key = Uuid::now_v7();
    again.display_name = "Seats".into();
    let restored = tx.write_entity_types(mine, &[again]).await.unwrap();
    assert_eq!(restored[0].key, types[0].key);
    assert_eq!(restored[0].display_name, "Seats");
    tx.commit().await.unwrap();

    let seat = EntityId::parse("seat", "id").unwrap();
    let mut session = store.read().await.unwrap();
    let found = session.entity_types(mine, [&seat]).await.unwrap();
    assert_eq!(found[&seat].attribution_keys, ["email"]);
    assert!(
        session
            .entity_types(theirs, [&seat])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(session.entity_types(mine, []).await.unwrap().is_empty());
    let listed = session.list_entity_types(mine, &page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    let cursor = session
        .entity_type_cursor(mine, types[1].key)
        .await
        .unwrap();
    assert_eq!(cursor.map(|c| c.id), Some(types[1].key));
    assert!(
        session
            .entity_type_cursor(theirs, types[1].key)
            .await
            .unwrap()
            .is_none()
    );
    drop(session);

    let at = now();
    let entities: Vec<Entity> = (0..3)
        .map(|i| Entity {
            key: Uuid::now_v7(),
            customer_id: owner.id,
            id: EntityId::parse(&format!("e{i}"), "id").unwrap(),
            type_id: if i == 2 {
                EntityId::parse("team", "id").unwrap()
            } else {
                seat.clone()
            },
            display_name: Some(format!("Entity {i}")),
            metadata: BTreeMap::from([("n".to_owned(), i.to_string())]),
            created_at: at + Duration::milliseconds(i),
            updated_at: at,
            archived_at: (i == 1).then_some(at),
        })
        .collect();
    let mut tx = store.write().await.unwrap();
    tx.write_entities(mine, &entities).await.unwrap();
    tx.write_entities(mine, &[]).await.unwrap();
    let mut renamed = entities[0].clone();
    renamed.display_name = None;
    renamed.metadata.clear();
    tx.write_entities(mine, &[renamed.clone()]).await.unwrap();
    tx.commit().await.unwrap();

    let mut session = store.read().await.unwrap();
    let ids: Vec<&EntityId> = entities.iter().map(|e| &e.id).collect();
    let found = session.entities(mine, owner.id, ids.clone()).await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(found[&renamed.id], renamed, "an upsert replaces the row");
    assert!(
        session
            .entities(theirs, owner.id, ids)
            .await
            .unwrap()
            .is_empty()
    );
    let live = EntityFilter::parse("", false, "").unwrap();
    let listed = session
        .list_entities(mine, owner.id, &live, &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2, "archived entities are left out");
    let everything = EntityFilter::parse("", true, "").unwrap();
    let listed = session
        .list_entities(mine, owner.id, &everything, &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    let teams = EntityFilter::parse("team", true, "").unwrap();
    let listed = session
        .list_entities(mine, owner.id, &teams, &page(10))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["e2"]
    );
    let cursor = session
        .entity_cursor(mine, owner.id, entities[1].key)
        .await
        .unwrap();
    assert_eq!(cursor.map(|c| c.created_at), Some(entities[1].created_at));
    assert!(
        session
            .entity_cursor(theirs, owner.id, entities[1].key)
            .await
            .unwrap()
            .is_none()
    );
}

fn upserts(pairs: &[(&str, Option<&str>)]) -> Vec<person::PersonUpsert> {
    person::parse_batch(
        pairs
            .iter()
            .map(|(user_id, email)| PersonUpsertInput {
                user_id: (*user_id).to_owned(),
                email: email.map(str::to_owned),
                traits: json!({ "first_name": "Pat", "plan": "pro" })
                    .as_object()
                    .unwrap()
                    .clone(),
                status: None,
            })
            .collect(),
    )
    .unwrap()
}

async fn people_insert_atomically_and_lock_by_what_a_batch_names(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let first = upserts(&[("p1", Some("p1@example.com")), ("p2", None)]);
    let people = person::create_all(mine, &first, now()).unwrap();
    insert_people(&store, &people).await.unwrap();

    // One existing person makes the whole statement write nothing.
    let mixed = upserts(&[("p3", None), ("p1", None)]);
    let clash = insert_people(&store, &person::create_all(mine, &mixed, now()).unwrap())
        .await
        .unwrap_err();
    assert!(
        clash.is_clash_on(&[UniqueIndex::PersonExternalId]),
        "{clash:?}"
    );
    let p3 = PersonLookup::by_external_id("p3").unwrap();
    assert!(
        store
            .read()
            .await
            .unwrap()
            .person(mine, &p3)
            .await
            .unwrap()
            .is_none()
    );
    // The same keys are free in another workspace.
    insert_people(&store, &person::create_all(theirs, &first, now()).unwrap())
        .await
        .unwrap();

    let mut tx = store.write().await.unwrap();
    let fresh = person::create_all(mine, &mixed, now()).unwrap();
    let inserted = tx.insert_new_people(&fresh).await.unwrap();
    assert_eq!(
        inserted.into_iter().collect::<Vec<_>>(),
        [fresh[0].id],
        "p1 existed"
    );
    let by_email = upserts(&[("someone-new", Some("P1@example.com"))]);
    let locked = tx
        .lock_people_named(mine, first.iter().chain(&by_email))
        .await
        .unwrap();
    let mut ids: Vec<_> = locked.iter().map(|p| p.external_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["p1", "p2"], "by external id or by email, once each");
    assert!(locked.iter().all(|p| p.workspace_id == mine));
    tx.commit().await.unwrap();
}

async fn people_are_found_listed_updated_and_deleted(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let batch = upserts(&[
        ("ana", Some("ana@example.com")),
        ("bob", None),
        ("cy", None),
    ]);
    let people = person::create_all(mine, &batch, now()).unwrap();
    insert_people(&store, &people).await.unwrap();
    let ana = &people[0];

    let mut session = store.read().await.unwrap();
    for lookup in [
        PersonLookup::Id(ana.id),
        PersonLookup::by_external_id("ana").unwrap(),
        PersonLookup::by_email("ANA@example.com").unwrap(),
    ] {
        assert_eq!(
            session.person(mine, &lookup).await.unwrap().as_ref(),
            Some(ana)
        );
        assert!(session.person(theirs, &lookup).await.unwrap().is_none());
    }
    let all = session
        .list_people(mine, &PersonFilter::default(), &page(2))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(all.next_token.is_some());
    let search = PersonFilter::parse(None, "search", "ANA@").unwrap();
    let found = session.list_people(mine, &search, &page(10)).await.unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [ana.id]
    );
    let literal = PersonFilter::parse(None, "search", "a%a").unwrap();
    let none = session
        .list_people(mine, &literal, &page(10))
        .await
        .unwrap();
    assert!(none.items.is_empty(), "% in a search matches itself");
    drop(session);

    let mut tx = store.write().await.unwrap();
    let mut locked = tx
        .lock_person(mine, &PersonLookup::Id(ana.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        tx.lock_person(theirs, &PersonLookup::Id(ana.id))
            .await
            .unwrap()
            .is_none()
    );
    locked.status = kith::domain::person::PersonStatus::Bounced;
    locked.updated_at = now();
    tx.write_people(std::slice::from_ref(&locked))
        .await
        .unwrap();
    tx.write_people(&[]).await.unwrap();
    tx.commit().await.unwrap();
    let bounced = PersonFilter::parse(
        Some(kith::domain::person::PersonStatus::Bounced),
        "search",
        "",
    )
    .unwrap();
    let listed = store
        .read()
        .await
        .unwrap()
        .list_people(mine, &bounced, &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items, [locked.clone()]);

    let mut tx = store.write().await.unwrap();
    let email = PersonLookup::by_email("ana@example.com").unwrap();
    assert!(tx.delete_person(theirs, &email).await.unwrap().is_none());
    assert_eq!(tx.delete_person(mine, &email).await.unwrap(), Some(locked));
    assert!(tx.delete_person(mine, &email).await.unwrap().is_none());
    tx.commit().await.unwrap();
}

async fn users_keys_and_companies_round_trip(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let ada = new_user(&[("email", "ada@example.com"), ("user_id", "u1")]);
    let acme = customer(mine, "billing@acme.com", Some("acme"));
    insert_customers(&store, &[&acme]).await;
    let mut tx = store.write().await.unwrap();
    tx.write_user(mine, &ada).await.unwrap();
    tx.write_keys(
        mine,
        acme.id,
        &keys(&[("external_id", "acme"), ("domain", "acme.com")]),
        KeyOwners::Companies,
    )
    .await
    .unwrap();
    let mut traits = Map::new();
    traits.insert("seats".into(), json!(10));
    let seen = now();
    tx.write_company_traits(mine, acme.id, &traits, Some(seen), now())
        .await
        .unwrap();
    tx.write_company_traits(mine, acme.id, &traits, None, now())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut session = store.read().await.unwrap();
    let owners = session
        .key_owners(
            mine,
            &keys(&[("email", "ada@example.com"), ("user_id", "nobody")]),
            KeyOwners::Users,
        )
        .await
        .unwrap();
    assert_eq!(owners, BTreeMap::from([("email".to_owned(), ada.id)]));
    let companies = session
        .key_owners(
            mine,
            &keys(&[("external_id", "acme"), ("domain", "acme.com")]),
            KeyOwners::Companies,
        )
        .await
        .unwrap();
    assert_eq!(
        companies,
        BTreeMap::from([
            ("domain".to_owned(), acme.id),
            ("external_id".to_owned(), acme.id)
        ]),
        "a company's external id is the customer's own column"
    );
    assert!(
        session
            .key_owners(
                theirs,
                &keys(&[("email", "ada@example.com")]),
                KeyOwners::Users
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(session.user_exists(mine, ada.id).await.unwrap());
    assert!(!session.user_exists(theirs, ada.id).await.unwrap());
    let detail = session.user(mine, ada.id).await.unwrap().unwrap();
    assert_eq!(detail.user, ada, "every field and key reads back");
    assert!(session.user(theirs, ada.id).await.unwrap().is_none());
    let bob = new_user(&[("email", "bob@example.com")]);
    drop(session);
    let mut tx = store.write().await.unwrap();
    tx.write_user(mine, &bob).await.unwrap();
    let locked = tx.lock_user(mine, ada.id).await.unwrap().unwrap();
    assert_eq!(locked, ada);
    assert!(tx.lock_user(theirs, ada.id).await.unwrap().is_none());
    tx.commit().await.unwrap();

    let mut session = store.read().await.unwrap();
    let both = session.users(mine, &[bob.id, ada.id]).await.unwrap();
    assert_eq!(
        both.iter().map(|d| d.user.id).collect::<Vec<_>>(),
        [bob.id, ada.id],
        "in the order asked"
    );
    let company = session.company(mine, acme.id).await.unwrap().unwrap();
    assert_eq!(company.keys.get("domain"), Some("acme.com"));
    assert_eq!(company.keys.get("external_id"), Some("acme"));
    assert_eq!(company.traits["seats"], json!(10));
    assert_eq!(company.last_seen_at, Some(seen), "kept when not given");
    assert!(session.company(theirs, acme.id).await.unwrap().is_none());
    let map = session
        .companies(mine, &[acme.id, Uuid::now_v7()])
        .await
        .unwrap();
    assert_eq!(map.len(), 1);
    let listed = session
        .list_users(mine, &UserFilter::default(), &page(1))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.next_token.is_some());
    assert_eq!(
        session
            .count_users(mine, &UserFilter::default())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        session
            .count_users(theirs, &UserFilter::default())
            .await
            .unwrap(),
        0
    );
}

async fn memberships_are_created_once_changed_listed_and_deleted(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let acme = customer(mine, "billing@acme.com", Some("acme"));
    let globex = customer(mine, "billing@globex.com", Some("globex"));
    insert_customers(&store, &[&acme, &globex]).await;
    let ada = new_user(&[("email", "ada@example.com"), ("external_id", "ada")]);
    let mut tx = store.write().await.unwrap();
    tx.write_user(mine, &ada).await.unwrap();
    let at = now();
    let joined = Membership::new(acme.id, ada.id, Some(MemberRole::BillingManager), at);
    let created = tx.insert_membership(mine, &joined).await.unwrap();
    assert_eq!(created.as_ref(), Some(&joined));
    let twice = Membership::new(acme.id, ada.id, None, at);
    assert!(
        tx.insert_membership(mine, &twice).await.unwrap().is_none(),
        "one per pair"
    );
    let elsewhere = Membership::new(globex.id, ada.id, None, at);
    tx.insert_membership(mine, &elsewhere)
        .await
        .unwrap()
        .unwrap();

    let later = at + Duration::seconds(1);
    let same = tx
        .set_membership_role(mine, acme.id, joined.id, MemberRole::BillingManager, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.updated_at, at, "an unchanged role keeps its time");
    let owner = tx
        .set_membership_role(mine, acme.id, joined.id, MemberRole::Owner, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((owner.role, owner.updated_at), (MemberRole::Owner, later));
    assert!(
        tx.set_membership_role(mine, globex.id, joined.id, MemberRole::Member, later)
            .await
            .unwrap()
            .is_none(),
        "only within its company"
    );
    assert!(
        tx.set_membership_role(theirs, acme.id, joined.id, MemberRole::Member, later)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();

    let mut session = store.read().await.unwrap();
    assert_eq!(
        session.membership(mine, acme.id, ada.id).await.unwrap(),
        Some(owner.clone())
    );
    assert!(
        session
            .membership(theirs, acme.id, ada.id)
            .await
            .unwrap()
            .is_none()
    );
    let of_ada = MembershipFilter::parse("", &ada.id.to_string()).unwrap();
    let listed = session
        .list_memberships(mine, &of_ada, &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[0].company.id, acme.id, "each with its company");
    assert!(
        session
            .list_memberships(theirs, &of_ada, &page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let members = session
        .customer_members(mine, &[acme.id, globex.id])
        .await
        .unwrap();
    let acme_members = &members[&acme.id];
    assert_eq!(acme_members.len(), 1);
    assert_eq!(
        (
            acme_members[0].email.as_deref(),
            acme_members[0].external_id.as_deref()
        ),
        (Some("ada@example.com"), Some("ada")),
        "a member shows its user's email and external id"
    );
    assert!(
        session
            .customer_members(theirs, &[acme.id])
            .await
            .unwrap()
            .is_empty()
    );
    let ada_in_acme = UserFilter::of_company(acme.id);
    assert_eq!(session.count_users(mine, &ada_in_acme).await.unwrap(), 1);
    drop(session);

    let mut tx = store.write().await.unwrap();
    assert!(
        tx.delete_membership(mine, joined.id, Some(globex.id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.delete_membership(theirs, joined.id, None)
            .await
            .unwrap()
            .is_none()
    );
    let removed = tx
        .delete_memberships_except(mine, ada.id, &[acme.id])
        .await
        .unwrap();
    assert_eq!(
        removed.iter().map(|m| m.company_id).collect::<Vec<_>>(),
        [globex.id]
    );
    let deleted = tx
        .delete_membership(mine, joined.id, Some(acme.id))
        .await
        .unwrap();
    assert_eq!(deleted, Some(owner));
    tx.commit().await.unwrap();
    let left: HashMap<_, _> = store
        .read()
        .await
        .unwrap()
        .customer_members(mine, &[acme.id, globex.id])
        .await
        .unwrap();
    assert!(left.is_empty());
}

async fn deleting_a_user_and_a_companys_keys_and_members(backend: Backend) {
    let (_db, store, mine, theirs) = require!(fresh(backend).await);
    let acme = customer(mine, "billing@acme.com", None);
    insert_customers(&store, &[&acme]).await;
    let ada = new_user(&[("email", "ada@example.com")]);
    let bob = new_user(&[("email", "bob@example.com")]);
    let mut tx = store.write().await.unwrap();
    for user in [&ada, &bob] {
        tx.write_user(mine, user).await.unwrap();
        let joined = Membership::new(acme.id, user.id, None, now());
        tx.insert_membership(mine, &joined).await.unwrap().unwrap();
    }
    tx.write_keys(
        mine,
        acme.id,
        &keys(&[("domain", "acme.com")]),
        KeyOwners::Companies,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    tx.delete_user(theirs, ada.id).await.unwrap();
    assert!(
        tx.user_exists(mine, ada.id).await.unwrap(),
        "not another workspace's"
    );
    tx.delete_user(mine, ada.id).await.unwrap();
    assert!(!tx.user_exists(mine, ada.id).await.unwrap());
    let ada_keys = tx
        .key_owners(
            mine,
            &keys(&[("email", "ada@example.com")]),
            KeyOwners::Users,
        )
        .await
        .unwrap();
    assert!(ada_keys.is_empty(), "a deleted user's keys are free");
    assert!(
        tx.delete_company_memberships(theirs, acme.id)
            .await
            .unwrap()
            .is_empty()
    );
    let members = tx.delete_company_memberships(mine, acme.id).await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        [bob.id]
    );
    tx.delete_company_keys(mine, acme.id).await.unwrap();
    let domain = tx
        .key_owners(mine, &keys(&[("domain", "acme.com")]), KeyOwners::Companies)
        .await
        .unwrap();
    assert!(domain.is_empty(), "the company's keys are free");
    tx.commit().await.unwrap();
}
