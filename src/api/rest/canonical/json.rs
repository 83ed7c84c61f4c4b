//! The proto3 JSON mapping both ways: a request message from a binding's
//! path variables, query parameters and JSON body; a response message, and
//! a status, as JSON (AIP-193 for errors).

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::binding::{Binding, BodyRule, Bound};
use crate::error::{Error, FieldPath, FieldViolation};

/// The request message of `binding`'s method: the body as its rule says,
/// then the query parameters, then the path's variables, which win.
pub fn request(
    binding: &Binding,
    variables: Bound,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, Error> {
    let input = binding.method.input();
    // The common case, a whole-body rule and no path variable: straight
    // from the bytes, with no JSON tree in between.
    if matches!(binding.body, BodyRule::Whole)
        && variables.is_empty()
        && body.iter().any(|byte| !byte.is_ascii_whitespace())
    {
        return message_from_slice(&input, body);
    }
    let mut json = match &binding.body {
        BodyRule::None => Map::new(),
        BodyRule::Whole => body_object(body)?,
        BodyRule::Field(field) => {
            let mut json = Map::new();
            json.insert(field.json_name().to_owned(), body_value(body)?);
            json
        }
    };
    if !matches!(binding.body, BodyRule::Whole) {
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            set_parameter(&input, &mut json, &name, &value)?;
        }
    }
    for (path, value) in variables {
        set_parameter(&input, &mut json, &path, &value)?;
    }
    message(&input, Value::Object(json))
}

/// One message of a client stream, from one line of an NDJSON body.
pub fn stream_item(input: &MessageDescriptor, line: &[u8]) -> Result<DynamicMessage, Error> {
    message(input, body_value(line)?)
}

/// A message read from JSON text that must be an object.
fn message_from_slice(input: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, Error> {
    let object_expected = || Error::invalid("body", "must be a JSON object");
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(object_expected());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize_with_options(
        input.clone(),
        &mut deserializer,
        &DeserializeOptions::new(),
    )
    .map_err(|error| Error::invalid("body", error.to_string()))?;
    deserializer
        .end()
        .map_err(|error| Error::invalid("body", error.to_string()))?;
    Ok(message)
}

fn message(input: &MessageDescriptor, json: Value) -> Result<DynamicMessage, Error> {
    DynamicMessage::deserialize_with_options(input.clone(), json, &DeserializeOptions::new())
        .map_err(|error| Error::invalid("body", error.to_string()))
}

fn body_value(body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|error| Error::invalid("body", error.to_string()))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    match body_value(body)? {
        Value::Object(object) => Ok(object),
        _ => Err(Error::invalid("body", "must be a JSON object")),
    }
}

/// Sets `path` (dotted field names, proto or JSON spelling; `map[key]`
/// for a map entry) to a parameter's text, as the JSON mapping spells the
/// field's kind. A repeated field collects its parameters.
fn set_parameter(
    input: &MessageDescriptor,
    json: &mut Map<String, Value>,
    path: &str,
    text: &str,
) -> Result<(), Error> {
    let unknown = || {
        Error::invalid(
            FieldPath::field(path.to_owned()),
            "no such field in the request",
        )
    };
    let (path, map_key) = match path.split_once('[') {
        Some((path, key)) => (path, Some(key.strip_suffix(']').ok_or_else(unknown)?)),
        None => (path, None),
    };
    let mut message = input.clone();
    let mut object = json;
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let field = field_named(&message, name).ok_or_else(unknown)?;
        let key = field.json_name().to_owned();
        if names.peek().is_none() {
            return set_leaf(object, &field, key, map_key, text).map_err(|why| {
                Error::InvalidArgument(vec![FieldViolation::new(
                    FieldPath::field(path.to_owned()),
                    why,
                )])
            });
        }
        let Kind::Message(inner) = field.kind() else {
            return Err(unknown());
        };
        if field.is_list() || field.is_map() {
            return Err(unknown());
        }
        message = inner;
        let entry = object
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        object = match entry {
            Value::Object(inner) => inner,
            _ => return Err(unknown()),
        };
    }
    Err(unknown())
}

fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

fn set_leaf(
    object: &mut Map<String, Value>,
    field: &FieldDescriptor,
    key: String,
    map_key: Option<&str>,
    text: &str,
) -> Result<(), String> {
    match map_key {
        Some(entry) if field.is_map() => {
            let Kind::Message(pair) = field.kind() else {
                return Err("not a map".into());
            };
            let value_kind = pair.map_entry_value_field().kind();
            let map = object
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = map {
                map.insert(entry.to_owned(), scalar(&value_kind, text)?);
            }
            Ok(())
        }
        Some(_) => Err("takes no [key]".into()),
        None if field.is_map() => Err("a map takes name[key]=value".into()),
        None if field.is_list() => {
            let item = scalar(&field.kind(), text)?;
            match object
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(item),
                other => *other = Value::Array(vec![item]),
            }
            Ok(())
        }
        None => {
            object.insert(key, scalar(&field.kind(), text)?);
            Ok(())
        }
    }
}

/// A parameter's text as the JSON value its kind takes: JSON's own
/// booleans; an enum's number as a number (the mapping reads a quoted one
/// as a name); a string for everything else, which the mapping accepts for
/// numbers, bytes and the well-known types alike.
fn scalar(kind: &Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Enum(_) => Ok(text
            .parse::<i32>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from)),
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not true or false")),
        },
        Kind::Message(message) if !is_scalar_like(message) => {
            Err("a message field is set by its own fields".into())
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// Well-known messages whose JSON form is a string (or a number, given as
/// a string), settable by one parameter.
fn is_scalar_like(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
    )
}

/// A response message as JSON text (lowerCamel names, 64-bit integers as
/// strings, enums by name, unset fields left out), written straight from
/// the message; `size_hint` is its encoded size, to allocate once.
pub fn response(message: &DynamicMessage, size_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint * 2);
    write_message(&mut out, message);
    out
}

/// Appends a message's JSON text to `out`.
pub fn write_message(out: &mut Vec<u8>, message: &DynamicMessage) {
    message
        .serialize_with_options(
            &mut serde_json::Serializer::new(out),
            &SerializeOptions::new(),
        )
        .expect("a decoded message serialises");
}

/// A status as AIP-193 JSON and the HTTP status it maps to.
pub fn status(status: &Status) -> (http::StatusCode, Value) {
    let http = http_status(status.code());
    let mut details = Vec::new();
    let error_details = status.get_error_details();
    if let Some(info) = error_details.error_info() {
        details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }));
    }
    if let Some(bad) = error_details.bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| serde_json::json!({ "field": v.field, "description": v.description }))
            .collect();
        details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }));
    }
    if let Some(retry) = error_details.retry_info()
        && let Some(delay) = retry.retry_delay
    {
        details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{:.3}s", delay.as_secs_f64()),
        }));
    }
    let body = serde_json::json!({
        "error": {
            "code": http.as_u16(),
            "message": status.message(),
            "status": code_name(status.code()),
            "details": details,
        }
    });
    (http, body)
}

/// The HTTP status of a gRPC code, as google.rpc.Code documents it.
fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as Http;
    match code {
        Code::Ok => Http::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => Http::BAD_REQUEST,
        Code::Unauthenticated => Http::UNAUTHORIZED,
        Code::PermissionDenied => Http::FORBIDDEN,
        Code::NotFound => Http::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => Http::CONFLICT,
        Code::ResourceExhausted => Http::TOO_MANY_REQUESTS,
        Code::Cancelled => Http::from_u16(499).expect("a valid status"),
        Code::Unimplemented => Http::NOT_IMPLEMENTED,
        Code::Unavailable => Http::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => Http::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => Http::INTERNAL_SERVER_ERROR,
    }
}

/// The code's name as google.rpc.Code spells it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
