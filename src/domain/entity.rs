//! Entities owned by customers, and their types: the rules of seed 000
//! (Stigg).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::customer::ExternalId;
use super::search::{SearchDocument, SearchQuery};
use super::{Change, bounded_text, storable_text};
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

pub const MAX_BATCH: usize = 100;
pub const MAX_ID_CHARS: usize = 255;
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
pub const MAX_METADATA_KEYS: usize = 100;
pub const MAX_METADATA_KEY_CHARS: usize = 255;
pub const MAX_METADATA_VALUE_CHARS: usize = 1000;
pub const MAX_ATTRIBUTION_KEYS: usize = 20;

/// 1 to 255 characters, a letter or digit first, then letters, digits and
/// `extra` punctuation.
fn check_identifier(text: &str, extra: &[char]) -> Result<(), String> {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if text.len() > MAX_ID_CHARS {
        Err(format!("must be at most {MAX_ID_CHARS} characters"))
    } else if !first_ok || !rest_ok {
        let allowed: String = extra.iter().collect();
        Err(format!(
            "must be 1 to {MAX_ID_CHARS} letters, digits or `{allowed}`, starting with a letter or digit"
        ))
    } else {
        Ok(())
    }
}

pub const ENTITY_ID_PUNCTUATION: [char; 4] = ['_', '|', '.', '-'];
pub const OWNER_ID_PUNCTUATION: [char; 5] = ['_', '|', '.', '@', '-'];

/// The owner of entities is a customer named by its external id, in the
/// stricter shape the Stigg API gives customer ids. `field` is the name the
/// caller's API gives it.
pub fn parse_owner(text: &str, field: &'static str) -> Result<ExternalId, FieldViolation> {
    check_identifier(text, &OWNER_ID_PUNCTUATION).map_err(|why| FieldViolation::new(field, why))?;
    Ok(ExternalId::parse(text)?.expect("checked non-empty"))
}

/// An entity's id within its customer; also the shape of entity type ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(String);

