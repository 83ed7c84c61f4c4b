//! The change log: every write records its changes here, in its own
//! transaction, and readers follow them (`list_changes`, `watch`).
//!
//! A write's changes are numbered by its workspace's counter row, updated
//! last in the transaction, so numbers commit in order and without gaps
//! (see `Transaction::append_changes`). Watchers wake on a signal: from this
//! process at once, from other replicas through the database's
//! notifications; polling is the backstop, so no wake-up is ever needed for
//! correctness.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use uuid::Uuid;

use super::Service;
use crate::domain::change::{
    Change, ChangeBatchSize, ChangeCursor, ChangeFilter, ChangeKind, ChangeOperation, LoggedChange,
};
use crate::domain::customer::{CustomerDetail, CustomerLookup, ExternalId};
use crate::domain::entity::{Entity, EntityType};
use crate::domain::person::Person;
use crate::domain::user::{Company, EXTERNAL_ID_KEY, MembershipDetail, UserDetail};
use crate::domain::workspace::WorkspaceId;
use crate::domain::{Caller, now};
use crate::error::{Error, Result};
use crate::pb::records;
use crate::store::{Session, Transaction};

/// How the log is kept and followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLogConfig {
    /// Changes older than this are pruned.
    pub retention: Duration,
    /// How often the pruner looks for old changes.
    pub prune_every: Duration,
    /// How often a watcher looks for changes without a wake-up.
    pub poll_every: Duration,
    /// The longest a watcher goes without a message while idle.
    pub checkpoint_every: Duration,
    /// How long a watcher waits for a reader that does not read before it
    /// gives up on it (`TooSlow`).
    pub stall_timeout: Duration,
}

impl Default for ChangeLogConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(60),
            poll_every: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Messages a watcher may queue for its reader before it waits on it.
const WATCH_BUFFER: usize = 8;
/// Changes deleted per statement when pruning.
const PRUNE_SLICE: usize = 10_000;

/// Wakes the watchers of this process when changes commit, and ends them
/// when the process stops.
#[derive(Clone)]
pub(super) struct ChangeSignal(Arc<watch::Sender<Wakeups>>);

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Wakeups {
    commits: u64,
    pub(super) closing: bool,
}

impl ChangeSignal {
    pub(super) fn new() -> Self {
        Self(Arc::new(watch::channel(Wakeups::default()).0))
    }

    fn raise(&self) {
        self.0
            .send_modify(|wakeups| wakeups.commits = wakeups.commits.wrapping_add(1));
    }

    fn close(&self) {
        self.0.send_modify(|wakeups| wakeups.closing = true);
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Wakeups> {
        self.0.subscribe()
    }
}

/// The changes a write makes.
///
/// Most records are rendered as they are recorded. Customer rows and users
/// are rendered when the write ends, as they then stand: a membership shows
/// in both its customer's members and its user's memberships, a user's name
/// and keys in each of its memberships as a member, and a customer row is
/// two records (the customer with its members, and the company of seed
/// 001). So every record a write changed is logged once, as committed.
#[derive(Debug, Default)]
pub(super) struct Changes {
    customers: BTreeMap<Uuid, RowChange<(CustomerDetail, Company)>>,
    users: BTreeMap<Uuid, RowChange<UserDetail>>,
    records: Vec<Change>,
}

/// What a write did to one row rendered at its end.
#[derive(Debug)]
enum RowChange<Last> {
    Created,
    Updated,
    /// Deleted, with what it last showed.
    Deleted(Box<Last>),
}

impl<Last> RowChange<Last> {
    fn of(operation: ChangeOperation) -> Self {
        match operation {
            ChangeOperation::Created => Self::Created,
            _ => Self::Updated,
        }
    }

    fn record(rows: &mut BTreeMap<Uuid, Self>, id: Uuid, operation: ChangeOperation) {
        // A creation or a deletion already recorded says more.
        rows.entry(id).or_insert(Self::of(operation));
    }

