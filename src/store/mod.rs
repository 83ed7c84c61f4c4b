//! The repository interface and its two backends.
//!
//! `Store` is all the service knows of storage. `SqliteStore` and `PgStore`
//! implement it from one body of code (`sql.rs`), so the behaviour the
//! conformance suite proves on one holds on the other; each backend module
//! holds only what its dialect does differently.

mod postgres;
mod rows;
mod sql;
mod sqlite;
mod user_sql;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use uuid::Uuid;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::domain::WorkspaceId;
use crate::domain::customer::{
    Customer, CustomerFilter, CustomerLookup, CustomerPatch, ExternalId,
};
use crate::domain::entity::{
    Entity, EntityFilter, EntityId, EntityType, EntityTypeUpsert, EntityUpsert,
};
use crate::domain::page::{Page, PageRequest};
use crate::domain::person::{
    Person, PersonFilter, PersonLookup, PersonPatch, PersonUpsert, Upserted,
};
use crate::domain::user::{
    Company, Keys, Member, MemberRole, MembershipDetail, TraitUpdate, Upsert, UserDetail,
    UserLookup,
};
use crate::domain::workspace::{ApiKey, ApiKeyId, NewApiKey, Workspace, WorkspaceName};
use crate::error::{Error, FieldViolation, Result};

#[async_trait]
pub trait Store: UserStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;

    /// Succeeds while the database answers.
    async fn ping(&self) -> Result<()>;

    /// On an empty database, creates the `default` workspace with one key and
    /// returns both; otherwise (or when another replica won the race) `None`.
    async fn bootstrap(&self) -> Result<Option<(Workspace, NewApiKey)>>;

    async fn create_workspace(&self, name: &WorkspaceName) -> Result<Workspace>;
    /// Finds a workspace by its name or its id.
    async fn find_workspace(&self, name_or_id: &str) -> Result<Option<Workspace>>;

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<()>;
    async fn find_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>>;
    /// Revokes a key; revoking twice keeps the first revocation time.
    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey>;

    async fn insert_customer(&self, customer: &Customer) -> Result<()>;
    /// A live customer of the workspace, else `NotFound`.
    async fn get_customer(
        &self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
    ) -> Result<Customer>;
    async fn list_customers(
        &self,
        workspace: WorkspaceId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>>;
    /// How many live customers pass the filter.
    async fn count_customers(&self, workspace: WorkspaceId, filter: &CustomerFilter)
    -> Result<u64>;
    /// Applies the patch (`Customer::apply`) to the current row atomically.
    async fn update_customer(
        &self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
        patch: &CustomerPatch,
    ) -> Result<Customer>;
    /// Soft-deletes a live customer and returns it as deleted.
    async fn delete_customer(
        &self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
    ) -> Result<Customer>;

    /// Applies a batch of type upserts in one transaction; request order.
    async fn upsert_entity_types(
        &self,
        workspace: WorkspaceId,
        batch: &[EntityTypeUpsert],
    ) -> Result<Vec<EntityType>>;
    async fn list_entity_types(
        &self,
        workspace: WorkspaceId,
        page: &PageRequest,
    ) -> Result<Page<EntityType>>;

    /// Applies a parsed batch to one live customer's entities in one
    /// transaction (`entity::apply_batch`), serialised per customer.
    async fn upsert_entities(
        &self,
        workspace: WorkspaceId,
        owner: &ExternalId,
        batch: &[EntityUpsert],
    ) -> Result<Vec<Entity>>;
    async fn get_entity(
        &self,
        workspace: WorkspaceId,
        owner: &ExternalId,
        id: &EntityId,
    ) -> Result<Entity>;
    async fn list_entities(
        &self,
        workspace: WorkspaceId,
        owner: &ExternalId,
        filter: &EntityFilter,
        page: &PageRequest,
    ) -> Result<Page<Entity>>;
    /// Where the entity with this internal key sits in its customer's
    /// listing, for APIs whose cursors are record ids (seed 000).
    async fn entity_cursor(
        &self,
        workspace: WorkspaceId,
        owner: &ExternalId,
        key: Uuid,
    ) -> Result<crate::domain::page::Cursor>;
    /// Where the entity type with this internal key sits in the listing.
    async fn entity_type_cursor(
        &self,
        workspace: WorkspaceId,
        key: Uuid,
    ) -> Result<crate::domain::page::Cursor>;
    /// Archives (or restores) existing entities; `NotFound` if any id is
    /// unknown, and then nothing changes. Request order.
    async fn set_entities_archived(
        &self,
        workspace: WorkspaceId,
        owner: &ExternalId,
        ids: &[EntityId],
        archived: bool,
    ) -> Result<Vec<Entity>>;

    /// Applies a parsed batch, all or nothing: one statement when everyone is
    /// new, else one transaction (`person::plan_batch`). Creation is atomic
    /// per key and existing people are merged under row locks, so the
    /// created and updated counts are exact under concurrency.
    async fn upsert_people(
        &self,
        workspace: WorkspaceId,
        batch: &[PersonUpsert],
    ) -> Result<Vec<Upserted>>;
    /// `upsert_people` without its first try as new people, for a batch
    /// known to name someone who exists.
    async fn merge_people(
        &self,
        workspace: WorkspaceId,
        batch: &[PersonUpsert],
    ) -> Result<Vec<Upserted>>;
    /// Creates every person of a batch in one atomic statement, or writes
    /// nothing and returns `None` when any of them already exists (by
    /// external id or email): such a batch needs `upsert_people`.
    async fn insert_new_people(
        &self,
        workspace: WorkspaceId,
        batch: &[PersonUpsert],
    ) -> Result<Option<Vec<Upserted>>>;
    async fn get_person(&self, workspace: WorkspaceId, lookup: &PersonLookup) -> Result<Person>;
    async fn list_people(
        &self,
        workspace: WorkspaceId,
        filter: &PersonFilter,
        page: &PageRequest,
    ) -> Result<Page<Person>>;
    async fn update_person(
        &self,
        workspace: WorkspaceId,
        lookup: &PersonLookup,
        patch: &PersonPatch,
    ) -> Result<Person>;
    /// Deletes a person for good and returns it as it was.
    async fn delete_person(&self, workspace: WorkspaceId, lookup: &PersonLookup) -> Result<Person>;
}

