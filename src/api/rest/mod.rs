//! The REST gateway: each seed API's own routes, bodies, auth header and
//! error shape, calling the same domain and store as the gRPC services.
//! One module per API family; this one holds what they share: the state,
//! authentication by the family's header, and the one table from service
//! errors to HTTP statuses and each family's error body.

mod flameup;
mod openapi;
mod rapidly;
mod schematic;
mod stigg;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::auth::{Authenticator, bearer_key, header_key};
use crate::domain::WorkspaceId;
use crate::error::{Error, FieldViolation};
use crate::store::Store;

/// Largest request body accepted, in bytes: a batch of 100 people with
/// generous traits fits many times over.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct RestState {
    store: Arc<dyn Store>,
    authenticator: Authenticator,
}

/// The gateway's routes; `authenticator` is the one the gRPC server uses, so
/// a key's rate limit counts its calls on both.
pub fn router(store: Arc<dyn Store>, authenticator: Authenticator) -> Router {
    let state = RestState {
        authenticator,
        store,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::document))
        .merge(flameup::routes())
        .merge(rapidly::routes())
        .merge(stigg::routes())
        .merge(schematic::routes())
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// 200 while the database answers, 503 otherwise.
async fn healthz(State(state): State<RestState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// A path or method no route takes: the family's own 404.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Family::of_path(uri.path()),
        Error::NotFound { resource: "route" },
    )
}

/// The public APIs the gateway speaks; each has its own auth header and
/// error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Seed 002: `Authorization: Bearer`, `{"error":{"code","message","details"}}`.
    Flameup,
    /// Seed 003: `Authorization: Bearer`, Polar's `{"error","detail"}`.
    Rapidly,
    /// Seed 000: `X-API-KEY`, `{"error":{"code","message"}}`.
    Stigg,
    /// Seed 001: `X-Schematic-Api-Key`, `{"error": "…"}`.
    Schematic,
}

impl Family {
    /// The key in this family's header, and only there: a key sent in
    /// another family's header is no key at all.
    fn key(self, headers: &HeaderMap) -> Option<&str> {
        match self {
            Self::Flameup | Self::Rapidly => bearer_key(headers),
            Self::Stigg => header_key(headers, "x-api-key"),
            Self::Schematic => header_key(headers, "x-schematic-api-key"),
        }
    }

    /// The family whose routes a path belongs to, for answers to requests
    /// no route takes.
    fn of_path(path: &str) -> Self {
        if path.starts_with("/api/customers") || path.starts_with("/v1/customers") {
            Self::Rapidly
        } else if path.starts_with("/api/v1-beta") {
            Self::Stigg
        } else if path.starts_with("/api/v1") {
            Self::Flameup
        } else {
            Self::Schematic
        }
    }

