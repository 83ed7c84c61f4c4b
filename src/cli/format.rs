//! Records in files: one canonical JSON object per line (JSONL), or CSV
//! whose columns are the record's fields by name.
//!
//! Both are derived from the record's message descriptor, so a field added
//! to the contract is imported and exported with no new code. CSV maps a
//! header to fields this way:
//! - a field's name (`email`, or its JSON name `firstName`) is that field;
//!   a list, a map or a message other than a timestamp is written as JSON;
//! - `parent.child` is a field of a nested message (`billing_address.city`),
//!   or one key of a map or a `Struct` (`metadata.plan`, `keys.email`);
//! - output-only columns (`id`, `created_at`) are exported and ignored on
//!   import;
//! - any other column is one key of the kind's free-form field (a person's
//!   attributes, a customer's metadata, a user's traits), where it has one;
//! - an empty cell is a value not sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
    Value as ReflectValue,
};
use serde_json::{Map, Value};

use super::Failure;
use crate::config::FileFormat;

/// `google.api.field_behavior = OUTPUT_ONLY`.
const OUTPUT_ONLY: i32 = 3;

/// Messages written as one JSON string, and so as one plain cell.
const SCALAR_MESSAGES: [&str; 3] = [
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
];

/// How one kind of record reads and writes.
#[derive(Clone)]
pub struct Codec {
    record: MessageDescriptor,
    /// Where CSV columns that name no field go.
    free_form: Option<FieldDescriptor>,
    output_only: Option<prost_reflect::ExtensionDescriptor>,
    /// Output-only fields an import still reads.
    read_anyway: &'static [&'static str],
}

