//! People (seed 002): batches, single upserts and creates, updates, and
//! the lookups of Flameup's "id, external id or email".

use serde_json::{Map, Value};

use super::changes::Changes;
use super::{Listing, Service, found, retrying};
use crate::domain::change::ChangeOperation;
use crate::domain::page::{Page, PageRequest};
use crate::domain::person::{
    self, Person, PersonFilter, PersonLookup, PersonPatch, PersonUpsert, TraitChanges, Upserted,
    batch_item,
};
use crate::domain::{Caller, now};
use crate::error::{Error, FieldPath, Result, UniqueIndex};
use crate::store::Session;

/// The clashes by which a racing batch shows: it planned to create someone
/// another batch created at that instant. Run again, it finds them.
const RACES: [UniqueIndex; 2] = [UniqueIndex::PersonEmail, UniqueIndex::PersonExternalId];

impl Service {
    /// Applies a parsed batch, all or nothing, and says for each person
    /// whether it was created. Most batches bring only new people: then one
    /// plain multi-row `INSERT` writes them all. If anyone exists it writes
    /// nothing and the batch is merged instead.
    pub async fn batch_upsert_people(
        &self,
        caller: &Caller,
        batch: &[PersonUpsert],
    ) -> Result<Vec<Upserted>> {
        match self.insert_new_people(caller, batch).await {
            Ok(Some(created)) => return Ok(created),
            // Someone exists, or two batches of new people deadlocked on
            // each other's keys: the merge sorts it out.
            Ok(None) | Err(Error::Aborted(_)) => {}
            Err(error) => return Err(error),
        }
        self.merge_people(caller, batch).await
    }

    /// Creates every person of a batch with one statement, or writes
    /// nothing and returns `None` when anyone already exists (by external
    /// id or email).
    pub async fn insert_new_people(
        &self,
        caller: &Caller,
        batch: &[PersonUpsert],
    ) -> Result<Option<Vec<Upserted>>> {
        let fresh = person::create_all(caller.workspace, batch, now())?;
        // Recorded before the write, which then holds the writer only for
        // its statements.
        let mut changes = Changes::default();
        for person in &fresh {
            changes.person(ChangeOperation::Created, person);
        }
        let changes = changes.into_records();
        let written = self
            .store
            .insert_people_logged(caller.workspace, caller.key, &fresh, &changes, now())
            .await;
        match written {
            Ok(last_seq) => self.changes_committed(caller, &changes, last_seq),
            // Someone exists after all, or the statement lost to a
            // concurrent write (SERIALIZABLE): the transactional path, which
            // retries, takes the batch.
            Err(error) if error.is_clash_on(&RACES) || matches!(error, Error::Aborted(_)) => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
        Ok(Some(
            fresh
                .into_iter()
                .map(|person| Upserted {
                    person,
                    created: true,
                })
                .collect(),
        ))
    }

    /// A batch known to name someone who exists, in one transaction: the
    /// new people are inserted (a unique index making each creation
    /// atomic), those who exist are read under row locks and merged by the
    /// domain, so the created and updated counts are exact under
    /// concurrency.
    pub async fn merge_people(
        &self,
        caller: &Caller,
        batch: &[PersonUpsert],
    ) -> Result<Vec<Upserted>> {
        retrying(&RACES, || self.merge_people_once(caller, batch)).await
    }

    async fn merge_people_once(
        &self,
        caller: &Caller,
        batch: &[PersonUpsert],
    ) -> Result<Vec<Upserted>> {
        let workspace = caller.workspace;
        let now = now();
        let fresh = person::create_all(workspace, batch, now)?;
        let mut tx = self.store.write().await?;
        let inserted = tx.insert_new_people(&fresh).await?;
        let existing: Vec<(usize, &PersonUpsert)> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| !inserted.contains(&fresh[*i].id))
            .collect();
        let mut merged = std::collections::HashMap::new();
        if !existing.is_empty() {
            let stored = tx
                .lock_people_named(workspace, existing.iter().map(|(_, u)| *u))
                .await?;
            let planned = person::plan_batch(workspace, &existing, &stored, now)?;
            let people: Vec<Person> = planned.iter().map(|u| u.person.clone()).collect();
            tx.write_people(&people).await?;
            merged = existing.iter().map(|(i, _)| *i).zip(planned).collect();
        }
        let written: Vec<Upserted> = fresh
            .into_iter()
            .enumerate()
            .map(|(i, person)| {
                merged.remove(&i).unwrap_or(Upserted {
                    person,
                    created: true,
                })
            })
            .collect();
        let mut changes = Changes::default();
        for upserted in &written {
            changes.person(
                ChangeOperation::of_upsert(upserted.created),
                &upserted.person,
            );
        }
        self.commit(tx, caller, changes).await?;
        Ok(written)
    }

    /// One person through the batch path, with field paths named from the
    /// person rather than `people[0]`.
    pub async fn upsert_person(&self, caller: &Caller, upsert: PersonUpsert) -> Result<Upserted> {
        let mut written = self
            .batch_upsert_people(caller, std::slice::from_ref(&upsert))
            .await
            .map_err(|error| error.map_paths(unprefix))?;
        Ok(written.remove(0))
    }

    /// Creates one person, in one transaction: a person who exists under
    /// the external id is refused (`AlreadyExists` on `user_id`); someone
    /// with only the email is matched, as an upsert would (seed 002).
    pub async fn create_person(&self, caller: &Caller, upsert: PersonUpsert) -> Result<Upserted> {
        retrying(&RACES, || self.create_person_once(caller, &upsert))
            .await
            .map_err(|error| error.map_paths(unprefix))
    }

