//! Users, the keys that identify users and companies, company traits, and
//! memberships.
//!
//! A company is a customer: its `external_id` key is the customer's own
//! column and its other keys live in `customer_keys`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::rows::{
    CompanyRow, KeyRow, MemberUserRow, MembershipCompanyRow, MembershipRow, UserRow,
    UserWithKeysRow,
};
use super::search::{SearchColumns, push_search};
use super::sql::{Sql, Value};
use super::{Session, Transaction, push_page};
use crate::domain::WorkspaceId;
use crate::domain::page::{Cursor, Page, PageRequest};
use crate::domain::search::{self, SEARCH_VERSION};
use crate::domain::user::{
    Company, EXTERNAL_ID_KEY, Keys, MEMBER_EMAIL_KEY, MEMBER_EXTERNAL_ID_KEY, Member, MemberRole,
    Membership, MembershipDetail, MembershipFilter, User, UserDetail, UserFilter,
};
use crate::error::Result;

pub(super) const USER_COLUMNS: &str = "id, name, traits, last_seen_at, created_at, updated_at";
const MEMBERSHIP_COLUMNS: &str = "id, user_id, customer_id, role, created_at, updated_at";

/// Whose keys: users', or companies' (customers').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwners {
    Users,
    Companies,
}

impl KeyOwners {
    /// Keys this kind of owner keeps in its keys table: all of a user's;
    /// a company's but `external_id`, which is the customer's own column.
    fn stored(self, keys: &Keys) -> impl Iterator<Item = (&String, &String)> {
        keys.iter()
            .filter(move |(name, _)| self == Self::Users || name.as_str() != EXTERNAL_ID_KEY)
    }
}

/// A user is found by its name and its key values.
const USER_SEARCH: SearchColumns = SearchColumns {
    table: "u",
    text: "search_text",
    key: None,
    keys: Some(("user_keys", "user_id")),
};

/// ` FROM users u … WHERE …`: the workspace's users that pass `filter`.
fn push_user_filter(sql: &mut Sql, workspace: WorkspaceId, filter: &UserFilter) {
    sql.push(" FROM users u");
    if let Some(company) = filter.company {
        sql.push(" JOIN memberships m ON m.user_id = u.id AND m.customer_id = ")
            .push_bind(company);
    }
    sql.push(" WHERE u.workspace_id = ").push_bind(workspace.0);
    if !filter.ids.is_empty() {
        sql.push(" AND u.id IN (")
            .push_list(filter.ids.iter().copied())
            .push(")");
    }
    if let Some(query) = &filter.query {
        push_search(sql, query, USER_SEARCH);
    }
}

/// `{select} WHERE workspace_id = $1 AND {column} IN (…ids)`, not kept
/// prepared: lists vary in length.
fn among(select: &str, workspace: WorkspaceId, column: &str, ids: &[Uuid]) -> Sql {
    let mut sql = Sql::new(format!(
        "{select} WHERE workspace_id = $1 AND {column} IN ("
    ))
    .bind(workspace.0);
    sql.push_list(ids.iter().copied()).push(")");
    sql.unprepared()
}

