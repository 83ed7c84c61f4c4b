//! Webhook delivery to a receiver in this process that answers at once:
//! events per second to one endpoint and to fifty, with the server's CPU
//! per event, and the time from a change's commit to its arrival while the
//! receiver keeps up (writes one at a time, each awaited at the receiver).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::webhook_service_client::WebhookServiceClient;
use kith::pb::kith::v1::{
    BatchUpsertPeopleRequest, ChangeKind, CreateWebhookEndpointRequest, PersonUpsert,
    WebhookEndpoint,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::kith_process::{Bearer, Database, Kith};
use crate::load::{Latencies, Measured, Row};
use crate::{Args, Backend, Databases};

const FAN_OUT: usize = 50;
const BATCH: usize = 100;

/// Arrivals: when each event came, and when its change committed.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(SystemTime, SystemTime)>>>);

async fn receive(
    State(receiver): State<Receiver>,
    Path(_endpoint): Path<usize>,
    body: axum::body::Bytes,
) -> StatusCode {
    let arrived = SystemTime::now();
    let committed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|change| change["committedAt"].as_str().map(str::to_owned))
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
        .map_or(arrived, SystemTime::from);
    receiver
        .0
        .lock()
        .expect("arrivals")
        .push((arrived, committed));
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Listens on 127.0.0.1; the URL of endpoint `n` is `<base>/<n>`.
    async fn start() -> anyhow::Result<(Self, String)> {
        let receiver = Self::default();
        let router = axum::Router::new()
            .route("/e/{endpoint}", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}/e", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((receiver, base))
    }

    fn take(&self) -> Vec<(SystemTime, SystemTime)> {
        std::mem::take(&mut *self.0.lock().expect("arrivals"))
    }

    fn count(&self) -> usize {
        self.0.lock().expect("arrivals").len()
    }

    async fn wait_for(&self, count: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while self.count() < count {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} of {count} events in 300 s",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

type Webhooks = WebhookServiceClient<InterceptedService<Channel, Bearer>>;

async fn create_endpoints(kith: &Kith, base: &str, count: usize) -> anyhow::Result<()> {
    let mut webhooks: Webhooks =
        WebhookServiceClient::with_interceptor(kith.channel.clone(), kith.bearer());
    for n in 0..count {
        webhooks
            .create_webhook_endpoint(CreateWebhookEndpointRequest {
                endpoint: Some(WebhookEndpoint {
                    url: format!("{base}/{n}"),
                    kinds: vec![ChangeKind::Person.into()],
                    ..WebhookEndpoint::default()
                }),
            })
            .await
            .context("creating an endpoint")?;
    }
    Ok(())
}

async fn write_people(kith: &Kith, rows: usize, tag: &str) -> anyhow::Result<()> {
    let mut people: PeopleServiceClient<_> = kith.people();
    for batch in 0..rows.div_ceil(BATCH) {
        let size = (rows - batch * BATCH).min(BATCH);
        people
            .batch_upsert_people(BatchUpsertPeopleRequest {
                people: (0..size)
                    .map(|i| PersonUpsert {
                        user_id: format!("{tag}-{batch}-{i}"),
                        ..PersonUpsert::default()
                    })
                    .collect(),
            })
            .await?;
    }
    Ok(())
}

/// Events per second from the first arrival to the last, and each event's
/// commit → arrival.
fn measured(arrivals: &[(SystemTime, SystemTime)]) -> Measured {
    let first = arrivals.iter().map(|(at, _)| *at).min();
    let last = arrivals.iter().map(|(at, _)| *at).max();
    let elapsed = first
        .zip(last)
        .and_then(|(first, last)| last.duration_since(first).ok())
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    let delays = arrivals
        .iter()
        .map(|(at, committed)| at.duration_since(*committed).unwrap_or_default())
        .collect();
    Measured::new(arrivals.len(), elapsed, Latencies::from_unsorted(delays))
}

pub async fn scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    let (receiver, base) = Receiver::start().await?;
    let flags = ["--webhook-allow-private"];

    let rows = args.rows;
    eprintln!("{name}: webhooks, {rows} events to one endpoint");
    let kith = Kith::start_with(&databases.fresh(backend).await?, Database::Fresh, &flags).await?;
    create_endpoints(&kith, &base, 1).await?;
    let cpu = kith.cpu_time();
    write_people(&kith, rows, "one").await?;
    receiver.wait_for(rows).await?;
    let one = measured(&receiver.take());
    table.push(
        Row::rate(
            "webhooks: deliveries, 1 endpoint (commit → arrival)",
            name,
            &one,
            "events/s",
        )
        .server_cpu(kith.cpu_time() - cpu, rows)
        .against("-".to_owned(), "≥ 2,000 events/s"),
    );

    let samples = args.latency_samples;
    eprintln!("{name}: webhooks, {samples} writes each awaited at the receiver");
    let mut trickle = Vec::with_capacity(samples);
    for n in 0..samples {
        write_people(&kith, 1, &format!("trickle-{n}")).await?;
        receiver.wait_for(1).await?;
        let arrived = receiver.take();
        anyhow::ensure!(arrived.len() == 1, "one event per write");
        trickle.extend(arrived);
    }
    let healthy = measured(&trickle);
    table.push(
        Row::latency(
            "webhooks: commit → delivery, receiver keeping up",
            name,
            &healthy.latencies,
        )
        .against("-".to_owned(), "p99 ≤ 100 ms"),
    );
    kith.stop().await?;

    let per_endpoint = (rows / 10).max(1);
    let total = per_endpoint * FAN_OUT;
    eprintln!("{name}: webhooks, {per_endpoint} events to each of {FAN_OUT} endpoints");
    let kith = Kith::start_with(&databases.fresh(backend).await?, Database::Fresh, &flags).await?;
    create_endpoints(&kith, &base, FAN_OUT).await?;
    let cpu = kith.cpu_time();
    write_people(&kith, per_endpoint, "fan").await?;
    receiver.wait_for(total).await?;
    let fan = measured(&receiver.take());
    table.push(
        Row::rate(
            &format!("webhooks: deliveries, {FAN_OUT} endpoints (commit → arrival)"),
            name,
            &fan,
            "events/s",
        )
        .server_cpu(kith.cpu_time() - cpu, total)
        .against("-".to_owned(), "-"),
    );
    kith.stop().await?;
    Ok(())
}
