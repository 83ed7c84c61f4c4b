//! The repository: rows in, rows out, on SQLite or PostgreSQL.
//!
//! The store never validates and never decides. It reads and writes the
//! rows the service asks for, inside the transaction the service holds, and
//! reports what the database said (a unique clash names its index). Every
//! statement is written once (`Sql`), and `dialect` is the one place where
//! the backends differ.
//!
//! - `Store::read` opens a [`Session`]: a pooled connection for reads on
//!   the primary; `Store::read_fresh` one on a read replica when there is
//!   one in rotation that has the change the caller must see.
//! - `Store::write` opens a [`Transaction`]: every read method, plus the
//!   writes, committed or rolled back as a whole.
//!
//! The methods are split by aggregate: `workspaces`, `customers`,
//! `entities`, `people`, `users` (users, companies and memberships).

mod changes;
mod customers;
mod dialect;
mod entities;
mod error;
mod people;
mod postgres;
mod replicas;
mod rows;
mod search;
mod sql;
mod sqlite;
mod users;
mod webhooks;
mod workspaces;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

pub use changes::LogHorizon;
pub use dialect::Dialect;
use dialect::{Conn, Record};
pub use postgres::ChangeListener;
pub use replicas::ReplicaState;
use replicas::Replicas;
use sql::Sql;
pub use users::KeyOwners;
pub use webhooks::{DeliveryProgress, attempt_cursor, endpoint_cursor};

use crate::domain::WorkspaceId;
use crate::domain::page::PageRequest;
use crate::error::{Error, Result};
use crate::metrics::{StatementMetrics, StatementOperation};

/// The database: a SQLite file (one writer connection, readers beside it)
/// or a PostgreSQL pool.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    /// Times every statement, when the server keeps metrics.
    statements: Option<StatementMetrics>,
}

#[derive(Clone)]
enum Pools {
    /// Writes go through a pool of one connection, so writers queue in the
    /// service instead of failing with `SQLITE_BUSY`, and a unique clash
    /// between racing writers surfaces as a clean constraint error. Reads
    /// use their own read-only pool and never wait for writers (WAL).
    Sqlite {
        reader: SqlitePool,
        writer: SqlitePool,
    },
    /// The primary, for writes and reads that must be fresh, and the hot
    /// standbys that serve the other reads. Where the primary runs
    /// transactions at snapshot isolation, writers queue: in this process
    /// for `writer_queue` (so that waiting writers hold no connection),
    /// then across processes for `postgres::QUEUE_WRITERS`.
    Postgres {
        primary: PgPool,
        replicas: Replicas,
        writer_queue: Option<Arc<tokio::sync::Mutex<()>>>,
    },
}

/// One of the store's read replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaId(usize);

/// What a read that may be served by a replica must see: a replica in
/// rotation whose copy of `workspace`'s change log reaches `seen` (any in
/// rotation when `None`) serves it, else the primary.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub workspace: WorkspaceId,
    pub seen: Option<i64>,
}

