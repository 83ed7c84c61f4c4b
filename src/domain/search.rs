//! Text search, decided here so that SQLite and PostgreSQL agree by
//! construction: each record stores a search document folded in Rust, each
//! query is folded the same way, and the database only compares the two with
//! `LIKE` and escaped wildcards, which both backends evaluate alike on text
//! that has no case left in it.

use std::borrow::Cow;
use std::fmt::Write as _;

use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizer;

use crate::domain::bounded_text;
use crate::error::FieldViolation;

/// Bumped whenever `fold` or the fields a document holds change: rows stored
/// at an older version have their documents rebuilt at start-up.
pub const SEARCH_VERSION: i64 = 1;

/// Between two fields of a document. A query may not hold control
/// characters, so no query can match across a field's end.
pub const FIELD_SEPARATOR: char = '\u{1f}';

/// The longest query, in characters: Schematic's `q` limit, the largest
/// of the seeds'.
pub const MAX_QUERY_CHARS: usize = 512;

/// `text` with compatibility forms unified and every case difference
/// removed, for all of Unicode: `ÉLODIE`, `élodie` and `Élodie` fold alike,
/// as do `STRASSE` and `straße`, or a full-width `Ｋ` and `k`.
pub fn fold(text: &str) -> String {
    let nfkc = ComposingNormalizer::new_nfkc();
    // Folding can undo a normalization (and normalizing can expose new case),
    // so the Unicode NFKC_Casefold recipe is normalize, fold, normalize.
    let normalized = nfkc.normalize(text);
    let folded = CaseMapper::new().fold_string(&normalized);
    match nfkc.normalize(&folded) {
        Cow::Borrowed(same) => same.to_owned(),
        Cow::Owned(renormalized) => renormalized,
    }
}

/// What a record can be found by: a document of folded fields, each matched
/// by `contains`, and a key, matched from its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchDocument {
    text: String,
    key: String,
}

impl SearchDocument {
    /// A document whose `prefix_key` is matched from its start: an external
    /// id or an entity id.
    pub fn keyed(prefix_key: Option<&str>) -> Self {
        Self {
            text: String::new(),
            key: prefix_key.map(fold).unwrap_or_default(),
        }
    }

    /// Adds a field a query may be found inside; an absent or empty one adds
    /// nothing.
    #[must_use]
    pub fn field(mut self, value: Option<&str>) -> Self {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            // Every field is framed by separators, so that a field's start and
            // end are as visible as its middle.
            if self.text.is_empty() {
                self.text.push(FIELD_SEPARATOR);
            }
            let _ = write!(self.text, "{}{FIELD_SEPARATOR}", fold(value));
        }
        self
    }

    /// Adds each of `values` as a field.
    #[must_use]
    pub fn fields<'a>(self, values: impl IntoIterator<Item = &'a str>) -> Self {
        values
            .into_iter()
            .fold(self, |document, value| document.field(Some(value)))
    }

    /// The folded fields, as stored in a `search_text` column.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The folded key, as stored in a `search_key` column.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A caller's search text, folded: valid by construction, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery(String);

impl SearchQuery {
    /// The query `text` asks for under the request field `field`; `None`
    /// when it is empty, which asks for no filter.
    pub fn parse(field: &'static str, text: &str) -> Result<Option<Self>, FieldViolation> {
        bounded_text(text, MAX_QUERY_CHARS).map_err(|why| FieldViolation::new(field, why))?;
        // A pasted query's stray spaces would stop it matching at a field's
        // end.
        let folded = fold(text.trim());
        Ok((!folded.is_empty()).then_some(Self(folded)))
    }

    /// The folded text, which page tokens are bound to.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A `LIKE` pattern (with `\` as its escape) matching documents that
    /// contain the query inside one field.
    pub fn contains_pattern(&self) -> String {
        format!("%{}%", escape_like(&self.0))
    }

    /// A `LIKE` pattern (with `\` as its escape) matching keys that start
    /// with the query.
    pub fn prefix_pattern(&self) -> String {
        format!("{}%", escape_like(&self.0))
    }
}

/// `text` with `LIKE`'s wildcards and its escape character escaped, so that
/// each stands for itself.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_removes_case_for_all_of_unicode() {
        assert_eq!(fold("ÉLODIE"), fold("élodie"));
        assert_eq!(fold("STRASSE"), fold("straße"));
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"));
        assert_eq!(fold("Ｋith"), "kith");
        // Composed and decomposed accents are the same text.
        assert_eq!(fold("e\u{301}lodie"), fold("élodie"));
    }

    #[test]
    fn a_document_frames_each_field() {
        let document = SearchDocument::keyed(Some("CUS-1"))
            .field(Some("Ada"))
            .field(None)
            .field(Some(""))
            .field(Some("ADA@Example.com"));
        assert_eq!(document.text(), "\u{1f}ada\u{1f}ada@example.com\u{1f}");
        assert_eq!(document.key(), "cus-1");
    }

    #[test]
    fn a_query_is_folded_and_its_wildcards_escaped() {
        let query = SearchQuery::parse("query", "50%_OFF\\").unwrap().unwrap();
        assert_eq!(query.contains_pattern(), "%50\\%\\_off\\\\%");
        assert_eq!(query.prefix_pattern(), "50\\%\\_off\\\\%");
        assert_eq!(SearchQuery::parse("query", "").unwrap(), None);
    }

    #[test]
    fn a_query_cannot_hold_the_separator() {
        let error = SearchQuery::parse("query", "a\u{1f}b").unwrap_err();
        assert_eq!(error.field.to_string(), "query");
        assert!(SearchQuery::parse("query", &"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }
}
