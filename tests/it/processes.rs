//! Kith as its own process, as operators run it: crashes, signals, replicas
//! on one database, and what it writes to its logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::update_customer_request::Lookup;
use kith::pb::kith::v1::{
    BatchUpsertPeopleRequest, CreateCustomerRequest, Customer, ImportPeopleRequest,
    ListPeopleRequest, PersonUpsert, UpdateCustomerRequest,
};
use prost_types::{Struct, Value, value::Kind};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::grpc_support::stored_person_ids;
use crate::harness::{Backend, TestDb, backend_tests, require};
use crate::kith_process::{Bearer, Database, Kith};

backend_tests!(
    a_crash_under_write_load_loses_no_acknowledged_write,
    sigterm_drains_calls_in_flight_then_exits_zero,
    a_call_held_open_is_cut_off_at_the_drain_time,
    logs_carry_no_keys_or_personal_data,
    a_command_writing_beside_the_server_waits_its_turn,
);

fn person(id: &str) -> PersonUpsert {
    PersonUpsert {
        user_id: id.to_owned(),
        email: Some(format!("{id}@example.com")),
        ..PersonUpsert::default()
    }
}

/// `kill -9` while four callers write batches: every batch that was
/// acknowledged is there after a restart, and the database opens cleanly.
async fn a_crash_under_write_load_loses_no_acknowledged_write(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let key = kith.key.clone();
    let (writers, acknowledged) = write_people_until_gone(&kith);
    while acknowledged.lock().unwrap().len() < 2_000 {
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

    let mut kith = Kith::start(&db.url, Database::Existing).await.unwrap();
    kith.key = key;
    let stored = stored_person_ids(kith.channel.clone(), kith.key.as_deref().unwrap()).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "{} acknowledged people lost", lost.len());
    if backend == Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }
    kith.stop().await.unwrap();
}

/// `kith keys create` writes to the database the server is writing to (on
/// SQLite, a second process on the same file) while four callers update
/// their customer over and over, each update a read then a write: every
/// command succeeds and no update fails beside it, because each side waits
/// for the other's write to end.
async fn a_command_writing_beside_the_server_waits_its_turn(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let updates = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let mut customers = kith.customers();
        let customer = Customer {
            external_id: Some(format!("customer-{writer}")),
            email: Some(format!("customer-{writer}@example.com")),
            ..Customer::default()
        };
        customers
            .create_customer(CreateCustomerRequest {
                customer: Some(customer),
            })
            .await
            .unwrap();
        let updates = updates.clone();
        writers.push(tokio::spawn(async move {
            for round in 0.. {
                let request = UpdateCustomerRequest {
                    lookup: Some(Lookup::ExternalId(format!("customer-{writer}"))),
                    customer: Some(Customer {
                        name: Some(format!("round {round}")),
                        ..Customer::default()
                    }),
                    update_mask: None,
                };
                if let Err(status) = customers.update_customer(request).await {
                    return status;
                }
                updates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            unreachable!("the loop ends by an error")
        }));
    }
    while updates.load(std::sync::atomic::Ordering::Relaxed) < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for attempt in 0..20 {
        let url = db.url.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_kith"))
                .args(["keys", "create", "--workspace", "default"])
                .args(["--database-url", &url])
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            output.status.success(),
            "key {attempt}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(failed) = writers
            .iter()
            .position(tokio::task::JoinHandle::is_finished)
        {
            let status = writers.swap_remove(failed).await.unwrap();
            panic!("an update failed beside key {attempt}: {status}");
        }
    }
    kith.stop().await.unwrap();
    for writer in writers {
        let status = writer.await.unwrap();
        assert!(
            matches!(status.code(), Code::Unavailable | Code::Cancelled),
            "only the server's going away ends an update: {status}"
        );
    }
}

