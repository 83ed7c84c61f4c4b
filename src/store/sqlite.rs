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
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    let options = SqliteConnectOptions::from_str(&url)?
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
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone().pragma("cache_size", "-16384"))
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.read_only(true))
        .await?;
    Ok((reader, writer))
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
