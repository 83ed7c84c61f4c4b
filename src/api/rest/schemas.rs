//! The domain's input rules as JSON Schema, for `/openapi.json`: the
//! lengths, patterns, ranges and sizes the validators enforce, built from
//! the same constants, so a generated client (or schemathesis) knows
//! exactly which requests are valid. Handlers' body and parameter types
//! name these with `#[schema(schema_with = …)]`.

use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, Ref, RefOr};

use crate::domain::customer::{
    EMBARGOED_COUNTRIES, MAX_ADDRESS_LINE_CHARS, MAX_EMAIL_CHARS, MAX_EXTERNAL_ID_CHARS,
    MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_STRING_CHARS, MAX_NAME_CHARS,
};
use crate::domain::{entity, person, user};

/// Text without control characters (`char::is_control`: U+0000–001F and
/// U+007F–009F), which no stored text may hold.
pub const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Text without NUL, which no database column can hold.
pub const NO_NUL: &str = "^[^\\u0000]*$";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

/// Free text of at most `max` characters.
pub fn text(max: usize) -> ObjectBuilder {
    string()
        .max_length(Some(max))
        .pattern(Some(NO_CONTROL_CHARACTERS))
}

/// A search query: up to the domain's longest of free text.
pub fn search_query() -> utoipa::openapi::schema::Object {
    text(crate::domain::search::MAX_QUERY_CHARS).build()
}

/// 1 to `max` characters of free text.
pub fn required_text(max: usize) -> ObjectBuilder {
    text(max).min_length(Some(1))
}

/// Free text, or `null`.
pub fn nullable_text(max: usize) -> Object {
    text(max).schema_type(nullable(Type::String)).build()
}

pub fn name() -> Object {
    nullable_text(MAX_NAME_CHARS)
}

pub fn external_id() -> Object {
    nullable_text(MAX_EXTERNAL_ID_CHARS)
}

pub fn address_line() -> Object {
    nullable_text(MAX_ADDRESS_LINE_CHARS)
}

/// An email address, or `""` / `null` for none.
pub fn email_or_none() -> Schema {
    AnyOfBuilder::new()
        .item(email())
        .item(string().enum_values(Some([""])))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

pub fn email() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(MAX_EMAIL_CHARS))
        .build()
}

/// An email address, or `null`.
pub fn nullable_email() -> Object {
    let mut schema = email();
    schema.schema_type = nullable(Type::String);
    schema
}

/// Free attributes: at most 50 pairs, keys of 1 to 40 characters, values
/// strings of 1 to 500 characters, numbers or booleans.
pub fn metadata() -> Object {
    let values = AnyOfBuilder::new()
        .item(required_text(MAX_METADATA_STRING_CHARS))
        .item(ObjectBuilder::new().schema_type(Type::Integer))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_METADATA_PAIRS))
        .property_names(Some(required_text(MAX_METADATA_KEY_CHARS)))
        .additional_properties(Some(RefOr::T(Schema::from(values))))
        .build()
}

/// Metadata, or `null`.
pub fn nullable_metadata() -> Object {
    let mut schema = metadata();
    schema.schema_type = nullable(Type::Object);
    schema
}

/// A country the domain accepts: an ISO 3166-1 alpha-2 code in any case,
/// surrounding spaces ignored, embargoed countries excepted.
pub fn country() -> Object {
    let codes: Vec<String> = rust_iso3166::ALL
        .iter()
        .map(|country| country.alpha2)
        .filter(|code| !EMBARGOED_COUNTRIES.contains(code))
        .map(either_case)
        .collect();
    string()
        .pattern(Some(format!("^\\s*(?:{})\\s*$", codes.join("|"))))
        .build()
}

