//! Customers and the rules of seed 003 (Rapidly, modelled on Polar).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::search::{SearchDocument, SearchQuery};
use super::{Change, WorkspaceId, bounded_text, storable_text};
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
pub const MAX_METADATA_PAIRS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_STRING_CHARS: usize = 500;
pub const MAX_ADDRESS_LINE_CHARS: usize = 256;

/// Countries refused for billing, as the Polar API this follows refuses them.
pub const EMBARGOED_COUNTRIES: [&str; 5] = ["CU", "IR", "KP", "SY", "RU"];

/// A syntactically valid email address with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, FieldViolation> {
        let invalid = |why: &str| FieldViolation::new("email", why);
        if text.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid("must be at most 254 characters"));
        }
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            ..email_address::Options::default()
        };
        email_address::EmailAddress::parse_with_options(text, options)
            .map_err(|_| invalid("must be a valid email address"))?;
        Ok(Self(text.to_owned()))
    }

    /// For values read back from the store, which were parsed when written.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: two emails that differ only in case
    /// are the same customer.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// Gravatar URL for the address; `d=404` makes unknown faces a 404 rather
    /// than a generic picture, so clients can fall back themselves.
    pub fn avatar_url(&self) -> String {
        let hash = Sha256::digest(self.key().trim().as_bytes());
        format!("https://www.gravatar.com/avatar/{hash:x}?d=404")
    }
}

/// A customer's display name: 1 to 256 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    /// An empty name means "no name".
    pub fn parse(text: &str) -> Result<Option<Self>, FieldViolation> {
        if text.is_empty() {
            return Ok(None);
        }
        bounded_text(text, MAX_NAME_CHARS).map_err(|why| FieldViolation::new("name", why))?;
        Ok(Some(Self(text.to_owned())))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The customer's id in the caller's system: 1 to 255 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    /// An empty external id means "none".
    pub fn parse(text: &str) -> Result<Option<Self>, FieldViolation> {
        if text.is_empty() {
            return Ok(None);
        }
        bounded_text(text, MAX_EXTERNAL_ID_CHARS)
            .map_err(|why| FieldViolation::new("external_id", why))?;
        Ok(Some(Self(text.to_owned())))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerType {
    /// Also what an unset type reads as.
    #[default]
    Individual,
    Team,
}

impl CustomerType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Individual => "individual",
            Self::Team => "team",
        }
    }

    pub fn from_stored(text: &str) -> Self {
        if text == "team" {
            Self::Team
        } else {
            Self::Individual
        }
    }
}

/// One metadata value. Serialised untagged, so stored JSON reads naturally
/// (`{"plan": "pro", "seats": 3}`) and types survive the round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetadataValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

/// At most 50 pairs; keys of 1 to 40 characters; values strings of 1 to 500
/// characters, integers, finite floats or booleans.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, MetadataValue>);

impl Metadata {
    pub fn parse(pairs: BTreeMap<String, MetadataValue>) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if pairs.len() > MAX_METADATA_PAIRS {
            violations.push(FieldViolation::new(
                "metadata",
                format!(
                    "must have at most {MAX_METADATA_PAIRS} pairs, got {}",
                    pairs.len()
                ),
            ));
        }
        for (key, value) in &pairs {
            let field = FieldPath::field("metadata").key(key);
            let key_chars = key.chars().count();
            if key_chars == 0 || key_chars > MAX_METADATA_KEY_CHARS {
                violations.push(FieldViolation::new(
                    &field,
                    format!("key must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
                ));
            }
            match value {
                MetadataValue::String(s)
                    if s.is_empty() || s.chars().count() > MAX_METADATA_STRING_CHARS =>
                {
                    violations.push(FieldViolation::new(
                        &field,
                        format!(
                            "string values must be 1 to {MAX_METADATA_STRING_CHARS} characters"
                        ),
                    ));
                }
                MetadataValue::Float(f) if !f.is_finite() => {
                    violations.push(FieldViolation::new(&field, "floats must be finite"));
                }
                _ => {}
            }
            let stored = storable_text(key).and_then(|()| match value {
                MetadataValue::String(s) => storable_text(s),
                _ => Ok(()),
            });
            if let Err(why) = stored {
                violations.push(FieldViolation::new(&field, why));
            }
        }
        if violations.is_empty() {
            Ok(Self(pairs))
        } else {
            Err(violations)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &MetadataValue)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A postal address whose country is a supported ISO 3166-1 alpha-2 code and
/// whose US or Canadian state is a real ISO 3166-2 subdivision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingAddress {
    country: String,
    line1: Option<String>,
    line2: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
}

/// An address as a caller sent it, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressInput {
    pub country: String,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
}

