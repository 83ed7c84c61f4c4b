//! The one error type of the service. Domain rules, the store and the auth
//! layer all speak it; each transport maps it to its own wire shape in one
//! table (`api::grpc::status`, `api::rest::family`).

mod field_path;

use std::fmt;

pub use field_path::{FieldPath, Segment, lower_camel};

/// A problem with one request field, named by its path relative to the
/// request's resource (`metadata.plan`, `billing_address.country`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: FieldPath,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<FieldPath>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation, seen from an enclosing message: `country` inside
    /// `billing_address` becomes `billing_address.country`.
    #[must_use]
    pub fn within(mut self, parent: &FieldPath) -> Self {
        self.field = self.field.within(parent);
        self
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fields whose values break a rule on their own.
    #[error("invalid request: {}", list(.0))]
    InvalidArgument(Vec<FieldViolation>),

    /// Valid values that the record's current state does not allow.
    #[error("change not allowed: {}", list(.0))]
    ForbiddenTransition(Vec<FieldViolation>),

    /// A value that must be unique in the workspace is taken. `index` is
    /// set when the database's unique index said so: the clash may be a
    /// race that a retried transaction resolves. Without it the domain
    /// found the clash in what it read, and that is final.
    #[error("{violation}")]
    AlreadyExists {
        violation: FieldViolation,
        index: Option<UniqueIndex>,
    },

    /// No such record in the caller's workspace.
    #[error("{resource} not found")]
    NotFound { resource: &'static str },

    #[error("invalid page token: {0}")]
    InvalidPageToken(&'static str),

    /// A change cursor from before what the log still keeps; the caller
    /// lists again and watches from the new cursor.
    #[error("the change cursor has expired: list again and watch from the list's cursor")]
    CursorExpired,

    /// A stream's reader fell too far behind for the server's buffer; it
    /// may resume from the last cursor it received.
    #[error("the stream was read too slowly; resume from the last cursor received")]
    TooSlow,

    /// The server is stopping; a stream's reader resumes from its last
    /// cursor on another replica or once it is back.
    #[error("the server is shutting down; resume from the last cursor received")]
    ShuttingDown,

    #[error("missing, unknown or revoked API key")]
    Unauthenticated,

    /// The key's calls exceed the configured rate; nothing was done.
    #[error("rate limit exceeded; retry in {} ms", .retry_after.as_millis())]
    RateLimited { retry_after: std::time::Duration },

    /// A concurrent transaction got in the way; the caller may retry.
    #[error("the change collided with a concurrent one; retry")]
    Aborted(#[source] BoxError),

    /// The database cannot be reached; the caller may retry.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),

    /// Anything else: a bug or corrupt data. Never shown to callers.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

fn list(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One bad field: the request is invalid for that reason alone.
impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl Error {
    pub fn invalid(field: impl Into<FieldPath>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A clash the domain found in what it read: final, never retried.
    pub fn already_exists(field: impl Into<FieldPath>, description: impl Into<String>) -> Self {
        Self::AlreadyExists {
            violation: FieldViolation::new(field, description),
            index: None,
        }
    }

    /// Whether the database refused the write on one of these unique
    /// indexes, so that running the transaction again may succeed.
    pub fn is_clash_on(&self, indexes: &[UniqueIndex]) -> bool {
        matches!(self, Self::AlreadyExists { index: Some(index), .. } if indexes.contains(index))
    }

    /// The same error with every field path seen from `parent`.
    #[must_use]
    pub fn within(self, parent: &FieldPath) -> Self {
        self.map_paths(|path| path.within(parent))
    }

    /// The same error with every field path changed by `change`.
    #[must_use]
    pub fn map_paths(self, change: impl Fn(FieldPath) -> FieldPath) -> Self {
        let map = |violations: Vec<FieldViolation>| {
            violations
                .into_iter()
                .map(|v| FieldViolation::new(change(v.field), v.description))
                .collect()
        };
        match self {
            Self::InvalidArgument(v) => Self::InvalidArgument(map(v)),
            Self::ForbiddenTransition(v) => Self::ForbiddenTransition(map(v)),
            Self::AlreadyExists { violation, index } => Self::AlreadyExists {
                violation: FieldViolation::new(change(violation.field), violation.description),
                index,
            },
            other => other,
        }
    }

    pub fn internal(error: impl Into<BoxError>) -> Self {
        Self::Internal(error.into())
    }

    /// Merges violations found while reading the wire format into the
    /// result of the domain's own checks, so a caller sees them all at once.
    pub fn with_wire_violations<T>(wire: Vec<FieldViolation>, checked: Result<T>) -> Result<T> {
        match (wire.is_empty(), checked) {
            (true, checked) => checked,
            (false, Err(Self::InvalidArgument(mut more))) => {
                let mut all = wire;
                all.append(&mut more);
                Err(Self::InvalidArgument(all))
            }
            (false, _) => Err(Self::InvalidArgument(wire)),
        }
    }

    /// What a caller may be told, for any transport. Internal errors are
    /// logged here with the request's id (its span's), which the message
    /// carries; their cause is never shown. Outages are logged as warnings.
    pub fn public_message(&self) -> PublicMessage {
        match self {
            Self::Internal(source) => {
                let request_id = crate::api::observe::current_request_id()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                // Display, not Debug: a database error's debug form carries
                // its detail, which quotes the row's values (an email, say).
                tracing::error!(%request_id, error = %source, "internal error");
                PublicMessage {
                    text: format!("internal error; request id {request_id}"),
                    request_id: Some(request_id),
                }
            }
            Self::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                PublicMessage::of(self)
            }
            Self::Aborted(source) => {
                tracing::info!(error = %source, "transaction aborted by a concurrent one");
                PublicMessage::of(self)
            }
            other => PublicMessage::of(other),
        }
    }

    /// The field violations the error carries, if any.
    pub fn violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidArgument(v) | Self::ForbiddenTransition(v) => v,
            Self::AlreadyExists { violation, .. } => std::slice::from_ref(violation),
            _ => &[],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The unique indexes a write can run into, as the database names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueIndex {
    WorkspaceName,
    CustomerEmail,
    CustomerExternalId,
    CompanyKey,
    UserKey,
    PersonEmail,
    PersonExternalId,
}

impl UniqueIndex {
    /// The field the index protects, and what to tell the caller.
    pub fn violation(self) -> FieldViolation {
        let (field, message) = match self {
            Self::WorkspaceName => ("name", "A workspace with this name already exists."),
            Self::CustomerEmail => (
                "email",
                "A customer with this email address already exists.",
            ),
            Self::CustomerExternalId => (
                "external_id",
                "A customer with this external ID already exists.",
            ),
            Self::CompanyKey => ("keys", "One of these keys belongs to another company."),
            Self::UserKey => ("keys", "One of these keys belongs to another user."),
            Self::PersonEmail => ("email", "A person with this email address already exists."),
            Self::PersonExternalId => (
                "external_id",
                "A person with this external ID already exists.",
            ),
        };
        FieldViolation::new(field, message)
    }
}

/// An error as a caller sees it.
pub struct PublicMessage {
    pub text: String,
    /// Set for internal errors: the id under which the cause was logged.
    pub request_id: Option<String>,
}

impl PublicMessage {
    fn of(error: &Error) -> Self {
        Self {
            text: error.to_string(),
            request_id: None,
        }
    }
}

/// Collects every violation of one request so they are reported together.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value of `result`, or records its violation.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        result.map_err(|v| self.0.push(v)).ok()
    }

    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    pub fn extend(&mut self, violations: impl IntoIterator<Item = FieldViolation>) {
        self.0.extend(violations);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }

    /// `Ok(value)` when nothing was recorded, else the error `kind` builds.
    pub fn finish<T>(self, value: T, kind: fn(Vec<FieldViolation>) -> Error) -> Result<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(kind(self.0))
        }
    }
}
