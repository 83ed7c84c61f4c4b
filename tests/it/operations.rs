//! What an operator sees: `/metrics` read with an OpenMetrics parser after
//! known calls, and the probes through the database's outage and the
//! server's drain.

use std::collections::HashMap;
use std::time::Duration;

use kith::pb::kith::v1::{
    self as pb, CreateCustomerRequest, GetCustomerRequest, ImportPeopleRequest, PersonUpsert,
    WatchRequest, get_customer_request,
};
use openmetrics_parser::{MetricFamily, OpenMetricsType, OpenMetricsValue};
use reqwest::{Method, StatusCode};
use tonic::Code;

use kith::config::RateLimit;

use crate::harness::{Backend, TestApp, backend_tests, require, spawn_behind_proxy};

backend_tests!(
    metrics_count_each_call_by_method_and_code,
    every_method_has_its_series_before_any_call,
    rest_requests_are_timed_by_route_template_never_by_path,
    the_service_counts_what_it_wrote_and_imported,
    scrapes_during_load_always_parse_and_only_grow,
    readyz_turns_not_ready_during_the_drain,
    calls_refused_for_their_rate_are_counted_on_both_transports,
    calls_past_their_deadline_and_calls_left_unanswered_are_counted,
);

/// One scrape, parsed by an OpenMetrics parser (not by this project).
pub struct Scrape {
    text: String,
    families: HashMap<String, MetricFamily<OpenMetricsType, OpenMetricsValue>>,
}

impl Scrape {
    pub async fn of(base: &str) -> Self {
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|error| panic!("an exposition that parses: {error:?}\n{text}"));
        Self {
            text,
            families: exposition.families,
        }
    }

    /// A scrape in which `settled` holds, waiting up to ten seconds: a
    /// call is counted when the server lets go of its response, a moment
    /// after the client has read it (longer on a loaded machine).
    async fn once(base: &str, settled: impl Fn(&Self) -> bool) -> Self {
        let mut scrape = Self::of(base).await;
        for _ in 0..500 {
            if settled(&scrape) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            scrape = Self::of(base).await;
        }
        scrape
    }

    /// The one sample of `family` whose labels include `labels`.
    fn sample(&self, family: &str, labels: &[(&str, &str)]) -> Option<OpenMetricsValue> {
        let family = self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no family {family}"));
        let mut found = family.iter_samples().filter(|sample| {
            let set = sample.get_labelset().unwrap();
            labels
                .iter()
                .all(|(name, value)| set.get_label_value(name) == Some(*value))
        });
        let first = found.next().map(|sample| sample.value.clone());
        assert!(found.next().is_none(), "{labels:?} names one sample");
        first
    }

    /// A counter's value; a missing series is a failure, not a zero.
    pub fn counter(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(family, labels) {
            Some(OpenMetricsValue::Counter(counter)) => counter.value.as_f64(),
            other => panic!("{family} {labels:?}: not a counter: {other:?}"),
        }
    }

    fn gauge(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(family, labels) {
            Some(OpenMetricsValue::Gauge(gauge)) => gauge.as_f64(),
            other => panic!("{family} {labels:?}: not a gauge: {other:?}"),
        }
    }

    /// A histogram's count and its cumulative buckets.
    fn histogram(&self, family: &str, labels: &[(&str, &str)]) -> (u64, Vec<(f64, f64)>) {
        match self.sample(family, labels) {
            Some(OpenMetricsValue::Histogram(histogram)) => (
                histogram.count.unwrap_or_default(),
                histogram
                    .buckets
                    .iter()
                    .map(|bucket| (bucket.upper_bound, bucket.count.as_f64()))
                    .collect(),
            ),
            other => panic!("{family} {labels:?}: not a histogram: {other:?}"),
        }
    }

    /// `grpc_server_handled_total` of one method and code.
    fn handled(&self, service: &str, method: &str, code: &str) -> f64 {
        self.counter(
            "grpc_server_handled",
            &[
                ("grpc_service", service),
                ("grpc_method", method),
                ("grpc_code", code),
            ],
        )
    }

    fn method_counter(&self, family: &str, service: &str, method: &str) -> f64 {
        self.counter(
            family,
            &[("grpc_service", service), ("grpc_method", method)],
        )
    }
}

const CUSTOMERS: &str = "kith.v1.CustomerService";
const PEOPLE: &str = "kith.v1.PeopleService";
const CHANGES: &str = "kith.v1.ChangeService";

fn by_id(id: &str) -> GetCustomerRequest {
    GetCustomerRequest {
        lookup: Some(get_customer_request::Lookup::Id(id.to_owned())),
    }
}

