//! REST metrics under OpenTelemetry's HTTP server names:
//! `http_server_request_duration_seconds` by method, route template and
//! status. The route is the template a request matched, never its path.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// OpenTelemetry's advised buckets for `http.server.request.duration`.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: &'static str,
    http_route: Arc<str>,
    http_response_status_code: u16,
}

#[derive(Clone)]
pub struct HttpMetrics {
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let durations: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            durations.clone(),
        );
        Self { durations }
    }

    /// A request to `route` answered `status` after `seconds`.
    pub fn observe(&self, method: &http::Method, route: Arc<str>, status: u16, seconds: f64) {
        self.durations
            .get_or_create(&RequestLabels {
                http_request_method: method_label(method),
                http_route: route,
                http_response_status_code: status,
            })
            .observe(seconds);
    }
}

/// The methods HTTP defines, as labels.
const METHODS: [(http::Method, &str); 9] = [
    (http::Method::GET, "GET"),
    (http::Method::HEAD, "HEAD"),
    (http::Method::POST, "POST"),
    (http::Method::PUT, "PUT"),
    (http::Method::PATCH, "PATCH"),
    (http::Method::DELETE, "DELETE"),
    (http::Method::OPTIONS, "OPTIONS"),
    (http::Method::CONNECT, "CONNECT"),
    (http::Method::TRACE, "TRACE"),
];

/// The method, or `_OTHER` for one HTTP does not define: a client cannot
/// add series by inventing methods.
fn method_label(method: &http::Method) -> &'static str {
    METHODS
        .iter()
        .find(|(known, _)| known == method)
        .map_or("_OTHER", |(_, name)| name)
}
