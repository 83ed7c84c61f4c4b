//! EntityService over the wire: the seed 000 upsert rules, archive, types,
//! tenancy and a 16-way race.

use std::collections::HashMap;

use kith::pb::kith::v1::entity_service_client::EntityServiceClient;
use kith::pb::kith::v1::{
    self as pb, BatchArchiveEntitiesRequest, BatchUnarchiveEntitiesRequest,
    BatchUpsertEntitiesRequest, BatchUpsertEntityTypesRequest, CreateCustomerRequest,
    DeleteCustomerRequest, EntityTypeUpsert, EntityUpsert, GetEntityRequest, ListEntitiesRequest,
    ListEntityTypesRequest,
};
use tonic::Code;

use crate::grpc_support::{assert_error, error_of};
use crate::harness::{Authed, Backend, TestApp, backend_tests, require};

backend_tests!(
    upserting_the_seed_example_creates_both_entities,
    metadata_merges_key_by_key_and_empty_values_delete,
    types_are_required_to_create_and_must_be_usable,
    batches_are_validated_whole_and_write_nothing_when_bad,
    the_owner_must_be_a_live_customer_and_scopes_ids,
    archived_entities_are_hidden_and_restored_by_upsert,
    listing_pages_filters_by_type,
    entity_types_converge_and_list,
    another_workspace_sees_no_entities,
    sixteen_racing_batches_leave_one_row_per_id,
    racing_type_batches_in_opposite_orders_all_succeed,
);

type Client = EntityServiceClient<Authed>;

fn entities(app: &TestApp) -> Client {
    app.entities()
}

/// A customer with this external id and the `user` and `team` types.
async fn setup(app: &TestApp, owner: &str) -> Client {
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some(format!("{}@example.com", owner.replace('@', "."))),
                external_id: Some(owner.to_owned()),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap();
    let mut client = entities(app);
    client
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![entity_type("user", "User"), entity_type("team", "Team")],
        })
        .await
        .unwrap();
    client
}

fn entity_type(id: &str, name: &str) -> EntityTypeUpsert {
    EntityTypeUpsert {
        id: id.to_owned(),
        display_name: name.to_owned(),
        ..EntityTypeUpsert::default()
    }
}

fn upsert(id: &str, type_id: Option<&str>, metadata: &[(&str, &str)]) -> EntityUpsert {
    EntityUpsert {
        id: id.to_owned(),
        type_id: type_id.map(str::to_owned),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..EntityUpsert::default()
    }
}

async fn batch(
    client: &mut Client,
    owner: &str,
    entities: Vec<EntityUpsert>,
) -> Result<Vec<pb::Entity>, tonic::Status> {
    client
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_external_id: owner.to_owned(),
            entities,
        })
        .await
        .map(|r| r.into_inner().entities)
}

