//! The soak: mixed reads and writes from several clients against two Kith
//! replicas (processes) on a private PostgreSQL primary with a streaming
//! standby for reads, while the test restarts the primary, SIGTERMs and
//! restarts one replica, and stops and restarts the standby. At the end
//! every acknowledged write is there, the change log has no gap, reads that
//! carried their writer's cursor never saw an older state, and no call
//! failed with anything but UNAVAILABLE or ABORTED (or, from the client
//! library, CANCELLED for a call its closing connection never sent; or
//! NOT_FOUND for a read without a token of a customer the standby has not
//! replayed yet).
//!
//! 60 s by default (CI); `KITH_SOAK_SECS=600 cargo test --test it soak --
//! --nocapture` for ten minutes by hand. The figures are printed at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::{
    self as pb, ChangeOperation, CreateCustomerRequest, GetCustomerRequest, ListCustomersRequest,
    UpdateCustomerRequest, get_customer_request, update_customer_request,
};
use kith::throwaway_postgres::PrivateServer;
use prost_types::FieldMask;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::changes::assert_gap_free;
use crate::grpc_support::whole_log;
use crate::kith_process::{Bearer, Database, Kith};

const CLIENTS: usize = 6;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The replicas' channels, by slot; a restarted replica's replaces its own.
type Replicas = Arc<RwLock<Vec<Channel>>>;

/// One customer a client owns: the name its last acknowledged write set,
/// the names of writes after it that failed (they may have committed all
/// the same), and the cursor of the last acknowledged write.
struct Owned {
    id: String,
    acknowledged: String,
    unsure: Vec<String>,
    cursor: String,
}

impl Owned {
    fn may_read(&self, name: &str) -> bool {
        name == self.acknowledged || self.unsure.iter().any(|unsure| unsure == name)
    }
}

#[derive(Default)]
struct Tally {
    /// Calls by outcome: `OK` or the code.
    outcomes: BTreeMap<String, u64>,
    /// What broke a promise: a lost write, a stale read with a token, a
    /// failure other than UNAVAILABLE or ABORTED.
    broken: Vec<String>,
    owned: Vec<Owned>,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| outcome.as_str() != "OK")
            .map(|(_, count)| count)
            .sum()
    }

    fn count(&mut self, outcome: Result<(), &tonic::Status>) {
        let key = match outcome {
            Ok(()) => "OK".to_owned(),
            // The client's connection closed (a replica going away) before
            // the call was sent: tonic says CANCELLED, but nothing reached
            // a server, and the call can only be retried.
            Err(status) if status.code() == Code::Cancelled && never_sent(status) => {
                "Cancelled before sending (connection closed)".to_owned()
            }
            Err(status) => {
                if !matches!(status.code(), Code::Unavailable | Code::Aborted) {
                    self.broken.push(format!("a call failed with {status:?}"));
                }
                format!("{:?}", status.code())
            }
        };
        *self.outcomes.entry(key).or_default() += 1;
    }
}

