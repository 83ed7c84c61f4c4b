//! Webhooks on both backends, to real HTTP receivers on loopback: every
//! change once and in order, retries through a failing receiver (visible in
//! the delivery list), signatures a third-party verifier accepts, the
//! failure limit, enabling and replaying, refused destinations, and one
//! workspace's endpoints out of another's reach.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use kith::config::{RetryPolicy, WebhookConfig};
use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::webhook_service_client::WebhookServiceClient;
use kith::pb::kith::v1::{
    self as pb, BatchUpsertPeopleRequest, ChangeKind, CreateCustomerRequest,
    CreateWebhookEndpointRequest, EnableWebhookEndpointRequest, GetWebhookEndpointRequest,
    ListChangesRequest, ListWebhookDeliveriesRequest, PersonUpsert, ReplayWebhookRequest,
    UpdateWebhookEndpointRequest, WebhookEndpoint, replay_webhook_request,
};
use tonic::Code;

use crate::grpc_support::assert_error;
use crate::harness::{Backend, TestApp, TestDb, backend_tests, require, test_webhooks};
use crate::kith_process::{Database, Kith};

backend_tests!(
    every_change_reaches_the_endpoint_once_in_commit_order,
    a_failing_receiver_gets_every_change_later_in_order_with_the_retries_listed,
    signatures_verify_with_the_standardwebhooks_package_and_a_tampered_body_fails,
    an_endpoint_is_disabled_at_the_failure_limit_and_resumes_when_enabled_and_replayed,
    destinations_on_private_addresses_are_refused_on_the_url_field,
    kinds_pick_what_is_sent_and_an_update_takes_effect,
    an_endpoint_whose_cursor_was_pruned_is_disabled_with_the_reason_until_replayed,
);

/// What a receiver does with the `n`th request (from 0).
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    /// Acknowledged after a while.
    Slow(Duration),
    Status(u16),
    Stall(Duration),
}

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    change: serde_json::Value,
}

impl Received {
    fn seq(&self) -> i64 {
        self.change["seq"].as_str().unwrap().parse().unwrap()
    }
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    answer: Arc<dyn Fn(usize) -> Answer + Send + Sync>,
}

impl Receiver {
    /// A receiver on 127.0.0.1 answering as `answer` says; its URL.
    async fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> (Self, String) {
        let receiver = Self {
            got: Arc::default(),
            requests: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            answer: Arc::new(answer),
        };
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, format!("http://{address}/hook"))
    }

    /// The changes acknowledged so far (2xx answers), in arrival order.
    fn acknowledged(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.acknowledged();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {} of {count} changes",
            self.acknowledged().len()
        );
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let n = receiver.requests.fetch_add(1, Ordering::SeqCst);
    let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    receiver.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let status = match (receiver.answer)(n) {
        Answer::Ok | Answer::Slow(_) => {
            if let Answer::Slow(wait) = (receiver.answer)(n) {
                tokio::time::sleep(wait).await;
            }
            let change = serde_json::from_slice(&body).expect("the body is JSON");
            receiver.got.lock().unwrap().push(Received {
                headers,
                body: body.to_vec(),
                change,
            });
            StatusCode::NO_CONTENT
        }
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Stall(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK
        }
    };
    receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
    status
}

