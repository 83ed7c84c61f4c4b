//! The change log: rows of `changes`, numbered per workspace through
//! `change_counters`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::{Sql, Value};
use super::{Session, Store, Transaction};
use crate::domain::WorkspaceId;
use crate::domain::change::{Change, ChangeFilter, ChangeKind, ChangeOperation, LoggedChange};
use crate::domain::workspace::ApiKeyId;
use crate::error::{Error, Result};

const CHANGE_COLUMNS: &str =
    "seq, kind, operation, record_id, external_id, owner_id, api_key_id, committed_at, record";

#[derive(sqlx::FromRow)]
struct ChangeRow {
    seq: i64,
    kind: String,
    operation: String,
    record_id: String,
    external_id: Option<String>,
    owner_id: Option<String>,
    api_key_id: Uuid,
    committed_at: DateTime<Utc>,
    record: Vec<u8>,
}

impl TryFrom<ChangeRow> for LoggedChange {
    type Error = Error;

    fn try_from(row: ChangeRow) -> Result<Self> {
        let kind = ChangeKind::from_stored(&row.kind)
            .ok_or_else(|| Error::internal(format!("stored change kind {:?}", row.kind)))?;
        let operation = ChangeOperation::from_stored(&row.operation).ok_or_else(|| {
            Error::internal(format!("stored change operation {:?}", row.operation))
        })?;
        Ok(Self {
            seq: row.seq,
            change: Change {
                kind,
                operation,
                record_id: row.record_id,
                external_id: row.external_id,
                owner_id: row.owner_id,
                record: row.record,
            },
            api_key: ApiKeyId(row.api_key_id),
            committed_at: row.committed_at,
        })
    }
}

/// Where a workspace's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHorizon {
    /// The number of the last change committed.
    pub last_seq: i64,
    /// Changes up to this number were pruned.
    pub pruned_seq: i64,
}

impl Session {
    pub async fn log_horizon(&mut self, workspace: WorkspaceId) -> Result<LogHorizon> {
        let sql =
            Sql::new("SELECT last_seq, pruned_seq FROM change_counters WHERE workspace_id = $1")
                .bind(workspace.0);
        let row: Option<(i64, i64)> = self.fetch_optional(sql).await?;
        let (last_seq, pruned_seq) = row.unwrap_or((0, 0));
        Ok(LogHorizon {
            last_seq,
            pruned_seq,
        })
    }

    /// Up to `limit` changes after `after` that pass the filter, in `seq`
    /// order.
    pub async fn changes_after(
        &mut self,
        workspace: WorkspaceId,
        after: i64,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<Vec<LoggedChange>> {
        let mut sql = Sql::new(format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE workspace_id = $1 AND seq > $2"
        ))
        .bind(workspace.0)
        .bind(after);
        if !filter.kinds.is_empty() {
            sql.push(" AND kind IN (")
                .push_list(filter.kinds.iter().map(|kind| kind.as_str()))
                .push(")");
        }
        if let Some(owner) = &filter.owner_id {
            sql.push(" AND owner_id = ").push_bind(owner);
        }
        if let Some(record) = &filter.record_id {
            sql.push(" AND record_id = ").push_bind(record);
        }
        sql.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<ChangeRow> = self.fetch_all(sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

impl Transaction {
    /// Appends the changes a write made, numbered after the workspace's last
    /// change; returns the last number. The counter's row lock, taken here
    /// and held to the commit, orders concurrent writers' commits: call it
    /// last, just before committing.
    pub async fn append_changes(
        &mut self,
        workspace: WorkspaceId,
        key: ApiKeyId,
        changes: &[Change],
        committed_at: DateTime<Utc>,
    ) -> Result<i64> {
        let count = i64::try_from(changes.len()).expect("a write changes few records");
        let sql = Sql::new(
            "UPDATE change_counters SET last_seq = last_seq + $2 WHERE workspace_id = $1 \
             RETURNING last_seq",
        )
        .bind(workspace.0)
        .bind(count);
        let (last_seq,): (i64,) = self.fetch_one(sql).await?;
        let first = last_seq - count + 1;
        let mut sql = Sql::new(
            "INSERT INTO changes (workspace_id, seq, kind, operation, record_id, external_id, \
             owner_id, api_key_id, committed_at, record) ",
        );
        sql.push_values(changes.iter().zip(first..), |row, (change, seq)| {
            row.bind(workspace.0)
                .bind(seq)
                .bind(change.kind.as_str())
                .bind(change.operation.as_str())
                .bind(change.record_id.as_str())
                .bind(change.external_id.as_deref())
                .bind(change.owner_id.as_deref())
                .bind(key.0)
                .bind(committed_at)
                .bind(Value::Bytes(change.record.clone()));
        });
        self.execute(sql).await?;
        Ok(last_seq)
    }
}

impl Store {
    /// Deletes up to `limit` changes of one workspace committed before
    /// `before`, first moving its pruned mark past them (so a cursor in
    /// the range has expired before its changes go). Returns how many it
    /// deleted; 0 when none is that old.
    pub async fn prune_changes(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let mut session = self.read().await?;
        let sql = Sql::new(
            "SELECT workspace_id, MAX(seq) FROM changes WHERE committed_at < $1 \
             GROUP BY workspace_id LIMIT 1",
        )
        .bind(before);
        let Some((workspace, through)): Option<(Uuid, i64)> = session.fetch_optional(sql).await?
        else {
            return Ok(0);
        };
        drop(session);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = self.write().await?;
        let mark = Sql::new(
            "UPDATE change_counters SET pruned_seq = $2 WHERE workspace_id = $1 AND pruned_seq < $2",
        )
        .bind(workspace)
        .bind(through);
        tx.execute(mark).await?;
        tx.commit().await?;
        // In slices, so no single statement holds the table long.
        let mut tx = self.write().await?;
        let delete = Sql::new(
            "DELETE FROM changes WHERE workspace_id = $1 AND seq IN (SELECT seq FROM changes \
             WHERE workspace_id = $1 AND seq <= $2 ORDER BY seq LIMIT $3)",
        )
        .bind(workspace)
        .bind(through)
        .bind(limit);
        let deleted = tx.execute(delete).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