impl BillingAddress {
    /// Violations are relative to the address (`country`, `state`).
    pub fn parse(input: AddressInput) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Violations::default();
        let country = violations.check(parse_country(&input.country));
        let mut line = |field: &'static str, value: Option<String>| {
            let value = value.filter(|v| !v.is_empty())?;
            violations
                .check(
                    bounded_text(&value, MAX_ADDRESS_LINE_CHARS)
                        .map_err(|why| FieldViolation::new(field, why)),
                )
                .map(|()| value)
        };
        let line1 = line("line1", input.line1);
        let line2 = line("line2", input.line2);
        let postal_code = line("postal_code", input.postal_code);
        let city = line("city", input.city);
        let state = line("state", input.state);
        let state = match (&country, state) {
            (Some(country), Some(state)) => violations.check(parse_state(country, &state)),
            (_, state) => state,
        };
        match country {
            Some(country) if violations.is_empty() => Ok(Self {
                country,
                line1,
                line2,
                postal_code,
                city,
                state,
            }),
            _ => Err(violations.into_vec()),
        }
    }

    pub fn country(&self) -> &str {
        &self.country
    }

    pub fn lines(&self) -> AddressInput {
        AddressInput {
            country: self.country.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            postal_code: self.postal_code.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
        }
    }
}

fn parse_country(text: &str) -> Result<String, FieldViolation> {
    let code = text.trim().to_ascii_uppercase();
    if code.is_empty() {
        return Err(FieldViolation::new("country", "is required"));
    }
    if rust_iso3166::from_alpha2(&code).is_none() {
        return Err(FieldViolation::new(
            "country",
            format!("'{text}' is not an ISO 3166-1 alpha-2 country code"),
        ));
    }
    if EMBARGOED_COUNTRIES.contains(&code.as_str()) {
        return Err(FieldViolation::new(
            "country",
            format!("billing addresses in {code} are not supported"),
        ));
    }
    Ok(code)
}

/// US and CA states must be real subdivisions and are stored as `US-XX`;
/// other countries' states are free text.
fn parse_state(country: &str, state: &str) -> Result<String, FieldViolation> {
    if !matches!(country, "US" | "CA") {
        return Ok(state.to_owned());
    }
    let upper = state.trim().to_ascii_uppercase();
    let code = if upper.starts_with(&format!("{country}-")) {
        upper
    } else {
        format!("{country}-{upper}")
    };
    if rust_iso3166::iso3166_2::from_code(&code).is_some() {
        Ok(code)
    } else {
        let kind = if country == "US" {
            "US state"
        } else {
            "CA subdivision"
        };
        Err(FieldViolation::new(
            "state",
            format!("'{state}' is not a valid {kind}"),
        ))
    }
}

