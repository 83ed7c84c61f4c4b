//! PostgreSQL: for production and for several replicas on one database.
//! Every uniqueness rule is an index, so replicas racing cannot both win.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::sql::impl_store;
use super::user_sql::impl_user_store;
use crate::domain::customer::MetadataValue;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        // Migrations run on a connection of their own, without the bounds
        // below: building an index on a large table may take minutes.
        let mut migrating = PgConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut migrating)
            .await?;
        migrating.close().await?;
        // A call whose caller gave up is dropped, but the statement it sent
        // runs on in the server: these bound how long such work, or a
        // transaction left open by it, can hold rows and a connection.
        let bounded = options.options([
            ("statement_timeout", "30s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Fail fast while the database is down instead of queueing calls
            // past their deadlines.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(bounded)
            .await?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// `metadata` holds `key` with this value (jsonb containment).
    fn push_metadata_filter(query: &mut QueryBuilder<Postgres>, key: &str, value: &MetadataValue) {
        let pair = serde_json::json!({ key: value });
        query.push("metadata @> ").push_bind(Json(pair));
    }
}

// Row locks are `FOR NO KEY UPDATE`: they serialise read-merge-write like
// `FOR UPDATE` but do not block inserts that only reference the row (a
// membership's foreign key), which would otherwise deadlock.
impl_store!(PgStore, Postgres, lock_row = " FOR NO KEY UPDATE");
impl_user_store!(PgStore, Postgres, lock_row = " FOR NO KEY UPDATE");
