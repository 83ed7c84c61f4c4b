//! The change log: rows of `changes`, numbered per workspace through
//! `change_counters`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::Dialect;
use super::sql::{Sql, Value};
use super::{Pools, Session, Store, Transaction, people};
use crate::domain::WorkspaceId;
use crate::domain::change::{Change, ChangeFilter, ChangeKind, ChangeOperation, LoggedChange};
use crate::domain::person::Person;
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
    /// last, just before committing. PostgreSQL numbers and inserts them in
    /// one statement; SQLite, whose one writer orders commits anyway, in
    /// two.
    pub async fn append_changes(
        &mut self,
        workspace: WorkspaceId,
        key: ApiKeyId,
        changes: &[Change],
        committed_at: DateTime<Utc>,
    ) -> Result<i64> {
        let log = Log {
            workspace,
            key,
            changes,
            committed_at,
        };
        match self.dialect() {
            Dialect::Postgres => {
                let mut sql = Sql::new("WITH numbered AS (");
                log.push_numbering(&mut sql);
                sql.push("), ");
                log.push_logged(&mut sql);
                sql.push(", inserted AS (");
                log.push_insert(&mut sql);
                sql.push(" RETURNING seq) SELECT MAX(seq) FROM inserted");
                let (last_seq,): (i64,) = self.fetch_one(sql).await?;
                Ok(last_seq)
            }
            Dialect::Sqlite => {
                let mut numbering = Sql::new("");
                log.push_numbering(&mut numbering);
                let (before,): (i64,) = self.fetch_one(numbering).await?;
                let mut insert = Sql::new("WITH numbered (before) AS (SELECT ");
                insert.push_bind(before).push("), ");
                log.push_logged(&mut insert);
                insert.push(" ");
                log.push_insert(&mut insert);
                self.execute(insert).await?;
                Ok(before + log.count())
            }
        }
    }
}

impl Store {
    /// Creates new people with their changes as one write: all of them, or
    /// none when anyone already exists (the unique clash then says so).
    /// PostgreSQL runs it as one statement that inserts the people before
    /// it locks the counter row, so a clash waits on a concurrent insert
    /// without holding up every other writer; SQLite as one transaction.
    pub async fn insert_people_logged(
        &self,
        workspace: WorkspaceId,
        key: ApiKeyId,
        people: &[Person],
        changes: &[Change],
        committed_at: DateTime<Utc>,
    ) -> Result<i64> {
        let log = Log {
            workspace,
            key,
            changes,
            committed_at,
        };
        match self.pools {
            Pools::Postgres { .. } => {
                let mut sql = Sql::new("WITH written AS (");
                people::push_insert(&mut sql, people);
                sql.push(" RETURNING 1), numbered AS (");
                log.push_numbering_after(&mut sql, "(SELECT COUNT(*) FROM written) >= 0");
                sql.push("), ");
                log.push_logged(&mut sql);
                sql.push(", inserted AS (");
                log.push_insert(&mut sql);
                sql.push(" RETURNING seq) SELECT MAX(seq) FROM inserted");
                if self.queues_writers() {
                    // Behind the writers' lock, as every write then is.
                    let mut tx = self.write().await?;
                    let (last_seq,): (i64,) = tx.fetch_one(sql).await?;
                    tx.commit().await?;
                    return Ok(last_seq);
                }
                // Outside a transaction, the one statement is its own.
                let (last_seq,): (i64,) = self.read().await?.fetch_one(sql).await?;
                Ok(last_seq)
            }
            Pools::Sqlite { .. } => {
                let mut tx = self.write().await?;
                tx.insert_people(people).await?;
                let last_seq = tx
                    .append_changes(workspace, key, changes, committed_at)
                    .await?;
                tx.commit().await?;
                Ok(last_seq)
            }
        }
    }
}

/// One write's changes on their way into the log.
struct Log<'a> {
    workspace: WorkspaceId,
    key: ApiKeyId,
    changes: &'a [Change],
    committed_at: DateTime<Utc>,
}

impl Log<'_> {
    fn count(&self) -> i64 {
        i64::try_from(self.changes.len()).expect("a write changes few records")
    }

    /// Takes the numbers for the changes from the workspace's counter:
    /// `UPDATE … RETURNING before`, the number the first one follows.
    fn push_numbering(&self, sql: &mut Sql) {
        self.push_numbering_after(sql, "TRUE");
    }

    /// The numbering, once `condition` is evaluated: a condition on another
    /// relation of the statement makes PostgreSQL finish that one first.
    fn push_numbering_after(&self, sql: &mut Sql, condition: &str) {
        sql.push("UPDATE change_counters SET last_seq = last_seq + ")
            .push_bind(self.count())
            .push(" WHERE workspace_id = ")
            .push_bind(self.workspace.0)
            .push(" AND ")
            .push(condition)
            .push(" RETURNING last_seq - ")
            .push_bind(self.count())
            .push(" AS before");
    }

    /// `logged (n, kind, …) AS (VALUES …)`: the changes as a relation of
    /// the statement's `WITH`, `n` counting them from 1.
    fn push_logged(&self, sql: &mut Sql) {
        sql.push("logged (n, kind, operation, record_id, external_id, owner_id, record) AS (");
        sql.push_values(self.changes.iter().zip(1_i64..), |row, (change, n)| {
            row.bind(n)
                .bind(change.kind.as_str())
                .bind(change.operation.as_str())
                .bind(change.record_id.as_str())
                .bind(change.external_id.as_deref())
                .bind(change.owner_id.as_deref())
                .bind(Value::Bytes(change.record.clone()));
        });
        sql.push(")");
    }

    /// `INSERT INTO changes … SELECT … FROM numbered, logged`: every change,
    /// numbered on from `numbered.before`; the statement's `WITH` provides
    /// both.
    fn push_insert(&self, sql: &mut Sql) {
        sql.push(
            "INSERT INTO changes (workspace_id, seq, kind, operation, record_id, external_id, \
             owner_id, api_key_id, committed_at, record) \
             SELECT ",
        )
        .push_bind(self.workspace.0)
        .push(
            ", numbered.before + logged.n, logged.kind, logged.operation, logged.record_id, \
             logged.external_id, logged.owner_id, ",
        )
        .push_bind(self.key.0)
        .push(", ")
        .push_bind(self.committed_at)
        .push(", logged.record FROM numbered, logged");
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
        // In slices, so no single statement holds the table long; beside
        // the writers, since it touches no counter.
        let mut tx = self.write_unqueued().await?;
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
