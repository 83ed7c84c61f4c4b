//! Customers: rows of the `customers` table, which companies share.

use super::rows::{CUSTOMER_COLUMNS, CustomerMemberRow, CustomerRow, customer_cursor};
use super::search::{SearchColumns, push_search};
use super::sql::{Sql, Value};
use super::{Session, Transaction, push_page};
use crate::domain::WorkspaceId;
use crate::domain::customer::{Customer, CustomerDetail, CustomerFilter, CustomerLookup};
use crate::domain::page::{Page, PageRequest};
use crate::domain::search::{SEARCH_VERSION, SearchDocument};
use crate::domain::user::{MEMBER_EMAIL_KEY, MEMBER_EXTERNAL_ID_KEY};
use crate::error::Result;

/// `SELECT <columns> FROM customers WHERE <the live customer lookup names>`.
fn select_live(workspace: WorkspaceId, lookup: &CustomerLookup) -> Sql {
    let sql = match lookup {
        CustomerLookup::Id(id) => Sql::new(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers \
             WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL"
        ))
        .bind(*id),
        CustomerLookup::ExternalId(id) => Sql::new(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers \
             WHERE external_id = $1 AND workspace_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.as_str()),
    };
    sql.bind(workspace.0)
}

/// The `WHERE` clause of a customer listing: live customers of the
/// workspace that pass every filter.
fn push_filter(sql: &mut Sql, session: &Session, workspace: WorkspaceId, filter: &CustomerFilter) {
    sql.push("deleted_at IS NULL AND workspace_id = ")
        .push_bind(workspace.0);
    if let Some(email) = &filter.email {
        sql.push(" AND email_key = ").push_bind(email.key());
    }
    if let Some(external_id) = &filter.external_id {
        sql.push(" AND external_id = ")
            .push_bind(external_id.as_str());
    }
    for (key, value) in &filter.metadata {
        sql.push(" AND ");
        session.dialect().push_metadata_filter(sql, key, value);
    }
    if let Some(kind) = filter.kind {
        sql.push(" AND kind = ").push_bind(kind.as_str());
    }
    if !filter.ids.is_empty() {
        sql.push(" AND id IN (")
            .push_list(filter.ids.iter().copied())
            .push(")");
    }
    if let Some(query) = &filter.query {
        push_search(sql, query, CUSTOMER_SEARCH);
    }
}

/// A customer is found by its name and email, its external id's start, and
/// (a company) its key values.
const CUSTOMER_SEARCH: SearchColumns = SearchColumns {
    table: "customers",
    text: "search_text",
    key: Some("search_key"),
    keys: Some(("customer_keys", "customer_id")),
};

impl Session {
    /// The live customer `lookup` names in the workspace.
    pub async fn customer(
        &mut self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
    ) -> Result<Option<Customer>> {
        let row: Option<CustomerRow> = self.fetch_optional(select_live(workspace, lookup)).await?;
        Ok(row.map(Into::into))
    }

    /// The live customer `lookup` names in the workspace, with its members,
    /// in one statement: the customer `LEFT JOIN` its memberships, each
    /// with its user's name and the two keys a member shows. Its plan
    /// estimates no worse generic than custom, so PostgreSQL keeps one.
    pub async fn customer_detail(
        &mut self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
    ) -> Result<Option<CustomerDetail>> {
        let (column, value): (&str, Value) = match lookup {
            CustomerLookup::Id(id) => ("id", (*id).into()),
            CustomerLookup::ExternalId(id) => ("external_id", id.as_str().into()),
        };
        let sql = Sql::new(format!(
            "SELECT c.*, m.id AS member_id, m.user_id AS member_user_id, \
             m.role AS member_role, m.created_at AS member_created_at, \
             m.updated_at AS member_updated_at, \
             (SELECT u.name FROM users u WHERE u.id = m.user_id) AS member_name, \
             (SELECT k.value FROM user_keys k WHERE k.user_id = m.user_id AND k.name = $3) \
             AS member_email, \
             (SELECT k.value FROM user_keys k WHERE k.user_id = m.user_id AND k.name = $4) \
             AS member_external_id \
             FROM (SELECT {CUSTOMER_COLUMNS} FROM customers \
             WHERE {column} = $1 AND workspace_id = $2 AND deleted_at IS NULL) c \
             LEFT JOIN memberships m ON m.customer_id = c.id AND m.workspace_id = c.workspace_id \
             ORDER BY m.created_at, m.id"
        ))
        .bind(value)
        .bind(workspace.0)
        .bind(MEMBER_EMAIL_KEY)
        .bind(MEMBER_EXTERNAL_ID_KEY);
        let rows: Vec<CustomerMemberRow> = self.fetch_all(sql).await?;
        let mut rows = rows.into_iter();
        let Some(mut first) = rows.next() else {
            return Ok(None);
        };
        let members = first
            .member()
            .into_iter()
            .chain(rows.filter_map(|mut row| row.member()))
            .collect();
        Ok(Some(CustomerDetail {
            customer: first.customer.into(),
            members,
        }))
    }

