//! The contract's own routes in `/openapi.json`, written from the same
//! bindings the gateway serves: each method at its path with its path and
//! query parameters, its body, its reply, and every message in the proto3
//! JSON mapping. An RPC added to `proto/` is documented with no new code.

use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use serde_json::{Map, Value as Json, json};

use super::binding::{Binding, BodyRule};

/// `google.api.FieldBehavior` values the document uses.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;

/// The statuses the gateway maps gRPC codes to (`json::http_status`), each
/// answered with an AIP-193 body.
const ERRORS: [(u16, &str); 10] = [
    (
        400,
        "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: see the details",
    ),
    (401, "UNAUTHENTICATED: no key, or an unknown or revoked one"),
    (404, "NOT_FOUND"),
    (409, "ALREADY_EXISTS or ABORTED"),
    (413, "The body is too large"),
    (
        429,
        "RESOURCE_EXHAUSTED: the key's rate, or a reader too slow for its stream",
    ),
    (499, "CANCELLED"),
    (500, "INTERNAL"),
    (
        503,
        "UNAVAILABLE: the database is unreachable, or the server is stopping",
    ),
    (504, "DEADLINE_EXCEEDED"),
];

/// The paths and component schemas of every binding.
pub struct Document {
    pub paths: Map<String, Json>,
    pub schemas: Map<String, Json>,
}

pub fn document(pool: &DescriptorPool, bindings: &[Binding]) -> Document {
    let mut writer = Writer {
        behavior: pool.get_extension_by_name("google.api.field_behavior"),
        schemas: Map::new(),
        pending: Vec::new(),
    };
    let mut paths = Map::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for binding in bindings {
        let (path, mut operation) = writer.operation(binding);
        // An additional binding of a method gets an id of its own.
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let count = seen.entry(id.clone()).or_default();
        *count += 1;
        if *count > 1 {
            operation["operationId"] = Json::from(format!("{id}_{count}"));
        }
        let item = paths
            .entry(path)
            .or_insert_with(|| Json::Object(Map::new()));
        item[binding.verb.as_str().to_ascii_lowercase()] = operation;
    }
    writer
        .schemas
        .insert("kith.Error".to_owned(), error_schema());
    while let Some(message) = writer.pending.pop() {
        if !writer.schemas.contains_key(message.full_name()) {
            let schema = writer.message(&message);
            writer
                .schemas
                .insert(message.full_name().to_owned(), schema);
        }
    }
    Document {
        paths,
        schemas: writer.schemas,
    }
}

struct Writer {
    behavior: Option<ExtensionDescriptor>,
    schemas: Map<String, Json>,
    /// Messages referenced and not yet written.
    pending: Vec<MessageDescriptor>,
}