/// A customer as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: Uuid,
    pub workspace_id: WorkspaceId,
    pub external_id: Option<ExternalId>,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub name: Option<CustomerName>,
    pub billing_address: Option<BillingAddress>,
    pub metadata: Metadata,
    pub kind: CustomerType,
    pub created_at: DateTime<Utc>,
    pub modified_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Customer {
    /// What a search finds the customer by: name and email contain the
    /// text, the external id starts with it. (A company's key values are
    /// searched as well, from the keys' own rows.)
    pub fn search_document(&self) -> SearchDocument {
        SearchDocument::keyed(self.external_id.as_ref().map(ExternalId::as_str))
            .field(self.name.as_ref().map(CustomerName::as_str))
            .field(self.email.as_ref().map(Email::as_str))
    }

    /// The customer behind a company that a user upsert or a trait change
    /// names by keys before it exists: a team, with the company's external
    /// id and name.
    pub fn new_company(
        workspace_id: WorkspaceId,
        external_id: Option<ExternalId>,
        name: Option<CustomerName>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: super::new_id(),
            workspace_id,
            external_id,
            email: None,
            email_verified: false,
            name,
            billing_address: None,
            metadata: Metadata::default(),
            kind: CustomerType::Team,
            created_at: now,
            modified_at: None,
            deleted_at: None,
        }
    }

    pub fn avatar_url(&self) -> Option<String> {
        self.email.as_ref().map(Email::avatar_url)
    }

    /// Applies `patch` under seed 003's transition rules, collecting every
    /// refused change. `modified_at` moves only when something changed.
    pub fn apply(&self, patch: &CustomerPatch, now: DateTime<Utc>) -> Result<Customer> {
        let mut next = self.clone();
        let mut refused = Violations::default();

        match &patch.external_id {
            Change::Keep => {}
            Change::Set(new) if self.external_id.is_none() => next.external_id = Some(new.clone()),
            Change::Set(new) if self.external_id.as_ref() == Some(new) => {}
            Change::Clear if self.external_id.is_none() => {}
            Change::Set(_) | Change::Clear => refused.push(FieldViolation::new(
                "external_id",
                "Customer external ID cannot be updated.",
            )),
        }

        match patch.kind {
            Change::Keep => {}
            Change::Set(CustomerType::Team) => next.kind = CustomerType::Team,
            Change::Set(CustomerType::Individual) | Change::Clear => {
                if self.kind == CustomerType::Team {
                    refused.push(FieldViolation::new(
                        "type",
                        "Customer type cannot be downgraded from 'team' to 'individual'.",
                    ));
                }
            }
        }

        match &patch.billing_address {
            Change::Keep => {}
            Change::Set(address) => next.billing_address = Some(address.clone()),
            Change::Clear if self.billing_address.is_none() => {}
            Change::Clear => refused.push(FieldViolation::new(
                "billing_address",
                "Customer billing address cannot be reset to null once set.",
            )),
        }

        if let Some(email) = &patch.email
            && self.email.as_ref() != Some(email)
        {
            next.email = Some(email.clone());
            next.email_verified = false;
        }
        match &patch.name {
            Change::Keep => {}
            Change::Set(name) => next.name = Some(name.clone()),
            Change::Clear => next.name = None,
        }
        if let Some(metadata) = &patch.metadata {
            next.metadata = metadata.clone();
        }

        if next != *self {
            next.modified_at = Some(now);
        }
        refused.finish(next, Error::ForbiddenTransition)
    }
}

/// A customer as the service returns it: with its members.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerDetail {
    pub customer: Customer,
    pub members: Vec<crate::domain::user::Member>,
}

/// The fields a caller sends to create or change a customer, unchecked.
/// `None` means "not sent".
#[derive(Debug, Clone, Default)]
pub struct CustomerInput {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub billing_address: Option<AddressInput>,
    pub metadata: Option<BTreeMap<String, MetadataValue>>,
    pub kind: Option<CustomerType>,
}

/// A valid customer, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub external_id: Option<ExternalId>,
    pub email: Option<Email>,
    pub name: Option<CustomerName>,
    pub billing_address: Option<BillingAddress>,
    pub metadata: Metadata,
    pub kind: CustomerType,
}