impl EntityId {
    pub fn parse(text: &str, field: impl Into<FieldPath>) -> Result<Self, FieldViolation> {
        check_identifier(text, &ENTITY_ID_PUNCTUATION)
            .map_err(|why| FieldViolation::new(field, why))?;
        Ok(Self(text.to_owned()))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Entity {
    /// What a search finds the entity by: the id starts with the text, the
    /// display name or a metadata value contains it.
    pub fn search_document(&self) -> SearchDocument {
        SearchDocument::keyed(Some(self.id.as_str()))
            .field(self.display_name.as_deref())
            .fields(self.metadata.values().map(String::as_str))
    }

    /// Archives or restores the entity; says whether that changed it.
    /// Archiving an archived entity keeps its first archive time.
    pub fn set_archived(&mut self, archived: bool, now: DateTime<Utc>) -> bool {
        let changed = match (archived, self.archived_at) {
            (true, None) => {
                self.archived_at = Some(now);
                true
            }
            (false, Some(_)) => {
                self.archived_at = None;
                true
            }
            _ => false,
        };
        if changed {
            self.updated_at = now;
        }
        changed
    }
}

/// Entity type ids have the shape of entity ids.
pub type EntityTypeId = EntityId;

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Internal key, which orders listings; never shown.
    pub key: Uuid,
    pub customer_id: Uuid,
    pub id: EntityId,
    pub type_id: EntityTypeId,
    pub display_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// One entity of a batch, as sent.
#[derive(Debug, Clone, Default)]
pub struct EntityUpsertInput {
    pub id: String,
    pub type_id: Option<String>,
    pub display_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// One valid entity change, at its position in the batch.
#[derive(Debug, Clone)]
pub struct EntityUpsert {
    pub position: usize,
    pub id: EntityId,
    pub type_id: Option<EntityTypeId>,
    pub display_name: Change<String>,
    /// `None` deletes the key.
    pub metadata: BTreeMap<String, Option<String>>,
}

fn item_field(position: usize, field: &'static str) -> FieldPath {
    FieldPath::field("entities").index(position).then(field)
}

/// Checks a batch's size, each item, and that no id appears twice.
pub fn parse_batch(items: Vec<EntityUpsertInput>) -> Result<Vec<EntityUpsert>> {
    check_batch_size(items.len(), "entities")?;
    let mut v = Violations::default();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut batch = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        if let Some(earlier) = first_seen.insert(item.id.clone(), position) {
            v.push(FieldViolation::new(
                item_field(earlier, "id"),
                format!("id '{}' is also at entities[{position}]", item.id),
            ));
            v.push(FieldViolation::new(
                item_field(position, "id"),
                format!("id '{}' is also at entities[{earlier}]", item.id),
            ));
        }
        if let Some(upsert) = parse_item(&mut v, position, item) {
            batch.push(upsert);
        }
    }
    v.finish(batch, Error::InvalidArgument)
}

fn parse_item(
    v: &mut Violations,
    position: usize,
    item: EntityUpsertInput,
) -> Option<EntityUpsert> {
    let id = v.check(EntityId::parse(&item.id, item_field(position, "id")));
    let type_id = match &item.type_id {
        Some(type_id) => Some(v.check(EntityId::parse(type_id, item_field(position, "type_id")))?),
        None => None,
    };
    let display_name = match item.display_name {
        None => Change::Keep,
        Some(name) if name.is_empty() => Change::Clear,
        Some(name) => {
            let checked = bounded_text(&name, MAX_DISPLAY_NAME_CHARS)
                .map_err(|why| FieldViolation::new(item_field(position, "display_name"), why));
            v.check(checked)
                .map_or(Change::Keep, |()| Change::Set(name))
        }
    };
    let mut metadata = BTreeMap::new();
    for (key, value) in item.metadata {
        let field = item_field(position, "metadata").key(&key);
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_METADATA_KEY_CHARS {
            v.push(FieldViolation::new(
                &field,
                format!("keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        } else if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            v.push(FieldViolation::new(
                &field,
                format!("values must be at most {MAX_METADATA_VALUE_CHARS} characters"),
            ));
        } else if let Err(why) = storable_text(&key).and_then(|()| storable_text(&value)) {
            v.push(FieldViolation::new(&field, why));
        }
        metadata.insert(key, (!value.is_empty()).then_some(value));
    }
    Some(EntityUpsert {
        position,
        id: id?,
        type_id,
        display_name,
        metadata,
    })
}

pub fn check_batch_size(len: usize, field: &'static str) -> Result<()> {
    if (1..=MAX_BATCH).contains(&len) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must hold 1 to {MAX_BATCH} items, got {len}"),
        ))
    }
}

/// Whether an entity type may be given to entities.
pub trait TypeRegistry {
    fn is_usable(&self, type_id: &EntityTypeId) -> bool;
}

impl TypeRegistry for HashMap<EntityTypeId, EntityType> {
    fn is_usable(&self, type_id: &EntityTypeId) -> bool {
        self.get(type_id).is_some_and(|t| t.archived_at.is_none())
    }
}

