//! The one seam between the two backends. Everything above it is written
//! once, as `Sql`; here a statement meets the backend's connection type, and
//! the few places where the dialects differ (the row lock, the metadata
//! filter) are chosen.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Arguments as _, AssertSqlSafe, Database, Encode, FromRow, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::sql::{Sql, Value};
use super::{postgres, sqlite};
use crate::domain::customer::MetadataValue;
use crate::error::Result;

/// A row type both backends can decode: every `#[derive(sqlx::FromRow)]`
/// struct of the store, and tuples of plain values for scalars.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What locks a selected row for the rest of the transaction. SQLite
    /// has one writer at a time, which serialises writers already.
    /// PostgreSQL takes `FOR NO KEY UPDATE`: it serialises read-merge-write
    /// like `FOR UPDATE` but does not block inserts that only reference the
    /// row (a membership's foreign key), which would otherwise deadlock.
    pub fn lock_row(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// Appends a condition: the customer's `metadata` holds `key` with this
    /// value.
    pub fn push_metadata_filter(self, sql: &mut Sql, key: &str, value: &MetadataValue) {
        match self {
            Self::Sqlite => sqlite::push_metadata_filter(sql, key, value),
            Self::Postgres => postgres::push_metadata_filter(sql, key, value),
        }
    }
}

/// A connection of either backend, borrowed for some statements.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    pub async fn fetch_all<R: Record>(&mut self, sql: Sql) -> Result<Vec<R>> {
        let (text, values, prepared) = sql.into_parts();
        let rows = match self {
            Self::Sqlite(conn) => {
                sqlx::query_as_with::<Sqlite, R, _>(
                    AssertSqlSafe(text),
                    arguments::<Sqlite>(values)?,
                )
                .persistent(prepared)
                .fetch_all(&mut **conn)
                .await?
            }
            Self::Postgres(conn) => {
                sqlx::query_as_with::<Postgres, R, _>(
                    AssertSqlSafe(text),
                    arguments::<Postgres>(values)?,
                )
                .persistent(prepared)
                .fetch_all(&mut **conn)
                .await?
            }
        };
        Ok(rows)
    }

    pub async fn fetch_optional<R: Record>(&mut self, sql: Sql) -> Result<Option<R>> {
        let (text, values, prepared) = sql.into_parts();
        let row = match self {
            Self::Sqlite(conn) => {
                sqlx::query_as_with::<Sqlite, R, _>(
                    AssertSqlSafe(text),
                    arguments::<Sqlite>(values)?,
                )
                .persistent(prepared)
                .fetch_optional(&mut **conn)
                .await?
            }
            Self::Postgres(conn) => {
                sqlx::query_as_with::<Postgres, R, _>(
                    AssertSqlSafe(text),
                    arguments::<Postgres>(values)?,
                )
                .persistent(prepared)
                .fetch_optional(&mut **conn)
                .await?
            }
        };
        Ok(row)
    }

    /// The one row a statement returns (an aggregate, a `RETURNING`).
    pub async fn fetch_one<R: Record>(&mut self, sql: Sql) -> Result<R> {
        self.fetch_optional(sql)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound.into())
    }

    /// Runs a statement; returns how many rows it changed.
    pub async fn execute(&mut self, sql: Sql) -> Result<u64> {
        let (text, values, prepared) = sql.into_parts();
        let affected = match self {
            Self::Sqlite(conn) => {
                sqlx::query_with::<Sqlite, _>(AssertSqlSafe(text), arguments::<Sqlite>(values)?)
                    .persistent(prepared)
                    .execute(&mut **conn)
                    .await?
                    .rows_affected()
            }
            Self::Postgres(conn) => {
                sqlx::query_with::<Postgres, _>(AssertSqlSafe(text), arguments::<Postgres>(values)?)
                    .persistent(prepared)
                    .execute(&mut **conn)
                    .await?
                    .rows_affected()
            }
        };
        Ok(affected)
    }
}

/// The values of a statement as the backend's own arguments.
fn arguments<DB: Database>(values: Vec<Value>) -> Result<DB::Arguments, sqlx::Error>
where
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Box<RawValue>>: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let mut arguments = DB::Arguments::default();
    for value in values {
        let added = match value {
            Value::Uuid(v) => arguments.add(v),
            Value::Text(v) => arguments.add(v),
            Value::Int(v) => arguments.add(v),
            Value::Float(v) => arguments.add(v),
            Value::Bool(v) => arguments.add(v),
            Value::Time(v) => arguments.add(v),
            Value::Json(v) => arguments.add(v),
            Value::Bytes(v) => arguments.add(v),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}
