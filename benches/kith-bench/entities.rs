//! Entity batch upserts (seed 000): 100 entities of one customer per call,
//! spread over several customers, against the same rows written raw.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;

use kith::domain::search::SearchDocument;
use kith::pb::kith::v1::{
    BatchUpsertEntitiesRequest, BatchUpsertEntityTypesRequest, CreateCustomerRequest, Customer,
    Entity, EntityTypeUpsert, EntityUpsert,
};

use crate::kith_process::Kith;
use crate::load::{Measured, closed_loop};
use crate::people::Log;
use crate::raw::{RawChange, RawEntity, RawPool};

const BATCH: usize = 100;
/// Owners the batches rotate over, so calls in flight lock different rows.
const OWNERS: usize = 16;
const TYPE: &str = "seat";

/// The owners' Kith ids.
pub struct Owners {
    ids: Vec<uuid::Uuid>,
}

/// Creates the entity type and the owner customers through Kith.
pub async fn set_up(kith: &Kith) -> anyhow::Result<Owners> {
    kith.entities()
        .batch_upsert_entity_types(BatchUpsertEntityTypesRequest {
            types: vec![EntityTypeUpsert {
                id: TYPE.to_owned(),
                display_name: "Seat".to_owned(),
                ..EntityTypeUpsert::default()
            }],
        })
        .await?;
    let mut customers = kith.customers();
    let mut ids = Vec::with_capacity(OWNERS);
    for owner in 0..OWNERS {
        let created = customers
            .create_customer(CreateCustomerRequest {
                customer: Some(Customer {
                    external_id: Some(owner_id(owner)),
                    email: Some(format!("{}@example.com", owner_id(owner))),
                    ..Customer::default()
                }),
            })
            .await?
            .into_inner()
            .customer
            .context("a created customer")?;
        ids.push(created.id.parse()?);
    }
    Ok(Owners { ids })
}

fn owner_id(owner: usize) -> String {
    format!("owner-{owner}")
}

/// Batch `b`: 100 new entities of owner `b % OWNERS`.
fn batch(b: usize) -> (usize, Vec<EntityUpsert>) {
    let entities = (0..BATCH)
        .map(|j| EntityUpsert {
            id: format!("seat-{b}-{j}"),
            type_id: Some(TYPE.to_owned()),
            display_name: Some(format!("Seat {j} of batch {b}")),
            metadata: HashMap::from([
                ("tier".to_owned(), "pro".to_owned()),
                ("region".to_owned(), "eu-west".to_owned()),
            ]),
        })
        .collect();
    (b % OWNERS, entities)
}

pub async fn grpc_batches(
    kith: &Kith,
    entities: usize,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    let batches: Arc<Vec<_>> = Arc::new((0..entities.div_ceil(BATCH)).map(batch).collect());
    let client = kith.entities();
    closed_loop(batches.len(), concurrency, BATCH, move |b| {
        let (mut client, batches) = (client.clone(), batches.clone());
        async move {
            let (owner, entities) = &batches[b];
            client
                .batch_upsert_entities(BatchUpsertEntitiesRequest {
                    customer_external_id: owner_id(*owner),
                    entities: entities.clone(),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

/// A new entity's change row, its record encoded as Kith logs it.
fn created_change(entity: &EntityUpsert, owner: usize) -> RawChange {
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    let record = Entity {
        id: entity.id.clone(),
        customer_external_id: owner_id(owner),
        type_id: TYPE.to_owned(),
        display_name: entity.display_name.clone(),
        metadata: entity.metadata.clone(),
        created_at: Some(now),
        updated_at: Some(now),
        archived_at: None,
    };
    RawChange {
        kind: "entity",
        operation: "created",
        record_id: entity.id.clone(),
        external_id: None,
        owner_id: Some(owner_id(owner)),
        record: prost::Message::encode_to_vec(&record),
    }
}

/// The ceiling: the same rows written raw; with the log on, each batch
/// with its change rows in one transaction.
pub async fn raw_upsert(
    database_url: &str,
    owners: &Owners,
    entities: usize,
    concurrency: usize,
    log: Log,
) -> anyhow::Result<Measured> {
    let pool = Arc::new(RawPool::open(database_url, concurrency).await?);
    let writer = pool.default_writer().await?;
    let rows: Arc<Vec<(Vec<RawEntity>, Vec<RawChange>)>> = Arc::new(
        (0..entities.div_ceil(BATCH))
            .map(|b| {
                let (owner, entities) = batch(b);
                let changes = match log {
                    Log::On => entities.iter().map(|e| created_change(e, owner)).collect(),
                    Log::Off => Vec::new(),
                };
                let rows = entities
                    .into_iter()
                    .map(|e| RawEntity {
                        pk: kith::domain::new_id(),
                        customer: owners.ids[owner],
                        search: SearchDocument::keyed(Some(&e.id))
                            .field(e.display_name.as_deref())
                            .fields(e.metadata.values().map(String::as_str)),
                        id: e.id,
                        type_id: TYPE.to_owned(),
                        display_name: e.display_name.unwrap_or_default(),
                        metadata: serde_json::to_value(&e.metadata).expect("a map"),
                    })
                    .collect();
                (rows, changes)
            })
            .collect(),
    );
    closed_loop(rows.len(), concurrency, BATCH, move |b| {
        let (pool, rows) = (pool.clone(), rows.clone());
        async move {
            let (rows, changes) = &rows[b];
            let changes = (log == Log::On).then_some(changes.as_slice());
            pool.upsert_entities(writer, rows, changes).await
        }
    })
    .await
}
