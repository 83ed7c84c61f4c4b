//! Where in a request a problem is: a path of segments that the domain
//! builds and each transport renders in its own spelling.
//!
//! Segments are typed so a renderer can rename field names without ever
//! touching what a caller chose: a metadata key `parent_customer_id` stays
//! `parent_customer_id` in every family, whatever the family calls its
//! fields.

use std::borrow::Cow;
use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A field of a message or body, by its protobuf (snake_case) name.
    Field(Cow<'static, str>),
    /// A key of a map the caller filled (metadata, traits, keys).
    Key(String),
    /// A position in a list.
    Index(usize),
}

/// A path from the request (or from the resource it carries) to a value.
/// The empty path names the request as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path of one top-level field.
    pub fn field(name: impl Into<Cow<'static, str>>) -> Self {
        Self(vec![Segment::Field(name.into())])
    }

    /// This path, then a field.
    #[must_use]
    pub fn then(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.0.push(Segment::Field(name.into()));
        self
    }

    /// This path, then a map key.
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.push(Segment::Key(key.into()));
        self
    }

    /// This path, then a list position.
    #[must_use]
    pub fn index(mut self, position: usize) -> Self {
        self.0.push(Segment::Index(position));
        self
    }

    /// This path seen from an enclosing value: `country` under
    /// `billing_address` is `billing_address.country`.
    #[must_use]
    pub fn within(mut self, parent: &FieldPath) -> Self {
        let mut segments = parent.0.clone();
        segments.append(&mut self.0);
        Self(segments)
    }

    /// What follows `prefix`, if this path starts with it.
    pub fn strip_prefix(&self, prefix: &FieldPath) -> Option<FieldPath> {
        self.0
            .strip_prefix(prefix.0.as_slice())
            .map(|rest| Self(rest.to_vec()))
    }

    /// The first segment, when it is a position: `people[3].email` → 3.
    pub fn first_index(&self) -> Option<usize> {
        match self.0.first() {
            Some(Segment::Index(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path in dotted form, `people[3].traits.timezone`, with every field
    /// name passed through `rename` (map keys and positions never are).
    pub fn render(&self, rename: impl Fn(&str) -> Cow<'_, str>) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Field(name) => push_dotted(&mut out, &rename(name)),
                Segment::Key(key) => push_dotted(&mut out, key),
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

fn push_dotted(out: &mut String, part: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(part);
}

/// The protobuf spelling: field names as the `.proto` writes them.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(|name| Cow::Borrowed(name)))
    }
}

/// A field name written in code: one field segment. Build deeper paths with
/// `then`, `key` and `index`, never by formatting dots into a name.
impl From<&'static str> for FieldPath {
    fn from(name: &'static str) -> Self {
        Self::field(name)
    }
}

impl From<&FieldPath> for FieldPath {
    fn from(path: &FieldPath) -> Self {
        path.clone()
    }
}

/// snake_case to lowerCamelCase, as the proto3 JSON mapping and the
/// camelCase families spell field names.
pub fn lower_camel(name: &str) -> Cow<'_, str> {
    if !name.contains('_') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_fields_keys_and_positions() {
        let path = FieldPath::field("people")
            .index(3)
            .then("traits")
            .key("user_id_hash");
        assert_eq!(path.to_string(), "people[3].traits.user_id_hash");
        assert_eq!(path.render(lower_camel), "people[3].traits.user_id_hash");
        let camel = FieldPath::field("people").index(0).then("user_id");
        assert_eq!(camel.render(lower_camel), "people[0].userId");
    }

    #[test]
    fn paths_nest_and_unnest() {
        let inner = FieldPath::field("country");
        let outer = inner.within(&FieldPath::field("billing_address"));
        assert_eq!(outer.to_string(), "billing_address.country");
        assert_eq!(
            outer.strip_prefix(&FieldPath::field("billing_address")),
            Some(FieldPath::field("country"))
        );
        assert_eq!(outer.strip_prefix(&FieldPath::field("metadata")), None);
    }
}
