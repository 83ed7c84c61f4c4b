//! The ceilings' writer: rows exactly as Kith stores them, written by sqlx
//! multi-row upserts into Kith's own schema with no service in between;
//! with the change log, the same rows and their change rows in one
//! transaction, numbered by the workspace's counter row as Kith numbers
//! them.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::query_builder::QueryBuilder;
use sqlx::types::Json;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use kith::domain::search::{SEARCH_VERSION, SearchDocument};

/// A pool on the benchmark's database, sized like Kith's for the backend:
/// SQLite has one writer at a time, PostgreSQL as many as callers.
pub enum RawPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A person row as Kith stores it.
pub struct RawPerson {
    pub id: Uuid,
    pub external_id: String,
    pub email: String,
    pub email_key: String,
    pub first_name: String,
    pub last_name: String,
    pub attributes: serde_json::Value,
    /// Folded by the domain, as Kith stores it.
    pub search: SearchDocument,
}

/// An entity row as Kith stores it.
pub struct RawEntity {
    pub pk: Uuid,
    pub customer: Uuid,
    pub id: String,
    pub type_id: String,
    pub display_name: String,
    pub metadata: serde_json::Value,
    pub search: SearchDocument,
}

/// A change row as Kith logs it, its record already encoded.
pub struct RawChange {
    pub kind: &'static str,
    pub operation: &'static str,
    pub record_id: String,
    pub external_id: Option<String>,
    pub owner_id: Option<String>,
    pub record: Vec<u8>,
}

/// Who writes the logged ceilings' changes: the workspace and its key.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub workspace: Uuid,
    pub key: Uuid,
}

const INSERT_PEOPLE: &str = "INSERT INTO people (id, workspace_id, external_id, email, \
     email_key, first_name, last_name, status, attributes, search_text, search_key, \
     search_version, created_at, updated_at, first_seen_at, last_seen_at) ";
const UPSERT_PEOPLE: &str = " ON CONFLICT (workspace_id, external_id) DO UPDATE SET \
     email = excluded.email, email_key = excluded.email_key, first_name = excluded.first_name, \
     last_name = excluded.last_name, attributes = excluded.attributes, \
     search_text = excluded.search_text, search_key = excluded.search_key, \
     search_version = excluded.search_version, updated_at = excluded.updated_at, \
     last_seen_at = excluded.last_seen_at";
const INSERT_ENTITIES: &str = "INSERT INTO entities (pk, workspace_id, customer_id, id, type_id, \
     display_name, metadata, created_at, updated_at, search_text, search_key, search_version) ";
const UPSERT_ENTITIES: &str = " ON CONFLICT (customer_id, id) DO UPDATE SET \
     type_id = excluded.type_id, display_name = excluded.display_name, \
     metadata = excluded.metadata, updated_at = excluded.updated_at, \
     search_text = excluded.search_text, search_key = excluded.search_key, \
     search_version = excluded.search_version";
const INSERT_CHANGES: &str = "INSERT INTO changes (workspace_id, seq, kind, operation, \
     record_id, external_id, owner_id, api_key_id, committed_at, record) ";