    async fn create_person_once(&self, caller: &Caller, upsert: &PersonUpsert) -> Result<Upserted> {
        let (workspace, now) = (caller.workspace, now());
        let mut fresh = person::create_all(workspace, std::slice::from_ref(upsert), now)?;
        let mut tx = self.store.write().await?;
        let mut changes = Changes::default();
        if !tx.insert_new_people(&fresh).await?.is_empty() {
            let created = Upserted {
                person: fresh.remove(0),
                created: true,
            };
            changes.person(ChangeOperation::Created, &created.person);
            self.commit(tx, caller, changes).await?;
            return Ok(created);
        }
        let existing = tx.lock_people_named(workspace, [upsert]).await?;
        let planned = person::plan_create(workspace, upsert, &existing, now)?;
        tx.write_people(std::slice::from_ref(&planned.person))
            .await?;
        changes.person(ChangeOperation::Updated, &planned.person);
        self.commit(tx, caller, changes).await?;
        Ok(planned)
    }

    pub async fn get_person(&self, caller: &Caller, lookup: &PersonLookup) -> Result<Person> {
        let person = self
            .reading(caller, |mut session| {
                Box::pin(async move { session.person(caller.workspace, lookup).await })
            })
            .await?;
        found(person, "person")
    }

    /// The person a Flameup path segment names: its id, external id or
    /// email (`PersonLookup::candidates`).
    pub async fn find_person(&self, caller: &Caller, id: &str) -> Result<Person> {
        let candidates = &PersonLookup::candidates(id)?;
        self.reading(caller, |mut session| {
            Box::pin(async move { first_match(&mut session, caller, candidates).await })
        })
        .await
    }

    pub async fn list_people(
        &self,
        caller: &Caller,
        filter: &PersonFilter,
        page: &PageRequest,
    ) -> Result<Listing<Page<Person>>> {
        self.reading_snapshot(caller, |mut session, change_cursor| {
            Box::pin(async move {
                let items = session.list_people(caller.workspace, filter, page).await?;
                Ok(Listing {
                    items,
                    change_cursor,
                })
            })
        })
        .await
    }

    /// Applies a patch under the person's row lock.
    pub async fn update_person(
        &self,
        caller: &Caller,
        lookup: &PersonLookup,
        patch: &PersonPatch,
    ) -> Result<Person> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let current = found(tx.lock_person(caller.workspace, lookup).await?, "person")?;
            let next = patch.apply(current.clone(), now());
            let mut changes = Changes::default();
            if next != current {
                tx.write_people(std::slice::from_ref(&next)).await?;
                changes.person(ChangeOperation::Updated, &next);
            }
            self.commit(tx, caller, changes).await?;
            Ok(next)
        })
        .await
    }

    /// Merges traits into the person a Flameup path segment names, under
    /// the upsert's rules, in one transaction.
    pub async fn merge_person_traits(
        &self,
        caller: &Caller,
        id: &str,
        traits: Map<String, Value>,
    ) -> Result<Person> {
        let candidates = PersonLookup::candidates(id)?;
        let traits = TraitChanges::parse(traits).map_err(Error::InvalidArgument)?;
        retrying(&RACES, || {
            self.merge_person_traits_once(caller, &candidates, &traits)
        })
        .await
    }

    async fn merge_person_traits_once(
        &self,
        caller: &Caller,
        candidates: &[PersonLookup],
        traits: &TraitChanges,
    ) -> Result<Person> {
        let workspace = caller.workspace;
        let mut tx = self.store.write().await?;
        let mut current = None;
        for lookup in candidates {
            current = tx.lock_person(workspace, lookup).await?;
            if current.is_some() {
                break;
            }
        }
        let current = found(current, "person")?;
        let upsert = PersonUpsert::merging(current.external_id.clone(), traits.clone());
        let mut planned = person::plan_batch(workspace, &[(0, &upsert)], &[current], now())
            .map_err(|error| error.map_paths(unprefix))?;
        let person = planned.remove(0).person;
        tx.write_people(std::slice::from_ref(&person)).await?;
        let mut changes = Changes::default();
        changes.person(ChangeOperation::Updated, &person);
        self.commit(tx, caller, changes).await?;
        Ok(person)
    }

    /// Deletes a person for good; returns it as it was.
    pub async fn delete_person(&self, caller: &Caller, lookup: &PersonLookup) -> Result<Person> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let person = found(tx.delete_person(caller.workspace, lookup).await?, "person")?;
            let mut changes = Changes::default();
            changes.person(ChangeOperation::Deleted, &person);
            self.commit(tx, caller, changes).await?;
            Ok(person)
        })
        .await
    }
}

/// The first of `candidates` that names a person.
async fn first_match(
    session: &mut Session,
    caller: &Caller,
    candidates: &[PersonLookup],
) -> Result<Person> {
    for lookup in candidates {
        if let Some(person) = session.person(caller.workspace, lookup).await? {
            return Ok(person);
        }
    }
    Err(Error::NotFound { resource: "person" })
}

/// A batch-of-one's path (`people[0].email`) as the single person's
/// (`email`).
fn unprefix(path: FieldPath) -> FieldPath {
    path.strip_prefix(&batch_item(0)).unwrap_or(path)
}
