//! Every domain validator on arbitrary inputs: none may panic, whatever
//! the strings, numbers, nesting and sizes.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use kith::domain::customer::{AddressInput, CustomerInput, Email, MetadataValue, NewCustomer};
use kith::domain::{entity, person, user};
use kith::error::FieldPath;

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn into_value(self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => b.into(),
            Self::Number(n) => serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into),
            Self::Text(s) => s.into(),
            Self::List(items) => items.into_iter().map(Self::into_value).collect(),
            Self::Object(pairs) => serde_json::Value::Object(object(pairs)),
        }
    }
}

fn object(pairs: Vec<(String, Json)>) -> serde_json::Map<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k, v.into_value())).collect()
}

#[derive(Debug, Arbitrary)]
struct Person {
    user_id: String,
    email: Option<String>,
    traits: Vec<(String, Json)>,
}

#[derive(Debug, Arbitrary)]
struct Entity {
    id: String,
    type_id: Option<String>,
    display_name: Option<String>,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Arbitrary)]
enum Meta {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    people: Vec<Person>,
    entities: Vec<Entity>,
    owner: String,
    email: String,
    customer_external_id: Option<String>,
    customer_name: Option<String>,
    country: Option<String>,
    line1: Option<String>,
    metadata: BTreeMap<String, Meta>,
    user_keys: BTreeMap<String, String>,
    user_traits: Vec<(String, Json)>,
}

fuzz_target!(|input: Input| {
    let people = input
        .people
        .into_iter()
        .map(|p| person::PersonUpsertInput {
            user_id: p.user_id,
            email: p.email,
            traits: object(p.traits),
            status: None,
        })
        .collect();
    let _ = person::parse_batch(people);

    let entities = input
        .entities
        .into_iter()
        .map(|e| entity::EntityUpsertInput {
            id: e.id,
            type_id: e.type_id,
            display_name: e.display_name,
            metadata: e.metadata,
        })
        .collect();
    let _ = entity::parse_batch(entities);
    let _ = entity::parse_owner(&input.owner, "customer_id");

    let _ = Email::parse(&input.email);
    let metadata = input
        .metadata
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Meta::Bool(b) => MetadataValue::Bool(b),
                Meta::Int(i) => MetadataValue::Int(i),
                Meta::Float(f) => MetadataValue::Float(f),
                Meta::Text(s) => MetadataValue::String(s),
            };
            (k, v)
        })
        .collect();
    let _ = NewCustomer::parse(CustomerInput {
        external_id: input.customer_external_id,
        email: Some(input.email),
        name: input.customer_name,
        billing_address: input.country.map(|country| AddressInput {
            country,
            line1: input.line1,
            line2: None,
            postal_code: None,
            city: None,
            state: None,
        }),
        metadata: Some(metadata),
        kind: None,
    });

    let _ = user::Keys::parse(input.user_keys, &FieldPath::field("keys"), true);
    let _ = user::parse_traits(object(input.user_traits), &FieldPath::field("traits"));
});
