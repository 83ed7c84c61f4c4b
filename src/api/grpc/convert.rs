//! Conversions between well-known protobuf types and domain values.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::domain::customer::MetadataValue;
use crate::domain::user::MemberRole;
use crate::error::{Error, FieldPath, FieldViolation};
use crate::pb::kith::v1 as pb;

/// Metadata as the domain reads it, and a violation for each value that has
/// no `kind` set (left out of the map).
pub fn metadata_from_proto(
    pairs: HashMap<String, pb::MetadataValue>,
) -> (BTreeMap<String, MetadataValue>, Vec<FieldViolation>) {
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
                    FieldPath::field("metadata").key(&key),
                    "a value must be set",
                ));
                continue;
            }
        };
        out.insert(key, value);
    }
    (out, violations)
}

/// A protobuf Struct as a JSON object. Whole numbers become integers, so a
/// trait sent as `3` reads back as `3` through every transport.
pub fn struct_to_json(value: prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    value
        .fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn value_to_json(value: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    #[allow(clippy::cast_possible_truncation)]
    if n.fract() == 0.0 && n.abs() < EXACT {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// `None` for unspecified; an unknown number is a violation of `field`.
pub fn role_from_proto(
    value: i32,
    field: &'static str,
) -> Result<Option<MemberRole>, FieldViolation> {
    match pb::MemberRole::try_from(value) {
        Ok(pb::MemberRole::Unspecified) => Ok(None),
        Ok(pb::MemberRole::Owner) => Ok(Some(MemberRole::Owner)),
        Ok(pb::MemberRole::BillingManager) => Ok(Some(MemberRole::BillingManager)),
        Ok(pb::MemberRole::Member) => Ok(Some(MemberRole::Member)),
        Err(_) => Err(FieldViolation::new(field, format!("unknown role {value}"))),
    }
}

/// A client's timestamp at Kith's millisecond precision.
pub fn timestamp_from_proto(
    value: &Timestamp,
    field: &'static str,
) -> Result<DateTime<Utc>, FieldViolation> {
    use chrono::SubsecRound as _;
    u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos))
        .map(|time| time.trunc_subsecs(3))
        .ok_or_else(|| FieldViolation::new(field, "is not a valid timestamp"))
}

/// The fields an update names (AIP-134): the mask's paths, `*` for the
/// `wildcard` fields, or without a mask the fields the message populates.
/// A path that is not updatable is a violation of `update_mask`.
pub fn masked_fields(
    mask: Option<prost_types::FieldMask>,
    populated: impl FnOnce() -> Vec<&'static str>,
    updatable: &[&'static str],
    wildcard: &[&'static str],
) -> Result<Vec<&'static str>, Error> {
    let paths = match mask {
        Some(mask) if !mask.paths.is_empty() => mask.paths,
        _ => return Ok(populated()),
    };
    let mut unknown = Vec::new();
    let mut named = Vec::new();
    for path in &paths {
        if path == "*" {
            named.extend_from_slice(wildcard);
        } else if let Some(field) = updatable.iter().find(|field| *field == path) {
            named.push(*field);
        } else {
            unknown.push(FieldViolation::new(
                "update_mask",
                format!(
                    "'{path}' cannot be updated; updatable fields are {}",
                    updatable.join(", ")
                ),
            ));
        }
    }
    if unknown.is_empty() {
        Ok(named)
    } else {
        Err(Error::InvalidArgument(unknown))
    }
}

/// The change kinds a repeated `ChangeKind` field names, and a violation
/// at `field[i]` for each value that is no kind (unspecified included).
pub fn change_kinds(
    values: &[i32],
    field: &crate::error::FieldPath,
) -> (Vec<crate::domain::change::ChangeKind>, Vec<FieldViolation>) {
    use crate::pb::kith::v1::ChangeKind;
    let mut kinds = Vec::with_capacity(values.len());
    let mut unknown = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match ChangeKind::try_from(*value).map(crate::pb::records::change_kind_from_proto) {
            Ok(Some(kind)) => kinds.push(kind),
            Ok(None) | Err(_) => unknown.push(FieldViolation::new(
                field.clone().index(i),
                format!("{value} is not a change kind"),
            )),
        }
    }
    (kinds, unknown)
}
