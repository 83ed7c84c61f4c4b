//! Per-key rate limits: a key over its rate is refused, told when to come
//! back, on both transports, and no other key is affected.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use kith::config::RateLimit;
use kith::pb::kith::v1::ListCustomersRequest;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(a_key_over_its_rate_is_refused_until_its_bucket_refills);

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
    let app = require!(TestApp::spawn_rate_limited(backend, limit).await);
    let customers = app.customers();

    let (admitted, refused) = admitted_until_refused(|| {
        let mut customers = customers.clone();
        async move {
            customers
                .list_customers(ListCustomersRequest::default())
                .await
                .map(drop)
        }
    })
    .await;
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
    let (_, refused) = admitted_until_refused(|| {
        let mut customers = customers.clone();
        async move {
            customers
                .list_customers(ListCustomersRequest::default())
                .await
                .map(drop)
        }
    })
    .await;
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
