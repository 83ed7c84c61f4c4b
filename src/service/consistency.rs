//! Where a read is served, and read-your-writes across read replicas.
//!
//! A write's answer carries the cursor of the last change it committed
//! (`x-kith-cursor`); a caller that sends it back on a read
//! (`x-kith-at-least`) is served by a replica only if that replica's log
//! already holds the change, and by the primary otherwise. Without one, a
//! read may be as stale as the replicas' lag allows.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use super::Service;
use crate::domain::Caller;
use crate::domain::WorkspaceId;
use crate::domain::change::ChangeCursor;
use crate::error::{Error, Result};
use crate::store::{Freshness, Session};

tokio::task_local! {
    /// The last change committed by the call being served, and its
    /// workspace.
    static COMMITTED: Cell<Option<(WorkspaceId, ChangeCursor)>>;
}

/// The last change a call (or a task it spawned) committed, and its
/// workspace.
pub(super) type Committed = Option<(WorkspaceId, ChangeCursor)>;

/// Runs one call, and returns with its output the cursor (encoded, as
/// callers see cursors) of the last change it committed, if it committed
/// any: what a transport answers a write with. Writes made after its answer
/// began (a server stream) are not counted, nor those of a task it spawns
/// unless the call `adopt`s them.
pub async fn noting_commits<F: Future>(call: F) -> (F::Output, Option<String>) {
    let (output, committed) = recording_commits(call).await;
    let cursor = committed.map(|(workspace, cursor)| cursor.encode(workspace));
    (output, cursor)
}

/// Runs `work` (in a task of its own, say), and returns with its output the
/// last change it committed, for the call that spawned it to `adopt`.
pub(super) async fn recording_commits<F: Future>(work: F) -> (F::Output, Committed) {
    COMMITTED
        .scope(Cell::new(None), async move {
            let output = work.await;
            (output, COMMITTED.with(Cell::get))
        })
        .await
}

/// Counts what a spawned task committed as the calling task's own.
pub(super) fn adopt(committed: Committed) {
    if let Some((workspace, cursor)) = committed {
        note_committed(workspace, cursor.seq);
    }
}

/// Notes that the call being served committed `workspace`'s changes up to
/// `last_seq`.
pub(super) fn note_committed(workspace: WorkspaceId, last_seq: i64) {
    let cursor = ChangeCursor::at(last_seq);
    // Outside `noting_commits` (a test, a command) there is no one to tell.
    let _ = COMMITTED.try_with(|committed| {
        let last = match committed.get() {
            Some((_, before)) => before.max(cursor),
            None => cursor,
        };
        committed.set(Some((workspace, last)));
    });
}

/// A read, run on the session it is given: boxed, so that the future of a
/// closure that borrows the call's inputs can be required to be `Send`.
pub(super) type Read<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl Service {
    /// Runs `read` where `caller` may be served (a replica, when one has
    /// what the caller has seen). A read that fails on a replica for a
    /// reason of the replica's (a lost connection, or a query the standby
    /// canceled to replay the primary's log) runs again on the primary.
    pub(super) async fn reading<'a, T>(
        &self,
        caller: &Caller,
        mut read: impl FnMut(Session) -> Read<'a, T>,
    ) -> Result<T> {
        let session = self.store.read_fresh(freshness(caller)).await?;
        let replica = session.replica();
        match read(session).await {
            Err(error) if replica.is_some() && replica_trouble(&error) => {
                self.store.replica_failed(replica, &error);
                read(self.store.read().await?).await
            }
            result => result,
        }
    }

    /// As `reading`, with every read in one snapshot, which `read` is given
    /// with the change cursor it is consistent with: a page and where to
    /// watch from.
    pub(super) async fn reading_snapshot<'a, T>(
        &self,
        caller: &Caller,
        mut read: impl FnMut(Session, ChangeCursor) -> Read<'a, T>,
    ) -> Result<T> {
        let (session, horizon) = self.store.snapshot_fresh(freshness(caller)).await?;
        let replica = session.replica();
        match read(session, ChangeCursor::at(horizon.last_seq)).await {
            Err(error) if replica.is_some() && replica_trouble(&error) => {
                self.store.replica_failed(replica, &error);
                let (session, horizon) = self.store.snapshot_on_primary(caller.workspace).await?;
                read(session, ChangeCursor::at(horizon.last_seq)).await
            }
            result => result,
        }
    }
}

/// A caller's reads go to a replica that has what the caller has seen.
fn freshness(caller: &Caller) -> Freshness {
    Freshness {
        workspace: caller.workspace,
        seen: caller.seen.map(|cursor| cursor.seq),
    }
}

/// A failure of the replica rather than of the read: a lost connection, or a
/// recovery conflict (SQLSTATE 40001 on a standby) that the primary, which
/// replays nothing, does not have.
fn replica_trouble(error: &Error) -> bool {
    matches!(error, Error::Unavailable(_) | Error::Aborted(_))
}