impl Codec {
    /// `free_form` names the field unknown CSV columns go into;
    /// `read_anyway` the output-only fields an import reads all the same.
    pub fn new(
        record: &str,
        free_form: Option<&str>,
        read_anyway: &'static [&'static str],
    ) -> Self {
        let pool = crate::pb::descriptor_pool();
        let record = pool
            .get_message_by_name(record)
            .unwrap_or_else(|| panic!("{record} is in the contract"));
        let free_form = free_form.map(|name| {
            record
                .get_field_by_name(name)
                .unwrap_or_else(|| panic!("{} has a field {name}", record.full_name()))
        });
        Self {
            output_only: pool.get_extension_by_name("google.api.field_behavior"),
            record,
            free_form,
            read_anyway,
        }
    }

    /// A typed record as the record message of the descriptor pool.
    fn dynamic<R: prost::Message>(&self, record: &R) -> DynamicMessage {
        DynamicMessage::decode(self.record.clone(), record.encode_to_vec().as_slice())
            .expect("a record decodes as its own message")
    }

    fn is_output_only(&self, field: &FieldDescriptor) -> bool {
        let Some(extension) = &self.output_only else {
            return false;
        };
        if self.read_anyway.contains(&field.name()) {
            return false;
        }
        let options = field.options();
        if !options.has_extension(extension) {
            return false;
        }
        match &*options.get_extension(extension) {
            ReflectValue::List(behaviors) => behaviors
                .iter()
                .any(|b| matches!(b, ReflectValue::EnumNumber(OUTPUT_ONLY))),
            _ => false,
        }
    }

    /// The record of one JSONL line.
    pub fn parse_json_line<R: prost::Message + Default>(&self, line: &str) -> Result<R, RowError> {
        let mut json = serde_json::Deserializer::from_str(line);
        let message =
            DynamicMessage::deserialize_with_options(self.record.clone(), &mut json, &options())
                .and_then(|message| json.end().map(|()| message))
                .map_err(|error| RowError::new("", json_reason(&error)))?;
        typed(&message)
    }

    /// One JSONL line (no newline) of a record.
    pub fn to_json_line<R: prost::Message>(&self, record: &R) -> String {
        let message = self.dynamic(record);
        let mut line = Vec::new();
        let mut json = serde_json::Serializer::new(&mut line);
        message
            .serialize_with_options(&mut json, &SerializeOptions::new())
            .expect("a message serialises to JSON");
        String::from_utf8(line).expect("JSON is UTF-8")
    }

    /// How a CSV file with this header maps to the record's fields.
    pub fn csv_columns(&self, header: &csv::StringRecord) -> Result<Vec<Column>, Failure> {
        header.iter().map(|name| self.column(name.trim())).collect()
    }

    fn column(&self, name: &str) -> Result<Column, Failure> {
        if let Some(field) = self.field(&self.record, name) {
            return Ok(if self.is_output_only(&field) {
                Column::Ignored
            } else {
                Column::Field(field)
            });
        }
        if let Some((parent, child)) = name.split_once('.')
            && let Some(parent) = self.field(&self.record, parent)
        {
            if self.is_output_only(&parent) {
                return Ok(Column::Ignored);
            }
            if parent.is_map() || is_struct(&parent) {
                return Ok(Column::Key(parent, child.to_owned()));
            }
            if let Kind::Message(nested) = parent.kind()
                && !parent.is_list()
            {
                // A typo in a nested field is an error, never a free-form key.
                return match self.field(&nested, child) {
                    Some(child) => Ok(Column::Nested(parent, child)),
                    None => Err(Failure::usage(format!(
                        "unknown column `{name}`; {} has: {}",
                        parent.name(),
                        nested
                            .fields()
                            .map(|f| f.name().to_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                };
            }
        }
        match &self.free_form {
            Some(free_form) => Ok(Column::Key(free_form.clone(), name.to_owned())),
            None => Err(Failure::usage(format!(
                "unknown column `{name}`; the columns an import reads are: {}",
                self.importable_columns().join(", ")
            ))),
        }
    }

    fn field(&self, message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
        message
            .get_field_by_name(name)
            .or_else(|| message.get_field_by_json_name(name))
    }

    /// The record of one CSV row.
    pub fn parse_csv_row<R: prost::Message + Default>(
        &self,
        columns: &[Column],
        row: &csv::StringRecord,
    ) -> Result<R, RowError> {
        if row.len() != columns.len() {
            return Err(RowError::new(
                "",
                format!(
                    "has {} cells where the header has {} columns",
                    row.len(),
                    columns.len()
                ),
            ));
        }
        let mut json = Map::new();
        for (column, cell) in columns.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            match column {
                Column::Ignored => {}
                Column::Field(field) => {
                    let value = cell_value(field, cell)?;
                    merge(&mut json, field.json_name(), value);
                }
                Column::Nested(parent, child) => {
                    let value = cell_value(child, cell)?;
                    let mut nested = Map::new();
                    nested.insert(child.json_name().to_owned(), value);
                    merge(&mut json, parent.json_name(), Value::Object(nested));
                }
                Column::Key(parent, key) => {
                    let mut entry = Map::new();
                    entry.insert(key.clone(), key_value(parent, cell));
                    merge(&mut json, parent.json_name(), Value::Object(entry));
                }
            }
        }
        let message = DynamicMessage::deserialize_with_options(
            self.record.clone(),
            Value::Object(json),
            &options(),
        )
        .map_err(|error| RowError::new("", error.to_string()))?;
        typed(&message)
    }

    /// The export's columns an import does not ignore.
    fn importable_columns(&self) -> Vec<String> {
        self.export_columns()
            .into_iter()
            .filter(|(parent, _)| !self.is_output_only(parent))
            .map(|(parent, child)| column_name(&parent, child.as_ref()))
            .collect()
    }

    /// The columns `kith export` writes: every field, a nested message's
    /// fields one by one.
    pub fn csv_header(&self) -> Vec<String> {
        self.export_columns()
            .into_iter()
            .map(|(parent, child)| column_name(&parent, child.as_ref()))
            .collect()
    }

    fn export_columns(&self) -> Vec<(FieldDescriptor, Option<FieldDescriptor>)> {
        let mut columns = Vec::new();
        for field in self.record.fields() {
            match field.kind() {
                Kind::Message(nested)
                    if !field.is_list()
                        && !field.is_map()
                        && !is_struct(&field)
                        && !SCALAR_MESSAGES.contains(&nested.full_name()) =>
                {
                    columns.extend(nested.fields().map(|child| (field.clone(), Some(child))));
                }
                _ => columns.push((field, None)),
            }
        }
        columns
    }

    /// One CSV row of a record, in `csv_header`'s order.
    pub fn to_csv<R: prost::Message>(&self, record: &R) -> Vec<String> {
        let json =
            serde_json::to_value(self.dynamic(record)).expect("a message serialises to JSON");
        self.export_columns()
            .iter()
            .map(|(parent, child)| {
                let value = json.get(parent.json_name());
                let value = match child {
                    Some(child) => value.and_then(|v| v.get(child.json_name())),
                    None => value,
                };
                match value {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                }
            })
            .collect()
    }
}

fn column_name(parent: &FieldDescriptor, child: Option<&FieldDescriptor>) -> String {
    match child {
        Some(child) => format!("{}.{}", parent.name(), child.name()),
        None => parent.name().to_owned(),
    }
}

/// A JSONL line without its line break and surrounding blanks (and, on
/// the first line, a byte-order mark).
fn trim_line(mut bytes: Vec<u8>, first: bool) -> Vec<u8> {
    if first && bytes.starts_with("\u{feff}".as_bytes()) {
        bytes.drain(..3);
    }
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    bytes.truncate(end);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes.drain(..start);
    bytes
}

/// Where one CSV column goes.
#[derive(Debug, Clone)]
pub enum Column {
    Field(FieldDescriptor),
    Nested(FieldDescriptor, FieldDescriptor),
    /// One key of a map or a `Struct`.
    Key(FieldDescriptor, String),
    Ignored,
}

/// What is wrong with one row: the field (or column) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub field: String,
    pub reason: String,
}

impl RowError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// A JSON error without serde's "at line 1 column 42": the line is the
/// file's, reported beside it.
fn json_reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(reason) => format!("{reason} (column {})", error.column()),
        None => text,
    }
}

