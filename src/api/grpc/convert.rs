//! Conversions between well-known protobuf types and domain values.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::domain::customer::MetadataValue;
use crate::error::{Error, FieldViolation};
use crate::pb::kith::v1 as pb;

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).expect("below one second"),
    }
}

pub fn metadata_to_proto<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a MetadataValue)>,
) -> HashMap<String, pb::MetadataValue> {
    pairs
        .map(|(key, value)| {
            let kind = match value {
                MetadataValue::Bool(b) => pb::metadata_value::Kind::BoolValue(*b),
                MetadataValue::Int(i) => pb::metadata_value::Kind::IntValue(*i),
                MetadataValue::Float(f) => pb::metadata_value::Kind::FloatValue(*f),
                MetadataValue::String(s) => pb::metadata_value::Kind::StringValue(s.clone()),
            };
            (key.clone(), pb::MetadataValue { kind: Some(kind) })
        })
        .collect()
}

/// A value with no `kind` set is a client error, named by its key.
pub fn metadata_from_proto(
    pairs: HashMap<String, pb::MetadataValue>,
) -> Result<BTreeMap<String, MetadataValue>, Error> {
    let mut violations = Vec::new();
    let mut out = BTreeMap::new();
    for (key, value) in pairs {
        let value = match value.kind {
            Some(pb::metadata_value::Kind::BoolValue(b)) => MetadataValue::Bool(b),
            Some(pb::metadata_value::Kind::IntValue(i)) => MetadataValue::Int(i),
            Some(pb::metadata_value::Kind::FloatValue(f)) => MetadataValue::Float(f),
            Some(pb::metadata_value::Kind::StringValue(s)) => MetadataValue::String(s),
            None => {
                violations.push(FieldViolation::new(
                    format!("metadata.{key}"),
                    "a value must be set",
                ));
                continue;
            }
        };
        out.insert(key, value);
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}
