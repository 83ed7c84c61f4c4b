//! The change log through ChangeService, on both backends: every
//! acknowledged write's changes once, in commit order and without gaps,
//! whichever reader; cursors that resume, expire and stay in their
//! workspace; filters; a reader too slow for the server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kith::config::ChangeLogConfig;
use kith::pb::kith::v1::{
    self as pb, BatchUpsertEntitiesRequest, BatchUpsertEntityTypesRequest,
    BatchUpsertPeopleRequest, Change, ChangeFilter, ChangeKind, ChangeOperation,
    CreateCustomerRequest, DeleteCustomerRequest, EntityTypeUpsert, EntityUpsert,
    GetCustomerRequest, GetPersonRequest, GetUserRequest, ListChangesRequest, ListCustomersRequest,
    LookupCompanyRequest, PersonUpsert, UpdateCustomerRequest, UpsertUserRequest, WatchRequest,
    WatchResponse, change, delete_customer_request, get_customer_request, get_person_request,
    update_customer_request,
};
use prost_types::FieldMask;
use tonic::Code;
use tonic::codec::Streaming;
use tonic_types::StatusExt;

use crate::grpc_support::assert_error;
use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    every_acknowledged_change_is_seen_once_in_commit_order_by_every_reader,
    a_write_that_fails_leaves_no_change,
    racing_creations_log_one_creation_and_no_retried_attempt,
    list_then_watch_sees_every_later_change_and_no_earlier_one,
    a_watch_resumes_from_its_cursor_without_loss_or_repeat,
    cursors_of_another_workspace_or_tampered_are_refused,
    filters_pick_kinds_owners_and_one_records_history,
    an_expired_cursor_is_out_of_range_once_changes_are_pruned,
    a_reader_too_slow_for_the_buffer_is_told_to_resume,
    another_workspaces_key_sees_none_of_the_log,
);

fn customer(email: &str) -> pb::Customer {
    pb::Customer {
        email: Some(email.to_owned()),
        ..pb::Customer::default()
    }
}

fn person(id: &str) -> PersonUpsert {
    PersonUpsert {
        user_id: id.to_owned(),
        email: Some(format!("{id}@example.com")),
        ..PersonUpsert::default()
    }
}

/// Every change after `cursor` (from the oldest when empty), page by page;
/// and the cursor after the last.
async fn list_all(
    app: &TestApp,
    filter: Option<ChangeFilter>,
    cursor: &str,
) -> (Vec<Change>, String) {
    let mut changes = Vec::new();
    let mut cursor = cursor.to_owned();
    loop {
        let page = app
            .changes()
            .list_changes(ListChangesRequest {
                filter: filter.clone(),
                cursor: cursor.clone(),
                page_size: 37,
            })
            .await
            .unwrap()
            .into_inner();
        let done = page.changes.is_empty();
        changes.extend(page.changes);
        cursor = page.next_cursor;
        if done {
            return (changes, cursor);
        }
    }
}