impl Writer {
    fn operation(&mut self, binding: &Binding) -> (String, Json) {
        let method = &binding.method;
        let input = method.input();
        let variables = binding.template.variables();
        let mut parameters: Vec<Json> = variables
            .iter()
            .map(|variable| {
                let field = field_at(&input, variable);
                json!({
                    "name": variable,
                    "in": "path",
                    "required": true,
                    "schema": field.map_or(json!({"type": "string"}), |field| {
                        self.scalar_or_string(&field)
                    }),
                })
            })
            .collect();
        // A field the path binds takes its oneof's siblings with it: a
        // request naming a customer by id cannot also name its external id.
        let top_level_bound: Vec<String> = variables
            .iter()
            .filter_map(|variable| variable.split('.').next())
            .filter_map(|name| input.get_field_by_name(name))
            .flat_map(|field| match field.containing_oneof() {
                Some(oneof) => oneof.fields().map(|f| f.name().to_owned()).collect(),
                None => vec![field.name().to_owned()],
            })
            .collect();
        let top_level_bound: Vec<&str> = top_level_bound.iter().map(String::as_str).collect();
        let mut operation = json!({
            "operationId": format!("kith_{}_{}", method.parent_service().name(), method.name()),
            "tags": ["kith"],
            "summary": format!("{}.{}", method.parent_service().full_name(), method.name()),
        });
        match &binding.body {
            BodyRule::None => {
                for field in input.fields() {
                    if top_level_bound.contains(&field.name()) || self.output_only(&field) {
                        continue;
                    }
                    parameters.extend(self.query_parameters(&field, ""));
                }
            }
            BodyRule::Whole => {
                let body =
                    self.body_without(&input, &top_level_bound, method.is_client_streaming());
                operation["requestBody"] = body;
            }
            BodyRule::Field(field) => {
                let schema = self.field_value(field);
                // No body reads as the empty message, as gRPC would.
                operation["requestBody"] = json!({
                    "required": false,
                    "content": {"application/json": {"schema": schema}},
                });
                for other in input.fields() {
                    let skipped = other.name() == field.name()
                        || top_level_bound.contains(&other.name())
                        || self.output_only(&other);
                    if !skipped {
                        parameters.extend(self.query_parameters(&other, ""));
                    }
                }
            }
        }
        operation["parameters"] = Json::Array(parameters);
        let reply = self.reference(&method.output());
        let content_type = if method.is_server_streaming() {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        let mut responses = Map::new();
        responses.insert(
            "200".to_owned(),
            json!({"description": "The reply.", "content": {content_type: {"schema": reply}}}),
        );
        for (status, description) in ERRORS {
            responses.insert(
                status.to_string(),
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/kith.Error"}}},
                }),
            );
        }
        operation["responses"] = Json::Object(responses);
        (binding.template.openapi_path(), operation)
    }

    /// A whole-body request: the input without the fields the path binds;
    /// a client stream reads one such message per line.
    fn body_without(&mut self, input: &MessageDescriptor, bound: &[&str], streaming: bool) -> Json {
        let mut schema = self.message(input);
        if let Some(properties) = schema["properties"].as_object_mut() {
            for field in input.fields().filter(|field| bound.contains(&field.name())) {
                properties.remove(field.json_name());
            }
        }
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|name| {
                !input
                    .fields()
                    .any(|field| bound.contains(&field.name()) && name == field.json_name())
            });
        }
        let content_type = if streaming {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        // No body reads as the empty message (no message, for a stream).
        json!({"required": false, "content": {content_type: {"schema": schema}}})
    }

    /// A field as query parameters: itself when scalar or repeated scalar,
    /// its own fields (`filter.kinds`) when a message.
    fn query_parameters(&mut self, field: &FieldDescriptor, prefix: &str) -> Vec<Json> {
        let name = format!("{prefix}{}", field.json_name());
        match field.kind() {
            Kind::Message(message) if !is_well_known(&message) && !field.is_map() => {
                let mut parameters = Vec::new();
                for inner in message.fields() {
                    if !self.output_only(&inner) {
                        parameters.extend(self.query_parameters(&inner, &format!("{name}.")));
                    }
                }
                parameters
            }
            _ if field.is_map() => Vec::new(),
            _ => {
                let schema = if field.is_list() {
                    json!({"type": "array", "items": self.scalar_or_string(field)})
                } else {
                    self.scalar_or_string(field)
                };
                vec![json!({"name": name, "in": "query", "schema": schema, "explode": true})]
            }
        }
    }

    /// A field's value as a path or query parameter: its scalar schema.
    fn scalar_or_string(&mut self, field: &FieldDescriptor) -> Json {
        match field.kind() {
            Kind::Message(message) if is_well_known(&message) => well_known(&message),
            Kind::Message(_) => json!({"type": "string"}),
            // AIP-158: a negative page size is an error.
            _ if field.name() == "page_size" => {
                json!({"type": "integer", "minimum": 0, "maximum": i32::MAX})
            }
            kind => self.enum_or_scalar(field, &kind),
        }
    }

    /// Enums list their names; where the value must be set (a REQUIRED
    /// field, a list item) the unspecified zero is not one of them.
    fn enum_or_scalar(&self, field: &FieldDescriptor, kind: &Kind) -> Json {
        let Kind::Enum(enumeration) = kind else {
            return scalar(kind);
        };
        let must_be_set = field.is_list() || self.has_behavior(field, REQUIRED);
        let values: Vec<_> = enumeration
            .values()
            .filter(|value| !(must_be_set && value.number() == 0))
            .collect();
        let names: Vec<Json> = values
            .iter()
            .map(|value| Json::from(value.name()))
            .collect();
        let numbers: Vec<Json> = values
            .iter()
            .map(|value| Json::from(value.number()))
            .collect();
        // The JSON mapping reads an enum by name or by number.
        json!({"anyOf": [
            {"type": "string", "enum": names},
            {"type": "integer", "enum": numbers},
        ]})
    }

    fn message(&mut self, message: &MessageDescriptor) -> Json {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            let mut schema = self.field_value(&field);
            if self.output_only(&field) {
                schema = json!({"allOf": [schema], "readOnly": true});
            } else if self.has_behavior(&field, REQUIRED) {
                required.push(Json::from(field.json_name()));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({
            "type": "object",
            "properties": properties,
            "description": format!("{} (proto3 JSON mapping)", message.full_name()),
        });
        if !required.is_empty() {
            schema["required"] = Json::Array(required);
        }
        schema
    }

    /// What a field holds in JSON: its kind, a list or map of it; `null`
    /// reads as the field's default.
    fn field_value(&mut self, field: &FieldDescriptor) -> Json {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("a map field's kind is its entry message")
            };
            let value = entry.map_entry_value_field();
            return json!({
                "type": ["object", "null"],
                "additionalProperties": self.single_value(&value),
            });
        }
        if field.is_list() {
            return json!({"type": ["array", "null"], "items": self.single_value(field)});
        }
        let value = self.single_value(field);
        json!({"anyOf": [value, {"type": "null"}]})
    }

    fn single_value(&mut self, field: &FieldDescriptor) -> Json {
        match field.kind() {
            Kind::Message(message) if is_well_known(&message) => well_known(&message),
            Kind::Message(message) => self.reference(&message),
            kind => self.enum_or_scalar(field, &kind),
        }
    }

    fn reference(&mut self, message: &MessageDescriptor) -> Json {
        if is_well_known(message) {
            return well_known(message);
        }
        self.pending.push(message.clone());
        json!({"$ref": format!("#/components/schemas/{}", message.full_name())})
    }

    fn has_behavior(&self, field: &FieldDescriptor, behavior: i32) -> bool {
        let Some(extension) = &self.behavior else {
            return false;
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return false;
        }
        match options.get_extension(extension).as_ref() {
            Value::List(values) => values
                .iter()
                .any(|value| value.as_enum_number() == Some(behavior)),
            _ => false,
        }
    }

    fn output_only(&self, field: &FieldDescriptor) -> bool {
        self.has_behavior(field, OUTPUT_ONLY)
    }
}

