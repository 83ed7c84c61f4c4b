//! Users, companies and memberships: the rules of seed 001 (Schematic), and
//! the members of seed 003.
//!
//! A company is a customer. Its key `external_id` *is* the customer's
//! external id (stored once, in the customer, and immutable once set); every
//! other key is stored beside the customer. So a company upserted by
//! `{"external_id": "acme"}` and the customer created with external id
//! `acme` are one record.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::customer::{Customer, CustomerName, CustomerPatch, ExternalId};
use super::entity::MAX_BATCH;
use super::search::{SearchDocument, SearchQuery};
use super::{Change, WorkspaceId, bounded_text, storable_text};
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

pub const MAX_KEYS: usize = 100;
pub const MAX_KEY_NAME_CHARS: usize = 255;
pub const MAX_KEY_VALUE_CHARS: usize = 1024;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_TRAITS: usize = 100;
pub const MAX_TRAIT_NAME_CHARS: usize = 255;
pub const MAX_TRAIT_STRING_CHARS: usize = 1024;
pub const MAX_COMPANIES: usize = MAX_BATCH;

/// The company key that is the customer's external id.
pub const EXTERNAL_ID_KEY: &str = "external_id";
/// The user keys a customer's members show as their email and external id.
pub const MEMBER_EMAIL_KEY: &str = "email";
pub const MEMBER_EXTERNAL_ID_KEY: &str = "external_id";

/// Identifying keys: name → value, each pair unique among the workspace's
/// users (or companies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys(BTreeMap<String, String>);

impl Keys {
    /// `field` names the map in errors (`keys`, `company`).
    pub fn parse(
        pairs: BTreeMap<String, String>,
        field: &FieldPath,
        required: bool,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Vec::new();
        if required && pairs.is_empty() {
            v.push(FieldViolation::new(field, "at least one key is required"));
        }
        if pairs.len() > MAX_KEYS {
            v.push(FieldViolation::new(
                field,
                format!("at most {MAX_KEYS} keys"),
            ));
        }
        for (name, value) in &pairs {
            let path = field.clone().key(name);
            let name_len = name.chars().count();
            if name_len == 0 || name_len > MAX_KEY_NAME_CHARS {
                v.push(FieldViolation::new(
                    &path,
                    format!("key names must be 1 to {MAX_KEY_NAME_CHARS} characters"),
                ));
            } else if let Err(why) = storable_text(name) {
                v.push(FieldViolation::new(&path, why));
            } else if value.is_empty() {
                v.push(FieldViolation::new(&path, "must not be empty"));
            } else if let Err(why) = bounded_text(value, MAX_KEY_VALUE_CHARS) {
                v.push(FieldViolation::new(&path, why));
            }
        }
        if v.is_empty() {
            Ok(Self(pairs))
        } else {
            Err(v)
        }
    }