/// `US` as the regular expression `[Uu][Ss]`.
fn either_case(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// 1 to `max` items of `item`.
pub fn batch(item: impl Into<RefOr<Schema>>, max: usize) -> Schema {
    let item: RefOr<Schema> = item.into();
    ArrayBuilder::new()
        .items(utoipa::openapi::schema::ArrayItems::from(item))
        .min_items(Some(1))
        .max_items(Some(max))
        .into()
}

/// An identifier as `entity::check_identifier` takes it: 1 to 255 ASCII
/// letters, digits or `punctuation`, starting with a letter or digit.
fn identifier(punctuation: &[char]) -> ObjectBuilder {
    let extra: String = punctuation
        .iter()
        .map(|c| match c {
            '-' | '.' | '|' => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect();
    let rest = entity::MAX_ID_CHARS - 1;
    string().pattern(Some(format!("^[A-Za-z0-9][A-Za-z0-9{extra}]{{0,{rest}}}$")))
}

/// An entity's id, or an entity type's.
pub fn entity_id() -> Object {
    identifier(&entity::ENTITY_ID_PUNCTUATION).build()
}

/// The external id of a customer that owns entities.
pub fn owner_id() -> Object {
    identifier(&entity::OWNER_ID_PUNCTUATION).build()
}

/// An entity id, or `null`.
pub fn nullable_entity_id() -> Object {
    identifier(&entity::ENTITY_ID_PUNCTUATION)
        .schema_type(nullable(Type::String))
        .build()
}

/// An entity type filter: an entity type id, or `""` for every type.
pub fn entity_type_filter() -> Schema {
    AnyOfBuilder::new()
        .item(entity_id())
        .item(string().enum_values(Some([""])))
        .into()
}

/// Text with no NUL character, which no database column can hold.
fn storable(min: usize, max: usize) -> ObjectBuilder {
    string()
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(NO_NUL))
}

/// An entity's metadata: at most 100 keys of 1 to 255 characters, string
/// values of at most 1 000 (an empty one deletes its key).
pub fn entity_metadata() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(entity::MAX_METADATA_KEYS))
        .property_names(Some(storable(1, entity::MAX_METADATA_KEY_CHARS)))
        .additional_properties(Some(RefOr::T(Schema::from(storable(
            0,
            entity::MAX_METADATA_VALUE_CHARS,
        )))))
        .build()
}

/// An entity's display name; `null` or `""` clears it.
pub fn entity_display_name() -> Object {
    nullable_text(entity::MAX_DISPLAY_NAME_CHARS)
}

/// An entity type's display name: required.
pub fn entity_type_display_name() -> Object {
    required_text(entity::MAX_DISPLAY_NAME_CHARS).build()
}

/// An entity type's attribution keys: at most 20, each 1 to 255
/// characters.
pub fn attribution_keys() -> Schema {
    ArrayBuilder::new()
        .items(storable(1, entity::MAX_METADATA_KEY_CHARS))
        .max_items(Some(entity::MAX_ATTRIBUTION_KEYS))
        .into()
}

/// A page cursor naming a record by its UUID, or `""` for none.
pub fn uuid_cursor() -> Schema {
    AnyOfBuilder::new()
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))))
        .item(string().enum_values(Some([""])))
        .into()
}

/// One of these words.
pub fn one_of_words(words: &[&str]) -> Object {
    string().enum_values(Some(words.iter().copied())).build()
}

/// `true` or `false`, as query text.
pub fn boolean_text() -> Object {
    one_of_words(&["true", "false"])
}

/// A page size from 1 to `max`, refused outside.
pub fn page_size(max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(max))
        .build()
}

/// A user's or company's keys: at most 100, names of 1 to 255 characters,
/// values of 1 to 1 024; at least one where `required`.
pub fn keys(required: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(required.then_some(1))
        .max_properties(Some(user::MAX_KEYS))
        .property_names(Some(storable(1, user::MAX_KEY_NAME_CHARS)))
        .additional_properties(Some(RefOr::T(Schema::from(required_text(
            user::MAX_KEY_VALUE_CHARS,
        )))))
        .build()
}

/// Keys, at least one.
pub fn required_keys() -> Object {
    keys(true)
}

/// Keys, or `null`.
pub fn nullable_keys() -> Object {
    let mut schema = keys(true);
    schema.schema_type = nullable(Type::Object);
    schema
}

/// Traits to merge: at most 100, names of 1 to 255 characters, values
/// strings of at most 1 024, numbers, booleans, or `null` to remove.
pub fn traits() -> Object {
    let values = AnyOfBuilder::new()
        .item(storable(0, user::MAX_TRAIT_STRING_CHARS))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(user::MAX_TRAITS))
        .property_names(Some(storable(1, user::MAX_TRAIT_NAME_CHARS)))
        .additional_properties(Some(RefOr::T(Schema::from(values))))
        .build()
}

/// A trait's name.
pub fn trait_name() -> Object {
    storable(1, user::MAX_TRAIT_NAME_CHARS).build()
}