/// Whether the status is the client's own: its transport failed the call
/// before a server answered.
fn never_sent(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

fn channel_to(kith: &Kith) -> Channel {
    Endpoint::from_shared(format!("http://{}", kith.grpc))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

fn timed<T>(message: T, cursor: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    if let Some(cursor) = cursor {
        request
            .metadata_mut()
            .insert("x-kith-at-least", cursor.parse().unwrap());
    }
    request
}

fn cursor_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-kith-cursor")
        .expect("a write answers with its cursor")
        .to_str()
        .unwrap()
        .to_owned()
}

/// One client: until `until`, a mix of creations, renames, reads with and
/// without the writer's cursor and list pages, spread over the replicas.
async fn client(number: usize, replicas: Replicas, key: String, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut step = 0_usize;
    while Instant::now() < until {
        step += 1;
        let failed_before = tally.failures();
        let channel = {
            let channels = replicas.read().unwrap();
            channels[step % channels.len()].clone()
        };
        let mut customers = CustomerServiceClient::with_interceptor(channel, Bearer::new(&key));
        match step % 10 {
            0 | 5 if tally.owned.len() < 200 => {
                create(number, step, &mut customers, &mut tally).await
            }
            1..=4 if !tally.owned.is_empty() => rename(step, &mut customers, &mut tally).await,
            6..=8 if !tally.owned.is_empty() => read(step, &mut customers, &mut tally).await,
            _ => {
                let listed = customers
                    .list_customers(timed(ListCustomersRequest::default(), None))
                    .await;
                tally.count(listed.as_ref().map(drop));
            }
        }
        // A replica going away fails calls at once: a moment's pause keeps
        // the clients from spinning on two cores while it restarts.
        if tally.failures() > failed_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tally
}

type Customers =
    CustomerServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn create(number: usize, step: usize, customers: &mut Customers, tally: &mut Tally) {
    let name = format!("c{number}-{step}");
    let created = customers
        .create_customer(timed(
            CreateCustomerRequest {
                customer: Some(pb::Customer {
                    email: Some(format!("{name}@example.com")),
                    name: Some(name.clone()),
                    ..pb::Customer::default()
                }),
            },
            None,
        ))
        .await;
    tally.count(created.as_ref().map(drop));
    // A failed creation that committed is found by no one here: its email
    // is never used again, and the log check counts only acknowledged ones.
    if let Ok(response) = created {
        let cursor = cursor_of(&response);
        tally.owned.push(Owned {
            id: response.into_inner().customer.unwrap().id,
            acknowledged: name,
            unsure: Vec::new(),
            cursor,
        });
    }
}

async fn rename(step: usize, customers: &mut Customers, tally: &mut Tally) {
    let index = step % tally.owned.len();
    let name = format!("{}-{step}", tally.owned[index].id);
    let renamed = customers
        .update_customer(timed(
            UpdateCustomerRequest {
                lookup: Some(update_customer_request::Lookup::Id(
                    tally.owned[index].id.clone(),
                )),
                customer: Some(pb::Customer {
                    name: Some(name.clone()),
                    ..pb::Customer::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["name".to_owned()],
                }),
            },
            None,
        ))
        .await;
    tally.count(renamed.as_ref().map(drop));
    let owned = &mut tally.owned[index];
    match renamed {
        Ok(response) => {
            owned.cursor = cursor_of(&response);
            owned.acknowledged = name;
            owned.unsure.clear();
        }
        Err(_) => owned.unsure.push(name),
    }
}

/// A read of one of the client's customers, every other one with the
/// cursor of its last acknowledged write, which must then see that write.
async fn read(step: usize, customers: &mut Customers, tally: &mut Tally) {
    let index = step % tally.owned.len();
    let with_token = step % 20 < 10;
    let owned = &tally.owned[index];
    let got = customers
        .get_customer(timed(
            GetCustomerRequest {
                lookup: Some(get_customer_request::Lookup::Id(owned.id.clone())),
            },
            with_token.then_some(owned.cursor.as_str()),
        ))
        .await;
    if with_token && let Ok(response) = &got {
        let name = response.get_ref().customer.as_ref().unwrap().name.clone();
        let name = name.unwrap_or_default();
        if !owned.may_read(&name) {
            tally.broken.push(format!(
                "a read with the writer's cursor saw {name:?}, not {:?}",
                owned.acknowledged
            ));
        }
    }
    match &got {
        // Without a token a read may come from a standby that has not yet
        // replayed the customer's creation: stale, as documented.
        Err(status) if !with_token && status.code() == Code::NotFound => {
            *tally
                .outcomes
                .entry("NotFound (a stale read without a token)".to_owned())
                .or_default() += 1;
        }
        _ => tally.count(got.as_ref().map(drop)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_two_replicas_and_a_standby_through_faults() {
    let seconds: u64 = std::env::var("KITH_SOAK_SECS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(60);
    let soak = Duration::from_secs(seconds);
    let required = std::env::var("KITH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Some(primary) = PrivateServer::start() else {
        assert!(
            !required,
            "KITH_REQUIRE_POSTGRES=1 but PostgreSQL cannot start here"
        );
        return;
    };
    let standby = PrivateServer::standby_of(&primary).expect("a standby");
    let url = kith::throwaway_postgres::create_database(&primary.url())
        .await
        .unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let standby_url = standby.database_url(&database);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::PgPool::connect(&standby_url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the standby never had the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flags = [
        "--database-read-url",
        standby_url.as_str(),
        "--max-replica-lag",
        "2s",
        "--health-interval-secs",
        "1",
        "--drain-timeout-secs",
        "5",
    ];
    let first = Kith::start_with(&url, Database::Fresh, &flags)
        .await
        .unwrap();
    let key = first.key.clone().unwrap();
    let mut second = Kith::start_with(&url, Database::Existing, &flags)
        .await
        .unwrap();
    let replicas: Replicas = Arc::new(RwLock::new(vec![channel_to(&first), channel_to(&second)]));

    let started = Instant::now();
    let until = started + soak;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| tokio::spawn(client(number, replicas.clone(), key.clone(), until)))
        .collect();

    // The faults, spread over the first four fifths; the rest is quiet.
    let at = |fraction: f64| started + soak.mul_f64(fraction);
    let mut faults = Vec::new();
    tokio::time::sleep_until(at(0.15)).await;
    assert!(primary.stop(), "stop the primary");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(primary.start_again(), "start the primary again");
    faults.push("primary restarted (2 s down)");

    tokio::time::sleep_until(at(0.35)).await;
    second.terminate().wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    second = Kith::start_with(&url, Database::Existing, &flags)
        .await
        .unwrap();
    replicas.write().unwrap()[1] = channel_to(&second);
    faults.push("replica 2 SIGTERMed and restarted");

    tokio::time::sleep_until(at(0.55)).await;
    assert!(standby.stop(), "stop the standby");
    tokio::time::sleep_until(at(0.7)).await;
    assert!(standby.start_again(), "start the standby again");
    faults.push("standby stopped and restarted");

    let mut tally = Tally::default();
    for client in clients {
        let client = client.await.unwrap();
        for (outcome, count) in client.outcomes {
            *tally.outcomes.entry(outcome).or_default() += count;
        }
        tally.broken.extend(client.broken);
        tally.owned.extend(client.owned);
    }

    // Every acknowledged write is there: read on the primary through the
    // writer's cursor.
    let mut customers =
        CustomerServiceClient::with_interceptor(first.channel.clone(), Bearer::new(&key));
    let mut lost = 0;
    for owned in &tally.owned {
        let got = customers
            .get_customer(timed(
                GetCustomerRequest {
                    lookup: Some(get_customer_request::Lookup::Id(owned.id.clone())),
                },
                Some(&owned.cursor),
            ))
            .await;
        let name = got
            .ok()
            .and_then(|response| response.into_inner().customer?.name);
        if !name.as_deref().is_some_and(|name| owned.may_read(name)) {
            lost += 1;
            tally.broken.push(format!(
                "{} reads {name:?}, not {:?}",
                owned.id, owned.acknowledged
            ));
        }
    }

    // The log: numbered 1, 2, 3, … with no gap, and it holds every
    // acknowledged creation.
    let logged = whole_log(&mut ChangeServiceClient::with_interceptor(
        first.channel.clone(),
        Bearer::new(&key),
    ))
    .await;
    assert_gap_free(&logged, 1);
    let last_seq = logged.len();
    let created: std::collections::HashSet<&str> = logged
        .iter()
        .filter(|change| change.operation == ChangeOperation::Created as i32)
        .map(|change| change.record_id.as_str())
        .collect();
    for owned in &tally.owned {
        if !created.contains(owned.id.as_str()) {
            tally
                .broken
                .push(format!("the log has no creation of {}", owned.id));
        }
    }

    let calls: u64 = tally.outcomes.values().sum();
    eprintln!(
        "soak: {seconds} s, {CLIENTS} clients, {calls} calls {:?}; faults: {}; {} customers, \
         {last_seq} changes logged; lost writes: {lost}",
        tally.outcomes,
        faults.join(", "),
        tally.owned.len(),
    );
    assert!(tally.broken.is_empty(), "{:#?}", tally.broken);
    assert!(
        tally.outcomes.get("OK").copied().unwrap_or(0) > calls / 2,
        "{:?}",
        tally.outcomes
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}
