//! Search on both backends alike: the predicate every searched listing adds,
//! and the rebuild of documents stored before their current version.
//!
//! Documents are folded by the domain (`domain::search`), so the database
//! compares folded text with folded text using `LIKE` with escaped
//! wildcards, which SQLite and PostgreSQL evaluate alike.

use std::collections::BTreeMap;
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
const REBUILD_BATCH: usize = 500;

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

    /// The primary key's columns: the rebuild walks the table in their
    /// order, so each batch starts where the last ended and two replicas
    /// rebuilding at once lock rows in the same order.
    fn primary_key(self) -> &'static [&'static str] {
        match self {
            Self::Customers | Self::Users | Self::People => &["id"],
            Self::Entities => &["pk"],
            Self::CustomerKeys => &["customer_id", "name"],
            Self::UserKeys => &["user_id", "name"],
        }
    }
}

/// One row's rebuilt document: its primary key, and each search column's
/// new value.
struct Rebuilt {
    key: Vec<Value>,
    columns: Vec<(&'static str, String)>,
}

impl Rebuilt {
    fn document(key: Value, document: &SearchDocument, has_key: bool) -> Self {
        let mut columns = vec![("search_text", document.text().to_owned())];
        if has_key {
            columns.push(("search_key", document.key().to_owned()));
        }
        Self {
            key: vec![key],
            columns,
        }
    }
}

impl Store {
    /// Rebuilds every search document stored at an older `SEARCH_VERSION`
    /// (rows written before search existed, or before folding changed),
    /// in batches walked in primary-key order, logging progress.
    /// Idempotent, and safe beside writers: a row a writer stored at the
    /// current version meanwhile is left alone.
    pub async fn rebuild_search_documents(&self) -> Result<()> {
        for searched in Searched::ALL {
            let started = Instant::now();
            let mut rebuilt = 0_usize;
            let mut after = None;
            loop {
                // Queued like every writer, so that at snapshot isolation
                // the batch never loses to a concurrent write.
                let mut tx = self.write().await?;
                let batch = tx.stale_documents(searched, after.as_deref()).await?;
                for row in &batch {
                    tx.store_rebuilt(searched, row).await?;
                }
                tx.commit().await?;
                rebuilt += batch.len();
                if batch.len() < REBUILD_BATCH {
                    break;
                }
                after = batch.into_iter().last().map(|row| row.key);
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
    /// Up to `REBUILD_BATCH` rows of one table below the current version,
    /// after the primary key `after`, each with its document rebuilt.
    async fn stale_documents(
        &mut self,
        searched: Searched,
        after: Option<&[Value]>,
    ) -> Result<Vec<Rebuilt>> {
        let key = searched.primary_key().join(", ");
        let stale = |columns: &str| {
            let mut sql = Sql::new(format!(
                "SELECT {columns} FROM {} WHERE search_version < $1",
                searched.table()
            ))
            .bind(SEARCH_VERSION);
            if let Some(after) = after {
                sql.push(&format!(" AND ({key}) > ("))
                    .push_list(after.iter().cloned())
                    .push(")");
            }
            sql.push(&format!(" ORDER BY {key} LIMIT "))
                .push_bind(REBUILD_BATCH as i64);
            sql
        };
        Ok(match searched {
            Searched::Customers => {
                let rows: Vec<CustomerRow> = self.fetch_all(stale(CUSTOMER_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let customer = Customer::from(row);
                        Rebuilt::document(customer.id.into(), &customer.search_document(), true)
                    })
                    .collect()
            }
            Searched::Users => {
                let rows: Vec<UserRow> = self.fetch_all(stale(USER_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let user = row.into_user(BTreeMap::new());
                        // Users have no key column: their keys have rows of
                        // their own.
                        Rebuilt::document(user.id.into(), &user.search_document(), false)
                    })
                    .collect()
            }
            Searched::People => {
                let rows: Vec<PersonRow> = self.fetch_all(stale(PERSON_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let person = Person::from(row);
                        Rebuilt::document(person.id.into(), &person.search_document(), true)
                    })
                    .collect()
            }
            Searched::Entities => {
                let rows: Vec<EntityRow> = self.fetch_all(stale(ENTITY_COLUMNS)).await?;
                rows.into_iter()
                    .map(|row| {
                        let entity = Entity::from(row);
                        Rebuilt::document(entity.key.into(), &entity.search_document(), true)
                    })
                    .collect()
            }
            Searched::CustomerKeys | Searched::UserKeys => {
                let owner = searched.primary_key()[0];
                let rows: Vec<KeyRow> = self
                    .fetch_all(stale(&format!("{owner} AS owner, name, value")))
                    .await?;
                rows.into_iter()
                    .map(|row| Rebuilt {
                        columns: vec![("search_value", fold(&row.value))],
                        key: vec![row.owner.into(), row.name.into()],
                    })
                    .collect()
            }
        })
    }

    /// Writes one rebuilt row, unless a writer stored it at the current
    /// version since it was read.
    async fn store_rebuilt(&mut self, searched: Searched, row: &Rebuilt) -> Result<()> {
        let mut sql = Sql::new(format!(
            "UPDATE {} SET search_version = $1",
            searched.table()
        ))
        .bind(SEARCH_VERSION);
        for (column, value) in &row.columns {
            sql.push(&format!(", {column} = "))
                .push_bind(value.as_str());
        }
        sql.push(" WHERE search_version < $1");
        for (column, value) in searched.primary_key().iter().zip(&row.key) {
            sql.push(&format!(" AND {column} = "))
                .push_bind(value.clone());
        }
        self.execute(sql).await.map(drop)
    }
}