async fn get(client: &mut Client, owner: &str, id: &str) -> Result<pb::Entity, tonic::Status> {
    client
        .get_entity(GetEntityRequest {
            customer_external_id: owner.to_owned(),
            entity_id: id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().entity.unwrap())
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn upserting_the_seed_example_creates_both_entities(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    let stored = batch(
        &mut client,
        "cust-1",
        vec![
            upsert(
                "user-7f3a0c1d",
                Some("user"),
                &[("email", "jane@acme.com"), ("role", "admin")],
            ),
            upsert("user-c4d1b2e9", Some("user"), &[("email", "john@acme.com")]),
        ],
    )
    .await
    .unwrap();
    let ids: Vec<_> = stored.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["user-7f3a0c1d", "user-c4d1b2e9"], "request order");
    assert_eq!(stored[0].type_id, "user");
    assert_eq!(stored[0].customer_external_id, "cust-1");
    assert_eq!(
        stored[0].metadata,
        map(&[("email", "jane@acme.com"), ("role", "admin")])
    );
    assert!(stored[0].archived_at.is_none());
    assert_eq!(stored[0].created_at, stored[0].updated_at);
    assert_eq!(
        get(&mut client, "cust-1", "user-7f3a0c1d").await.unwrap(),
        stored[0]
    );
}

async fn metadata_merges_key_by_key_and_empty_values_delete(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    let first = upsert("e1", Some("user"), &[("a", "1"), ("b", "2"), ("c", "3")]);
    let created = batch(
        &mut client,
        "cust-1",
        vec![EntityUpsert {
            display_name: Some("Named".into()),
            ..first
        }],
    )
    .await
    .unwrap()
    .remove(0);

    // No type, no name, one key changed, one deleted: the rest is kept.
    let merged = batch(
        &mut client,
        "cust-1",
        vec![upsert("e1", None, &[("b", "20"), ("c", ""), ("d", "4")])],
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(merged.metadata, map(&[("a", "1"), ("b", "20"), ("d", "4")]));
    assert_eq!(merged.type_id, "user");
    assert_eq!(merged.display_name.as_deref(), Some("Named"));
    assert_eq!(merged.created_at, created.created_at);
    assert_eq!(
        get(&mut client, "cust-1", "e1").await.unwrap(),
        merged,
        "the reply is what is stored"
    );

    let untouched = batch(&mut client, "cust-1", vec![upsert("e1", Some("team"), &[])])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        untouched.metadata, merged.metadata,
        "an empty map changes nothing"
    );
    assert_eq!(
        untouched.type_id, "team",
        "a sent type replaces the stored one"
    );

    let cleared = EntityUpsert {
        display_name: Some(String::new()),
        ..upsert("e1", None, &[])
    };
    let cleared = batch(&mut client, "cust-1", vec![cleared])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(cleared.display_name, None, "an empty name clears it");
}

async fn types_are_required_to_create_and_must_be_usable(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    assert_error(
        batch(
            &mut client,
            "cust-1",
            vec![upsert("ok", Some("user"), &[]), upsert("new", None, &[])],
        )
        .await,
        Code::InvalidArgument,
        &["entities[1].type_id"],
    );
    assert_error(
        batch(&mut client, "cust-1", vec![upsert("e", Some("ghost"), &[])]).await,
        Code::InvalidArgument,
        &["entities[0].type_id"],
    );
    client
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                archived: Some(true),
                ..entity_type("team", "Team")
            }],
        })
        .await
        .unwrap();
    assert_error(
        batch(&mut client, "cust-1", vec![upsert("e", Some("team"), &[])]).await,
        Code::InvalidArgument,
        &["entities[0].type_id"],
    );
    let listed = client
        .list_entities(ListEntitiesRequest {
            customer_external_id: "cust-1".into(),
            include_archived: true,
            ..ListEntitiesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entities.is_empty(), "no failed batch wrote anything");
}

async fn batches_are_validated_whole_and_write_nothing_when_bad(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    let many = |n: usize| {
        (0..n)
            .map(|i| upsert(&format!("e{i}"), Some("user"), &[]))
            .collect::<Vec<_>>()
    };

    assert_error(
        batch(&mut client, "cust-1", many(101)).await,
        Code::InvalidArgument,
        &["entities"],
    );
    assert_error(
        batch(&mut client, "cust-1", Vec::new()).await,
        Code::InvalidArgument,
        &["entities"],
    );
    let mut bad_at_57 = many(100);
    bad_at_57[57].id = "jane@acme.com".into();
    assert_error(
        batch(&mut client, "cust-1", bad_at_57).await,
        Code::InvalidArgument,
        &["entities[57].id"],
    );
    let mut twice = many(10);
    twice[7].id = "e3".into();
    assert_error(
        batch(&mut client, "cust-1", twice).await,
        Code::InvalidArgument,
        &["entities[3].id", "entities[7].id"],
    );
    let long_value = upsert("e", Some("user"), &[("k", &"v".repeat(1001))]);
    assert_error(
        batch(&mut client, "cust-1", vec![long_value]).await,
        Code::InvalidArgument,
        &["entities[0].metadata.k"],
    );
    let listed = client
        .list_entities(ListEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ..ListEntitiesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entities.is_empty(), "nothing was written");

    let full = batch(&mut client, "cust-1", many(100)).await.unwrap();
    assert_eq!(full.len(), 100, "a batch of exactly 100 is accepted");
}

