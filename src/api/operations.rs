//! What an operator's tools call, without a key: Prometheus' scrape
//! (`/metrics`) and the orchestrator's probes (`/livez`, `/readyz`). Served
//! on the REST listener and, with `--metrics-addr`, on a listener of their
//! own that stays up while the server drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{self, Metrics};

/// Whether the server takes calls: the database answered its last check
/// and the server is not draining. gRPC health says the same.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the routes read. The default keeps no metrics and is not ready.
#[derive(Clone, Default)]
pub struct Operations {
    pub metrics: Option<Metrics>,
    pub readiness: Readiness,
}

/// `/metrics`, `/livez` and `/readyz`, for any router's state.
pub fn routes<S: Clone + Send + Sync + 'static>(operations: &Operations) -> Router<S> {
    let readiness = operations.readiness.clone();
    let router = Router::new().route("/livez", get(|| async { "ok" })).route(
        "/readyz",
        get(move || std::future::ready(ready(&readiness))),
    );
    match operations.metrics.clone() {
        Some(metrics) => router.route(
            "/metrics",
            get(move || std::future::ready(exposition(&metrics))),
        ),
        None => router,
    }
}

fn ready(readiness: &Readiness) -> (StatusCode, &'static str) {
    if readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

fn exposition(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}
