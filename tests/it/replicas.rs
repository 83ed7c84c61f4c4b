//! Reads from PostgreSQL hot standbys: a private primary and a standby
//! streaming from it (`pg_basebackup -R`), started by the test. Reads are
//! served by the standby (replay paused, a read without a token is stale),
//! a write's cursor makes a later read fresh, and a standby that lags or
//! stops leaves the rotation and comes back. On either backend, the cursor
//! headers themselves.

use std::time::Duration;

use kith::config::ReadReplicas;
use kith::pb::kith::v1::{
    self as pb, CreateCustomerRequest, GetCustomerRequest, ImportPeopleRequest, ListChangesRequest,
    ListCustomersRequest, PersonUpsert, UpdateCustomerRequest, get_customer_request,
    update_customer_request,
};
use kith::throwaway_postgres::PrivateServer;
use prost_types::FieldMask;
use tonic::Code;

use crate::grpc_support::assert_error;
use crate::harness::{Authed, Backend, TestApp, TestDb, backend_tests, require};
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;

backend_tests!(
    a_write_answers_with_the_cursor_of_its_last_change,
    a_bad_freshness_token_is_refused_on_its_header,
);

const CURSOR: &str = "x-kith-cursor";
const AT_LEAST: &str = "x-kith-at-least";

/// A primary with one database, a standby that has replayed its creation,
/// and a Kith server on both.
struct Replicated {
    app: TestApp,
    primary: PrivateServer,
    standby: PrivateServer,
    /// The database's name, the same on both.
    database: String,
}