async fn watch(
    app: &TestApp,
    filter: Option<ChangeFilter>,
    cursor: &str,
) -> Streaming<WatchResponse> {
    app.changes()
        .watch(WatchRequest {
            filter,
            cursor: cursor.to_owned(),
            max_changes: 50,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Reads a watch until it has delivered `count` changes (checkpoints
/// skipped), failing after a bound.
pub(crate) async fn read_changes(
    stream: &mut Streaming<WatchResponse>,
    count: usize,
) -> (Vec<Change>, String) {
    let mut changes = Vec::new();
    let mut cursor = String::new();
    while changes.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the watch delivers within 20 s")
            .expect("the watch goes on")
            .expect("the watch is open");
        changes.extend(message.changes);
        cursor = message.cursor;
    }
    (changes, cursor)
}

pub(crate) fn assert_gap_free(changes: &[Change], first: i64) {
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    let expected: Vec<i64> = (first..first + i64::try_from(changes.len()).unwrap()).collect();
    assert_eq!(seqs, expected, "every change once, in order, without gaps");
    assert!(changes.iter().all(|c| c.revision == c.seq));
}

async fn every_acknowledged_change_is_seen_once_in_commit_order_by_every_reader(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut before = watch(&app, None, "").await;
    let opened = before.message().await.unwrap().unwrap();
    assert!(opened.changes.is_empty(), "a watch opens with a checkpoint");
    app.entities()
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: "seat".into(),
                display_name: "Seat".into(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await
        .unwrap();

    // Eight writers of every kind for a while; each remembers the records
    // it was told were written.
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (mut customers, mut people, mut users, mut entities) =
                (app.customers(), app.people(), app.users(), app.entities());
            tokio::spawn(async move {
                let mut written = Vec::new();
                for round in 0..6 {
                    let email = format!("w{writer}-r{round}@example.com");
                    let created = customers
                        .create_customer(CreateCustomerRequest {
                            customer: Some(pb::Customer {
                                external_id: Some(format!("w{writer}-r{round}")),
                                ..customer(&email)
                            }),
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .customer
                        .unwrap();
                    written.push(("customer", created.id.clone()));
                    customers
                        .update_customer(UpdateCustomerRequest {
                            lookup: Some(update_customer_request::Lookup::Id(created.id.clone())),
                            customer: Some(pb::Customer {
                                name: Some(format!("Renamed {round}")),
                                ..pb::Customer::default()
                            }),
                            update_mask: Some(FieldMask {
                                paths: vec!["name".into()],
                            }),
                        })
                        .await
                        .unwrap();
                    entities
                        .batch_upsert_entities(BatchUpsertEntitiesRequest {
                            customer_external_id: format!("w{writer}-r{round}"),
                            entities: (0..3)
                                .map(|i| EntityUpsert {
                                    id: format!("e{i}"),
                                    type_id: Some("seat".into()),
                                    ..EntityUpsert::default()
                                })
                                .collect(),
                        })
                        .await
                        .unwrap();
                    let batch: Vec<_> = (0..5)
                        .map(|i| person(&format!("w{writer}-r{round}-p{i}")))
                        .collect();
                    let upserted = people
                        .batch_upsert_people(BatchUpsertPeopleRequest { people: batch })
                        .await
                        .unwrap()
                        .into_inner();
                    written.extend(upserted.people.into_iter().map(|p| ("person", p.id)));
                    let user = users
                        .upsert_user(UpsertUserRequest {
                            keys: HashMap::from([("email".into(), email.clone())]),
                            company_id: Some(created.id.clone()),
                            ..UpsertUserRequest::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .user
                        .unwrap();
                    written.push(("user", user.id));
                    if round % 3 == 2 {
                        customers
                            .delete_customer(DeleteCustomerRequest {
                                lookup: Some(delete_customer_request::Lookup::Id(created.id)),
                            })
                            .await
                            .unwrap();
                    }
                }
                written
            })
        })
        .collect();
    // A watcher that starts midway, from a cursor a ListChanges gave.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (early, midway_cursor) = list_all(&app, None, "").await;
    let mut midway = watch(&app, None, &midway_cursor).await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }

    let (walked, _) = list_all(&app, None, "").await;
    assert_gap_free(&walked, 1);
    let (seen_before, _) = read_changes(&mut before, walked.len()).await;
    assert_eq!(seen_before, walked, "the watcher saw what the log holds");
    let (seen_midway, _) = read_changes(&mut midway, walked.len() - early.len()).await;
    assert_eq!(
        seen_midway,
        walked[early.len()..],
        "from its cursor, nothing lost or repeated"
    );

    // Every acknowledged record has its changes, and its last change is
    // what Get says now.
    let logged: HashSet<(&str, &str)> = walked
        .iter()
        .map(|c| {
            let kind = match c.kind() {
                ChangeKind::Customer => "customer",
                ChangeKind::Person => "person",
                ChangeKind::User => "user",
                _ => "other",
            };
            (kind, c.record_id.as_str())
        })
        .collect();
    for (kind, id) in &acknowledged {
        assert!(
            logged.contains(&(*kind, id.as_str())),
            "{kind} {id} has its change"
        );
    }
    let mut last: BTreeMap<(i32, String), &Change> = BTreeMap::new();
    for change in &walked {
        last.insert((change.kind, change.record_id.clone()), change);
    }
    let mut compared = HashSet::new();
    for change in last.values() {
        compared.insert(change.kind());
        match (&change.record, change.operation()) {
            (Some(change::Record::Customer(logged)), ChangeOperation::Deleted) => {
                let got = app
                    .customers()
                    .get_customer(GetCustomerRequest {
                        lookup: Some(get_customer_request::Lookup::Id(logged.id.clone())),
                    })
                    .await;
                assert_eq!(got.unwrap_err().code(), Code::NotFound);
            }
            (Some(change::Record::Customer(logged)), _) => {
                let got = app
                    .customers()
                    .get_customer(GetCustomerRequest {
                        lookup: Some(get_customer_request::Lookup::Id(logged.id.clone())),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .customer
                    .unwrap();
                assert_eq!(&got, logged, "the last change is the record as it is");
            }
            (Some(change::Record::User(logged)), _) => {
                let got = app
                    .users()
                    .get_user(GetUserRequest {
                        id: logged.id.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .user
                    .unwrap();
                assert_eq!(&got, logged, "a user's memberships as they are");
            }
            (Some(change::Record::Company(logged)), ChangeOperation::Deleted) => {
                let got = app
                    .users()
                    .lookup_company(LookupCompanyRequest {
                        keys: logged.keys.clone(),
                    })
                    .await;
                assert_eq!(got.unwrap_err().code(), Code::NotFound);
            }
            (Some(change::Record::Company(logged)), _) => {
                let got = app
                    .users()
                    .lookup_company(LookupCompanyRequest {
                        keys: logged.keys.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .company
                    .unwrap();
                assert_eq!(&got, logged);
            }
            (Some(change::Record::Person(logged)), _) => {
                let got = app
                    .people()
                    .get_person(GetPersonRequest {
                        lookup: Some(get_person_request::Lookup::Id(logged.id.clone())),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .person
                    .unwrap();
                assert_eq!(&got, logged);
            }
            _ => {
                compared.remove(&change.kind());
            }
        }
    }
    for kind in [
        ChangeKind::Customer,
        ChangeKind::Company,
        ChangeKind::User,
        ChangeKind::Person,
    ] {
        assert!(compared.contains(&kind), "{kind:?} records were compared");
    }
}

async fn a_write_that_fails_leaves_no_change(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("taken@example.com")),
        })
        .await
        .unwrap();
    let (before, cursor) = list_all(&app, None, "").await;
    let kinds: Vec<_> = before.iter().map(Change::kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Customer, ChangeKind::Company],
        "a customer is also a company"
    );
    let invalid = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("not an email")),
        })
        .await;
    assert_eq!(invalid.unwrap_err().code(), Code::InvalidArgument);
    let clash = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("TAKEN@example.com")),
        })
        .await;
    assert_eq!(clash.unwrap_err().code(), Code::AlreadyExists);
    // A batch whose second person clashes with the first's email writes
    // nobody, as one transaction.
    let clashing = app
        .people()
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![
                person("p1"),
                PersonUpsert {
                    email: Some("p1@example.com".into()),
                    ..person("p2")
                },
            ],
        })
        .await;
    assert_eq!(clashing.unwrap_err().code(), Code::InvalidArgument);
    let missing_owner = app
        .entities()
        .batch_upsert_entities(BatchUpsertEntitiesRequest {
            customer_external_id: "nobody".into(),
            entities: vec![EntityUpsert {
                id: "e".into(),
                type_id: Some("seat".into()),
                ..EntityUpsert::default()
            }],
        })
        .await;
    assert_eq!(missing_owner.unwrap_err().code(), Code::NotFound);
    let (after, _) = list_all(&app, None, &cursor).await;
    assert!(after.is_empty(), "refused writes left {after:?}");
}

/// Eight callers create the same customer and upsert the same user at
/// once. The customer's losers are refused; the user's retry after the
/// clash and update it. The log holds one creation of each and an update
/// per retried upsert: an attempt that clashed left nothing.
async fn racing_creations_log_one_creation_and_no_retried_attempt(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (mut customers, mut users) = (app.customers(), app.users());
            tokio::spawn(async move {
                let created = customers
                    .create_customer(CreateCustomerRequest {
                        customer: Some(customer("race@example.com")),
                    })
                    .await;
                if let Err(status) = &created {
                    assert_eq!(status.code(), Code::AlreadyExists);
                }
                users
                    .upsert_user(UpsertUserRequest {
                        keys: HashMap::from([("email".into(), "racer@example.com".into())]),
                        ..UpsertUserRequest::default()
                    })
                    .await
                    .expect("a racing upsert retries");
                created.is_ok()
            })
        })
        .collect();
    let mut customers_created = 0;
    for racer in racers {
        customers_created += usize::from(racer.await.unwrap());
    }
    assert_eq!(customers_created, 1);
    let (logged, _) = list_all(&app, None, "").await;
    let count = |kind: ChangeKind, operation: ChangeOperation| {
        logged
            .iter()
            .filter(|c| c.kind() == kind && c.operation() == operation)
            .count()
    };
    assert_eq!(count(ChangeKind::Customer, ChangeOperation::Created), 1);
    assert_eq!(count(ChangeKind::Customer, ChangeOperation::Updated), 0);
    assert_eq!(count(ChangeKind::User, ChangeOperation::Created), 1);
    assert_eq!(count(ChangeKind::User, ChangeOperation::Updated), 7);
    assert_gap_free(&logged, 1);
}

