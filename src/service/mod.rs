//! The use cases: one function per operation, which every transport calls.
//!
//! A use case takes the caller and a parsed domain input and returns a
//! domain result. It owns the orchestration: which records to read and
//! lock, which domain rule to apply to them, what to write, and when to run
//! a transaction again. Rules stay in `domain`; rows stay in `store`; wire
//! formats stay in `api`.

mod changes;
mod consistency;
mod customers;
mod delivery;
mod entities;
mod import;
mod people;
mod users;
mod webhooks;
mod workspaces;

use std::future::Future;

pub use changes::{ChangeLogConfig, ChangePage, WatchStream};
pub use consistency::noting_commits;
pub use delivery::{Outgoing, SEND_TIMEOUT, WebhookSender};
pub use import::{ImportTally, Importer, Rejection};
pub use webhooks::{ReplayFrom, WebhookConfig};

use crate::domain::Caller;
use crate::domain::change::ChangeCursor;
use crate::domain::customer::{Customer, CustomerLookup};
use crate::error::{Error, Result, UniqueIndex};
use crate::metrics::ServiceMetrics;
use crate::store::{Store, Transaction};

/// Times a write transaction is run again after losing to a concurrent one.
/// Under SERIALIZABLE (CockroachDB, YugabyteDB, or PostgreSQL set so) every
/// two writes in one workspace conflict on its change counter, so a busy
/// workspace may lose a few times in a row.
const MAX_RETRIES: u32 = 30;

/// The longest wait before a run after a serialization failure; the first
/// waits up to 1 ms, each next up to twice as long (full jitter), so the
/// writers that collided do not collide again in step.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// The service: Kith's use cases over one store.
#[derive(Clone)]
pub struct Service {
    store: Store,
    log: ChangeLogConfig,
    changed: changes::ChangeSignal,
    webhooks: WebhookConfig,
    /// Wakes this process's webhook dispatcher and deliverers when a
    /// caller changes an endpoint, so a new, re-enabled, replayed or moved
    /// one is taken up at once.
    webhooks_changed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Counted always; shown when a server registers them.
    metrics: ServiceMetrics,
}

impl Service {
    /// The use cases over `store`, its change log kept and followed as
    /// the defaults say.
    pub fn new(store: Store) -> Self {
        Self::with_change_log(store, ChangeLogConfig::default())
    }

    pub fn with_change_log(store: Store, log: ChangeLogConfig) -> Self {
        Self {
            store,
            log,
            changed: changes::ChangeSignal::new(),
            webhooks: WebhookConfig::default(),
            webhooks_changed: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            metrics: ServiceMetrics::default(),
        }
    }

    /// The service, checking and delivering webhooks this way.
    pub fn with_webhooks(self, webhooks: WebhookConfig) -> Self {
        Self { webhooks, ..self }
    }

    /// The service, counting its writes and watches into `metrics`.
    pub fn counting_into(self, metrics: ServiceMetrics) -> Self {
        Self { metrics, ..self }
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
                // A clash's winner has committed: look again at once. A
                // serialization failure's may still be running.
                if matches!(error, Error::Aborted(_)) {
                    let ceiling = std::time::Duration::from_millis(1 << tries.min(7));
                    let wait = ceiling.min(MAX_BACKOFF).mul_f64(rand::random::<f64>());
                    tokio::time::sleep(wait).await;
                }
            }
            result => return result,
        }
    }
}

/// What a List returns: its items, and the change cursor of the snapshot
/// they were read in, to watch from (list then watch).
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: T,
    pub change_cursor: ChangeCursor,
}

/// `NotFound` for `resource` when a record is missing.
fn found<T>(record: Option<T>, resource: &'static str) -> Result<T> {
    record.ok_or(Error::NotFound { resource })
}

/// The live customer `lookup` names in the caller's workspace, locked
/// until the transaction ends; not found otherwise.
async fn lock_live_customer(
    tx: &mut Transaction,
    caller: &Caller,
    lookup: &CustomerLookup,
) -> Result<Customer> {
    found(
        tx.lock_customer(caller.workspace, lookup).await?,
        "customer",
    )
}
