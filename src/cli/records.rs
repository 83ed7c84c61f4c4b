//! Each kind of record: its message in files, and how one record, or a
//! batch of them, is written through the contract.

use std::future::Future;

use tonic::{Code, Status};

use super::client::Connection;
use super::format::{Codec, RowError};
use crate::config::RecordKind;
use crate::domain::person::{KNOWN_TRAITS, PersonUpsert};
use crate::pb::kith::v1 as pb;

/// How a kind's records are read from and written to files. Output-only
/// fields are ignored on import, except those an import needs: an entity's
/// owner, and whether it, or a type, is archived.
pub fn codec(kind: RecordKind) -> Codec {
    match kind {
        RecordKind::People => Codec::new("kith.v1.Person", Some("attributes"), &[]),
        RecordKind::Customers => Codec::new("kith.v1.Customer", Some("metadata"), &[]),
        RecordKind::Users => Codec::new("kith.v1.User", Some("traits"), &[]),
        RecordKind::Entities => Codec::new(
            "kith.v1.Entity",
            Some("metadata"),
            &["customer_external_id", "archived_at"],
        ),
        RecordKind::EntityTypes => Codec::new("kith.v1.EntityType", None, &["archived_at"]),
    }
}

/// What writing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

/// A kind written one record per call (it has no batch method).
pub trait RowWriter: Clone + Send + Sync + 'static {
    type Record: Send + Sync + 'static;
    /// The request's field holding the record, stripped from error paths.
    const WITHIN: &'static str;
    fn write(&self, record: &Self::Record) -> impl Future<Output = Result<Written, Status>> + Send;
}

/// A kind written in batches of up to 100, all or nothing.
pub trait BatchWriter: Clone + Send + Sync + 'static {
    type Record: Send + Sync + 'static;
    /// The request's list of records, as error paths name it (`entities`).
    const LIST: &'static str;
    /// Records of one batch share this (an entity's owner).
    fn group(record: &Self::Record) -> &str;
    /// Records of one batch have distinct ids.
    fn id(record: &Self::Record) -> &str;
    fn write(
        &self,
        group: &str,
        records: Vec<&Self::Record>,
    ) -> impl Future<Output = Result<Vec<Written>, Status>> + Send;
}

/// People go through the streaming import: a file's person, as the upsert
/// it asks for, checked by the domain's rules here so that every bad row is
/// reported (the stream itemises only its first rejections).
pub fn person_upsert(person: pb::Person) -> Result<pb::PersonUpsert, Vec<RowError>> {
    let mut traits = person.attributes.unwrap_or_default();
    let profile = [
        ("first_name", person.first_name),
        ("last_name", person.last_name),
        ("phone", person.phone),
        ("avatar_url", person.avatar_url),
        ("timezone", person.timezone),
        ("locale", person.locale),
    ];
    for (name, value) in profile {
        if let Some(value) = value {
            traits.fields.insert(
                name.to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(value)),
                },
            );
        }
    }
    let upsert = pb::PersonUpsert {
        user_id: person.external_id,
        email: person.email,
        traits: Some(traits),
        status: person.status,
    };
    let (input, wire) = crate::api::grpc::person_upsert_input(upsert.clone());
    let checked = if wire.is_empty() {
        PersonUpsert::parse(input).map(drop)
    } else {
        Err(wire)
    };
    checked.map(|()| upsert).map_err(|violations| {
        violations
            .into_iter()
            .map(|v| RowError::new(person_field(&v.field.to_string()), v.description))
            .collect()
    })
}

/// A field of an upsert as the file names it: its `user_id` is the file's
/// `external_id`, its profile traits are the person's fields and the other
/// traits its attributes.
pub fn person_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("user_id") {
        return format!("external_id{rest}");
    }
    match field.strip_prefix("traits.") {
        Some(name) if KNOWN_TRAITS.iter().any(|(known, _)| *known == name) => name.to_owned(),
        Some(name) => format!("attributes.{name}"),
        None => field.to_owned(),
    }
}

/// Customers: created, or, when one with the same external id (else the
/// same email) exists, updated. The create settles a race between two
/// imports (the database's unique indexes decide); finding a customer by
/// email is a read before the write, and a customer deleted in between
/// makes the update NOT_FOUND, reported as the create's clash.
#[derive(Clone)]
pub struct Customers(pub Connection);

impl RowWriter for Customers {
    type Record = pb::Customer;
    const WITHIN: &'static str = "customer";

