//! People (seed 002's contacts).

use std::collections::HashSet;

use uuid::Uuid;

use super::rows::{PERSON_COLUMNS, PersonRow, person_cursor};
use super::search::{SearchColumns, push_search};
use super::sql::{Sql, Value};
use super::{Session, Transaction, push_page};
use crate::domain::WorkspaceId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::person::{Person, PersonFilter, PersonLookup, PersonUpsert};
use crate::domain::search::SEARCH_VERSION;
use crate::error::Result;

/// The column a lookup reads, and the value it looks for.
fn lookup_column(lookup: &PersonLookup) -> (&'static str, Value) {
    match lookup {
        PersonLookup::Id(id) => ("id", Value::from(*id)),
        PersonLookup::ExternalId(id) => ("external_id", Value::from(id)),
        PersonLookup::Email(email) => ("email_key", Value::from(email.key())),
    }
}

/// `SELECT <columns> FROM people WHERE <the person lookup names>`.
fn select(workspace: WorkspaceId, lookup: &PersonLookup) -> Sql {
    let (by, value) = lookup_column(lookup);
    Sql::new(format!(
        "SELECT {PERSON_COLUMNS} FROM people WHERE {by} = $1 AND workspace_id = $2"
    ))
    .bind(value)
    .bind(workspace.0)
}

/// A person is found by names and email, and by its external id's start.
const PERSON_SEARCH: SearchColumns = SearchColumns {
    table: "people",
    text: "search_text",
    key: Some("search_key"),
    keys: None,
};

/// `INSERT INTO people … VALUES …` of whole person rows, to be finished
/// with an `ON CONFLICT` clause or left plain.
fn insert(people: &[Person]) -> Sql {
    let mut sql = Sql::new("");
    push_insert(&mut sql, people);
    sql
}

/// Appends `INSERT INTO people … VALUES …` to a statement.
pub(super) fn push_insert(sql: &mut Sql, people: &[Person]) {
    sql.push(
        "INSERT INTO people (id, workspace_id, external_id, email, email_key, phone, \
         first_name, last_name, avatar_url, timezone, locale, status, attributes, \
         search_text, search_key, search_version, created_at, updated_at, first_seen_at, \
         last_seen_at) ",
    );
    sql.push_values(people, |row, person| {
        let profile = |name: &str| person.profile.get(name);
        let document = person.search_document();
        row.bind(person.id)
            .bind(person.workspace_id.0)
            .bind(&person.external_id)
            .bind(person.email.as_ref().map(|e| e.as_str()))
            .bind(person.email.as_ref().map(|e| e.key()))
            .bind(profile("phone"))
            .bind(profile("first_name"))
            .bind(profile("last_name"))
            .bind(profile("avatar_url"))
            .bind(profile("timezone"))
            .bind(profile("locale"))
            .bind(person.status.as_str())
            .bind(Value::json(&person.attributes))
            .bind(document.text())
            .bind(document.key())
            .bind(SEARCH_VERSION)
            .bind(person.created_at)
            .bind(person.updated_at)
            .bind(person.first_seen_at)
            .bind(person.last_seen_at);
    });
}

impl Session {
    pub async fn person(
        &mut self,
        workspace: WorkspaceId,
        lookup: &PersonLookup,
    ) -> Result<Option<Person>> {
        let row: Option<PersonRow> = self.fetch_optional(select(workspace, lookup)).await?;
        Ok(row.map(Into::into))
    }

    pub async fn list_people(
        &mut self,
        workspace: WorkspaceId,
        filter: &PersonFilter,
        page: &PageRequest,
    ) -> Result<Page<Person>> {
        let mut sql = Sql::new(format!(
            "SELECT {PERSON_COLUMNS} FROM people WHERE workspace_id = $1"
        ))
        .bind(workspace.0);
        if let Some(status) = filter.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(search) = &filter.search {
            push_search(&mut sql, search, PERSON_SEARCH);
        }
        push_page(&mut sql, page, "", "id");
        let rows: Vec<PersonRow> = self.fetch_all(sql).await?;
        Ok(page.finish(rows.into_iter().map(Into::into).collect(), person_cursor))
    }
}