impl Store {
    /// Opens the database a URL names, `postgres://` or `postgresql://` for
    /// PostgreSQL and anything else for a SQLite file, and brings its schema
    /// up to date.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        let pools = if is_postgres(database_url) {
            let primary = postgres::connect(database_url).await?;
            Pools::Postgres {
                writer_queue: postgres::snapshot_isolation(&primary)
                    .await?
                    .then(Arc::default),
                primary,
                replicas: Replicas::default(),
            }
        } else {
            let (reader, writer) = sqlite::connect(database_url).await?;
            Pools::Sqlite { reader, writer }
        };
        Ok(Self {
            pools,
            statements: None,
        })
    }

    /// Copies the database `database_url` names to a new file at `to`,
    /// consistently, while a server uses it: SQLite only; PostgreSQL has
    /// `pg_dump`.
    pub async fn back_up(database_url: &str, to: &std::path::Path) -> anyhow::Result<()> {
        if is_postgres(database_url) {
            anyhow::bail!(
                "kith backup copies SQLite databases; back up PostgreSQL with pg_dump \
                 (pg_dump --format=custom --file=kith.dump \"$KITH_DATABASE_URL\")"
            );
        }
        sqlite::back_up(database_url, to).await
    }

    /// The store, serving reads from the hot standbys `urls` name as well,
    /// each while it answers and is at most `max_lag` behind (see
    /// `check_replicas`). PostgreSQL only.
    pub fn reading_from_replicas(
        self,
        urls: &[String],
        max_lag: std::time::Duration,
    ) -> anyhow::Result<Self> {
        if urls.is_empty() {
            return Ok(self);
        }
        let Pools::Postgres {
            primary,
            writer_queue,
            ..
        } = self.pools
        else {
            anyhow::bail!("read replicas are PostgreSQL standbys; this database is SQLite");
        };
        Ok(Self {
            pools: Pools::Postgres {
                primary,
                replicas: Replicas::open(urls, max_lag)?,
                writer_queue,
            },
            ..self
        })
    }

    /// Checks each read replica, within `timeout`, and puts it in or out of
    /// rotation by its answer and lag.
    pub async fn check_replicas(&self, timeout: std::time::Duration) -> Vec<ReplicaState> {
        match &self.pools {
            Pools::Postgres {
                primary, replicas, ..
            } => replicas.check(primary, timeout).await,
            Pools::Sqlite { .. } => Vec::new(),
        }
    }

    /// A read that failed on a replica: a replica that lost its connection
    /// leaves the rotation until a check finds it well. The caller runs the
    /// read again on the primary.
    pub fn replica_failed(&self, replica: Option<ReplicaId>, error: &Error) {
        if let (Pools::Postgres { replicas, .. }, Some(ReplicaId(index))) = (&self.pools, replica)
            && matches!(error, Error::Unavailable(_))
        {
            replicas
                .get(index)
                .take_out(format!("a read failed: {error}"));
        }
    }

    /// The store, timing each statement into `statements`.
    pub fn timing_statements(self, statements: StatementMetrics) -> Self {
        Self {
            statements: Some(statements),
            ..self
        }
    }

    /// Each pool's name, its connections and how many of them are idle.
    pub fn pool_stats(&self) -> Vec<(String, u32, usize)> {
        match &self.pools {
            Pools::Sqlite { reader, writer } => vec![
                ("reader".to_owned(), reader.size(), reader.num_idle()),
                ("writer".to_owned(), writer.size(), writer.num_idle()),
            ],
            Pools::Postgres {
                primary, replicas, ..
            } => {
                let mut stats = vec![("primary".to_owned(), primary.size(), primary.num_idle())];
                stats.extend(replicas.all().iter().map(|replica| {
                    (
                        format!("replica {}", replica.name),
                        replica.pool.size(),
                        replica.pool.num_idle(),
                    )
                }));
                stats
            }
        }
    }

    fn session(&self, connection: Connection) -> Session {
        Session {
            connection,
            replica: None,
            failed: false,
            statements: self.statements.clone(),
        }
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn backend(&self) -> &'static str {
        match self.pools {
            Pools::Sqlite { .. } => "sqlite",
            Pools::Postgres { .. } => "postgres",
        }
    }

    /// A connection for reads on the primary: they see every committed
    /// write.
    pub async fn read(&self) -> Result<Session> {
        let connection = match &self.pools {
            Pools::Sqlite { reader, .. } => Connection::Sqlite(reader.acquire().await?),
            Pools::Postgres { primary, .. } => Connection::Postgres(primary.acquire().await?),
        };
        Ok(self.session(connection))
    }

    /// A connection for reads as fresh as `fresh` says. A replica that
    /// cannot give a connection, or whose log has not reached the change the
    /// caller saw, is passed over for the primary: a read never waits for
    /// a standby to catch up.
    pub async fn read_fresh(&self, fresh: Freshness) -> Result<Session> {
        match self.on_replica(fresh, false).await {
            Some((session, _)) => Ok(session),
            None => self.read().await,
        }
    }

    /// A connection whose reads all see one snapshot of the database: a
    /// page and the change cursor it is consistent with.
    pub async fn snapshot(&self) -> Result<Session> {
        let connection = match &self.pools {
            // A read transaction on SQLite's WAL sees the database as of its
            // first read.
            Pools::Sqlite { reader, .. } => Connection::SqliteTx(reader.begin().await?),
            Pools::Postgres { primary, .. } => {
                Connection::PostgresTx(primary.begin_with(SNAPSHOT).await?)
            }
        };
        Ok(self.session(connection))
    }

    /// A snapshot (as `snapshot`) as fresh as `fresh` says (as
    /// `read_fresh`), and the workspace's log horizon in it: its first read.
    pub async fn snapshot_fresh(&self, fresh: Freshness) -> Result<(Session, LogHorizon)> {
        match self.on_replica(fresh, true).await {
            Some((session, Some(horizon))) => Ok((session, horizon)),
            _ => self.snapshot_on_primary(fresh.workspace).await,
        }
    }

    /// A snapshot on the primary, and the workspace's log horizon in it.
    pub async fn snapshot_on_primary(
        &self,
        workspace: WorkspaceId,
    ) -> Result<(Session, LogHorizon)> {
        let mut session = self.snapshot().await?;
        let horizon = session.log_horizon(workspace).await?;
        Ok((session, horizon))
    }

    /// A session on a replica in rotation that has what `fresh` says it must
    /// see, and, when it was read (for a snapshot, or to check a token), the
    /// workspace's log horizon there.
    async fn on_replica(
        &self,
        fresh: Freshness,
        snapshot: bool,
    ) -> Option<(Session, Option<LogHorizon>)> {
        let Pools::Postgres { replicas, .. } = &self.pools else {
            return None;
        };
        let index = replicas.pick()?;
        let replica = replicas.get(index);
        let connection = if snapshot {
            replica
                .pool
                .begin_with(SNAPSHOT)
                .await
                .map(Connection::PostgresTx)
        } else {
            replica.pool.acquire().await.map(Connection::Postgres)
        };
        let connection = match connection {
            Ok(connection) => connection,
            // Busy, or down: either way the primary serves this read, and
            // the next check says which.
            Err(_) => return None,
        };
        let mut session = Session {
            replica: Some(index),
            ..self.session(connection)
        };
        if !snapshot && fresh.seen.is_none() {
            return Some((session, None));
        }
        // The standby's copy of the workspace's counter says how far its log
        // reaches. In a snapshot it is the snapshot's, which is what the
        // page will be read from.
        match session.log_horizon(fresh.workspace).await {
            Ok(horizon) if fresh.seen.is_none_or(|seen| horizon.last_seq >= seen) => {
                Some((session, Some(horizon)))
            }
            Ok(_) => None,
            Err(error) => {
                self.replica_failed(session.replica(), &error);
                None
            }
        }
    }

    /// A transaction for writes (and the reads they depend on). Dropped
    /// without `commit`, it rolls back.
    pub async fn write(&self) -> Result<Transaction> {
        let Pools::Postgres {
            writer_queue: Some(queue),
            ..
        } = &self.pools
        else {
            return self.write_unqueued().await;
        };
        // Turn in this process first, then across processes.
        let turn = queue.clone().lock_owned().await;
        let mut tx = self.write_unqueued().await?;
        tx.execute(Sql::new(postgres::QUEUE_WRITERS)).await?;
        tx.1 = Some(turn);
        Ok(tx)
    }

    /// A write transaction that does not queue behind other writers at
    /// snapshot isolation: for writes that touch no change counter (the
    /// pruner's deletes), which then conflict with no one's.
    async fn write_unqueued(&self) -> Result<Transaction> {
        let connection = match &self.pools {
            // Takes the write lock at once, waiting up to the busy timeout
            // while another process (a `kith` command) holds it. A deferred
            // BEGIN would read first and then fail outright on its first
            // write if that process had committed in between: SQLite cannot
            // move a read snapshot forward into a write.
            Pools::Sqlite { writer, .. } => {
                Connection::SqliteTx(writer.begin_with("BEGIN IMMEDIATE").await?)
            }
            Pools::Postgres { primary, .. } => Connection::PostgresTx(primary.begin().await?),
        };
        Ok(Transaction(self.session(connection), None))
    }

    /// Whether write transactions queue (`write`).
    pub(super) fn queues_writers(&self) -> bool {
        matches!(
            self.pools,
            Pools::Postgres {
                writer_queue: Some(_),
                ..
            }
        )
    }

    /// Wake-ups from other replicas' commits, where there can be other
    /// replicas (PostgreSQL); SQLite's writers are all in this process.
    pub async fn listen_for_changes(&self) -> Result<Option<ChangeListener>> {
        match &self.pools {
            Pools::Sqlite { .. } => Ok(None),
            Pools::Postgres { primary, .. } => ChangeListener::connect(primary).await.map(Some),
        }
    }

    /// Succeeds while the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.read()
            .await?
            .conn()
            .execute(Sql::new("SELECT 1"))
            .await
            .map(drop)
    }
}

