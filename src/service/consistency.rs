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
use crate::store::{ReadFrom, Session};

tokio::task_local! {
    /// The last change committed by the call being served, and its
    /// workspace.
    static COMMITTED: Cell<Option<(WorkspaceId, ChangeCursor)>>;
}

/// Runs one call, and returns with its output the cursor (encoded, as
/// callers see cursors) of the last change it committed, if it committed
/// any: what a transport answers a write with. Writes made in tasks the
/// call spawns, or after its answer began (a server stream), are not
/// counted.
pub async fn noting_commits<F: Future>(call: F) -> (F::Output, Option<String>) {
    COMMITTED
        .scope(Cell::new(None), async move {
            let output = call.await;
            let committed = COMMITTED.with(Cell::get);
            let cursor = committed.map(|(workspace, cursor)| cursor.encode(workspace));
            (output, cursor)
        })
        .await
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
        let session = self.store.read_fresh(read_from(caller)).await?;
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
        let session = self.store.snapshot_fresh(read_from(caller)).await?;
        let replica = session.replica();
        match snapshot_read(session, caller, &mut read).await {
            Err(error) if replica.is_some() && replica_trouble(&error) => {
                self.store.replica_failed(replica, &error);
                snapshot_read(self.store.snapshot().await?, caller, &mut read).await
            }
            result => result,
        }
    }
}

/// `read` in `session`'s snapshot, given the change cursor it is at.
async fn snapshot_read<'a, T>(
    mut session: Session,
    caller: &Caller,
    read: &mut impl FnMut(Session, ChangeCursor) -> Read<'a, T>,
) -> Result<T> {
    let horizon = session.log_horizon(caller.workspace).await?;
    read(session, ChangeCursor::at(horizon.last_seq)).await
}

/// A caller's reads go to a replica that has seen what it has seen.
fn read_from(caller: &Caller) -> ReadFrom {
    ReadFrom::Replica {
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