    pub fn from_stored(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Traits to merge: scalar values, `null` removing the trait.
pub fn parse_traits(
    traits: Map<String, Value>,
    field: &FieldPath,
) -> Result<Map<String, Value>, Vec<FieldViolation>> {
    let mut v = Vec::new();
    if traits.len() > MAX_TRAITS {
        v.push(FieldViolation::new(
            field,
            format!("at most {MAX_TRAITS} traits"),
        ));
    }
    for (name, value) in &traits {
        let path = field.clone().key(name);
        let len = name.chars().count();
        if len == 0 || len > MAX_TRAIT_NAME_CHARS {
            v.push(FieldViolation::new(
                &path,
                format!("trait names must be 1 to {MAX_TRAIT_NAME_CHARS} characters"),
            ));
        }
        if let Err(why) = storable_text(name) {
            v.push(FieldViolation::new(&path, why));
        }
        match value {
            Value::String(s) => {
                if let Err(why) = storable_text(s) {
                    v.push(FieldViolation::new(&path, why));
                } else if s.chars().count() > MAX_TRAIT_STRING_CHARS {
                    v.push(FieldViolation::new(
                        &path,
                        format!("strings must be at most {MAX_TRAIT_STRING_CHARS} characters"),
                    ));
                }
            }
            Value::Array(_) | Value::Object(_) => {
                v.push(FieldViolation::new(
                    &path,
                    "must be a string, number, boolean or null",
                ));
            }
            _ => {}
        }
    }
    if v.is_empty() { Ok(traits) } else { Err(v) }
}

/// Merges traits: sent values replace, `null` removes, the rest is kept.
pub fn merge_traits(stored: &mut Map<String, Value>, sent: &Map<String, Value>) {
    for (name, value) in sent {
        if value.is_null() {
            stored.remove(name);
        } else {
            stored.insert(name.clone(), value.clone());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberRole {
    Owner,
    BillingManager,
    #[default]
    Member,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::BillingManager => "billing_manager",
            Self::Member => "member",
        }
    }

    pub fn from_stored(text: &str) -> Self {
        match text {
            "owner" => Self::Owner,
            "billing_manager" => Self::BillingManager,
            _ => Self::Member,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub name: Option<String>,
    pub keys: Keys,
    pub traits: Map<String, Value>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// What a search finds the user by: the name (key values are searched
    /// from the keys' own rows, each folded by `search::fold`).
    pub fn search_document(&self) -> SearchDocument {
        SearchDocument::keyed(None).field(self.name.as_deref())
    }
}

/// The company view of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: Uuid,
    pub name: Option<String>,
    /// Includes `external_id` when the customer has one.
    pub keys: Keys,
    pub traits: Map<String, Value>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub id: Uuid,
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: MemberRole,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Membership {
    /// A new membership of `user` in `company`; a member unless `role` says
    /// otherwise.
    pub fn new(company: Uuid, user: Uuid, role: Option<MemberRole>, now: DateTime<Utc>) -> Self {
        Self {
            id: super::new_id(),
            user_id: user,
            company_id: company,
            role: role.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A membership with its company, as users show them.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipDetail {
    pub membership: Membership,
    pub company: Company,
}

/// A user with every membership.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDetail {
    pub user: User,
    pub memberships: Vec<MembershipDetail>,
}

/// What a company's keys and name set in its customer: the `external_id`
/// key *is* the customer's external id, so both follow the customer rules.
/// Checked with the request, before anything is read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompanyFields {
    pub external_id: Option<ExternalId>,
    pub name: Change<CustomerName>,
}

impl CompanyFields {
    /// `name`: `None` keeps the name, `Some(None)` clears it.
    fn parse(
        keys: &Keys,
        keys_field: &FieldPath,
        name: Option<&Option<String>>,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let external_id = keys.get(EXTERNAL_ID_KEY).and_then(|id| {
            v.check(ExternalId::parse(id).map_err(|e| {
                FieldViolation::new(keys_field.clone().key(EXTERNAL_ID_KEY), e.description)
            }))
            .flatten()
        });
        let name = match name {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(name)) => v
                .check(CustomerName::parse(name))
                .flatten()
                .map_or(Change::Clear, Change::Set),
        };
        if v.is_empty() {
            Ok(Self { external_id, name })
        } else {
            Err(v.into_vec())
        }
    }

    /// The company as a new customer of the workspace.
    pub fn new_customer(&self, workspace: WorkspaceId, now: DateTime<Utc>) -> Customer {
        let name = match &self.name {
            Change::Set(name) => Some(name.clone()),
            Change::Keep | Change::Clear => None,
        };
        Customer::new_company(workspace, self.external_id.clone(), name, now)
    }

    /// The change to an existing company's customer (`Customer::apply`
    /// still refuses a new external id once one is set).
    pub fn patch(&self) -> CustomerPatch {
        CustomerPatch {
            external_id: self.external_id.clone().map_or(Change::Keep, Change::Set),
            name: self.name.clone(),
            ..CustomerPatch::default()
        }
    }
}

/// A company named by keys, which a call creates when none has them.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyKeys {
    pub keys: Keys,
    pub fields: CompanyFields,
}

impl CompanyKeys {
    pub fn parse(
        pairs: BTreeMap<String, String>,
        field: &FieldPath,
    ) -> Result<Self, Vec<FieldViolation>> {
        let keys = Keys::parse(pairs, field, true)?;
        let fields = CompanyFields::parse(&keys, field, None)?;
        Ok(Self { keys, fields })
    }
}

/// How an upsert names a company.
#[derive(Debug, Clone, PartialEq)]
pub enum CompanyRef {
    Id(Uuid),
    Keys(CompanyKeys),
}

/// How a call names a company.
#[derive(Debug, Clone, PartialEq)]
pub enum CompanyLookup {
    Id(Uuid),
    Keys(Keys),
}

impl CompanyLookup {
    pub fn by_id(text: &str) -> Result<Self> {
        parse_id(text, "id")
            .map(Self::Id)
            .map_err(|v| Error::InvalidArgument(vec![v]))
    }

    pub fn by_keys(pairs: BTreeMap<String, String>) -> Result<Self> {
        Keys::parse(pairs, &FieldPath::field("keys"), true)
            .map(Self::Keys)
            .map_err(Error::InvalidArgument)
    }
}

/// What an upsert does to a user's memberships.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MembershipChange {
    #[default]
    Keep,
    Add(CompanyRef),
    Replace(Vec<CompanyRef>),
}

/// A user or company upsert as sent.
#[derive(Debug, Clone, Default)]
pub struct UpsertInput {
    pub id: Option<String>,
    pub keys: BTreeMap<String, String>,
    pub name: Option<String>,
    pub traits: Map<String, Value>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub update_only: bool,
}

/// The memberships part of a user upsert, as sent.
#[derive(Debug, Clone, Default)]
pub struct MembershipInput {
    pub company: Option<BTreeMap<String, String>>,
    pub company_id: Option<String>,
    pub companies: Vec<BTreeMap<String, String>>,
    pub company_ids: Vec<String>,
    pub replace: bool,
}

/// A valid user or company upsert.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub id: Option<Uuid>,
    pub keys: Keys,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    pub traits: Map<String, Value>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub update_only: bool,
    pub memberships: MembershipChange,
}

fn parse_id(text: &str, field: impl Into<FieldPath>) -> Result<Uuid, FieldViolation> {
    Uuid::try_parse(text).map_err(|_| FieldViolation::new(field, "must be a UUID"))
}

impl Upsert {
    /// An upsert that only names the record: what a trait change creates
    /// when no user has its keys.
    pub fn of_keys(keys: Keys) -> Self {
        Self {
            id: None,
            keys,
            name: None,
            traits: Map::new(),
            last_seen_at: None,
            update_only: false,
            memberships: MembershipChange::Keep,
        }
    }

    pub fn parse(input: UpsertInput, memberships: MembershipInput) -> Result<Self> {
        let mut v = Violations::default();
        let id = input
            .id
            .as_deref()
            .and_then(|id| v.check(parse_id(id, "id")));
        let keys = Keys::parse(input.keys, &FieldPath::field("keys"), input.id.is_none())
            .map_err(|e| v.extend(e))
            .ok();
        let name = match input.name {
            None => None,
            Some(name) if name.is_empty() => Some(None),
            Some(name) => v
                .check(
                    bounded_text(&name, MAX_NAME_CHARS)
                        .map_err(|why| FieldViolation::new("name", why)),
                )
                .map(|()| Some(name)),
        };
        let traits = parse_traits(input.traits, &FieldPath::field("traits"))
            .map_err(|e| v.extend(e))
            .ok();
        let memberships = parse_memberships(&mut v, memberships);
        match (keys, traits) {
            (Some(keys), Some(traits)) if v.is_empty() => Ok(Self {
                id,
                keys,
                name,
                traits,
                last_seen_at: input.last_seen_at,
                update_only: input.update_only,
                memberships,
            }),
            _ => Err(Error::InvalidArgument(v.into_vec())),
        }
    }
}

/// A company upsert: the upsert's own fields, and what they set in the
/// company's customer.
#[derive(Debug, Clone)]
pub struct CompanyUpsert {
    pub upsert: Upsert,
    pub fields: CompanyFields,
}

impl CompanyUpsert {
    pub fn parse(input: UpsertInput) -> Result<Self> {
        let upsert = Upsert::parse(input, MembershipInput::default())?;
        let fields = CompanyFields::parse(
            &upsert.keys,
            &FieldPath::field("keys"),
            upsert.name.as_ref(),
        )
        .map_err(Error::InvalidArgument)?;
        Ok(Self { upsert, fields })
    }
}

/// `company` / `company_id` add one membership and win over the exhaustive
/// `companies` / `company_ids`.
fn parse_memberships(v: &mut Violations, input: MembershipInput) -> MembershipChange {
    if let Some(keys) = input.company {
        return CompanyKeys::parse(keys, &FieldPath::field("company"))
            .map_err(|e| v.extend(e))
            .map_or(MembershipChange::Keep, |keys| {
                MembershipChange::Add(CompanyRef::Keys(keys))
            });
    }
    if let Some(id) = input.company_id {
        return v
            .check(parse_id(&id, "company_id"))
            .map_or(MembershipChange::Keep, |id| {
                MembershipChange::Add(CompanyRef::Id(id))
            });
    }
    if !input.replace {
        return MembershipChange::Keep;
    }
    if input.companies.len() > MAX_COMPANIES || input.company_ids.len() > MAX_COMPANIES {
        v.push(FieldViolation::new(
            "companies",
            format!("at most {MAX_COMPANIES} companies"),
        ));
        return MembershipChange::Keep;
    }
    let mut refs = Vec::new();
    for (i, keys) in input.companies.into_iter().enumerate() {
        if let Ok(keys) = CompanyKeys::parse(keys, &FieldPath::field("companies").index(i))
            .map_err(|e| v.extend(e))
        {
            refs.push(CompanyRef::Keys(keys));
        }
    }
    for (i, id) in input.company_ids.iter().enumerate() {
        if let Some(id) = v.check(parse_id(id, FieldPath::field("company_ids").index(i))) {
            refs.push(CompanyRef::Id(id));
        }
    }
    MembershipChange::Replace(refs)
}

/// Which stored record an upsert updates, given the owners of the keys it
/// sent (`owners`: key name → owning record). Keys naming two records are
/// an error, never a merge; with an `id`, keys owned by another record are
/// too.
pub fn resolve(
    id: Option<Uuid>,
    owners: &BTreeMap<String, Uuid>,
    noun: &str,
) -> Result<Option<Uuid>> {
    if let Some(id) = id {
        let foreign: Vec<_> = owners
            .iter()
            .filter(|(_, owner)| **owner != id)
            .map(|(key, _)| {
                FieldViolation::new(
                    FieldPath::field("keys").key(key),
                    format!("belongs to another {noun}"),
                )
            })
            .collect();
        return if foreign.is_empty() {
            Ok(Some(id))
        } else {
            Err(Error::InvalidArgument(foreign))
        };
    }
    let mut distinct: Vec<Uuid> = owners.values().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Error::invalid(
            "keys",
            format!("the keys match more than one {noun}"),
        )),
    }
}