impl NewCustomer {
    pub fn parse(input: CustomerInput) -> Result<Self> {
        let mut v = Violations::default();
        let external_id = input
            .external_id
            .and_then(|id| v.check(ExternalId::parse(&id)).flatten());
        let email_sent = input.email.as_deref().is_some_and(|e| !e.is_empty());
        let email = input
            .email
            .filter(|e| !e.is_empty())
            .and_then(|e| v.check(Email::parse(&e)));
        let name = input
            .name
            .and_then(|n| v.check(CustomerName::parse(&n)).flatten());
        let billing_address = input.billing_address.and_then(|a| check_address(&mut v, a));
        let metadata = input
            .metadata
            .map(|m| check_metadata(&mut v, m))
            .unwrap_or_else(|| Some(Metadata::default()));
        let kind = input.kind.unwrap_or_default();
        if !email_sent && kind == CustomerType::Individual {
            v.push(FieldViolation::new(
                "email",
                "is required for individual customers",
            ));
        }
        let metadata = metadata.unwrap_or_default();
        v.finish(
            Self {
                external_id,
                email,
                name,
                billing_address,
                metadata,
                kind,
            },
            Error::InvalidArgument,
        )
    }

    pub fn into_customer(self, workspace_id: WorkspaceId, now: DateTime<Utc>) -> Customer {
        Customer {
            id: super::new_id(),
            workspace_id,
            external_id: self.external_id,
            email: self.email,
            email_verified: false,
            name: self.name,
            billing_address: self.billing_address,
            metadata: self.metadata,
            kind: self.kind,
            created_at: now,
            modified_at: None,
            deleted_at: None,
        }
    }
}

/// A caller's partial update, unchecked: each field says whether to keep,
/// set or clear it.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatchInput {
    pub external_id: Change<String>,
    pub email: Change<String>,
    pub name: Change<String>,
    pub billing_address: Change<AddressInput>,
    pub metadata: Change<BTreeMap<String, MetadataValue>>,
    pub kind: Change<CustomerType>,
}

/// A valid partial update; whether it is allowed depends on the customer it
/// is applied to (`Customer::apply`).
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub external_id: Change<ExternalId>,
    pub email: Option<Email>,
    pub name: Change<CustomerName>,
    pub billing_address: Change<BillingAddress>,
    pub metadata: Option<Metadata>,
    pub kind: Change<CustomerType>,
}

impl CustomerPatch {
    /// Checks every field of an update of the customer `lookup` names. An
    /// update addressed by external id may not name the external id or the
    /// type at all (seed 003's `CustomerUpdateExternalID`): the address
    /// would be changing under the caller.
    pub fn parse(input: CustomerPatchInput, lookup: &CustomerLookup) -> Result<Self> {
        let mut v = Violations::default();
        let named = [
            ("external_id", !matches!(input.external_id, Change::Keep)),
            ("type", !matches!(input.kind, Change::Keep)),
        ];
        for (field, _) in named
            .iter()
            .filter(|(field, named)| *named && lookup.fixed_fields().contains(field))
        {
            v.push(FieldViolation::new(
                *field,
                "cannot be changed when updating by external id",
            ));
        }
        // Empty strings read as unset, as in seed 003.
        let optional = |change: Change<String>| match change {
            Change::Set(s) if s.is_empty() => Change::Clear,
            other => other,
        };
        let external_id = optional(input.external_id)
            .try_map(|id| ExternalId::parse(&id).map(|id| id.expect("non-empty")));
        let external_id = v.check(external_id).unwrap_or_default();
        // An email cannot be removed: as in seed 003, a null email means
        // "no change".
        let email = match input.email {
            Change::Keep | Change::Clear => None,
            Change::Set(email) => v.check(Email::parse(&email)),
        };
        let name = optional(input.name)
            .try_map(|name| CustomerName::parse(&name).map(|name| name.expect("non-empty")));
        let name = v.check(name).unwrap_or_default();
        let billing_address = match input.billing_address {
            Change::Keep => Change::Keep,
            Change::Clear => Change::Clear,
            Change::Set(a) => check_address(&mut v, a).map_or(Change::Keep, Change::Set),
        };
        let metadata = match input.metadata {
            Change::Keep => None,
            Change::Clear => Some(Metadata::default()),
            Change::Set(m) => check_metadata(&mut v, m),
        };
        v.finish(
            Self {
                external_id,
                email,
                name,
                billing_address,
                metadata,
                kind: input.kind,
            },
            Error::InvalidArgument,
        )
    }
}

