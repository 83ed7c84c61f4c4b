//! What makes each seed API a family of its own: its auth header, its
//! status table, its error body and its spelling of field paths. Handlers
//! name their family in their extractors' types and never authenticate or
//! map an error by hand: `Authed<F>` admits the caller, `Body<F, T>` and
//! `Params<F, T>` read the request, and `ApiError<F>` (from any service
//! error, by `?`) answers in the family's shape.

use std::marker::PhantomData;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::RestState;
use crate::domain::Caller;
use crate::error::{Error, FieldPath, FieldViolation};

/// One public API the gateway speaks.
pub trait Family: Sized + Send + Sync + 'static {
    /// The family's tag in `/openapi.json`.
    const TAG: &str;

    /// The name of its error body's schema in `/openapi.json`.
    const ERROR_SCHEMA: &str;

    /// The status of a request the domain refuses: a bad field, a bad page
    /// token, a forbidden transition.
    const INVALID: StatusCode;

    /// The status of a body that is not JSON at all.
    const MALFORMED: StatusCode = Self::INVALID;

    /// The status of a unique clash.
    const CLASH: StatusCode = StatusCode::CONFLICT;

    /// The key in this family's own header, and only there: a key sent in
    /// another family's header is no key at all.
    fn key(headers: &HeaderMap) -> Option<&str>;

    /// A field path as this family's callers spell it.
    fn field_name(path: &FieldPath) -> String;

    /// The error body; `input` is the request body, where the family
    /// quotes offending values from it.
    fn error_body(error: &Error, message: &str, input: Option<&Value>) -> Value;

    /// The status of a body the route cannot read as its JSON.
    fn unreadable_body(rejection: &JsonRejection) -> StatusCode {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            JsonRejection::JsonSyntaxError(_) => Self::MALFORMED,
            _ => Self::INVALID,
        }
    }

    /// The status of an error, for this family.
    fn status(error: &Error) -> StatusCode {
        match error {
            Error::InvalidArgument(_)
            | Error::InvalidPageToken(_)
            | Error::ForbiddenTransition(_) => Self::INVALID,
            Error::AlreadyExists { .. } => Self::CLASH,
            Error::Aborted(_) => StatusCode::CONFLICT,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::CursorExpired => StatusCode::GONE,
            Error::TooSlow => StatusCode::TOO_MANY_REQUESTS,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Each violation as `field: description`, the field in the family's
/// spelling: the message of families without a per-field error list.
pub fn violation_list<F: Family>(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", F::field_name(&v.field), v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A service error on its way to a family's caller.
pub struct ApiError<F> {
    error: Error,
    status: Option<StatusCode>,
    input: Option<Value>,
    family: PhantomData<F>,
}

impl<F: Family> ApiError<F> {
    /// Keeps the request body, so the error can quote offending values.
    #[must_use]
    pub fn with_input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// A body the route cannot read: the family's 4xx, never axum's
    /// plain-text default.
    fn unreadable(rejection: &JsonRejection) -> Self {
        let error =
            Error::InvalidArgument(vec![FieldViolation::new("body", rejection.body_text())]);
        Self {
            status: Some(F::unreadable_body(rejection)),
            ..Self::from(error)
        }
    }
}

impl<F: Family> From<Error> for ApiError<F> {
    fn from(error: Error) -> Self {
        Self {
            error,
            status: None,
            input: None,
            family: PhantomData,
        }
    }
}

impl<F: Family> IntoResponse for ApiError<F> {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| F::status(&self.error));
        let message = self.error.public_message();
        let body = F::error_body(&self.error, &message.text, self.input.as_ref());
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited { retry_after } = &self.error {
            // Whole seconds, rounded up: a client waiting that long is
            // admitted.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// The caller whose key the family's header carries.
pub struct Authed<F>(pub Caller, pub PhantomData<F>);

impl<F: Family> FromRequestParts<RestState> for Authed<F> {
    type Rejection = ApiError<F>;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &RestState,
    ) -> Result<Self, Self::Rejection> {
        let key = F::key(&parts.headers).ok_or(Error::Unauthenticated)?;
        let caller = state.authenticator.caller_for(key).await?;
        let caller = crate::api::freshness::seeing(&parts.headers, caller)?;
        crate::api::observe::record_caller(&caller);
        Ok(Self(caller, PhantomData))
    }
}

/// A JSON body read as `T`, or the family's error.
pub struct Body<F, T>(pub T, pub PhantomData<F>);

impl<F: Family, T: DeserializeOwned> FromRequest<RestState> for Body<F, T> {
    type Rejection = ApiError<F>;

    async fn from_request(request: Request, state: &RestState) -> Result<Self, Self::Rejection> {
        match axum::Json::<JsonObject<T>>::from_request(request, state).await {
            Ok(axum::Json(JsonObject(value))) => Ok(Self(value, PhantomData)),
            Err(rejection) => Err(ApiError::unreadable(&rejection)),
        }
    }
}

/// A body that must be a JSON object. serde's derived structs also read
/// a JSON array, field by field in order (`[null, null]` would be a
/// customer); every body here is an object, so anything else is refused
/// before `T` sees it.
struct JsonObject<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
    type Value = JsonObject<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(JsonObject)
    }
}

/// A query string read as `T`, or the family's error on `query`.
pub struct Params<F, T>(pub T, pub PhantomData<F>);

impl<F: Family, T: DeserializeOwned + Send> FromRequestParts<RestState> for Params<F, T> {
    type Rejection = ApiError<F>;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &RestState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value, PhantomData)),
            Err(rejection) => Err(query_error(&rejection).into()),
        }
    }
}

fn query_error(rejection: &QueryRejection) -> Error {
    Error::invalid("query", rejection.body_text())
}

/// For `#[serde(deserialize_with)]`: `Some(None)` for an explicit `null`,
/// `None` (with `#[serde(default)]`) when the field is absent.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// For `#[serde(deserialize_with)]`: an integer, also when JSON spells it
/// as a float with no fraction (`33.0`), as JSON Schema's `integer` allows.
pub fn integral<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let number: Option<serde_json::Number> = serde::Deserialize::deserialize(deserializer)?;
    number
        .map(|number| {
            number
                .as_i64()
                .or_else(|| {
                    number
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an integer")))
        })
        .transpose()
}

pub fn to_json(body: impl serde::Serialize) -> Value {
    serde_json::to_value(body).expect("error bodies serialise")
}

/// RFC 3339 with milliseconds and `Z`, as every family's examples show.
pub fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
