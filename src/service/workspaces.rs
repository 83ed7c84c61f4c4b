//! Workspaces and API keys: the bootstrap of a new database, and the
//! command line's administration.

use super::{Service, found, retrying};
use crate::domain::workspace::{ApiKey, ApiKeyId, NewApiKey, Workspace, WorkspaceName};
use crate::domain::{WorkspaceId, now};
use crate::error::{Result, UniqueIndex};

impl Service {
    /// On an empty database, creates the `default` workspace with one key
    /// and returns both; otherwise (or when another replica won the race)
    /// `None`.
    pub async fn bootstrap(&self) -> Result<Option<(Workspace, NewApiKey)>> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            if tx.count_workspaces().await? > 0 {
                return Ok(None);
            }
            let name =
                WorkspaceName::parse(WorkspaceName::DEFAULT).expect("the default name is valid");
            let workspace = Workspace::new(name, now());
            let key = NewApiKey::generate(workspace.id);
            let created = async {
                tx.insert_workspace(&workspace).await?;
                tx.insert_api_key(&key).await?;
                tx.commit().await
            };
            match created.await {
                Ok(()) => Ok(Some((workspace, key))),
                Err(error) if error.is_clash_on(&[UniqueIndex::WorkspaceName]) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await
    }

    pub async fn create_workspace(&self, name: WorkspaceName) -> Result<Workspace> {
        let workspace = Workspace::new(name, now());
        let new = &workspace;
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            tx.insert_workspace(new).await?;
            tx.commit().await
        })
        .await?;
        Ok(workspace)
    }

    /// A workspace by its name or its id.
    pub async fn find_workspace(&self, name_or_id: &str) -> Result<Option<Workspace>> {
        self.store.read().await?.find_workspace(name_or_id).await
    }

    /// A new key for the workspace, to be shown once.
    pub async fn create_api_key(&self, workspace: WorkspaceId) -> Result<NewApiKey> {
        let key = NewApiKey::generate(workspace);
        let new = &key;
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            tx.insert_api_key(new).await?;
            tx.commit().await
        })
        .await?;
        Ok(key)
    }

    /// A stored key by id, whichever workspace it opens.
    pub async fn find_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        self.store.read().await?.find_api_key(id).await
    }

    pub async fn list_api_keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>> {
        self.store.read().await?.list_api_keys(workspace).await
    }

    /// Revokes a key; revoking twice keeps the first revocation time.
    pub async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey> {
        self.revoke_key_where(id, None).await
    }

    /// Revokes one of `workspace`'s keys: another workspace's key is as
    /// unknown as one that does not exist.
    pub async fn revoke_workspace_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
    ) -> Result<ApiKey> {
        self.revoke_key_where(id, Some(workspace)).await
    }

    async fn revoke_key_where(
        &self,
        id: ApiKeyId,
        workspace: Option<WorkspaceId>,
    ) -> Result<ApiKey> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let key = tx
                .find_api_key(id)
                .await?
                .filter(|key| workspace.is_none_or(|workspace| key.workspace_id == workspace));
            found(key, "API key")?;
            let key = found(tx.revoke_api_key(id, now()).await?, "API key")?;
            tx.commit().await?;
            Ok(key)
        })
        .await
    }
}
