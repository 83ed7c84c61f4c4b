//! A tracing span around every request, on both transports: its request id
//! (the caller's `x-request-id`, or a new one, returned either way), its
//! trace (the caller's W3C `traceparent`, or a new one: `trace`), the RPC
//! or route, the caller's workspace once it is known, the status, and the
//! latency. Every log line of the request is written inside the span, so it
//! carries the request id and trace id; an internal error's message names
//! the same request id. With `--otlp-endpoint` the span is exported too.
//!
//! The status of a gRPC call may come in the response headers (an error
//! answered at once) or in the trailers after the body (every success), so
//! the span is closed by the response body, not by the handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use crate::domain::Caller;

mod body;
mod metrics;
mod trace;

use body::Ending;
pub use body::{BodyEnd, BodyObserver, Watched};
pub use metrics::{GrpcMetricsLayer, HttpMetricsLayer, RouteTemplate};

/// The header a request id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request this task serves.
    static CURRENT_REQUEST: String;
}

/// The id of the request being served, if any: what an internal error
/// names so that its log line can be found.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST.try_with(Clone::clone).ok()
}

/// Records the caller's workspace in the request's span.
pub fn record_caller(caller: &Caller) {
    Span::current().record("workspace", tracing::field::display(caller.workspace));
}

/// Which transport a span belongs to, and how it names what was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Named by the RPC's path, `/kith.v1.CustomerService/GetCustomer`;
    /// the status is the gRPC code.
    Grpc,
    /// Named by the route template (`/api/customers/{id}`), never the
    /// raw path; the status is the HTTP status.
    Rest,
}

/// The tower layer that gives each request its span.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpans(pub Transport);

impl<S> Layer<S> for RequestSpans {
    type Service = RequestSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpanService {
            inner,
            transport: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestSpanService<S> {
    inner: S,
    transport: Transport,
}

impl<S, B, R> Service<Request<B>> for RequestSpanService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: Body,
{
    type Response = Response<Watched<R, Finish>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(&request);
        let name = match self.transport {
            Transport::Grpc => request.uri().path().to_owned(),
            Transport::Rest => request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned()),
        };
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            transport = ?self.transport,
            method = %request.method(),
            call = %name,
            workspace = tracing::field::Empty,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            // What an exported span is called, and that Kith served it.
            "otel.name" = %name,
            "otel.kind" = "server",
        );
        trace::join_caller_trace(&span, request.headers());
        let transport = self.transport;
        let response = CURRENT_REQUEST.scope(
            request_id.clone(),
            self.inner.call(request).instrument(span.clone()),
        );
        // Closes the span as cancelled if the call is dropped unanswered.
        let pending = Ending::new(Finish {
            span: span.clone(),
            started,
            status: None,
        });
        Box::pin(async move {
            let mut response = response.await?;
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            // The canonical gateway names the binding `/kith/{*path}` matched.
            if let Some(RouteTemplate(route)) = response.extensions().get::<RouteTemplate>() {
                trace::rename(&span, route);
            }
            let mut finish = pending.take();
            finish.status = match transport {
                Transport::Grpc => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|status| status.to_str().ok())
                    .map(str::to_owned),
                Transport::Rest => Some(response.status().as_u16().to_string()),
            };
            Ok(response.map(|inner| Watched::new(inner, finish)))
        })
    }
}

/// The caller's request id if it is a sensible token, else a new one.
fn request_id<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// What closes a request's span: its status and latency, recorded when the
/// response body ends (or is dropped).
pub struct Finish {
    span: Span,
    started: Instant,
    status: Option<String>,
}

impl BodyObserver for Finish {
    fn trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(status) = trailers
            .get("grpc-status")
            .and_then(|status| status.to_str().ok())
        {
            self.status = Some(status.to_owned());
        }
    }

    fn end(self, how: BodyEnd) {
        let status = match (self.status, how) {
            (_, BodyEnd::Failed) => "transport error".to_owned(),
            (Some(status), _) => status,
            (None, _) => "cancelled".to_owned(),
        };
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.span.record("status", status.as_str());
        self.span.record("latency_ms", latency_ms);
        self.span
            .in_scope(|| tracing::debug!(%status, latency_ms, "request finished"));
    }
}