/// Four callers write batches of new people until the server is gone;
/// returns their tasks and the people it acknowledged.
pub(crate) fn write_people_until_gone(
    kith: &Kith,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<Vec<String>>>) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers = (0..4)
        .map(|writer| {
            let mut people = kith.people();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for batch in 0.. {
                    let ids: Vec<String> = (0..20)
                        .map(|i| format!("w{writer}-b{batch}-p{i}"))
                        .collect();
                    let written = people
                        .batch_upsert_people(BatchUpsertPeopleRequest {
                            people: ids.iter().map(|id| person(id)).collect(),
                        })
                        .await;
                    match written {
                        Ok(_) => acknowledged.lock().unwrap().extend(ids),
                        // The server is gone: what it acknowledged is known.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    (writers, acknowledged)
}

fn chunk(from: usize) -> ImportPeopleRequest {
    ImportPeopleRequest {
        people: (from..from + 100)
            .map(|i| person(&format!("imported-{i}")))
            .collect(),
    }
}

/// Streams 600 people and waits until the server has written its first batch
/// of 500 (a batch is written once the next person arrives): the import is
/// then surely in flight on the server, with 100 people pending.
async fn import_in_flight(kith: &Kith, chunks: &tokio::sync::mpsc::Sender<ImportPeopleRequest>) {
    for from in (0..600).step_by(100) {
        chunks.send(chunk(from)).await.unwrap();
    }
    let key = kith.key.as_deref().unwrap();
    for _ in 0..600 {
        if stored_person_ids(kith.channel.clone(), key).await.len() >= 500 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the first batch of the import was never written");
}

async fn health(channel: &Channel) -> Result<ServingStatus, tonic::Status> {
    let reply = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await?;
    Ok(reply.into_inner().status())
}

/// SIGTERM with an import streaming: health says NOT_SERVING at once, new
/// connections are refused, the import still finishes with every row, and
/// the process exits 0.
async fn sigterm_drains_calls_in_flight_then_exits_zero(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let mut watch = HealthClient::new(kith.channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let (chunks, stream) = tokio::sync::mpsc::channel(4);
    let mut people = kith.people();
    let import =
        tokio::spawn(async move { people.import_people(ReceiverStream::new(stream)).await });
    import_in_flight(&kith, &chunks).await;
    let grpc = kith.grpc.clone();

    let kith = kith.terminate();
    let status = watch.message().await.unwrap().unwrap().status();
    assert_eq!(status, ServingStatus::NotServing, "health turns first");
    drop(watch);
    // Health turns before the listener closes, so that balancers stop
    // sending first; new connections are refused right after.
    let mut refused = false;
    for _ in 0..100 {
        refused = match Endpoint::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
        {
            Err(_) => true,
            Ok(channel) => health(&channel).await.is_err(),
        };
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections are refused while draining");

    chunks.send(chunk(600)).await.unwrap();
    drop(chunks);
    let reply = import
        .await
        .unwrap()
        .expect("the import in flight completes");
    assert_eq!(reply.into_inner().created_count, 700);
    let status = kith.wait().await.unwrap();
    assert!(status.success(), "exit status {status}");
}

/// A stream its client never closes does not hold a stopping server past
/// its drain time.
async fn a_call_held_open_is_cut_off_at_the_drain_time(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start_with(&db.url, Database::Fresh, &["--drain-timeout-secs", "1"])
        .await
        .unwrap();
    let (chunks, stream) = tokio::sync::mpsc::channel(4);
    let mut people = kith.people();
    let import =
        tokio::spawn(async move { people.import_people(ReceiverStream::new(stream)).await });
    import_in_flight(&kith, &chunks).await;
    let terminated = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(60), kith.terminate().wait())
        .await
        .expect("the drain time bounds the shutdown")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        terminated.elapsed() >= Duration::from_secs(1),
        "the held call had its drain time"
    );
    let cut = import.await.unwrap();
    assert!(cut.is_err(), "the held call was cut off, not completed");
    drop(chunks);
}

/// A whole scenario at the default log level (info), with errors: no key
/// and no personal field appears in any log line.
async fn logs_carry_no_keys_or_personal_data(backend: Backend) {
    let db = require!(TestDb::new(backend).await);
    let kith = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let key = kith.key.clone().unwrap();
    let secret = key.rsplit('_').next().unwrap().to_owned();
    let email = "zelda.secretname@example.com";
    let name = "Zelda Secretname";

    let mut customers = kith.customers();
    let customer = Customer {
        external_id: Some("cust-zelda".to_owned()),
        email: Some(email.to_owned()),
        name: Some(name.to_owned()),
        ..Customer::default()
    };
    customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer.clone()),
        })
        .await
        .unwrap();
    let duplicate = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(customer),
        })
        .await;
    assert_eq!(duplicate.unwrap_err().code(), Code::AlreadyExists);

    let mut people = kith.people();
    let traits = Struct {
        fields: [("first_name", "Zelda"), ("phone", "+33 6 12 34 56 78")]
            .into_iter()
            .map(|(k, v)| {
                let value = Value {
                    kind: Some(Kind::StringValue(v.to_owned())),
                };
                (k.to_owned(), value)
            })
            .collect(),
    };
    let zelda = PersonUpsert {
        user_id: "person-zelda".to_owned(),
        email: Some(email.to_owned()),
        traits: Some(traits),
        status: 0,
    };
    people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![zelda.clone()],
        })
        .await
        .unwrap();
    let clash = PersonUpsert {
        user_id: "someone-else".to_owned(),
        ..zelda.clone()
    };
    let refused = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![person("fresh"), clash.clone(), clash],
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    let invalid = people
        .batch_upsert_people(BatchUpsertPeopleRequest {
            people: vec![PersonUpsert {
                email: Some("zelda-at-nowhere".to_owned()),
                ..zelda
            }],
        })
        .await;
    assert_eq!(invalid.unwrap_err().code(), Code::InvalidArgument);

    let wrong_secret = key.replace(&secret, "wrongsecretwrongsecret");
    let mut intruder =
        PeopleServiceClient::with_interceptor(kith.channel.clone(), Bearer::new(&wrong_secret));
    let denied = intruder.list_people(ListPeopleRequest::default()).await;
    assert_eq!(denied.unwrap_err().code(), Code::Unauthenticated);

    let rest = reqwest::Client::new()
        .post(format!("{}/api/v1/people", kith.rest))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "userId": "rest-zelda", "email": email }))
        .send()
        .await
        .unwrap();
    assert!(rest.status().is_success(), "{}", rest.status());

    let logs = kith.stop().await.unwrap();
    assert!(
        logs.iter().any(|line| line.contains("\"serving\"")),
        "the logs were captured"
    );
    for line in &logs {
        for secret in [&key, &secret, email, name, "Secretname", "+33 6 12"] {
            assert!(!line.contains(secret), "{secret:?} logged: {line}");
        }
    }
}

