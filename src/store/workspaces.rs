//! Workspaces and their API keys.

use super::rows::{ApiKeyRow, WorkspaceRow};
use super::sql::Sql;
use super::{Session, Transaction};
use crate::domain::WorkspaceId;
use crate::domain::workspace::{ApiKey, ApiKeyId, NewApiKey, Workspace};
use crate::error::Result;

const API_KEY_COLUMNS: &str = "id, workspace_id, secret_hash, created_at, revoked_at";

impl Session {
    pub async fn count_workspaces(&mut self) -> Result<u64> {
        self.count(Sql::new("SELECT COUNT(*) FROM workspaces"))
            .await
    }

    /// The workspace with this name, or this id.
    pub async fn find_workspace(&mut self, name_or_id: &str) -> Result<Option<Workspace>> {
        let sql = match uuid::Uuid::try_parse(name_or_id) {
            Ok(id) => {
                Sql::new("SELECT id, name, created_at FROM workspaces WHERE id = $1").bind(id)
            }
            Err(_) => Sql::new("SELECT id, name, created_at FROM workspaces WHERE name = $1")
                .bind(name_or_id),
        };
        let row: Option<WorkspaceRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    /// A key by its id, from any workspace: this is how a presented key
    /// finds the workspace it opens.
    pub async fn find_api_key(&mut self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        let sql = Sql::new(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
        ))
        .bind(id.0);
        let row: Option<ApiKeyRow> = self.fetch_optional(sql).await?;
        row.map(TryInto::try_into).transpose()
    }

    pub async fn list_api_keys(&mut self, workspace: WorkspaceId) -> Result<Vec<ApiKey>> {
        let sql = Sql::new(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace.0);
        let rows: Vec<ApiKeyRow> = self.fetch_all(sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

impl Transaction {
    /// Inserts a workspace with its change counter, at zero.
    pub async fn insert_workspace(&mut self, workspace: &Workspace) -> Result<()> {
        let sql = Sql::new("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(workspace.id.0)
            .bind(workspace.name.as_str())
            .bind(workspace.created_at);
        self.execute(sql).await?;
        let counter =
            Sql::new("INSERT INTO change_counters (workspace_id) VALUES ($1)").bind(workspace.id.0);
        self.execute(counter).await.map(drop)
    }

    pub async fn insert_api_key(&mut self, key: &NewApiKey) -> Result<()> {
        let sql = Sql::new(
            "INSERT INTO api_keys (id, workspace_id, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key.id.0)
        .bind(key.workspace_id.0)
        .bind(&key.secret_hash.0[..])
        .bind(key.created_at);
        self.execute(sql).await.map(drop)
    }

    /// Revokes a key at `now`, keeping an earlier revocation's time; `None`
    /// when there is no such key.
    pub async fn revoke_api_key(
        &mut self,
        id: ApiKeyId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ApiKey>> {
        let sql = Sql::new(format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING {API_KEY_COLUMNS}"
        ))
        .bind(id.0)
        .bind(now);
        let row: Option<ApiKeyRow> = self.fetch_optional(sql).await?;
        row.map(TryInto::try_into).transpose()
    }
}