fn options() -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(true)
}

fn typed<R: prost::Message + Default>(message: &DynamicMessage) -> Result<R, RowError> {
    message
        .transcode_to()
        .map_err(|error| RowError::new("", error.to_string()))
}

fn is_struct(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Struct")
}

/// A cell as the JSON value of its field.
fn cell_value(field: &FieldDescriptor, cell: &str) -> Result<Value, RowError> {
    let as_json = || {
        serde_json::from_str(cell)
            .map_err(|error| RowError::new(field.name(), format!("is not JSON: {error}")))
    };
    if field.is_list() || field.is_map() {
        return as_json();
    }
    match field.kind() {
        Kind::Message(message) if SCALAR_MESSAGES.contains(&message.full_name()) => {
            Ok(Value::String(cell.to_owned()))
        }
        Kind::Message(_) => as_json(),
        Kind::Bool => match cell.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(RowError::new(field.name(), "must be true or false")),
        },
        // A short form (`active`) of an enum value (`PERSON_STATUS_ACTIVE`)
        // is accepted too: files from elsewhere spell values that way.
        // The values share their enum's prefix (`PERSON_STATUS_`), which
        // the zero value (`PERSON_STATUS_UNSPECIFIED`) shows.
        Kind::Enum(values) => {
            let zero = values.default_value();
            let prefix = zero.name().strip_suffix("UNSPECIFIED").unwrap_or("");
            let long = format!("{prefix}{}", cell.to_ascii_uppercase().replace('-', "_"));
            let name = values
                .get_value_by_name(cell)
                .or_else(|| values.get_value_by_name(&long))
                .map_or_else(|| cell.to_owned(), |value| value.name().to_owned());
            Ok(Value::String(name))
        }
        // Numbers as strings, which the proto3 JSON mapping accepts for
        // every numeric type and which keeps 64-bit values exact.
        _ => Ok(Value::String(cell.to_owned())),
    }
}

/// A cell as the value of one key of a map or `Struct` field.
fn key_value(field: &FieldDescriptor, cell: &str) -> Value {
    let text = Value::String(cell.to_owned());
    match field.kind() {
        Kind::Message(entry) if field.is_map() => match entry.map_entry_value_field().kind() {
            // A customer's metadata value: a string unless the column names
            // its type (a `metadata` JSON column does that).
            Kind::Message(_) => serde_json::json!({ "stringValue": cell }),
            _ => text,
        },
        _ => text,
    }
}

/// Sets `key` in `json`, merging objects: `metadata` and `metadata.plan`
/// columns add up.
fn merge(json: &mut Map<String, Value>, key: &str, value: Value) {
    match (json.get_mut(key), value) {
        (Some(Value::Object(held)), Value::Object(more)) => held.extend(more),
        (_, value) => {
            json.insert(key.to_owned(), value);
        }
    }
}

/// Where a row came from, as read, to write it again to the rejects file.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSONL line, without its line break.
    Line(Vec<u8>),
    Csv(csv::ByteRecord),
}

/// One row of the file and its record, or what is wrong with it.
pub struct Row<R> {
    /// 1-based line of the file the row starts on.
    pub line: u64,
    /// How far into the file the row ends, in bytes.
    pub offset: u64,
    pub source: Source,
    pub record: Result<R, RowError>,
}

/// Reads a file row by row.
pub struct RowReader {
    codec: Codec,
    input: Input,
    size: Option<u64>,
}

type Bytes = Box<dyn Read + Send>;

enum Input {
    Jsonl {
        lines: BufReader<Bytes>,
        line: u64,
        offset: u64,
    },
    Csv {
        reader: csv::Reader<Bytes>,
        columns: Vec<Column>,
        header: csv::StringRecord,
    },
}