async fn the_owner_must_be_a_live_customer_and_scopes_ids(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "jane@acme.com").await;
    setup(&app, "cust-2").await;
    let (code, _, _) =
        error_of(batch(&mut client, "nobody", vec![upsert("e", Some("user"), &[])]).await);
    assert_eq!(code, Code::NotFound);
    assert_error(
        batch(&mut client, "-bad", vec![upsert("e", Some("user"), &[])]).await,
        Code::InvalidArgument,
        &["customer_external_id"],
    );

    let mine = batch(
        &mut client,
        "jane@acme.com",
        vec![upsert("shared-id", Some("user"), &[("owner", "jane")])],
    )
    .await
    .unwrap();
    let theirs = batch(
        &mut client,
        "cust-2",
        vec![upsert("shared-id", Some("team"), &[("owner", "two")])],
    )
    .await
    .unwrap();
    assert_ne!(mine[0].metadata, theirs[0].metadata);
    assert_eq!(
        get(&mut client, "jane@acme.com", "shared-id")
            .await
            .unwrap()
            .metadata,
        map(&[("owner", "jane")])
    );

    app.customers()
        .delete_customer(DeleteCustomerRequest {
            lookup: Some(pb::delete_customer_request::Lookup::ExternalId(
                "cust-2".into(),
            )),
        })
        .await
        .unwrap();
    assert_error(
        get(&mut client, "cust-2", "shared-id").await,
        Code::NotFound,
        &[],
    );
    let (code, _, _) =
        error_of(batch(&mut client, "cust-2", vec![upsert("e", Some("user"), &[])]).await);
    assert_eq!(code, Code::NotFound, "a deleted owner is not found");
}

async fn archived_entities_are_hidden_and_restored_by_upsert(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    batch(
        &mut client,
        "cust-1",
        vec![
            upsert("a", Some("user"), &[]),
            upsert("b", Some("user"), &[]),
        ],
    )
    .await
    .unwrap();

    let archived = client
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ids: vec!["a".into(), "a".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .entities;
    assert_eq!(archived.len(), 1);
    assert!(archived[0].archived_at.is_some());
    let visible = |include_archived| ListEntitiesRequest {
        customer_external_id: "cust-1".into(),
        include_archived,
        ..ListEntitiesRequest::default()
    };
    let listed = client
        .list_entities(visible(false))
        .await
        .unwrap()
        .into_inner()
        .entities;
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        client
            .list_entities(visible(true))
            .await
            .unwrap()
            .into_inner()
            .entities
            .len(),
        2
    );
    assert!(
        get(&mut client, "cust-1", "a")
            .await
            .unwrap()
            .archived_at
            .is_some(),
        "get finds archived entities"
    );

    let unknown = client
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ids: vec!["b".into(), "ghost".into()],
        })
        .await;
    assert_error(unknown, Code::NotFound, &[]);
    assert!(
        get(&mut client, "cust-1", "b")
            .await
            .unwrap()
            .archived_at
            .is_none(),
        "an unknown id changes nothing"
    );

    let restored = batch(&mut client, "cust-1", vec![upsert("a", None, &[])])
        .await
        .unwrap()
        .remove(0);
    assert!(restored.archived_at.is_none(), "an upsert restores");
    client
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ids: vec!["b".into()],
        })
        .await
        .unwrap();
    let unarchived = client
        .batch_unarchive_entities(BatchUnarchiveEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ids: vec!["b".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .entities;
    assert!(unarchived[0].archived_at.is_none());
}

async fn listing_pages_filters_by_type(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(upsert(&format!("u{i}"), Some("user"), &[]));
        sent.push(upsert(&format!("t{i}"), Some("team"), &[]));
    }
    batch(&mut client, "cust-1", sent).await.unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_entities(ListEntitiesRequest {
                customer_external_id: "cust-1".into(),
                type_id: "user".into(),
                page_size: 2,
                page_token: token,
                ..ListEntitiesRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entities.len() <= 2);
        seen.extend(page.entities.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4"]);
}

async fn entity_types_converge_and_list(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = setup(&app, "cust-1").await;
    let with_keys = EntityTypeUpsert {
        attribution_keys: vec!["email".into()],
        ..entity_type("user", "Member")
    };
    let once = client
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![with_keys.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .types;
    let twice = client
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![with_keys],
        })
        .await
        .unwrap()
        .into_inner()
        .types;
    assert_eq!(once[0].display_name, "Member");
    assert_eq!(twice[0].attribution_keys, ["email"]);
    assert_eq!(
        once[0].created_at, twice[0].created_at,
        "the same type, updated"
    );
    let listed = client
        .list_entity_types(ListEntityTypesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<_> = listed.types.iter().map(|t| t.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["team", "user"]);

    let bad = client
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![
                entity_type("x", ""),
                entity_type("a@b", "Bad"),
                entity_type("x", "Again"),
            ],
        })
        .await;
    assert_error(
        bad,
        Code::InvalidArgument,
        &[
            "types[0].display_name",
            "types[1].id",
            "types[0].id",
            "types[2].id",
        ],
    );
}