async fn create_customer(app: &TestApp, email: &str) -> Result<pb::Customer, tonic::Status> {
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some(email.to_owned()),
                ..pb::Customer::default()
            }),
        })
        .await
        .map(|reply| reply.into_inner().customer.unwrap())
}

fn upsert(user_id: &str) -> PersonUpsert {
    PersonUpsert {
        user_id: user_id.to_owned(),
        ..PersonUpsert::default()
    }
}

async fn import(app: &TestApp, chunks: Vec<ImportPeopleRequest>) {
    app.people()
        .import_people(tokio_stream::iter(chunks))
        .await
        .unwrap();
}

/// A Watch stream from now, past its first checkpoint.
async fn watching(app: &TestApp) -> tonic::Streaming<pb::WatchResponse> {
    let mut watch = app
        .changes()
        .watch(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("a first checkpoint");
    watch
}

/// OK, NOT_FOUND and INVALID_ARGUMENT calls, a client stream and a server
/// stream the client leaves: each counted once, under its own code, with
/// its messages.
async fn metrics_count_each_call_by_method_and_code(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let customer = create_customer(&app, "ada@example.com").await.unwrap();
    let refused = create_customer(&app, "not an email").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    for _ in 0..2 {
        app.customers()
            .get_customer(by_id(&customer.id))
            .await
            .unwrap();
    }
    let missing = app
        .customers()
        .get_customer(by_id("00000000-0000-7000-8000-000000000000"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let chunks = vec![
        ImportPeopleRequest {
            people: vec![upsert("p1"), upsert("p2")],
        },
        ImportPeopleRequest {
            people: vec![upsert("p3")],
        },
    ];
    import(&app, chunks).await;
    drop(watching(&app).await);

    // The server sees the stream's end a moment after the client leaves.
    let scrape = Scrape::once(&app.metrics, |scrape| {
        scrape.handled(CHANGES, "Watch", "Canceled") == 1.0
    })
    .await;
    assert_eq!(scrape.handled(CHANGES, "Watch", "Canceled"), 1.0);
    assert_eq!(scrape.handled(CHANGES, "Watch", "OK"), 0.0);
    let watch_sent = scrape.method_counter("grpc_server_msg_sent", CHANGES, "Watch");
    assert!(watch_sent >= 1.0, "the checkpoint was sent: {watch_sent}");

    assert_eq!(
        scrape.method_counter("grpc_server_started", CUSTOMERS, "GetCustomer"),
        3.0
    );
    assert_eq!(scrape.handled(CUSTOMERS, "GetCustomer", "OK"), 2.0);
    assert_eq!(scrape.handled(CUSTOMERS, "GetCustomer", "NotFound"), 1.0);
    assert_eq!(scrape.handled(CUSTOMERS, "GetCustomer", "Internal"), 0.0);
    assert_eq!(scrape.handled(CUSTOMERS, "CreateCustomer", "OK"), 1.0);
    assert_eq!(
        scrape.handled(CUSTOMERS, "CreateCustomer", "InvalidArgument"),
        1.0
    );
    assert_eq!(
        scrape.method_counter("grpc_server_msg_received", CUSTOMERS, "GetCustomer"),
        3.0
    );
    assert_eq!(
        scrape.method_counter("grpc_server_msg_sent", CUSTOMERS, "GetCustomer"),
        2.0,
        "a NOT_FOUND sends no message"
    );
    assert_eq!(
        scrape.method_counter("grpc_server_msg_received", PEOPLE, "ImportPeople"),
        2.0
    );
    assert_eq!(
        scrape.method_counter("grpc_server_msg_sent", PEOPLE, "ImportPeople"),
        1.0
    );
    assert_eq!(scrape.handled(PEOPLE, "ImportPeople", "OK"), 1.0);

    let shape = |service: &str, method: &str, grpc_type: &str| {
        scrape.counter(
            "grpc_server_started",
            &[
                ("grpc_service", service),
                ("grpc_method", method),
                ("grpc_type", grpc_type),
            ],
        )
    };
    assert_eq!(shape(CUSTOMERS, "GetCustomer", "unary"), 3.0);
    assert_eq!(shape(PEOPLE, "ImportPeople", "client_stream"), 1.0);
    assert_eq!(shape(CHANGES, "Watch", "server_stream"), 1.0);

    let (count, buckets) = scrape.histogram(
        "grpc_server_handling_seconds",
        &[("grpc_service", CUSTOMERS), ("grpc_method", "GetCustomer")],
    );
    assert_eq!(count, 3);
    let bounds: Vec<f64> = buckets.iter().map(|(bound, _)| *bound).collect();
    assert_eq!(
        bounds,
        [
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
            f64::INFINITY
        ],
        "go-grpc-middleware's buckets"
    );
    assert_eq!(buckets.last().unwrap().1, 3.0, "+Inf holds every call");
    assert!(
        buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "buckets are cumulative: {buckets:?}"
    );
    assert!(
        !scrape.text.contains(&customer.id),
        "no label holds a record id"
    );
}

/// A dashboard can plot a method before its first call: every method of
/// every mounted service, at zero, with every code.
async fn every_method_has_its_series_before_any_call(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let scrape = Scrape::of(&app.metrics).await;
    let pool = prost_reflect::DescriptorPool::decode(kith::pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = 0;
    for service in pool.services() {
        for method in service.methods() {
            let (service, name) = (service.full_name(), method.name());
            assert_eq!(
                scrape.method_counter("grpc_server_started", service, name),
                0.0
            );
            assert_eq!(scrape.handled(service, name, "Unavailable"), 0.0);
            methods += 1;
        }
    }
    assert!(methods > 30, "the whole contract: {methods} methods");
    assert_eq!(
        scrape.method_counter("grpc_server_started", "grpc.health.v1.Health", "Check"),
        0.0
    );
    assert_eq!(scrape.gauge("kith_serving", &[]), 1.0);
    let expected_backend = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert!(
        matches!(
            scrape.sample(
                "kith_build",
                &[
                    ("backend", expected_backend),
                    ("version", env!("CARGO_PKG_VERSION"))
                ]
            ),
            Some(OpenMetricsValue::Info)
        ),
        "build info names the backend"
    );
    let pools: f64 = scrape
        .families
        .get("kith_db_pool_connections")
        .expect("pool sizes")
        .iter_samples()
        .map(|sample| match &sample.value {
            OpenMetricsValue::Gauge(size) => size.as_f64(),
            other => panic!("a gauge: {other:?}"),
        })
        .sum();
    assert!(pools >= 1.0, "the pools hold connections: {pools}");
}

/// REST requests are labelled by the template they matched, canonical
/// routes by their binding; a path no route takes is `unmatched`.
async fn rest_requests_are_timed_by_route_template_never_by_path(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let customer = create_customer(&app, "grace@example.com").await.unwrap();
    let bearer = format!("Bearer {}", app.key);
    let auth = Some(("authorization", bearer.as_str()));
    for path in [
        format!("/kith/v1/customers/{}", customer.id),
        format!("/api/customers/{}", customer.id),
        "/kith/v1/customers/00000000-0000-7000-8000-000000000000".to_owned(),
    ] {
        app.rest_json(Method::GET, &path, auth, None).await;
    }
    app.rest_json(Method::GET, "/no/such/route", auth, None)
        .await;

    // The last request's series, once it is there, says all four are.
    let scrape = Scrape::once(&app.rest, |scrape| {
        scrape.families["http_server_request_duration_seconds"]
            .iter_samples()
            .any(|sample| {
                sample
                    .get_labelset()
                    .is_ok_and(|labels| labels.get_label_value("http_route") == Some("unmatched"))
            })
    })
    .await;
    let requests = |route: &str, status: &str| {
        scrape
            .histogram(
                "http_server_request_duration_seconds",
                &[
                    ("http_request_method", "GET"),
                    ("http_route", route),
                    ("http_response_status_code", status),
                ],
            )
            .0
    };
    assert_eq!(requests("/kith/v1/customers/{id}", "200"), 1);
    assert_eq!(requests("/kith/v1/customers/{id}", "404"), 1);
    assert_eq!(requests("/api/customers/{id}", "200"), 1);
    assert_eq!(requests("unmatched", "404"), 1);
    assert!(
        !scrape.text.contains(&customer.id),
        "no label holds a path's id"
    );
    // Canonical calls are dispatched in process, not counted as gRPC too.
    assert_eq!(
        scrape.method_counter("grpc_server_started", CUSTOMERS, "GetCustomer"),
        0.0
    );
}

/// Records written by resource and operation, rows imported by outcome,
/// open Watch streams.
async fn the_service_counts_what_it_wrote_and_imported(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    create_customer(&app, "linus@example.com").await.unwrap();
    let chunks = vec![ImportPeopleRequest {
        people: vec![upsert("p1"), upsert("p2"), upsert("")],
    }];
    import(&app, chunks.clone()).await;
    import(&app, chunks).await;
    let watch = watching(&app).await;

    let scrape = Scrape::of(&app.metrics).await;
    let written = |resource: &str, operation: &str| {
        scrape.counter(
            "kith_records_written",
            &[("resource", resource), ("operation", operation)],
        )
    };
    assert_eq!(written("customer", "created"), 1.0);
    assert_eq!(written("person", "created"), 2.0);
    assert_eq!(written("person", "updated"), 2.0);
    assert_eq!(written("user", "deleted"), 0.0);
    let imported = |outcome: &str| scrape.counter("kith_import_rows", &[("outcome", outcome)]);
    assert_eq!(imported("created"), 2.0);
    assert_eq!(imported("updated"), 2.0);
    assert_eq!(imported("rejected"), 2.0);
    assert_eq!(scrape.gauge("kith_watchers", &[]), 1.0);
    let selects = scrape.histogram(
        "kith_store_statement_duration_seconds",
        &[("operation", "select")],
    );
    assert!(selects.0 > 0, "statements are timed");

    drop(watch);
    for _ in 0..100 {
        if Scrape::of(&app.metrics).await.gauge("kith_watchers", &[]) == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a Watch its client left is no longer counted");
}

/// Four callers hammer GetCustomer while the test scrapes: every scrape
/// parses, and counters never go back.
async fn scrapes_during_load_always_parse_and_only_grow(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let customer = create_customer(&app, "load@example.com").await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = app.customers();
            let id = customer.id.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let mut calls = 0_u64;
                while !*stopped.borrow_and_update() {
                    client.get_customer(by_id(&id)).await.unwrap();
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut last = 0.0;
    for _ in 0..20 {
        let scrape = Scrape::of(&app.metrics).await;
        let started = scrape.method_counter("grpc_server_started", CUSTOMERS, "GetCustomer");
        assert!(started >= last, "{started} after {last}");
        last = started;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send_replace(true);
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.unwrap();
    }
    let all = calls as f64;
    let scrape = Scrape::once(&app.metrics, |scrape| {
        scrape.handled(CUSTOMERS, "GetCustomer", "OK") >= all
    })
    .await;
    assert_eq!(
        scrape.handled(CUSTOMERS, "GetCustomer", "OK"),
        all,
        "every call counted once"
    );
}

/// A key allowed one call (a burst of one, refilled once a second): the
/// next gRPC call and the next REST call are refused, and counted.
async fn calls_refused_for_their_rate_are_counted_on_both_transports(backend: Backend) {
    let one = std::num::NonZeroU32::new(1).unwrap();
    let limit = RateLimit {
        per_second: one,
        burst: one,
    };
    let app = require!(TestApp::builder(backend).rate_limit(limit).start().await);
    let list = || {
        let mut customers = app.customers();
        async move {
            customers
                .list_customers(pb::ListCustomersRequest::default())
                .await
        }
    };
    list().await.unwrap();
    assert_eq!(list().await.unwrap_err().code(), Code::ResourceExhausted);
    let bearer = format!("Bearer {}", app.key);
    let (status, _) = app
        .rest_json(
            Method::GET,
            "/kith/v1/customers",
            Some(("authorization", &bearer)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let scrape = Scrape::once(&app.metrics, |scrape| {
        scrape.handled(CUSTOMERS, "ListCustomers", "ResourceExhausted") >= 1.0
    })
    .await;
    assert_eq!(scrape.counter("kith_rate_limited", &[]), 2.0);
    assert_eq!(
        scrape.handled(CUSTOMERS, "ListCustomers", "ResourceExhausted"),
        1.0
    );
}

/// A client stream whose deadline passes before it ends is counted as
/// DeadlineExceeded (whatever tonic answers); one its client drops, as
/// Canceled. Neither is ever
/// answered, so only their ends say how they went.
async fn calls_past_their_deadline_and_calls_left_unanswered_are_counted(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let (held, status) = import_with_server_deadline(&app, "200m").await;
    // tonic answers an expired deadline with CANCELLED; the metric says
    // why, as grpc-go's does.
    assert_eq!(status, "1", "the server ended the call at its deadline");
    drop(held);

    let (left, stream) = tokio::sync::mpsc::channel::<ImportPeopleRequest>(1);
    let mut people = app.people();
    let import = tokio::spawn(async move {
        people
            .import_people(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
    });
    let started = Scrape::once(&app.metrics, |scrape| {
        scrape.method_counter("grpc_server_started", PEOPLE, "ImportPeople") == 2.0
    })
    .await;
    assert_eq!(
        started.method_counter("grpc_server_started", PEOPLE, "ImportPeople"),
        2.0
    );
    // The client goes away mid-stream. Its request body stays open until
    // the end: hyper's connection task streams the body apart from the
    // aborted call, and a body that ended would be a finished (OK) import.
    import.abort();

    let scrape = Scrape::once(&app.metrics, |scrape| {
        scrape.handled(PEOPLE, "ImportPeople", "Canceled")
            + scrape.handled(PEOPLE, "ImportPeople", "DeadlineExceeded")
            == 2.0
    })
    .await;
    assert_eq!(
        scrape.handled(PEOPLE, "ImportPeople", "DeadlineExceeded"),
        1.0
    );
    assert_eq!(scrape.handled(PEOPLE, "ImportPeople", "Canceled"), 1.0);
    assert_eq!(scrape.handled(PEOPLE, "ImportPeople", "OK"), 0.0);
    drop(left);
}

/// Opens an ImportPeople stream that sends nothing, with a `grpc-timeout`
/// only the server keeps (tonic's client would cancel at the deadline
/// itself, racing the server), and returns its body's sender (to hold the
/// stream open) and the `grpc-status` the server answered.
async fn import_with_server_deadline(
    app: &TestApp,
    timeout: &str,
) -> (
    tokio::sync::mpsc::Sender<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>,
    String,
) {
    let tcp = tokio::net::TcpStream::connect(app.grpc).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let (frames, body) = tokio::sync::mpsc::channel(1);
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(body));
    let request = http::Request::post(format!(
        "http://{}/kith.v1.PeopleService/ImportPeople",
        app.grpc
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", timeout)
    .header("authorization", format!("Bearer {}", app.key))
    .body(body)
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.headers()["grpc-status"]
        .to_str()
        .unwrap()
        .to_owned();
    (frames, status)
}

/// While the server drains a call in flight, `/readyz` on the metrics
/// listener says not ready and `/livez` still says live.
async fn readyz_turns_not_ready_during_the_drain(backend: Backend) {
    let mut app = require!(TestApp::spawn(backend).await);
    let metrics = app.metrics.clone();
    let probe = |path: &'static str| {
        let url = format!("{metrics}{path}");
        async move { reqwest::get(url).await.unwrap().status() }
    };
    assert_eq!(probe("/readyz").await, StatusCode::OK);
    assert_eq!(probe("/livez").await, StatusCode::OK);
    let rest_ready = reqwest::get(format!("{}/readyz", app.rest)).await.unwrap();
    assert_eq!(
        rest_ready.status(),
        StatusCode::OK,
        "on the REST listener too"
    );

    // A client stream held open keeps the server draining.
    let (chunks, stream) = tokio::sync::mpsc::channel(1);
    let mut people = app.people();
    let import = tokio::spawn(async move {
        people
            .import_people(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
    });
    chunks
        .send(ImportPeopleRequest {
            people: vec![upsert("p1")],
        })
        .await
        .unwrap();
    // Stopping refuses new connections: the call must be in by then.
    let scrape = Scrape::once(&metrics, |scrape| {
        scrape.method_counter("grpc_server_msg_received", PEOPLE, "ImportPeople") == 1.0
    })
    .await;
    assert_eq!(
        scrape.method_counter("grpc_server_msg_received", PEOPLE, "ImportPeople"),
        1.0,
        "the import's first message arrived"
    );
    app.begin_stopping();
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = probe("/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "draining is not ready"
    );
    assert_eq!(probe("/livez").await, StatusCode::OK, "but still live");
    drop(chunks);
    let reply = import.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.created_count, 1, "the call in flight finished");
}

/// PostgreSQL only (the outage is a proxy cut): `/readyz` and
/// `kith_serving` follow the database down and back up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_through_an_outage() {
    let (app, proxy) = require!(spawn_behind_proxy().await);
    let ready = || async {
        let status = reqwest::get(format!("{}/readyz", app.metrics))
            .await
            .unwrap()
            .status();
        let serving = Scrape::of(&app.metrics).await.gauge("kith_serving", &[]);
        (status, serving)
    };
    assert_eq!(ready().await, (StatusCode::OK, 1.0));
    proxy.set_up(false);
    let mut seen = ready().await;
    for _ in 0..100 {
        if seen.0 == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = ready().await;
    }
    assert_eq!(seen, (StatusCode::SERVICE_UNAVAILABLE, 0.0), "cut");
    proxy.set_up(true);
    for _ in 0..100 {
        seen = ready().await;
        if seen.0 == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, (StatusCode::OK, 1.0), "restored");
}
