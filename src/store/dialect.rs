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

    /// The aggregate that gathers `(name, value)` rows into one JSON
    /// object. Over no rows, SQLite's gives `{}` and PostgreSQL's NULL.
    pub fn json_object_aggregate(self) -> &'static str {
        match self {
            Self::Sqlite => "json_group_object",
            Self::Postgres => "json_object_agg",
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
        let rows = match self {
            Self::Sqlite(conn) => {
                sqlite_query(sql)?
                    .try_map(|row: SqliteRow| R::from_row(&row))
                    .fetch_all(&mut **conn)
                    .await?
            }
            Self::Postgres(conn) => {
                postgres_query(sql)?
                    .try_map(|row: PgRow| R::from_row(&row))
                    .fetch_all(&mut **conn)
                    .await?
            }
        };
        Ok(rows)
    }

    pub async fn fetch_optional<R: Record>(&mut self, sql: Sql) -> Result<Option<R>> {
        let row = match self {
            Self::Sqlite(conn) => {
                sqlite_query(sql)?
                    .try_map(|row: SqliteRow| R::from_row(&row))
                    .fetch_optional(&mut **conn)
                    .await?
            }
            Self::Postgres(conn) => {
                postgres_query(sql)?
                    .try_map(|row: PgRow| R::from_row(&row))
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
        let affected = match self {
            Self::Sqlite(conn) => sqlite_query(sql)?
                .execute(&mut **conn)
                .await?
                .rows_affected(),
            Self::Postgres(conn) => postgres_query(sql)?
                .execute(&mut **conn)
                .await?
                .rows_affected(),
        };
        Ok(affected)
    }
}

type Query<DB> = sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;

fn sqlite_query(sql: Sql) -> Result<Query<Sqlite>, sqlx::Error> {
    let (text, values, prepared) = sql.into_parts();
    let (text, values) = sqlite_statement(text, values);
    let arguments = arguments::<Sqlite>(values)?;
    Ok(sqlx::query_with(AssertSqlSafe(text), arguments).persistent(prepared))
}

fn postgres_query(sql: Sql) -> Result<Query<Postgres>, sqlx::Error> {
    let (text, values, prepared) = sql.into_parts();
    let arguments = arguments::<Postgres>(values)?;
    Ok(sqlx::query_with(AssertSqlSafe(text), arguments).persistent(prepared))
}

/// The statement as SQLite takes it fastest: anonymous `?` placeholders,
/// with the values in the order they appear. SQLite keeps a named or
/// numbered parameter (`$N`, `?N`) in a list it scans at every bind, which
/// makes a statement of thousands of values (a batch of 500 people binds
/// 9 000) quadratic to bind; anonymous ones are never looked up. A `$N`
/// used twice takes its value twice. Kith's SQL has no `$` but its
/// placeholders.
fn sqlite_statement(text: String, values: Vec<Value>) -> (String, Vec<Value>) {
    if !text.contains('$') {
        return (text, values);
    }
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::with_capacity(values.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |end| end);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) if (1..=values.len()).contains(&n) => {
                out.push('?');
                order.push(n - 1);
            }
            _ => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    let in_order = order.len() == values.len() && order.iter().enumerate().all(|(i, n)| i == *n);
    if in_order {
        (out, values)
    } else {
        (out, order.into_iter().map(|n| values[n].clone()).collect())
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

#[cfg(test)]
mod tests {
    use super::sqlite_statement;
    use crate::store::sql::Value;

    fn texts(values: &[Value]) -> Vec<String> {
        values.iter().map(|v| format!("{v:?}")).collect()
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders_and_values_in_their_order() {
        let values: Vec<Value> = ["a", "b", "c"].map(Value::from).to_vec();
        let (text, bound) = sqlite_statement("SELECT $1, $2, $3".into(), values.clone());
        assert_eq!(text, "SELECT ?, ?, ?");
        assert_eq!(texts(&bound), texts(&values));
        let (text, bound) =
            sqlite_statement("WHERE a = $1 AND b IN ($3, $2) AND c = $1".into(), values);
        assert_eq!(text, "WHERE a = ? AND b IN (?, ?) AND c = ?");
        let expected: Vec<Value> = ["a", "c", "b", "a"].map(Value::from).to_vec();
        assert_eq!(texts(&bound), texts(&expected));
        let (text, bound) = sqlite_statement("SELECT 1".into(), Vec::new());
        assert_eq!((text.as_str(), bound.len()), ("SELECT 1", 0));
    }
}
