//! People and the rules of seed 002 (Flameup).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::customer::Email;
use super::entity::check_batch_size;
use super::search::{SearchDocument, SearchQuery};
use super::{Change, WorkspaceId, bounded_text, storable_json, storable_text};
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

pub const MAX_USER_ID_CHARS: usize = 255;
pub const MAX_ATTRIBUTES: usize = 100;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 255;
pub const MAX_ATTRIBUTE_DEPTH: usize = 8;

/// Where an upsert's traits are, in its violations.
fn traits_path() -> FieldPath {
    FieldPath::field("traits")
}

/// The traits that fill a person's own fields, each with its length limit.
pub const KNOWN_TRAITS: [(&str, usize); 6] = [
    ("first_name", 256),
    ("last_name", 256),
    ("phone", 50),
    ("avatar_url", 2048),
    ("timezone", 64),
    ("locale", 64),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersonStatus {
    #[default]
    Active,
    Unsubscribed,
    Bounced,
}

impl PersonStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "unsubscribed" => Some(Self::Unsubscribed),
            "bounced" => Some(Self::Bounced),
            _ => None,
        }
    }
}

/// The known traits of a person, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile(BTreeMap<&'static str, String>);

impl Profile {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn from_stored(pairs: impl IntoIterator<Item = (&'static str, Option<String>)>) -> Self {
        Self(
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
        )
    }

    fn apply(&mut self, changes: &[(&'static str, Change<String>)]) {
        for (name, change) in changes {
            match change {
                Change::Keep => {}
                Change::Set(value) => {
                    self.0.insert(name, value.clone());
                }
                Change::Clear => {
                    self.0.remove(name);
                }
            }
        }
    }
}

/// Checks one known trait's value; an empty string means "clear".
fn parse_known(
    name: &'static str,
    max: usize,
    value: &str,
) -> Result<Change<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(Change::Clear);
    }
    let invalid = |why: String| FieldViolation::new(name, why);
    bounded_text(value, max).map_err(invalid)?;
    match name {
        "timezone" if value.parse::<chrono_tz::Tz>().is_err() => {
            Err(invalid(format!("'{value}' is not an IANA time zone")))
        }
        "locale" if language_tags::LanguageTag::parse(value).is_err() => {
            Err(invalid(format!("'{value}' is not a BCP 47 language tag")))
        }
        _ => Ok(Change::Set(value.to_owned())),
    }
}

fn known_limit(name: &str) -> Option<(&'static str, usize)> {
    KNOWN_TRAITS
        .iter()
        .copied()
        .find(|(known, _)| *known == name)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: Uuid,
    pub workspace_id: WorkspaceId,
    pub external_id: String,
    pub email: Option<Email>,
    pub profile: Profile,
    pub status: PersonStatus,
    pub attributes: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl Person {
    /// What a search finds the person by: the first, last or full name or
    /// the email contains the text, the external id starts with it.
    pub fn search_document(&self) -> SearchDocument {
        let (first, last) = (
            self.profile.get("first_name"),
            self.profile.get("last_name"),
        );
        // The full name is a field of its own, so "Ada Lovelace" finds Ada
        // though no query reaches across two fields.
        let full_name = first
            .zip(last)
            .map(|(first, last)| format!("{first} {last}"));
        SearchDocument::keyed(Some(&self.external_id))
            .field(first)
            .field(last)
            .field(full_name.as_deref())
            .field(self.email.as_ref().map(Email::as_str))
    }
}

/// One person to upsert, as sent.
#[derive(Debug, Clone, Default)]
pub struct PersonUpsertInput {
    pub user_id: String,
    pub email: Option<String>,
    pub traits: Map<String, Value>,
    pub status: Option<PersonStatus>,
}

/// One valid upsert.
#[derive(Debug, Clone)]
pub struct PersonUpsert {
    pub user_id: String,
    pub email: Option<Email>,
    pub profile: Vec<(&'static str, Change<String>)>,
    /// Merged into the stored attributes; `null` removes a key.
    pub attributes: Map<String, Value>,
    pub status: Option<PersonStatus>,
}

fn parse_user_id(text: &str, field: &'static str) -> Result<String, FieldViolation> {
    if text.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    bounded_text(text, MAX_USER_ID_CHARS).map_err(|why| FieldViolation::new(field, why))?;
    Ok(text.to_owned())
}

/// What an upsert's traits change: the known ones fill the person's own
/// fields, the rest merge into its attributes.
#[derive(Debug, Clone, Default)]
pub struct TraitChanges {
    pub profile: Vec<(&'static str, Change<String>)>,
    /// Merged into the stored attributes; `null` removes a key.
    pub attributes: Map<String, Value>,
}

impl TraitChanges {
    /// Violations name fields under `traits`.
    pub fn parse(traits: Map<String, Value>) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let mut profile = Vec::new();
        let mut attributes = Map::new();
        for (key, value) in traits {
            match (known_limit(&key), value) {
                (Some((name, _)), Value::Null) => profile.push((name, Change::Clear)),
                (Some((name, max)), Value::String(text)) => {
                    if let Some(change) =
                        v.check(parse_known(name, max, &text).map_err(|e| e.within(&traits_path())))
                    {
                        profile.push((name, change));
                    }
                }
                (Some((name, _)), _) => {
                    v.push(FieldViolation::new(
                        traits_path().then(name),
                        "must be a string or null",
                    ));
                }
                (None, value) => {
                    attributes.insert(key, value);
                }
            }
        }
        v.extend(check_attributes(&attributes, &traits_path()));
        if v.is_empty() {
            Ok(Self {
                profile,
                attributes,
            })
        } else {
            Err(v.into_vec())
        }
    }
}

impl PersonUpsert {
    /// Violations name fields relative to the person (`traits.timezone`).
    pub fn parse(input: PersonUpsertInput) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let user_id = v.check(parse_user_id(&input.user_id, "user_id"));
        let email = match input.email.as_deref() {
            None | Some("") => None,
            Some(email) => v.check(Email::parse(email)),
        };
        let traits = TraitChanges::parse(input.traits)
            .map_err(|e| v.extend(e))
            .ok();
        match (user_id, traits) {
            (Some(user_id), Some(traits)) if v.is_empty() => {
                Ok(Self::of(user_id, email, traits, input.status))
            }
            _ => Err(v.into_vec()),
        }
    }

    /// Trait changes for the person whose external id is `user_id`.
    pub fn merging(user_id: String, traits: TraitChanges) -> Self {
        Self::of(user_id, None, traits, None)
    }

    fn of(
        user_id: String,
        email: Option<Email>,
        traits: TraitChanges,
        status: Option<PersonStatus>,
    ) -> Self {
        Self {
            user_id,
            email,
            profile: traits.profile,
            attributes: traits.attributes,
            status,
        }
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Key count, key length and nesting of an attribute map, named under
/// `parent` (`traits` on upserts, `attributes` on updates).
fn check_attributes(attributes: &Map<String, Value>, parent: &FieldPath) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if attributes.len() > MAX_ATTRIBUTES {
        out.push(FieldViolation::new(
            parent,
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (key, value) in attributes {
        let len = key.chars().count();
        if len == 0 || len > MAX_ATTRIBUTE_KEY_CHARS {
            out.push(FieldViolation::new(
                parent.clone().key(key),
                format!("keys must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters"),
            ));
        } else if depth(value) > MAX_ATTRIBUTE_DEPTH {
            out.push(FieldViolation::new(
                parent.clone().key(key),
                format!("must be nested at most {MAX_ATTRIBUTE_DEPTH} levels"),
            ));
        } else if let Err(why) = storable_text(key).and_then(|()| storable_json(value)) {
            out.push(FieldViolation::new(parent.clone().key(key), why));
        }
    }
    out
}

/// Where the person at `position` of a batch is.
pub fn batch_item(position: usize) -> FieldPath {
    FieldPath::field("people").index(position)
}

fn at(position: usize, violation: FieldViolation) -> FieldViolation {
    violation.within(&batch_item(position))
}

/// Checks a batch's size, each person, and that no user id or email appears
/// twice.
pub fn parse_batch(items: Vec<PersonUpsertInput>) -> Result<Vec<PersonUpsert>> {
    check_batch_size(items.len(), "people")?;
    let mut v = Violations::default();
    let mut user_ids: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    let mut batch = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match PersonUpsert::parse(item) {
            Ok(upsert) => {
                let email = upsert.email.as_ref().map(Email::key);
                duplicate(&mut v, &mut user_ids, upsert.user_id.clone(), i, "user_id");
                if let Some(email) = email {
                    duplicate(&mut v, &mut emails, email, i, "email");
                }
                batch.push(upsert);
            }
            Err(violations) => v.extend(violations.into_iter().map(|e| at(i, e))),
        }
    }
    v.finish(batch, Error::InvalidArgument)
}

fn duplicate(
    v: &mut Violations,
    seen: &mut HashMap<String, usize>,
    key: String,
    i: usize,
    field: &'static str,
) {
    if let Some(earlier) = seen.insert(key, i) {
        v.push(FieldViolation::new(
            batch_item(earlier).then(field),
            format!("same {field} as people[{i}]"),
        ));
        v.push(FieldViolation::new(
            batch_item(i).then(field),
            format!("same {field} as people[{earlier}]"),
        ));
    }
}

/// A person a batch wrote, and whether it was created.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub person: Person,
    pub created: bool,
}

/// Every person of a batch as a new record, checked as stored: what an
/// optimistic insert writes for those who turn out not to exist.
pub fn create_all(
    workspace: WorkspaceId,
    batch: &[PersonUpsert],
    now: DateTime<Utc>,
) -> Result<Vec<Person>> {
    let mut v = Violations::default();
    let people = batch
        .iter()
        .enumerate()
        .map(|(i, upsert)| {
            let person = create(workspace, upsert, now);
            v.extend(
                check_attributes(&person.attributes, &traits_path())
                    .into_iter()
                    .map(|e| at(i, e)),
            );
            person
        })
        .collect();
    v.finish(people, Error::InvalidArgument)
}

/// What the people of a batch who already exist become (`batch`: each with
/// its position in the request; `existing`: every stored person whose
/// external id or email they name). A person is matched by external id
/// first, else by email; an email owned by someone other than the
/// external-id match is a conflict, never a merge.
pub fn plan_batch(
    workspace: WorkspaceId,
    batch: &[(usize, &PersonUpsert)],
    existing: &[Person],
    now: DateTime<Utc>,
) -> Result<Vec<Upserted>> {
    let by_external: HashMap<&str, &Person> = existing
        .iter()
        .map(|p| (p.external_id.as_str(), p))
        .collect();
    let by_email: HashMap<String, &Person> = existing
        .iter()
        .filter_map(|p| Some((p.email.as_ref()?.key(), p)))
        .collect();
    let mut v = Violations::default();
    let mut claimed: HashMap<Uuid, usize> = HashMap::new();
    let mut out = Vec::with_capacity(batch.len());
    for &(i, upsert) in batch {
        let email_owner = upsert
            .email
            .as_ref()
            .and_then(|e| by_email.get(&e.key()).copied());
        let matched = match (
            by_external.get(upsert.user_id.as_str()).copied(),
            email_owner,
        ) {
            (Some(person), Some(owner)) if owner.id != person.id => {
                return Err(Error::already_exists(
                    batch_item(i).then("email"),
                    "this email belongs to another person",
                ));
            }
            (Some(person), _) => Some(person),
            (None, owner) => owner,
        };
        if let Some(person) = matched
            && let Some(earlier) = claimed.insert(person.id, i)
        {
            v.push(FieldViolation::new(
                batch_item(i),
                format!("matches the same person as people[{earlier}]"),
            ));
            continue;
        }
        let person = match matched {
            Some(current) => apply_upsert(current.clone(), upsert, now),
            None => create(workspace, upsert, now),
        };
        v.extend(
            check_attributes(&person.attributes, &traits_path())
                .into_iter()
                .map(|e| at(i, e)),
        );
        out.push(Upserted {
            person,
            created: matched.is_none(),
        });
    }
    v.finish(out, Error::InvalidArgument)
}

/// A create (not an upsert) of one person, given who exists under its
/// external id or email: someone with the external id means the person
/// exists, which a create refuses; someone with only the email is matched
/// and takes the external id, as in an upsert (seed 002's match by email).
pub fn plan_create(
    workspace: WorkspaceId,
    upsert: &PersonUpsert,
    existing: &[Person],
    now: DateTime<Utc>,
) -> Result<Upserted> {
    if existing.iter().any(|p| p.external_id == upsert.user_id) {
        return Err(Error::already_exists(
            "user_id",
            "A person with this user id already exists.",
        ));
    }
    let mut planned = plan_batch(workspace, &[(0, upsert)], existing, now)
        .map_err(|e| e.map_paths(|path| path.strip_prefix(&batch_item(0)).unwrap_or(path)))?;
    Ok(planned.remove(0))
}

fn create(workspace: WorkspaceId, upsert: &PersonUpsert, now: DateTime<Utc>) -> Person {
    let mut profile = Profile::default();
    profile.apply(&upsert.profile);
    let attributes = upsert
        .attributes
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Person {
        id: super::new_id(),
        workspace_id: workspace,
        external_id: upsert.user_id.clone(),
        email: upsert.email.clone(),
        profile,
        status: upsert.status.unwrap_or_default(),
        attributes,
        created_at: now,
        updated_at: now,
        first_seen_at: now,
        last_seen_at: now,
    }
}

fn apply_upsert(mut person: Person, upsert: &PersonUpsert, now: DateTime<Utc>) -> Person {
    person.external_id.clone_from(&upsert.user_id);
    if let Some(email) = &upsert.email {
        person.email = Some(email.clone());
    }
    person.profile.apply(&upsert.profile);
    for (key, value) in &upsert.attributes {
        if value.is_null() {
            person.attributes.remove(key);
        } else {
            person.attributes.insert(key.clone(), value.clone());
        }
    }
    if let Some(status) = upsert.status {
        person.status = status;
    }
    person.updated_at = now;
    person.last_seen_at = now;
    person
}

/// How a caller names one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonLookup {
    Id(Uuid),
    ExternalId(String),
    Email(Email),
}

impl PersonLookup {
    pub fn by_id(text: &str) -> Result<Self> {
        Uuid::try_parse(text)
            .map(Self::Id)
            .map_err(|_| Error::invalid("id", "must be a UUID"))
    }

    pub fn by_external_id(text: &str) -> Result<Self> {
        parse_user_id(text, "external_id")
            .map(Self::ExternalId)
            .map_err(|v| Error::InvalidArgument(vec![v]))
    }

    pub fn by_email(text: &str) -> Result<Self> {
        Email::parse(text)
            .map(Self::Email)
            .map_err(|v| Error::InvalidArgument(vec![v]))
    }

    /// What a path segment that "is the person's id, external id or email"
    /// (seed 002) may mean, in the order to try: a UUID is an id, or else
    /// someone's external id; an email address is an email; anything else
    /// an external id.
    pub fn candidates(text: &str) -> Result<Vec<Self>> {
        if let Ok(id) = Uuid::try_parse(text) {
            return Ok(vec![Self::Id(id), Self::ExternalId(text.to_owned())]);
        }
        if text.contains('@')
            && let Ok(email) = Email::parse(text)
        {
            return Ok(vec![Self::Email(email)]);
        }
        Ok(vec![Self::by_external_id(text)?])
    }
}

/// The filters of a people listing.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    pub status: Option<PersonStatus>,
    /// Text the names or email contain, or the external id starts with.
    pub search: Option<SearchQuery>,
}

impl PersonFilter {
    /// The filter of a listing whose query is in the request field `field`.
    pub fn parse(status: Option<PersonStatus>, field: &'static str, search: &str) -> Result<Self> {
        Ok(Self {
            status,
            search: SearchQuery::parse(field, search)?,
        })
    }

    pub fn canonical(&self, workspace: WorkspaceId) -> String {
        format!(
            "people|{workspace}|{}|{}",
            self.status.map_or("", PersonStatus::as_str),
            self.search.as_ref().map_or("", SearchQuery::as_str)
        )
    }
}

/// A caller's partial update of a person, unchecked.
#[derive(Debug, Clone, Default)]
pub struct PersonPatchInput {
    pub external_id: Change<String>,
    pub email: Change<String>,
    pub profile: Vec<(&'static str, Change<String>)>,
    pub status: Option<PersonStatus>,
    pub attributes: Option<Map<String, Value>>,
}

/// A valid partial update of a person.
#[derive(Debug, Clone, Default)]
pub struct PersonPatch {
    external_id: Option<String>,
    email: Change<Email>,
    profile: Vec<(&'static str, Change<String>)>,
    status: Option<PersonStatus>,
    attributes: Option<Map<String, Value>>,
}

impl PersonPatch {
    pub fn parse(input: PersonPatchInput) -> Result<Self> {
        let mut v = Violations::default();
        let external_id = match input.external_id {
            Change::Keep => None,
            Change::Clear => {
                v.push(FieldViolation::new("external_id", "is required"));
                None
            }
            Change::Set(id) => v.check(parse_user_id(&id, "external_id")),
        };
        let email = match input.email {
            Change::Set(email) if !email.is_empty() => v
                .check(Email::parse(&email))
                .map_or(Change::Keep, Change::Set),
            Change::Set(_) | Change::Clear => Change::Clear,
            Change::Keep => Change::Keep,
        };
        let mut profile = Vec::new();
        for (name, change) in input.profile {
            let (name, max) = known_limit(name).expect("only known traits are patched");
            match change {
                Change::Set(value) => {
                    if let Some(change) = v.check(parse_known(name, max, &value)) {
                        profile.push((name, change));
                    }
                }
                other => profile.push((name, other)),
            }
        }
        if let Some(attributes) = &input.attributes {
            v.extend(check_attributes(
                attributes,
                &FieldPath::field("attributes"),
            ));
        }
        v.finish(
            Self {
                external_id,
                email,
                profile,
                status: input.status,
                attributes: input.attributes,
            },
            Error::InvalidArgument,
        )
    }

    pub fn apply(&self, mut person: Person, now: DateTime<Utc>) -> Person {
        let before = person.clone();
        if let Some(id) = &self.external_id {
            person.external_id.clone_from(id);
        }
        match &self.email {
            Change::Keep => {}
            Change::Set(email) => person.email = Some(email.clone()),
            Change::Clear => person.email = None,
        }
        person.profile.apply(&self.profile);
        if let Some(status) = self.status {
            person.status = status;
        }
        if let Some(attributes) = &self.attributes {
            person.attributes.clone_from(attributes);
        }
        if person != before {
            person.updated_at = now;
        }
        person
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(user_id: &str, email: Option<&str>, traits: Value) -> PersonUpsertInput {
        PersonUpsertInput {
            user_id: user_id.to_owned(),
            email: email.map(str::to_owned),
            traits: traits.as_object().cloned().unwrap_or_default(),
            status: None,
        }
    }

    #[test]
    fn known_traits_fill_fields_and_the_rest_become_attributes() {
        let upsert = PersonUpsert::parse(input(
            "u1",
            Some("a@example.com"),
            json!({"first_name": "Ada", "timezone": "Europe/Paris", "locale": "en-GB", "plan": "pro"}),
        ))
        .unwrap();
        let person = create(WorkspaceId(Uuid::nil()), &upsert, super::super::now());
        assert_eq!(person.profile.get("first_name"), Some("Ada"));
        assert_eq!(
            person.attributes,
            json!({"plan": "pro"}).as_object().unwrap().clone()
        );
        assert_eq!(person.status, PersonStatus::Active);
    }

    #[test]
    fn bad_traits_are_named() {
        let errors = PersonUpsert::parse(input(
            "",
            Some("nope"),
            json!({"timezone": "Mars/Olympus", "locale": "not a tag!", "phone": 5, "first_name": "x".repeat(257)}),
        ))
        .unwrap_err();
        let mut fields: Vec<_> = errors.iter().map(|e| e.field.to_string()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "email",
                "traits.first_name",
                "traits.locale",
                "traits.phone",
                "traits.timezone",
                "user_id"
            ]
        );
    }

    #[test]
    fn deep_attributes_are_refused() {
        let mut deep = json!("leaf");
        for _ in 0..9 {
            deep = json!({ "n": deep });
        }
        let errors = PersonUpsert::parse(input("u", None, json!({ "deep": deep }))).unwrap_err();
        assert_eq!(errors[0].field.to_string(), "traits.deep");
    }
}
