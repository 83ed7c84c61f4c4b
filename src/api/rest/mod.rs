//! The REST gateway. Today it answers `GET /healthz`; the seed APIs' routes
//! join it as their families are built.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::store::Store;

pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(store)
}

/// 200 while the database answers, 503 otherwise.
async fn healthz(State(store): State<Arc<dyn Store>>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
