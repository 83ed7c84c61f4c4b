//! The REST gateway: each seed API's own routes, bodies, auth header and
//! error shape, calling the same service as the gRPC transport. One module
//! per API family; `family` holds what makes a family (its header, status
//! table, error body and field spelling) and the extractors handlers use.
//!
//! Routes are registered with their OpenAPI entries (utoipa-axum), so a
//! served route cannot be missing from `/openapi.json`.

mod canonical;
mod family;
mod flameup;
mod openapi;
mod rapidly;
mod schemas;
mod schematic;
mod stigg;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use canonical::Gateway;
pub use family::{ApiError, Family};

use crate::api::observe::{HttpMetricsLayer, RequestSpans, Transport};
use crate::api::operations::{self, Operations};
use crate::api::{console, freshness};
use crate::auth::Authenticator;
use crate::error::Error;
use crate::service::Service;

/// Largest request body accepted, in bytes: a batch of 100 people with
/// generous traits fits many times over.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct RestState {
    service: Service,
    authenticator: Authenticator,
    gateway: Gateway,
}

/// The gateway's routes: the seed families', under `/kith` the contract's
/// own, and the web console under `/console`. `authenticator` is the one the
/// gRPC server uses, so a key's rate limit counts its calls on both;
/// `secure` says whether the gateway serves TLS (the console's cookies are
/// then `Secure`).
pub fn router(
    service: Service,
    authenticator: Authenticator,
    ops: &Operations,
    secure: bool,
) -> Router {
    let console = console::routes(service.clone(), authenticator.clone(), secure);
    let gateway = Gateway::new(&service, &authenticator);
    let state = RestState {
        service,
        authenticator,
        gateway,
    };
    let (routes, api) = OpenApiRouter::new()
        .merge(rapidly::routes())
        .merge(stigg::routes())
        .merge(schematic::routes())
        .merge(flameup::routes())
        .split_for_parts();
    let document = openapi::with_contract_routes(openapi::document(api), state.gateway.document());
    let routes = routes
        .route("/healthz", get(healthz))
        .merge(operations::routes(ops))
        .route("/kith/{*path}", axum::routing::any(canonical::serve))
        .route(
            "/openapi.json",
            get(move || std::future::ready(axum::Json(document.clone()))),
        )
        .fallback(no_route)
        .with_state(state)
        .merge(console)
        .layer(axum::middleware::from_fn(freshness::answering_cursors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Inside the router, so that both know the route template.
        .layer(HttpMetricsLayer(ops.metrics.clone()))
        .layer(RequestSpans(Transport::Rest));
    // Paths are matched without a trailing slash (Polar's SDKs send
    // `/v1/customers/`), so each resource has one route and one entry in
    // the document. The rewrite must come before routing, hence the outer
    // router.
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(without_trailing_slash)
            .service(routes),
    )
}

/// The request with its path's trailing slash removed (`/` stays).
fn without_trailing_slash(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let path_and_query = match uri.query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = path_and_query.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// 200 while the database answers, 503 otherwise.
async fn healthz(State(state): State<RestState>) -> (StatusCode, &'static str) {
    match state.service.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// A path or method no route takes: the 404 of the family whose paths it
/// resembles.
async fn no_route(uri: Uri) -> Response {
    let error = Error::NotFound { resource: "route" };
    let path = uri.path();
    if path.starts_with("/api/customers") || path.starts_with("/v1/customers") {
        ApiError::<rapidly::Rapidly>::from(error).into_response()
    } else if path.starts_with("/api/v1-beta") {
        ApiError::<stigg::Stigg>::from(error).into_response()
    } else if path.starts_with("/api/v1") {
        ApiError::<flameup::Flameup>::from(error).into_response()
    } else {
        ApiError::<schematic::Schematic>::from(error).into_response()
    }
}