fn check_address(v: &mut Violations, input: AddressInput) -> Option<BillingAddress> {
    BillingAddress::parse(input)
        .map_err(|errors| {
            v.extend(
                errors
                    .into_iter()
                    .map(|e| e.within(&FieldPath::field("billing_address"))),
            )
        })
        .ok()
}

fn check_metadata(v: &mut Violations, pairs: BTreeMap<String, MetadataValue>) -> Option<Metadata> {
    Metadata::parse(pairs)
        .map_err(|errors| v.extend(errors))
        .ok()
}

/// How a caller names one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerLookup {
    Id(Uuid),
    ExternalId(ExternalId),
}

impl CustomerLookup {
    pub fn by_id(text: &str) -> Result<Self> {
        Uuid::try_parse(text)
            .map(Self::Id)
            .map_err(|_| Error::invalid("id", "must be a UUID"))
    }

    pub fn by_external_id(text: &str) -> Result<Self> {
        match ExternalId::parse(text) {
            Ok(Some(id)) => Ok(Self::ExternalId(id)),
            Ok(None) => Err(Error::invalid("external_id", "must not be empty")),
            Err(violation) => Err(Error::InvalidArgument(vec![violation])),
        }
    }

    /// The fields an update addressed this way may not change.
    pub fn fixed_fields(&self) -> &'static [&'static str] {
        match self {
            Self::Id(_) => &[],
            Self::ExternalId(_) => &["external_id", "type"],
        }
    }
}

/// The filters of a customer listing; every one that is set must match.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub email: Option<Email>,
    pub external_id: Option<ExternalId>,
    pub metadata: Vec<(String, MetadataValue)>,
    /// Text the name, the email or a company key value contains, or the
    /// external id starts with.
    pub query: Option<SearchQuery>,
    pub kind: Option<CustomerType>,
    /// Only these customers (Schematic's `ids`); empty: no filter.
    pub ids: Vec<Uuid>,
}

/// A customer listing's filters as a request spells them, unchecked.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilterInput<'a> {
    pub email: &'a str,
    pub external_id: &'a str,
    pub metadata: BTreeMap<String, MetadataValue>,
    /// The search text, and the request field it came in.
    pub query: (&'static str, &'a str),
}

impl CustomerFilter {
    pub fn parse(input: CustomerFilterInput<'_>) -> Result<Self> {
        let mut v = Violations::default();
        let email = (!input.email.is_empty())
            .then(|| v.check(Email::parse(input.email)))
            .flatten();
        let external_id = v.check(ExternalId::parse(input.external_id)).flatten();
        let metadata = check_metadata(&mut v, input.metadata).unwrap_or_default();
        let (query_field, query) = input.query;
        let query = v.check(SearchQuery::parse(query_field, query)).flatten();
        v.finish(
            Self {
                email,
                external_id,
                metadata: metadata.0.into_iter().collect(),
                query,
                kind: None,
                ids: Vec::new(),
            },
            Error::InvalidArgument,
        )
    }

    /// A canonical rendering of the filter, which page tokens are bound to.
    pub fn canonical(&self, workspace: WorkspaceId) -> String {
        let mut out = format!("customers|{workspace}|");
        if let Some(email) = &self.email {
            let _ = write!(out, "email={}|", email.key());
        }
        if let Some(id) = &self.external_id {
            let _ = write!(out, "external_id={}|", id.as_str());
        }
        for (key, value) in &self.metadata {
            let _ = write!(out, "metadata.{key}={value:?}|");
        }
        if let Some(query) = &self.query {
            let _ = write!(out, "query={}|", query.as_str());
        }
        if let Some(kind) = self.kind {
            let _ = write!(out, "kind={}|", kind.as_str());
        }
        for id in &self.ids {
            let _ = write!(out, "id={id}|");
        }
        out
    }
}
