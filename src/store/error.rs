//! Database errors as the service's: unique clashes name their index (and
//! so their field), concurrency failures are retryable, lost connections are
//! outages, and everything else is internal.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::error::{Error, UniqueIndex};

/// Each unique index, known by the table and column in the database's
/// message: SQLite names `table.column`, PostgreSQL the index, whose name
/// starts with its table and holds its column.
const UNIQUE_INDEXES: [(&str, &str, UniqueIndex); 7] = [
    ("user_keys", "user_keys", UniqueIndex::UserKey),
    ("customer_keys", "customer_keys", UniqueIndex::CompanyKey),
    ("customers", "email_key", UniqueIndex::CustomerEmail),
    ("customers", "external_id", UniqueIndex::CustomerExternalId),
    ("people", "email_key", UniqueIndex::PersonEmail),
    ("people", "external_id", UniqueIndex::PersonExternalId),
    ("workspaces", "name", UniqueIndex::WorkspaceName),
];

/// SQLSTATEs of a transaction that lost to a concurrent one and may run
/// again: serialization failure and deadlock.
const RETRYABLE_STATES: [&str; 2] = ["40001", "40P01"];

/// SQLite's busy and locked codes (with their extended forms): another
/// process held the file past the busy timeout.
const SQLITE_BUSY_CODES: [&str; 5] = ["5", "6", "261", "262", "517"];

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(db) => from_database(db),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(error)),
            other => Error::internal(other),
        }
    }
}

fn from_database(db: Box<dyn DatabaseError>) -> Error {
    if db.kind() == ErrorKind::UniqueViolation {
        let source = db.constraint().unwrap_or_else(|| db.message());
        return match unique_index(source) {
            Some(index) => Error::AlreadyExists {
                violation: index.violation(),
                index: Some(index),
            },
            None => Error::internal(sqlx::Error::Database(db)),
        };
    }
    let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
    if RETRYABLE_STATES.contains(&code.as_str()) {
        Error::Aborted(Box::new(sqlx::Error::Database(db)))
    } else if SQLITE_BUSY_CODES.contains(&code.as_str())
        // Connection lost, or the server shutting down.
        || code.starts_with("08")
        || code.starts_with("57P")
    {
        Error::Unavailable(Box::new(sqlx::Error::Database(db)))
    } else {
        Error::internal(sqlx::Error::Database(db))
    }
}

fn unique_index(source: &str) -> Option<UniqueIndex> {
    UNIQUE_INDEXES
        .iter()
        .find(|(table, column, _)| source.contains(table) && source.contains(column))
        .map(|(_, _, index)| *index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_name_their_unique_indexes() {
        assert_eq!(
            unique_index("UNIQUE constraint failed: customers.workspace_id, customers.email_key"),
            Some(UniqueIndex::CustomerEmail)
        );
        assert_eq!(
            unique_index("customers_external_id_live"),
            Some(UniqueIndex::CustomerExternalId)
        );
        assert_eq!(unique_index("user_keys_unique"), Some(UniqueIndex::UserKey));
        assert_eq!(
            unique_index("people_email_key_unique"),
            Some(UniqueIndex::PersonEmail)
        );
        assert_eq!(unique_index("something_else"), None);
    }
}