/// A trait's new string value.
pub fn trait_string() -> Object {
    storable(0, user::MAX_TRAIT_STRING_CHARS)
        .schema_type(nullable(Type::String))
        .build()
}

/// A user's or company's name; `""` clears it.
pub fn user_name() -> Object {
    nullable_text(user::MAX_NAME_CHARS)
}

/// A UUID.
pub fn uuid() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}

/// A UUID, or `null`.
pub fn nullable_uuid() -> Object {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}

/// A UUID filter, or `""` for none.
pub fn uuid_filter() -> Schema {
    uuid_cursor()
}

/// At most 100 companies, each by its keys.
pub fn company_key_list() -> Schema {
    let mut schema: Schema = ArrayBuilder::new()
        .items(required_keys())
        .max_items(Some(user::MAX_COMPANIES))
        .into();
    if let Schema::Array(array) = &mut schema {
        array.schema_type = nullable(Type::Array);
    }
    schema
}

/// At most 100 companies, each by its id.
pub fn company_id_list() -> Schema {
    let mut schema: Schema = ArrayBuilder::new()
        .items(uuid())
        .max_items(Some(user::MAX_COMPANIES))
        .into();
    if let Schema::Array(array) = &mut schema {
        array.schema_type = nullable(Type::Array);
    }
    schema
}

/// The schema named `base`, with at least one of `alternatives` present
/// (each a property with its schema): how a rule across fields ("an email,
/// or a team") is stated.
pub fn with_one_of(base: &str, alternatives: Vec<(&str, Object)>) -> RefOr<Schema> {
    let any = alternatives
        .into_iter()
        .fold(AnyOfBuilder::new(), |any, alternative| {
            any.item(present(alternative))
        });
    AllOfBuilder::new()
        .item(Ref::from_schema_name(base))
        .item(any)
        .into()
}

/// The schema named `base`, with exactly one of `alternatives` present.
pub fn with_exactly_one_of(base: &str, alternatives: Vec<(&str, Object)>) -> RefOr<Schema> {
    let one = alternatives
        .into_iter()
        .fold(OneOfBuilder::new(), |one, alternative| {
            one.item(present(alternative))
        });
    AllOfBuilder::new()
        .item(Ref::from_schema_name(base))
        .item(one)
        .into()
}

fn present((property, schema): (&str, Object)) -> ObjectBuilder {
    ObjectBuilder::new()
        .property(property, schema)
        .required(property)
}

/// A trait's string value, present.
pub fn trait_name_or_value() -> Object {
    storable(0, user::MAX_TRAIT_STRING_CHARS).build()
}

/// A person's traits: the known ones (`first_name`, `phone`, …) are
/// strings within their limits, or `null`; the time zone an IANA name
/// (listed) and the locale a BCP 47 tag. Other traits are free JSON, at
/// most 8 levels deep, with no NUL anywhere, which JSON Schema cannot state
/// in full.
pub fn person_traits() -> Object {
    let mut traits = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(storable(1, person::MAX_ATTRIBUTE_KEY_CHARS)));
    for (name, max) in person::KNOWN_TRAITS {
        let known = match name {
            "timezone" => time_zone(),
            _ => text(max).schema_type(nullable(Type::String)).build(),
        };
        traits = traits.property(name, known);
    }
    traits.build()
}

/// An IANA time zone, `""` to clear, or `null`.
fn time_zone() -> Object {
    let names = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| serde_json::Value::from(zone.name()))
        .chain([serde_json::Value::from(""), serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(names))
        .build()
}

/// An IANA time zone name.
pub fn iana_time_zone() -> Object {
    let names = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| serde_json::Value::from(zone.name()));
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

/// A person's external id (`userId`): 1 to 255 characters.
pub fn person_user_id() -> Object {
    required_text(person::MAX_USER_ID_CHARS).build()
}

/// A page size that is lowered to the maximum, never refused above it.
pub fn lowered_page_size() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(i64::MAX))
        .build()
}

/// An offset: zero or more.
pub fn offset() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .build()
}

/// Registers `T` under `name`, with the schemas it refers to: for a
/// marker schema built `with_one_of` on `T`, whose components must hold it.
pub fn register_base<T: utoipa::ToSchema>(name: &str, schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((name.to_owned(), T::schema()));
    T::schemas(schemas);
}