    fn operation(&self) -> ChangeOperation {
        match self {
            Self::Created => ChangeOperation::Created,
            Self::Updated => ChangeOperation::Updated,
            Self::Deleted(_) => ChangeOperation::Deleted,
        }
    }
}

impl Changes {
    /// Records that a customer row was created or updated, or that what
    /// its records show (its members) changed.
    pub(super) fn customer(&mut self, operation: ChangeOperation, id: Uuid) {
        RowChange::record(&mut self.customers, id, operation);
    }

    /// Records that a customer row was deleted, as it last stood.
    pub(super) fn customer_deleted(&mut self, customer: CustomerDetail, company: Company) {
        self.customers.insert(
            customer.customer.id,
            RowChange::Deleted(Box::new((customer, company))),
        );
    }

    /// Records that a user was created or updated, or that what it shows
    /// (its memberships) changed. A user whose name or member keys changed
    /// shows in its companies' members too: the caller records those.
    pub(super) fn user(&mut self, operation: ChangeOperation, id: Uuid) {
        RowChange::record(&mut self.users, id, operation);
    }

    /// Records that a user was deleted, as it last stood.
    pub(super) fn user_deleted(&mut self, user: UserDetail) {
        self.users
            .insert(user.user.id, RowChange::Deleted(Box::new(user)));
    }

    /// Records a membership's change, which its customer and its user show.
    pub(super) fn membership(&mut self, operation: ChangeOperation, detail: &MembershipDetail) {
        self.customer(ChangeOperation::Updated, detail.membership.company_id);
        self.user(ChangeOperation::Updated, detail.membership.user_id);
        self.push(Change {
            kind: ChangeKind::Membership,
            operation,
            record_id: detail.membership.id.to_string(),
            external_id: None,
            owner_id: Some(detail.membership.company_id.to_string()),
            record: records::membership_to_proto(detail).encode_to_vec(),
        });
    }

    pub(super) fn entity(
        &mut self,
        operation: ChangeOperation,
        entity: &Entity,
        owner: &ExternalId,
    ) {
        self.push(Change {
            kind: ChangeKind::Entity,
            operation,
            record_id: entity.id.as_str().to_owned(),
            external_id: None,
            owner_id: Some(owner.as_str().to_owned()),
            record: records::entity_to_proto(entity, owner).encode_to_vec(),
        });
    }

    pub(super) fn entity_type(&mut self, operation: ChangeOperation, entity_type: &EntityType) {
        self.push(Change {
            kind: ChangeKind::EntityType,
            operation,
            record_id: entity_type.id.as_str().to_owned(),
            external_id: None,
            owner_id: None,
            record: records::entity_type_to_proto(entity_type).encode_to_vec(),
        });
    }

    pub(super) fn person(&mut self, operation: ChangeOperation, person: &Person) {
        self.push(Change {
            kind: ChangeKind::Person,
            operation,
            record_id: person.id.to_string(),
            external_id: Some(person.external_id.clone()),
            owner_id: None,
            record: records::person_to_proto(person).encode_to_vec(),
        });
    }

    fn push(&mut self, change: Change) {
        self.records.push(change);
    }

    /// The changes of a write that changed no customer row or user, which
    /// need no reading back.
    pub(super) fn into_records(self) -> Vec<Change> {
        debug_assert!(
            self.customers.is_empty() && self.users.is_empty(),
            "customer rows and users are rendered by `Service::commit`"
        );
        self.records
    }

    fn customer_record(&mut self, operation: ChangeOperation, detail: &CustomerDetail) {
        let customer = &detail.customer;
        self.push(Change {
            kind: ChangeKind::Customer,
            operation,
            record_id: customer.id.to_string(),
            external_id: customer
                .external_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            owner_id: None,
            record: records::customer_to_proto(detail).encode_to_vec(),
        });
    }

    fn company_record(&mut self, operation: ChangeOperation, company: &Company) {
        self.push(Change {
            kind: ChangeKind::Company,
            operation,
            record_id: company.id.to_string(),
            external_id: company.keys.get(EXTERNAL_ID_KEY).map(str::to_owned),
            owner_id: None,
            record: records::company_to_proto(company).encode_to_vec(),
        });
    }