/// The field a dotted path names, from `message`.
fn field_at(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut names = path.split('.');
    let mut field = message.get_field_by_name(names.next()?)?;
    for name in names {
        let Kind::Message(inner) = field.kind() else {
            return None;
        };
        field = inner.get_field_by_name(name)?;
    }
    Some(field)
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

/// The well-known types as the JSON mapping spells them.
fn well_known(message: &MessageDescriptor) -> Json {
    match message.name() {
        "Timestamp" => json!({"type": "string", "format": "date-time"}),
        "Duration" => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"}),
        "FieldMask" => json!({"type": "string"}),
        "Struct" => json!({"type": "object"}),
        "ListValue" => json!({"type": "array"}),
        "Value" => json!({}),
        "Empty" => json!({"type": "object"}),
        "StringValue" | "BytesValue" => json!({"type": "string"}),
        "BoolValue" => json!({"type": "boolean"}),
        "Int32Value" | "UInt32Value" => json!({"type": "integer"}),
        "Int64Value" | "UInt64Value" => json!({"type": ["string", "integer"]}),
        "FloatValue" | "DoubleValue" => json!({"type": "number"}),
        _ => json!({"type": "object"}),
    }
}

/// A scalar as the JSON mapping spells it: 64-bit integers as strings (or
/// numbers), enums by name (or number), bytes in base64.
fn scalar(kind: &Kind) -> Json {
    match kind {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
            "anyOf": [
                {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
                {"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX},
            ]
        }),
        Kind::Uint64 | Kind::Fixed64 => json!({
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,20}$"},
                {"type": "integer", "minimum": 0, "maximum": u64::MAX},
            ]
        }),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(enumeration) => {
            let names: Vec<Json> = enumeration
                .values()
                .map(|value| Json::from(value.name()))
                .collect();
            json!({"type": "string", "enum": names})
        }
        Kind::Message(_) => json!({"type": "object"}),
    }
}

/// AIP-193: `{"error": {"code", "message", "status", "details"}}`.
fn error_schema() -> Json {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer"},
                    "message": {"type": "string"},
                    "status": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["@type"],
                            "properties": {"@type": {"type": "string"}},
                        },
                    },
                },
            },
        },
    })
}
