//! Trace context across services: a caller's W3C `traceparent` makes the
//! request's span its child, every log line of the request names the
//! trace, and with `--otlp-endpoint` the span reaches a collector (a small
//! OTLP receiver here) under the caller's span. Kith runs as its own
//! process, since a process has one log subscriber and one exporter.

use std::sync::{Arc, Mutex};

use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::{GetCustomerRequest, get_customer_request};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use tonic::Code;

use crate::harness::{Backend, TestDb};
use crate::kith_process::{Bearer, Database, Kith};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves on a free port; returns the endpoint to give Kith.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        endpoint
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The log lines written inside the request with this id.
fn lines_of(logs: &[String], request_id: &str) -> Vec<Value> {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_reaches_every_log_line_and_the_collector() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let kith = Kith::start_logging(
        &db.url,
        Database::Fresh,
        &["--otlp-endpoint", &endpoint],
        Some("info,kith=debug"),
    )
    .await
    .unwrap();
    let key = kith.key.clone().unwrap();

    let customers =
        CustomerServiceClient::with_interceptor(kith.channel.clone(), Bearer::new(&key));
    let call = |request_id: &'static str, traceparent: Option<String>| {
        let mut customers = customers.clone();
        let mut request = tonic::Request::new(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(
                uuid::Uuid::new_v4().to_string(),
            )),
        });
        request
            .metadata_mut()
            .insert("x-request-id", request_id.parse().unwrap());
        if let Some(traceparent) = traceparent {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.parse().unwrap());
        }
        async move { customers.get_customer(request).await }
    };
    let traced = call(
        "traced-grpc",
        Some(format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")),
    )
    .await;
    assert_eq!(traced.unwrap_err().code(), Code::NotFound);
    let untraced = call("untraced-grpc", None).await;
    assert_eq!(untraced.unwrap_err().code(), Code::NotFound);
    let rest_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = reqwest::Client::new()
        .get(format!(
            "{}/kith/v1/customers/{}",
            kith.rest,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&key)
        .header("x-request-id", "traced-rest")
        .header(
            "traceparent",
            format!("00-{rest_trace}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Stopping flushes the spans still queued.
    let logs = kith.stop().await.unwrap();

    for (request_id, trace) in [("traced-grpc", CALLER_TRACE), ("traced-rest", rest_trace)] {
        let lines = lines_of(&logs, request_id);
        assert!(!lines.is_empty(), "{request_id} logged: {logs:#?}");
        for line in &lines {
            assert_eq!(line["span"]["trace_id"], trace, "{request_id}: {line}");
        }
    }
    let untraced = lines_of(&logs, "untraced-grpc");
    assert!(!untraced.is_empty());
    let new_trace = untraced[0]["span"]["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(new_trace.len(), 32, "a new trace id: {new_trace}");
    assert_ne!(new_trace, CALLER_TRACE);
    assert!(
        untraced
            .iter()
            .all(|line| line["span"]["trace_id"] == new_trace.as_str())
    );

    let spans = collector.spans.lock().unwrap().clone();
    let exported = spans
        .iter()
        .find(|span| hex(&span.trace_id) == CALLER_TRACE)
        .unwrap_or_else(|| panic!("the traced call's span was exported: {spans:#?}"));
    assert_eq!(
        hex(&exported.parent_span_id),
        CALLER_SPAN,
        "a child of the caller's span"
    );
    assert_eq!(exported.name, "/kith.v1.CustomerService/GetCustomer");
    assert_eq!(exported.kind, SpanKind::Server as i32);
    let logged = lines_of(&logs, "traced-grpc");
    assert_eq!(
        logged[0]["span"]["span_id"],
        hex(&exported.span_id),
        "the logs name the exported span"
    );
    let rest = spans
        .iter()
        .find(|span| hex(&span.trace_id) == rest_trace)
        .expect("REST requests are exported too");
    assert_eq!(
        rest.name, "/kith/v1/customers/{id}",
        "named by the binding, not the path"
    );
}
