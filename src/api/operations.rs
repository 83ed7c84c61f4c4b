//! What an operator's tools call, without a key: Prometheus' scrape
//! (`/metrics`) and the orchestrator's probes (`/livez`, `/readyz`). Served
//! on the REST listener and, with `--metrics-addr`, on a listener of their
//! own that stays up while the server drains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{self, Metrics};

/// Whether the server takes calls: the database answered its last check
/// and the server is not draining. gRPC health says the same. A server may
/// be ready and degraded: a read replica out of rotation, its reads served
/// by the primary.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    degraded: Arc<Mutex<Option<String>>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// What is degraded, or `None` once nothing is.
    pub fn set_degraded(&self, why: Option<String>) {
        *self.degraded.lock().expect("readiness lock") = why;
    }

    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().expect("readiness lock").clone()
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

/// `ok`, `degraded: …` (still ready: calls are served) or `not ready`.
fn ready(readiness: &Readiness) -> (StatusCode, String) {
    match (readiness.is_ready(), readiness.degraded()) {
        (true, None) => (StatusCode::OK, "ok".to_owned()),
        (true, Some(why)) => (StatusCode::OK, format!("degraded: {why}")),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned()),
    }
}

fn exposition(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}