/// The entities a batch leaves behind, in request order: existing ones with
/// the changes merged in, new ones created. Upserting restores archived
/// entities.
pub fn apply_batch(
    customer_id: Uuid,
    batch: &[EntityUpsert],
    existing: &HashMap<EntityId, Entity>,
    types: &impl TypeRegistry,
    now: DateTime<Utc>,
) -> Result<Vec<Entity>> {
    let mut v = Violations::default();
    let mut out = Vec::with_capacity(batch.len());
    for upsert in batch {
        let type_field = item_field(upsert.position, "type_id");
        if let Some(type_id) = &upsert.type_id
            && !types.is_usable(type_id)
        {
            v.push(FieldViolation::new(
                &type_field,
                format!(
                    "entity type '{}' does not exist or is archived",
                    type_id.as_str()
                ),
            ));
            continue;
        }
        let mut entity = match existing.get(&upsert.id) {
            Some(current) => current.clone(),
            None => {
                let Some(type_id) = upsert.type_id.clone() else {
                    v.push(FieldViolation::new(
                        &type_field,
                        "is required to create an entity",
                    ));
                    continue;
                };
                Entity {
                    key: super::new_id(),
                    customer_id,
                    id: upsert.id.clone(),
                    type_id,
                    display_name: None,
                    metadata: BTreeMap::new(),
                    created_at: now,
                    updated_at: now,
                    archived_at: None,
                }
            }
        };
        if let Some(type_id) = &upsert.type_id {
            entity.type_id = type_id.clone();
        }
        match &upsert.display_name {
            Change::Keep => {}
            Change::Set(name) => entity.display_name = Some(name.clone()),
            Change::Clear => entity.display_name = None,
        }
        for (key, value) in &upsert.metadata {
            match value {
                Some(value) => entity.metadata.insert(key.clone(), value.clone()),
                None => entity.metadata.remove(key),
            };
        }
        if entity.metadata.len() > MAX_METADATA_KEYS {
            v.push(FieldViolation::new(
                item_field(upsert.position, "metadata"),
                format!("an entity holds at most {MAX_METADATA_KEYS} keys"),
            ));
        }
        entity.archived_at = None;
        entity.updated_at = now;
        out.push(entity);
    }
    v.finish(out, Error::InvalidArgument)
}

/// Parses 1 to 100 entity ids of an archive or unarchive call. Naming an
/// id twice means the same as naming it once.
pub fn parse_ids(ids: &[String]) -> Result<Vec<EntityId>> {
    check_batch_size(ids.len(), "ids")?;
    let mut v = Violations::default();
    let mut parsed: Vec<EntityId> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if let Some(id) = v.check(EntityId::parse(id, FieldPath::field("ids").index(i)))
            && !parsed.contains(&id)
        {
            parsed.push(id);
        }
    }
    v.finish(parsed, Error::InvalidArgument)
}

/// The filters of an entity listing.
#[derive(Debug, Clone, Default)]
pub struct EntityFilter {
    pub type_id: Option<EntityTypeId>,
    pub include_archived: bool,
    /// Text the id starts with, or the display name or a metadata value
    /// contains.
    pub query: Option<SearchQuery>,
}

impl EntityFilter {
    /// The filter of a listing; its search text comes in the field `query`.
    pub fn parse(type_id: &str, include_archived: bool, query: &str) -> Result<Self> {
        let mut v = Violations::default();
        let type_id = (!type_id.is_empty())
            .then(|| v.check(EntityId::parse(type_id, "type_id")))
            .flatten();
        let query = v.check(SearchQuery::parse("query", query)).flatten();
        v.finish(
            Self {
                type_id,
                include_archived,
                query,
            },
            Error::InvalidArgument,
        )
    }

    /// What page tokens are bound to.
    pub fn canonical(&self, workspace: super::WorkspaceId, owner: &ExternalId) -> String {
        format!(
            "entities|{workspace}|{}|{}|{}|{}",
            owner.as_str(),
            self.type_id.as_ref().map_or("", EntityId::as_str),
            self.include_archived,
            self.query.as_ref().map_or("", SearchQuery::as_str)
        )
    }
}

