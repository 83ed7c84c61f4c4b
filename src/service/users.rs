//! Users, companies and memberships (seed 001).
//!
//! Creations race safely without locks: a key is unique per workspace, so
//! of two transactions creating one user or company by the same key, the
//! second fails on the key's index, rolls back, and runs again, when it
//! finds the first one's record.

use uuid::Uuid;

use super::changes::Changes;
use super::customers::{delete_customer, join, record_membership};
use super::{Listing, Service, found, retrying};
use crate::domain::change::ChangeOperation;
use crate::domain::customer::{CustomerFilter, CustomerLookup};
use crate::domain::page::{Page, PageRequest};
use crate::domain::user::{
    self, Company, CompanyFields, CompanyKeys, CompanyLookup, CompanyRef, CompanyTraitUpdate,
    CompanyUpsert, Keys, Member, MembershipChange, MembershipDetail, MembershipFilter, TraitUpdate,
    Upsert, UserDetail, UserFilter, UserLookup,
};
use crate::domain::{Caller, now};
use crate::error::{Error, Result, UniqueIndex};
use crate::store::{KeyOwners, Session, Transaction};

/// The clashes by which a racing creation shows: a user's or company's key,
/// or a company's `external_id` key, which is the customer's own column.
const KEY_RACES: [UniqueIndex; 3] = [
    UniqueIndex::UserKey,
    UniqueIndex::CompanyKey,
    UniqueIndex::CustomerExternalId,
];

impl Service {
    /// Resolves the user by id or keys (`user::resolve`), then creates or
    /// updates it, with its memberships, in one transaction. Returns the
    /// user and whether it was created.
    pub async fn upsert_user(
        &self,
        caller: &Caller,
        upsert: &Upsert,
    ) -> Result<(UserDetail, bool)> {
        retrying(&KEY_RACES, || self.upsert_user_once(caller, upsert)).await
    }

    async fn upsert_user_once(
        &self,
        caller: &Caller,
        upsert: &Upsert,
    ) -> Result<(UserDetail, bool)> {
        let mut tx = self.store.write().await?;
        let owners = tx
            .key_owners(caller.workspace, &upsert.keys, KeyOwners::Users)
            .await?;
        let current = match user::resolve(upsert.id, &owners, "user")? {
            Some(id) => Some(found(tx.lock_user(caller.workspace, id).await?, "user")?),
            None if upsert.update_only => return Err(Error::NotFound { resource: "user" }),
            None => None,
        };
        let created = current.is_none();
        let before = current.clone();
        let user = user::apply_user(current, upsert, now());
        let mut changes = Changes::default();
        tx.write_user(caller.workspace, &user).await?;
        write_memberships(&mut tx, caller, user.id, &upsert.memberships, &mut changes).await?;
        let detail = found(tx.user(caller.workspace, user.id).await?, "user")?;
        changes.user(ChangeOperation::of_upsert(created), user.id);
        if before.is_some_and(|before| Member::shows_change(&before, &user)) {
            // Each company shows the user as a member.
            for membership in &detail.memberships {
                changes.customer(ChangeOperation::Updated, membership.membership.company_id);
            }
        }
        self.commit(tx, caller, changes).await?;
        Ok((detail, created))
    }