/// The keys a record holds after an upsert: sent keys are added or
/// re-pointed, the others kept.
pub fn merge_keys(stored: &Keys, sent: &Keys) -> Keys {
    let mut merged = stored.0.clone();
    merged.extend(sent.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    Keys(merged)
}

/// The user after an upsert (a new one when `current` is `None`).
pub fn apply_user(current: Option<User>, upsert: &Upsert, now: DateTime<Utc>) -> User {
    let mut user = current.unwrap_or_else(|| User {
        id: super::new_id(),
        name: None,
        keys: Keys::default(),
        traits: Map::new(),
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    });
    user.keys = merge_keys(&user.keys, &upsert.keys);
    if let Some(name) = &upsert.name {
        user.name.clone_from(name);
    }
    merge_traits(&mut user.traits, &upsert.traits);
    if upsert.last_seen_at.is_some() {
        user.last_seen_at = upsert.last_seen_at;
    }
    user.updated_at = now;
    user
}

/// One atomic change of one trait.
#[derive(Debug, Clone, PartialEq)]
pub enum TraitChange {
    Incr(i64),
    Set(String),
}

/// A trait change as sent.
#[derive(Debug, Clone)]
pub struct TraitChangeInput {
    pub keys: BTreeMap<String, String>,
    pub name: String,
    pub change: Option<TraitChange>,
    pub update_only: bool,
}

#[derive(Debug, Clone)]
pub struct TraitUpdate {
    pub keys: Keys,
    pub name: String,
    pub change: TraitChange,
    pub update_only: bool,
}

impl TraitUpdate {
    pub fn parse(input: TraitChangeInput) -> Result<Self> {
        let mut v = Violations::default();
        let keys = Keys::parse(input.keys, &FieldPath::field("keys"), true)
            .map_err(|e| v.extend(e))
            .ok();
        let len = input.name.chars().count();
        if len == 0 || len > MAX_TRAIT_NAME_CHARS {
            v.push(FieldViolation::new(
                "trait",
                format!("must be 1 to {MAX_TRAIT_NAME_CHARS} characters"),
            ));
        } else if let Err(why) = storable_text(&input.name) {
            v.push(FieldViolation::new("trait", why));
        }
        match &input.change {
            None => v.push(FieldViolation::new(
                "incr",
                "set either incr or set, not both",
            )),
            Some(TraitChange::Set(s)) => {
                if let Err(why) = storable_text(s) {
                    v.push(FieldViolation::new("set", why));
                } else if s.chars().count() > MAX_TRAIT_STRING_CHARS {
                    v.push(FieldViolation::new(
                        "set",
                        format!("must be at most {MAX_TRAIT_STRING_CHARS} characters"),
                    ));
                }
            }
            Some(_) => {}
        }
        match (keys, input.change) {
            (Some(keys), Some(change)) if v.is_empty() => Ok(Self {
                keys,
                name: input.name,
                change,
                update_only: input.update_only,
            }),
            _ => Err(Error::InvalidArgument(v.into_vec())),
        }
    }

    /// Applies the change to stored traits. Adding to a trait that is not
    /// an integer is refused rather than guessed at.
    pub fn apply(&self, traits: &mut Map<String, Value>) -> Result<()> {
        let value = match &self.change {
            TraitChange::Set(s) => Value::String(s.clone()),
            TraitChange::Incr(by) => {
                let current = match traits.get(&self.name) {
                    None | Some(Value::Null) => 0,
                    Some(value) => value.as_i64().ok_or_else(|| {
                        Error::invalid("trait", format!("'{}' is not an integer trait", self.name))
                    })?,
                };
                let next = current.checked_add(*by).ok_or_else(|| {
                    Error::invalid("incr", "the trait would overflow a 64-bit integer")
                })?;
                Value::from(next)
            }
        };
        traits.insert(self.name.clone(), value);
        Ok(())
    }
}

/// A change of one company trait, and the company it creates when no
/// company has the keys.
#[derive(Debug, Clone)]
pub struct CompanyTraitUpdate {
    pub update: TraitUpdate,
    pub fields: CompanyFields,
}

impl CompanyTraitUpdate {
    pub fn parse(input: TraitChangeInput) -> Result<Self> {
        let update = TraitUpdate::parse(input)?;
        let fields = CompanyFields::parse(&update.keys, &FieldPath::field("keys"), None)
            .map_err(Error::InvalidArgument)?;
        Ok(Self { update, fields })
    }
}

/// A customer's member as seed 003 shows it: the membership, with the
/// member user's email, name and external id.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub membership: Membership,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

impl Member {
    pub fn of(membership: Membership, user: &User) -> Self {
        Self {
            email: user.keys.get(MEMBER_EMAIL_KEY).map(str::to_owned),
            external_id: user.keys.get(MEMBER_EXTERNAL_ID_KEY).map(str::to_owned),
            name: user.name.clone(),
            membership,
        }
    }

    /// Whether a user's change from `before` to `after` shows in the
    /// members it is.
    pub fn shows_change(before: &User, after: &User) -> bool {
        let shown = |user: &User| {
            (
                user.keys.get(MEMBER_EMAIL_KEY).map(str::to_owned),
                user.keys.get(MEMBER_EXTERNAL_ID_KEY).map(str::to_owned),
                user.name.clone(),
            )
        };
        shown(before) != shown(after)
    }
}

/// How a call names a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserLookup {
    Id(Uuid),
    Keys(Keys),
}