impl RowReader {
    /// Opens `path` (`-` is standard input) and, for CSV, reads its header.
    pub fn open(path: &Path, format: FileFormat, codec: Codec) -> Result<Self, Failure> {
        let (input, size): (Bytes, Option<u64>) = if path == Path::new("-") {
            (Box::new(std::io::stdin()), None)
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        let input = match format {
            FileFormat::Jsonl => Input::Jsonl {
                lines: BufReader::with_capacity(1 << 16, input),
                line: 0,
                offset: 0,
            },
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .buffer_capacity(1 << 16)
                    .from_reader(input);
                let header = reader
                    .headers()
                    .map_err(|e| Failure::usage(format!("cannot read the CSV header: {e}")))?
                    .clone();
                let columns = codec.csv_columns(&header)?;
                Input::Csv {
                    reader,
                    columns,
                    header,
                }
            }
        };
        Ok(Self { codec, input, size })
    }

    /// The file's size, when it is a file.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The CSV header, written first to a CSV rejects file.
    pub fn csv_header(&self) -> Option<&csv::StringRecord> {
        match &self.input {
            Input::Csv { header, .. } => Some(header),
            Input::Jsonl { .. } => None,
        }
    }

    /// The next row; `None` at the end of the file.
    pub fn next_row<R: prost::Message + Default>(&mut self) -> Option<Result<Row<R>, Failure>> {
        match &mut self.input {
            Input::Jsonl {
                lines,
                line,
                offset,
            } => loop {
                let mut bytes = Vec::new();
                match lines.read_until(b'\n', &mut bytes) {
                    Ok(0) => return None,
                    Ok(n) => *offset += n as u64,
                    Err(e) => return Some(Err(Failure::usage(format!("cannot read: {e}")))),
                }
                *line += 1;
                let bytes = trim_line(bytes, *line == 1);
                if bytes.is_empty() {
                    continue;
                }
                // A line that is not UTF-8 is one bad row, not a bad file.
                let record = match std::str::from_utf8(&bytes) {
                    Ok(text) => self.codec.parse_json_line(text),
                    Err(_) => Err(RowError::new("", "is not UTF-8 text")),
                };
                let source = Source::Line(bytes);
                return Some(Ok(Row {
                    line: *line,
                    offset: *offset,
                    source,
                    record,
                }));
            },
            Input::Csv {
                reader, columns, ..
            } => {
                let mut row = csv::ByteRecord::new();
                match reader.read_byte_record(&mut row) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = row.position().map_or(0, csv::Position::line);
                        let record = match csv::StringRecord::from_byte_record(row.clone()) {
                            Ok(text) => self.codec.parse_csv_row(columns, &text),
                            Err(_) => Err(RowError::new("", "is not UTF-8 text")),
                        };
                        Some(Ok(Row {
                            line,
                            // Where the next row starts.
                            offset: reader.position().byte(),
                            source: Source::Csv(row),
                            record,
                        }))
                    }
                    Err(e) => Some(Err(Failure::usage(format!("cannot read the CSV: {e}")))),
                }
            }
        }
    }
}

/// The rejected rows, written as they were read (a CSV file starts with
/// its header), ready to fix and import again.
pub struct Rejects {
    output: Option<RejectsOutput>,
}

enum RejectsOutput {
    Lines(std::io::BufWriter<std::fs::File>),
    Csv(Box<csv::Writer<std::fs::File>>),
}

impl Rejects {
    pub fn create(
        path: Option<&Path>,
        csv_header: Option<&csv::StringRecord>,
    ) -> Result<Self, Failure> {
        let Some(path) = path else {
            return Ok(Self { output: None });
        };
        let file = std::fs::File::create(path)
            .map_err(|e| Failure::usage(format!("cannot create {}: {e}", path.display())))?;
        let output = match csv_header {
            Some(header) => {
                let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
                writer
                    .write_record(header)
                    .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
                RejectsOutput::Csv(Box::new(writer))
            }
            None => RejectsOutput::Lines(std::io::BufWriter::new(file)),
        };
        Ok(Self {
            output: Some(output),
        })
    }

    pub fn write(&mut self, source: &Source) -> Result<(), Failure> {
        let written = match (&mut self.output, source) {
            (None, _) => return Ok(()),
            (Some(RejectsOutput::Lines(out)), Source::Line(line)) => out
                .write_all(line)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| e.to_string()),
            (Some(RejectsOutput::Csv(out)), Source::Csv(row)) => {
                out.write_byte_record(row).map_err(|e| e.to_string())
            }
            _ => unreachable!("a file's rows have the file's format"),
        };
        written.map_err(|e| Failure::usage(format!("cannot write the rejects file: {e}")))
    }

    pub fn finish(&mut self) -> Result<(), Failure> {
        let flushed = match &mut self.output {
            None => Ok(()),
            Some(RejectsOutput::Lines(out)) => out.flush(),
            Some(RejectsOutput::Csv(out)) => out.flush(),
        };
        flushed.map_err(|e| Failure::usage(format!("cannot write the rejects file: {e}")))
    }
}
