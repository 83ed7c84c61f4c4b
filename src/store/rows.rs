//! Rows as both backends return them, and their conversion to domain
//! records. Values were validated when written, so they are taken as stored:
//! a rule tightened later must not make old records unreadable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::WorkspaceId;
use crate::domain::customer::{
    BillingAddress, Customer, CustomerName, CustomerType, Email, ExternalId, Metadata,
};
use crate::domain::entity::{Entity, EntityId, EntityType};
use crate::domain::page::Cursor;
use crate::domain::person::{Person, PersonStatus, Profile};
use crate::domain::user::{
    Company, EXTERNAL_ID_KEY, Keys, Member, MemberRole, Membership, MembershipDetail, User,
};
use crate::domain::workspace::{ApiKey, ApiKeyId, SecretHash, Workspace, WorkspaceName};
use crate::error::{Error, Result};

#[derive(sqlx::FromRow)]
pub(super) struct WorkspaceRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<WorkspaceRow> for Workspace {
    fn from(row: WorkspaceRow) -> Self {
        Self {
            id: WorkspaceId(row.id),
            name: WorkspaceName::from_stored(row.name),
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: Uuid,
    workspace_id: Uuid,
    secret_hash: Vec<u8>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = Error;

    fn try_from(row: ApiKeyRow) -> Result<Self> {
        let hash = row
            .secret_hash
            .try_into()
            .map_err(|_| Error::internal("stored API key hash is not 32 bytes"))?;
        Ok(Self {
            id: ApiKeyId(row.id),
            workspace_id: WorkspaceId(row.workspace_id),
            secret_hash: SecretHash(hash),
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// The columns every customer query selects, in `CustomerRow`'s order.
pub(super) const CUSTOMER_COLUMNS: &str = "id, workspace_id, external_id, email, email_verified, name, billing_address, \
         metadata, kind, created_at, modified_at, deleted_at";

#[derive(sqlx::FromRow)]
pub(super) struct CustomerRow {
    id: Uuid,
    workspace_id: Uuid,
    external_id: Option<String>,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    billing_address: Option<Json<BillingAddress>>,
    metadata: Json<Metadata>,
    kind: String,
    created_at: DateTime<Utc>,
    modified_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
}

impl From<CustomerRow> for Customer {
    fn from(row: CustomerRow) -> Self {
        Self {
            id: row.id,
            workspace_id: WorkspaceId(row.workspace_id),
            external_id: row.external_id.map(ExternalId::from_stored),
            email: row.email.map(Email::from_stored),
            email_verified: row.email_verified,
            name: row.name.map(CustomerName::from_stored),
            billing_address: row.billing_address.map(|Json(address)| address),
            metadata: row.metadata.0,
            kind: CustomerType::from_stored(&row.kind),
            created_at: row.created_at,
            modified_at: row.modified_at,
            deleted_at: row.deleted_at,
        }
    }
}

/// A customer with one of its members, or none (`member_id` NULL): the
/// rows of a customer `LEFT JOIN` its memberships, each member with what
/// it shows of its user.
#[derive(sqlx::FromRow)]
pub(super) struct CustomerMemberRow {
    #[sqlx(flatten)]
    pub customer: CustomerRow,
    member_id: Option<Uuid>,
    member_user_id: Option<Uuid>,
    member_role: Option<String>,
    member_created_at: Option<DateTime<Utc>>,
    member_updated_at: Option<DateTime<Utc>>,
    member_name: Option<String>,
    member_email: Option<String>,
    member_external_id: Option<String>,
}

impl CustomerMemberRow {
    /// The row's member, if it has one.
    pub(super) fn member(&mut self) -> Option<Member> {
        let membership = Membership {
            id: self.member_id?,
            user_id: self.member_user_id?,
            company_id: self.customer.id,
            role: MemberRole::from_stored(self.member_role.as_deref()?),
            created_at: self.member_created_at?,
            updated_at: self.member_updated_at?,
        };
        Some(Member {
            membership,
            email: self.member_email.take(),
            name: self.member_name.take(),
            external_id: self.member_external_id.take(),
        })
    }
}

pub(super) fn customer_cursor(customer: &Customer) -> Cursor {
    Cursor {
        created_at: customer.created_at,
        id: customer.id,
    }
}

pub(super) const ENTITY_COLUMNS: &str =
    "pk, customer_id, id, type_id, display_name, metadata, created_at, updated_at, archived_at";

#[derive(sqlx::FromRow)]
pub(super) struct EntityRow {
    pk: Uuid,
    customer_id: Uuid,
    id: String,
    type_id: String,
    display_name: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
}

impl From<EntityRow> for Entity {
    fn from(row: EntityRow) -> Self {
        Self {
            key: row.pk,
            customer_id: row.customer_id,
            id: EntityId::from_stored(row.id),
            type_id: EntityId::from_stored(row.type_id),
            display_name: row.display_name,
            metadata: row.metadata.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            archived_at: row.archived_at,
        }
    }
}

pub(super) fn entity_cursor(entity: &Entity) -> Cursor {
    Cursor {
        created_at: entity.created_at,
        id: entity.key,
    }
}

pub(super) const ENTITY_TYPE_COLUMNS: &str =
    "pk, id, display_name, attribution_keys, created_at, updated_at, archived_at";

#[derive(sqlx::FromRow)]
pub(super) struct EntityTypeRow {
    pk: Uuid,
    id: String,
    display_name: String,
    attribution_keys: Json<Vec<String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
}

impl From<EntityTypeRow> for EntityType {
    fn from(row: EntityTypeRow) -> Self {
        Self {
            key: row.pk,
            id: EntityId::from_stored(row.id),
            display_name: row.display_name,
            attribution_keys: row.attribution_keys.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            archived_at: row.archived_at,
        }
    }
}

pub(super) fn entity_type_cursor(entity_type: &EntityType) -> Cursor {
    Cursor {
        created_at: entity_type.created_at,
        id: entity_type.key,
    }
}

pub(super) const PERSON_COLUMNS: &str = "id, workspace_id, external_id, email, phone, first_name, last_name, avatar_url, \
         timezone, locale, status, attributes, created_at, updated_at, first_seen_at, last_seen_at";

#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    id: Uuid,
    workspace_id: Uuid,
    external_id: String,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    avatar_url: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
    status: String,
    attributes: Json<serde_json::Map<String, serde_json::Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

impl From<PersonRow> for Person {
    fn from(row: PersonRow) -> Self {
        Self {
            id: row.id,
            workspace_id: WorkspaceId(row.workspace_id),
            external_id: row.external_id,
            email: row.email.map(Email::from_stored),
            profile: Profile::from_stored([
                ("first_name", row.first_name),
                ("last_name", row.last_name),
                ("phone", row.phone),
                ("avatar_url", row.avatar_url),
                ("timezone", row.timezone),
                ("locale", row.locale),
            ]),
            status: PersonStatus::parse(&row.status).unwrap_or_default(),
            attributes: row.attributes.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
        }
    }
}

pub(super) fn person_cursor(person: &Person) -> Cursor {
    Cursor {
        created_at: person.created_at,
        id: person.id,
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: Uuid,
    name: Option<String>,
    traits: Json<serde_json::Map<String, serde_json::Value>>,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    pub(super) fn into_user(self, keys: BTreeMap<String, String>) -> User {
        User {
            id: self.id,
            name: self.name,
            keys: Keys::from_stored(keys),
            traits: self.traits.0,
            last_seen_at: self.last_seen_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A user with its keys, gathered into one JSON object
/// (`Dialect::json_object_aggregate`; NULL for none).
#[derive(sqlx::FromRow)]
pub(super) struct UserWithKeysRow {
    #[sqlx(flatten)]
    user: UserRow,
    stored_keys: Option<Json<BTreeMap<String, String>>>,
}

impl UserWithKeysRow {
    pub(super) fn into_user(self) -> User {
        let keys = self.stored_keys.map(|keys| keys.0).unwrap_or_default();
        self.user.into_user(keys)
    }
}

/// A company with one membership in it and the company's keys, read in
/// one statement: the membership's own columns are prefixed
/// `membership_`.
#[derive(sqlx::FromRow)]
pub(super) struct MembershipCompanyRow {
    #[sqlx(flatten)]
    company: CompanyRow,
    company_keys: Option<Json<BTreeMap<String, String>>>,
    membership_id: Uuid,
    pub user_id: Uuid,
    membership_role: String,
    membership_created_at: DateTime<Utc>,
    membership_updated_at: DateTime<Utc>,
}

impl MembershipCompanyRow {
    pub(super) fn into_detail(self) -> MembershipDetail {
        let membership = Membership {
            id: self.membership_id,
            user_id: self.user_id,
            company_id: self.company.id,
            role: MemberRole::from_stored(&self.membership_role),
            created_at: self.membership_created_at,
            updated_at: self.membership_updated_at,
        };
        let keys = self.company_keys.map(|keys| keys.0).unwrap_or_default();
        MembershipDetail {
            company: self.company.into_company(keys),
            membership,
        }
    }
}

/// One identifying key of a user or company.
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    pub owner: Uuid,
    pub name: String,
    pub value: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct CompanyRow {
    pub id: Uuid,
    name: Option<String>,
    external_id: Option<String>,
    traits: Json<serde_json::Map<String, serde_json::Value>>,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    modified_at: Option<DateTime<Utc>>,
}

impl CompanyRow {
    pub(super) fn into_company(self, mut keys: BTreeMap<String, String>) -> Company {
        if let Some(external_id) = self.external_id {
            keys.insert(EXTERNAL_ID_KEY.to_owned(), external_id);
        }
        Company {
            id: self.id,
            name: self.name,
            keys: Keys::from_stored(keys),
            traits: self.traits.0,
            last_seen_at: self.last_seen_at,
            created_at: self.created_at,
            updated_at: self.modified_at.unwrap_or(self.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MembershipRow {
    id: Uuid,
    user_id: Uuid,
    customer_id: Uuid,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What a customer's member shows of its user: the name and two keys.
#[derive(sqlx::FromRow)]
pub(super) struct MemberUserRow {
    pub id: Uuid,
    name: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
}

impl MemberUserRow {
    pub(super) fn member(&self, membership: Membership) -> Member {
        Member {
            membership,
            email: self.email.clone(),
            name: self.name.clone(),
            external_id: self.external_id.clone(),
        }
    }
}

impl From<MembershipRow> for Membership {
    fn from(row: MembershipRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            company_id: row.customer_id,
            role: MemberRole::from_stored(&row.role),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}