/// A read-only transaction that sees one snapshot.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// A connection and the reads it can make; inside a `Transaction`, they see
/// its writes.
pub struct Session {
    connection: Connection,
    /// The read replica it reads from, if not the primary.
    replica: Option<usize>,
    /// A statement failed: a transaction can then only roll back.
    failed: bool,
    statements: Option<StatementMetrics>,
}

/// A statement being timed: its verb and when it started.
struct Timing(Option<(StatementOperation, std::time::Instant)>);

enum Connection {
    Sqlite(PoolConnection<Sqlite>),
    SqliteTx(sqlx::Transaction<'static, Sqlite>),
    Postgres(PoolConnection<Postgres>),
    PostgresTx(sqlx::Transaction<'static, Postgres>),
}

impl Session {
    fn conn(&mut self) -> Conn<'_> {
        match &mut self.connection {
            Connection::Sqlite(c) => Conn::Sqlite(c),
            Connection::SqliteTx(c) => Conn::Sqlite(c),
            Connection::Postgres(c) => Conn::Postgres(c),
            Connection::PostgresTx(c) => Conn::Postgres(c),
        }
    }

    /// The read replica it reads from, if not the primary: a read that
    /// fails there may run again on the primary.
    pub fn replica(&self) -> Option<ReplicaId> {
        self.replica.map(ReplicaId)
    }

    pub fn dialect(&self) -> Dialect {
        match &self.connection {
            Connection::Sqlite(_) | Connection::SqliteTx(_) => Dialect::Sqlite,
            Connection::Postgres(_) | Connection::PostgresTx(_) => Dialect::Postgres,
        }
    }

    async fn fetch_all<R: Record>(&mut self, sql: Sql) -> Result<Vec<R>> {
        let timing = self.start(&sql);
        let result = self.conn().fetch_all(sql).await;
        self.note(timing, result)
    }

    async fn fetch_optional<R: Record>(&mut self, sql: Sql) -> Result<Option<R>> {
        let timing = self.start(&sql);
        let result = self.conn().fetch_optional(sql).await;
        self.note(timing, result)
    }

    async fn fetch_one<R: Record>(&mut self, sql: Sql) -> Result<R> {
        let timing = self.start(&sql);
        let result = self.conn().fetch_one(sql).await;
        self.note(timing, result)
    }

    async fn execute(&mut self, sql: Sql) -> Result<u64> {
        let timing = self.start(&sql);
        let result = self.conn().execute(sql).await;
        self.note(timing, result)
    }

    fn start(&self, sql: &Sql) -> Timing {
        Timing(self.statements.as_ref().map(|_| {
            (
                StatementOperation::of(sql.text()),
                std::time::Instant::now(),
            )
        }))
    }

    /// Times the statement, and remembers a failed one. PostgreSQL refuses
    /// to go on with a transaction after one; SQLite would go on and commit
    /// what came before it. Noted here, both behave as PostgreSQL does.
    fn note<T>(&mut self, timing: Timing, result: Result<T>) -> Result<T> {
        if let (Some(statements), Timing(Some((operation, started)))) = (&self.statements, timing) {
            statements.observe(operation, started.elapsed().as_secs_f64());
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// `SELECT COUNT(*) …` as a number.
    async fn count(&mut self, sql: Sql) -> Result<u64> {
        let (count,): (i64,) = self.fetch_one(sql).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// A write transaction: commit it, or drop it to roll back. Where writers
/// queue, it holds this process's turn until it ends.
pub struct Transaction(Session, Option<tokio::sync::OwnedMutexGuard<()>>);

impl Transaction {
    /// Commits what the transaction wrote. After a failed statement it
    /// cannot: the caller drops it instead, which rolls it back.
    pub async fn commit(self) -> Result<()> {
        if self.0.failed {
            return Err(Error::internal(
                "commit after a failed statement; the transaction must be dropped",
            ));
        }
        let started = std::time::Instant::now();
        let statements = self.0.statements;
        match self.0.connection {
            Connection::SqliteTx(tx) => tx.commit().await?,
            Connection::PostgresTx(tx) => tx.commit().await?,
            Connection::Sqlite(_) | Connection::Postgres(_) => {
                unreachable!("a Transaction always holds a transaction")
            }
        }
        // Where SQLite syncs its log: timed like a statement.
        if let Some(statements) = statements {
            statements.observe(StatementOperation::Commit, started.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

impl Deref for Transaction {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.0
    }
}

/// Appends the tail of a keyset-paged listing: rows after the page's cursor
/// in `(created_at, <key>)` order (or before it, newest first), one more
/// than the page so the page knows whether another follows, skipping the
/// page's offset. `table` prefixes the columns when the query joins (`u.`).
fn push_page(sql: &mut Sql, page: &PageRequest, table: &str, key: &str) {
    let (compare, order) = if page.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = page.after {
        sql.push(&format!(
            " AND ({table}created_at, {table}{key}) {compare} ("
        ))
        .push_bind(after.created_at)
        .push(", ")
        .push_bind(after.id)
        .push(")");
    }
    sql.push(&format!(
        " ORDER BY {table}created_at {order}, {table}{key} {order} LIMIT "
    ))
    .push_bind(page.fetch_limit());
    if page.skip > 0 {
        sql.push(" OFFSET ")
            .push_bind(i64::try_from(page.skip).unwrap_or(i64::MAX));
    }
}
