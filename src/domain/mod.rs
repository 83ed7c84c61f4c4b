//! The rules of Kith, free of any wire format or SQL: value types that cannot
//! hold an invalid value, and the transitions records may make.

pub mod change;
pub mod customer;
pub mod entity;
pub mod page;
pub mod person;
pub mod search;
pub mod user;
pub mod webhook;
pub mod workspace;

use chrono::{DateTime, SubsecRound, Utc};

pub use workspace::{Caller, WorkspaceId};

/// The current time at the millisecond precision Kith stores and returns, so
/// a record reads back exactly as it was written on every backend.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A new record's id. Version 7 ids grow with time, so a new row lands at
/// the end of its primary-key index instead of on a random page of it, which
/// keeps large tables' inserts as cheap as small ones'.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// What a partial update does to one optional field.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    /// Leave the stored value alone.
    #[default]
    Keep,
    /// Store this value.
    Set(T),
    /// Remove the stored value.
    Clear,
}

impl<T> Change<T> {
    /// Applies a fallible parse to the new value, if there is one.
    pub fn try_map<U, E>(self, parse: impl FnOnce(T) -> Result<U, E>) -> Result<Change<U>, E> {
        Ok(match self {
            Self::Keep => Change::Keep,
            Self::Clear => Change::Clear,
            Self::Set(value) => Change::Set(parse(value)?),
        })
    }
}

/// Why a free-form key or value cannot be stored, if it cannot: PostgreSQL's
/// `text` and `jsonb` refuse U+0000, so the rule is the domain's and holds
/// on both backends. Other control characters are data here (a note may hold
/// a tab or a newline).
pub(crate) fn storable_text(text: &str) -> Result<(), &'static str> {
    if text.contains('\0') {
        Err("must not contain NUL characters")
    } else {
        Ok(())
    }
}

/// `storable_text` for every key and string inside a JSON value.
pub(crate) fn storable_json(value: &serde_json::Value) -> Result<(), &'static str> {
    match value {
        serde_json::Value::String(s) => storable_text(s),
        serde_json::Value::Array(items) => items.iter().try_for_each(storable_json),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| storable_text(k).and_then(|()| storable_json(v))),
        _ => Ok(()),
    }
}

/// A string of at most `max` characters with no control characters; the
/// common shape of names and identifiers.
pub(crate) fn bounded_text(value: &str, max: usize) -> Result<(), String> {
    let len = value.chars().count();
    if len > max {
        return Err(format!("must be at most {max} characters, got {len}"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}
