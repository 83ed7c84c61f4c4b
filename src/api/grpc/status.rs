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
            Error::AlreadyExists { .. } => (Code::AlreadyExists, ErrorReason::AlreadyExists),
            Error::NotFound { .. } => (Code::NotFound, ErrorReason::NotFound),
            Error::CursorExpired => (Code::OutOfRange, ErrorReason::CursorExpired),
            Error::TooSlow => (Code::ResourceExhausted, ErrorReason::ConsumerTooSlow),
            Error::ShuttingDown => (Code::Unavailable, ErrorReason::ShuttingDown),
            Error::Unauthenticated => (Code::Unauthenticated, ErrorReason::Unauthenticated),
            Error::RateLimited { .. } => (Code::ResourceExhausted, ErrorReason::RateLimited),
            Error::Aborted(_) => (Code::Aborted, ErrorReason::ConcurrentChange),
            Error::Unavailable(_) => (Code::Unavailable, ErrorReason::StoreUnavailable),
            Error::Internal(_) => (Code::Internal, ErrorReason::Internal),
        };

        let message = error.public_message();
        let mut metadata = HashMap::new();
        match &error {
            Error::NotFound { resource } => {
                metadata.insert("resource".to_owned(), (*resource).to_owned());
            }
            Error::AlreadyExists { violation, .. } => {
                metadata.insert("field".to_owned(), violation.field.to_string());
            }
            _ => {}
        }
        if let Some(request_id) = message.request_id {
            metadata.insert("request_id".to_owned(), request_id);
        }

        let mut details = ErrorDetails::new();
        details.set_error_info(reason.as_str_name(), DOMAIN, metadata);
        match &error {
            Error::InvalidPageToken(why) => {
                details.add_bad_request_violation("page_token", *why);
            }
            Error::RateLimited { retry_after } => {
                details.set_retry_info(Some(*retry_after));
            }
            _ => {}
        }
        for violation in error.violations() {
            details.add_bad_request_violation(violation.field.to_string(), &violation.description);
        }
        Status::with_error_details(code, message.text, details)
    }
}