impl Replicated {
    /// `None` (the test returns) when PostgreSQL's binaries are missing and
    /// not required.
    /// `isolation` is the database's default transaction isolation, which
    /// the standby inherits with the database.
    async fn start(max_lag: Duration, isolation: &str) -> Option<Self> {
        let required = std::env::var("KITH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Some(primary) = PrivateServer::start() else {
            assert!(
                !required,
                "KITH_REQUIRE_POSTGRES=1 but PostgreSQL cannot start here"
            );
            return None;
        };
        let standby = PrivateServer::standby_of(&primary).expect("a standby of the primary");
        let url = kith::throwaway_postgres::create_database(&primary.url())
            .await
            .expect("a database on the primary");
        let database = url.rsplit('/').next().unwrap().to_owned();
        let admin = sqlx::PgPool::connect(&primary.database_url("postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {database} SET default_transaction_isolation = '{isolation}'"
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
        // Kith migrates on start; the standby must have the database first.
        eventually("the standby has the database", || async {
            sqlx::PgPool::connect(&standby.database_url(&database))
                .await
                .is_ok()
        })
        .await;
        let app = TestApp::builder(Backend::Postgres)
            .database(TestDb::existing(url.clone()), url)
            .read_replicas(ReadReplicas {
                urls: vec![standby.database_url(&database)],
                max_lag,
            })
            .start()
            .await?;
        let replicated = Self {
            app,
            primary,
            standby,
            database,
        };
        replicated.eventually_ready("ok").await;
        Some(replicated)
    }

    /// Waits until `/readyz` answers 200 with a body starting `prefix`.
    async fn eventually_ready(&self, prefix: &str) {
        let url = format!("{}/readyz", self.app.metrics);
        eventually(&format!("/readyz says {prefix:?}"), || async {
            match reqwest::get(&url).await {
                Ok(response) if response.status() == 200 => {
                    response.text().await.unwrap().starts_with(prefix)
                }
                _ => false,
            }
        })
        .await;
    }

    async fn on_standby(&self, statement: &str) {
        // A standby refuses SERIALIZABLE, which it may inherit.
        let options: sqlx::postgres::PgConnectOptions =
            self.standby.database_url(&self.database).parse().unwrap();
        let options = options.options([("default_transaction_isolation", "read committed")]);
        let pool = sqlx::PgPool::connect_with(options).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    /// The gRPC health status of `service` ("" for the server).
    async fn health(&self, service: &str) -> i32 {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.app.channel());
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Client = CustomerServiceClient<Authed>;

/// Creates a customer named `name`; its id and the cursor of the write.
async fn create(client: &mut Client, name: &str) -> (String, String) {
    let response = client
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some(format!("{}@example.com", uuid::Uuid::new_v4().simple())),
                name: Some(name.to_owned()),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap();
    let cursor = cursor_of(response.metadata());
    (response.into_inner().customer.unwrap().id, cursor)
}

/// Renames a customer; the cursor of the write.
async fn rename(client: &mut Client, id: &str, name: &str) -> String {
    let response = client
        .update_customer(UpdateCustomerRequest {
            lookup: Some(update_customer_request::Lookup::Id(id.to_owned())),
            customer: Some(pb::Customer {
                name: Some(name.to_owned()),
                ..pb::Customer::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".to_owned()],
            }),
        })
        .await
        .unwrap();
    cursor_of(response.metadata())
}

fn cursor_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(CURSOR)
        .expect("a write answers with x-kith-cursor")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The customer's name as a read with `at_least` (if any) sees it; `None`
/// when the read does not find it.
async fn name_seen(client: &mut Client, id: &str, at_least: Option<&str>) -> Option<String> {
    let mut request = tonic::Request::new(GetCustomerRequest {
        lookup: Some(get_customer_request::Lookup::Id(id.to_owned())),
    });
    if let Some(cursor) = at_least {
        request
            .metadata_mut()
            .insert(AT_LEAST, cursor.parse().unwrap());
    }
    match client.get_customer(request).await {
        Ok(response) => response.into_inner().customer.unwrap().name,
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("GetCustomer failed: {status:?}"),
    }
}

/// The names of the first page of customers, as a List with `at_least`
/// sees them.
async fn names_listed(client: &mut Client, at_least: Option<&str>) -> Vec<String> {
    let mut request = tonic::Request::new(ListCustomersRequest::default());
    if let Some(cursor) = at_least {
        request
            .metadata_mut()
            .insert(AT_LEAST, cursor.parse().unwrap());
    }
    let page = client.list_customers(request).await.unwrap().into_inner();
    page.customers
        .into_iter()
        .filter_map(|customer| customer.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_reads_and_a_write_cursor_makes_a_read_fresh() {
    let cluster = require!(Replicated::start(Duration::from_secs(3600), "read committed").await);
    let mut client = cluster.app.customers();
    let (id, _) = create(&mut client, "before").await;
    // Without a token, the standby answers once it has replayed the write.
    eventually("the standby has the customer", || {
        let mut client = client.clone();
        let id = id.clone();
        async move { name_seen(&mut client, &id, None).await.is_some() }
    })
    .await;

    cluster.on_standby("SELECT pg_wal_replay_pause()").await;
    let written = rename(&mut client, &id, "after").await;
    // The standby serves reads: replay paused, it still says "before".
    assert_eq!(
        name_seen(&mut client, &id, None).await.as_deref(),
        Some("before")
    );
    assert_eq!(names_listed(&mut client, None).await, ["before"]);
    // The writer's cursor: the read goes where the write is.
    assert_eq!(
        name_seen(&mut client, &id, Some(&written)).await.as_deref(),
        Some("after")
    );
    assert_eq!(names_listed(&mut client, Some(&written)).await, ["after"]);
    // REST: canonical and a seed family take the same header.
    let (status, body) =
        rest_get(&cluster.app, &format!("/kith/v1/customers/{id}"), &written).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customer"]["name"], "after");
    let (status, body) = rest_get(&cluster.app, &format!("/v1/customers/{id}"), &written).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "after");
    let (_, stale) = rest_get(&cluster.app, &format!("/kith/v1/customers/{id}"), "").await;
    assert_eq!(stale["customer"]["name"], "before");

    cluster.on_standby("SELECT pg_wal_replay_resume()").await;
    eventually("the standby replays the rename", || {
        let mut client = client.clone();
        let id = id.clone();
        async move { name_seen(&mut client, &id, None).await.as_deref() == Some("after") }
    })
    .await;
}

/// A GET with `x-kith-at-least: cursor` (none when empty); status and JSON.
async fn rest_get(app: &TestApp, path: &str, cursor: &str) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", app.rest))
        .bearer_auth(&app.key);
    if !cursor.is_empty() {
        request = request.header(AT_LEAST, cursor);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_lags_or_stops_leaves_the_rotation_and_comes_back() {
    // At SERIALIZABLE, which the standby inherits and refuses to run at.
    let cluster = require!(Replicated::start(Duration::from_secs(1), "serializable").await);
    let mut client = cluster.app.customers();
    let replicas = kith::server::REPLICAS_HEALTH;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    assert_eq!(cluster.health(replicas).await, serving);
    let (id, _) = create(&mut client, "first").await;

    // Behind by more than the bound: out, and reads are fresh without a
    // token, from the primary.
    cluster.on_standby("SELECT pg_wal_replay_pause()").await;
    rename(&mut client, &id, "second").await;
    cluster.eventually_ready("degraded: read replica").await;
    assert_eq!(cluster.health(replicas).await, not_serving);
    assert_eq!(cluster.health("").await, serving, "the server still serves");
    assert_eq!(
        name_seen(&mut client, &id, None).await.as_deref(),
        Some("second")
    );
    let metrics = reqwest::get(format!("{}/metrics", cluster.app.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let port = cluster.standby.url().rsplit(':').next().unwrap().to_owned();
    let out_of_rotation = format!("kith_db_replica_in_rotation{{replica=\"127.0.0.1:{port}\"}} 0");
    assert!(metrics.contains(&out_of_rotation), "{metrics}");
    cluster.on_standby("SELECT pg_wal_replay_resume()").await;
    cluster.eventually_ready("ok").await;
    assert_eq!(cluster.health(replicas).await, serving);

    // Stopped: reads go on from the primary, and it returns once it answers.
    assert!(cluster.standby.stop(), "stop the standby");
    for name in ["third", "fourth"] {
        rename(&mut client, &id, name).await;
        assert_eq!(
            name_seen(&mut client, &id, None).await.as_deref(),
            Some(name)
        );
    }
    cluster.eventually_ready("degraded: read replica").await;
    assert_eq!(cluster.health("").await, serving);
    assert!(cluster.standby.start_again(), "start the standby again");
    cluster.eventually_ready("ok").await;
    eventually("the standby serves the last rename", || {
        let mut client = client.clone();
        let id = id.clone();
        async move { name_seen(&mut client, &id, None).await.as_deref() == Some("fourth") }
    })
    .await;
    drop(cluster.primary);
}

#[tokio::test]
async fn read_replicas_are_refused_on_sqlite() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kith.db").display());
    let store = kith::store::Store::connect(&url).await.unwrap();
    let refused = store
        .reading_from_replicas(
            &["postgres://postgres@127.0.0.1:1/kith".to_owned()],
            Duration::from_secs(5),
        )
        .err()
        .expect("SQLite has no standbys");
    assert!(
        refused.to_string().contains("PostgreSQL standbys"),
        "{refused}"
    );
}

async fn a_write_answers_with_the_cursor_of_its_last_change(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let (id, first) = create(&mut client, "one").await;
    let second = rename(&mut client, &id, "two").await;
    assert_ne!(first, second);
    // The log, read from the first write's cursor, holds exactly the second
    // write (the customer, and the company it also is), and ends at the
    // second cursor.
    let page = app
        .changes()
        .list_changes(ListChangesRequest {
            cursor: first.clone(),
            ..ListChangesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.changes.len(), 2, "{page:?}");
    assert!(
        page.changes.iter().all(|change| change.record_id == id
            && change.operation == pb::ChangeOperation::Updated as i32),
        "{page:?}"
    );
    assert_eq!(page.next_cursor, second);
    // A read answers with none; REST writes answer with one.
    let read = client
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(id.clone())),
        })
        .await
        .unwrap();
    assert!(read.metadata().get(CURSOR).is_none());
    let response = reqwest::Client::new()
        .patch(format!("{}/v1/customers/{id}", app.rest))
        .bearer_auth(&app.key)
        .json(&serde_json::json!({ "name": "three" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rest_cursor = response.headers()[CURSOR].to_str().unwrap().to_owned();
    assert_ne!(rest_cursor, second);
    // With the cursor back, the read sees the write (here: the primary).
    assert_eq!(
        name_seen(&mut client, &id, Some(&rest_cursor))
            .await
            .as_deref(),
        Some("three")
    );
    // A stream of new people, written by tasks of the import's own: its
    // answer's cursor is the log's end.
    let chunks: Vec<ImportPeopleRequest> = (0..3)
        .map(|chunk| ImportPeopleRequest {
            people: (0..200)
                .map(|n| PersonUpsert {
                    user_id: format!("imported-{chunk}-{n}"),
                    ..PersonUpsert::default()
                })
                .collect(),
        })
        .collect();
    let imported = app
        .people()
        .import_people(tokio_stream::iter(chunks))
        .await
        .unwrap();
    let import_cursor = cursor_of(imported.metadata());
    let after = app
        .changes()
        .list_changes(ListChangesRequest {
            cursor: import_cursor.clone(),
            ..ListChangesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.changes.is_empty(),
        "the import's cursor is the log's end"
    );
    assert_ne!(import_cursor, rest_cursor);
}

async fn a_bad_freshness_token_is_refused_on_its_header(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    let (id, cursor) = create(&mut client, "one").await;
    let other_key = app.other_workspace_key().await;
    let mut other = app.customers_with(Some(&other_key));
    // Nonsense, and a cursor of another workspace.
    for (client, token) in [(&mut client, "not-a-cursor"), (&mut other, cursor.as_str())] {
        let mut request = tonic::Request::new(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(id.clone())),
        });
        request
            .metadata_mut()
            .insert(AT_LEAST, token.parse().unwrap());
        assert_error(
            client.get_customer(request).await,
            Code::InvalidArgument,
            &[AT_LEAST],
        );
    }
    let (status, body) = rest_get(&app, &format!("/v1/customers/{id}"), "nonsense").await;
    assert_eq!(status, 422, "{body}");
}
