//! `GetCustomer` at many calls in flight, against its ceiling: a tonic
//! service that answers the very same reply without doing anything.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message as _;
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};

use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::{
    BillingAddress, CreateCustomerRequest, Customer, GetCustomerRequest, GetCustomerResponse,
    MetadataValue, get_customer_request::Lookup, metadata_value::Kind,
};

use crate::kith_process::{Kith, cpu_time, peak_rss_mb, reset_peak_rss};
use crate::load::{Measured, closed_loop};

/// Creates `count` customers with an address and metadata, as a directory
/// holds them, and returns their ids.
pub async fn create(kith: &Kith, count: usize) -> anyhow::Result<Vec<String>> {
    let mut client = kith.customers();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let metadata = [
            ("plan", Kind::StringValue("enterprise".to_owned())),
            ("seats", Kind::IntValue(i64::try_from(i % 500)?)),
            ("trial", Kind::BoolValue(i % 2 == 0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), MetadataValue { kind: Some(v) }))
        .collect();
        let customer = Customer {
            external_id: Some(format!("customer-{i}")),
            email: Some(format!("billing-{i}@example.com")),
            name: Some(format!("Customer {i} Ltd")),
            billing_address: Some(BillingAddress {
                country: "FR".to_owned(),
                line1: Some(format!("{i} rue de la Paix")),
                postal_code: Some("75002".to_owned()),
                city: Some("Paris".to_owned()),
                ..BillingAddress::default()
            }),
            metadata,
            ..Customer::default()
        };
        let created = client
            .create_customer(CreateCustomerRequest {
                customer: Some(customer),
            })
            .await?
            .into_inner()
            .customer
            .context("a created customer")?;
        ids.push(created.id);
    }
    Ok(ids)
}

/// `calls` lookups by id at `in_flight` at once over one connection: Kith
/// when `client` points at Kith, the ceiling when it points at the echo.
pub async fn get_by_id(
    channel: Channel,
    bearer: crate::kith_process::Bearer,
    ids: Arc<Vec<String>>,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let client = CustomerServiceClient::with_interceptor(channel, bearer);
    closed_loop(calls, in_flight, 1, move |i| {
        let (mut client, ids) = (client.clone(), ids.clone());
        async move {
            let lookup = Lookup::Id(ids[i % ids.len()].clone());
            client
                .get_customer(GetCustomerRequest {
                    lookup: Some(lookup),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

/// The same lookups as `get_by_id`, as `GET /kith/v1/customers/{id}`: the
/// contract's REST binding, over HTTP/1.1 keep-alive connections.
pub async fn rest_get_by_id(
    kith: &Kith,
    ids: Arc<Vec<String>>,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let base = Arc::new(format!("{}/kith/v1/customers", kith.rest));
    let key = Arc::new(kith.key.clone().context("fresh database")?);
    closed_loop(calls, in_flight, 1, move |i| {
        let (client, ids, base, key) = (client.clone(), ids.clone(), base.clone(), key.clone());
        async move {
            let response = client
                .get(format!("{base}/{}", ids[i % ids.len()]))
                .bearer_auth(key.as_str())
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "REST GetCustomer failed: {}",
                response.status()
            );
            response.bytes().await?;
            Ok(())
        }
    })
    .await
}

/// The echo ceiling in its own process (this bench binary, run with
/// `--echo-reply`), so that it is measured as Kith is.
pub struct Echo {
    child: Child,
    pub channel: Channel,
}

impl Echo {
    pub async fn start(reply: &GetCustomerResponse) -> anyhow::Result<Self> {
        use std::io::{BufRead as _, BufReader};
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--echo-reply", &STANDARD.encode(reply.encode_to_vec())])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("piped")?;
        let addr = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout).lines().next().and_then(Result::ok)
        })
        .await?
        .context("the echo server prints its address")?;
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        Ok(Self { child, channel })
    }

    pub fn reset_peak_rss(&self) {
        reset_peak_rss(self.child.id());
    }

    pub fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(self.child.id())
    }

    /// The echo process's CPU time so far, all threads.
    pub fn cpu_time(&self) -> std::time::Duration {
        cpu_time(self.child.id())
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `reply` to every `GetCustomer` until killed (the echo process).
pub async fn serve_echo(reply: &str) -> anyhow::Result<()> {
    let reply = GetCustomerResponse::decode(STANDARD.decode(reply)?.as_slice())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(EchoService(Arc::new(reply)))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}

/// Answers every call on the customer service's path with the stored reply.
#[derive(Clone)]
struct EchoService(Arc<GetCustomerResponse>);

impl NamedService for EchoService {
    const NAME: &'static str = "kith.v1.CustomerService";
}

impl tower::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let reply = self.0.clone();
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<GetCustomerResponse, GetCustomerRequest>::default();
            Ok(Grpc::new(codec).unary(Reply(reply), request).await)
        })
    }
}

struct Reply(Arc<GetCustomerResponse>);

impl UnaryService<GetCustomerRequest> for Reply {
    type Response = GetCustomerResponse;
    type Future = Ready<Result<tonic::Response<GetCustomerResponse>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<GetCustomerRequest>) -> Self::Future {
        ready(Ok(tonic::Response::new((*self.0).clone())))
    }
}

/// The same lookups straight into Kith's service in this process, members
/// included: what a `GetCustomer` costs before any transport.
pub async fn store_direct(
    database_url: &str,
    ids: Arc<Vec<String>>,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    use kith::domain::customer::CustomerLookup;
    let (service, caller) = crate::in_process(database_url).await?;
    closed_loop(calls, in_flight, 1, move |i| {
        let (service, ids) = (service.clone(), ids.clone());
        async move {
            let lookup = CustomerLookup::by_id(&ids[i % ids.len()])?;
            service.get_customer(&caller, &lookup).await?;
            Ok(())
        }
    })
    .await
}
