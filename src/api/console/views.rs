//! What the pages show, as text ready for the templates: records' fields in
//! words, missing values as a dash, times as `<time>` values, the change
//! log's records as the contract's JSON. Nothing is decided here; the
//! templates only lay these out, and escape every one of them.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::domain::change::{Change, ChangeKind, LoggedChange};
use crate::domain::customer::{
    BillingAddress, Customer, CustomerDetail, CustomerName, Email, ExternalId, Metadata,
    MetadataValue,
};
use crate::domain::entity::{Entity, EntityType};
use crate::domain::person::Person;
use crate::domain::user::{
    Company, EXTERNAL_ID_KEY, Keys, Member, MemberRole, MembershipDetail, UserDetail,
};
use crate::domain::workspace::ApiKey;

/// What a page shows for a value that is not set.
const MISSING: &str = "—";

/// Fields that move with every change, so naming them says nothing.
const ALWAYS_CHANGED: [&str; 2] = ["updatedAt", "modifiedAt"];

/// A moment: in UTC on the page, and in RFC 3339 for `console.js`, which
/// shows it in the reader's own time zone.
pub(super) struct Moment {
    pub iso: String,
    pub text: String,
}

impl Moment {
    pub fn of(time: DateTime<Utc>) -> Self {
        Self {
            iso: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            text: time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

fn or_missing(value: Option<&str>) -> String {
    value
        .filter(|value| !value.is_empty())
        .unwrap_or(MISSING)
        .to_owned()
}

/// One labelled value of a record's details: text, or a moment.
pub(super) struct Fact {
    pub label: &'static str,
    pub value: String,
    pub time: Option<Moment>,
}

impl Fact {
    fn text(label: &'static str, value: impl Into<String>) -> Self {
        Self {
            label,
            value: value.into(),
            time: None,
        }
    }

    fn at(label: &'static str, time: Option<DateTime<Utc>>) -> Self {
        match time {
            Some(time) => Self {
                label,
                value: String::new(),
                time: Some(Moment::of(time)),
            },
            None => Self::text(label, MISSING),
        }
    }
}

/// One option of a filter's `<select>`.
pub(super) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The options, the one whose value is `current` selected.
pub(super) fn choices(options: &[(&'static str, &'static str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|&(value, label)| Choice {
            value,
            label,
            selected: value == current,
        })
        .collect()
}

/// What an empty listing says: that there is nothing yet, or that nothing
/// matches what was asked.
pub(super) fn empty_state(singular: &str, plural: &str, search: &str, filtered: bool) -> String {
    if !search.is_empty() {
        format!("No {singular} matches “{search}”")
    } else if filtered {
        format!("No {plural} match this filter")
    } else {
        format!("No {plural} yet")
    }
}

/// Links to the next page of a listing and back to its first.
pub(super) struct Pager {
    pub next: Option<String>,
    pub first: Option<String>,
}

pub(super) struct CustomerRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub external_id: String,
    pub kind: &'static str,
    pub members: usize,
    pub created: Moment,
}

impl CustomerRow {
    pub fn of(detail: &CustomerDetail) -> Self {
        let customer = &detail.customer;
        Self {
            id: customer.id.to_string(),
            name: customer_name(customer),
            email: or_missing(customer.email.as_ref().map(Email::as_str)),
            external_id: or_missing(customer.external_id.as_ref().map(ExternalId::as_str)),
            kind: customer.kind.as_str(),
            members: detail.members.len(),
            created: Moment::of(customer.created_at),
        }
    }
}

pub(super) fn customer_name(customer: &Customer) -> String {
    customer
        .name
        .as_ref()
        .map_or("Unnamed customer", CustomerName::as_str)
        .to_owned()
}

pub(super) fn customer_facts(customer: &Customer) -> Vec<Fact> {
    let email = match &customer.email {
        Some(email) if customer.email_verified => format!("{} (verified)", email.as_str()),
        Some(email) => email.as_str().to_owned(),
        None => MISSING.to_owned(),
    };
    vec![
        Fact::text("Id", customer.id.to_string()),
        Fact::text(
            "Name",
            or_missing(customer.name.as_ref().map(CustomerName::as_str)),
        ),
        Fact::text("Email", email),
        Fact::text(
            "External id",
            or_missing(customer.external_id.as_ref().map(ExternalId::as_str)),
        ),
        Fact::text("Type", customer.kind.as_str()),
        Fact::at("Created", Some(customer.created_at)),
        Fact::at("Last changed", customer.modified_at),
    ]
}

/// The address as it would be written on an envelope, one line each.
pub(super) fn address_lines(address: &BillingAddress) -> Vec<String> {
    let lines = address.lines();
    let locality = [lines.postal_code.as_deref(), lines.city.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    [
        lines.line1,
        lines.line2,
        Some(locality),
        lines.state,
        Some(lines.country),
    ]
    .into_iter()
    .flatten()
    .filter(|line| !line.is_empty())
    .collect()
}

pub(super) fn metadata_pairs(metadata: &Metadata) -> Vec<(String, String)> {
    metadata
        .iter()
        .map(|(key, value)| {
            let value = match value {
                MetadataValue::Bool(value) => value.to_string(),
                MetadataValue::Int(value) => value.to_string(),
                MetadataValue::Float(value) => value.to_string(),
                MetadataValue::String(value) => value.clone(),
            };
            (key.clone(), value)
        })
        .collect()
}

fn role_words(role: MemberRole) -> String {
    role.as_str().replace('_', " ")
}

pub(super) struct MemberRow {
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub external_id: String,
    pub role: String,
    pub since: Moment,
}

impl MemberRow {
    pub fn of(member: &Member) -> Self {
        Self {
            user_id: member.membership.user_id.to_string(),
            name: member
                .name
                .clone()
                .unwrap_or_else(|| "Unnamed user".to_owned()),
            email: or_missing(member.email.as_deref()),
            external_id: or_missing(member.external_id.as_deref()),
            role: role_words(member.membership.role),
            since: Moment::of(member.membership.created_at),
        }
    }
}

/// A page of entities, by type.
pub(super) struct EntityGroup {
    pub type_id: String,
    pub entities: Vec<EntityRow>,
}

pub(super) struct EntityRow {
    pub id: String,
    pub name: String,
    pub metadata: String,
    pub updated: Moment,
    pub archived: Option<Moment>,
}

pub(super) fn entity_groups(entities: &[Entity]) -> Vec<EntityGroup> {
    let mut groups: BTreeMap<&str, Vec<EntityRow>> = BTreeMap::new();
    for entity in entities {
        groups
            .entry(entity.type_id.as_str())
            .or_default()
            .push(EntityRow {
                id: entity.id.as_str().to_owned(),
                name: or_missing(entity.display_name.as_deref()),
                metadata: joined(entity.metadata.iter()),
                updated: Moment::of(entity.updated_at),
                archived: entity.archived_at.map(Moment::of),
            });
    }
    groups
        .into_iter()
        .map(|(type_id, entities)| EntityGroup {
            type_id: type_id.to_owned(),
            entities,
        })
        .collect()
}

/// `key=value` pairs on one line, or a dash when there are none.
fn joined<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let text = pairs
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        MISSING.to_owned()
    } else {
        text
    }
}

pub(super) fn key_pairs(keys: &Keys) -> Vec<(String, String)> {
    keys.iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// A JSON value as a person reads it: strings without their quotes, the
/// rest as compact JSON.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(super) fn json_pairs(map: &Map<String, Value>) -> Vec<(String, String)> {
    map.iter()
        .map(|(key, value)| (key.clone(), json_text(value)))
        .collect()
}

pub(super) struct UserRow {
    pub id: String,
    pub name: String,
    pub keys: String,
    pub companies: usize,
    pub last_seen: Option<Moment>,
    pub created: Moment,
}

impl UserRow {
    pub fn of(detail: &UserDetail) -> Self {
        let user = &detail.user;
        Self {
            id: user.id.to_string(),
            name: user_name(detail),
            keys: joined(user.keys.iter()),
            companies: detail.memberships.len(),
            last_seen: user.last_seen_at.map(Moment::of),
            created: Moment::of(user.created_at),
        }
    }
}

pub(super) fn user_name(detail: &UserDetail) -> String {
    detail
        .user
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "Unnamed user".to_owned())
}

pub(super) fn user_facts(detail: &UserDetail) -> Vec<Fact> {
    let user = &detail.user;
    vec![
        Fact::text("Id", user.id.to_string()),
        Fact::text("Name", or_missing(user.name.as_deref())),
        Fact::at("Last seen", user.last_seen_at),
        Fact::at("Created", Some(user.created_at)),
        Fact::at("Last changed", Some(user.updated_at)),
    ]
}

/// A user's membership of a company (a customer).
pub(super) struct MembershipRow {
    pub company_id: String,
    pub company: String,
    pub role: String,
    pub since: Moment,
}

impl MembershipRow {
    pub fn of(detail: &MembershipDetail) -> Self {
        Self {
            company_id: detail.company.id.to_string(),
            company: company_name(&detail.company),
            role: role_words(detail.membership.role),
            since: Moment::of(detail.membership.created_at),
        }
    }
}

fn company_name(company: &Company) -> String {
    company
        .name
        .as_deref()
        .or_else(|| company.keys.get(EXTERNAL_ID_KEY))
        .filter(|name| !name.is_empty())
        .unwrap_or("Unnamed company")
        .to_owned()
}

pub(super) struct CompanyRow {
    pub id: String,
    pub name: String,
    pub keys: String,
    pub last_seen: Option<Moment>,
    pub created: Moment,
}

impl CompanyRow {
    pub fn of(company: &Company) -> Self {
        Self {
            id: company.id.to_string(),
            name: company_name(company),
            keys: joined(company.keys.iter()),
            last_seen: company.last_seen_at.map(Moment::of),
            created: Moment::of(company.created_at),
        }
    }
}

pub(super) fn person_name(person: &Person) -> String {
    let name = [
        person.profile.get("first_name"),
        person.profile.get("last_name"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    if name.trim().is_empty() {
        "Unnamed person".to_owned()
    } else {
        name
    }
}

pub(super) struct PersonRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub external_id: String,
    pub status: &'static str,
    pub last_seen: Moment,
}

impl PersonRow {
    pub fn of(person: &Person) -> Self {
        Self {
            id: person.id.to_string(),
            name: person_name(person),
            email: or_missing(person.email.as_ref().map(Email::as_str)),
            external_id: person.external_id.clone(),
            status: person.status.as_str(),
            last_seen: Moment::of(person.last_seen_at),
        }
    }
}

/// The known traits a person's details show, with their labels.
const PROFILE_FIELDS: [(&str, &str); 6] = [
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("phone", "Phone"),
    ("avatar_url", "Avatar URL"),
    ("timezone", "Time zone"),
    ("locale", "Locale"),
];

pub(super) fn person_facts(person: &Person) -> Vec<Fact> {
    let mut facts = vec![
        Fact::text("Id", person.id.to_string()),
        Fact::text("External id", person.external_id.clone()),
        Fact::text(
            "Email",
            or_missing(person.email.as_ref().map(Email::as_str)),
        ),
        Fact::text("Status", person.status.as_str()),
    ];
    facts.extend(
        PROFILE_FIELDS
            .iter()
            .map(|&(name, label)| Fact::text(label, or_missing(person.profile.get(name)))),
    );
    facts.extend([
        Fact::at("First seen", Some(person.first_seen_at)),
        Fact::at("Last seen", Some(person.last_seen_at)),
        Fact::at("Created", Some(person.created_at)),
        Fact::at("Last changed", Some(person.updated_at)),
    ]);
    facts
}

pub(super) struct EntityTypeRow {
    pub id: String,
    pub display_name: String,
    pub attribution_keys: String,
    pub archived: Option<Moment>,
    pub created: Moment,
    pub updated: Moment,
}

impl EntityTypeRow {
    pub fn of(entity_type: &EntityType) -> Self {
        let keys = entity_type.attribution_keys.join(", ");
        Self {
            id: entity_type.id.as_str().to_owned(),
            display_name: entity_type.display_name.clone(),
            attribution_keys: if keys.is_empty() {
                MISSING.to_owned()
            } else {
                keys
            },
            archived: entity_type.archived_at.map(Moment::of),
            created: Moment::of(entity_type.created_at),
            updated: Moment::of(entity_type.updated_at),
        }
    }
}

pub(super) struct KeyRow {
    pub id: String,
    pub created: Moment,
    pub revoked: Option<Moment>,
    /// The key this session signed in with.
    pub this_session: bool,
}

impl KeyRow {
    pub fn of(key: &ApiKey, this_session: bool) -> Self {
        Self {
            id: key.id.to_string(),
            created: Moment::of(key.created_at),
            revoked: key.revoked_at.map(Moment::of),
            this_session,
        }
    }
}

/// A record's history: a page of its changes, oldest first, as the log
/// pages them.
pub(super) struct History {
    pub entries: Vec<HistoryEntry>,
    /// The next page of changes, when this one was full.
    pub later: Option<String>,
    /// Back to the oldest change kept, when this page starts later.
    pub first: Option<String>,
}

pub(super) struct HistoryEntry {
    pub seq: i64,
    pub when: Moment,
    pub operation: &'static str,
    pub kind: &'static str,
    /// The key that made the change, as `kith keys list` shows it.
    pub api_key: String,
    /// The record's fields this change set differently from the change
    /// before it on the page; empty when there is none to compare with.
    pub changed: String,
    /// The record as the change committed it, as pretty JSON.
    pub record: String,
}

pub(super) fn history_entries(changes: &[LoggedChange]) -> Vec<HistoryEntry> {
    let mut entries = Vec::with_capacity(changes.len());
    let mut before: Option<Value> = None;
    for logged in changes {
        let record = record_json(&logged.change);
        let changed = match (&before, &record) {
            (Some(before), Some(after)) => changed_fields(before, after).join(", "),
            _ => String::new(),
        };
        entries.push(HistoryEntry {
            seq: logged.seq,
            when: Moment::of(logged.committed_at),
            operation: logged.change.operation.as_str(),
            kind: logged.change.kind.as_str(),
            api_key: logged.api_key.to_string(),
            changed,
            record: record
                .as_ref()
                .and_then(|record| serde_json::to_string_pretty(record).ok())
                .unwrap_or_default(),
        });
        before = record;
    }
    entries
}

/// The contract's message a change's record is, by its kind.
fn record_message(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Customer => "kith.v1.Customer",
        ChangeKind::Entity => "kith.v1.Entity",
        ChangeKind::EntityType => "kith.v1.EntityType",
        ChangeKind::Person => "kith.v1.Person",
        ChangeKind::User => "kith.v1.User",
        ChangeKind::Company => "kith.v1.Company",
        ChangeKind::Membership => "kith.v1.CompanyMembership",
    }
}

/// The change's record as the contract's JSON. A record that does not
/// decode (the log only holds what the contract encoded) is shown without
/// its fields rather than failing the page.
fn record_json(change: &Change) -> Option<Value> {
    let descriptor =
        crate::pb::descriptor_pool().get_message_by_name(record_message(change.kind))?;
    let message =
        prost_reflect::DynamicMessage::decode(descriptor, change.record.as_slice()).ok()?;
    serde_json::to_value(&message).ok()
}

/// The top-level fields whose values differ between two records.
fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return Vec::new();
    };
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| !ALWAYS_CHANGED.contains(&name.as_str()))
        .filter(|name| before.get(name.as_str()) != after.get(name.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_fields_name_what_differs_but_the_update_time() {
        let before = json!({"name": "Ada", "email": "a@x.io", "updatedAt": "1"});
        let after =
            json!({"name": "Ada King", "email": "a@x.io", "updatedAt": "2", "externalId": "a"});
        assert_eq!(changed_fields(&before, &after), ["externalId", "name"]);
    }

    #[test]
    fn empty_listings_say_why() {
        assert_eq!(
            empty_state("customer", "customers", "", false),
            "No customers yet"
        );
        assert_eq!(
            empty_state("customer", "customers", "ada", true),
            "No customer matches “ada”"
        );
        assert_eq!(
            empty_state("customer", "customers", "", true),
            "No customers match this filter"
        );
    }

    #[test]
    fn moments_are_rfc3339_for_scripts_and_utc_for_people() {
        let time = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let moment = Moment::of(time);
        assert_eq!(moment.iso, "2023-11-14T22:13:20.123Z");
        assert_eq!(moment.text, "2023-11-14 22:13:20 UTC");
    }
}
