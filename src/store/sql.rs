//! A statement as both backends run it: SQL text with `$N` placeholders
//! (which SQLite and PostgreSQL read alike) and the values bound to them.
//!
//! The store writes every query once, in this form; `dialect` turns it into
//! a sqlx query for whichever backend serves the call.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

/// One bound value. `None` binds SQL NULL of the variant's type.
#[derive(Debug, Clone)]
pub enum Value {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    /// Serialised JSON, bound as `jsonb` on PostgreSQL and text on SQLite.
    Json(Option<Box<RawValue>>),
    Bytes(Vec<u8>),
}

impl Value {
    /// `value` as JSON. Kith's stored values are maps with string keys,
    /// lists and scalars, which always serialise.
    pub fn json(value: &impl serde::Serialize) -> Self {
        Self::Json(Some(
            serde_json::value::to_raw_value(value).expect("stored values serialise as JSON"),
        ))
    }

    /// `value` as JSON, or a JSON-typed NULL.
    pub fn json_or_null(value: Option<&impl serde::Serialize>) -> Self {
        value.map_or(Self::Json(None), Self::json)
    }
}

impl From<Uuid> for Value {
    fn from(value: Uuid) -> Self {
        Self::Uuid(Some(value))
    }
}

impl From<Option<Uuid>> for Value {
    fn from(value: Option<Uuid>) -> Self {
        Self::Uuid(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Self {
        Self::Text(value.map(str::to_owned))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(Some(value))
    }
}

impl From<Option<DateTime<Utc>>> for Value {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Self::Time(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Self::Bytes(value.to_vec())
    }
}

/// A statement being written: text, the values its placeholders name, and
/// whether the backend should keep it prepared.
#[derive(Debug, Clone)]
pub struct Sql {
    text: String,
    values: Vec<Value>,
    prepared: bool,
}

impl Sql {
    /// A statement whose text is complete; its `$N` are bound in order by
    /// `bind`.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into().into_owned(),
            values: Vec::new(),
            prepared: true,
        }
    }

    /// Binds the next `$N` of the text.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn push_bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.values.len().to_string());
        self
    }

    /// Appends `$a, $b, …`, one placeholder per value.
    pub fn push_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// Appends `VALUES (…), (…)`: one row per item, its values pushed by
    /// `row` in column order.
    pub fn push_values<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Row<'_>, T),
    ) -> &mut Self {
        self.text.push_str("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.text.push_str(if i == 0 { "(" } else { ", (" });
            row(
                &mut Row {
                    sql: self,
                    first: true,
                },
                item,
            );
            self.text.push(')');
        }
        self
    }

    /// Runs the statement without keeping it prepared: for texts that vary
    /// with their input (lists of any length), which would crowd the
    /// statement cache, and for statements whose plan must not be cached
    /// while a table is small (a scan) and reused once it is large.
    #[must_use]
    pub fn unprepared(mut self) -> Self {
        self.prepared = false;
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn into_parts(self) -> (String, Vec<Value>, bool) {
        (self.text, self.values, self.prepared)
    }
}

/// One row of a `VALUES` list.
pub struct Row<'s> {
    sql: &'s mut Sql,
    first: bool,
}

impl Row<'_> {
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        if !self.first {
            self.sql.text.push_str(", ");
        }
        self.first = false;
        self.sql.push_bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_bound_values() {
        let mut sql = Sql::new("SELECT id FROM t WHERE a = $1").bind("x");
        sql.push(" AND b IN (").push_list([1_i64, 2]).push(")");
        assert_eq!(
            sql.text(),
            "SELECT id FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        let mut insert = Sql::new("INSERT INTO t (a, b) ");
        insert.push_values([(1_i64, true), (2, false)], |row, (a, b)| {
            row.bind(a).bind(b);
        });
        assert_eq!(
            insert.text(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
