//! SQLite: the embedded default, a single file.
//!
//! Writes go through a pool of one connection, so writers queue in the
//! service instead of failing with `SQLITE_BUSY`, and a unique clash between
//! racing writers surfaces as a clean constraint error. Reads use their own
//! pool and never wait for writers (WAL).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use super::sql::impl_store;
use super::user_sql::impl_user_store;
use crate::domain::customer::MetadataValue;

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the file `url` names, `sqlite:kith.db` or a
    /// plain path, and migrates it.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
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
        // The writer's page cache holds the hot index pages of a large
        // table (16 MiB; SQLite's default is 2): with a million people, a
        // batch otherwise rereads them from the OS and runs at 60 % of the
        // rate on an empty table (BENCHMARKS.md, growth).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-16384"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { reader, writer })
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// `metadata` holds `key` with this value. Numbers compare by value
    /// whether stored as integer or real, as in PostgreSQL's jsonb.
    fn push_metadata_filter(query: &mut QueryBuilder<Sqlite>, key: &str, value: &MetadataValue) {
        query
            .push("EXISTS (SELECT 1 FROM json_each(customers.metadata) AS m WHERE m.key = ")
            .push_bind(key.to_owned());
        match value {
            MetadataValue::Bool(b) => {
                query.push(if *b {
                    " AND m.type = 'true'"
                } else {
                    " AND m.type = 'false'"
                });
            }
            MetadataValue::Int(i) => {
                query
                    .push(" AND m.type IN ('integer', 'real') AND m.value = ")
                    .push_bind(*i);
            }
            MetadataValue::Float(f) => {
                query
                    .push(" AND m.type IN ('integer', 'real') AND m.value = ")
                    .push_bind(*f);
            }
            MetadataValue::String(s) => {
                query
                    .push(" AND m.type = 'text' AND m.value = ")
                    .push_bind(s.clone());
            }
        }
        query.push(")");
    }
}

impl_store!(SqliteStore, Sqlite, lock_row = "");
impl_user_store!(SqliteStore, Sqlite, lock_row = "");