    fn user_record(&mut self, operation: ChangeOperation, detail: &UserDetail) {
        self.push(Change {
            kind: ChangeKind::User,
            operation,
            record_id: detail.user.id.to_string(),
            external_id: None,
            owner_id: None,
            record: records::user_to_proto(detail).encode_to_vec(),
        });
    }

    /// Every change: customer rows, then users, as they stand at the end of
    /// the write in `session`, then the rest in the order recorded.
    async fn finish(
        mut self,
        session: &mut Session,
        workspace: WorkspaceId,
    ) -> Result<Vec<Change>> {
        let records = std::mem::take(&mut self.records);
        let customers = std::mem::take(&mut self.customers);
        let users = std::mem::take(&mut self.users);

        let live = live_ids(&customers);
        let mut members = session.customer_members(workspace, &live).await?;
        let mut companies = session.companies(workspace, &live).await?;
        for (id, change) in customers {
            let operation = change.operation();
            if let RowChange::Deleted(last) = change {
                let (customer, company) = *last;
                self.customer_record(operation, &customer);
                self.company_record(operation, &company);
                continue;
            }
            let customer = session.customer(workspace, &CustomerLookup::Id(id)).await?;
            // A row the write deleted after changing it was recorded as
            // deleted; one missing here is deleted another way.
            let (Some(customer), Some(company)) = (customer, companies.remove(&id)) else {
                continue;
            };
            let detail = CustomerDetail {
                members: members.remove(&id).unwrap_or_default(),
                customer,
            };
            self.customer_record(operation, &detail);
            self.company_record(operation, &company);
        }

        let mut current: HashMap<Uuid, UserDetail> = session
            .users(workspace, &live_ids(&users))
            .await?
            .into_iter()
            .map(|detail| (detail.user.id, detail))
            .collect();
        for (id, change) in users {
            let operation = change.operation();
            let detail = match change {
                RowChange::Deleted(last) => Some(*last),
                _ => current.remove(&id),
            };
            if let Some(detail) = detail {
                self.user_record(operation, &detail);
            }
        }

        self.records.extend(records);
        Ok(self.records)
    }
}

/// The rows a write did not delete.
fn live_ids<Last>(rows: &BTreeMap<Uuid, RowChange<Last>>) -> Vec<Uuid> {
    rows.iter()
        .filter(|(_, change)| !matches!(change, RowChange::Deleted(_)))
        .map(|(id, _)| *id)
        .collect()
}

/// Up to `size` changes after `after` (from the oldest kept when `None`),
/// and where the next page starts.
pub(super) async fn changes_page(
    session: &mut Session,
    workspace: WorkspaceId,
    filter: &ChangeFilter,
    after: Option<ChangeCursor>,
    size: ChangeBatchSize,
) -> Result<ChangePage> {
    // The horizon first: every change up to it is visible to the read that
    // follows, which is what lets a short page say it reached it.
    let horizon = session.log_horizon(workspace).await?;
    let after = match after {
        Some(cursor) => {
            cursor.check_kept(horizon.pruned_seq)?;
            cursor
        }
        None => ChangeCursor::at(horizon.pruned_seq),
    };
    let changes = session
        .changes_after(workspace, after.seq, filter, size.0)
        .await?;
    let read_to = changes.last().map_or(after.seq, |change| change.seq);
    let next = if changes.len() < size.0 {
        read_to.max(horizon.last_seq)
    } else {
        read_to
    };
    Ok(ChangePage {
        changes,
        next: ChangeCursor::at(next),
    })
}

/// A page of the log and where the next one starts.
#[derive(Debug, Clone)]
pub struct ChangePage {
    pub changes: Vec<LoggedChange>,
    pub next: ChangeCursor,
}

impl Service {
    /// Records a write's changes and commits it: the one way a write ends.
    /// The changes are numbered last, so the counter's row lock is held
    /// only for the commit.
    pub(super) async fn commit(
        &self,
        mut tx: Transaction,
        caller: &Caller,
        changes: Changes,
    ) -> Result<()> {
        let changes = changes.finish(&mut tx, caller.workspace).await?;
        if !changes.is_empty() {
            let last_seq = tx
                .append_changes(caller.workspace, caller.key, &changes, now())
                .await?;
            tx.commit().await?;
            self.changes_committed(caller, &changes, last_seq);
        } else {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Counts what committed, notes it for the call's answer and wakes
    /// this process's watchers.
    pub(super) fn changes_committed(&self, caller: &Caller, changes: &[Change], last_seq: i64) {
        if changes.is_empty() {
            return;
        }
        super::consistency::note_committed(caller.workspace, last_seq);
        self.metrics.written(changes);
        self.changed.raise();
    }

    /// The cursor of the log's present: after every change committed so
    /// far. A List response carries the one its page was read at.
    pub async fn change_cursor(&self, caller: &Caller) -> Result<ChangeCursor> {
        let horizon = self
            .store
            .read()
            .await?
            .log_horizon(caller.workspace)
            .await?;
        Ok(ChangeCursor::at(horizon.last_seq))
    }

    /// Up to `size` changes after `after` (from the oldest kept when
    /// `None`) that pass the filter, and where the next page starts.
    pub async fn list_changes(
        &self,
        caller: &Caller,
        filter: &ChangeFilter,
        after: Option<ChangeCursor>,
        size: ChangeBatchSize,
    ) -> Result<ChangePage> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                changes_page(&mut session, caller.workspace, filter, after, size).await
            })
        })
        .await
    }

    /// As `list_changes`, on the primary: a watcher woken by a commit reads
    /// it there, where it is sure to be.
    async fn list_changes_on_primary(
        &self,
        caller: &Caller,
        filter: &ChangeFilter,
        after: Option<ChangeCursor>,
        size: ChangeBatchSize,
    ) -> Result<ChangePage> {
        let mut session = self.store.read().await?;
        changes_page(&mut session, caller.workspace, filter, after, size).await
    }

    /// Follows the log from `from` (from now when `None`): every change
    /// that passes the filter, in `seq` order, in messages of up to `size`,
    /// with a checkpoint when idle. The first message is a checkpoint at
    /// the start.
    pub fn watch(
        &self,
        caller: Caller,
        filter: ChangeFilter,
        from: Option<ChangeCursor>,
        size: ChangeBatchSize,
    ) -> WatchStream {
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let ended = Arc::new(Mutex::new(None));
        let watcher = Watcher {
            service: self.clone(),
            caller,
            filter,
            size,
            sender,
            signal: self.changed.subscribe(),
        };
        let outcome = Arc::clone(&ended);
        let watching = self.metrics.watching();
        let task = tokio::spawn(async move {
            let _watching = watching;
            let mut watcher = watcher;
            if let Err(error) = watcher.run(from).await {
                *outcome.lock().expect("watch outcome lock") = Some(error);
            }
            // Only now does the reader see the end, with the outcome set.
            drop(watcher);
        });
        WatchStream {
            receiver,
            ended,
            task,
        }
    }

    /// Prunes changes older than the retention, forever: the background
    /// task `server` runs.
    pub async fn prune_changes_forever(self) {
        loop {
            tokio::time::sleep(self.log.prune_every).await;
            let Some(before) = chrono::Duration::from_std(self.log.retention)
                .ok()
                .and_then(|retention| now().checked_sub_signed(retention))
            else {
                continue;
            };
            let mut pruned = 0;
            loop {
                match self.store.prune_changes(before, PRUNE_SLICE).await {
                    Ok(0) => break,
                    Ok(deleted) => pruned += deleted,
                    Err(error) => {
                        tracing::warn!(%error, "pruning the change log failed; will try again");
                        break;
                    }
                }
            }
            if pruned > 0 {
                self.metrics.pruned(pruned);
                tracing::info!(pruned, "pruned old changes");
            }
        }
    }

    /// Ends every watch of this process, now and from now on, with
    /// `Unavailable`: a stopping server does not wait for streams that
    /// would never end, and their readers resume on another replica. Ends
    /// webhook delivery too, each endpoint's lease given back.
    pub fn end_watches(&self) {
        self.changed.close();
    }

    /// Wakes this process's watchers on other replicas' commits, forever,
    /// where the database can tell (PostgreSQL): the background task
    /// `server` runs. Watchers poll anyway; this only makes them prompt.
    pub async fn relay_other_replicas_changes(self) {
        loop {
            let mut listener = match self.store.listen_for_changes().await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "cannot listen for changes yet");
                    tokio::time::sleep(self.log.poll_every).await;
                    continue;
                }
            };
            while listener.next().await.is_ok() {
                self.changed.raise();
            }
        }
    }
}

