//! Entities (seed 000) and entity types.

use uuid::Uuid;

use super::changes::Changes;
use super::{Listing, Service, found, lock_live_customer, retrying};
use crate::domain::change::ChangeOperation;
use crate::domain::customer::{Customer, CustomerLookup, ExternalId};
use crate::domain::entity::{
    self, Entity, EntityFilter, EntityId, EntityType, EntityTypeUpsert, EntityUpsert,
};
use crate::domain::page::{Cursor, Page, PageRequest};
use crate::domain::{Caller, now};
use crate::error::{Error, Result};
use crate::store::Session;

impl Service {
    /// Applies a parsed batch to one live customer's entities, all or
    /// nothing. The owner's row lock serialises batches of one customer, so
    /// the read-merge-write never races another.
    pub async fn batch_upsert_entities(
        &self,
        caller: &Caller,
        owner: &ExternalId,
        batch: &[EntityUpsert],
    ) -> Result<Vec<Entity>> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let lookup = CustomerLookup::ExternalId(owner.clone());
            let customer = lock_live_customer(&mut tx, caller, &lookup).await?;
            let types = tx
                .entity_types(
                    caller.workspace,
                    batch.iter().filter_map(|u| u.type_id.as_ref()),
                )
                .await?;
            let existing = tx
                .entities(caller.workspace, customer.id, batch.iter().map(|u| &u.id))
                .await?;
            let entities = entity::apply_batch(customer.id, batch, &existing, &types, now())?;
            tx.write_entities(caller.workspace, &entities).await?;
            let mut changes = Changes::default();
            for entity in &entities {
                let created = !existing.contains_key(&entity.id);
                changes.entity(ChangeOperation::of_upsert(created), entity, owner);
            }
            self.commit(tx, caller, changes).await?;
            Ok(entities)
        })
        .await
    }

    pub async fn get_entity(
        &self,
        caller: &Caller,
        owner: &ExternalId,
        id: &EntityId,
    ) -> Result<Entity> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                let customer = owner_of(&mut session, caller, owner).await?;
                let mut entities = session
                    .entities(caller.workspace, customer.id, [id])
                    .await?;
                found(entities.remove(id), "entity")
            })
        })
        .await
    }

    pub async fn list_entities(
        &self,
        caller: &Caller,
        owner: &ExternalId,
        filter: &EntityFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<Entity>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let customer = owner_of(&mut session, caller, owner).await?;
                let items = session
                    .list_entities(caller.workspace, customer.id, filter, page)
                    .await?;
                Ok(Listing {
                    items,
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Where the entity with this internal key sits in its customer's
    /// listing, for APIs whose cursors are record ids (seed 000).
    pub async fn entity_cursor(
        &self,
        caller: &Caller,
        owner: &ExternalId,
        key: Uuid,
    ) -> Result<Cursor> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                let customer = owner_of(&mut session, caller, owner).await?;
                session
                    .entity_cursor(caller.workspace, customer.id, key)
                    .await?
                    .ok_or(Error::InvalidPageToken("no such entity"))
            })
        })
        .await
    }

    /// Archives (or restores) existing entities, in request order; if any
    /// id is unknown nothing changes.
    pub async fn set_entities_archived(
        &self,
        caller: &Caller,
        owner: &ExternalId,
        ids: &[EntityId],
        archived: bool,
    ) -> Result<Vec<Entity>> {
        let now = now();
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let lookup = CustomerLookup::ExternalId(owner.clone());
            let customer = lock_live_customer(&mut tx, caller, &lookup).await?;
            let mut existing = tx.entities(caller.workspace, customer.id, ids).await?;
            let mut entities = Vec::with_capacity(ids.len());
            let mut changed = Vec::new();
            for id in ids {
                let mut entity = found(existing.remove(id), "entity")?;
                if entity.set_archived(archived, now) {
                    changed.push(entity.clone());
                }
                entities.push(entity);
            }
            tx.write_entities(caller.workspace, &changed).await?;
            let operation = if archived {
                ChangeOperation::Archived
            } else {
                ChangeOperation::Unarchived
            };
            let mut changes = Changes::default();
            for entity in &changed {
                changes.entity(operation, entity, owner);
            }
            self.commit(tx, caller, changes).await?;
            Ok(entities)
        })
        .await
    }

    /// Applies a batch of type upserts in one transaction; request order.
    pub async fn batch_upsert_entity_types(
        &self,
        caller: &Caller,
        batch: &[EntityTypeUpsert],
    ) -> Result<Vec<EntityType>> {
        let now = now();
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let current = tx
                .entity_types(caller.workspace, batch.iter().map(|t| &t.id))
                .await?;
            let mut types: Vec<EntityType> = batch
                .iter()
                .map(|t| t.apply(current.get(&t.id), now))
                .collect();
            // One write order for every batch, so concurrent batches never
            // deadlock on each other's rows.
            types.sort_by(|a, b| a.id.cmp(&b.id));
            let stored = tx.write_entity_types(caller.workspace, &types).await?;
            let mut changes = Changes::default();
            for entity_type in &stored {
                let created = !current.contains_key(&entity_type.id);
                changes.entity_type(ChangeOperation::of_upsert(created), entity_type);
            }
            self.commit(tx, caller, changes).await?;
            let mut stored: std::collections::HashMap<_, _> =
                stored.into_iter().map(|t| (t.id.clone(), t)).collect();
            Ok(batch.iter().filter_map(|t| stored.remove(&t.id)).collect())
        })
        .await
    }

    pub async fn list_entity_types(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Listing<Page<EntityType>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let items = session.list_entity_types(caller.workspace, page).await?;
                Ok(Listing {
                    items,
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Where the entity type with this internal key sits in the listing.
    pub async fn entity_type_cursor(&self, caller: &Caller, key: Uuid) -> Result<Cursor> {
        self.reading(caller, |mut session| {
            Box::pin(async move { session.entity_type_cursor(caller.workspace, key).await })
        })
        .await?
        .ok_or(Error::InvalidPageToken("no such entity type"))
    }
}

/// The live customer that owns the entities, by its external id.
async fn owner_of(session: &mut Session, caller: &Caller, owner: &ExternalId) -> Result<Customer> {
    let lookup = CustomerLookup::ExternalId(owner.clone());
    found(
        session.customer(caller.workspace, &lookup).await?,
        "customer",
    )
}