async fn create_endpoint(
    app: &TestApp,
    url: &str,
    kinds: Vec<ChangeKind>,
) -> (WebhookEndpoint, String) {
    let created = app
        .webhooks()
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            endpoint: Some(WebhookEndpoint {
                url: url.to_owned(),
                kinds: kinds.into_iter().map(Into::into).collect(),
                description: "test receiver".to_owned(),
                ..WebhookEndpoint::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    (created.endpoint.unwrap(), created.secret)
}

async fn get_endpoint(app: &TestApp, id: &str) -> WebhookEndpoint {
    app.webhooks()
        .get_webhook_endpoint(GetWebhookEndpointRequest { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap()
}

/// `count` people in batches of 100, and a customer every batch: mixed
/// changes.
async fn make_changes(app: &TestApp, count: usize, tag: &str) {
    let mut people = app.people();
    let mut customers = app.customers();
    for batch in 0..count.div_ceil(100) {
        let people_in_batch = (count - batch * 100).min(100);
        people
            .batch_upsert_people(BatchUpsertPeopleRequest {
                people: (0..people_in_batch)
                    .map(|i| PersonUpsert {
                        user_id: format!("{tag}-{batch}-{i}"),
                        ..PersonUpsert::default()
                    })
                    .collect(),
            })
            .await
            .unwrap();
        customers
            .create_customer(CreateCustomerRequest {
                customer: Some(pb::Customer {
                    email: Some(format!("{tag}-{batch}@example.com")),
                    ..pb::Customer::default()
                }),
            })
            .await
            .unwrap();
    }
}

/// Every change's `seq` after `cursor`, from the log.
async fn logged_after(app: &TestApp, cursor: &str) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut cursor = cursor.to_owned();
    loop {
        let page = app
            .changes()
            .list_changes(ListChangesRequest {
                cursor: cursor.clone(),
                page_size: 1000,
                ..ListChangesRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        if page.changes.is_empty() {
            return seqs;
        }
        seqs.extend(page.changes.iter().map(|change| change.seq));
        cursor = page.next_cursor;
    }
}

/// Two `kith serve` processes on one PostgreSQL database, one endpoint:
/// never two attempts at once, every change in order; the delivering one
/// killed (`SIGKILL`), the other takes over once its lease expires and
/// sends the rest, resending only what was acknowledged but not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_one_at_a_time_and_the_survivor_takes_over_after_a_kill() {
    let db = require!(TestDb::new(Backend::Postgres).await);
    let flags = ["--webhook-allow-private", "--webhook-lease", "2s"];
    let first = Kith::start_with(&db.url, Database::Fresh, &flags)
        .await
        .unwrap();
    let key = first.key.clone().expect("a fresh database prints a key");
    let (receiver, url) = Receiver::start(|_| Answer::Slow(Duration::from_millis(2))).await;
    let mut hooks = WebhookServiceClient::with_interceptor(first.channel.clone(), first.bearer());
    let endpoint = hooks
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            endpoint: Some(WebhookEndpoint {
                url,
                kinds: vec![ChangeKind::Person.into()],
                ..WebhookEndpoint::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    let write = |people: &mut PeopleServiceClient<_>, tag: &'static str| {
        let mut people = people.clone();
        async move {
            for batch in 0..10 {
                people
                    .batch_upsert_people(BatchUpsertPeopleRequest {
                        people: (0..100)
                            .map(|i| PersonUpsert {
                                user_id: format!("{tag}-{batch}-{i}"),
                                ..PersonUpsert::default()
                            })
                            .collect(),
                    })
                    .await
                    .unwrap();
            }
        }
    };
    // The first replica claims the endpoint before the second exists.
    write(&mut first.people(), "first").await;
    receiver.wait_for(1).await;
    let mut second = Kith::start_with(&db.url, Database::Existing, &flags)
        .await
        .unwrap();
    second.key = Some(key);
    write(&mut second.people(), "second").await;

    receiver.wait_for(300).await;
    first.crash().await.unwrap();
    let crashed_at = receiver.acknowledged().len();
    assert!(crashed_at < 2000, "the kill came mid-stream ({crashed_at})");

    let mut changes =
        ChangeServiceClient::with_interceptor(second.channel.clone(), second.bearer());
    let mut logged = Vec::new();
    let mut cursor = endpoint.cursor.clone();
    loop {
        let page = changes
            .list_changes(ListChangesRequest {
                cursor: cursor.clone(),
                page_size: 1000,
                filter: Some(pb::ChangeFilter {
                    kinds: vec![ChangeKind::Person.into()],
                    ..pb::ChangeFilter::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        if page.changes.is_empty() {
            break;
        }
        logged.extend(page.changes.iter().map(|change| change.seq));
        cursor = page.next_cursor;
    }
    assert_eq!(logged.len(), 2000);
    let last = *logged.last().unwrap();
    for _ in 0..600 {
        if receiver.acknowledged().last().map(Received::seq) == Some(last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrived: Vec<i64> = receiver.acknowledged().iter().map(Received::seq).collect();
    assert_eq!(arrived.last(), Some(&last), "the survivor sent the rest");
    assert_eq!(
        receiver.most_in_flight.load(Ordering::SeqCst),
        1,
        "never two at once"
    );
    // In order, but for one resend: what the killed replica had sent and
    // not yet recorded, again, from where its record stood.
    let mut distinct = Vec::new();
    let mut resends = 0;
    for seq in &arrived {
        if distinct.last().is_some_and(|newest| seq <= newest) {
            resends += 1;
            continue;
        }
        distinct.push(*seq);
    }
    assert_eq!(distinct, logged, "every change, in order");
    assert!(
        resends < 400,
        "only the unrecorded tail is sent again ({resends})"
    );
    second.stop().await.unwrap();
}

async fn every_change_reaches_the_endpoint_once_in_commit_order(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (receiver, url) = Receiver::start(|_| Answer::Ok).await;
    let (endpoint, _) = create_endpoint(&app, &url, vec![]).await;
    make_changes(&app, 2000, "order").await;
    let logged = logged_after(&app, &endpoint.cursor).await;
    assert!(
        logged.len() > 2000,
        "people and customers: {}",
        logged.len()
    );

    let got = receiver.wait_for(logged.len()).await;
    let seqs: Vec<i64> = got.iter().map(Received::seq).collect();
    assert_eq!(seqs, logged, "each change once, in commit order");
    let ids: HashSet<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), got.len(), "one webhook-id per change");
    assert_eq!(
        receiver.most_in_flight.load(Ordering::SeqCst),
        1,
        "one at a time"
    );
    // Nothing more arrives: no change is sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.acknowledged().len(), logged.len());

    // The cursor is recorded shortly after: a restart would resume there.
    let last = *logged.last().unwrap();
    for _ in 0..50 {
        let cursor = get_endpoint(&app, &endpoint.id).await.cursor;
        if logged_after(&app, &cursor).await.is_empty() {
            let listed = app
                .webhooks()
                .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                    endpoint_id: endpoint.id.clone(),
                    ..ListWebhookDeliveriesRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            let newest = &listed.deliveries[0];
            assert_eq!(
                (newest.seq, newest.delivered, newest.http_status),
                (last, true, 204)
            );
            assert!(
                !listed.next_page_token.is_empty(),
                "more than a page of attempts"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the endpoint's cursor never reached the last change");
}

async fn a_failing_receiver_gets_every_change_later_in_order_with_the_retries_listed(
    backend: Backend,
) {
    let app = require!(TestApp::spawn(backend).await);
    // A stall past the attempt's time limit, then three errors, then fine.
    let (receiver, url) = Receiver::start(|n| match n {
        0 => Answer::Stall(Duration::from_secs(4)),
        1..=3 => Answer::Status(500),
        _ => Answer::Ok,
    })
    .await;
    let (endpoint, _) = create_endpoint(&app, &url, vec![]).await;
    make_changes(&app, 150, "retry").await;
    let logged = logged_after(&app, &endpoint.cursor).await;

    let got = receiver.wait_for(logged.len()).await;
    let seqs: Vec<i64> = got.iter().map(Received::seq).collect();
    assert_eq!(seqs, logged, "everything, in order, once acknowledged");

    let mut attempts = Vec::new();
    for _ in 0..50 {
        attempts = all_deliveries(&app, &endpoint.id).await;
        if attempts.iter().filter(|a| a.seq == logged[0]).count() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut first: Vec<_> = attempts.iter().filter(|a| a.seq == logged[0]).collect();
    first.reverse();
    let summary: Vec<_> = first
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.http_status,
                a.delivered,
                a.next_retry_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, 0, false, true),
            (2, 500, false, true),
            (3, 500, false, true),
            (4, 500, false, true),
            (5, 204, true, false),
        ],
        "{first:#?}"
    );
    assert!(first[0].error.contains("timed out"), "{}", first[0].error);
    assert_eq!(first[1].error, "answered 500");
    let healthy = get_endpoint(&app, &endpoint.id).await;
    assert_eq!(healthy.consecutive_failures, 0);
    assert!(healthy.next_attempt_at.is_none());
}

/// Every attempt listed for the endpoint, newest first, page by page.
async fn all_deliveries(app: &TestApp, endpoint: &str) -> Vec<pb::WebhookDelivery> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .webhooks()
            .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                endpoint_id: endpoint.to_owned(),
                page_size: 100,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

async fn signatures_verify_with_the_standardwebhooks_package_and_a_tampered_body_fails(
    backend: Backend,
) {
    let Some(python_path) = std::env::var("KITH_SDK_PYTHONPATH")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        assert!(
            std::env::var("KITH_REQUIRE_SDKS").as_deref() != Ok("1"),
            "KITH_REQUIRE_SDKS=1 but KITH_SDK_PYTHONPATH is not set"
        );
        eprintln!("==== webhook signature test SKIPPED: KITH_SDK_PYTHONPATH is not set ====");
        return;
    };
    let app = require!(TestApp::spawn(backend).await);
    let (receiver, url) = Receiver::start(|_| Answer::Ok).await;
    let (_, secret) = create_endpoint(&app, &url, vec![]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    make_changes(&app, 1, "signed").await;
    let got = receiver.wait_for(2).await;
    let signed = &got[0];
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(signed.headers.contains_key(header), "{header}");
    }
    assert_eq!(signed.headers["content-type"], "application/json");
    assert_eq!(signed.change["kind"], "CHANGE_KIND_PERSON");
    assert_eq!(signed.change["externalId"], "signed-0-0");

    let verify = |body: &[u8]| {
        let headers: serde_json::Map<String, serde_json::Value> =
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .iter()
                .map(|name| {
                    let value = signed.headers[*name].to_str().unwrap().to_owned();
                    ((*name).to_owned(), serde_json::Value::String(value))
                })
                .collect();
        let script = "import json, sys\n\
                      from standardwebhooks.webhooks import Webhook\n\
                      secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()\n\
                      Webhook(secret).verify(body, headers)\n\
                      print('verified')\n";
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                script,
                &secret,
                &serde_json::Value::Object(headers).to_string(),
            ])
            .env("PYTHONPATH", &python_path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(body).unwrap();
        child.wait_with_output().unwrap()
    };
    let genuine = verify(&signed.body);
    assert!(
        genuine.status.success(),
        "standardwebhooks refused a genuine delivery: {}",
        String::from_utf8_lossy(&genuine.stderr)
    );
    let mut tampered = signed.body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let refused = verify(&tampered);
    assert!(!refused.status.success(), "a tampered body verified");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("WebhookVerificationError"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

async fn an_endpoint_is_disabled_at_the_failure_limit_and_resumes_when_enabled_and_replayed(
    backend: Backend,
) {
    let app = require!(
        TestApp::builder(backend)
            .webhooks(WebhookConfig {
                retry: RetryPolicy {
                    disable_after_failures: 3,
                    disable_after: Duration::ZERO,
                    ..test_webhooks().retry
                },
                ..test_webhooks()
            })
            .start()
            .await
    );
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = Arc::clone(&healthy);
    let (receiver, url) = Receiver::start(move |_| {
        if switch.load(Ordering::SeqCst) {
            Answer::Ok
        } else {
            Answer::Status(503)
        }
    })
    .await;
    let (endpoint, _) = create_endpoint(&app, &url, vec![ChangeKind::Person]).await;
    make_changes(&app, 20, "limit").await;

    let mut disabled = endpoint.clone();
    for _ in 0..100 {
        disabled = get_endpoint(&app, &endpoint.id).await;
        if disabled.enabled == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(disabled.enabled, Some(false), "{disabled:?}");
    assert!(
        disabled.disabled_reason.contains("3 failed attempts")
            && disabled.disabled_reason.contains("503"),
        "{}",
        disabled.disabled_reason
    );
    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.cursor, endpoint.cursor, "nothing was acknowledged");
    let attempts_then = receiver.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests.load(Ordering::SeqCst),
        attempts_then,
        "a disabled endpoint gets nothing"
    );

    // Enabled, it resumes from its cursor: nothing skipped.
    healthy.store(true, Ordering::SeqCst);
    let enabled = app
        .webhooks()
        .enable_webhook_endpoint(EnableWebhookEndpointRequest {
            id: endpoint.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    assert_eq!(
        (enabled.enabled, enabled.disabled_reason.as_str()),
        (Some(true), "")
    );
    let people: Vec<i64> = receiver
        .wait_for(20)
        .await
        .iter()
        .map(Received::seq)
        .collect();
    assert_eq!(people.len(), 20);
    assert!(people.windows(2).all(|pair| pair[0] < pair[1]));

    // Replayed from the cursor of the tenth, it gets the last ten again.
    let tenth_cursor = {
        let page = app
            .changes()
            .list_changes(ListChangesRequest {
                cursor: endpoint.cursor.clone(),
                filter: Some(pb::ChangeFilter {
                    kinds: vec![ChangeKind::Person.into()],
                    ..pb::ChangeFilter::default()
                }),
                page_size: 10,
            })
            .await
            .unwrap()
            .into_inner();
        page.next_cursor
    };
    app.webhooks()
        .replay_webhook(ReplayWebhookRequest {
            id: endpoint.id.clone(),
            from: Some(replay_webhook_request::From::Cursor(tenth_cursor)),
        })
        .await
        .unwrap();
    let again: Vec<i64> = receiver.wait_for(30).await[20..]
        .iter()
        .map(Received::seq)
        .collect();
    assert_eq!(again, people[10..], "the last ten again, in order");

    // A replay by time starts at the first change at or after it.
    let first_sent = receiver.acknowledged()[0].change["committedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = chrono::DateTime::parse_from_rfc3339(&first_sent).unwrap();
    app.webhooks()
        .replay_webhook(ReplayWebhookRequest {
            id: endpoint.id.clone(),
            from: Some(replay_webhook_request::From::Since(
                prost_types::Timestamp {
                    seconds: since.timestamp(),
                    nanos: i32::try_from(since.timestamp_subsec_nanos()).unwrap(),
                },
            )),
        })
        .await
        .unwrap();
    let from_time: Vec<i64> = receiver.wait_for(50).await[30..]
        .iter()
        .map(Received::seq)
        .collect();
    assert_eq!(from_time, people, "everything from the first change's time");

    let r = app
        .webhooks()
        .replay_webhook(ReplayWebhookRequest {
            id: endpoint.id.clone(),
            from: Some(replay_webhook_request::From::Cursor(
                "not-a-cursor".to_owned(),
            )),
        })
        .await;
    assert_error(r, Code::InvalidArgument, &["cursor"]);
}

async fn destinations_on_private_addresses_are_refused_on_the_url_field(backend: Backend) {
    let app = require!(
        TestApp::builder(backend)
            .webhooks(WebhookConfig {
                allow_private: false,
                ..test_webhooks()
            })
            .start()
            .await
    );
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "ftp://example.com/hook",
        "https://user:secret@example.com/hook",
        "not a url",
        "",
    ] {
        let r = app
            .webhooks()
            .create_webhook_endpoint(CreateWebhookEndpointRequest {
                endpoint: Some(WebhookEndpoint {
                    url: url.to_owned(),
                    ..WebhookEndpoint::default()
                }),
            })
            .await;
        assert_error(r, Code::InvalidArgument, &["endpoint.url"]);
    }
    let listed = app
        .webhooks()
        .list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.endpoints.is_empty(),
        "a refused endpoint is not created"
    );

    // Kinds that are no kind are refused by position too.
    let r = app
        .webhooks()
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            endpoint: Some(WebhookEndpoint {
                url: "https://hooks.example.com/".to_owned(),
                kinds: vec![ChangeKind::Person.into(), 99],
                ..WebhookEndpoint::default()
            }),
        })
        .await;
    assert_error(r, Code::InvalidArgument, &["endpoint.kinds[1]"]);
}

async fn an_endpoint_whose_cursor_was_pruned_is_disabled_with_the_reason_until_replayed(
    backend: Backend,
) {
    let log = kith::config::ChangeLogConfig {
        retention: Duration::from_millis(300),
        prune_every: Duration::from_millis(100),
        ..kith::config::ChangeLogConfig::default()
    };
    let app = require!(TestApp::builder(backend).change_log(log).start().await);
    let (receiver, url) = Receiver::start(|_| Answer::Ok).await;
    let (endpoint, _) = create_endpoint(&app, &url, vec![ChangeKind::Person]).await;
    let paused = WebhookEndpoint {
        enabled: Some(false),
        ..WebhookEndpoint::default()
    };
    app.webhooks()
        .update_webhook_endpoint(UpdateWebhookEndpointRequest {
            id: endpoint.id.clone(),
            endpoint: Some(paused),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["enabled".to_owned()],
            }),
        })
        .await
        .unwrap();
    make_changes(&app, 5, "pruned").await;
    // Past the retention, its changes are gone from the log.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.webhooks()
        .enable_webhook_endpoint(EnableWebhookEndpointRequest {
            id: endpoint.id.clone(),
        })
        .await
        .unwrap();
    let mut stuck = get_endpoint(&app, &endpoint.id).await;
    for _ in 0..100 {
        if stuck.enabled == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stuck = get_endpoint(&app, &endpoint.id).await;
    }
    assert_eq!(stuck.enabled, Some(false), "{stuck:?}");
    assert!(
        stuck.disabled_reason.contains("replay"),
        "{}",
        stuck.disabled_reason
    );
    assert!(receiver.acknowledged().is_empty());

    // Replayed from now, and enabled, it delivers what comes next.
    app.webhooks()
        .replay_webhook(ReplayWebhookRequest {
            id: endpoint.id.clone(),
            from: Some(replay_webhook_request::From::Since(
                prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() + 1,
                    nanos: 0,
                },
            )),
        })
        .await
        .unwrap();
    app.webhooks()
        .enable_webhook_endpoint(EnableWebhookEndpointRequest {
            id: endpoint.id.clone(),
        })
        .await
        .unwrap();
    make_changes(&app, 1, "after").await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].change["externalId"], "after-0-0");
}

async fn kinds_pick_what_is_sent_and_an_update_takes_effect(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (receiver, url) = Receiver::start(|_| Answer::Ok).await;
    let (other, other_url) = Receiver::start(|_| Answer::Ok).await;
    let (endpoint, _) = create_endpoint(&app, &url, vec![ChangeKind::Customer]).await;
    make_changes(&app, 30, "kinds").await;
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = receiver.acknowledged();
    assert_eq!(got_after.len(), got.len().max(1));
    assert!(
        got_after
            .iter()
            .all(|r| r.change["kind"] == "CHANGE_KIND_CUSTOMER"),
        "only customers"
    );

    // A new URL: later changes go there.
    app.webhooks()
        .update_webhook_endpoint(UpdateWebhookEndpointRequest {
            id: endpoint.id.clone(),
            endpoint: Some(WebhookEndpoint {
                url: other_url,
                ..WebhookEndpoint::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["url".to_owned()],
            }),
        })
        .await
        .unwrap();
    make_changes(&app, 1, "moved").await;
    let moved = other.wait_for(1).await;
    assert_eq!(moved[0].change["customer"]["email"], "moved-0@example.com");
    assert_eq!(
        receiver.acknowledged().len(),
        got_after.len(),
        "the old URL gets no more"
    );

    let r = app
        .webhooks()
        .update_webhook_endpoint(UpdateWebhookEndpointRequest {
            id: endpoint.id.clone(),
            endpoint: Some(WebhookEndpoint::default()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["secret".to_owned()],
            }),
        })
        .await;
    assert_error(r, Code::InvalidArgument, &["update_mask"]);
    let r = app
        .webhooks()
        .get_webhook_endpoint(GetWebhookEndpointRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound);
}