async fn list_then_watch_sees_every_later_change_and_no_earlier_one(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    for i in 0..3 {
        customers
            .create_customer(CreateCustomerRequest {
                customer: Some(customer(&format!("early{i}@example.com"))),
            })
            .await
            .unwrap();
    }
    let listed = customers
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers.len(), 3);
    let later = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("later@example.com")),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let customers_only = ChangeFilter {
        kinds: vec![ChangeKind::Customer.into()],
        ..ChangeFilter::default()
    };
    let mut stream = watch(&app, Some(customers_only), &listed.change_cursor).await;
    let (changes, _) = read_changes(&mut stream, 1).await;
    assert_eq!(
        changes.len(),
        1,
        "only the change after the list: {changes:?}"
    );
    assert_eq!(changes[0].record_id, later.id);
    assert_eq!(changes[0].operation(), ChangeOperation::Created);
    // Each customer is logged as a customer and as a company.
    assert_eq!(changes[0].seq, 7);
}

async fn a_watch_resumes_from_its_cursor_without_loss_or_repeat(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    let create = |i: usize| CreateCustomerRequest {
        customer: Some(customer(&format!("c{i}@example.com"))),
    };
    let mut stream = watch(&app, None, "").await;
    let start = stream.message().await.unwrap().unwrap().cursor;
    for i in 0..3 {
        customers.create_customer(create(i)).await.unwrap();
    }
    let (first, cursor) = read_changes(&mut stream, 3).await;
    drop(stream);
    for i in 3..6 {
        customers.create_customer(create(i)).await.unwrap();
    }
    let mut resumed = watch(&app, None, &cursor).await;
    let (second, _) = read_changes(&mut resumed, 3).await;
    let all: Vec<Change> = first.into_iter().chain(second).collect();
    assert_gap_free(&all, 1);
    // The start cursor replays everything, again.
    let mut again = watch(&app, None, &start).await;
    let (replayed, _) = read_changes(&mut again, 6).await;
    assert_eq!(replayed, all);
}