impl Session {
    /// The stored keys of each of these owners.
    async fn keys_of(
        &mut self,
        owners: KeyOwners,
        workspace: WorkspaceId,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, BTreeMap<String, String>>> {
        let (select, column) = match owners {
            KeyOwners::Users => (
                "SELECT user_id AS owner, name, value FROM user_keys",
                "user_id",
            ),
            KeyOwners::Companies => (
                "SELECT customer_id AS owner, name, value FROM customer_keys",
                "customer_id",
            ),
        };
        let rows: Vec<KeyRow> = self
            .fetch_all(among(select, workspace, column, ids))
            .await?;
        let mut keys: HashMap<Uuid, BTreeMap<String, String>> = HashMap::new();
        for key in rows {
            keys.entry(key.owner)
                .or_default()
                .insert(key.name, key.value);
        }
        Ok(keys)
    }

    /// Who owns each of these keys in the workspace: key name → owner.
    pub async fn key_owners(
        &mut self,
        workspace: WorkspaceId,
        keys: &Keys,
        owners: KeyOwners,
    ) -> Result<BTreeMap<String, Uuid>> {
        let mut sql = Sql::new("");
        let mut parts = 0;
        let stored: Vec<_> = owners.stored(keys).collect();
        if !stored.is_empty() {
            sql.push(match owners {
                KeyOwners::Users => {
                    "SELECT user_id AS owner, name, value FROM user_keys WHERE workspace_id = "
                }
                KeyOwners::Companies => {
                    "SELECT customer_id AS owner, name, value FROM customer_keys \
                     WHERE workspace_id = "
                }
            })
            .push_bind(workspace.0)
            .push(" AND (");
            for (i, (name, value)) in stored.into_iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("(name = ")
                    .push_bind(name)
                    .push(" AND value = ")
                    .push_bind(value)
                    .push(")");
            }
            sql.push(")");
            parts += 1;
        }
        if let (KeyOwners::Companies, Some(external_id)) = (owners, keys.get(EXTERNAL_ID_KEY)) {
            if parts > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push(
                "SELECT id AS owner, 'external_id' AS name, external_id AS value FROM customers \
                 WHERE workspace_id = ",
            )
            .push_bind(workspace.0)
            .push(" AND external_id = ")
            .push_bind(external_id)
            .push(" AND deleted_at IS NULL");
            parts += 1;
        }
        if parts == 0 {
            return Ok(BTreeMap::new());
        }
        let rows: Vec<KeyRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows.into_iter().map(|row| (row.name, row.owner)).collect())
    }

    /// Whether the workspace has this user.
    pub async fn user_exists(&mut self, workspace: WorkspaceId, id: Uuid) -> Result<bool> {
        let sql = Sql::new("SELECT id FROM users WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace.0);
        let row: Option<(Uuid,)> = self.fetch_optional(sql).await?;
        Ok(row.is_some())
    }

    /// The workspace's users among `ids`, with their keys and memberships
    /// (and each membership's company), in the order of `ids`.
    pub async fn users(&mut self, workspace: WorkspaceId, ids: &[Uuid]) -> Result<Vec<UserDetail>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Two statements: the users with their keys, and their memberships
        // with each company and its keys; each owner's keys gathered into
        // one JSON object by the database.
        let keys = self.dialect().json_object_aggregate();
        let users: Vec<UserWithKeysRow> = self
            .fetch_all(among(
                &format!(
                    "SELECT {USER_COLUMNS}, (SELECT {keys}(k.name, k.value) FROM user_keys k \
                     WHERE k.user_id = users.id) AS stored_keys FROM users"
                ),
                workspace,
                "id",
                ids,
            ))
            .await?;
        let mut sql = Sql::new(format!(
            "SELECT c.id, c.name, c.external_id, c.traits, c.last_seen_at, c.created_at, \
             c.modified_at, (SELECT {keys}(k.name, k.value) FROM customer_keys k \
             WHERE k.customer_id = c.id) AS company_keys, \
             m.id AS membership_id, m.user_id, m.role AS membership_role, \
             m.created_at AS membership_created_at, m.updated_at AS membership_updated_at \
             FROM memberships m JOIN customers c ON c.id = m.customer_id \
             AND c.deleted_at IS NULL \
             WHERE m.workspace_id = $1 AND m.user_id IN ("
        ))
        .bind(workspace.0);
        sql.push_list(ids.iter().copied())
            .push(") ORDER BY m.created_at, m.id");
        let memberships: Vec<MembershipCompanyRow> = self.fetch_all(sql.unprepared()).await?;

        let mut users: HashMap<Uuid, UserDetail> = users
            .into_iter()
            .map(|row| {
                let user = row.into_user();
                (
                    user.id,
                    UserDetail {
                        user,
                        memberships: Vec::new(),
                    },
                )
            })
            .collect();
        for row in memberships {
            let membership = row.into_detail();
            if let Some(detail) = users.get_mut(&membership.membership.user_id) {
                detail.memberships.push(membership);
            }
        }
        Ok(ids.iter().filter_map(|id| users.remove(id)).collect())
    }

    /// One user with its keys and memberships.
    pub async fn user(&mut self, workspace: WorkspaceId, id: Uuid) -> Result<Option<UserDetail>> {
        Ok(self.users(workspace, &[id]).await?.pop())
    }

    /// The workspace's live companies among `ids`, by id.
    pub async fn companies(
        &mut self,
        workspace: WorkspaceId,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Company>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = among(
            "SELECT id, name, external_id, traits, last_seen_at, created_at, modified_at \
             FROM customers",
            workspace,
            "id",
            ids,
        );
        sql.push(" AND deleted_at IS NULL");
        let rows: Vec<CompanyRow> = self.fetch_all(sql).await?;
        let mut keys = self.keys_of(KeyOwners::Companies, workspace, ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let id = row.id;
                (id, row.into_company(keys.remove(&id).unwrap_or_default()))
            })
            .collect())
    }

    /// One live company with its keys.
    pub async fn company(&mut self, workspace: WorkspaceId, id: Uuid) -> Result<Option<Company>> {
        Ok(self.companies(workspace, &[id]).await?.remove(&id))
    }

    pub async fn list_users(
        &mut self,
        workspace: WorkspaceId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<UserDetail>> {
        let mut sql = Sql::new("SELECT u.id, u.created_at");
        push_user_filter(&mut sql, workspace, filter);
        push_page(&mut sql, page, "u.", "id");
        let rows: Vec<(Uuid, DateTime<Utc>)> = self.fetch_all(sql).await?;
        // The page (and its next token) comes from the id rows, so a user
        // deleted between the two queries shortens this page but cannot end
        // the walk.
        let ids = page.finish(rows, |&(id, created_at)| Cursor { created_at, id });
        let kept: Vec<Uuid> = ids.items.iter().map(|(id, _)| *id).collect();
        Ok(Page {
            items: self.users(workspace, &kept).await?,
            next_token: ids.next_token,
        })
    }

    /// How many users (members of the filter's company, when it names one)
    /// the workspace has.
    pub async fn count_users(
        &mut self,
        workspace: WorkspaceId,
        filter: &UserFilter,
    ) -> Result<u64> {
        let mut sql = Sql::new("SELECT COUNT(*)");
        push_user_filter(&mut sql, workspace, filter);
        self.count(sql).await
    }

    /// The membership of a user in a company, if there is one.
    pub async fn membership(
        &mut self,
        workspace: WorkspaceId,
        company: Uuid,
        user: Uuid,
    ) -> Result<Option<Membership>> {
        let sql = Sql::new(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE workspace_id = $1 \
             AND customer_id = $2 AND user_id = $3"
        ))
        .bind(workspace.0)
        .bind(company)
        .bind(user);
        let row: Option<MembershipRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    pub async fn list_memberships(
        &mut self,
        workspace: WorkspaceId,
        filter: &MembershipFilter,
        page: &PageRequest,
    ) -> Result<Page<MembershipDetail>> {
        let mut sql = Sql::new(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE workspace_id = $1"
        ))
        .bind(workspace.0);
        if let Some(company) = filter.company {
            sql.push(" AND customer_id = ").push_bind(company);
        }
        if let Some(user) = filter.user {
            sql.push(" AND user_id = ").push_bind(user);
        }
        push_page(&mut sql, page, "", "id");
        let rows: Vec<MembershipRow> = self.fetch_all(sql).await?;
        // Paged before the company join, so a company deleted meanwhile
        // drops its row from this page without ending the walk.
        let memberships = page.finish(
            rows.into_iter().map(Membership::from).collect(),
            |membership: &Membership| Cursor {
                created_at: membership.created_at,
                id: membership.id,
            },
        );
        let ids: Vec<Uuid> = memberships.items.iter().map(|m| m.company_id).collect();
        let companies = self.companies(workspace, &ids).await?;
        let items = memberships
            .items
            .into_iter()
            .filter_map(|membership| {
                let company = companies.get(&membership.company_id)?.clone();
                Some(MembershipDetail {
                    membership,
                    company,
                })
            })
            .collect();
        Ok(Page {
            items,
            next_token: memberships.next_token,
        })
    }

    /// The members of each of these customers, oldest first.
    pub async fn customer_members(
        &mut self,
        workspace: WorkspaceId,
        customers: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Member>>> {
        let mut members: HashMap<Uuid, Vec<Member>> = HashMap::new();
        if customers.is_empty() {
            return Ok(members);
        }
        let mut sql = Sql::new(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE workspace_id = $1 \
             AND customer_id IN ("
        ))
        .bind(workspace.0);
        sql.push_list(customers.iter().copied())
            .push(") ORDER BY created_at, id");
        // One customer (every Get) is one statement text worth preparing
        // once; longer lists vary and would crowd the cache.
        if customers.len() > 1 {
            sql = sql.unprepared();
        }
        let rows: Vec<MembershipRow> = self.fetch_all(sql).await?;
        if rows.is_empty() {
            return Ok(members);
        }
        let memberships: Vec<Membership> = rows.into_iter().map(Into::into).collect();
        let user_ids: Vec<Uuid> = memberships.iter().map(|m| m.user_id).collect();
        let users = self.member_users(workspace, &user_ids).await?;
        for membership in memberships {
            if let Some(user) = users.get(&membership.user_id) {
                members
                    .entry(membership.company_id)
                    .or_default()
                    .push(user.member(membership));
            }
        }
        Ok(members)
    }

    /// What members show of these users, in one statement: not whole users
    /// (keys, memberships, companies), which take five. Kept apart from the
    /// memberships' statement: joined into it, PostgreSQL re-plans the
    /// statement on every Get rather than reuse a generic plan.
    async fn member_users(
        &mut self,
        workspace: WorkspaceId,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, MemberUserRow>> {
        let select = "SELECT u.id, u.name, \
             (SELECT k.value FROM user_keys k WHERE k.user_id = u.id AND k.name = $2) AS email, \
             (SELECT k.value FROM user_keys k WHERE k.user_id = u.id AND k.name = $3) \
             AS external_id \
             FROM users u WHERE u.workspace_id = $1 AND u.id IN (";
        let mut sql = Sql::new(select)
            .bind(workspace.0)
            .bind(MEMBER_EMAIL_KEY)
            .bind(MEMBER_EXTERNAL_ID_KEY);
        sql.push_list(ids.iter().copied()).push(")");
        let rows: Vec<MemberUserRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Transaction {
    /// The user `id` names, with its keys, locked until the transaction
    /// ends.
    pub async fn lock_user(&mut self, workspace: WorkspaceId, id: Uuid) -> Result<Option<User>> {
        let mut sql = Sql::new(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND workspace_id = $2"
        ))
        .bind(id)
        .bind(workspace.0);
        sql.push(self.dialect().lock_row());
        let row: Option<UserRow> = self.fetch_optional(sql).await?;
        if row.is_none() {
            return Ok(None);
        }
        Ok(self.user(workspace, id).await?.map(|detail| detail.user))
    }

    /// Writes a user's row and adds or re-points its keys (never removes
    /// one).
    pub async fn write_user(&mut self, workspace: WorkspaceId, user: &User) -> Result<()> {
        let sql = Sql::new(format!(
            "INSERT INTO users (workspace_id, {USER_COLUMNS}, search_text, search_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, traits = excluded.traits, \
             last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at, \
             search_text = excluded.search_text, search_version = excluded.search_version"
        ))
        .bind(workspace.0)
        .bind(user.id)
        .bind(user.name.as_deref())
        .bind(Value::json(&user.traits))
        .bind(user.last_seen_at)
        .bind(user.created_at)
        .bind(user.updated_at)
        .bind(user.search_document().text())
        .bind(SEARCH_VERSION);
        self.execute(sql).await?;
        self.write_keys(workspace, user.id, &user.keys, KeyOwners::Users)
            .await
    }

    /// Adds or re-points an owner's keys (never removes one).
    pub async fn write_keys(
        &mut self,
        workspace: WorkspaceId,
        owner: Uuid,
        keys: &Keys,
        owners: KeyOwners,
    ) -> Result<()> {
        let stored: Vec<_> = owners.stored(keys).collect();
        if stored.is_empty() {
            return Ok(());
        }
        let (insert, conflict) = match owners {
            KeyOwners::Users => (
                "INSERT INTO user_keys (user_id, workspace_id, name, value, search_value, \
                 search_version) ",
                " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, \
                 search_value = excluded.search_value, search_version = excluded.search_version",
            ),
            KeyOwners::Companies => (
                "INSERT INTO customer_keys (customer_id, workspace_id, name, value, search_value, \
                 search_version) ",
                " ON CONFLICT (customer_id, name) DO UPDATE SET value = excluded.value, \
                 search_value = excluded.search_value, search_version = excluded.search_version",
            ),
        };
        let mut sql = Sql::new(insert);
        sql.push_values(stored, |row, (name, value)| {
            row.bind(owner)
                .bind(workspace.0)
                .bind(name)
                .bind(value)
                .bind(search::fold(value))
                .bind(SEARCH_VERSION);
        });
        sql.push(conflict);
        self.execute(sql).await.map(drop)
    }

    /// Replaces a company's traits, moving its last-seen time when given.
    pub async fn write_company_traits(
        &mut self,
        workspace: WorkspaceId,
        company: Uuid,
        traits: &Map<String, Json>,
        last_seen_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql = Sql::new(
            "UPDATE customers SET traits = $3, last_seen_at = COALESCE($4, last_seen_at), \
             modified_at = $5 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace.0)
        .bind(company)
        .bind(Value::json(traits))
        .bind(last_seen_at)
        .bind(now);
        self.execute(sql).await.map(drop)
    }

    /// Creates a membership unless the user already has one in the
    /// company; returns the new one, or `None`.
    pub async fn insert_membership(
        &mut self,
        workspace: WorkspaceId,
        membership: &Membership,
    ) -> Result<Option<Membership>> {
        let sql = Sql::new(format!(
            "INSERT INTO memberships (workspace_id, {MEMBERSHIP_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, customer_id) DO NOTHING \
             RETURNING {MEMBERSHIP_COLUMNS}"
        ))
        .bind(workspace.0)
        .bind(membership.id)
        .bind(membership.user_id)
        .bind(membership.company_id)
        .bind(membership.role.as_str())
        .bind(membership.created_at)
        .bind(membership.updated_at);
        let row: Option<MembershipRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    /// Gives the membership `id` of `company` this role (its update time
    /// moving only if the role changes); `None` when there is no such
    /// membership.
    pub async fn set_membership_role(
        &mut self,
        workspace: WorkspaceId,
        company: Uuid,
        id: Uuid,
        role: MemberRole,
        now: DateTime<Utc>,
    ) -> Result<Option<Membership>> {
        let sql = Sql::new(format!(
            "UPDATE memberships SET role = $4, \
             updated_at = CASE WHEN role = $4 THEN updated_at ELSE $5 END \
             WHERE workspace_id = $1 AND customer_id = $2 AND id = $3 \
             RETURNING {MEMBERSHIP_COLUMNS}"
        ))
        .bind(workspace.0)
        .bind(company)
        .bind(id)
        .bind(role.as_str())
        .bind(now);
        let row: Option<MembershipRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    /// Deletes a membership; with `company`, only one of that company's.
    pub async fn delete_membership(
        &mut self,
        workspace: WorkspaceId,
        id: Uuid,
        company: Option<Uuid>,
    ) -> Result<Option<Membership>> {
        let mut sql = Sql::new("DELETE FROM memberships WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.0)
            .bind(id);
        if let Some(company) = company {
            sql.push(" AND customer_id = ").push_bind(company);
        }
        sql.push(&format!(" RETURNING {MEMBERSHIP_COLUMNS}"));
        let row: Option<MembershipRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    /// Deletes the user's memberships in every company but `keep`; returns
    /// what it deleted.
    pub async fn delete_memberships_except(
        &mut self,
        workspace: WorkspaceId,
        user: Uuid,
        keep: &[Uuid],
    ) -> Result<Vec<Membership>> {
        let mut sql = Sql::new("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(workspace.0)
            .bind(user);
        if !keep.is_empty() {
            sql.push(" AND customer_id NOT IN (")
                .push_list(keep.iter().copied())
                .push(")");
        }
        sql.push(&format!(" RETURNING {MEMBERSHIP_COLUMNS}"));
        let rows: Vec<MembershipRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes every membership in a company; returns what it deleted.
    pub async fn delete_company_memberships(
        &mut self,
        workspace: WorkspaceId,
        company: Uuid,
    ) -> Result<Vec<Membership>> {
        let sql = Sql::new(format!(
            "DELETE FROM memberships WHERE workspace_id = $1 AND customer_id = $2 \
             RETURNING {MEMBERSHIP_COLUMNS}"
        ))
        .bind(workspace.0)
        .bind(company);
        let rows: Vec<MembershipRow> = self.fetch_all(sql).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a company's stored keys (not its external id, which is the
    /// customer's column).
    pub async fn delete_company_keys(
        &mut self,
        workspace: WorkspaceId,
        company: Uuid,
    ) -> Result<()> {
        let sql =
            Sql::new("DELETE FROM customer_keys WHERE workspace_id = $1 AND customer_id = $2")
                .bind(workspace.0)
                .bind(company);
        self.execute(sql).await.map(drop)
    }

    /// Deletes a user with its keys and memberships, for good.
    pub async fn delete_user(&mut self, workspace: WorkspaceId, id: Uuid) -> Result<()> {
        for table in ["memberships", "user_keys"] {
            let sql = Sql::new(format!(
                "DELETE FROM {table} WHERE workspace_id = $1 AND user_id = $2"
            ))
            .bind(workspace.0)
            .bind(id);
            self.execute(sql).await?;
        }
        let sql = Sql::new("DELETE FROM users WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.0)
            .bind(id);
        self.execute(sql).await.map(drop)
    }
}
