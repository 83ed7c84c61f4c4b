//! Entities (owned by a customer) and the workspace's entity types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rows::{
    ENTITY_COLUMNS, ENTITY_TYPE_COLUMNS, EntityRow, EntityTypeRow, entity_cursor,
    entity_type_cursor,
};
use super::search::{SearchColumns, push_search};
use super::sql::{Sql, Value};
use super::{Session, Transaction, push_page};
use crate::domain::WorkspaceId;
use crate::domain::entity::{Entity, EntityFilter, EntityId, EntityType, EntityTypeId};
use crate::domain::page::{Cursor, Page, PageRequest};
use crate::domain::search::SEARCH_VERSION;
use crate::error::Result;

/// An entity is found by its id's start, its display name and its metadata
/// values.
const ENTITY_SEARCH: SearchColumns = SearchColumns {
    table: "entities",
    text: "search_text",
    key: Some("search_key"),
    keys: None,
};

impl Session {
    /// The entities of one customer with these ids, by id.
    pub async fn entities<'i>(
        &mut self,
        workspace: WorkspaceId,
        customer: Uuid,
        ids: impl IntoIterator<Item = &'i EntityId>,
    ) -> Result<HashMap<EntityId, Entity>> {
        let mut sql = Sql::new(format!(
            "SELECT {ENTITY_COLUMNS} FROM entities WHERE workspace_id = $1 AND customer_id = $2 \
             AND id IN ("
        ))
        .bind(workspace.0)
        .bind(customer);
        sql.push_list(ids.into_iter().map(EntityId::as_str))
            .push(")");
        // Lists vary in length: see `Sql::unprepared`.
        let rows: Vec<EntityRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let entity = Entity::from(row);
                (entity.id.clone(), entity)
            })
            .collect())
    }

    /// The workspace's entity types with these ids, by id.
    pub async fn entity_types<'i>(
        &mut self,
        workspace: WorkspaceId,
        ids: impl IntoIterator<Item = &'i EntityTypeId>,
    ) -> Result<HashMap<EntityTypeId, EntityType>> {
        let ids: Vec<&str> = ids.into_iter().map(EntityId::as_str).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new(format!(
            "SELECT {ENTITY_TYPE_COLUMNS} FROM entity_types WHERE workspace_id = $1 AND id IN ("
        ))
        .bind(workspace.0);
        sql.push_list(ids).push(")");
        let rows: Vec<EntityTypeRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let entity_type = EntityType::from(row);
                (entity_type.id.clone(), entity_type)
            })
            .collect())
    }

    pub async fn list_entities(
        &mut self,
        workspace: WorkspaceId,
        customer: Uuid,
        filter: &EntityFilter,
        page: &PageRequest,
    ) -> Result<Page<Entity>> {
        let mut sql = Sql::new(format!(
            "SELECT {ENTITY_COLUMNS} FROM entities WHERE workspace_id = $1 AND customer_id = $2"
        ))
        .bind(workspace.0)
        .bind(customer);
        if let Some(type_id) = &filter.type_id {
            sql.push(" AND type_id = ").push_bind(type_id.as_str());
        }
        if !filter.include_archived {
            sql.push(" AND archived_at IS NULL");
        }
        if let Some(query) = &filter.query {
            push_search(&mut sql, query, ENTITY_SEARCH);
        }
        push_page(&mut sql, page, "", "pk");
        let rows: Vec<EntityRow> = self.fetch_all(sql).await?;
        Ok(page.finish(rows.into_iter().map(Into::into).collect(), entity_cursor))
    }

    pub async fn list_entity_types(
        &mut self,
        workspace: WorkspaceId,
        page: &PageRequest,
    ) -> Result<Page<EntityType>> {
        let mut sql = Sql::new(format!(
            "SELECT {ENTITY_TYPE_COLUMNS} FROM entity_types WHERE workspace_id = $1"
        ))
        .bind(workspace.0);
        push_page(&mut sql, page, "", "pk");
        let rows: Vec<EntityTypeRow> = self.fetch_all(sql).await?;
        Ok(page.finish(
            rows.into_iter().map(Into::into).collect(),
            entity_type_cursor,
        ))
    }

    /// Where the entity with this internal key sits in its customer's
    /// listing, for APIs whose cursors are record ids (seed 000).
    pub async fn entity_cursor(
        &mut self,
        workspace: WorkspaceId,
        customer: Uuid,
        key: Uuid,
    ) -> Result<Option<Cursor>> {
        let sql = Sql::new(
            "SELECT created_at FROM entities WHERE pk = $1 AND workspace_id = $2 \
             AND customer_id = $3",
        )
        .bind(key)
        .bind(workspace.0)
        .bind(customer);
        let row: Option<(DateTime<Utc>,)> = self.fetch_optional(sql).await?;
        Ok(row.map(|(created_at,)| Cursor {
            created_at,
            id: key,
        }))
    }

    /// Where the entity type with this internal key sits in the listing.
    pub async fn entity_type_cursor(
        &mut self,
        workspace: WorkspaceId,
        key: Uuid,
    ) -> Result<Option<Cursor>> {
        let sql =
            Sql::new("SELECT created_at FROM entity_types WHERE pk = $1 AND workspace_id = $2")
                .bind(key)
                .bind(workspace.0);
        let row: Option<(DateTime<Utc>,)> = self.fetch_optional(sql).await?;
        Ok(row.map(|(created_at,)| Cursor {
            created_at,
            id: key,
        }))
    }
}