/// Two processes on one PostgreSQL database, 16 callers on each, all
/// creating the same new customers and people: one record per key, and
/// every refusal is ALREADY_EXISTS, never a server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_make_one_record_per_key() {
    const KEYS: usize = 40;
    let db = require!(TestDb::new(Backend::Postgres).await);
    let first = Kith::start(&db.url, Database::Fresh).await.unwrap();
    let mut second = Kith::start(&db.url, Database::Existing).await.unwrap();
    second.key.clone_from(&first.key);

    let mut callers = Vec::new();
    for replica in [&first, &second] {
        for _ in 0..16 {
            let (mut customers, mut people) = (replica.customers(), replica.people());
            callers.push(tokio::spawn(async move {
                let mut created = 0;
                let mut people_created: i32 = 0;
                for k in 0..KEYS {
                    let customer = Customer {
                        external_id: Some(format!("customer-{k}")),
                        email: Some(format!("customer-{k}@example.com")),
                        ..Customer::default()
                    };
                    match customers
                        .create_customer(CreateCustomerRequest {
                            customer: Some(customer),
                        })
                        .await
                    {
                        Ok(_) => created += 1,
                        Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status}"),
                    }
                    let batch = (k..k + 5).map(|i| person(&format!("person-{i}"))).collect();
                    let reply = people
                        .batch_upsert_people(BatchUpsertPeopleRequest { people: batch })
                        .await
                        .unwrap_or_else(|status| panic!("every batch succeeds: {status}"));
                    people_created += reply.into_inner().created_count;
                }
                (created, people_created)
            }));
        }
    }
    let (mut customers_created, mut people_created) = (0, 0);
    for caller in callers {
        let (customers, people) = caller.await.unwrap();
        customers_created += customers;
        people_created += people;
    }
    assert_eq!(customers_created, KEYS, "one creation per external id");
    let stored = stored_person_ids(first.channel.clone(), first.key.as_deref().unwrap()).await;
    assert_eq!(stored.len(), KEYS + 4);
    assert_eq!(people_created, i32::try_from(stored.len()).unwrap());
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}