    /// The HTTP status of an error, for this family.
    fn status(self, error: &Error) -> StatusCode {
        match error {
            // Polar reports uniqueness clashes as validation errors.
            Error::AlreadyExists(_) if self == Self::Rapidly => StatusCode::UNPROCESSABLE_ENTITY,
            // Stigg and Schematic answer every invalid request with 400.
            Error::InvalidArgument(_)
            | Error::InvalidPageToken(_)
            | Error::ForbiddenTransition(_)
                if matches!(self, Self::Stigg | Self::Schematic) =>
            {
                StatusCode::BAD_REQUEST
            }
            Error::InvalidArgument(_) | Error::InvalidPageToken(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::ForbiddenTransition(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::AlreadyExists(_) | Error::Aborted(_) => StatusCode::CONFLICT,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The family's error body; `input` is the request body, from which
    /// Rapidly echoes each offending value.
    fn body(
        self,
        error: &Error,
        message: &str,
        input: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        match self {
            Self::Schematic => {
                let message = if error.violations().is_empty() {
                    message.to_owned()
                } else {
                    error
                        .violations()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                to_json(schematic::ErrorBody { error: message })
            }
            Self::Stigg => {
                let code = match error {
                    Error::InvalidArgument(_)
                    | Error::InvalidPageToken(_)
                    | Error::ForbiddenTransition(_) => "BAD_REQUEST",
                    Error::AlreadyExists(_) | Error::Aborted(_) => "CONFLICT",
                    Error::NotFound { .. } => "NOT_FOUND",
                    Error::Unauthenticated => "UNAUTHENTICATED",
                    Error::RateLimited { .. } => "TOO_MANY_REQUESTS",
                    Error::Unavailable(_) => "SERVICE_UNAVAILABLE",
                    Error::Internal(_) => "INTERNAL_SERVER_ERROR",
                };
                let message = match error {
                    Error::Unauthenticated => "Invalid or missing API key".to_owned(),
                    _ if error.violations().is_empty() => message.to_owned(),
                    _ => error
                        .violations()
                        .iter()
                        .map(|v| format!("{}: {}", stigg::field_name(&v.field), v.description))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                to_json(stigg::ErrorBody::new(code, message))
            }
            Self::Rapidly => match error {
                Error::InvalidArgument(_)
                | Error::InvalidPageToken(_)
                | Error::ForbiddenTransition(_)
                | Error::AlreadyExists(_) => {
                    let detail: Vec<_> = error
                        .violations()
                        .iter()
                        .map(|v| {
                            let loc = rapidly::loc(&v.field);
                            let value = input.and_then(|body| {
                                loc.iter().skip(1).try_fold(body, |at, key| at.get(key.as_str()?))
                            });
                            json!({ "type": "value_error", "loc": loc, "msg": v.description, "input": value })
                        })
                        .collect();
                    to_json(rapidly::ErrorBody::new(
                        "RequestValidationError",
                        json!(detail),
                    ))
                }
                Error::NotFound { .. } => to_json(rapidly::ErrorBody::new(
                    "ResourceNotFound",
                    json!("Not found"),
                )),
                Error::Unauthenticated => {
                    to_json(rapidly::ErrorBody::new("Unauthorized", json!(message)))
                }
                Error::Aborted(_) => to_json(rapidly::ErrorBody::new("Conflict", json!(message))),
                Error::RateLimited { .. } => {
                    to_json(rapidly::ErrorBody::new("TooManyRequests", json!(message)))
                }
                Error::Unavailable(_) => to_json(rapidly::ErrorBody::new(
                    "ServiceUnavailable",
                    json!(message),
                )),
                Error::Internal(_) => to_json(rapidly::ErrorBody::new(
                    "InternalServerError",
                    json!(message),
                )),
            },
            Self::Flameup => {
                let code = match error {
                    Error::InvalidArgument(_)
                    | Error::InvalidPageToken(_)
                    | Error::ForbiddenTransition(_) => "validation_error",
                    Error::AlreadyExists(_) => "already_exists",
                    Error::Aborted(_) => "conflict",
                    Error::NotFound { .. } => "not_found",
                    Error::Unauthenticated => "unauthorized",
                    Error::RateLimited { .. } => "rate_limited",
                    Error::Unavailable(_) => "service_unavailable",
                    Error::Internal(_) => "internal_error",
                };
                let fields: serde_json::Map<String, serde_json::Value> = error
                    .violations()
                    .iter()
                    .map(|v| (flameup::field_name(&v.field), json!(v.description)))
                    .collect();
                let details = (!fields.is_empty()).then(|| json!({ "fields": fields }));
                to_json(flameup::ErrorBody::new(code, message, details))
            }
        }
    }
}

/// A service error on its way to a family's caller.
pub struct ApiError {
    family: Family,
    error: Error,
    status: Option<StatusCode>,
    input: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(family: Family, error: Error) -> Self {
        Self {
            family,
            error,
            status: None,
            input: None,
        }
    }

    /// Keeps the request body, so errors can quote the offending values.
    #[must_use]
    pub fn with_input(mut self, input: serde_json::Value) -> Self {
        self.input = Some(input);
        self
    }

    /// A body that is not the JSON the route expects: the family's 4xx,
    /// never axum's plain-text default.
    fn bad_body(family: Family, rejection: &JsonRejection) -> Self {
        let status = match (rejection, family) {
            (JsonRejection::MissingJsonContentType(_), _) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            (JsonRejection::BytesRejection(_), _) => StatusCode::PAYLOAD_TOO_LARGE,
            // Stigg and Schematic answer any bad body with 400, Polar with 422.
            (_, Family::Stigg | Family::Schematic) => StatusCode::BAD_REQUEST,
            (_, Family::Rapidly) => StatusCode::UNPROCESSABLE_ENTITY,
            (JsonRejection::JsonSyntaxError(_), Family::Flameup) => StatusCode::BAD_REQUEST,
            (_, Family::Flameup) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let error =
            Error::InvalidArgument(vec![FieldViolation::new("body", rejection.body_text())]);
        Self {
            family,
            error,
            status: Some(status),
            input: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .status
            .unwrap_or_else(|| self.family.status(&self.error));
        let message = self.error.public_message();
        let body = self
            .family
            .body(&self.error, &message.text, self.input.as_ref());
        let mut response = (status, Json(body)).into_response();
        if let Error::RateLimited { retry_after } = &self.error {
            // Whole seconds, rounded up: a client waiting that long is admitted.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// The workspace the family's header opens.
async fn authenticate(
    state: &RestState,
    family: Family,
    headers: &HeaderMap,
) -> Result<WorkspaceId, ApiError> {
    let key = family
        .key(headers)
        .ok_or_else(|| ApiError::new(family, Error::Unauthenticated))?;
    state
        .authenticator
        .workspace_for(key)
        .await
        .map_err(|error| ApiError::new(family, error))
}

/// The body as `T`, or the family's error for a malformed one.
fn body<T>(family: Family, body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::bad_body(family, &rejection))
}

/// For `#[serde(deserialize_with)]`: `Some(None)` for an explicit `null`,
/// `None` (with `#[serde(default)]`) when the field is absent.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

fn to_json(body: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(body).expect("error bodies serialise")
}

/// RFC 3339 with milliseconds and `Z`, as every family's examples show.
fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
