//! Limits on what a caller can make Kith do: per-key rate limits (refused,
//! told when to come back, on both transports, no other key affected) and
//! the caller's own deadline.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use kith::config::RateLimit;
use kith::pb::kith::v1::{
    CreateCustomerRequest, Customer, GetCustomerRequest, ListCustomersRequest,
    UpdateCustomerRequest, get_customer_request, update_customer_request,
};
use prost_types::FieldMask;
use sqlx::Connection as _;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    a_key_over_its_rate_is_refused_until_its_bucket_refills,
    a_deadline_ends_a_call_stuck_behind_a_lock_and_it_changes_nothing,
);

const BURST: u64 = 3;

/// Calls `call` until it is refused; returns how many were admitted first.
/// At one call per second, only a stalled machine refills the bucket while
/// this runs, so the count is bounded by the burst plus elapsed seconds.
async fn admitted_until_refused<F, Fut, E>(mut call: F) -> (u64, E)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        match call().await {
            Ok(()) => admitted += 1,
            Err(refused) => {
                assert!(
                    admitted <= BURST + started.elapsed().as_secs() + 1,
                    "{admitted} calls admitted in {:?}",
                    started.elapsed()
                );
                return (admitted, refused);
            }
        }
        assert!(admitted < 1_000, "the limit never applied");
    }
}

async fn a_key_over_its_rate_is_refused_until_its_bucket_refills(backend: Backend) {
    let limit = RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(u32::try_from(BURST).unwrap()).unwrap(),
    };
    let app = require!(TestApp::builder(backend).rate_limit(limit).start().await);
    let customers = app.customers();
    let list = || {
        let mut customers = customers.clone();
        async move {
            customers
                .list_customers(ListCustomersRequest::default())
                .await
                .map(drop)
        }
    };

    let (admitted, refused) = admitted_until_refused(list).await;
    assert!(admitted >= BURST, "the whole burst is admitted first");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let details = refused.get_error_details();
    assert_eq!(
        details.error_info().unwrap().reason,
        "ERROR_REASON_RATE_LIMITED"
    );
    let delay = details
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a refusal says when to retry");
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(1));

    // The gateway draws on the same bucket and answers in its family's way.
    let client = reqwest::Client::new();
    let (_, response) = admitted_until_refused(|| {
        let request = client
            .get(format!("{}/api/v1/people", app.rest))
            .bearer_auth(&app.key);
        async move {
            let response = request.send().await.unwrap();
            if response.status().is_success() {
                Ok(())
            } else {
                Err(response)
            }
        }
    })
    .await;
    assert_eq!(response.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Another key has its own bucket.
    let other = app.other_workspace_key().await;
    app.customers_with(Some(&other))
        .list_customers(ListCustomersRequest::default())
        .await
        .expect("another key is not limited by this one's calls");

    // Waiting as told is enough.
    let (_, refused) = admitted_until_refused(list).await;
    let delay = refused
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .unwrap();
    tokio::time::sleep(delay).await;
    customers
        .clone()
        .list_customers(ListCustomersRequest::default())
        .await
        .expect("admitted after the advised wait");
}

/// A writer outside Kith: PostgreSQL holds one customer's row, SQLite the
/// database's write lock.
enum Blocker {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Blocker {
    async fn hold(backend: Backend, url: &str, customer_id: &str) -> Self {
        match backend {
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
                sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE")
                    .bind(uuid::Uuid::parse_str(customer_id).unwrap())
                    .execute(&mut connection)
                    .await
                    .unwrap();
                Self::Postgres(connection)
            }
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                Self::Sqlite(connection)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Postgres(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(drop),
            Self::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(drop),
        }
        .unwrap();
    }
}

async fn a_deadline_ends_a_call_stuck_behind_a_lock_and_it_changes_nothing(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut customers = app.customers();
    let created = customers
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("stuck@example.com".to_owned()),
                name: Some("Before".to_owned()),
                ..Customer::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let blocker = Blocker::hold(backend, app.database_url(), &created.id).await;

    let update = UpdateCustomerRequest {
        lookup: Some(update_customer_request::Lookup::Id(created.id.clone())),
        customer: Some(Customer {
            name: Some("After".to_owned()),
            ..Customer::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["name".to_owned()],
        }),
    };
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        call_with_deadline_header(&app, "/kith.v1.CustomerService/UpdateCustomer", &update),
    )
    .await
    .expect("the server ended the call at its deadline");
    // tonic reports a deadline it enforced as CANCELLED (1). SQLite may
    // refuse the write at once instead, another process holding its write
    // lock: UNAVAILABLE (14), which callers retry. Either way the call did
    // not wait for the lock.
    assert!(
        status == "1" || status == "4" || (backend == Backend::Sqlite && status == "14"),
        "grpc-status {status}"
    );

    blocker.release().await;
    let stored = customers
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(created.id)),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(
        stored.name.as_deref(),
        Some("Before"),
        "the ended call wrote nothing"
    );
}

/// A unary gRPC call over plain HTTP/2 whose deadline is only its
/// `grpc-timeout` header of 300 ms. tonic's client would enforce that
/// deadline itself; this caller never gives up, so an answer can only come
/// from the server ending the call. Returns the `grpc-status`.
async fn call_with_deadline_header(
    app: &TestApp,
    path: &str,
    message: &impl prost::Message,
) -> String {
    let body = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
    frame.extend(body);
    let response = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("http://{}{path}", app.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .bearer_auth(&app.key)
        .body(frame)
        .send()
        .await
        .unwrap();
    // An answer without a message carries its status in the headers.
    response
        .headers()
        .get("grpc-status")
        .expect("a trailers-only answer")
        .to_str()
        .unwrap()
        .to_owned()
}