impl UserLookup {
    pub fn by_id(text: &str) -> Result<Self> {
        parse_id(text, "id")
            .map(Self::Id)
            .map_err(|v| Error::InvalidArgument(vec![v]))
    }

    pub fn by_keys(pairs: BTreeMap<String, String>) -> Result<Self> {
        Keys::parse(pairs, &FieldPath::field("keys"), true)
            .map(Self::Keys)
            .map_err(Error::InvalidArgument)
    }
}

pub fn parse_uuid(text: &str, field: &'static str) -> Result<Uuid> {
    parse_id(text, field).map_err(|v| Error::InvalidArgument(vec![v]))
}

/// An id that may be left out: empty text means "not given".
pub fn parse_optional_uuid(text: &str, field: &'static str) -> Result<Option<Uuid>> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_uuid(text, field).map(Some)
    }
}

/// The most ids an `ids` filter takes (Schematic's limit).
pub const MAX_FILTER_IDS: usize = 100;

/// An `ids` filter: each a UUID, at most `MAX_FILTER_IDS` of them.
pub fn parse_id_filter(ids: &[String], field: &'static str) -> Result<Vec<Uuid>> {
    if ids.len() > MAX_FILTER_IDS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_FILTER_IDS} ids, got {}", ids.len()),
        ));
    }
    ids.iter().map(|id| parse_uuid(id, field)).collect()
}

