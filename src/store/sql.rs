//! The one implementation of `Store`, instantiated for each backend.
//!
//! The SQL here is portable: `$N` placeholders, `ON CONFLICT`, `RETURNING`
//! and row-value comparisons mean the same on SQLite and PostgreSQL. sqlx
//! types each query by its database, so the shared body is a macro expanded
//! once per backend rather than a generic function whose trait bounds would
//! outweigh the code. A backend supplies, as inherent items of its store:
//! `reader()` and `writer()` pools, `BACKEND`, and `push_metadata_filter`;
//! plus the literal that locks a selected row for the rest of a transaction.

macro_rules! impl_store {
    ($store:ty, $db:ty, lock_row = $lock:literal) => {
        impl $store {
            async fn insert_workspace<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: &$crate::domain::workspace::Workspace,
            ) -> $crate::error::Result<()> {
                sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(workspace.id.0)
                    .bind(workspace.name.as_str())
                    .bind(workspace.created_at)
                    .execute(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(())
            }

            async fn insert_key<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                key: &$crate::domain::workspace::NewApiKey,
            ) -> $crate::error::Result<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, workspace_id, secret_hash, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(key.id.0)
                .bind(key.workspace_id.0)
                .bind(&key.secret_hash.0[..])
                .bind(key.created_at)
                .execute(executor)
                .await
                .map_err($crate::store::db_error)?;
                Ok(())
            }

            /// The live customer `lookup` names, locked for the rest of the
            /// transaction when `lock` is set.
            async fn fetch_live_customer<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::customer::CustomerLookup,
                lock: bool,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                use $crate::domain::customer::CustomerLookup;
                use $crate::store::rows::{customer_columns, CustomerRow};
                macro_rules! select {
                    ($by:literal, $suffix:literal) => {
                        concat!(
                            "SELECT ", customer_columns!(), " FROM customers WHERE ", $by,
                            " = $1 AND workspace_id = $2 AND deleted_at IS NULL",
                            $suffix
                        )
                    };
                }
                let query = match (lookup, lock) {
                    (CustomerLookup::Id(id), false) => {
                        sqlx::query_as::<_, CustomerRow>(select!("id", "")).bind(*id)
                    }
                    (CustomerLookup::Id(id), true) => {
                        sqlx::query_as(select!("id", $lock)).bind(*id)
                    }
                    (CustomerLookup::ExternalId(id), false) => {
                        sqlx::query_as(select!("external_id", "")).bind(id.as_str())
                    }
                    (CustomerLookup::ExternalId(id), true) => {
                        sqlx::query_as(select!("external_id", $lock)).bind(id.as_str())
                    }
                };
                query
                    .bind(workspace.0)
                    .fetch_optional(executor)
                    .await
                    .map_err($crate::store::db_error)?
                    .map(Into::into)
                    .ok_or($crate::error::Error::NotFound { resource: "customer" })
            }

            /// The tail of a keyset-paged listing: rows after the page's
            /// cursor in `(created_at, <key>)` order (or before it, newest
            /// first), one more than the page so the page knows if another
            /// follows, skipping the page's offset. `table` prefixes the
            /// columns when the query joins (`u.`).
            fn push_page(
                query: &mut sqlx::QueryBuilder<$db>,
                page: &$crate::domain::page::PageRequest,
                table: &str,
                key: &str,
            ) {
                let (compare, order) = if page.descending { ("<", "DESC") } else { (">", "ASC") };
                if let Some(after) = page.after {
                    query
                        .push(format!(" AND ({table}created_at, {table}{key}) {compare} ("))
                        .push_bind(after.created_at)
                        .push(", ")
                        .push_bind(after.id)
                        .push(")");
                }
                query
                    .push(format!(" ORDER BY {table}created_at {order}, {table}{key} {order} LIMIT "))
                    .push_bind(page.fetch_limit());
                if page.skip > 0 {
                    query.push(" OFFSET ").push_bind(i64::try_from(page.skip).unwrap_or(i64::MAX));
                }
            }

            /// The `WHERE` clause of a customer listing: live customers of
            /// the workspace that pass every filter.
            fn push_customer_filter(
                query: &mut sqlx::QueryBuilder<$db>,
                workspace: $crate::domain::WorkspaceId,
                filter: &$crate::domain::customer::CustomerFilter,
            ) {
                query.push("deleted_at IS NULL AND workspace_id = ").push_bind(workspace.0);
                if let Some(email) = &filter.email {
                    query.push(" AND email_key = ").push_bind(email.key());
                }
                if let Some(external_id) = &filter.external_id {
                    query.push(" AND external_id = ").push_bind(external_id.as_str().to_owned());
                }
                for (key, value) in &filter.metadata {
                    query.push(" AND ");
                    Self::push_metadata_filter(query, key, value);
                }
            }

            async fn insert_customer_row<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                customer: &$crate::domain::customer::Customer,
            ) -> $crate::error::Result<()> {
                use sqlx::types::Json;
                sqlx::query(
                    "INSERT INTO customers (id, workspace_id, external_id, email, email_key, \
                     email_verified, name, billing_address, metadata, kind, created_at, \
                     modified_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(customer.id)
                .bind(customer.workspace_id.0)
                .bind(customer.external_id.as_ref().map(|id| id.as_str()))
                .bind(customer.email.as_ref().map(|email| email.as_str()))
                .bind(customer.email.as_ref().map(|email| email.key()))
                .bind(customer.email_verified)
                .bind(customer.name.as_ref().map(|name| name.as_str()))
                .bind(customer.billing_address.as_ref().map(Json))
                .bind(Json(&customer.metadata))
                .bind(customer.kind.as_str())
                .bind(customer.created_at)
                .bind(customer.modified_at)
                .bind(customer.deleted_at)
                .execute(executor)
                .await
                .map_err($crate::store::db_error)?;
                Ok(())
            }

            /// Writes a customer's fields back (not its id, workspace or
            /// creation time).
            async fn write_customer<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                customer: &$crate::domain::customer::Customer,
            ) -> $crate::error::Result<()> {
                use sqlx::types::Json;
                sqlx::query(
                    "UPDATE customers SET external_id = $3, email = $4, email_key = $5, \
                     email_verified = $6, name = $7, billing_address = $8, metadata = $9, \
                     kind = $10, modified_at = $11 WHERE workspace_id = $1 AND id = $2",
                )
                .bind(workspace.0)
                .bind(customer.id)
                .bind(customer.external_id.as_ref().map(|id| id.as_str()))
                .bind(customer.email.as_ref().map(|email| email.as_str()))
                .bind(customer.email.as_ref().map(|email| email.key()))
                .bind(customer.email_verified)
                .bind(customer.name.as_ref().map(|name| name.as_str()))
                .bind(customer.billing_address.as_ref().map(Json))
                .bind(Json(&customer.metadata))
                .bind(customer.kind.as_str())
                .bind(customer.modified_at)
                .execute(executor)
                .await
                .map_err($crate::store::db_error)?;
                Ok(())
            }

            /// Soft-deletes a live customer and releases what identified it:
            /// its company keys and its memberships.
            async fn soft_delete_customer(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::customer::CustomerLookup,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                use $crate::domain::customer::CustomerLookup;
                use $crate::store::rows::{customer_columns, CustomerRow};
                macro_rules! soft_delete {
                    ($by:literal) => {
                        concat!(
                            "UPDATE customers SET deleted_at = $3 WHERE workspace_id = $1 AND ",
                            $by, " = $2 AND deleted_at IS NULL RETURNING ", customer_columns!()
                        )
                    };
                }
                let query = match lookup {
                    CustomerLookup::Id(id) => {
                        sqlx::query_as::<_, CustomerRow>(soft_delete!("id")).bind(workspace.0).bind(*id)
                    }
                    CustomerLookup::ExternalId(id) => sqlx::query_as(soft_delete!("external_id"))
                        .bind(workspace.0)
                        .bind(id.as_str()),
                };
                let customer: $crate::domain::customer::Customer = query
                    .bind($crate::domain::now())
                    .fetch_optional(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?
                    .map(Into::into)
                    .ok_or($crate::error::Error::NotFound { resource: "customer" })?;
                for release in [
                    "DELETE FROM customer_keys WHERE customer_id = $1",
                    "DELETE FROM memberships WHERE customer_id = $1",
                ] {
                    sqlx::query(release)
                        .bind(customer.id)
                        .execute(&mut *connection)
                        .await
                        .map_err($crate::store::db_error)?;
                }
                Ok(customer)
            }

            /// The entities of one customer with these ids (unprepared, for
            /// the reason given at `fetch_people_named`).
            async fn fetch_entities<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                customer_id: uuid::Uuid,
                ids: impl Iterator<Item = &$crate::domain::entity::EntityId>,
            ) -> $crate::error::Result<
                std::collections::HashMap<
                    $crate::domain::entity::EntityId,
                    $crate::domain::entity::Entity,
                >,
            > {
                use $crate::store::rows::{entity_columns, EntityRow};
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", entity_columns!(), " FROM entities WHERE customer_id = "
                ));
                query.push_bind(customer_id).push(" AND id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.as_str().to_owned());
                }
                query.push(")");
                let rows: Vec<EntityRow> = query
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let entity = $crate::domain::entity::Entity::from(row);
                        (entity.id.clone(), entity)
                    })
                    .collect())
            }

            /// The workspace's entity types with these ids.
            async fn fetch_entity_types<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                ids: impl Iterator<Item = &$crate::domain::entity::EntityId>,
            ) -> $crate::error::Result<
                std::collections::HashMap<
                    $crate::domain::entity::EntityId,
                    $crate::domain::entity::EntityType,
                >,
            > {
                use $crate::store::rows::{entity_type_columns, EntityTypeRow};
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", entity_type_columns!(), " FROM entity_types WHERE workspace_id = "
                ));
                query.push_bind(workspace.0).push(" AND id IN (");
                let mut list = query.separated(", ");
                let mut any = false;
                for id in ids {
                    list.push_bind(id.as_str().to_owned());
                    any = true;
                }
                if !any {
                    return Ok(std::collections::HashMap::new());
                }
                query.push(")");
                let rows: Vec<EntityTypeRow> = query
                    .build_query_as()
                    .fetch_all(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let entity_type = $crate::domain::entity::EntityType::from(row);
                        (entity_type.id.clone(), entity_type)
                    })
                    .collect())
            }

            /// Writes whole entity rows with one multi-row statement.
            async fn write_entities<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                entities: &[$crate::domain::entity::Entity],
            ) -> $crate::error::Result<()> {
                use sqlx::types::Json;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO entities (pk, workspace_id, customer_id, id, type_id, \
                     display_name, metadata, created_at, updated_at, archived_at) ",
                );
                query.push_values(entities, |mut row, entity| {
                    row.push_bind(entity.key)
                        .push_bind(workspace.0)
                        .push_bind(entity.customer_id)
                        .push_bind(entity.id.as_str().to_owned())
                        .push_bind(entity.type_id.as_str().to_owned())
                        .push_bind(entity.display_name.clone())
                        .push_bind(Json(entity.metadata.clone()))
                        .push_bind(entity.created_at)
                        .push_bind(entity.updated_at)
                        .push_bind(entity.archived_at);
                });
                query.push(
                    " ON CONFLICT (customer_id, id) DO UPDATE SET type_id = excluded.type_id, \
                     display_name = excluded.display_name, metadata = excluded.metadata, \
                     updated_at = excluded.updated_at, archived_at = excluded.archived_at",
                );
                query
                    .build()
                    .execute(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(())
            }

            /// The live person `lookup` names, locked for the rest of the
            /// transaction when `lock` is set.
            async fn fetch_person<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::person::PersonLookup,
                lock: bool,
            ) -> $crate::error::Result<$crate::domain::person::Person> {
                use $crate::domain::person::PersonLookup;
                use $crate::store::rows::{person_columns, PersonRow};
                macro_rules! select {
                    ($by:literal, $suffix:literal) => {
                        concat!(
                            "SELECT ", person_columns!(), " FROM people WHERE ", $by,
                            " = $1 AND workspace_id = $2", $suffix
                        )
                    };
                }
                let query = match (lookup, lock) {
                    (PersonLookup::Id(id), false) => sqlx::query_as::<_, PersonRow>(select!("id", "")).bind(*id),
                    (PersonLookup::Id(id), true) => sqlx::query_as(select!("id", $lock)).bind(*id),
                    (PersonLookup::ExternalId(id), false) => sqlx::query_as(select!("external_id", "")).bind(id.clone()),
                    (PersonLookup::ExternalId(id), true) => sqlx::query_as(select!("external_id", $lock)).bind(id.clone()),
                    (PersonLookup::Email(email), false) => sqlx::query_as(select!("email_key", "")).bind(email.key()),
                    (PersonLookup::Email(email), true) => sqlx::query_as(select!("email_key", $lock)).bind(email.key()),
                };
                query
                    .bind(workspace.0)
                    .fetch_optional(executor)
                    .await
                    .map_err($crate::store::db_error)?
                    .map(Into::into)
                    .ok_or($crate::error::Error::NotFound { resource: "person" })
            }

            /// Every person of the workspace whose external id or email a
            /// batch names, locked in id order for the rest of the
            /// transaction, so concurrent batches, updates and deletes of
            /// the same people queue rather than overwrite each other.
            ///
            /// The statement is not prepared: a plan cached while the table
            /// was small (a scan) would outlive a bulk load that makes it
            /// large.
            async fn fetch_people_named<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::person::PersonUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::person::Person>> {
                use $crate::store::rows::{person_columns, PersonRow};
                // One table and plain conditions: a row locked and updated
                // under this read is re-checked against them and still
                // returned (a self-join or sub-select here would drop it).
                // SQLite answers the OR with both unique indexes.
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", person_columns!(), " FROM people WHERE (workspace_id = "
                ));
                query.push_bind(workspace.0).push(" AND external_id IN (");
                let mut ids = query.separated(", ");
                for upsert in batch {
                    ids.push_bind(upsert.user_id.clone());
                }
                query.push("))");
                let emails: Vec<String> =
                    batch.iter().filter_map(|u| u.email.as_ref().map(|e| e.key())).collect();
                if !emails.is_empty() {
                    query
                        .push(" OR (workspace_id = ")
                        .push_bind(workspace.0)
                        .push(" AND email_key IN (");
                    let mut list = query.separated(", ");
                    for email in emails {
                        list.push_bind(email);
                    }
                    query.push("))");
                }
                query.push(concat!(" ORDER BY id", $lock));
                let rows: Vec<PersonRow> = query
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            /// One attempt at a people batch, in one transaction. Everyone is
            /// first inserted as new, skipping whoever a unique index says
            /// exists; a unique index makes each creation atomic, so two
            /// batches can never both create one person. Only those who exist
            /// are then read (locked) and merged by the domain.
            async fn upsert_people_once(
                pool: &sqlx::Pool<$db>,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::person::PersonUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::person::Upserted>> {
                use $crate::domain::person::{self, Upserted};
                let now = $crate::domain::now();
                let fresh = person::create_all(workspace, batch, now)?;
                let mut tx = pool.begin().await.map_err($crate::store::db_error)?;
                let mut query = Self::people_insert(fresh.iter());
                query.push(" ON CONFLICT DO NOTHING RETURNING id");
                let inserted: std::collections::HashSet<uuid::Uuid> = query
                    .build_query_scalar::<uuid::Uuid>()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::store::db_error)?
                    .into_iter()
                    .collect();
                let existing: Vec<(usize, &person::PersonUpsert)> = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !inserted.contains(&fresh[*i].id))
                    .collect();
                let mut merged = std::collections::HashMap::new();
                if !existing.is_empty() {
                    let named: Vec<_> = existing.iter().map(|(_, u)| (*u).clone()).collect();
                    let stored = Self::fetch_people_named(&mut *tx, workspace, &named).await?;
                    let planned = person::plan_batch(workspace, &existing, &stored, now)?;
                    Self::write_people(&mut *tx, planned.iter().map(|u| &u.person)).await?;
                    merged = existing.iter().map(|(i, _)| *i).zip(planned).collect();
                }
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(fresh
                    .into_iter()
                    .enumerate()
                    .map(|(i, person)| {
                        merged.remove(&i).unwrap_or(Upserted { person, created: true })
                    })
                    .collect())
            }

            /// `INSERT INTO people … VALUES …` for whole person rows, to be
            /// finished with an `ON CONFLICT` clause.
            fn people_insert<'p>(
                people: impl Iterator<Item = &'p $crate::domain::person::Person>,
            ) -> sqlx::QueryBuilder<$db> {
                use sqlx::types::Json;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO people (id, workspace_id, external_id, email, email_key, phone, \
                     first_name, last_name, avatar_url, timezone, locale, status, attributes, \
                     search_text, created_at, updated_at, first_seen_at, last_seen_at) ",
                );
                query.push_values(people, |mut row, person| {
                    let profile = |name: &str| person.profile.get(name).map(str::to_owned);
                    row.push_bind(person.id)
                        .push_bind(person.workspace_id.0)
                        .push_bind(person.external_id.clone())
                        .push_bind(person.email.as_ref().map(|e| e.as_str().to_owned()))
                        .push_bind(person.email.as_ref().map(|e| e.key()))
                        .push_bind(profile("phone"))
                        .push_bind(profile("first_name"))
                        .push_bind(profile("last_name"))
                        .push_bind(profile("avatar_url"))
                        .push_bind(profile("timezone"))
                        .push_bind(profile("locale"))
                        .push_bind(person.status.as_str())
                        .push_bind(Json(person.attributes.clone()))
                        .push_bind(person.search_text())
                        .push_bind(person.created_at)
                        .push_bind(person.updated_at)
                        .push_bind(person.first_seen_at)
                        .push_bind(person.last_seen_at);
                });
                query
            }

            /// Writes whole person rows with one multi-row statement.
            async fn write_people<'e, 'p>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                people: impl Iterator<Item = &'p $crate::domain::person::Person>,
            ) -> $crate::error::Result<()> {
                let mut query = Self::people_insert(people);
                query.push(
                    " ON CONFLICT (id) DO UPDATE SET external_id = excluded.external_id, \
                     email = excluded.email, email_key = excluded.email_key, phone = excluded.phone, \
                     first_name = excluded.first_name, last_name = excluded.last_name, \
                     avatar_url = excluded.avatar_url, timezone = excluded.timezone, \
                     locale = excluded.locale, status = excluded.status, \
                     attributes = excluded.attributes, search_text = excluded.search_text, \
                     updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at",
                );
                query
                    .build()
                    .execute(executor)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> $crate::error::Result<()> {
                sqlx::query("SELECT 1")
                    .execute(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(())
            }

            async fn bootstrap(
                &self,
            ) -> $crate::error::Result<
                Option<(
                    $crate::domain::workspace::Workspace,
                    $crate::domain::workspace::NewApiKey,
                )>,
            > {
                use $crate::domain::workspace::{NewApiKey, Workspace, WorkspaceName};
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let workspaces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::store::db_error)?;
                if workspaces > 0 {
                    return Ok(None);
                }
                let workspace = Workspace {
                    id: $crate::domain::WorkspaceId(uuid::Uuid::new_v4()),
                    name: WorkspaceName::parse(WorkspaceName::DEFAULT).expect("valid name"),
                    created_at: $crate::domain::now(),
                };
                let key = NewApiKey::generate(workspace.id);
                let created = async {
                    Self::insert_workspace(&mut *tx, &workspace).await?;
                    Self::insert_key(&mut *tx, &key).await?;
                    tx.commit().await.map_err($crate::store::db_error)
                };
                match created.await {
                    Ok(()) => Ok(Some((workspace, key))),
                    // Another replica bootstrapped the same empty database.
                    Err($crate::error::Error::AlreadyExists(_)) => Ok(None),
                    Err(error) => Err(error),
                }
            }

            async fn create_workspace(
                &self,
                name: &$crate::domain::workspace::WorkspaceName,
            ) -> $crate::error::Result<$crate::domain::workspace::Workspace> {
                let workspace = $crate::domain::workspace::Workspace {
                    id: $crate::domain::WorkspaceId(uuid::Uuid::new_v4()),
                    name: name.clone(),
                    created_at: $crate::domain::now(),
                };
                Self::insert_workspace(self.writer(), &workspace).await?;
                Ok(workspace)
            }

            async fn find_workspace(
                &self,
                name_or_id: &str,
            ) -> $crate::error::Result<Option<$crate::domain::workspace::Workspace>> {
                use $crate::store::rows::WorkspaceRow;
                let query = match uuid::Uuid::try_parse(name_or_id) {
                    Ok(id) => sqlx::query_as::<_, WorkspaceRow>(
                        "SELECT id, name, created_at FROM workspaces WHERE id = $1",
                    )
                    .bind(id),
                    Err(_) => sqlx::query_as(
                        "SELECT id, name, created_at FROM workspaces WHERE name = $1",
                    )
                    .bind(name_or_id),
                };
                let row = query
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(row.map(Into::into))
            }

            async fn insert_api_key(
                &self,
                key: &$crate::domain::workspace::NewApiKey,
            ) -> $crate::error::Result<()> {
                Self::insert_key(self.writer(), key).await
            }

            async fn find_api_key(
                &self,
                id: $crate::domain::workspace::ApiKeyId,
            ) -> $crate::error::Result<Option<$crate::domain::workspace::ApiKey>> {
                sqlx::query_as::<_, $crate::store::rows::ApiKeyRow>(
                    "SELECT id, workspace_id, secret_hash, created_at, revoked_at \
                     FROM api_keys WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::store::db_error)?
                .map(TryInto::try_into)
                .transpose()
            }

            async fn list_api_keys(
                &self,
                workspace: $crate::domain::WorkspaceId,
            ) -> $crate::error::Result<Vec<$crate::domain::workspace::ApiKey>> {
                sqlx::query_as::<_, $crate::store::rows::ApiKeyRow>(
                    "SELECT id, workspace_id, secret_hash, created_at, revoked_at \
                     FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id",
                )
                .bind(workspace.0)
                .fetch_all(self.reader())
                .await
                .map_err($crate::store::db_error)?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn revoke_api_key(
                &self,
                id: $crate::domain::workspace::ApiKeyId,
            ) -> $crate::error::Result<$crate::domain::workspace::ApiKey> {
                sqlx::query_as::<_, $crate::store::rows::ApiKeyRow>(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                     RETURNING id, workspace_id, secret_hash, created_at, revoked_at",
                )
                .bind(id.0)
                .bind($crate::domain::now())
                .fetch_optional(self.writer())
                .await
                .map_err($crate::store::db_error)?
                .ok_or($crate::error::Error::NotFound { resource: "API key" })?
                .try_into()
            }

            async fn insert_customer(
                &self,
                customer: &$crate::domain::customer::Customer,
            ) -> $crate::error::Result<()> {
                Self::insert_customer_row(self.writer(), customer).await
            }

            async fn get_customer(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::customer::CustomerLookup,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                Self::fetch_live_customer(self.reader(), workspace, lookup, false).await
            }

            async fn list_customers(
                &self,
                workspace: $crate::domain::WorkspaceId,
                filter: &$crate::domain::customer::CustomerFilter,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<
                $crate::domain::page::Page<$crate::domain::customer::Customer>,
            > {
                use $crate::store::rows::{customer_columns, customer_cursor, CustomerRow};
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", customer_columns!(), " FROM customers WHERE "
                ));
                Self::push_customer_filter(&mut query, workspace, filter);
                Self::push_page(&mut query, page, "", "id");
                let rows: Vec<CustomerRow> = query
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                let customers = rows.into_iter().map(Into::into).collect();
                Ok(page.finish(customers, customer_cursor))
            }

            async fn count_customers(
                &self,
                workspace: $crate::domain::WorkspaceId,
                filter: &$crate::domain::customer::CustomerFilter,
            ) -> $crate::error::Result<u64> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM customers WHERE ");
                Self::push_customer_filter(&mut query, workspace, filter);
                let count: i64 = query
                    .build_query_scalar()
                    .fetch_one(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn update_customer(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::customer::CustomerLookup,
                patch: &$crate::domain::customer::CustomerPatch,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let current = Self::fetch_live_customer(&mut *tx, workspace, lookup, true).await?;
                let next = current.apply(patch, $crate::domain::now())?;
                if next == current {
                    return Ok(current);
                }
                Self::write_customer(&mut *tx, workspace, &next).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(next)
            }

            async fn delete_customer(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::customer::CustomerLookup,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let customer = Self::soft_delete_customer(&mut tx, workspace, lookup).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(customer)
            }

            async fn upsert_entity_types(
                &self,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::entity::EntityTypeUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::entity::EntityType>> {
                use sqlx::types::Json;
                use $crate::store::rows::{entity_type_columns, EntityTypeRow};
                let now = $crate::domain::now();
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let current =
                    Self::fetch_entity_types(&mut *tx, workspace, batch.iter().map(|t| &t.id)).await?;
                let mut types: Vec<_> = batch.iter().map(|t| t.apply(current.get(&t.id), now)).collect();
                // One write order for every batch, so concurrent batches never
                // deadlock on each other's rows.
                types.sort_by(|a, b| a.id.cmp(&b.id));
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO entity_types (pk, workspace_id, id, display_name, \
                     attribution_keys, created_at, updated_at, archived_at) ",
                );
                query.push_values(&types, |mut row, t| {
                    row.push_bind(t.key)
                        .push_bind(workspace.0)
                        .push_bind(t.id.as_str().to_owned())
                        .push_bind(t.display_name.clone())
                        .push_bind(Json(t.attribution_keys.clone()))
                        .push_bind(t.created_at)
                        .push_bind(t.updated_at)
                        .push_bind(t.archived_at);
                });
                // A concurrent batch may have created a type since it was read:
                // RETURNING reports what is stored, not what was computed.
                query.push(concat!(
                    " ON CONFLICT (workspace_id, id) DO UPDATE SET \
                     display_name = excluded.display_name, attribution_keys = excluded.attribution_keys, \
                     updated_at = excluded.updated_at, archived_at = excluded.archived_at RETURNING ",
                    entity_type_columns!()
                ));
                let rows: Vec<EntityTypeRow> = query
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::store::db_error)?;
                tx.commit().await.map_err($crate::store::db_error)?;
                let mut stored: std::collections::HashMap<_, _> = rows
                    .into_iter()
                    .map(|row| {
                        let t = $crate::domain::entity::EntityType::from(row);
                        (t.id.clone(), t)
                    })
                    .collect();
                Ok(batch
                    .iter()
                    .filter_map(|t| stored.remove(&t.id))
                    .collect())
            }

            async fn list_entity_types(
                &self,
                workspace: $crate::domain::WorkspaceId,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<
                $crate::domain::page::Page<$crate::domain::entity::EntityType>,
            > {
                use $crate::store::rows::{entity_type_columns, entity_type_cursor, EntityTypeRow};
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", entity_type_columns!(), " FROM entity_types WHERE workspace_id = "
                ));
                query.push_bind(workspace.0);
                Self::push_page(&mut query, page, "", "pk");
                let rows: Vec<EntityTypeRow> = query
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(page.finish(rows.into_iter().map(Into::into).collect(), entity_type_cursor))
            }

            async fn upsert_entities(
                &self,
                workspace: $crate::domain::WorkspaceId,
                owner: &$crate::domain::customer::ExternalId,
                batch: &[$crate::domain::entity::EntityUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::entity::Entity>> {
                use $crate::domain::customer::CustomerLookup;
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                // The owner's row lock serialises batches of one customer, so
                // the read-merge-write below never races another.
                let lookup = CustomerLookup::ExternalId(owner.clone());
                let customer = Self::fetch_live_customer(&mut *tx, workspace, &lookup, true).await?;
                let type_ids = batch.iter().filter_map(|u| u.type_id.as_ref());
                let types = Self::fetch_entity_types(&mut *tx, workspace, type_ids).await?;
                let existing =
                    Self::fetch_entities(&mut *tx, customer.id, batch.iter().map(|u| &u.id)).await?;
                let entities = $crate::domain::entity::apply_batch(
                    customer.id,
                    batch,
                    &existing,
                    &types,
                    $crate::domain::now(),
                )?;
                Self::write_entities(&mut *tx, workspace, &entities).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(entities)
            }

            async fn get_entity(
                &self,
                workspace: $crate::domain::WorkspaceId,
                owner: &$crate::domain::customer::ExternalId,
                id: &$crate::domain::entity::EntityId,
            ) -> $crate::error::Result<$crate::domain::entity::Entity> {
                use $crate::domain::customer::CustomerLookup;
                let lookup = CustomerLookup::ExternalId(owner.clone());
                let customer = Self::fetch_live_customer(self.reader(), workspace, &lookup, false).await?;
                Self::fetch_entities(self.reader(), customer.id, std::iter::once(id))
                    .await?
                    .remove(id)
                    .ok_or($crate::error::Error::NotFound { resource: "entity" })
            }

            async fn list_entities(
                &self,
                workspace: $crate::domain::WorkspaceId,
                owner: &$crate::domain::customer::ExternalId,
                filter: &$crate::domain::entity::EntityFilter,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<$crate::domain::page::Page<$crate::domain::entity::Entity>> {
                use $crate::domain::customer::CustomerLookup;
                use $crate::store::rows::{entity_columns, entity_cursor, EntityRow};
                let lookup = CustomerLookup::ExternalId(owner.clone());
                let customer = Self::fetch_live_customer(self.reader(), workspace, &lookup, false).await?;
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", entity_columns!(), " FROM entities WHERE customer_id = "
                ));
                query.push_bind(customer.id);
                if let Some(type_id) = &filter.type_id {
                    query.push(" AND type_id = ").push_bind(type_id.as_str().to_owned());
                }
                if !filter.include_archived {
                    query.push(" AND archived_at IS NULL");
                }
                Self::push_page(&mut query, page, "", "pk");
                let rows: Vec<EntityRow> = query
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(page.finish(rows.into_iter().map(Into::into).collect(), entity_cursor))
            }

            async fn entity_cursor(
                &self,
                workspace: $crate::domain::WorkspaceId,
                owner: &$crate::domain::customer::ExternalId,
                key: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::page::Cursor> {
                let lookup = $crate::domain::customer::CustomerLookup::ExternalId(owner.clone());
                let customer = Self::fetch_live_customer(self.reader(), workspace, &lookup, false).await?;
                let created_at: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::query_scalar("SELECT created_at FROM entities WHERE pk = $1 AND customer_id = $2")
                        .bind(key)
                        .bind(customer.id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err($crate::store::db_error)?;
                created_at
                    .map(|created_at| $crate::domain::page::Cursor { created_at, id: key })
                    .ok_or($crate::error::Error::InvalidPageToken("no such entity"))
            }

            async fn entity_type_cursor(
                &self,
                workspace: $crate::domain::WorkspaceId,
                key: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::page::Cursor> {
                let created_at: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::query_scalar("SELECT created_at FROM entity_types WHERE pk = $1 AND workspace_id = $2")
                        .bind(key)
                        .bind(workspace.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err($crate::store::db_error)?;
                created_at
                    .map(|created_at| $crate::domain::page::Cursor { created_at, id: key })
                    .ok_or($crate::error::Error::InvalidPageToken("no such entity type"))
            }

            async fn set_entities_archived(
                &self,
                workspace: $crate::domain::WorkspaceId,
                owner: &$crate::domain::customer::ExternalId,
                ids: &[$crate::domain::entity::EntityId],
                archived: bool,
            ) -> $crate::error::Result<Vec<$crate::domain::entity::Entity>> {
                use $crate::domain::customer::CustomerLookup;
                let now = $crate::domain::now();
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let lookup = CustomerLookup::ExternalId(owner.clone());
                let customer = Self::fetch_live_customer(&mut *tx, workspace, &lookup, true).await?;
                let existing = Self::fetch_entities(&mut *tx, customer.id, ids.iter()).await?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let mut entity = existing
                        .get(id)
                        .cloned()
                        .ok_or($crate::error::Error::NotFound { resource: "entity" })?;
                    match (archived, entity.archived_at) {
                        (true, None) => entity.archived_at = Some(now),
                        (false, Some(_)) => entity.archived_at = None,
                        _ => {
                            out.push(entity);
                            continue;
                        }
                    }
                    entity.updated_at = now;
                    out.push(entity);
                }
                Self::write_entities(&mut *tx, workspace, &out).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(out)
            }
            async fn upsert_people(
                &self,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::person::PersonUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::person::Upserted>> {
                match self.insert_new_people(workspace, batch).await {
                    Ok(Some(created)) => return Ok(created),
                    // Someone exists, or two batches of new people deadlocked
                    // on each other's keys: the merge below retries.
                    Ok(None) | Err($crate::error::Error::Aborted(_)) => {}
                    Err(error) => return Err(error),
                }
                self.merge_people(workspace, batch).await
            }

            async fn merge_people(
                &self,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::person::PersonUpsert],
            ) -> $crate::error::Result<Vec<$crate::domain::person::Upserted>> {
                // Racing batches may deadlock on each other's new keys, or
                // one may plan to create someone another batch creates at
                // that instant. Either way the loser rolled back entirely and
                // is run again; a clash the domain found itself names
                // `people[i]` and is final.
                let mut attempts = 0;
                loop {
                    match Self::upsert_people_once(self.writer(), workspace, batch).await {
                        Err($crate::error::Error::Aborted(_)) if attempts < 3 => attempts += 1,
                        Err($crate::error::Error::AlreadyExists(violation))
                            if !violation.field.starts_with("people[") && attempts < 3 =>
                        {
                            attempts += 1
                        }
                        result => return result,
                    }
                }
            }

            async fn insert_new_people(
                &self,
                workspace: $crate::domain::WorkspaceId,
                batch: &[$crate::domain::person::PersonUpsert],
            ) -> $crate::error::Result<Option<Vec<$crate::domain::person::Upserted>>> {
                // Most batches only bring new people. A plain multi-row
                // INSERT is atomic on its own: one round trip writes them
                // all, or nothing when anyone already exists.
                let now = $crate::domain::now();
                let fresh = $crate::domain::person::create_all(workspace, batch, now)?;
                match Self::people_insert(fresh.iter()).build().execute(self.writer()).await {
                    Ok(_) => Ok(Some(
                        fresh
                            .into_iter()
                            .map(|person| $crate::domain::person::Upserted { person, created: true })
                            .collect(),
                    )),
                    Err(sqlx::Error::Database(e))
                        if e.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err($crate::store::db_error(e)),
                }
            }

            async fn get_person(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::person::PersonLookup,
            ) -> $crate::error::Result<$crate::domain::person::Person> {
                Self::fetch_person(self.reader(), workspace, lookup, false).await
            }

            async fn list_people(
                &self,
                workspace: $crate::domain::WorkspaceId,
                filter: &$crate::domain::person::PersonFilter,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<$crate::domain::page::Page<$crate::domain::person::Person>> {
                use $crate::store::rows::{person_columns, person_cursor, PersonRow};
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", person_columns!(), " FROM people WHERE workspace_id = "
                ));
                query.push_bind(workspace.0);
                if let Some(status) = filter.status {
                    query.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(search) = &filter.search {
                    let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    query
                        .push(" AND search_text LIKE ")
                        .push_bind(format!("%{escaped}%"))
                        .push(" ESCAPE '\\'");
                }
                Self::push_page(&mut query, page, "", "id");
                let rows: Vec<PersonRow> = query
                    .build_query_as()
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(page.finish(rows.into_iter().map(Into::into).collect(), person_cursor))
            }

            async fn update_person(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::person::PersonLookup,
                patch: &$crate::domain::person::PersonPatch,
            ) -> $crate::error::Result<$crate::domain::person::Person> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let current = Self::fetch_person(&mut *tx, workspace, lookup, true).await?;
                let next = patch.apply(current.clone(), $crate::domain::now());
                if next != current {
                    Self::write_people(&mut *tx, std::iter::once(&next)).await?;
                }
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(next)
            }

            async fn delete_person(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::person::PersonLookup,
            ) -> $crate::error::Result<$crate::domain::person::Person> {
                use $crate::domain::person::PersonLookup;
                use $crate::store::rows::{person_columns, PersonRow};
                macro_rules! delete {
                    ($by:literal) => {
                        concat!(
                            "DELETE FROM people WHERE ", $by, " = $1 AND workspace_id = $2 RETURNING ",
                            person_columns!()
                        )
                    };
                }
                let query = match lookup {
                    PersonLookup::Id(id) => sqlx::query_as::<_, PersonRow>(delete!("id")).bind(*id),
                    PersonLookup::ExternalId(id) => sqlx::query_as(delete!("external_id")).bind(id.clone()),
                    PersonLookup::Email(email) => sqlx::query_as(delete!("email_key")).bind(email.key()),
                };
                query
                    .bind(workspace.0)
                    .fetch_optional(self.writer())
                    .await
                    .map_err($crate::store::db_error)?
                    .map(Into::into)
                    .ok_or($crate::error::Error::NotFound { resource: "person" })
            }
        }
    };
}

pub(super) use impl_store;