async fn cursors_of_another_workspace_or_tampered_are_refused(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (_, mine) = list_all(&app, None, "").await;
    let theirs = app.other_workspace_key().await;
    let mut tampered = mine.clone();
    tampered.replace_range(
        ..2,
        if tampered.starts_with("AA") {
            "AB"
        } else {
            "AA"
        },
    );
    for cursor in [mine.as_str(), "not a cursor", tampered.as_str()] {
        let listed = app
            .changes_with(Some(&theirs))
            .list_changes(ListChangesRequest {
                cursor: cursor.to_owned(),
                ..ListChangesRequest::default()
            })
            .await;
        assert_error(listed, Code::InvalidArgument, &["cursor"]);
        let watched = app
            .changes_with(Some(&theirs))
            .watch(WatchRequest {
                cursor: cursor.to_owned(),
                ..WatchRequest::default()
            })
            .await;
        assert_error(watched, Code::InvalidArgument, &["cursor"]);
    }
    let bad_size = app
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 5000,
            ..ListChangesRequest::default()
        })
        .await;
    assert_error(bad_size, Code::InvalidArgument, &["page_size"]);
    let bad_kind = app
        .changes()
        .list_changes(ListChangesRequest {
            filter: Some(ChangeFilter {
                kinds: vec![99],
                ..ChangeFilter::default()
            }),
            ..ListChangesRequest::default()
        })
        .await;
    assert_error(bad_kind, Code::InvalidArgument, &["filter.kinds[0]"]);
}