impl Transaction {
    /// Writes whole entity rows with one multi-row statement.
    pub async fn write_entities(
        &mut self,
        workspace: WorkspaceId,
        entities: &[Entity],
    ) -> Result<()> {
        if entities.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(
            "INSERT INTO entities (pk, workspace_id, customer_id, id, type_id, display_name, \
             metadata, created_at, updated_at, archived_at, search_text, search_key, \
             search_version) ",
        );
        sql.push_values(entities, |row, entity| {
            let document = entity.search_document();
            row.bind(entity.key)
                .bind(workspace.0)
                .bind(entity.customer_id)
                .bind(entity.id.as_str())
                .bind(entity.type_id.as_str())
                .bind(entity.display_name.as_deref())
                .bind(Value::json(&entity.metadata))
                .bind(entity.created_at)
                .bind(entity.updated_at)
                .bind(entity.archived_at)
                .bind(document.text())
                .bind(document.key())
                .bind(SEARCH_VERSION);
        });
        sql.push(
            " ON CONFLICT (customer_id, id) DO UPDATE SET type_id = excluded.type_id, \
             display_name = excluded.display_name, metadata = excluded.metadata, \
             updated_at = excluded.updated_at, archived_at = excluded.archived_at, \
             search_text = excluded.search_text, search_key = excluded.search_key, \
             search_version = excluded.search_version",
        );
        self.execute(sql).await.map(drop)
    }

    /// Writes whole entity type rows and returns them as stored: a type a
    /// concurrent batch created since it was read keeps its own key and
    /// creation time.
    pub async fn write_entity_types(
        &mut self,
        workspace: WorkspaceId,
        types: &[EntityType],
    ) -> Result<Vec<EntityType>> {
        let mut sql = Sql::new(
            "INSERT INTO entity_types (pk, workspace_id, id, display_name, attribution_keys, \
             created_at, updated_at, archived_at) ",
        );
        sql.push_values(types, |row, t| {
            row.bind(t.key)
                .bind(workspace.0)
                .bind(t.id.as_str())
                .bind(t.display_name.as_str())
                .bind(Value::json(&t.attribution_keys))
                .bind(t.created_at)
                .bind(t.updated_at)
                .bind(t.archived_at);
        });
        sql.push(&format!(
            " ON CONFLICT (workspace_id, id) DO UPDATE SET display_name = excluded.display_name, \
             attribution_keys = excluded.attribution_keys, updated_at = excluded.updated_at, \
             archived_at = excluded.archived_at RETURNING {ENTITY_TYPE_COLUMNS}"
        ));
        let rows: Vec<EntityTypeRow> = self.fetch_all(sql).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
