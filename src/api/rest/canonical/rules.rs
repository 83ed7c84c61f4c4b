//! The contract's `kith.v1.rules` field options as JSON Schema: what a
//! field accepts beyond its type, as `proto/kith/v1/rules.proto` declares
//! it. The named text formats take their schemas from `schemas.rs`, which
//! builds them from the domain's own constants, so a format means the same
//! on the seed routes and the contract's.

use prost_reflect::{DynamicMessage, ExtensionDescriptor, FieldDescriptor, Value};
use serde_json::{Value as Json, json};

use crate::api::rest::schemas;

/// `kith.v1.TextFormat` values.
const PLAIN: i32 = 1;
const STORABLE: i32 = 2;
const UUID: i32 = 3;
const EMAIL: i32 = 4;
const COUNTRY: i32 = 5;
const ENTITY_ID: i32 = 6;
const OWNER_ID: i32 = 7;
const TIME_ZONE: i32 = 8;

/// One field's `kith.v1.FieldRules`.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    min_chars: Option<u64>,
    max_chars: Option<u64>,
    format: i32,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min: Option<i64>,
    max: Option<i64>,
    items: Option<Box<Rules>>,
    keys: Option<Box<Rules>>,
    flat: bool,
}

impl Rules {
    /// The rules `field` declares, if any.
    pub fn of(field: &FieldDescriptor, extension: Option<&ExtensionDescriptor>) -> Option<Self> {
        let extension = extension?;
        let options = field.options();
        if !options.has_extension(extension) {
            return None;
        }
        match options.get_extension(extension).as_ref() {
            Value::Message(rules) => Some(Self::read(rules)),
            _ => None,
        }
    }

    fn read(rules: &DynamicMessage) -> Self {
        let present = |name: &str| rules.has_field_by_name(name);
        let number = |name: &str| {
            present(name)
                .then(|| rules.get_field_by_name(name))
                .flatten()
                .and_then(|value| value.as_u32())
                .map(u64::from)
        };
        let integer = |name: &str| {
            present(name)
                .then(|| rules.get_field_by_name(name))
                .flatten()
                .and_then(|value| value.as_i64())
        };
        let nested = |name: &str| {
            present(name)
                .then(|| rules.get_field_by_name(name))
                .flatten()
                .and_then(|value| value.as_message().map(|inner| Box::new(Self::read(inner))))
        };
        Self {
            min_chars: number("min_chars"),
            max_chars: number("max_chars"),
            format: rules
                .get_field_by_name("format")
                .and_then(|value| value.as_enum_number())
                .unwrap_or_default(),
            min_items: number("min_items"),
            max_items: number("max_items"),
            min: integer("min"),
            max: integer("max"),
            items: nested("items"),
            keys: nested("keys"),
            flat: rules
                .get_field_by_name("flat")
                .and_then(|value| value.as_bool())
                .unwrap_or_default(),
        }
    }

    /// Whether the field's default (`""`, no items) is refused, so that
    /// `null`, which reads as the default, is refused too.
    pub fn demands_a_value(&self) -> bool {
        self.min_chars.is_some_and(|min| min > 0) || self.min_items.is_some_and(|min| min > 0)
    }

    pub fn items(&self) -> Option<&Rules> {
        self.items.as_deref()
    }

    /// A text value. `may_be_empty`: the field may be left at `""` (it is
    /// not REQUIRED and sets no fewest characters), which a format such as
    /// an email address would otherwise refuse.
    pub fn text(&self, may_be_empty: bool) -> Json {
        let mut schema = match self.format {
            PLAIN => json!({"type": "string", "pattern": schemas::NO_CONTROL_CHARACTERS}),
            STORABLE => json!({"type": "string", "pattern": schemas::NO_NUL}),
            UUID => to_json(schemas::uuid()),
            EMAIL => to_json(schemas::email()),
            COUNTRY => to_json(schemas::country()),
            ENTITY_ID => to_json(schemas::entity_id()),
            OWNER_ID => to_json(schemas::owner_id()),
            TIME_ZONE => to_json(schemas::iana_time_zone()),
            _ => json!({"type": "string"}),
        };
        if let Some(min) = self.min_chars {
            schema["minLength"] = Json::from(min);
        }
        if let Some(max) = self.max_chars {
            schema["maxLength"] = Json::from(max);
        }
        let empty_refused_by_format = !matches!(self.format, 0 | PLAIN | STORABLE);
        if may_be_empty && self.min_chars.is_none() && empty_refused_by_format {
            return json!({"anyOf": [schema, {"type": "string", "enum": [""]}]});
        }
        schema
    }

    /// An integer's bounds, over the type's own.
    pub fn bound_integer(&self, schema: &mut Json) {
        if let Some(min) = self.min {
            schema["minimum"] = Json::from(min);
        }
        if let Some(max) = self.max {
            schema["maximum"] = Json::from(max);
        }
    }

    /// A list's length.
    pub fn bound_list(&self, schema: &mut Json) {
        if let Some(min) = self.min_items {
            schema["minItems"] = Json::from(min);
        }
        if let Some(max) = self.max_items {
            schema["maxItems"] = Json::from(max);
        }
    }

    /// A map's or a `Struct`'s entries: their count and their keys.
    pub fn bound_object(&self, schema: &mut Json) {
        if let Some(min) = self.min_items {
            schema["minProperties"] = Json::from(min);
        }
        if let Some(max) = self.max_items {
            schema["maxProperties"] = Json::from(max);
        }
        if let Some(keys) = &self.keys {
            schema["propertyNames"] = keys.text(false);
        }
    }

    /// A `google.protobuf.Struct`'s values: any JSON, or only scalars where
    /// the rules say `flat`, strings bounded by the item rules.
    pub fn struct_values(&self) -> Json {
        let string = self
            .items
            .as_ref()
            .map_or(json!({"type": "string"}), |items| items.text(false));
        if self.flat {
            json!({"anyOf": [string, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]})
        } else {
            json!({})
        }
    }
}

fn to_json(schema: impl serde::Serialize) -> Json {
    serde_json::to_value(schema).expect("a schema serialises")
}