async fn another_workspace_sees_no_entities(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut mine = setup(&app, "cust-1").await;
    batch(&mut mine, "cust-1", vec![upsert("e", Some("user"), &[])])
        .await
        .unwrap();
    let key = app.other_workspace_key().await;
    let mut theirs = app.entities_with(Some(&key));
    assert_error(get(&mut theirs, "cust-1", "e").await, Code::NotFound, &[]);
    let (code, _, _) = error_of(
        theirs
            .list_entities(ListEntitiesRequest {
                customer_external_id: "cust-1".into(),
                ..ListEntitiesRequest::default()
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _, _) = error_of(
        batch(
            &mut theirs,
            "cust-1",
            vec![upsert("e", Some("user"), &[("x", "y")])],
        )
        .await,
    );
    assert_eq!(code, Code::NotFound);
    let archive = theirs
        .batch_archive_entities(BatchArchiveEntitiesRequest {
            customer_external_id: "cust-1".into(),
            ids: vec!["e".into()],
        })
        .await;
    assert_error(archive, Code::NotFound, &[]);
    let types = theirs
        .list_entity_types(ListEntityTypesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(types.types.is_empty());
    let unchanged = get(&mut mine, "cust-1", "e").await.unwrap();
    assert!(unchanged.metadata.is_empty() && unchanged.archived_at.is_none());
}

async fn sixteen_racing_batches_leave_one_row_per_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    setup(&app, "cust-1").await;
    let handles: Vec<_> = (0..16)
        .map(|caller| {
            let mut client = entities(&app);
            tokio::spawn(async move {
                // Overlapping windows of ids: caller n writes e{n}..e{n+9}.
                let items = (caller..caller + 10)
                    .map(|i| {
                        upsert(
                            &format!("e{i}"),
                            Some("user"),
                            &[(&format!("by{caller}"), "1")],
                        )
                    })
                    .collect();
                batch(&mut client, "cust-1", items).await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().expect("every racing batch succeeds");
    }
    let listed = entities(&app)
        .list_entities(ListEntitiesRequest {
            customer_external_id: "cust-1".into(),
            page_size: 100,
            ..ListEntitiesRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entities;
    assert_eq!(listed.len(), 25, "e0..e24, once each");
    let e9 = listed.iter().find(|e| e.id == "e9").unwrap();
    assert_eq!(
        e9.metadata.len(),
        10,
        "every caller's merge into e9 survived"
    );
}

async fn racing_type_batches_in_opposite_orders_all_succeed(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let ids: Vec<String> = (0..20).map(|i| format!("type-{i:02}")).collect();
    let handles: Vec<_> = (0..8)
        .map(|caller| {
            let mut client = entities(&app);
            let mut order = ids.clone();
            if caller % 2 == 1 {
                order.reverse();
            }
            tokio::spawn(async move {
                let types = order
                    .iter()
                    .map(|id| entity_type(id, &format!("by {caller}")))
                    .collect();
                client
                    .batch_upsert_entity_types(BatchUpsertEntityTypesRequest { types })
                    .await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().expect("no batch deadlocks or fails");
    }
    let listed = entities(&app)
        .list_entity_types(ListEntityTypesRequest {
            page_size: 100,
            ..ListEntityTypesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.types.len(), 20);
}