/// A user listing: every user, or the members of one company; those
/// matching a search; those with these ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub company: Option<Uuid>,
    /// Text the name or one of the key values contains.
    pub query: Option<SearchQuery>,
    /// Only these users; empty: no filter.
    pub ids: Vec<Uuid>,
}

impl UserFilter {
    /// The members of `company`, every one.
    pub fn of_company(company: Uuid) -> Self {
        Self {
            company: Some(company),
            ..Self::default()
        }
    }

    /// The filter of a listing whose search text is in the field
    /// `query_field`.
    pub fn parse(company_id: &str, query_field: &'static str, query: &str) -> Result<Self> {
        let mut v = Violations::default();
        let company = (!company_id.is_empty())
            .then(|| v.check(parse_id(company_id, "company_id")))
            .flatten();
        let query = v.check(SearchQuery::parse(query_field, query)).flatten();
        v.finish(
            Self {
                company,
                query,
                ids: Vec::new(),
            },
            Error::InvalidArgument,
        )
    }

    /// What page tokens are bound to.
    pub fn canonical(&self, workspace: super::WorkspaceId) -> String {
        let mut out = format!("users|{workspace}|{}|", optional(self.company));
        if let Some(query) = &self.query {
            out.push_str(query.as_str());
        }
        for id in &self.ids {
            let _ = write!(out, "|{id}");
        }
        out
    }
}

