//! The metric layers of both transports. Each counts a request when it
//! starts and when its response body ends, since that is when a gRPC call
//! ends (its status may be in the trailers) and when a stream is done.
//! Without a registry (`--no-metrics`) they pass requests through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use http::{HeaderMap, Method, Request, Response};
use tower::{Layer, Service};

use super::body::{BodyEnd, BodyObserver, Ending, Watched};
use crate::metrics::{HttpMetrics, MethodMetrics, Metrics};

/// tonic starts the deadline's timer before this layer sees the call: a
/// moment on an idle machine, tens of milliseconds on a loaded one (seen in
/// CI). A call dropped within a quarter of its timeout of its deadline (5 ms
/// to 1 s) timed out; a client that gives up sooner cancelled it.
const DEADLINE_SLACK: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The route a response answered, when the router only knows a wildcard:
/// the canonical gateway names the binding (`/kith/v1/customers/{id}`)
/// that `/kith/{*path}` matched.
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub Arc<str>);

/// Counts gRPC calls into `grpc_server_*`.
#[derive(Clone)]
pub struct GrpcMetricsLayer(pub Option<Metrics>);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Option<Metrics>,
}

impl<S, R> Service<Request<tonic::body::Body>> for GrpcMetricsService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<Watched<R, Option<GrpcCall>>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let Some(metrics) = &self.metrics else {
            let response = self.inner.call(request);
            return Box::pin(
                async move { Ok(response.await?.map(|body| Watched::new(body, None))) },
            );
        };
        let started = Instant::now();
        let caller_timeout = grpc_timeout(request.headers());
        let method = metrics.grpc().method(request.uri().path());
        method.started();
        let received = Received {
            method: Arc::clone(&method),
            messages: MessageCounter::default(),
        };
        let request = request.map(|body| tonic::body::Body::new(Watched::new(body, received)));
        let response = self.inner.call(request);
        // Counted as cancelled if dropped unanswered: a client that left, or
        // a deadline that passed, before the handler replied.
        let pending = Ending::new(GrpcCall {
            code: None,
            method,
            deadline: deadline(caller_timeout),
            started,
            messages: MessageCounter::default(),
        });
        Box::pin(async move {
            let response = response.await?;
            let mut call = pending.take();
            call.code = status_code(response.headers());
            Ok(response.map(|body| Watched::new(body, Some(call))))
        })
    }
}

/// The caller's `grpc-timeout` (`100m`, `5S`, …), if it sent one.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// From when a call dropped unanswered counts as timed out.
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    let (least, most) = DEADLINE_SLACK;
    timeout.and_then(|timeout| {
        let slack = (timeout / 4).clamp(least, most);
        Instant::now().checked_add(timeout.saturating_sub(slack))
    })
}

/// The code in a `grpc-status` header or trailer.
fn status_code(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Counts the messages a call receives.
struct Received {
    method: Arc<MethodMetrics>,
    messages: MessageCounter,
}

impl BodyObserver for Received {
    fn data(&mut self, data: &[u8]) {
        self.method.received(self.messages.feed(data));
    }

    fn end(self, _how: BodyEnd) {}
}

/// Counts the messages a call sends and, at its end, its code and time.
pub struct GrpcCall {
    method: Arc<MethodMetrics>,
    /// When the caller's deadline passes (less the slack): tonic then drops
    /// the call, and answers DEADLINE_EXCEEDED outside this layer.
    deadline: Option<Instant>,
    started: Instant,
    code: Option<tonic::Code>,
    messages: MessageCounter,
}

impl BodyObserver for GrpcCall {
    fn data(&mut self, data: &[u8]) {
        self.method.sent(self.messages.feed(data));
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        self.code = status_code(trailers).or(self.code);
    }

    fn end(self, how: BodyEnd) {
        // A call that ends without a status timed out if its deadline has
        // passed, and was otherwise cancelled by its client, as grpc-go
        // counts them.
        let code = self.code.unwrap_or_else(|| match how {
            BodyEnd::Finished => tonic::Code::Unknown,
            BodyEnd::Failed | BodyEnd::Dropped
                if self
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline) =>
            {
                tonic::Code::DeadlineExceeded
            }
            BodyEnd::Failed | BodyEnd::Dropped => tonic::Code::Cancelled,
        });
        self.method
            .handled(code, self.started.elapsed().as_secs_f64());
    }
}

/// Counts gRPC messages (a flag byte, a 4-byte length, then the message)
/// in a byte stream that may be cut anywhere.
#[derive(Debug, Default)]
struct MessageCounter {
    prefix: [u8; 5],
    prefix_read: usize,
    /// Bytes of the current message not yet seen.
    message_left: usize,
}

impl MessageCounter {
    /// The messages that begin in `data`.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut messages = 0;
        while !data.is_empty() {
            if self.message_left > 0 {
                let skipped = self.message_left.min(data.len());
                self.message_left -= skipped;
                data = &data[skipped..];
                continue;
            }
            let taken = (self.prefix.len() - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + taken].copy_from_slice(&data[..taken]);
            self.prefix_read += taken;
            data = &data[taken..];
            if self.prefix_read == self.prefix.len() {
                messages += 1;
                self.prefix_read = 0;
                let length = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.message_left =
                    usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
            }
        }
        messages
    }
}

/// Times REST requests into `http_server_request_duration_seconds`. Goes
/// inside the router, where the matched route is known.
#[derive(Clone)]
pub struct HttpMetricsLayer(pub Option<Metrics>);

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.0.as_ref().map(|metrics| metrics.http().clone()),
        }
    }
}

#[derive(Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: Option<HttpMetrics>,
}

impl<S, B, R> Service<Request<B>> for HttpMetricsService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<Watched<R, Option<HttpCall>>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let observed = self.metrics.clone().map(|metrics| {
            let matched = request
                .extensions()
                .get::<MatchedPath>()
                .map(|path| Arc::<str>::from(path.as_str()));
            (metrics, request.method().clone(), matched)
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let call = observed.map(|(metrics, method, matched)| HttpCall {
                route: response
                    .extensions()
                    .get::<RouteTemplate>()
                    .map(|template| Arc::clone(&template.0))
                    .or(matched)
                    .unwrap_or_else(|| Arc::from("unmatched")),
                status: response.status().as_u16(),
                metrics,
                method,
                started,
            });
            Ok(response.map(|body| Watched::new(body, call)))
        })
    }
}

/// A REST request's labels, observed when its body ends.
pub struct HttpCall {
    metrics: HttpMetrics,
    method: Method,
    route: Arc<str>,
    status: u16,
    started: Instant,
}

impl BodyObserver for HttpCall {
    fn end(self, _how: BodyEnd) {
        self.metrics.observe(
            &self.method,
            self.route,
            self.status,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::MessageCounter;

    fn message(length: u8) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0, 0, length];
        bytes.extend(std::iter::repeat_n(7, usize::from(length)));
        bytes
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        use std::time::Duration;
        let timeout = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            super::grpc_timeout(&headers)
        };
        assert_eq!(timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(timeout("5x"), None);
        assert_eq!(timeout("m"), None);
        assert_eq!(timeout(""), None);
    }

    #[test]
    fn messages_are_counted_however_the_stream_is_cut() {
        let stream: Vec<u8> = [message(3), message(0), message(200)].concat();
        for cut in [1, 2, 4, 5, 6, 9, stream.len()] {
            let mut counter = MessageCounter::default();
            let counted: u64 = stream.chunks(cut).map(|chunk| counter.feed(chunk)).sum();
            assert_eq!(counted, 3, "chunks of {cut}");
        }
    }
}
