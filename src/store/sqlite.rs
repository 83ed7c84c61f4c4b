//! SQLite: the embedded default, a single file. Connection setup and the
//! SQLite side of the dialect seam.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::Sql;
use crate::domain::customer::MetadataValue;

/// Opens (creating if needed) the file `url` names, `sqlite:kith.db` or a
/// plain path, migrates it, and returns its reader and writer pools.
pub(super) async fn connect(url: &str) -> anyhow::Result<(SqlitePool, SqlitePool)> {
    let options = SqliteConnectOptions::from_str(&sqlx_url(url))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL keeps every committed transaction across a
        // process crash; only an OS crash may lose the last ones.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    // The writer's page cache holds the hot index pages of a large table
    // (16 MiB; SQLite's default is 2): with a million people, a batch
    // otherwise rereads them from the OS and runs at 60 % of the rate on an
    // empty table (BENCHMARKS.md, growth).
    let writer = pool_options()
        .max_connections(1)
        .connect_with(options.clone().pragma("cache_size", "-16384"))
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
    let reader = pool_options()
        .max_connections(4)
        .connect_with(options.read_only(true))
        .await?;
    Ok((reader, writer))
}

/// A pool's options. A connection to a local file is not dropped by a
/// network, so it is not pinged before use (sqlx's default, a round trip
/// to the connection's worker thread on every acquire).
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().test_before_acquire(false)
}

/// `sqlite:kith.db`, `sqlite://…` or a plain path, as sqlx spells it.
fn sqlx_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    }
}

/// Writes a consistent copy of the database `url` names to `to`, while
/// other processes read and write it: `VACUUM INTO` reads one snapshot
/// (WAL), on a read-only connection that never blocks a writer. The copy
/// is compacted and has no WAL of its own.
pub(super) async fn back_up(url: &str, to: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sqlx::Connection as _;
    let options = SqliteConnectOptions::from_str(&sqlx_url(url))?
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    let to = to
        .to_str()
        .context("the backup's path must be valid UTF-8")?;
    sqlx::query("VACUUM INTO ?")
        .bind(to)
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot write the backup to {to}"))?;
    connection.close().await?;
    Ok(())
}

/// `metadata` holds `key` with this value. Numbers compare by value whether
/// stored as integer or real, as in PostgreSQL's jsonb.
pub(super) fn push_metadata_filter(sql: &mut Sql, key: &str, value: &MetadataValue) {
    sql.push("EXISTS (SELECT 1 FROM json_each(customers.metadata) AS m WHERE m.key = ")
        .push_bind(key);
    match value {
        MetadataValue::Bool(true) => sql.push(" AND m.type = 'true'"),
        MetadataValue::Bool(false) => sql.push(" AND m.type = 'false'"),
        MetadataValue::Int(i) => sql
            .push(" AND m.type IN ('integer', 'real') AND m.value = ")
            .push_bind(*i),
        MetadataValue::Float(f) => sql
            .push(" AND m.type IN ('integer', 'real') AND m.value = ")
            .push_bind(*f),
        MetadataValue::String(s) => sql.push(" AND m.type = 'text' AND m.value = ").push_bind(s),
    };
    sql.push(")");
}