/// One Watch call's task: reads the log and queues messages for its reader.
struct Watcher {
    service: Service,
    caller: Caller,
    filter: ChangeFilter,
    size: ChangeBatchSize,
    sender: mpsc::Sender<ChangePage>,
    signal: watch::Receiver<Wakeups>,
}

impl Watcher {
    async fn run(&mut self, from: Option<ChangeCursor>) -> Result<()> {
        let mut cursor = match from {
            Some(cursor) => cursor,
            None => self.service.change_cursor(&self.caller).await?,
        };
        let log = self.service.log;
        // A checkpoint at the start: the reader knows the stream is
        // established, and from where.
        if !self.send(Vec::new(), cursor).await? {
            return Ok(());
        }
        let mut last_message = Instant::now();
        // The backlog is read where any read may be (a replica); once a
        // page comes back short, the log's head is followed on the primary,
        // where the commits that wake the watcher are sure to be visible.
        let mut catching_up = true;
        loop {
            // Marked seen before reading, so a commit during the read
            // wakes the next wait.
            if self.signal.borrow_and_update().closing {
                return Err(Error::ShuttingDown);
            }
            let page = if catching_up {
                self.service
                    .list_changes(&self.caller, &self.filter, Some(cursor), self.size)
                    .await?
            } else {
                self.service
                    .list_changes_on_primary(&self.caller, &self.filter, Some(cursor), self.size)
                    .await?
            };
            let full = page.changes.len() == self.size.0;
            if !full && catching_up {
                catching_up = false;
                cursor = page.next;
                if !page.changes.is_empty() {
                    if !self.send(page.changes, cursor).await? {
                        return Ok(());
                    }
                    last_message = Instant::now();
                }
                // The primary may already be further along.
                continue;
            }
            cursor = page.next;
            if !page.changes.is_empty() {
                if !self.send(page.changes, cursor).await? {
                    return Ok(());
                }
                last_message = Instant::now();
                if full {
                    continue;
                }
            } else if last_message.elapsed() >= log.checkpoint_every {
                if !self.send(Vec::new(), cursor).await? {
                    return Ok(());
                }
                last_message = Instant::now();
            }
            let checkpoint_due = last_message + log.checkpoint_every;
            tokio::select! {
                changed = self.signal.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep(log.poll_every) => {}
                () = tokio::time::sleep_until(checkpoint_due) => {}
                () = self.sender.closed() => return Ok(()),
            }
        }
    }

    /// Queues a message; `false` when the reader has gone. A reader that
    /// leaves the queue full past the stall timeout is too slow.
    async fn send(&self, changes: Vec<LoggedChange>, next: ChangeCursor) -> Result<bool> {
        let timeout = self.service.log.stall_timeout;
        let count = changes.len();
        match self
            .sender
            .send_timeout(ChangePage { changes, next }, timeout)
            .await
        {
            Ok(()) => {
                self.service.metrics.sent_to_watcher(count);
                Ok(true)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Ok(false),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Error::TooSlow),
        }
    }
}

/// A Watch call's messages, then, if the watch failed, its error.
pub struct WatchStream {
    receiver: mpsc::Receiver<ChangePage>,
    ended: Arc<Mutex<Option<Error>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for WatchStream {
    type Item = Result<ChangePage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(page)) => Poll::Ready(Some(Ok(page))),
            Poll::Ready(None) => {
                let error = self.ended.lock().expect("watch outcome lock").take();
                Poll::Ready(error.map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A reader that goes away stops its watcher.
impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