impl Transaction {
    /// Inserts every person as new in one statement: all are written, or
    /// none when anyone already exists, which the unique clash then says.
    pub async fn insert_people(&mut self, people: &[Person]) -> Result<()> {
        self.execute(insert(people)).await.map(drop)
    }

    /// The person `lookup` names, locked until the transaction ends.
    pub async fn lock_person(
        &mut self,
        workspace: WorkspaceId,
        lookup: &PersonLookup,
    ) -> Result<Option<Person>> {
        let mut sql = select(workspace, lookup);
        sql.push(self.dialect().lock_row());
        let row: Option<PersonRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }

    /// Every person of the workspace whose external id or email a batch
    /// names, locked in id order until the transaction ends, so concurrent
    /// batches, updates and deletes of the same people queue rather than
    /// overwrite each other.
    pub async fn lock_people_named<'u>(
        &mut self,
        workspace: WorkspaceId,
        batch: impl IntoIterator<Item = &'u PersonUpsert>,
    ) -> Result<Vec<Person>> {
        let batch: Vec<&PersonUpsert> = batch.into_iter().collect();
        // One table and plain conditions: a row locked and updated under
        // this read is re-checked against them and still returned (a
        // self-join or sub-select here would drop it). SQLite answers the OR
        // with both unique indexes.
        let mut sql = Sql::new(format!(
            "SELECT {PERSON_COLUMNS} FROM people WHERE (workspace_id = $1 AND external_id IN ("
        ))
        .bind(workspace.0);
        sql.push_list(batch.iter().map(|upsert| upsert.user_id.as_str()))
            .push("))");
        let emails: Vec<String> = batch
            .iter()
            .filter_map(|upsert| upsert.email.as_ref().map(|e| e.key()))
            .collect();
        if !emails.is_empty() {
            sql.push(" OR (workspace_id = $1 AND email_key IN (")
                .push_list(emails)
                .push("))");
        }
        sql.push(" ORDER BY id").push(self.dialect().lock_row());
        // Not prepared: a plan cached while the table was small (a scan)
        // would outlive a bulk load that makes it large.
        let rows: Vec<PersonRow> = self.fetch_all(sql.unprepared()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Inserts the people no unique index says exist; returns the ids of
    /// those inserted.
    pub async fn insert_new_people(&mut self, people: &[Person]) -> Result<HashSet<Uuid>> {
        let mut sql = insert(people);
        sql.push(" ON CONFLICT DO NOTHING RETURNING id");
        let rows: Vec<(Uuid,)> = self.fetch_all(sql).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Writes whole person rows with one multi-row statement.
    pub async fn write_people(&mut self, people: &[Person]) -> Result<()> {
        if people.is_empty() {
            return Ok(());
        }
        let mut sql = insert(people);
        sql.push(
            " ON CONFLICT (id) DO UPDATE SET external_id = excluded.external_id, \
             email = excluded.email, email_key = excluded.email_key, phone = excluded.phone, \
             first_name = excluded.first_name, last_name = excluded.last_name, \
             avatar_url = excluded.avatar_url, timezone = excluded.timezone, \
             locale = excluded.locale, status = excluded.status, \
             attributes = excluded.attributes, search_text = excluded.search_text, \
             search_key = excluded.search_key, search_version = excluded.search_version, \
             updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at",
        );
        self.execute(sql).await.map(drop)
    }

    /// Deletes the person `lookup` names for good and returns it as it was.
    pub async fn delete_person(
        &mut self,
        workspace: WorkspaceId,
        lookup: &PersonLookup,
    ) -> Result<Option<Person>> {
        let (by, value) = lookup_column(lookup);
        let sql = Sql::new(format!(
            "DELETE FROM people WHERE {by} = $1 AND workspace_id = $2 RETURNING {PERSON_COLUMNS}"
        ))
        .bind(value)
        .bind(workspace.0);
        let row: Option<PersonRow> = self.fetch_optional(sql).await?;
        Ok(row.map(Into::into))
    }
}
