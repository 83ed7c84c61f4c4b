//! The one table from service errors to gRPC statuses: a code, a
//! `google.rpc.ErrorInfo` with a stable reason, and a `google.rpc.BadRequest`
//! naming every offending field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::pb::kith::v1::ErrorReason;

const DOMAIN: &str = "kith";

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let (code, reason) = match &error {
            Error::InvalidArgument(_) => (Code::InvalidArgument, ErrorReason::InvalidField),
            Error::InvalidPageToken(_) => (Code::InvalidArgument, ErrorReason::InvalidPageToken),
            Error::ForbiddenTransition(_) => {
                (Code::FailedPrecondition, ErrorReason::ForbiddenTransition)
            }
            Error::AlreadyExists(_) => (Code::AlreadyExists, ErrorReason::AlreadyExists),
            Error::NotFound { .. } => (Code::NotFound, ErrorReason::NotFound),
            Error::Unauthenticated => (Code::Unauthenticated, ErrorReason::Unauthenticated),
            Error::Aborted(_) => (Code::Aborted, ErrorReason::ConcurrentChange),
            Error::Unavailable(_) => (Code::Unavailable, ErrorReason::StoreUnavailable),
            Error::Internal(_) => (Code::Internal, ErrorReason::Internal),
        };

        let mut metadata = HashMap::new();
        let mut message = error.to_string();
        match &error {
            Error::NotFound { resource } => {
                metadata.insert("resource".to_owned(), (*resource).to_owned());
            }
            Error::AlreadyExists(violation) => {
                metadata.insert("field".to_owned(), violation.field.clone());
            }
            Error::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
            }
            Error::Aborted(source) => {
                tracing::info!(error = %source, "transaction aborted by a concurrent one");
            }
            Error::Internal(source) => {
                let request_id = uuid::Uuid::new_v4().to_string();
                tracing::error!(%request_id, error = ?source, "internal error");
                message = format!("internal error; request id {request_id}");
                metadata.insert("request_id".to_owned(), request_id);
            }
            _ => {}
        }

        let mut details = ErrorDetails::new();
        details.set_error_info(reason.as_str_name(), DOMAIN, metadata);
        if let Error::InvalidPageToken(why) = &error {
            details.add_bad_request_violation("page_token", *why);
        }
        for violation in error.violations() {
            details.add_bad_request_violation(&violation.field, &violation.description);
        }
        Status::with_error_details(code, message, details)
    }
}