    async fn write(&self, customer: &pb::Customer) -> Result<Written, Status> {
        use pb::update_customer_request::Lookup;
        let mut client = self.0.customers();
        let created = client
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(customer.clone()),
            })
            .await;
        let clash = match created {
            Ok(_) => return Ok(Written::Created),
            Err(status) if status.code() == Code::AlreadyExists => status,
            Err(status) => return Err(status),
        };
        // Without a mask every field the row sets changes; by external id
        // that leaves the external id and the type as they are.
        if let Some(external_id) = &customer.external_id {
            let updated = client
                .update_customer(pb::UpdateCustomerRequest {
                    lookup: Some(Lookup::ExternalId(external_id.clone())),
                    customer: Some(customer.clone()),
                    update_mask: None,
                })
                .await;
            match updated {
                Ok(_) => return Ok(Written::Updated),
                // No customer has it yet: the clash is on the email.
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => return Err(status),
            }
        }
        let Some(email) = customer.email.clone() else {
            return Err(clash);
        };
        let found = client
            .list_customers(pb::ListCustomersRequest {
                email,
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        let Some(existing) = found.customers.into_iter().next() else {
            return Err(clash);
        };
        // By id, a row's external id is set on a customer that has none
        // (and refused for one that has another); the type stays, as it
        // does by external id.
        let updated = client
            .update_customer(pb::UpdateCustomerRequest {
                lookup: Some(Lookup::Id(existing.id)),
                customer: Some(pb::Customer {
                    r#type: 0,
                    ..customer.clone()
                }),
                update_mask: None,
            })
            .await;
        match updated {
            Ok(_) => Ok(Written::Updated),
            Err(status) if status.code() == Code::NotFound => Err(clash),
            Err(status) => Err(status),
        }
    }
}

/// Users: upserted by their keys.
#[derive(Clone)]
pub struct Users(pub Connection);

impl RowWriter for Users {
    type Record = pb::User;
    const WITHIN: &'static str = "";

    async fn write(&self, user: &pb::User) -> Result<Written, Status> {
        let upserted = self
            .0
            .users()
            .upsert_user(pb::UpsertUserRequest {
                keys: user.keys.clone(),
                name: (!user.name.is_empty()).then(|| user.name.clone()),
                traits: user.traits.clone(),
                last_seen_at: user.last_seen_at,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(if upserted.created {
            Written::Created
        } else {
            Written::Updated
        })
    }
}

/// Whether a record the batch methods return was created by the call: an
/// insert stamps both times at once, an update moves only `updated_at`.
fn written(
    created_at: Option<prost_types::Timestamp>,
    updated_at: Option<prost_types::Timestamp>,
) -> Written {
    if created_at == updated_at {
        Written::Created
    } else {
        Written::Updated
    }
}

/// Entities: upserted in batches of one owner's, then archived where the
/// file says they are.
#[derive(Clone)]
pub struct Entities(pub Connection);

impl BatchWriter for Entities {
    type Record = pb::Entity;
    const LIST: &'static str = "entities";

    fn group(entity: &pb::Entity) -> &str {
        &entity.customer_external_id
    }

    fn id(entity: &pb::Entity) -> &str {
        &entity.id
    }

    async fn write(&self, owner: &str, batch: Vec<&pb::Entity>) -> Result<Vec<Written>, Status> {
        let mut client = self.0.entities();
        let archived: Vec<String> = batch
            .iter()
            .filter(|e| e.archived_at.is_some())
            .map(|e| e.id.clone())
            .collect();
        let request = pb::BatchUpsertEntitiesRequest {
            customer_external_id: owner.to_owned(),
            entities: batch
                .into_iter()
                .map(|e| pb::EntityUpsert {
                    id: e.id.clone(),
                    type_id: (!e.type_id.is_empty()).then(|| e.type_id.clone()),
                    display_name: e.display_name.clone(),
                    metadata: e.metadata.clone(),
                })
                .collect(),
        };
        let upserted = client.batch_upsert_entities(request).await?.into_inner();
        if !archived.is_empty() {
            client
                .batch_archive_entities(pb::BatchArchiveEntitiesRequest {
                    customer_external_id: owner.to_owned(),
                    ids: archived,
                })
                .await?;
        }
        Ok(upserted
            .entities
            .into_iter()
            .map(|e| written(e.created_at, e.updated_at))
            .collect())
    }
}

/// Entity types, in batches.
#[derive(Clone)]
pub struct EntityTypes(pub Connection);

impl BatchWriter for EntityTypes {
    type Record = pb::EntityType;
    const LIST: &'static str = "types";

    fn group(_: &pb::EntityType) -> &str {
        ""
    }

    fn id(entity_type: &pb::EntityType) -> &str {
        &entity_type.id
    }

    async fn write(&self, _: &str, batch: Vec<&pb::EntityType>) -> Result<Vec<Written>, Status> {
        let request = pb::BatchUpsertEntityTypesRequest {
            types: batch
                .into_iter()
                .map(|t| pb::EntityTypeUpsert {
                    id: t.id.clone(),
                    display_name: t.display_name.clone(),
                    attribution_keys: t.attribution_keys.clone(),
                    archived: Some(t.archived_at.is_some()),
                })
                .collect(),
        };
        let upserted = self
            .0
            .entities()
            .batch_upsert_entity_types(request)
            .await?
            .into_inner();
        Ok(upserted
            .types
            .into_iter()
            .map(|t| written(t.created_at, t.updated_at))
            .collect())
    }
}
