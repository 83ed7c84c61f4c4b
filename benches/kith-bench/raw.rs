//! The ceilings' writer: rows exactly as Kith stores them, written by sqlx
//! multi-row upserts into Kith's own schema with no service in between.

use anyhow::Context as _;
use sqlx::types::Json;
use uuid::Uuid;

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
    pub search_text: String,
}

/// An entity row as Kith stores it.
pub struct RawEntity {
    pub pk: Uuid,
    pub customer: Uuid,
    pub id: String,
    pub type_id: String,
    pub display_name: String,
    pub metadata: serde_json::Value,
}

/// One multi-row people upsert, written once for both backends' types.
macro_rules! upsert_people {
    ($db:ty, $pool:expr, $workspace:expr, $rows:expr) => {{
        let now = chrono::Utc::now();
        let mut query = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO people (id, workspace_id, external_id, email, email_key, first_name, \
             last_name, status, attributes, search_text, created_at, updated_at, first_seen_at, \
             last_seen_at) ",
        );
        query.push_values($rows, |mut row, p: &RawPerson| {
            row.push_bind(p.id)
                .push_bind($workspace)
                .push_bind(p.external_id.as_str())
                .push_bind(p.email.as_str())
                .push_bind(p.email_key.as_str())
                .push_bind(p.first_name.as_str())
                .push_bind(p.last_name.as_str())
                .push_bind("active")
                .push_bind(Json(&p.attributes))
                .push_bind(p.search_text.as_str())
                .push_bind(now)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        query.push(
            " ON CONFLICT (workspace_id, external_id) DO UPDATE SET email = excluded.email, \
             email_key = excluded.email_key, first_name = excluded.first_name, \
             last_name = excluded.last_name, attributes = excluded.attributes, \
             search_text = excluded.search_text, updated_at = excluded.updated_at, \
             last_seen_at = excluded.last_seen_at",
        );
        query.build().execute($pool).await?;
        anyhow::Ok(())
    }};
}

/// One multi-row entity upsert, for both backends' types.
macro_rules! upsert_entities {
    ($db:ty, $pool:expr, $workspace:expr, $rows:expr) => {{
        let now = chrono::Utc::now();
        let mut query = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO entities (pk, workspace_id, customer_id, id, type_id, display_name, \
             metadata, created_at, updated_at) ",
        );
        query.push_values($rows, |mut row, e: &RawEntity| {
            row.push_bind(e.pk)
                .push_bind($workspace)
                .push_bind(e.customer)
                .push_bind(e.id.as_str())
                .push_bind(e.type_id.as_str())
                .push_bind(e.display_name.as_str())
                .push_bind(Json(&e.metadata))
                .push_bind(now)
                .push_bind(now);
        });
        query.push(
            " ON CONFLICT (customer_id, id) DO UPDATE SET type_id = excluded.type_id, \
             display_name = excluded.display_name, metadata = excluded.metadata, \
             updated_at = excluded.updated_at",
        );
        query.build().execute($pool).await?;
        anyhow::Ok(())
    }};
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

    /// The id of the workspace Kith's first start created.
    pub async fn default_workspace(&self) -> anyhow::Result<Uuid> {
        const QUERY: &str = "SELECT id FROM workspaces WHERE name = 'default'";
        let id = match self {
            Self::Postgres(pool) => sqlx::query_scalar(QUERY).fetch_optional(pool).await?,
            Self::Sqlite(pool) => sqlx::query_scalar(QUERY).fetch_optional(pool).await?,
        };
        id.context("Kith has not bootstrapped this database")
    }

    pub async fn upsert_people(&self, workspace: Uuid, rows: &[RawPerson]) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => upsert_people!(sqlx::Postgres, pool, workspace, rows),
            Self::Sqlite(pool) => upsert_people!(sqlx::Sqlite, pool, workspace, rows),
        }
    }

    pub async fn upsert_entities(&self, workspace: Uuid, rows: &[RawEntity]) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => upsert_entities!(sqlx::Postgres, pool, workspace, rows),
            Self::Sqlite(pool) => upsert_entities!(sqlx::Sqlite, pool, workspace, rows),
        }
    }
}
