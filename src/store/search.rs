//! Search on both backends alike: the predicate every searched listing adds,
//! and the rebuild of documents stored before their current version.
//!
//! Documents are folded by the domain (`domain::search`), so the database
//! compares folded text with folded text using `LIKE` with escaped
//! wildcards, which SQLite and PostgreSQL evaluate alike.

use std::time::Instant;

use super::rows::{
    CUSTOMER_COLUMNS, CustomerRow, ENTITY_COLUMNS, EntityRow, KeyRow, PERSON_COLUMNS, PersonRow,
    UserRow,
};
use super::sql::{Sql, Value};
use super::users::USER_COLUMNS;
use super::{Store, Transaction};
use crate::domain::customer::Customer;
use crate::domain::entity::Entity;
use crate::domain::person::Person;
use crate::domain::search::{SEARCH_VERSION, SearchDocument, SearchQuery, fold};
use crate::error::Result;

/// Where a listing's query is looked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct SearchColumns {
    /// The listed table.
    pub table: &'static str,
    /// The column of folded fields the query must be inside of.
    pub text: &'static str,
    /// The folded column the query must start, if the record has one.
    pub key: Option<&'static str>,
    /// The key table whose folded values the query may be inside of, with
    /// its column of the listed table's `id`.
    pub keys: Option<(&'static str, &'static str)>,
}

/// Appends ` AND (…)`: the record matches `query` in any of `columns`.
pub(super) fn push_search(sql: &mut Sql, query: &SearchQuery, columns: SearchColumns) {
    let table = columns.table;
    let contains = query.contains_pattern();
    sql.push(&format!(" AND ({table}.{} LIKE ", columns.text))
        .push_bind(contains.as_str())
        .push(ESCAPE);
    if let Some(key) = columns.key {
        sql.push(&format!(" OR {table}.{key} LIKE "))
            .push_bind(query.prefix_pattern())
            .push(ESCAPE);
    }
    if let Some((keys, owner)) = columns.keys {
        sql.push(&format!(
            " OR EXISTS (SELECT 1 FROM {keys} WHERE {keys}.{owner} = {table}.id \
             AND {keys}.search_value LIKE "
        ))
        .push_bind(contains)
        .push(ESCAPE)
        .push(")");
    }
    sql.push(")");
}

/// The escape character of every pattern `SearchQuery` writes.
const ESCAPE: &str = " ESCAPE '\\'";

/// Rows rebuilt per transaction: small enough that a rebuild beside a
/// serving replica holds the write lock only briefly.
const REBUILD_BATCH: i64 = 500;

/// The tables that hold search documents, in the order they are rebuilt.
#[derive(Debug, Clone, Copy)]
enum Searched {
    Customers,
    CustomerKeys,
    Users,
    UserKeys,
    People,
    Entities,
}

impl Searched {
    const ALL: [Self; 6] = [
        Self::Customers,
        Self::CustomerKeys,
        Self::Users,
        Self::UserKeys,
        Self::People,
        Self::Entities,
    ];

    fn table(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::CustomerKeys => "customer_keys",
            Self::Users => "users",
            Self::UserKeys => "user_keys",
            Self::People => "people",
            Self::Entities => "entities",
        }
    }
}

impl Store {
    /// Rebuilds every search document stored at an older `SEARCH_VERSION`
    /// (rows written before search existed, or before folding changed),
    /// in batches, logging progress. Idempotent, and safe beside writers:
    /// a row a writer stored at the current version meanwhile is left alone.
    pub async fn rebuild_search_documents(&self) -> Result<()> {
        for searched in Searched::ALL {
            let started = Instant::now();
            let mut rebuilt = 0_u64;
            loop {
                let mut tx = self.write_unqueued().await?;
                let done = tx.rebuild_search_batch(searched).await?;
                tx.commit().await?;
                rebuilt += done;
                if done < REBUILD_BATCH.unsigned_abs() {
                    break;
                }
                if rebuilt.is_multiple_of(50_000) {
                    tracing::info!(
                        table = searched.table(),
                        rebuilt,
                        "rebuilding search documents"
                    );
                }
            }
            if rebuilt > 0 {
                tracing::info!(
                    table = searched.table(),
                    rebuilt,
                    seconds = started.elapsed().as_secs_f64(),
                    "rebuilt search documents"
                );
            }
        }
        Ok(())
    }
}

impl Transaction {
    /// Rebuilds up to `REBUILD_BATCH` stale documents of one table; returns
    /// how many.
    async fn rebuild_search_batch(&mut self, searched: Searched) -> Result<u64> {
        let table = searched.table();
        let stale = |columns: &str| {
            Sql::new(format!(
                "SELECT {columns} FROM {table} WHERE search_version < $1 LIMIT $2"
            ))
            .bind(SEARCH_VERSION)
            .bind(REBUILD_BATCH)
        };
        let documents: Vec<(Value, SearchDocument)> = match searched {
            Searched::Customers => {
                let rows: Vec<CustomerRow> = self.fetch_all(stale(CUSTOMER_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let customer = Customer::from(row);
                        (customer.id.into(), customer.search_document())
                    })
                    .collect()
            }
            Searched::Users => {
                let rows: Vec<UserRow> = self.fetch_all(stale(USER_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let user = row.into_user(Default::default());
                        (user.id.into(), user.search_document())
                    })
                    .collect()
            }
            Searched::People => {
                let rows: Vec<PersonRow> = self.fetch_all(stale(PERSON_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let person = Person::from(row);
                        (person.id.into(), person.search_document())
                    })
                    .collect()
            }
            Searched::Entities => {
                let rows: Vec<EntityRow> = self.fetch_all(stale(ENTITY_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let entity = Entity::from(row);
                        (entity.key.into(), entity.search_document())
                    })
                    .collect()
            }
            Searched::CustomerKeys | Searched::UserKeys => {
                let owner = key_owner_column(searched);
                let rows: Vec<KeyRow> = self
                    .fetch_all(stale(&format!("{owner} AS owner, name, value")))
                    .await?;
                return self.rebuild_key_values(searched, rows).await;
            }
        };
        let identity = if matches!(searched, Searched::Entities) {
            "pk"
        } else {
            "id"
        };
        // Users have no key column: their keys have rows of their own.
        let has_key = !matches!(searched, Searched::Users);
        let count = documents.len() as u64;
        for (id, document) in documents {
            let mut sql = Sql::new(format!(
                "UPDATE {table} SET search_version = $1, search_text = $2"
            ))
            .bind(SEARCH_VERSION)
            .bind(document.text());
            if has_key {
                sql.push(", search_key = ").push_bind(document.key());
            }
            sql.push(&format!(" WHERE search_version < $1 AND {identity} = "))
                .push_bind(id);
            self.execute(sql).await?;
        }
        Ok(count)
    }

    async fn rebuild_key_values(&mut self, searched: Searched, rows: Vec<KeyRow>) -> Result<u64> {
        let count = rows.len() as u64;
        for row in rows {
            let sql = Sql::new(format!(
                "UPDATE {} SET search_value = $2, search_version = $1 \
                 WHERE search_version < $1 AND {} = $3 AND name = $4",
                searched.table(),
                key_owner_column(searched)
            ))
            .bind(SEARCH_VERSION)
            .bind(fold(&row.value))
            .bind(row.owner)
            .bind(row.name);
            self.execute(sql).await?;
        }
        Ok(count)
    }
}

fn key_owner_column(searched: Searched) -> &'static str {
    match searched {
        Searched::UserKeys => "user_id",
        _ => "customer_id",
    }
}