    pub async fn list_customers(
        &mut self,
        workspace: WorkspaceId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>> {
        let mut sql = Sql::new(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE "));
        push_filter(&mut sql, self, workspace, filter);
        push_page(&mut sql, page, "", "id");
        let rows: Vec<CustomerRow> = self.fetch_all(sql).await?;
        Ok(page.finish(rows.into_iter().map(Into::into).collect(), customer_cursor))
    }

    /// How many live customers pass the filter.
    pub async fn count_customers(
        &mut self,
        workspace: WorkspaceId,
        filter: &CustomerFilter,
    ) -> Result<u64> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM customers WHERE ");
        push_filter(&mut sql, self, workspace, filter);
        self.count(sql).await
    }
}

impl Transaction {
    /// The live customer `lookup` names, locked until the transaction ends.
    pub async fn lock_customer(
        &mut self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
    ) -> Result<Option<Customer>> {
        let mut sql = select_live(workspace, lookup);
        sql.push(self.dialect().lock_row());
        let row: Option<CustomerRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    pub async fn insert_customer(&mut self, customer: &Customer) -> Result<()> {
        let sql = Sql::new(
            "INSERT INTO customers (id, workspace_id, external_id, email, email_key, \
             email_verified, name, billing_address, metadata, kind, created_at, \
             modified_at, deleted_at, search_text, search_key, search_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(customer.id)
        .bind(customer.workspace_id.0)
        .bind(customer.external_id.as_ref().map(|id| id.as_str()))
        .bind(customer.email.as_ref().map(|email| email.as_str()))
        .bind(customer.email.as_ref().map(|email| email.key()))
        .bind(customer.email_verified)
        .bind(customer.name.as_ref().map(|name| name.as_str()))
        .bind(billing_address(customer))
        .bind(Value::json(&customer.metadata))
        .bind(customer.kind.as_str())
        .bind(customer.created_at)
        .bind(customer.modified_at)
        .bind(customer.deleted_at);
        self.execute(bind_search(sql, &customer.search_document()))
            .await
            .map(drop)
    }

    /// Writes a customer's fields back (not its id, workspace or creation
    /// time).
    pub async fn update_customer(&mut self, customer: &Customer) -> Result<()> {
        let sql = Sql::new(
            "UPDATE customers SET external_id = $3, email = $4, email_key = $5, \
             email_verified = $6, name = $7, billing_address = $8, metadata = $9, \
             kind = $10, modified_at = $11, search_text = $12, search_key = $13, \
             search_version = $14 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(customer.workspace_id.0)
        .bind(customer.id)
        .bind(customer.external_id.as_ref().map(|id| id.as_str()))
        .bind(customer.email.as_ref().map(|email| email.as_str()))
        .bind(customer.email.as_ref().map(|email| email.key()))
        .bind(customer.email_verified)
        .bind(customer.name.as_ref().map(|name| name.as_str()))
        .bind(billing_address(customer))
        .bind(Value::json(&customer.metadata))
        .bind(customer.kind.as_str())
        .bind(customer.modified_at);
        self.execute(bind_search(sql, &customer.search_document()))
            .await
            .map(drop)
    }

    /// Marks the live customer deleted at `now` and returns it so; `None`
    /// when `lookup` names no live customer.
    pub async fn soft_delete_customer(
        &mut self,
        workspace: WorkspaceId,
        lookup: &CustomerLookup,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Customer>> {
        let by = match lookup {
            CustomerLookup::Id(_) => "id",
            CustomerLookup::ExternalId(_) => "external_id",
        };
        let sql = Sql::new(format!(
            "UPDATE customers SET deleted_at = $3 WHERE workspace_id = $1 AND {by} = $2 \
             AND deleted_at IS NULL RETURNING {CUSTOMER_COLUMNS}"
        ))
        .bind(workspace.0);
        let sql = match lookup {
            CustomerLookup::Id(id) => sql.bind(*id),
            CustomerLookup::ExternalId(id) => sql.bind(id.as_str()),
        };
        let row: Option<CustomerRow> = self.fetch_optional(sql.bind(now)).await?;
        Ok(row.map(Into::into))
    }
}

/// Binds a document's text, key and version, in that order.
fn bind_search(sql: Sql, document: &SearchDocument) -> Sql {
    sql.bind(document.text())
        .bind(document.key())
        .bind(SEARCH_VERSION)
}

fn billing_address(customer: &Customer) -> Value {
    Value::json_or_null(customer.billing_address.as_ref())
}
