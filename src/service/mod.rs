//! The use cases: one function per operation, which every transport calls.
//!
//! A use case takes the caller and a parsed domain input and returns a
//! domain result. It owns the orchestration: which records to read and
//! lock, which domain rule to apply to them, what to write, and when to run
//! a transaction again. Rules stay in `domain`; rows stay in `store`; wire
//! formats stay in `api`.

mod customers;
mod entities;
mod import;
mod people;
mod users;
mod workspaces;

use std::future::Future;

pub use import::{ImportTally, Importer, Rejection};

use crate::error::{Error, Result, UniqueIndex};
use crate::store::Store;

/// Times a write transaction is run again after losing to a concurrent one.
const MAX_RETRIES: u32 = 3;

/// The service: Kith's use cases over one store.
#[derive(Clone)]
pub struct Service {
    store: Store,
}

impl Service {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Succeeds while the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }
}

/// Runs a write transaction, and runs it again (whole) when it lost to a
/// concurrent one: a deadlock or serialization failure (`Aborted`), or a
/// unique clash on one of `races`, the indexes on which a concurrent
/// creation of the same record shows (the next attempt then finds that
/// record). Any other error, and a clash the domain itself found, is final.
async fn retrying<T, F, Fut>(races: &[UniqueIndex], mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(error)
                if tries < MAX_RETRIES
                    && (matches!(error, Error::Aborted(_)) || error.is_clash_on(races)) =>
            {
                tries += 1;
                tracing::debug!(%error, tries, "running the transaction again");
            }
            result => return result,
        }
    }
}

/// `NotFound` for `resource` when a record is missing.
fn found<T>(record: Option<T>, resource: &'static str) -> Result<T> {
    record.ok_or(Error::NotFound { resource })
}