/// What entity type page tokens are bound to: a workspace's types have no
/// filter.
pub fn entity_types_query(workspace: super::WorkspaceId) -> String {
    format!("entity_types|{workspace}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityType {
    /// Internal key, which orders listings; never shown.
    pub key: Uuid,
    pub id: EntityTypeId,
    pub display_name: String,
    pub attribution_keys: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct EntityTypeInput {
    pub id: String,
    pub display_name: String,
    pub attribution_keys: Vec<String>,
    pub archived: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct EntityTypeUpsert {
    pub id: EntityTypeId,
    pub display_name: String,
    pub attribution_keys: Vec<String>,
    pub archived: Option<bool>,
}

pub fn parse_type_batch(items: Vec<EntityTypeInput>) -> Result<Vec<EntityTypeUpsert>> {
    check_batch_size(items.len(), "types")?;
    let mut v = Violations::default();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let field = |name: &'static str| FieldPath::field("types").index(i).then(name);
        if let Some(earlier) = first_seen.insert(item.id.clone(), i) {
            v.push(FieldViolation::new(
                FieldPath::field("types").index(earlier).then("id"),
                format!("id '{}' is also at types[{i}]", item.id),
            ));
            v.push(FieldViolation::new(
                field("id"),
                format!("id '{}' is also at types[{earlier}]", item.id),
            ));
        }
        let id = v.check(EntityId::parse(&item.id, field("id")));
        if item.display_name.is_empty() {
            v.push(FieldViolation::new(field("display_name"), "is required"));
        } else if let Err(why) = bounded_text(&item.display_name, MAX_DISPLAY_NAME_CHARS) {
            v.push(FieldViolation::new(field("display_name"), why));
        }
        if item.attribution_keys.len() > MAX_ATTRIBUTION_KEYS {
            v.push(FieldViolation::new(
                field("attribution_keys"),
                format!("at most {MAX_ATTRIBUTION_KEYS} keys"),
            ));
        }
        for (k, key) in item.attribution_keys.iter().enumerate() {
            let len = key.chars().count();
            if len == 0 || len > MAX_METADATA_KEY_CHARS {
                v.push(FieldViolation::new(
                    field("attribution_keys").index(k),
                    format!("must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
                ));
            } else if let Err(why) = storable_text(key) {
                v.push(FieldViolation::new(field("attribution_keys").index(k), why));
            }
        }
        if let Some(id) = id {
            out.push(EntityTypeUpsert {
                id,
                display_name: item.display_name,
                attribution_keys: item.attribution_keys,
                archived: item.archived,
            });
        }
    }
    v.finish(out, Error::InvalidArgument)
}

impl EntityTypeUpsert {
    /// The type after this upsert, given its current state if any.
    pub fn apply(&self, current: Option<&EntityType>, now: DateTime<Utc>) -> EntityType {
        let archived_at = match (self.archived, current) {
            (
                Some(true),
                Some(EntityType {
                    archived_at: Some(at),
                    ..
                }),
            ) => Some(*at),
            (Some(true), _) => Some(now),
            (Some(false), _) | (None, None) => None,
            (None, Some(current)) => current.archived_at,
        };
        EntityType {
            key: current.map_or_else(super::new_id, |c| c.key),
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            attribution_keys: self.attribution_keys.clone(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
            archived_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: &str) -> EntityUpsertInput {
        EntityUpsertInput {
            id: id.to_owned(),
            type_id: Some("user".to_owned()),
            ..EntityUpsertInput::default()
        }
    }

    #[test]
    fn owner_ids_allow_at_signs_and_entity_ids_do_not() {
        assert!(parse_owner("jane@acme.com", "customer_id").is_ok());
        assert!(EntityId::parse("jane@acme.com", "id").is_err());
        assert!(EntityId::parse("user-7f3a0c1d", "id").is_ok());
        assert!(EntityId::parse("-leading", "id").is_err());
        assert!(EntityId::parse(&"a".repeat(256), "id").is_err());
        assert!(parse_owner("", "customer_id").is_err());
    }

    #[test]
    fn duplicate_ids_name_both_positions() {
        let err = parse_batch(vec![input("a"), input("b"), input("a")]).unwrap_err();
        let fields: Vec<_> = err
            .violations()
            .iter()
            .map(|v| v.field.to_string())
            .collect();
        assert_eq!(fields, ["entities[0].id", "entities[2].id"]);
    }

    #[test]
    fn batch_sizes_are_one_to_a_hundred() {
        assert!(parse_batch(Vec::new()).is_err());
        let full: Vec<_> = (0..100).map(|i| input(&format!("e{i}"))).collect();
        assert!(parse_batch(full).is_ok());
        let over: Vec<_> = (0..101).map(|i| input(&format!("e{i}"))).collect();
        assert_eq!(
            parse_batch(over).unwrap_err().violations()[0]
                .field
                .to_string(),
            "entities"
        );
    }
}
