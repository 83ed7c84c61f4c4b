//! The one implementation of `UserStore`, expanded per backend like
//! `sql.rs`. Rules (resolution by keys, merges, trait changes) come from
//! `domain::user`; this file only reads and writes rows.
//!
//! Creations race safely without locks: a key is unique per workspace, so
//! of two transactions creating one user or company by the same key, the
//! second fails on the key's index, rolls back, and is run again, when it
//! finds the first one's record.

macro_rules! impl_user_store {
    ($store:ty, $db:ty, lock_row = $lock:literal) => {
        impl $store {
            /// Who owns each of these keys: users, or companies (where the
            /// key `external_id` is the customer's own column).
            async fn key_owners(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                keys: &$crate::domain::user::Keys,
                companies: bool,
            ) -> $crate::error::Result<std::collections::BTreeMap<String, uuid::Uuid>> {
                use $crate::domain::user::EXTERNAL_ID_KEY;
                use $crate::store::rows::KeyRow;
                let mut query = sqlx::QueryBuilder::<$db>::new("");
                let mut parts = 0;
                let stored_keys: Vec<_> = keys
                    .iter()
                    .filter(|(name, _)| !companies || name.as_str() != EXTERNAL_ID_KEY)
                    .collect();
                if !stored_keys.is_empty() {
                    query.push(if companies {
                        "SELECT customer_id AS owner, name, value FROM customer_keys WHERE workspace_id = "
                    } else {
                        "SELECT user_id AS owner, name, value FROM user_keys WHERE workspace_id = "
                    });
                    query.push_bind(workspace.0).push(" AND (");
                    for (i, (name, value)) in stored_keys.into_iter().enumerate() {
                        if i > 0 {
                            query.push(" OR ");
                        }
                        query
                            .push("(name = ")
                            .push_bind(name.clone())
                            .push(" AND value = ")
                            .push_bind(value.clone())
                            .push(")");
                    }
                    query.push(")");
                    parts += 1;
                }
                if let (true, Some(external_id)) = (companies, keys.get(EXTERNAL_ID_KEY)) {
                    if parts > 0 {
                        query.push(" UNION ALL ");
                    }
                    query
                        .push("SELECT id AS owner, 'external_id' AS name, external_id AS value FROM customers WHERE workspace_id = ")
                        .push_bind(workspace.0)
                        .push(" AND external_id = ")
                        .push_bind(external_id.to_owned())
                        .push(" AND deleted_at IS NULL");
                    parts += 1;
                }
                if parts == 0 {
                    return Ok(std::collections::BTreeMap::new());
                }
                let rows: Vec<KeyRow> = query
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?;
                Ok(rows.into_iter().map(|row| (row.name, row.owner)).collect())
            }

            /// Users with their keys and memberships (and each membership's
            /// company), in the order of `ids`.
            async fn load_users(
                connection: &mut <$db as sqlx::Database>::Connection,
                ids: &[uuid::Uuid],
            ) -> $crate::error::Result<Vec<$crate::domain::user::UserDetail>> {
                use $crate::domain::user::{Membership, MembershipDetail, UserDetail};
                use $crate::store::rows::{KeyRow, MembershipRow, UserRow};
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let in_list = |query: &mut sqlx::QueryBuilder<$db>, ids: &[uuid::Uuid]| {
                    query.push(" IN (");
                    let mut list = query.separated(", ");
                    for id in ids {
                        list.push_bind(*id);
                    }
                    query.push(")");
                };
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, name, traits, last_seen_at, created_at, updated_at FROM users WHERE id",
                );
                in_list(&mut query, ids);
                let users: Vec<UserRow> = query.build_query_as().persistent(false).fetch_all(&mut *connection).await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT user_id AS owner, name, value FROM user_keys WHERE user_id");
                in_list(&mut query, ids);
                let keys: Vec<KeyRow> = query.build_query_as().persistent(false).fetch_all(&mut *connection).await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, user_id, customer_id, role, created_at, updated_at FROM memberships WHERE user_id",
                );
                in_list(&mut query, ids);
                query.push(" ORDER BY created_at, id");
                let memberships: Vec<Membership> = query
                    .build_query_as::<MembershipRow>()
                    .persistent(false)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                let company_ids: Vec<uuid::Uuid> = memberships.iter().map(|m| m.company_id).collect();
                let companies = Self::load_companies(&mut *connection, &company_ids).await?;

                let mut keys_by_user: std::collections::HashMap<uuid::Uuid, std::collections::BTreeMap<String, String>> =
                    std::collections::HashMap::new();
                for key in keys {
                    keys_by_user.entry(key.owner).or_default().insert(key.name, key.value);
                }
                let mut users: std::collections::HashMap<uuid::Uuid, UserDetail> = users
                    .into_iter()
                    .map(|row| {
                        let id = row.id;
                        let user = row.into_user(keys_by_user.remove(&id).unwrap_or_default());
                        (id, UserDetail { user, memberships: Vec::new() })
                    })
                    .collect();
                for membership in memberships {
                    if let (Some(detail), Some(company)) = (users.get_mut(&membership.user_id), companies.get(&membership.company_id)) {
                        detail.memberships.push(MembershipDetail { company: company.clone(), membership });
                    }
                }
                Ok(ids.iter().filter_map(|id| users.remove(id)).collect())
            }

            async fn load_user(
                connection: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::user::UserDetail> {
                Self::load_users(connection, &[id])
                    .await?
                    .into_iter()
                    .next()
                    .ok_or($crate::error::Error::NotFound { resource: "user" })
            }

            /// Live companies by customer id.
            async fn load_companies(
                connection: &mut <$db as sqlx::Database>::Connection,
                ids: &[uuid::Uuid],
            ) -> $crate::error::Result<std::collections::HashMap<uuid::Uuid, $crate::domain::user::Company>> {
                use $crate::store::rows::{CompanyRow, KeyRow};
                if ids.is_empty() {
                    return Ok(std::collections::HashMap::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, name, external_id, traits, last_seen_at, created_at, modified_at \
                     FROM customers WHERE deleted_at IS NULL AND id IN (",
                );
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                let rows: Vec<CompanyRow> = query.build_query_as().persistent(false).fetch_all(&mut *connection).await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT customer_id AS owner, name, value FROM customer_keys WHERE customer_id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                let keys: Vec<KeyRow> = query.build_query_as().persistent(false).fetch_all(&mut *connection).await.map_err($crate::store::db_error)?;
                let mut keys_by_company: std::collections::HashMap<uuid::Uuid, std::collections::BTreeMap<String, String>> =
                    std::collections::HashMap::new();
                for key in keys {
                    keys_by_company.entry(key.owner).or_default().insert(key.name, key.value);
                }
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let id = row.id;
                        (id, row.into_company(keys_by_company.remove(&id).unwrap_or_default()))
                    })
                    .collect())
            }

            async fn load_company(
                connection: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::user::Company> {
                Self::load_companies(connection, &[id])
                    .await?
                    .remove(&id)
                    .ok_or($crate::error::Error::NotFound { resource: "company" })
            }

            /// Adds or re-points keys (never removes one).
            async fn write_keys(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                owner: uuid::Uuid,
                keys: &$crate::domain::user::Keys,
                companies: bool,
            ) -> $crate::error::Result<()> {
                use $crate::domain::user::EXTERNAL_ID_KEY;
                let keys: Vec<_> = keys
                    .iter()
                    .filter(|(name, _)| !companies || name.as_str() != EXTERNAL_ID_KEY)
                    .collect();
                if keys.is_empty() {
                    return Ok(());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(if companies {
                    "INSERT INTO customer_keys (customer_id, workspace_id, name, value) "
                } else {
                    "INSERT INTO user_keys (user_id, workspace_id, name, value) "
                });
                query.push_values(keys, |mut row, (name, value)| {
                    row.push_bind(owner).push_bind(workspace.0).push_bind(name.clone()).push_bind(value.clone());
                });
                query.push(if companies {
                    " ON CONFLICT (customer_id, name) DO UPDATE SET value = excluded.value"
                } else {
                    " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value"
                });
                query.build().execute(&mut *connection).await.map_err($crate::store::db_error)?;
                Ok(())
            }

            async fn write_user(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                user: &$crate::domain::user::User,
            ) -> $crate::error::Result<()> {
                use sqlx::types::Json;
                sqlx::query(
                    "INSERT INTO users (id, workspace_id, name, traits, last_seen_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                     traits = excluded.traits, last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at",
                )
                .bind(user.id)
                .bind(workspace.0)
                .bind(user.name.clone())
                .bind(Json(&user.traits))
                .bind(user.last_seen_at)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&mut *connection)
                .await
                .map_err($crate::store::db_error)?;
                Self::write_keys(connection, workspace, user.id, &user.keys, false).await
            }

            /// The user `id` names, locked for the transaction.
            async fn locked_user(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                id: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::user::User> {
                use $crate::store::rows::UserRow;
                let row: UserRow = sqlx::query_as(concat!(
                    "SELECT id, name, traits, last_seen_at, created_at, updated_at FROM users \
                     WHERE id = $1 AND workspace_id = $2",
                    $lock
                ))
                .bind(id)
                .bind(workspace.0)
                .fetch_optional(&mut *connection)
                .await
                .map_err($crate::store::db_error)?
                .ok_or($crate::error::Error::NotFound { resource: "user" })?;
                let detail = Self::load_users(connection, &[row.id]).await?;
                detail
                    .into_iter()
                    .next()
                    .map(|d| d.user)
                    .ok_or($crate::error::Error::NotFound { resource: "user" })
            }

            /// The live company (customer) `id` names, locked for the
            /// transaction.
            async fn locked_customer(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                id: uuid::Uuid,
            ) -> $crate::error::Result<$crate::domain::customer::Customer> {
                let lookup = $crate::domain::customer::CustomerLookup::Id(id);
                Self::fetch_live_customer(&mut *connection, workspace, &lookup, true)
                    .await
                    .map_err(|error| match error {
                        $crate::error::Error::NotFound { .. } => $crate::error::Error::NotFound { resource: "company" },
                        other => other,
                    })
            }

            /// The live company these keys name, if any.
            async fn find_company(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                keys: &$crate::domain::user::Keys,
            ) -> $crate::error::Result<Option<uuid::Uuid>> {
                let owners = Self::key_owners(connection, workspace, keys, true).await?;
                $crate::domain::user::resolve(None, &owners, "company")
            }

            /// The company these keys name, created (a team customer) when
            /// none does.
            async fn ensure_company(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                keys: &$crate::domain::user::Keys,
            ) -> $crate::error::Result<uuid::Uuid> {
                if let Some(id) = Self::find_company(&mut *connection, workspace, keys).await? {
                    // Locked, so a concurrent delete cannot leave a member
                    // behind in a deleted company.
                    return Ok(Self::locked_customer(connection, workspace, id).await?.id);
                }
                let upsert = $crate::domain::user::Upsert {
                    id: None,
                    keys: keys.clone(),
                    name: None,
                    traits: serde_json::Map::new(),
                    last_seen_at: None,
                    update_only: false,
                    memberships: $crate::domain::user::MembershipChange::Keep,
                };
                Self::write_company(connection, workspace, None, &upsert).await
            }

            /// Creates or updates a company from an upsert; `current` is the
            /// customer it resolved to, if any.
            async fn write_company(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                current: Option<$crate::domain::customer::Customer>,
                upsert: &$crate::domain::user::Upsert,
            ) -> $crate::error::Result<uuid::Uuid> {
                use sqlx::types::Json;
                use $crate::domain::customer::{CustomerInput, CustomerPatch, CustomerPatchInput, CustomerType, NewCustomer};
                use $crate::domain::user::EXTERNAL_ID_KEY;
                let now = $crate::domain::now();
                let external_id = upsert.keys.get(EXTERNAL_ID_KEY).map(str::to_owned);
                let id = match current {
                    None => {
                        // The customer rules apply to a company's name and
                        // external id too.
                        let customer = NewCustomer::parse(CustomerInput {
                            external_id,
                            name: upsert.name.clone().flatten(),
                            kind: Some(CustomerType::Team),
                            ..CustomerInput::default()
                        })?
                        .into_customer(workspace, now);
                        Self::insert_customer_row(&mut *connection, &customer).await?;
                        customer.id
                    }
                    Some(customer) => {
                        let patch = CustomerPatch::parse(CustomerPatchInput {
                            external_id: external_id.map_or($crate::domain::Change::Keep, $crate::domain::Change::Set),
                            name: match &upsert.name {
                                None => $crate::domain::Change::Keep,
                                Some(None) => $crate::domain::Change::Clear,
                                Some(Some(name)) => $crate::domain::Change::Set(name.clone()),
                            },
                            ..CustomerPatchInput::default()
                        })?;
                        let next = customer.apply(&patch, now)?;
                        if next != customer {
                            Self::write_customer(&mut *connection, workspace, &next).await?;
                        }
                        customer.id
                    }
                };
                if !upsert.traits.is_empty() || upsert.last_seen_at.is_some() {
                    let traits: Json<serde_json::Map<String, serde_json::Value>> =
                        sqlx::query_scalar("SELECT traits FROM customers WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *connection)
                            .await
                            .map_err($crate::store::db_error)?;
                    let mut traits = traits.0;
                    $crate::domain::user::merge_traits(&mut traits, &upsert.traits);
                    sqlx::query(
                        "UPDATE customers SET traits = $2, last_seen_at = COALESCE($3, last_seen_at), \
                         modified_at = $4 WHERE id = $1",
                    )
                        .bind(id)
                        .bind(Json(traits))
                        .bind(upsert.last_seen_at)
                        .bind(now)
                        .execute(&mut *connection)
                        .await
                        .map_err($crate::store::db_error)?;
                }
                Self::write_keys(connection, workspace, id, &upsert.keys, true).await?;
                Ok(id)
            }

            /// Applies a user upsert's membership change.
            async fn write_memberships(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                user: uuid::Uuid,
                change: &$crate::domain::user::MembershipChange,
            ) -> $crate::error::Result<()> {
                use $crate::domain::user::{CompanyRef, MembershipChange};
                let mut refs: Vec<&CompanyRef> = match change {
                    MembershipChange::Keep => return Ok(()),
                    MembershipChange::Add(company) => vec![company],
                    MembershipChange::Replace(companies) => companies.iter().collect(),
                };
                // Companies named by id are locked in id order, so two
                // upserts listing them in opposite orders cannot deadlock.
                refs.sort_by_key(|company| match company {
                    CompanyRef::Id(id) => (0, Some(*id)),
                    CompanyRef::Keys(_) => (1, None),
                });
                let mut companies = Vec::with_capacity(refs.len());
                for company in refs {
                    companies.push(match company {
                        CompanyRef::Id(id) => Self::locked_customer(&mut *connection, workspace, *id).await?.id,
                        CompanyRef::Keys(keys) => Self::ensure_company(&mut *connection, workspace, keys).await?,
                    });
                }
                if let MembershipChange::Replace(_) = change {
                    let mut query = sqlx::QueryBuilder::<$db>::new("DELETE FROM memberships WHERE user_id = ");
                    query.push_bind(user);
                    if !companies.is_empty() {
                        query.push(" AND customer_id NOT IN (");
                        let mut list = query.separated(", ");
                        for id in &companies {
                            list.push_bind(*id);
                        }
                        query.push(")");
                    }
                    query.build().execute(&mut *connection).await.map_err($crate::store::db_error)?;
                }
                companies.sort_unstable();
                companies.dedup();
                for company in companies {
                    Self::insert_membership(&mut *connection, workspace, company, user, None).await?;
                }
                Ok(())
            }

            /// Inserts a membership unless one exists; with `role`, sets
            /// the role either way. Returns the membership and whether it
            /// was created.
            async fn insert_membership(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                company: uuid::Uuid,
                user: uuid::Uuid,
                role: Option<$crate::domain::user::MemberRole>,
            ) -> $crate::error::Result<($crate::domain::user::Membership, bool)> {
                use $crate::store::rows::MembershipRow;
                let now = $crate::domain::now();
                let created: Option<MembershipRow> = sqlx::query_as(
                    "INSERT INTO memberships (id, workspace_id, user_id, customer_id, role, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (user_id, customer_id) DO NOTHING \
                     RETURNING id, user_id, customer_id, role, created_at, updated_at",
                )
                .bind($crate::domain::new_id())
                .bind(workspace.0)
                .bind(user)
                .bind(company)
                .bind(role.unwrap_or_default().as_str())
                .bind(now)
                .fetch_optional(&mut *connection)
                .await
                .map_err($crate::store::db_error)?;
                if let Some(row) = created {
                    return Ok((row.into(), true));
                }
                let existing: MembershipRow = match role {
                    Some(role) => sqlx::query_as(
                        "UPDATE memberships SET role = $3, updated_at = CASE WHEN role = $3 THEN updated_at ELSE $4 END \
                         WHERE user_id = $1 AND customer_id = $2 \
                         RETURNING id, user_id, customer_id, role, created_at, updated_at",
                    )
                    .bind(user)
                    .bind(company)
                    .bind(role.as_str())
                    .bind(now),
                    None => sqlx::query_as(
                        "SELECT id, user_id, customer_id, role, created_at, updated_at FROM memberships \
                         WHERE user_id = $1 AND customer_id = $2",
                    )
                    .bind(user)
                    .bind(company),
                }
                .fetch_one(&mut *connection)
                .await
                .map_err($crate::store::db_error)?;
                Ok((existing.into(), false))
            }

            /// Runs `attempt` again when a racing creation took one of its
            /// keys first (the retry then finds that record).
            async fn retry_on_key_race<T, F, Fut>(mut attempt: F) -> $crate::error::Result<T>
            where
                F: FnMut() -> Fut,
                Fut: std::future::Future<Output = $crate::error::Result<T>>,
            {
                let mut tries = 0;
                loop {
                    match attempt().await {
                        // A company's `external_id` key is the customer's
                        // own unique column, so its race shows there.
                        Err($crate::error::Error::AlreadyExists(violation))
                            if matches!(violation.field.as_str(), "keys" | "external_id") && tries < 3 =>
                        {
                            tries += 1
                        }
                        Err($crate::error::Error::Aborted(_)) if tries < 3 => tries += 1,
                        result => return result,
                    }
                }
            }

            async fn upsert_user_once(
                &self,
                workspace: $crate::domain::WorkspaceId,
                upsert: &$crate::domain::user::Upsert,
            ) -> $crate::error::Result<($crate::domain::user::UserDetail, bool)> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let owners = Self::key_owners(&mut tx, workspace, &upsert.keys, false).await?;
                let current = match $crate::domain::user::resolve(upsert.id, &owners, "user")? {
                    Some(id) => Some(Self::locked_user(&mut tx, workspace, id).await?),
                    None if upsert.update_only => return Err($crate::error::Error::NotFound { resource: "user" }),
                    None => None,
                };
                let created = current.is_none();
                let user = $crate::domain::user::apply_user(current, upsert, $crate::domain::now());
                Self::write_user(&mut tx, workspace, &user).await?;
                Self::write_memberships(&mut tx, workspace, user.id, &upsert.memberships).await?;
                let detail = Self::load_user(&mut tx, user.id).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok((detail, created))
            }

            async fn update_user_trait_once(
                &self,
                workspace: $crate::domain::WorkspaceId,
                update: &$crate::domain::user::TraitUpdate,
            ) -> $crate::error::Result<$crate::domain::user::UserDetail> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let owners = Self::key_owners(&mut tx, workspace, &update.keys, false).await?;
                let mut user = match $crate::domain::user::resolve(None, &owners, "user")? {
                    Some(id) => Self::locked_user(&mut tx, workspace, id).await?,
                    None if update.update_only => return Err($crate::error::Error::NotFound { resource: "user" }),
                    None => {
                        let upsert = $crate::domain::user::Upsert {
                            id: None,
                            keys: update.keys.clone(),
                            name: None,
                            traits: serde_json::Map::new(),
                            last_seen_at: None,
                            update_only: false,
                            memberships: $crate::domain::user::MembershipChange::Keep,
                        };
                        $crate::domain::user::apply_user(None, &upsert, $crate::domain::now())
                    }
                };
                update.apply(&mut user.traits)?;
                user.updated_at = $crate::domain::now();
                Self::write_user(&mut tx, workspace, &user).await?;
                let detail = Self::load_user(&mut tx, user.id).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(detail)
            }

            async fn upsert_company_once(
                &self,
                workspace: $crate::domain::WorkspaceId,
                upsert: &$crate::domain::user::Upsert,
            ) -> $crate::error::Result<($crate::domain::user::Company, bool)> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let owners = Self::key_owners(&mut tx, workspace, &upsert.keys, true).await?;
                let current = match $crate::domain::user::resolve(upsert.id, &owners, "company")? {
                    Some(id) => Some(Self::locked_customer(&mut tx, workspace, id).await?),
                    None if upsert.update_only => return Err($crate::error::Error::NotFound { resource: "company" }),
                    None => None,
                };
                let created = current.is_none();
                let id = Self::write_company(&mut tx, workspace, current, upsert).await?;
                let company = Self::load_company(&mut tx, id).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok((company, created))
            }

            async fn update_company_trait_once(
                &self,
                workspace: $crate::domain::WorkspaceId,
                update: &$crate::domain::user::TraitUpdate,
            ) -> $crate::error::Result<$crate::domain::user::Company> {
                use sqlx::types::Json;
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let id = match Self::find_company(&mut tx, workspace, &update.keys).await? {
                    Some(id) => Self::locked_customer(&mut tx, workspace, id).await?.id,
                    None if update.update_only => return Err($crate::error::Error::NotFound { resource: "company" }),
                    None => Self::ensure_company(&mut tx, workspace, &update.keys).await?,
                };
                let mut traits = Self::load_company(&mut tx, id).await?.traits;
                update.apply(&mut traits)?;
                sqlx::query("UPDATE customers SET traits = $2, modified_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(Json(traits))
                    .bind($crate::domain::now())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::store::db_error)?;
                let company = Self::load_company(&mut tx, id).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(company)
            }

            async fn get_or_create_membership_once(
                &self,
                workspace: $crate::domain::WorkspaceId,
                company: uuid::Uuid,
                user: uuid::Uuid,
                role: Option<$crate::domain::user::MemberRole>,
            ) -> $crate::error::Result<($crate::domain::user::MembershipDetail, bool)> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                Self::locked_customer(&mut tx, workspace, company).await?;
                Self::resolve_user(&mut tx, workspace, &$crate::domain::user::UserLookup::Id(user)).await?;
                let (membership, created) = Self::insert_membership(&mut tx, workspace, company, user, role).await?;
                let company = Self::load_company(&mut tx, company).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(($crate::domain::user::MembershipDetail { membership, company }, created))
            }

            /// The user a lookup names.
            async fn resolve_user(
                connection: &mut <$db as sqlx::Database>::Connection,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::user::UserLookup,
            ) -> $crate::error::Result<uuid::Uuid> {
                use $crate::domain::user::UserLookup;
                let id = match lookup {
                    UserLookup::Id(id) => Some(*id),
                    UserLookup::Keys(keys) => {
                        let owners = Self::key_owners(&mut *connection, workspace, keys, false).await?;
                        $crate::domain::user::resolve(None, &owners, "user")?
                    }
                };
                let id = id.ok_or($crate::error::Error::NotFound { resource: "user" })?;
                let exists: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND workspace_id = $2")
                    .bind(id)
                    .bind(workspace.0)
                    .fetch_optional(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?;
                exists.ok_or($crate::error::Error::NotFound { resource: "user" })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn upsert_user(
                &self,
                workspace: $crate::domain::WorkspaceId,
                upsert: &$crate::domain::user::Upsert,
            ) -> $crate::error::Result<($crate::domain::user::UserDetail, bool)> {
                Self::retry_on_key_race(|| self.upsert_user_once(workspace, upsert)).await
            }

            async fn get_user(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::user::UserLookup,
            ) -> $crate::error::Result<$crate::domain::user::UserDetail> {
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                let id = Self::resolve_user(&mut connection, workspace, lookup).await?;
                Self::load_user(&mut connection, id).await
            }

            async fn list_users(
                &self,
                workspace: $crate::domain::WorkspaceId,
                company: Option<uuid::Uuid>,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<$crate::domain::page::Page<$crate::domain::user::UserDetail>> {
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT u.id, u.created_at FROM users u");
                if let Some(company) = company {
                    query.push(" JOIN memberships m ON m.user_id = u.id AND m.customer_id = ").push_bind(company);
                }
                query.push(" WHERE u.workspace_id = ").push_bind(workspace.0);
                Self::push_page(&mut query, page, "u.", "id");
                let ids: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = query
                    .build_query_as()
                    .fetch_all(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?;
                // The page (and its next token) comes from the id rows, so a user
                // deleted between the two queries shortens this page but cannot end the walk.
                let ids = page.finish(ids, |&(id, created_at)| $crate::domain::page::Cursor { created_at, id });
                let kept: Vec<uuid::Uuid> = ids.items.iter().map(|(id, _)| *id).collect();
                let users = Self::load_users(&mut connection, &kept).await?;
                Ok($crate::domain::page::Page { items: users, next_token: ids.next_token })
            }

            async fn count_users(
                &self,
                workspace: $crate::domain::WorkspaceId,
                company: Option<uuid::Uuid>,
            ) -> $crate::error::Result<u64> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM users u");
                if let Some(company) = company {
                    query.push(" JOIN memberships m ON m.user_id = u.id AND m.customer_id = ").push_bind(company);
                }
                query.push(" WHERE u.workspace_id = ").push_bind(workspace.0);
                let count: i64 = query.build_query_scalar().fetch_one(self.reader()).await.map_err($crate::store::db_error)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn companies(
                &self,
                workspace: $crate::domain::WorkspaceId,
                ids: &[uuid::Uuid],
            ) -> $crate::error::Result<Vec<$crate::domain::user::Company>> {
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                // Only this workspace's customers: the ids may come from a caller.
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT id FROM customers WHERE deleted_at IS NULL AND workspace_id = ");
                query.push_bind(workspace.0).push(" AND id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                let owned: Vec<uuid::Uuid> = if ids.is_empty() {
                    Vec::new()
                } else {
                    query.build_query_scalar().persistent(false).fetch_all(&mut *connection).await.map_err($crate::store::db_error)?
                };
                let mut found = Self::load_companies(&mut connection, &owned).await?;
                Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
            }

            async fn delete_user(
                &self,
                workspace: $crate::domain::WorkspaceId,
                lookup: &$crate::domain::user::UserLookup,
            ) -> $crate::error::Result<$crate::domain::user::UserDetail> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let id = Self::resolve_user(&mut tx, workspace, lookup).await?;
                Self::locked_user(&mut tx, workspace, id).await?;
                let detail = Self::load_user(&mut tx, id).await?;
                for statement in [
                    "DELETE FROM memberships WHERE user_id = $1",
                    "DELETE FROM user_keys WHERE user_id = $1",
                    "DELETE FROM users WHERE id = $1",
                ] {
                    sqlx::query(statement).bind(id).execute(&mut *tx).await.map_err($crate::store::db_error)?;
                }
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(detail)
            }

            async fn update_user_trait(
                &self,
                workspace: $crate::domain::WorkspaceId,
                update: &$crate::domain::user::TraitUpdate,
            ) -> $crate::error::Result<$crate::domain::user::UserDetail> {
                Self::retry_on_key_race(|| self.update_user_trait_once(workspace, update)).await
            }

            async fn upsert_company(
                &self,
                workspace: $crate::domain::WorkspaceId,
                upsert: &$crate::domain::user::Upsert,
            ) -> $crate::error::Result<($crate::domain::user::Company, bool)> {
                Self::retry_on_key_race(|| self.upsert_company_once(workspace, upsert)).await
            }

            async fn lookup_company(
                &self,
                workspace: $crate::domain::WorkspaceId,
                keys: &$crate::domain::user::Keys,
            ) -> $crate::error::Result<$crate::domain::user::Company> {
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                let id = Self::find_company(&mut connection, workspace, keys)
                    .await?
                    .ok_or($crate::error::Error::NotFound { resource: "company" })?;
                Self::load_company(&mut connection, id).await
            }

            async fn delete_company(
                &self,
                workspace: $crate::domain::WorkspaceId,
                keys: &$crate::domain::user::Keys,
            ) -> $crate::error::Result<$crate::domain::user::Company> {
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let id = Self::find_company(&mut tx, workspace, keys)
                    .await?
                    .ok_or($crate::error::Error::NotFound { resource: "company" })?;
                let company = Self::load_company(&mut tx, id).await?;
                Self::soft_delete_customer(&mut tx, workspace, &$crate::domain::customer::CustomerLookup::Id(id)).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok(company)
            }

            async fn update_company_trait(
                &self,
                workspace: $crate::domain::WorkspaceId,
                update: &$crate::domain::user::TraitUpdate,
            ) -> $crate::error::Result<$crate::domain::user::Company> {
                Self::retry_on_key_race(|| self.update_company_trait_once(workspace, update)).await
            }

            async fn get_or_create_membership(
                &self,
                workspace: $crate::domain::WorkspaceId,
                company: uuid::Uuid,
                user: uuid::Uuid,
                role: Option<$crate::domain::user::MemberRole>,
            ) -> $crate::error::Result<($crate::domain::user::MembershipDetail, bool)> {
                Self::retry_on_key_race(|| self.get_or_create_membership_once(workspace, company, user, role)).await
            }

            async fn list_memberships(
                &self,
                workspace: $crate::domain::WorkspaceId,
                company: Option<uuid::Uuid>,
                user: Option<uuid::Uuid>,
                page: &$crate::domain::page::PageRequest,
            ) -> $crate::error::Result<$crate::domain::page::Page<$crate::domain::user::MembershipDetail>> {
                use $crate::domain::user::{Membership, MembershipDetail};
                use $crate::store::rows::MembershipRow;
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, user_id, customer_id, role, created_at, updated_at FROM memberships WHERE workspace_id = ",
                );
                query.push_bind(workspace.0);
                if let Some(company) = company {
                    query.push(" AND customer_id = ").push_bind(company);
                }
                if let Some(user) = user {
                    query.push(" AND user_id = ").push_bind(user);
                }
                Self::push_page(&mut query, page, "", "id");
                let rows: Vec<Membership> = query
                    .build_query_as::<MembershipRow>()
                    .fetch_all(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                // Paged before the company join, so a company deleted meanwhile
                // drops its row from this page without ending the walk.
                let memberships = page.finish(rows, |membership| $crate::domain::page::Cursor {
                    created_at: membership.created_at,
                    id: membership.id,
                });
                let ids: Vec<uuid::Uuid> = memberships.items.iter().map(|m| m.company_id).collect();
                let companies = Self::load_companies(&mut connection, &ids).await?;
                let items = memberships
                    .items
                    .into_iter()
                    .filter_map(|membership| {
                        let company = companies.get(&membership.company_id)?.clone();
                        Some(MembershipDetail { membership, company })
                    })
                    .collect();
                Ok($crate::domain::page::Page { items, next_token: memberships.next_token })
            }

            async fn delete_membership(
                &self,
                workspace: $crate::domain::WorkspaceId,
                id: uuid::Uuid,
                company: Option<uuid::Uuid>,
            ) -> $crate::error::Result<$crate::domain::user::MembershipDetail> {
                use $crate::store::rows::MembershipRow;
                let mut tx = self.writer().begin().await.map_err($crate::store::db_error)?;
                let row: Option<MembershipRow> = sqlx::query_as(
                    "DELETE FROM memberships WHERE id = $1 AND workspace_id = $2 AND ($3 IS NULL OR customer_id = $3) \
                     RETURNING id, user_id, customer_id, role, created_at, updated_at",
                )
                .bind(id)
                .bind(workspace.0)
                .bind(company)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::store::db_error)?;
                let membership: $crate::domain::user::Membership =
                    row.ok_or($crate::error::Error::NotFound { resource: "membership" })?.into();
                let company = Self::load_company(&mut tx, membership.company_id).await?;
                tx.commit().await.map_err($crate::store::db_error)?;
                Ok($crate::domain::user::MembershipDetail { membership, company })
            }

            async fn customer_members(
                &self,
                workspace: $crate::domain::WorkspaceId,
                customers: &[uuid::Uuid],
            ) -> $crate::error::Result<std::collections::HashMap<uuid::Uuid, Vec<$crate::domain::user::Member>>> {
                use $crate::domain::user::{Member, Membership};
                use $crate::store::rows::MembershipRow;
                let mut members: std::collections::HashMap<uuid::Uuid, Vec<Member>> = std::collections::HashMap::new();
                if customers.is_empty() {
                    return Ok(members);
                }
                let mut connection = self.reader().acquire().await.map_err($crate::store::db_error)?;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, user_id, customer_id, role, created_at, updated_at FROM memberships WHERE workspace_id = ",
                );
                query.push_bind(workspace.0).push(" AND customer_id IN (");
                let mut list = query.separated(", ");
                for id in customers {
                    list.push_bind(*id);
                }
                query.push(") ORDER BY created_at, id");
                // One customer (every Get) is one statement text worth
                // preparing once; longer lists vary and would crowd the cache.
                let memberships: Vec<Membership> = query
                    .build_query_as::<MembershipRow>()
                    .persistent(customers.len() == 1)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err($crate::store::db_error)?
                    .into_iter()
                    .map(Into::into)
                    .collect();
                let user_ids: Vec<uuid::Uuid> = memberships.iter().map(|m| m.user_id).collect();
                let users: std::collections::HashMap<uuid::Uuid, $crate::domain::user::User> = Self::load_users(&mut connection, &user_ids)
                    .await?
                    .into_iter()
                    .map(|detail| (detail.user.id, detail.user))
                    .collect();
                for membership in memberships {
                    if let Some(user) = users.get(&membership.user_id) {
                        members.entry(membership.company_id).or_default().push(Member::of(membership, user));
                    }
                }
                Ok(members)
            }
        }
    };
}

pub(super) use impl_user_store;