    pub async fn get_user(&self, caller: &Caller, lookup: &UserLookup) -> Result<UserDetail> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                let id = resolve_user(&mut session, caller, lookup).await?;
                found(session.user(caller.workspace, id).await?, "user")
            })
        })
        .await
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<UserDetail>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let items = session.list_users(caller.workspace, filter, page).await?;
                Ok(Listing {
                    items,
                    change_cursor,
                })
            })
        })
        .await
    }

    /// How many users (members of the filter's company, when it names one)
    /// the workspace has.
    pub async fn count_users(&self, caller: &Caller, filter: &UserFilter) -> Result<u64> {
        self.reading(caller, |mut session| {
            Box::pin(async move { session.count_users(caller.workspace, filter).await })
        })
        .await
    }

    /// Deletes a user with its keys and memberships, for good; returns it as
    /// it was.
    pub async fn delete_user(&self, caller: &Caller, lookup: &UserLookup) -> Result<UserDetail> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let id = resolve_user(&mut tx, caller, lookup).await?;
            found(tx.lock_user(caller.workspace, id).await?, "user")?;
            let detail = found(tx.user(caller.workspace, id).await?, "user")?;
            tx.delete_user(caller.workspace, id).await?;
            let mut changes = Changes::default();
            for membership in &detail.memberships {
                changes.membership(ChangeOperation::Deleted, membership);
            }
            changes.user_deleted(detail.clone());
            self.commit(tx, caller, changes).await?;
            Ok(detail)
        })
        .await
    }

    /// Changes one trait under the user's row lock, so increments add up;
    /// creates the user by its keys unless `update_only`.
    pub async fn upsert_user_trait(
        &self,
        caller: &Caller,
        update: &TraitUpdate,
    ) -> Result<UserDetail> {
        retrying(&KEY_RACES, || self.upsert_user_trait_once(caller, update)).await
    }

    async fn upsert_user_trait_once(
        &self,
        caller: &Caller,
        update: &TraitUpdate,
    ) -> Result<UserDetail> {
        let now = now();
        let mut tx = self.store.write().await?;
        let owners = tx
            .key_owners(caller.workspace, &update.keys, KeyOwners::Users)
            .await?;
        let (mut user, created) = match user::resolve(None, &owners, "user")? {
            Some(id) => (
                found(tx.lock_user(caller.workspace, id).await?, "user")?,
                false,
            ),
            None if update.update_only => return Err(Error::NotFound { resource: "user" }),
            None => (
                user::apply_user(None, &Upsert::of_keys(update.keys.clone()), now),
                true,
            ),
        };
        update.apply(&mut user.traits)?;
        user.updated_at = now;
        tx.write_user(caller.workspace, &user).await?;
        let detail = found(tx.user(caller.workspace, user.id).await?, "user")?;
        let mut changes = Changes::default();
        changes.user(ChangeOperation::of_upsert(created), user.id);
        self.commit(tx, caller, changes).await?;
        Ok(detail)
    }

    /// Creates or updates a company (a customer) by id or keys. Returns it
    /// and whether it was created.
    pub async fn upsert_company(
        &self,
        caller: &Caller,
        upsert: &CompanyUpsert,
    ) -> Result<(Company, bool)> {
        retrying(&KEY_RACES, || self.upsert_company_once(caller, upsert)).await
    }

    async fn upsert_company_once(
        &self,
        caller: &Caller,
        company: &CompanyUpsert,
    ) -> Result<(Company, bool)> {
        let upsert = &company.upsert;
        let mut tx = self.store.write().await?;
        let owners = tx
            .key_owners(caller.workspace, &upsert.keys, KeyOwners::Companies)
            .await?;
        let current = match user::resolve(upsert.id, &owners, "company")? {
            Some(id) => Some(lock_company(&mut tx, caller, id).await?),
            None if upsert.update_only => {
                return Err(Error::NotFound {
                    resource: "company",
                });
            }
            None => None,
        };
        let created = current.is_none();
        let now = now();
        let id = match current {
            None => {
                let customer = company.fields.new_customer(caller.workspace, now);
                tx.insert_customer(&customer).await?;
                customer.id
            }
            Some(current) => {
                let next = current.apply(&company.fields.patch(), now)?;
                if next != current {
                    tx.update_customer(&next).await?;
                }
                current.id
            }
        };
        if !upsert.traits.is_empty() || upsert.last_seen_at.is_some() {
            let mut traits = found(tx.company(caller.workspace, id).await?, "company")?.traits;
            user::merge_traits(&mut traits, &upsert.traits);
            tx.write_company_traits(caller.workspace, id, &traits, upsert.last_seen_at, now)
                .await?;
        }
        tx.write_keys(caller.workspace, id, &upsert.keys, KeyOwners::Companies)
            .await?;
        let company = found(tx.company(caller.workspace, id).await?, "company")?;
        let mut changes = Changes::default();
        changes.customer(ChangeOperation::of_upsert(created), id);
        self.commit(tx, caller, changes).await?;
        Ok((company, created))
    }

    /// A live company by id or keys.
    pub async fn get_company(&self, caller: &Caller, lookup: &CompanyLookup) -> Result<Company> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                let id = resolve_company(&mut session, caller, lookup).await?;
                found(session.company(caller.workspace, id).await?, "company")
            })
        })
        .await
    }

    /// A page of the workspace's companies (every live customer that passes
    /// `filter`, as seed 001 sees it), without their members.
    pub async fn list_companies(
        &self,
        caller: &Caller,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<Company>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let customers = session
                    .list_customers(caller.workspace, filter, page)
                    .await?;
                let ids: Vec<Uuid> = customers.items.iter().map(|c| c.id).collect();
                let mut companies = session.companies(caller.workspace, &ids).await?;
                Ok(Listing {
                    items: Page {
                        items: ids.iter().filter_map(|id| companies.remove(id)).collect(),
                        next_token: customers.next_token,
                    },
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Soft-deletes the company's customer, releasing its keys and members;
    /// returns the company as it was.
    pub async fn delete_company(&self, caller: &Caller, lookup: &CompanyLookup) -> Result<Company> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let id = resolve_company(&mut tx, caller, lookup).await?;
            let customer = lock_company(&mut tx, caller, id).await?;
            let company = found(tx.company(caller.workspace, id).await?, "company")?;
            let mut changes = Changes::default();
            delete_customer(&mut tx, caller, &customer, &mut changes)
                .await
                .map_err(as_company)?;
            self.commit(tx, caller, changes).await?;
            Ok(company)
        })
        .await
    }

    /// Changes one company trait under the company's row lock; creates the
    /// company by its keys unless `update_only`.
    pub async fn upsert_company_trait(
        &self,
        caller: &Caller,
        update: &CompanyTraitUpdate,
    ) -> Result<Company> {
        retrying(&KEY_RACES, || {
            self.upsert_company_trait_once(caller, update)
        })
        .await
    }

    async fn upsert_company_trait_once(
        &self,
        caller: &Caller,
        company: &CompanyTraitUpdate,
    ) -> Result<Company> {
        let update = &company.update;
        let mut tx = self.store.write().await?;
        let owners = tx
            .key_owners(caller.workspace, &update.keys, KeyOwners::Companies)
            .await?;
        let (id, created) = match user::resolve(None, &owners, "company")? {
            Some(id) => (lock_company(&mut tx, caller, id).await?.id, false),
            None if update.update_only => {
                return Err(Error::NotFound {
                    resource: "company",
                });
            }
            None => (
                insert_company(&mut tx, caller, &update.keys, &company.fields).await?,
                true,
            ),
        };
        let mut traits = found(tx.company(caller.workspace, id).await?, "company")?.traits;
        update.apply(&mut traits)?;
        tx.write_company_traits(caller.workspace, id, &traits, None, now())
            .await?;
        let company = found(tx.company(caller.workspace, id).await?, "company")?;
        let mut changes = Changes::default();
        changes.customer(ChangeOperation::of_upsert(created), id);
        self.commit(tx, caller, changes).await?;
        Ok(company)
    }

    /// The membership of a user in a company, created (a member) if
    /// missing. Returns it and whether it was created.
    pub async fn get_or_create_membership(
        &self,
        caller: &Caller,
        company: Uuid,
        user: Uuid,
    ) -> Result<(MembershipDetail, bool)> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            lock_company(&mut tx, caller, company).await?;
            let mut changes = Changes::default();
            let (membership, created) =
                join(&mut tx, caller, company, user, None, &mut changes).await?;
            let company = found(tx.company(caller.workspace, company).await?, "company")?;
            self.commit(tx, caller, changes).await?;
            Ok((
                MembershipDetail {
                    membership,
                    company,
                },
                created,
            ))
        })
        .await
    }

    pub async fn list_memberships(
        &self,
        caller: &Caller,
        filter: &MembershipFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<MembershipDetail>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let items = session
                    .list_memberships(caller.workspace, filter, page)
                    .await?;
                Ok(Listing {
                    items,
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Deletes a membership; returns it as it was.
    pub async fn delete_membership(&self, caller: &Caller, id: Uuid) -> Result<MembershipDetail> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let membership = found(
                tx.delete_membership(caller.workspace, id, None).await?,
                "membership",
            )?;
            let company = found(
                tx.company(caller.workspace, membership.company_id).await?,
                "company",
            )?;
            let detail = MembershipDetail {
                membership,
                company,
            };
            let mut changes = Changes::default();
            changes.membership(ChangeOperation::Deleted, &detail);
            self.commit(tx, caller, changes).await?;
            Ok(detail)
        })
        .await
    }
}