async fn filters_pick_kinds_owners_and_one_records_history(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    let mut ids = Vec::new();
    for owner in ["acme", "globex"] {
        let created = customers
            .create_customer(CreateCustomerRequest {
                customer: Some(pb::Customer {
                    external_id: Some(owner.into()),
                    ..customer(&format!("{owner}@example.com"))
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        ids.push(created.id);
    }
    app.entities()
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: "seat".into(),
                display_name: "Seat".into(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await
        .unwrap();
    for owner in ["acme", "globex"] {
        app.entities()
            .batch_upsert_entities(BatchUpsertEntitiesRequest {
                customer_external_id: owner.into(),
                entities: vec![EntityUpsert {
                    id: "e1".into(),
                    type_id: Some("seat".into()),
                    ..EntityUpsert::default()
                }],
            })
            .await
            .unwrap();
    }
    for name in ["First", "Second"] {
        customers
            .update_customer(UpdateCustomerRequest {
                lookup: Some(update_customer_request::Lookup::Id(ids[0].clone())),
                customer: Some(pb::Customer {
                    name: Some(name.into()),
                    ..pb::Customer::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["name".into()],
                }),
            })
            .await
            .unwrap();
    }

    let acme_entities = ChangeFilter {
        kinds: vec![ChangeKind::Entity.into()],
        owner_id: "acme".into(),
        ..ChangeFilter::default()
    };
    let (changes, _) = list_all(&app, Some(acme_entities.clone()), "").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (
            changes[0].record_id.as_str(),
            changes[0].owner_id.as_deref()
        ),
        ("e1", Some("acme"))
    );
    let mut stream = watch(&app, Some(acme_entities), "").await;
    let opened = stream.message().await.unwrap().unwrap();
    assert!(opened.changes.is_empty());

    // A record's history: who changed what, when. The customer row is also
    // a company, logged beside it.
    let history = ChangeFilter {
        record_id: ids[0].clone(),
        ..ChangeFilter::default()
    };
    let (both, _) = list_all(&app, Some(history.clone()), "").await;
    let kinds: Vec<_> = both.iter().map(Change::kind).collect();
    assert_eq!(kinds, [ChangeKind::Customer, ChangeKind::Company].repeat(3));
    let customer_history = ChangeFilter {
        kinds: vec![ChangeKind::Customer.into()],
        ..history
    };
    let (changes, _) = list_all(&app, Some(customer_history), "").await;
    let operations: Vec<_> = changes.iter().map(Change::operation).collect();
    assert_eq!(
        operations,
        [
            ChangeOperation::Created,
            ChangeOperation::Updated,
            ChangeOperation::Updated
        ]
    );
    let names: Vec<_> = changes
        .iter()
        .map(|c| match &c.record {
            Some(change::Record::Customer(customer)) => customer.name.clone(),
            other => panic!("a customer change, got {other:?}"),
        })
        .collect();
    assert_eq!(names, [None, Some("First".into()), Some("Second".into())]);
    assert!(
        changes
            .iter()
            .all(|c| !c.api_key_id.is_empty() && c.committed_at.is_some())
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
}

async fn an_expired_cursor_is_out_of_range_once_changes_are_pruned(backend: Backend) {
    let log = ChangeLogConfig {
        retention: Duration::from_millis(300),
        prune_every: Duration::from_millis(100),
        ..ChangeLogConfig::default()
    };
    let app = require!(TestApp::builder(backend).change_log(log).start().await);
    let (_, start) = list_all(&app, None, "").await;
    for i in 0..3 {
        app.customers()
            .create_customer(CreateCustomerRequest {
                customer: Some(customer(&format!("old{i}@example.com"))),
            })
            .await
            .unwrap();
    }
    // Pruned within a few rounds of the pruner.
    let mut expired = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listed = app
            .changes()
            .list_changes(ListChangesRequest {
                cursor: start.clone(),
                ..ListChangesRequest::default()
            })
            .await;
        if let Err(status) = listed {
            expired = Some(status);
            break;
        }
    }
    let status = expired.expect("the start cursor expires once its changes are pruned");
    assert_eq!(status.code(), Code::OutOfRange);
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "ERROR_REASON_CURSOR_EXPIRED");
    let watched = app
        .changes()
        .watch(WatchRequest {
            cursor: start,
            ..WatchRequest::default()
        })
        .await;
    assert_eq!(watched.unwrap_err().code(), Code::OutOfRange);
    // Listed again, a client goes on from the log's oldest kept change: once
    // the last of the three is past the retention too, none.
    let mut kept = Vec::new();
    for _ in 0..50 {
        (kept, _) = list_all(&app, None, "").await;
        if kept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kept.is_empty(), "all three were pruned: {kept:?}");
}

async fn a_reader_too_slow_for_the_buffer_is_told_to_resume(backend: Backend) {
    let log = ChangeLogConfig {
        stall_timeout: Duration::from_millis(500),
        ..ChangeLogConfig::default()
    };
    let app = require!(TestApp::builder(backend).change_log(log).start().await);
    let mut stream = app
        .changes_on_narrow_connection()
        .watch(WatchRequest {
            max_changes: 1,
            ..WatchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    // Far more than the transport's windows and the server's buffer hold.
    for batch in 0..12 {
        let people = (0..100)
            .map(|i| person(&format!("b{batch}-p{i}")))
            .collect();
        app.people()
            .batch_upsert_people(BatchUpsertPeopleRequest { people })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut last_cursor = String::new();
    let mut seen = Vec::new();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(message)) => {
                seen.extend(message.changes);
                last_cursor = message.cursor;
            }
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::ResourceExhausted);
    let info = ended.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "ERROR_REASON_CONSUMER_TOO_SLOW");
    assert!(seen.len() < 1200, "the server gave up before sending all");
    // From its last cursor the reader goes on where it stopped.
    let mut resumed = watch(&app, None, &last_cursor).await;
    let (rest, _) = read_changes(&mut resumed, 1200 - seen.len()).await;
    seen.extend(rest);
    assert_gap_free(&seen, 1);
}

async fn another_workspaces_key_sees_none_of_the_log(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("mine@example.com")),
        })
        .await
        .unwrap();
    let theirs = app.other_workspace_key().await;
    let listed = app
        .changes_with(Some(&theirs))
        .list_changes(ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.changes.is_empty());
    let mut stream = app
        .changes_with(Some(&theirs))
        .watch(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let opened = stream.message().await.unwrap().unwrap();
    assert!(opened.changes.is_empty());
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(customer("mine2@example.com")),
        })
        .await
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(1500), stream.message()).await;
    if let Ok(message) = quiet {
        let message = message.unwrap().unwrap();
        assert!(message.changes.is_empty(), "B sees none of A's changes");
    }
}
