//! The contract's own routes in `/openapi.json`, written from the same
//! bindings the gateway serves: each method at its path with its path and
//! query parameters, its body, its reply, and every message in the proto3
//! JSON mapping. An RPC added to `proto/` is documented with no new code.

use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use serde_json::{Map, Value as Json, json};

use super::binding::{Binding, BodyRule};
use super::rules::Rules;

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
        rules: pool.get_extension_by_name("kith.v1.rules"),
        required_oneof: pool.get_extension_by_name("kith.v1.required_oneof"),
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
    /// `kith.v1.rules`: what a field accepts beyond its type.
    rules: Option<ExtensionDescriptor>,
    /// `kith.v1.required_oneof`: a oneof that must have a member set.
    required_oneof: Option<ExtensionDescriptor>,
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
                        self.scalar_or_string(&field, false)
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
                // No body reads as the empty message, as gRPC would: it
                // may be left out unless that message has a required field
                // or a required oneof.
                let required = match field.kind() {
                    Kind::Message(message) => self.demands_a_body(&message, &[]),
                    _ => false,
                };
                operation["requestBody"] = json!({
                    "required": required,
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
        let schema = self.message_without(input, bound);
        let content_type = if streaming {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        // No body reads as the empty message (no message, for a stream),
        // which will do unless the message has a required field.
        let required = !streaming && self.demands_a_body(input, bound);
        json!({"required": required, "content": {content_type: {"schema": schema}}})
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
            // `keys[email]=ada@example.com`; a map of messages has no
            // query form (HttpRule binds only scalars there).
            _ if field.is_map() && !map_of_scalars(field) => Vec::new(),
            _ if field.is_map() => {
                let mut schema = self.field_value(field);
                schema["type"] = json!("object");
                let required = self.value_demanded(field);
                vec![json!({
                    "name": name, "in": "query", "style": "deepObject", "explode": true,
                    "required": required, "schema": schema,
                })]
            }
            _ => {
                let schema = if field.is_list() {
                    let mut list =
                        json!({"type": "array", "items": self.scalar_or_string(field, false)});
                    if let Some(rules) = self.rules_of(field) {
                        rules.bound_list(&mut list);
                    }
                    list
                } else {
                    self.scalar_or_string(field, !self.has_behavior(field, REQUIRED))
                };
                let required = self.value_demanded(field);
                vec![json!({
                    "name": name, "in": "query", "required": required,
                    "schema": schema, "explode": true,
                })]
            }
        }
    }

    /// A field's value (a list's item) as a path or query parameter: its
    /// scalar schema. `may_be_empty`: the parameter may be `""`.
    fn scalar_or_string(&mut self, field: &FieldDescriptor, may_be_empty: bool) -> Json {
        let rules = self.rules_of(field);
        let value_rules = if field.is_list() {
            rules.as_ref().and_then(Rules::items)
        } else {
            rules.as_ref()
        };
        match field.kind() {
            Kind::Message(message) if is_well_known(&message) => well_known(&message),
            Kind::Message(_) => json!({"type": "string"}),
            kind => self.enum_or_scalar(field, &kind, value_rules, may_be_empty),
        }
    }

    /// Enums list their names; where the value must be set (a REQUIRED
    /// field, a list item) the unspecified zero is not one of them. Text
    /// and integers take their rules.
    fn enum_or_scalar(
        &self,
        field: &FieldDescriptor,
        kind: &Kind,
        rules: Option<&Rules>,
        may_be_empty: bool,
    ) -> Json {
        let Kind::Enum(enumeration) = kind else {
            let Some(rules) = rules else {
                return scalar(kind);
            };
            if matches!(kind, Kind::String) {
                return rules.text(may_be_empty);
            }
            let mut schema = scalar(kind);
            if matches!(kind, Kind::Int32 | Kind::Sint32 | Kind::Sfixed32) {
                rules.bound_integer(&mut schema);
            }
            return schema;
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
        self.message_without(message, &[])
    }

    /// A message's schema, leaving out the fields the path binds (`bound`)
    /// and the oneofs they belong to. The mapping refuses a field it does
    /// not know, so no other property is allowed.
    fn message_without(&mut self, message: &MessageDescriptor, bound: &[&str]) -> Json {
        let mut properties = Map::new();
        for field in message.fields() {
            if bound.contains(&field.name()) {
                continue;
            }
            let mut schema = self.field_value(&field);
            if self.output_only(&field) {
                schema = json!({"allOf": [schema], "readOnly": true});
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "description": format!("{} (proto3 JSON mapping)", message.full_name()),
        });
        let required = self.required_names(message, bound);
        if !required.is_empty() {
            schema["required"] = Json::from(required);
        }
        let mut constraints = Vec::new();
        for oneof in message.oneofs().filter(|oneof| !oneof.is_synthetic()) {
            let names: Vec<String> = oneof.fields().map(|f| f.json_name().to_owned()).collect();
            if oneof.fields().any(|field| bound.contains(&field.name())) {
                continue;
            }
            if self.is_required_oneof(&oneof) {
                constraints.push(exactly_one_set(&names));
            } else {
                constraints.extend(exclusive_pairs(&names));
            }
        }
        if !constraints.is_empty() {
            schema["allOf"] = Json::Array(constraints);
        }
        schema
    }

    /// The JSON names of the fields a message must carry: REQUIRED ones,
    /// and those whose default the rules refuse (an empty list of items
    /// that must not be empty) where leaving them out reads as that default.
    fn required_names(&self, message: &MessageDescriptor, bound: &[&str]) -> Vec<String> {
        message
            .fields()
            .filter(|field| !bound.contains(&field.name()) && !self.output_only(field))
            .filter(|field| self.value_demanded(field))
            .map(|field| field.json_name().to_owned())
            .collect()
    }

    /// Whether an empty body, read as the empty message, is refused: the
    /// message has a required field or a required oneof the path leaves.
    fn demands_a_body(&self, message: &MessageDescriptor, bound: &[&str]) -> bool {
        let unbound_required_oneof = message.oneofs().any(|oneof| {
            !oneof.is_synthetic()
                && self.is_required_oneof(&oneof)
                && !oneof.fields().any(|field| bound.contains(&field.name()))
        });
        unbound_required_oneof || !self.required_names(message, bound).is_empty()
    }

    /// Whether a field must be sent with a value other than its default.
    fn value_demanded(&self, field: &FieldDescriptor) -> bool {
        self.has_behavior(field, REQUIRED)
            || (!field.supports_presence()
                && self
                    .rules_of(field)
                    .is_some_and(|rules| rules.demands_a_value()))
    }

    fn is_required_oneof(&self, oneof: &prost_reflect::OneofDescriptor) -> bool {
        let Some(extension) = &self.required_oneof else {
            return false;
        };
        let options = oneof.options();
        options.has_extension(extension) && options.get_extension(extension).as_bool() == Some(true)
    }

    /// What a field holds in JSON: its kind, a list or map of it, within its
    /// rules; `null` reads as the field's default, so it is refused where
    /// the default is (a REQUIRED field, a fewest length above zero).
    fn field_value(&mut self, field: &FieldDescriptor) -> Json {
        let rules = self.rules_of(field);
        let required = self.has_behavior(field, REQUIRED);
        let nullable = !self.value_demanded(field);
        let item_rules = rules.as_ref().and_then(Rules::items);
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("a map field's kind is its entry message")
            };
            let value = entry.map_entry_value_field();
            let mut schema = json!({
                "type": type_or_null("object", nullable),
                "additionalProperties": self.single_value(&value, item_rules, false),
            });
            if let Some(rules) = &rules {
                rules.bound_object(&mut schema);
            }
            return schema;
        }
        if field.is_list() {
            let mut schema = json!({
                "type": type_or_null("array", nullable),
                "items": self.single_value(field, item_rules, false),
            });
            if let Some(rules) = &rules {
                rules.bound_list(&mut schema);
            }
            return schema;
        }
        // A oneof's member is set even when empty; other text may be left
        // empty for "not set" unless it is REQUIRED.
        let in_oneof = field
            .containing_oneof()
            .is_some_and(|oneof| !oneof.is_synthetic());
        let value = self.single_value(field, rules.as_ref(), !required && !in_oneof);
        if nullable {
            json!({"anyOf": [value, {"type": "null"}]})
        } else {
            value
        }
    }

    fn single_value(
        &mut self,
        field: &FieldDescriptor,
        rules: Option<&Rules>,
        may_be_empty: bool,
    ) -> Json {
        match field.kind() {
            Kind::Message(message) if message.full_name() == "google.protobuf.Struct" => {
                let Some(rules) = rules else {
                    return well_known(&message);
                };
                let mut schema = json!({
                    "type": "object",
                    "additionalProperties": rules.struct_values(),
                });
                rules.bound_object(&mut schema);
                schema
            }
            Kind::Message(message) if is_well_known(&message) => well_known(&message),
            Kind::Message(message) => self.reference(&message),
            kind => self.enum_or_scalar(field, &kind, rules, may_be_empty),
        }
    }

    fn rules_of(&self, field: &FieldDescriptor) -> Option<Rules> {
        Rules::of(field, self.rules.as_ref())
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

fn map_of_scalars(field: &FieldDescriptor) -> bool {
    let Kind::Message(entry) = field.kind() else {
        return false;
    };
    !matches!(entry.map_entry_value_field().kind(), Kind::Message(_))
}

/// `kind`, or `[kind, "null"]`.
fn type_or_null(kind: &str, nullable: bool) -> Json {
    if nullable {
        json!([kind, "null"])
    } else {
        json!(kind)
    }
}

/// A oneof takes at most one member: for each two of its members (JSON
/// names), not both set (`null` reads as unset).
fn exclusive_pairs(names: &[String]) -> Vec<Json> {
    let mut pairs = Vec::new();
    for (index, first) in names.iter().enumerate() {
        for second in &names[index + 1..] {
            let set = json!({"not": {"type": "null"}});
            pairs.push(json!({"not": {
                "required": [first, second],
                "properties": {first: set, second: set},
            }}));
        }
    }
    pairs
}

/// A required oneof: exactly one of its members set, to something other
/// than `null`.
fn exactly_one_set(names: &[String]) -> Json {
    let choices: Vec<Json> = names
        .iter()
        .map(|name| json!({"required": [name], "properties": {name: {"not": {"type": "null"}}}}))
        .collect();
    json!({"oneOf": choices})
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
