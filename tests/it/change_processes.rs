//! The change log across processes, as operators run Kith: a crash under
//! write load, and replicas on one PostgreSQL database.

use std::collections::HashSet;
use std::time::Duration;

use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::{
    BatchUpsertPeopleRequest, ChangeKind, ChangeOperation, CreateCustomerRequest, Customer,
    PersonUpsert, WatchRequest, WatchResponse,
};
use tonic::codec::Streaming;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

use crate::changes::{assert_gap_free, read_changes};
use crate::grpc_support::whole_log;
use crate::harness::{Backend, TestDb, backend_tests, require};
use crate::kith_process::{Bearer, Database, Kith};
use crate::processes::write_people_until_gone;

backend_tests!(
    a_crash_under_write_load_loses_no_change_and_a_watcher_resumes_exactly,
    a_stopping_server_ends_its_watches_for_their_readers_to_resume,
);

type Changes = ChangeServiceClient<InterceptedService<Channel, Bearer>>;

fn person(id: &str) -> PersonUpsert {
    PersonUpsert {
        user_id: id.to_owned(),
        email: Some(format!("{id}@example.com")),
        ..PersonUpsert::default()
    }
}

/// A watch from the log's present, its opening checkpoint read.
async fn watch_from_now(mut changes: Changes) -> Streaming<WatchResponse> {
    let mut stream = changes
        .watch(WatchRequest {
            max_changes: 100,
            ..WatchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let opened = stream.message().await.unwrap().unwrap();
    assert!(opened.changes.is_empty(), "a watch opens with a checkpoint");
    stream
}

/// `kill -9` while four callers write and a watcher follows: after a
/// restart every acknowledged write has its change, the log has no gap,
/// and the watcher, resuming from the last cursor it was given, receives
/// exactly the changes it had not.
async fn a_crash_under_write_load_loses_no_change_and_a_watcher_resumes_exactly(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let key = kith.key.clone();
    let mut stream = watch_from_now(kith.changes()).await;
    // What the watcher had received, and the cursor after it, when the
    // server died.
    let watched = tokio::spawn(async move {
        let (mut seen, mut cursor) = (Vec::new(), String::new());
        while let Ok(Some(message)) = stream.message().await {
            seen.extend(message.changes);
            cursor = message.cursor;
        }
        (seen, cursor)
    });
    let (writers, acknowledged) = write_people_until_gone(&kith);
    while acknowledged.lock().unwrap().len() < 1_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !writers.iter().all(tokio::task::JoinHandle::is_finished),
            "every writer stopped before the crash"
        );
    }
    kith.crash().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let (seen, cursor) = watched.await.unwrap();
    assert!(!seen.is_empty(), "the watcher followed the writes");

    let mut kith = Kith::start(&db.url, Database::Existing).await.unwrap();
    kith.key = key;
    let logged = whole_log(&mut kith.changes()).await;
    assert_gap_free(&logged, 1);
    let created: HashSet<&str> = logged
        .iter()
        .filter(|c| c.kind() == ChangeKind::Person && c.operation() == ChangeOperation::Created)
        .filter_map(|c| c.external_id.as_deref())
        .collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !created.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged people have no change",
        missing.len()
    );

    let mut resumed = kith
        .changes()
        .watch(WatchRequest {
            cursor,
            max_changes: 100,
            ..WatchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (rest, _) = read_changes(&mut resumed, logged.len() - seen.len()).await;
    let mut followed = seen;
    followed.extend(rest);
    assert_eq!(followed, logged, "nothing lost, nothing repeated");
    kith.stop().await.unwrap();
}

/// SIGTERM ends a Watch at once with UNAVAILABLE and reason SHUTTING_DOWN,
/// rather than holding the stop for the drain time (a minute here) and
/// then cutting the stream off; the reader resumes from its cursor after
/// the restart.
async fn a_stopping_server_ends_its_watches_for_their_readers_to_resume(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let long_drain = ["--drain-timeout-secs", "60"];
    let kith = Kith::start_with(&db.url, Database::Fresh, &long_drain)
        .await
        .unwrap();
    let key = kith.key.clone();
    let mut stream = watch_from_now(kith.changes()).await;
    kith.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("before@example.com".into()),
                ..Customer::default()
            }),
        })
        .await
        .unwrap();
    let (seen, cursor) = read_changes(&mut stream, 2).await;

    let stopping = kith.terminate();
    let ended = loop {
        match stream.message().await {
            Ok(Some(message)) => assert!(message.changes.is_empty(), "{message:?}"),
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended}");
    let info = ended.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "ERROR_REASON_SHUTTING_DOWN");
    let exited = tokio::time::timeout(Duration::from_secs(30), stopping.wait())
        .await
        .expect("the stop did not wait for the drain time")
        .unwrap();
    assert!(exited.success(), "exit status {exited}");

    let mut kith = Kith::start(&db.url, Database::Existing).await.unwrap();
    kith.key = key;
    kith.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("after@example.com".into()),
                ..Customer::default()
            }),
        })
        .await
        .unwrap();
    let mut resumed = kith
        .changes()
        .watch(WatchRequest {
            cursor,
            ..WatchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (after, _) = read_changes(&mut resumed, 2).await;
    assert_eq!(after[0].seq, seen[1].seq + 1);
    kith.stop().await.unwrap();
}

/// Two processes on one PostgreSQL database, writing at once: a watcher on
/// each sees the same sequence. Then, with polling a minute away, a write
/// on one reaches a watcher on the other within a second: the database's
/// notification woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_database_follow_one_sequence() {
    let db = require!(TestDb::new(Backend::Postgres).await);
    let slow_polling = ["--watch-poll-interval", "60s"];
    let first = Kith::start_with(&db.url, Database::Fresh, &slow_polling)
        .await
        .unwrap();
    let mut second = Kith::start_with(&db.url, Database::Existing, &slow_polling)
        .await
        .unwrap();
    second.key.clone_from(&first.key);
    let mut on_first = watch_from_now(first.changes()).await;
    let mut on_second = watch_from_now(second.changes()).await;

    let mut writers = Vec::new();
    for (replica, kith) in [&first, &second].into_iter().enumerate() {
        for writer in 0..4 {
            let (mut customers, mut people) = (kith.customers(), kith.people());
            writers.push(tokio::spawn(async move {
                for round in 0..10 {
                    let id = format!("r{replica}-w{writer}-{round}");
                    customers
                        .create_customer(CreateCustomerRequest {
                            customer: Some(Customer {
                                email: Some(format!("{id}@example.com")),
                                ..Customer::default()
                            }),
                        })
                        .await
                        .unwrap();
                    people
                        .batch_upsert_people(BatchUpsertPeopleRequest {
                            people: (0..5).map(|i| person(&format!("{id}-p{i}"))).collect(),
                        })
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let logged = whole_log(&mut first.changes()).await;
    assert_gap_free(&logged, 1);
    assert_eq!(logged.len(), 2 * 4 * 10 * (2 + 5), "every write's changes");
    let (seen_on_first, _) = read_changes(&mut on_first, logged.len()).await;
    let (seen_on_second, _) = read_changes(&mut on_second, logged.len()).await;
    assert_eq!(seen_on_first, logged);
    assert_eq!(seen_on_second, logged, "both replicas tell one sequence");

    first
        .customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("prompt@example.com".into()),
                ..Customer::default()
            }),
        })
        .await
        .unwrap();
    let arrived =
        tokio::time::timeout(Duration::from_secs(1), read_changes(&mut on_second, 1)).await;
    let (changes, _) = arrived.expect("the other replica's watcher wakes within 1 s");
    assert_eq!(changes[0].seq, i64::try_from(logged.len()).unwrap() + 1);
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}