/// A membership listing: a company's, a user's, or one user's in one
/// company. Listing every membership at once is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipFilter {
    pub company: Option<Uuid>,
    pub user: Option<Uuid>,
}

impl MembershipFilter {
    /// The memberships of one company (customer).
    pub fn of_company(company: Uuid) -> Self {
        Self {
            company: Some(company),
            user: None,
        }
    }

    pub fn parse(company_id: &str, user_id: &str) -> Result<Self> {
        let company = parse_optional_uuid(company_id, "company_id")?;
        let user = parse_optional_uuid(user_id, "user_id")?;
        if company.is_none() && user.is_none() {
            return Err(Error::invalid(
                "company_id",
                "set company_id, user_id or both",
            ));
        }
        Ok(Self { company, user })
    }

    /// What page tokens are bound to.
    pub fn canonical(&self, workspace: super::WorkspaceId) -> String {
        format!(
            "memberships|{workspace}|{}|{}",
            optional(self.company),
            optional(self.user)
        )
    }
}

fn optional(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_two_records_are_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let owners = BTreeMap::from([("email".to_owned(), a), ("user_id".to_owned(), b)]);
        assert!(resolve(None, &owners, "user").is_err());
        let one = BTreeMap::from([("email".to_owned(), a), ("user_id".to_owned(), a)]);
        assert_eq!(resolve(None, &one, "user").unwrap(), Some(a));
        assert_eq!(resolve(None, &BTreeMap::new(), "user").unwrap(), None);
        let err = resolve(Some(a), &owners, "user").unwrap_err();
        assert_eq!(err.violations()[0].field.to_string(), "keys.user_id");
    }

    #[test]
    fn increments_are_exact_and_typed() {
        let mut traits = Map::new();
        let incr = |by| TraitUpdate {
            keys: Keys::default(),
            name: "seats".into(),
            change: TraitChange::Incr(by),
            update_only: false,
        };
        incr(5).apply(&mut traits).unwrap();
        incr(-2).apply(&mut traits).unwrap();
        assert_eq!(traits["seats"], Value::from(3));
        traits.insert("seats".into(), Value::from("many"));
        assert!(incr(1).apply(&mut traits).is_err());
        traits.insert("seats".into(), Value::from(i64::MAX));
        assert!(incr(1).apply(&mut traits).is_err());
    }

    #[test]
    fn a_single_company_wins_over_the_list() {
        let input = MembershipInput {
            company_id: Some(Uuid::nil().to_string()),
            company_ids: vec![Uuid::new_v4().to_string()],
            replace: true,
            ..MembershipInput::default()
        };
        let upsert = Upsert::parse(
            UpsertInput {
                keys: BTreeMap::from([("email".into(), "a@b.co".into())]),
                ..UpsertInput::default()
            },
            input,
        )
        .unwrap();
        assert_eq!(
            upsert.memberships,
            MembershipChange::Add(CompanyRef::Id(Uuid::nil()))
        );
    }
}
