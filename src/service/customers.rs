//! Customers (seed 003) and their members.

use std::collections::HashMap;

use uuid::Uuid;

use super::changes::Changes;
use super::{Listing, Service, found, lock_live_customer, retrying};
use crate::domain::change::ChangeOperation;
use crate::domain::customer::{
    Customer, CustomerDetail, CustomerFilter, CustomerLookup, CustomerPatch, NewCustomer,
};
use crate::domain::page::{Page, PageRequest};
use crate::domain::user::{
    Member, MemberRole, Membership, MembershipDetail, MembershipFilter, User,
};
use crate::domain::{Caller, now};
use crate::error::{Error, Result};
use crate::store::{Session, Transaction};

impl Service {
    pub async fn create_customer(
        &self,
        caller: &Caller,
        customer: NewCustomer,
    ) -> Result<CustomerDetail> {
        let customer = customer.into_customer(caller.workspace, now());
        let new = &customer;
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            tx.insert_customer(new).await?;
            let mut changes = Changes::default();
            changes.customer(ChangeOperation::Created, new.id);
            self.commit(tx, caller, changes).await
        })
        .await?;
        // A new customer has no members yet.
        Ok(CustomerDetail {
            customer,
            members: Vec::new(),
        })
    }

    pub async fn get_customer(
        &self,
        caller: &Caller,
        lookup: &CustomerLookup,
    ) -> Result<CustomerDetail> {
        self.reading(caller, |mut session| {
            Box::pin(async move {
                found(
                    session.customer_detail(caller.workspace, lookup).await?,
                    "customer",
                )
            })
        })
        .await
    }

    pub async fn list_customers(
        &self,
        caller: &Caller,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<CustomerDetail>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let page = session
                    .list_customers(caller.workspace, filter, page)
                    .await?;
                let ids: Vec<Uuid> = page.items.iter().map(|c| c.id).collect();
                let mut members = session.customer_members(caller.workspace, &ids).await?;
                let items = page
                    .items
                    .into_iter()
                    .map(|customer| CustomerDetail {
                        members: members.remove(&customer.id).unwrap_or_default(),
                        customer,
                    })
                    .collect();
                Ok(Listing {
                    items: Page {
                        items,
                        next_token: page.next_token,
                    },
                    change_cursor,
                })
            })
        })
        .await
    }

    /// How many live customers pass the filter.
    pub async fn count_customers(&self, caller: &Caller, filter: &CustomerFilter) -> Result<u64> {
        self.reading(caller, |mut session| {
            Box::pin(async move { session.count_customers(caller.workspace, filter).await })
        })
        .await
    }

    /// Applies the patch under the customer's row lock, so a concurrent
    /// change is never lost and the transition rules see the current row.
    pub async fn update_customer(
        &self,
        caller: &Caller,
        lookup: &CustomerLookup,
        patch: &CustomerPatch,
    ) -> Result<CustomerDetail> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let current = lock_live_customer(&mut tx, caller, lookup).await?;
            let next = current.apply(patch, now())?;
            let changed = next != current;
            if changed {
                tx.update_customer(&next).await?;
            }
            let detail = with_members(&mut tx, caller, next).await?;
            let mut changes = Changes::default();
            if changed {
                changes.customer(ChangeOperation::Updated, detail.customer.id);
            }
            self.commit(tx, caller, changes).await?;
            Ok(detail)
        })
        .await
    }

    /// Soft-deletes a live customer and releases what identified it: its
    /// company keys and its memberships.
    pub async fn delete_customer(
        &self,
        caller: &Caller,
        lookup: &CustomerLookup,
    ) -> Result<CustomerDetail> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let mut changes = Changes::default();
            let current = lock_live_customer(&mut tx, caller, lookup).await?;
            let detail = delete_customer(&mut tx, caller, &current, &mut changes).await?;
            self.commit(tx, caller, changes).await?;
            Ok(detail)
        })
        .await
    }

    /// Adds a user to a customer, or gives an existing member `role`.
    pub async fn add_customer_member(
        &self,
        caller: &Caller,
        customer: &CustomerLookup,
        user: Uuid,
        role: Option<MemberRole>,
    ) -> Result<Member> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let company = lock_live_customer(&mut tx, caller, customer).await?;
            let mut changes = Changes::default();
            let (membership, _) =
                join(&mut tx, caller, company.id, user, role, &mut changes).await?;
            let member = member_of(&mut tx, caller, membership).await?;
            self.commit(tx, caller, changes).await?;
            Ok(member)
        })
        .await
    }

    /// A page of a customer's members, oldest first: the customer's
    /// memberships paged as `ListCompanyMemberships` pages them, with their
    /// users.
    pub async fn list_customer_members(
        &self,
        caller: &Caller,
        customer: &CustomerLookup,
        page: &PageRequest,
    ) -> Result<Listing<Page<Member>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let customer = found(
                    session.customer(caller.workspace, customer).await?,
                    "customer",
                )?;
                let filter = MembershipFilter::of_company(customer.id);
                let memberships = session
                    .list_memberships(caller.workspace, &filter, page)
                    .await?;
                let user_ids: Vec<Uuid> = memberships
                    .items
                    .iter()
                    .map(|detail| detail.membership.user_id)
                    .collect();
                let users: HashMap<Uuid, User> = session
                    .users(caller.workspace, &user_ids)
                    .await?
                    .into_iter()
                    .map(|detail| (detail.user.id, detail.user))
                    .collect();
                let members = memberships
                    .items
                    .into_iter()
                    .filter_map(|detail| {
                        let user = users.get(&detail.membership.user_id)?;
                        Some(Member::of(detail.membership, user))
                    })
                    .collect();
                Ok(Listing {
                    items: Page {
                        items: members,
                        next_token: memberships.next_token,
                    },
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Changes a member's role. One `UPDATE` of the membership row: a
    /// member removed meanwhile stays removed.
    pub async fn update_customer_member(
        &self,
        caller: &Caller,
        customer: &CustomerLookup,
        member: Uuid,
        role: MemberRole,
    ) -> Result<Member> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let company = lock_live_customer(&mut tx, caller, customer).await?;
            let at = now();
            let membership = tx
                .set_membership_role(caller.workspace, company.id, member, role, at)
                .await?;
            let membership = found(membership, "member")?;
            let mut changes = Changes::default();
            // The update time moves only when the role changed.
            if membership.updated_at == at {
                record_membership(
                    &mut tx,
                    caller,
                    ChangeOperation::Updated,
                    &membership,
                    &mut changes,
                )
                .await?;
            }
            let member = member_of(&mut tx, caller, membership).await?;
            self.commit(tx, caller, changes).await?;
            Ok(member)
        })
        .await
    }

    /// Removes a member; returns it as it was.
    pub async fn remove_customer_member(
        &self,
        caller: &Caller,
        customer: &CustomerLookup,
        member: Uuid,
    ) -> Result<Member> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let company = lock_live_customer(&mut tx, caller, customer).await?;
            let membership = tx
                .delete_membership(caller.workspace, member, Some(company.id))
                .await?;
            let membership = found(membership, "member")?;
            let mut changes = Changes::default();
            record_membership(
                &mut tx,
                caller,
                ChangeOperation::Deleted,
                &membership,
                &mut changes,
            )
            .await?;
            let member = member_of(&mut tx, caller, membership).await?;
            self.commit(tx, caller, changes).await?;
            Ok(member)
        })
        .await
    }
}