/// Users, companies (customers seen by their keys) and memberships.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Resolves the user by id or keys (`user::resolve`), then creates or
    /// updates it, with its memberships, in one transaction. Returns the
    /// user and whether it was created.
    async fn upsert_user(
        &self,
        workspace: WorkspaceId,
        upsert: &Upsert,
    ) -> Result<(UserDetail, bool)>;
    async fn get_user(&self, workspace: WorkspaceId, lookup: &UserLookup) -> Result<UserDetail>;
    async fn list_users(
        &self,
        workspace: WorkspaceId,
        company: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<UserDetail>>;
    /// How many users (members of `company`, when given) the workspace has.
    async fn count_users(&self, workspace: WorkspaceId, company: Option<Uuid>) -> Result<u64>;
    /// The workspace's live companies among `ids`, in that order.
    async fn companies(&self, workspace: WorkspaceId, ids: &[Uuid]) -> Result<Vec<Company>>;
    /// Deletes a user with its keys and memberships, for good.
    async fn delete_user(&self, workspace: WorkspaceId, lookup: &UserLookup) -> Result<UserDetail>;
    /// Changes one trait under the user's row lock, so increments add up.
    async fn update_user_trait(
        &self,
        workspace: WorkspaceId,
        update: &TraitUpdate,
    ) -> Result<UserDetail>;

    async fn upsert_company(
        &self,
        workspace: WorkspaceId,
        upsert: &Upsert,
    ) -> Result<(Company, bool)>;
    async fn lookup_company(&self, workspace: WorkspaceId, keys: &Keys) -> Result<Company>;
    /// Soft-deletes the company's customer, releasing its keys and members.
    async fn delete_company(&self, workspace: WorkspaceId, keys: &Keys) -> Result<Company>;
    async fn update_company_trait(
        &self,
        workspace: WorkspaceId,
        update: &TraitUpdate,
    ) -> Result<Company>;

    /// The membership of a user in a company, created with `role` (member
    /// when `None`) if missing; an existing one takes `role` when given.
    async fn get_or_create_membership(
        &self,
        workspace: WorkspaceId,
        company: Uuid,
        user: Uuid,
        role: Option<MemberRole>,
    ) -> Result<(MembershipDetail, bool)>;
    async fn list_memberships(
        &self,
        workspace: WorkspaceId,
        company: Option<Uuid>,
        user: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<MembershipDetail>>;
    /// Deletes a membership; with `company`, only one of that company's.
    async fn delete_membership(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
        company: Option<Uuid>,
    ) -> Result<MembershipDetail>;
    /// The members of each of these customers, oldest first.
    async fn customer_members(
        &self,
        workspace: WorkspaceId,
        customers: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Member>>>;
}

/// Opens the database a URL names, `postgres://` or `postgresql://` for
/// PostgreSQL and anything else for a SQLite file, and brings its schema up
/// to date.
pub async fn connect(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> =
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Arc::new(PgStore::connect(database_url).await?)
        } else {
            Arc::new(SqliteStore::connect(database_url).await?)
        };
    Ok(store)
}

/// Which field a unique index protects, recognised by the table and column
/// in the database's message (SQLite names `table.column`, PostgreSQL the
/// index, whose name starts with the table), and what to tell the caller.
const UNIQUE_FIELDS: [(&str, &str, &str, &str); 7] = [
    (
        "user_keys",
        "user_keys",
        "keys",
        "One of these keys belongs to another user.",
    ),
    (
        "customer_keys",
        "customer_keys",
        "keys",
        "One of these keys belongs to another company.",
    ),
    (
        "customers",
        "email_key",
        "email",
        "A customer with this email address already exists.",
    ),
    (
        "customers",
        "external_id",
        "external_id",
        "A customer with this external ID already exists.",
    ),
    (
        "people",
        "email_key",
        "email",
        "A person with this email address already exists.",
    ),
    (
        "people",
        "external_id",
        "external_id",
        "A person with this external ID already exists.",
    ),
    (
        "workspaces",
        "name",
        "name",
        "A workspace with this name already exists.",
    ),
];

/// Maps a database error to the service's: unique clashes name their field,
/// lost connections are retryable, everything else is internal.
pub(crate) fn db_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            let source = db.constraint().unwrap_or_else(|| db.message()).to_owned();
            UNIQUE_FIELDS
                .iter()
                .find(|(table, column, _, _)| source.contains(table) && source.contains(column))
                .map_or_else(
                    || Error::internal(sqlx::Error::Database(db)),
                    |(_, _, field, message)| {
                        Error::AlreadyExists(FieldViolation::new(*field, *message))
                    },
                )
        }
        // PostgreSQL deadlock or serialization failure: safe to retry.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|code| code == "40P01" || code == "40001") =>
        {
            Error::Aborted(Box::new(sqlx::Error::Database(db)))
        }
        // SQLite busy or locked past the busy timeout (another process
        // writing): the caller may retry.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|code| matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517")) =>
        {
            Error::Unavailable(Box::new(sqlx::Error::Database(db)))
        }
        // Connection lost, or the server shutting down (SQLSTATE 08xxx, 57P0x).
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")) =>
        {
            Error::Unavailable(Box::new(sqlx::Error::Database(db)))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(error)),
        other => Error::internal(other),
    }
}