/// The user a lookup names.
async fn resolve_user(session: &mut Session, caller: &Caller, lookup: &UserLookup) -> Result<Uuid> {
    let id = match lookup {
        UserLookup::Id(id) => Some(*id),
        UserLookup::Keys(keys) => {
            let owners = session
                .key_owners(caller.workspace, keys, KeyOwners::Users)
                .await?;
            user::resolve(None, &owners, "user")?
        }
    };
    match id {
        Some(id) if session.user_exists(caller.workspace, id).await? => Ok(id),
        _ => Err(Error::NotFound { resource: "user" }),
    }
}

/// The live company a lookup names.
async fn resolve_company(
    session: &mut Session,
    caller: &Caller,
    lookup: &CompanyLookup,
) -> Result<Uuid> {
    match lookup {
        CompanyLookup::Id(id) => Ok(*id),
        CompanyLookup::Keys(keys) => {
            let owners = session
                .key_owners(caller.workspace, keys, KeyOwners::Companies)
                .await?;
            found(user::resolve(None, &owners, "company")?, "company")
        }
    }
}

/// The live company (customer) `id` names, locked, so a concurrent delete
/// cannot leave a member behind in a deleted company.
async fn lock_company(
    tx: &mut Transaction,
    caller: &Caller,
    id: Uuid,
) -> Result<crate::domain::customer::Customer> {
    let customer = tx
        .lock_customer(caller.workspace, &CustomerLookup::Id(id))
        .await?;
    found(customer, "company")
}