/// Soft-deletes a live customer (locked by the caller) and releases what
/// identified it: its company keys and its memberships. Records the
/// deletions; returns the customer as deleted (without members).
pub(super) async fn delete_customer(
    tx: &mut Transaction,
    caller: &Caller,
    customer: &Customer,
    changes: &mut Changes,
) -> Result<CustomerDetail> {
    let company = found(tx.company(caller.workspace, customer.id).await?, "customer")?;
    let deleted = tx
        .soft_delete_customer(caller.workspace, &CustomerLookup::Id(customer.id), now())
        .await?;
    let deleted = found(deleted, "customer")?;
    tx.delete_company_keys(caller.workspace, customer.id)
        .await?;
    let released = tx
        .delete_company_memberships(caller.workspace, customer.id)
        .await?;
    for membership in released {
        changes.membership(
            ChangeOperation::Deleted,
            &MembershipDetail {
                membership,
                company: company.clone(),
            },
        );
    }
    let detail = CustomerDetail {
        customer: deleted,
        members: Vec::new(),
    };
    changes.customer_deleted(detail.clone(), company);
    Ok(detail)
}

/// The membership of `user` in `company` (whose row the caller has
/// locked), created with `role` (member when `None`) if missing; an
/// existing one takes `role` when given. Records the change, if any, and
/// says whether the membership was created.
pub(super) async fn join(
    tx: &mut Transaction,
    caller: &Caller,
    company: Uuid,
    user: Uuid,
    role: Option<MemberRole>,
    changes: &mut Changes,
) -> Result<(Membership, bool)> {
    if !tx.user_exists(caller.workspace, user).await? {
        return Err(Error::NotFound { resource: "user" });
    }
    let now = now();
    let new = Membership::new(company, user, role, now);
    if let Some(created) = tx.insert_membership(caller.workspace, &new).await? {
        record_membership(tx, caller, ChangeOperation::Created, &created, changes).await?;
        return Ok((created, true));
    }
    // The user was a member already. Under READ COMMITTED a concurrent
    // removal may commit between the insert and this read: then run again.
    let existing = tx
        .membership(caller.workspace, company, user)
        .await?
        .ok_or_else(|| Error::Aborted("the membership was removed meanwhile".into()))?;
    let Some(role) = role else {
        return Ok((existing, false));
    };
    let updated = tx
        .set_membership_role(caller.workspace, company, existing.id, role, now)
        .await?
        .ok_or_else(|| Error::Aborted("the membership was removed meanwhile".into()))?;
    if updated != existing {
        record_membership(tx, caller, ChangeOperation::Updated, &updated, changes).await?;
    }
    Ok((updated, false))
}

/// Records a membership's change, with its company as it stands.
pub(super) async fn record_membership(
    tx: &mut Transaction,
    caller: &Caller,
    operation: ChangeOperation,
    membership: &Membership,
    changes: &mut Changes,
) -> Result<()> {
    let company = found(
        tx.company(caller.workspace, membership.company_id).await?,
        "company",
    )?;
    changes.membership(
        operation,
        &MembershipDetail {
            membership: membership.clone(),
            company,
        },
    );
    Ok(())
}

/// A customer with its members, as they are in `session`.
async fn with_members(
    session: &mut Session,
    caller: &Caller,
    customer: Customer,
) -> Result<CustomerDetail> {
    let mut members = session
        .customer_members(caller.workspace, &[customer.id])
        .await?;
    Ok(CustomerDetail {
        members: members.remove(&customer.id).unwrap_or_default(),
        customer,
    })
}

/// A membership as a customer's member: with its user's email, name and
/// external id.
async fn member_of(
    session: &mut Session,
    caller: &Caller,
    membership: Membership,
) -> Result<Member> {
    let user = found(
        session.user(caller.workspace, membership.user_id).await?,
        "user",
    )?;
    Ok(Member::of(membership, &user.user))
}
