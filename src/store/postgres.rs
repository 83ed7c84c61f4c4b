//! PostgreSQL: for production and for several replicas on one database.
//! Connection setup and the PostgreSQL side of the dialect seam.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::sql::{Sql, Value};
use crate::domain::customer::MetadataValue;

/// Taken first by every write transaction when the database runs them at
/// REPEATABLE READ or SERIALIZABLE (see `snapshot_isolation`): a table
/// lock is the one lock PostgreSQL grants before a transaction takes its
/// snapshot, so writers queue for it and each one's snapshot sees every
/// write before it. Readers (ACCESS SHARE) never wait for it.
pub(super) const QUEUE_WRITERS: &str = "LOCK TABLE change_counters IN SHARE ROW EXCLUSIVE MODE";

/// Whether this database's transactions run at REPEATABLE READ or
/// SERIALIZABLE by default (as CockroachDB's and YugabyteDB's do, or a
/// PostgreSQL set so). Every write of a workspace updates its change
/// counter, so at those levels two concurrent writes always conflict and
/// the later one to commit fails; with thirty-two writers some would fail
/// thirty times in a row. Queued behind `QUEUE_WRITERS` they do not.
pub(super) async fn snapshot_isolation(pool: &PgPool) -> anyhow::Result<bool> {
    let (level,): (String,) =
        sqlx::query_as("SELECT current_setting('default_transaction_isolation')")
            .fetch_one(pool)
            .await?;
    Ok(matches!(level.as_str(), "serializable" | "repeatable read"))
}

/// A connection that sat idle this long is pinged before it is handed out,
/// so one that the network or the server dropped meanwhile is replaced
/// instead of failing a call. A busy pool's connections are idle for far
/// less and pay no round trip for it (sqlx would ping on every acquire);
/// one broken while in use is caught by the ping sqlx sends on release.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// The options every PostgreSQL pool, primary or replica, starts from.
pub(super) fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(16)
        .test_before_acquire(false)
        .before_acquire(|connection, idle| {
            Box::pin(async move {
                if idle.idle_for >= IDLE_BEFORE_PING {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}

pub(super) async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?;
    // Migrations run on a connection of their own, without the bounds
    // below: building an index on a large table may take minutes.
    let mut migrating = PgConnection::connect_with(&options).await?;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut migrating)
        .await?;
    migrating.close().await?;
    // A call whose caller gave up is dropped, but the statement it sent runs
    // on in the server: these bound how long such work, or a transaction
    // left open by it, can hold rows and a connection.
    let bounded = options.options([
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "60s"),
    ]);
    let pool = pool_options()
        // Fail fast while the database is down instead of queueing calls
        // past their deadlines.
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(bounded)
        .await?;
    Ok(pool)
}

/// `metadata` holds `key` with this value (jsonb containment).
pub(super) fn push_metadata_filter(sql: &mut Sql, key: &str, value: &MetadataValue) {
    let pair = serde_json::json!({ key: value });
    sql.push("metadata @> ").push_bind(Value::json(&pair));
}

/// Wake-ups from commits on any replica: the notifications the change
/// counter's trigger sends (migrations/postgres/0005_changes.sql).
pub struct ChangeListener(sqlx::postgres::PgListener);

impl ChangeListener {
    pub(super) async fn connect(pool: &PgPool) -> crate::error::Result<Self> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Self(listener))
    }

    /// Waits for the next commit that changed something. A lost connection
    /// is an error; the caller listens again.
    pub async fn next(&mut self) -> crate::error::Result<()> {
        self.0.recv().await?;
        Ok(())
    }
}

/// The channel the change counter's trigger notifies.
const CHANGES_CHANNEL: &str = "kith_changes";