/// A new company (a team customer) with these keys.
async fn insert_company(
    tx: &mut Transaction,
    caller: &Caller,
    keys: &Keys,
    fields: &CompanyFields,
) -> Result<Uuid> {
    let customer = fields.new_customer(caller.workspace, now());
    tx.insert_customer(&customer).await?;
    tx.write_keys(caller.workspace, customer.id, keys, KeyOwners::Companies)
        .await?;
    Ok(customer.id)
}

/// The company these keys name, created (and its creation recorded) when
/// none does.
async fn ensure_company(
    tx: &mut Transaction,
    caller: &Caller,
    company: &CompanyKeys,
    changes: &mut Changes,
) -> Result<Uuid> {
    let owners = tx
        .key_owners(caller.workspace, &company.keys, KeyOwners::Companies)
        .await?;
    if let Some(id) = user::resolve(None, &owners, "company")? {
        return Ok(lock_company(tx, caller, id).await?.id);
    }
    let id = insert_company(tx, caller, &company.keys, &company.fields).await?;
    changes.customer(ChangeOperation::Created, id);
    Ok(id)
}

/// Applies a user upsert's membership change, recording each change.
async fn write_memberships(
    tx: &mut Transaction,
    caller: &Caller,
    user: Uuid,
    change: &MembershipChange,
    changes: &mut Changes,
) -> Result<()> {
    let mut refs: Vec<&CompanyRef> = match change {
        MembershipChange::Keep => return Ok(()),
        MembershipChange::Add(company) => vec![company],
        MembershipChange::Replace(companies) => companies.iter().collect(),
    };
    // Companies named by id are locked in id order, so two upserts listing
    // them in opposite orders cannot deadlock.
    refs.sort_by_key(|company| match company {
        CompanyRef::Id(id) => (0, Some(*id)),
        CompanyRef::Keys(_) => (1, None),
    });
    let mut companies = Vec::with_capacity(refs.len());
    for company in refs {
        companies.push(match company {
            CompanyRef::Id(id) => lock_company(tx, caller, *id).await?.id,
            CompanyRef::Keys(keys) => ensure_company(tx, caller, keys, changes).await?,
        });
    }
    if let MembershipChange::Replace(_) = change {
        let left = tx
            .delete_memberships_except(caller.workspace, user, &companies)
            .await?;
        for membership in &left {
            record_membership(tx, caller, ChangeOperation::Deleted, membership, changes).await?;
        }
    }
    companies.sort_unstable();
    companies.dedup();
    for company in companies {
        join(tx, caller, company, user, None, changes).await?;
    }
    Ok(())
}

/// A missing customer, when the caller spoke of a company.
fn as_company(error: Error) -> Error {
    match error {
        Error::NotFound { .. } => Error::NotFound {
            resource: "company",
        },
        other => other,
    }
}