/// The rows the ceilings write, as one statement of either backend.
enum Rows<'a> {
    People(&'a [RawPerson]),
    Entities(&'a [RawEntity]),
}

/// One multi-row statement for `rows`, with the binds the backend needs.
fn upsert<DB>(workspace: Uuid, rows: &Rows<'_>, now: DateTime<Utc>) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q serde_json::Value>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    match *rows {
        Rows::People(people) => {
            let mut query = QueryBuilder::new(INSERT_PEOPLE);
            query.push_values(people, |mut row, p| {
                row.push_bind(p.id)
                    .push_bind(workspace)
                    .push_bind(p.external_id.as_str())
                    .push_bind(p.email.as_str())
                    .push_bind(p.email_key.as_str())
                    .push_bind(p.first_name.as_str())
                    .push_bind(p.last_name.as_str())
                    .push_bind("active")
                    .push_bind(Json(&p.attributes))
                    .push_bind(p.search.text())
                    .push_bind(p.search.key())
                    .push_bind(SEARCH_VERSION)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            query.push(UPSERT_PEOPLE);
            query
        }
        Rows::Entities(entities) => {
            let mut query = QueryBuilder::new(INSERT_ENTITIES);
            query.push_values(entities, |mut row, e| {
                row.push_bind(e.pk)
                    .push_bind(workspace)
                    .push_bind(e.customer)
                    .push_bind(e.id.as_str())
                    .push_bind(e.type_id.as_str())
                    .push_bind(e.display_name.as_str())
                    .push_bind(Json(&e.metadata))
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(e.search.text())
                    .push_bind(e.search.key())
                    .push_bind(SEARCH_VERSION);
            });
            query.push(UPSERT_ENTITIES);
            query
        }
    }
}

/// The rows alone in one statement; or rows and changes in one
/// transaction: the workspace's counter row updated after the rows, as
/// Kith does, then the changes numbered from it.
async fn write<DB>(
    pool: &sqlx::Pool<DB>,
    writer: Writer,
    rows: Option<Rows<'_>>,
    changes: Option<&[RawChange]>,
) -> anyhow::Result<()>
where
    DB: Database,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q serde_json::Value>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let now = Utc::now();
    let Some(changes) = changes else {
        if let Some(rows) = rows {
            upsert(writer.workspace, &rows, now)
                .build()
                .execute(pool)
                .await?;
        }
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    if let Some(rows) = rows {
        upsert(writer.workspace, &rows, now)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    let count = i64::try_from(changes.len())?;
    let mut counter = QueryBuilder::new("UPDATE change_counters SET last_seq = last_seq + ");
    counter
        .push_bind(count)
        .push(" WHERE workspace_id = ")
        .push_bind(writer.workspace)
        .push(" RETURNING last_seq");
    let (last_seq,): (i64,) = counter.build_query_as().fetch_one(&mut *tx).await?;
    let mut insert = QueryBuilder::new(INSERT_CHANGES);
    insert.push_values(
        changes.iter().zip(last_seq - count + 1..),
        |mut row, (c, seq)| {
            row.push_bind(writer.workspace)
                .push_bind(seq)
                .push_bind(c.kind)
                .push_bind(c.operation)
                .push_bind(c.record_id.as_str())
                .push_bind(c.external_id.as_deref())
                .push_bind(c.owner_id.as_deref())
                .push_bind(writer.key)
                .push_bind(now)
                .push_bind(c.record.as_slice());
        },
    );
    insert.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

impl RawPool {
    pub async fn open(database_url: &str, connections: usize) -> anyhow::Result<Self> {
        if database_url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(u32::try_from(connections)?)
                .connect(database_url)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            // Kith's own settings: WAL, and `synchronous=NORMAL`, which keeps
            // every commit across a process crash.
            let options: sqlx::sqlite::SqliteConnectOptions = database_url.parse()?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    options
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
                )
                .await?;
            Ok(Self::Sqlite(pool))
        }
    }

    /// The workspace Kith's first start created, and its first key.
    pub async fn default_writer(&self) -> anyhow::Result<Writer> {
        const QUERY: &str = "SELECT w.id, k.id FROM workspaces w \
             JOIN api_keys k ON k.workspace_id = w.id \
             WHERE w.name = 'default' ORDER BY k.created_at LIMIT 1";
        let ids: Option<(Uuid, Uuid)> = match self {
            Self::Postgres(pool) => sqlx::query_as(QUERY).fetch_optional(pool).await?,
            Self::Sqlite(pool) => sqlx::query_as(QUERY).fetch_optional(pool).await?,
        };
        let (workspace, key) = ids.context("Kith has not bootstrapped this database")?;
        Ok(Writer { workspace, key })
    }

    /// The id of the workspace Kith's first start created.
    pub async fn default_workspace(&self) -> anyhow::Result<Uuid> {
        Ok(self.default_writer().await?.workspace)
    }

    /// People rows; with `changes`, their change rows in the same
    /// transaction.
    pub async fn upsert_people(
        &self,
        writer: Writer,
        rows: &[RawPerson],
        changes: Option<&[RawChange]>,
    ) -> anyhow::Result<()> {
        let rows = Some(Rows::People(rows));
        match self {
            Self::Postgres(pool) => write(pool, writer, rows, changes).await,
            Self::Sqlite(pool) => write(pool, writer, rows, changes).await,
        }
    }

    /// Entity rows; with `changes`, their change rows in the same
    /// transaction.
    pub async fn upsert_entities(
        &self,
        writer: Writer,
        rows: &[RawEntity],
        changes: Option<&[RawChange]>,
    ) -> anyhow::Result<()> {
        let rows = Some(Rows::Entities(rows));
        match self {
            Self::Postgres(pool) => write(pool, writer, rows, changes).await,
            Self::Sqlite(pool) => write(pool, writer, rows, changes).await,
        }
    }

    /// Change rows alone, numbered on from the counter (setup, for the
    /// catch-up scenario).
    pub async fn append_changes(
        &self,
        writer: Writer,
        changes: &[RawChange],
    ) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => write(pool, writer, None, Some(changes)).await,
            Self::Sqlite(pool) => write(pool, writer, None, Some(changes)).await,
        }
    }
}
