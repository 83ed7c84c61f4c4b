//! Rapidly's customer API (seed 003, modelled on Polar): `/api/customers…`,
//! and the same routes under `/v1/customers…`, where Polar's SDKs call them
//! and find Polar's own extra fields. `Authorization: Bearer`; 422
//! `{"error","detail":[{type,loc,msg,input}]}` with every violation; 404
//! `{"error":"ResourceNotFound","detail":"Not found"}`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::RestState;
use super::family::{ApiError, Authed, Body, Family, Params, present, rfc3339, to_json};
use super::schemas;
use crate::auth::bearer_key;
use crate::domain::Change;
use crate::domain::customer::{
    AddressInput, BillingAddress, CustomerDetail, CustomerFilter, CustomerFilterInput,
    CustomerInput, CustomerLookup, CustomerPatch, CustomerPatchInput, CustomerType, MetadataValue,
    NewCustomer,
};
use crate::domain::page::{PageRequest, RAPIDLY_PAGES};
use crate::domain::user::Member;
use crate::error::{Error, FieldPath, FieldViolation, Segment};

/// Seed 003's family.
pub struct Rapidly;

impl Family for Rapidly {
    const TAG: &str = "rapidly";
    const ERROR_SCHEMA: &str = "RapidlyError";
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    /// Polar reports uniqueness clashes as validation errors.
    const CLASH: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

    fn key(headers: &HeaderMap) -> Option<&str> {
        bearer_key(headers)
    }

    fn field_name(path: &FieldPath) -> String {
        path.to_string()
    }

    fn error_body(error: &Error, message: &str, input: Option<&Value>) -> Value {
        let (kind, detail) = match error {
            Error::InvalidArgument(_)
            | Error::InvalidPageToken(_)
            | Error::ForbiddenTransition(_)
            | Error::AlreadyExists { .. } => {
                let detail: Vec<_> = error
                    .violations()
                    .iter()
                    .map(|v| {
                        let loc = loc(&v.field);
                        let value = input.and_then(|body| {
                            loc.iter()
                                .skip(1)
                                .try_fold(body, |at, key| match key {
                                    Value::Number(i) => at.get(usize::try_from(i.as_u64()?).ok()?),
                                    other => at.get(other.as_str()?),
                                })
                        });
                        json!({ "type": "value_error", "loc": loc, "msg": v.description, "input": value })
                    })
                    .collect();
                ("RequestValidationError", json!(detail))
            }
            Error::NotFound { .. } => ("ResourceNotFound", json!("Not found")),
            Error::CursorExpired => ("Gone", json!(message)),
            Error::TooSlow => ("TooManyRequests", json!(message)),
            Error::Unauthenticated => ("Unauthorized", json!(message)),
            Error::Aborted(_) => ("Conflict", json!(message)),
            Error::RateLimited { .. } => ("TooManyRequests", json!(message)),
            Error::Unavailable(_) | Error::ShuttingDown => ("ServiceUnavailable", json!(message)),
            Error::Internal(_) => ("InternalServerError", json!(message)),
        };
        to_json(ErrorBody {
            error: kind.to_owned(),
            detail,
        })
    }
}

/// A field path as Polar's `loc`: `["body", "billing_address", "country"]`;
/// query and path parameters keep their own first segment.
fn loc(path: &FieldPath) -> Vec<Value> {
    let mut parts: Vec<Value> = path
        .segments()
        .iter()
        .map(|segment| match segment {
            Segment::Field(name) => json!(name),
            Segment::Key(key) => json!(key),
            Segment::Index(i) => json!(i),
        })
        .collect();
    if !matches!(
        parts.first().and_then(Value::as_str),
        Some("query" | "path")
    ) {
        parts.insert(0, json!("body"));
    }
    parts
}

/// Which API a request came through: Rapidly's own routes, or Polar's
/// copies under `/v1`, whose customers carry Polar's extra fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Rapidly,
    Polar,
}

pub(super) fn routes() -> OpenApiRouter<RestState> {
    let customers = |shape: Shape| {
        OpenApiRouter::new()
            .routes(routes!(list, create))
            .routes(routes!(get_by_id, update_by_id, delete_by_id))
            .routes(routes!(
                get_by_external_id,
                update_by_external_id,
                delete_by_external_id
            ))
            .layer(Extension(shape))
    };
    OpenApiRouter::new()
        .nest("/api", customers(Shape::Rapidly))
        .nest("/v1", customers(Shape::Polar))
}

/// Polar's error bodies: `detail` is a message, or for 422 the list of
/// violations (`type`, `loc`, `msg`, `input`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RapidlyError)]
pub(super) struct ErrorBody {
    /// The error's class: `RequestValidationError`, `ResourceNotFound`, …
    error: String,
    #[schema(schema_with = error_detail_schema)]
    detail: Value,
}

/// `detail`: a message, or the violations of a validation error.
fn error_detail_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
    let location = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Integer));
    let violation = ObjectBuilder::new()
        .property("type", ObjectBuilder::new().schema_type(Type::String))
        .property("loc", ArrayBuilder::new().items(location))
        .property("msg", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "input",
            ObjectBuilder::new().schema_type(SchemaType::AnyValue),
        )
        .required("type")
        .required("loc")
        .required("msg");
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ArrayBuilder::new().items(violation))
        .into()
}

/// The list's query (`metadata[key]=value` pairs filter by metadata too).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read from the raw query, to take metadata[key] pairs too"
)]
pub(super) struct ListParams {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    page: Option<u64>,
    /// Page size, 1 to 100 (default 10); larger values are lowered to 100.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    limit: Option<u64>,
    /// Only the customer with this email.
    #[param(schema_with = schemas::email_or_none)]
    email: Option<String>,
    /// Only the customer with this external id.
    #[param(schema_with = schemas::external_id)]
    external_id: Option<String>,
    /// Customers whose name or email contains this text, or whose external
    /// id starts with it (case-insensitive, for all of Unicode).
    #[param(schema_with = schemas::search_query)]
    query: Option<String>,
    /// `-created_at` (default) or `created_at`.
    #[param(schema_with = sorting_schema)]
    sorting: Option<String>,
}

/// The list's orders.
fn sorting_schema() -> utoipa::openapi::schema::Object {
    schemas::one_of_words(&["created_at", "-created_at"])
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct AddressBody {
    #[serde(default)]
    #[schema(schema_with = schemas::country, required = true)]
    country: String,
    #[schema(schema_with = schemas::address_line)]
    line1: Option<String>,
    #[schema(schema_with = schemas::address_line)]
    line2: Option<String>,
    #[schema(schema_with = schemas::address_line)]
    postal_code: Option<String>,
    #[schema(schema_with = schemas::address_line)]
    city: Option<String>,
    /// For US and CA a subdivision code (`CA` or `US-CA`); free text
    /// elsewhere.
    #[schema(schema_with = schemas::address_line)]
    state: Option<String>,
}

impl From<AddressBody> for AddressInput {
    fn from(body: AddressBody) -> Self {
        Self {
            country: body.country,
            line1: body.line1,
            line2: body.line2,
            postal_code: body.postal_code,
            city: body.city,
            state: body.state,
        }
    }
}

/// A customer create or update body. Every field may be absent; `null`
/// is kept apart from absent where seed 003 gives it a meaning.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct CustomerBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schemas::email_or_none)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schemas::name)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schemas::external_id)]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = customer_type_schema)]
    r#type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AddressBody>)]
    billing_address: Option<Option<AddressBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schemas::nullable_metadata)]
    metadata: Option<Option<Map<String, Value>>>,
}

/// `individual`, `team`, or `null` (individual on create, unchanged on
/// update).
fn customer_type_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([json!("individual"), json!("team"), Value::Null]))
        .build()
}

/// The create body's own rule, for `/openapi.json`: an individual
/// customer (the default) needs an email address.
pub(super) struct NewCustomerBody;

impl utoipa::PartialSchema for NewCustomerBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let team = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["team"]))
            .build();
        schemas::with_one_of(
            "CustomerBody",
            vec![("email", schemas::email()), ("type", team)],
        )
    }
}

impl ToSchema for NewCustomerBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas::register_base::<CustomerBody>("CustomerBody", schemas);
    }
}

/// A PATCH body, for `/openapi.json` (the route reads a `CustomerBody`):
/// an email can be replaced but not removed, and `null` leaves it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only: the route reads a CustomerBody")]
pub(super) struct CustomerPatchBody {
    #[schema(schema_with = schemas::nullable_email)]
    email: Option<String>,
    #[schema(schema_with = schemas::name)]
    name: Option<String>,
    #[schema(schema_with = schemas::external_id)]
    external_id: Option<String>,
    #[schema(schema_with = customer_type_schema)]
    r#type: Option<String>,
    billing_address: Option<AddressBody>,
    #[schema(schema_with = schemas::nullable_metadata)]
    metadata: Option<Map<String, Value>>,
}

/// The update-by-external-id body: a PATCH body without the two fields
/// that route may not change (`external_id`, `type`).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only: the route reads a CustomerBody")]
pub(super) struct CustomerByExternalIdPatchBody {
    #[schema(schema_with = schemas::nullable_email)]
    email: Option<String>,
    #[schema(schema_with = schemas::name)]
    name: Option<String>,
    billing_address: Option<AddressBody>,
    #[schema(schema_with = schemas::nullable_metadata)]
    metadata: Option<Map<String, Value>>,
}

/// Wire-level checks the domain cannot see: metadata value types and the
/// customer type's spelling.
fn metadata(
    pairs: Map<String, Value>,
    wire: &mut Vec<FieldViolation>,
) -> BTreeMap<String, MetadataValue> {
    pairs
        .into_iter()
        .filter_map(
            |(key, value)| match serde_json::from_value::<MetadataValue>(value) {
                Ok(value) => Some((key, value)),
                Err(_) => {
                    wire.push(FieldViolation::new(
                        FieldPath::field("metadata").key(key),
                        "must be a string, an integer, a float or a boolean",
                    ));
                    None
                }
            },
        )
        .collect()
}

fn customer_type(text: Option<String>, wire: &mut Vec<FieldViolation>) -> Option<CustomerType> {
    match text.as_deref() {
        None => None,
        Some("individual") => Some(CustomerType::Individual),
        Some("team") => Some(CustomerType::Team),
        Some(_) => {
            wire.push(FieldViolation::new(
                "type",
                "must be 'individual' or 'team'",
            ));
            None
        }
    }
}

impl CustomerBody {
    /// The body as a customer; the raw body is kept to quote offending
    /// values.
    fn read(raw: &Value) -> Result<Self, ApiError<Rapidly>> {
        serde_json::from_value(raw.clone()).map_err(|e| {
            ApiError::from(Error::invalid("body", e.to_string())).with_input(raw.clone())
        })
    }

    fn into_input(self) -> (CustomerInput, Vec<FieldViolation>) {
        let mut wire = Vec::new();
        let input = CustomerInput {
            external_id: self.external_id.flatten(),
            email: self.email.flatten(),
            name: self.name.flatten(),
            billing_address: self.billing_address.flatten().map(Into::into),
            metadata: self.metadata.flatten().map(|m| metadata(m, &mut wire)),
            kind: customer_type(self.r#type.flatten(), &mut wire),
        };
        (input, wire)
    }

    /// Seed 003's PATCH: absent keeps, `null` clears where clearing means
    /// something (and is refused where the rules say so), and a null email
    /// changes nothing.
    fn into_patch(self) -> (CustomerPatchInput, Vec<FieldViolation>) {
        let mut wire = Vec::new();
        let change = |value: Option<Option<String>>| match value {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(text)) => Change::Set(text),
        };
        let kind = match self.r#type {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(text) => customer_type(text, &mut wire).map_or(Change::Keep, Change::Set),
        };
        let patch = CustomerPatchInput {
            external_id: change(self.external_id),
            email: change(self.email),
            name: change(self.name),
            billing_address: match self.billing_address {
                None => Change::Keep,
                Some(None) => Change::Clear,
                Some(Some(address)) => Change::Set(address.into()),
            },
            metadata: match self.metadata {
                None => Change::Keep,
                Some(None) => Change::Clear,
                Some(Some(pairs)) => Change::Set(metadata(pairs, &mut wire)),
            },
            kind,
        };
        (patch, wire)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AddressView {
    country: String,
    line1: Option<String>,
    line2: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
    state: Option<String>,
}

impl From<&BillingAddress> for AddressView {
    fn from(address: &BillingAddress) -> Self {
        let lines = address.lines();
        Self {
            country: lines.country,
            line1: lines.line1,
            line2: lines.line2,
            postal_code: lines.postal_code,
            city: lines.city,
            state: lines.state,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MemberView {
    id: String,
    created_at: String,
    modified_at: Option<String>,
    customer_id: String,
    email: Option<String>,
    name: Option<String>,
    external_id: Option<String>,
    role: &'static str,
}

impl From<&Member> for MemberView {
    fn from(member: &Member) -> Self {
        let m = &member.membership;
        Self {
            id: m.id.to_string(),
            created_at: rfc3339(m.created_at),
            modified_at: (m.updated_at != m.created_at).then(|| rfc3339(m.updated_at)),
            customer_id: m.company_id.to_string(),
            email: member.email.clone(),
            name: member.name.clone(),
            external_id: member.external_id.clone(),
            role: m.role.as_str(),
        }
    }
}

/// A customer in seed 003's response shape.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CustomerView {
    id: String,
    created_at: String,
    modified_at: Option<String>,
    #[schema(value_type = Object)]
    metadata: BTreeMap<String, MetadataValue>,
    external_id: Option<String>,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    billing_address: Option<AddressView>,
    workspace_id: String,
    deleted_at: Option<String>,
    avatar_url: Option<String>,
    r#type: &'static str,
    members: Vec<MemberView>,
    /// Only under `/v1/customers`: fields Polar's SDKs require.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    polar: Option<PolarFields>,
}

/// What Polar's customer model has beyond seed 003: the owner (Polar's
/// organisation is Kith's workspace) and billing fields Kith does not keep.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PolarFields {
    organization_id: String,
    billing_name: Option<String>,
    tax_id: Option<Vec<Value>>,
    first_user_event_at: Option<String>,
}

impl CustomerView {
    fn of(detail: &CustomerDetail, shape: Shape) -> Self {
        let customer = &detail.customer;
        Self {
            polar: (shape == Shape::Polar).then(|| PolarFields {
                organization_id: customer.workspace_id.to_string(),
                billing_name: customer.name.as_ref().map(|n| n.as_str().to_owned()),
                tax_id: None,
                first_user_event_at: None,
            }),
            id: customer.id.to_string(),
            created_at: rfc3339(customer.created_at),
            modified_at: customer.modified_at.map(rfc3339),
            metadata: customer
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            external_id: customer
                .external_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            email: customer.email.as_ref().map(|e| e.as_str().to_owned()),
            email_verified: customer.email_verified,
            name: customer.name.as_ref().map(|n| n.as_str().to_owned()),
            billing_address: customer.billing_address.as_ref().map(Into::into),
            workspace_id: customer.workspace_id.to_string(),
            deleted_at: customer.deleted_at.map(rfc3339),
            avatar_url: customer.avatar_url(),
            r#type: customer.kind.as_str(),
            members: detail.members.iter().map(Into::into).collect(),
        }
    }
}

/// Quotes the request body in the error, as Polar's 422s do.
fn quoting(raw: &Value) -> impl Fn(Error) -> ApiError<Rapidly> + '_ {
    |error| ApiError::from(error).with_input(raw.clone())
}

#[utoipa::path(post, path = "/customers", tag = "rapidly", request_body = NewCustomerBody, responses((status = 201, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Authed(caller, _): Authed<Rapidly>,
    Body(raw, _): Body<Rapidly, Value>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError<Rapidly>> {
    let (input, wire) = CustomerBody::read(&raw)?.into_input();
    let customer =
        Error::with_wire_violations(wire, NewCustomer::parse(input)).map_err(quoting(&raw))?;
    let customer = state
        .service
        .create_customer(&caller, customer)
        .await
        .map_err(quoting(&raw))?;
    Ok((
        StatusCode::CREATED,
        Json(CustomerView::of(&customer, shape)),
    ))
}

/// The path id must be a UUID; anything else is a 422 on `["path","id"]`.
fn by_id(id: &str) -> Result<CustomerLookup, Error> {
    CustomerLookup::by_id(id).map_err(|_| {
        Error::invalid(
            FieldPath::field("path").then("id"),
            "Input should be a valid UUID",
        )
    })
}

/// An external id no customer could have is simply not found.
fn by_external_id(id: &str) -> Result<CustomerLookup, Error> {
    CustomerLookup::by_external_id(id).map_err(|_| Error::NotFound {
        resource: "customer",
    })
}

#[utoipa::path(get, path = "/customers/{id}", tag = "rapidly", params(("id" = uuid::Uuid, Path, description = "The customer id (a UUID)")), responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_by_id(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
) -> Result<Json<CustomerView>, ApiError<Rapidly>> {
    let customer = state.service.get_customer(&caller, &by_id(&id)?).await?;
    Ok(Json(CustomerView::of(&customer, shape)))
}

#[utoipa::path(get, path = "/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_by_external_id(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
) -> Result<Json<CustomerView>, ApiError<Rapidly>> {
    let customer = state
        .service
        .get_customer(&caller, &by_external_id(&id)?)
        .await?;
    Ok(Json(CustomerView::of(&customer, shape)))
}

/// Seed 003's PATCH of the customer `lookup` names.
async fn update(
    state: &RestState,
    shape: Shape,
    caller: &crate::domain::Caller,
    lookup: &CustomerLookup,
    raw: &Value,
) -> Result<Json<CustomerView>, ApiError<Rapidly>> {
    let (patch, wire) = CustomerBody::read(raw)?.into_patch();
    let patch = Error::with_wire_violations(wire, CustomerPatch::parse(patch, lookup))
        .map_err(quoting(raw))?;
    let customer = state
        .service
        .update_customer(caller, lookup, &patch)
        .await
        .map_err(quoting(raw))?;
    Ok(Json(CustomerView::of(&customer, shape)))
}

#[utoipa::path(patch, path = "/customers/{id}", tag = "rapidly", params(("id" = uuid::Uuid, Path, description = "The customer id (a UUID)")), request_body = CustomerPatchBody, responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_by_id(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
    Body(raw, _): Body<Rapidly, Value>,
) -> Result<Json<CustomerView>, ApiError<Rapidly>> {
    update(&state, shape, &caller, &by_id(&id)?, &raw).await
}

/// The external id and the type cannot be changed this way
/// (`CustomerUpdateExternalID`).
#[utoipa::path(patch, path = "/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), request_body = CustomerByExternalIdPatchBody, responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_by_external_id(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
    Body(raw, _): Body<Rapidly, Value>,
) -> Result<Json<CustomerView>, ApiError<Rapidly>> {
    update(&state, shape, &caller, &by_external_id(&id)?, &raw).await
}

#[utoipa::path(delete, path = "/customers/{id}", tag = "rapidly", params(("id" = uuid::Uuid, Path, description = "The customer id (a UUID)")), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_by_id(
    State(state): State<RestState>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
) -> Result<StatusCode, ApiError<Rapidly>> {
    state.service.delete_customer(&caller, &by_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_by_external_id(
    State(state): State<RestState>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Rapidly>,
) -> Result<StatusCode, ApiError<Rapidly>> {
    state
        .service
        .delete_customer(&caller, &by_external_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ListView {
    items: Vec<CustomerView>,
    pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Pagination {
    total_count: u64,
    max_page: u64,
}

/// A query parameter: absent, or a whole number.
fn integer(
    query: &HashMap<String, String>,
    name: &'static str,
    wire: &mut Vec<FieldViolation>,
) -> Option<i64> {
    let text = query.get(name)?;
    text.parse::<i64>()
        .map_err(|_| {
            wire.push(FieldViolation::new(
                FieldPath::field("query").then(name),
                "Input should be a valid integer",
            ));
        })
        .ok()
}

/// `?page=1&limit=10&email=…&external_id=…&query=…&metadata[key]=value&sorting=-created_at`.
#[utoipa::path(get, path = "/customers", tag = "rapidly", params(ListParams), responses((status = 200, body = ListView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<RestState>,
    Extension(shape): Extension<Shape>,
    Authed(caller, _): Authed<Rapidly>,
    Params(query, _): Params<Rapidly, HashMap<String, String>>,
) -> Result<Json<ListView>, ApiError<Rapidly>> {
    let in_query = |error: Error| error.within(&FieldPath::field("query"));
    let mut wire = Vec::new();
    let page = integer(&query, "page", &mut wire).unwrap_or(1);
    if page < 1 {
        wire.push(FieldViolation::new(
            FieldPath::field("query").then("page"),
            "Input should be greater than or equal to 1",
        ));
    }
    let limit = integer(&query, "limit", &mut wire);
    let newest_first = match query.get("sorting").map(String::as_str) {
        None | Some("-created_at") => true,
        Some("created_at") => false,
        Some(_) => {
            wire.push(FieldViolation::new(
                FieldPath::field("query").then("sorting"),
                "Input should be 'created_at' or '-created_at'",
            ));
            true
        }
    };
    let metadata = query
        .iter()
        .filter_map(|(key, value)| {
            let key = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), MetadataValue::String(value.clone())))
        })
        .collect();
    let text = |name: &str| query.get(name).map_or("", String::as_str);
    let filter = CustomerFilter::parse(CustomerFilterInput {
        email: text("email"),
        external_id: text("external_id"),
        metadata,
        query: ("query", text("query")),
    })
    .map_err(in_query);
    let filter = Error::with_wire_violations(wire, filter)?;
    let mut request = PageRequest::parse(
        &RAPIDLY_PAGES,
        limit,
        "",
        &filter.canonical(caller.workspace),
    )
    .map_err(in_query)?;
    let size = request.size as u64;
    request = request.skipping(u64::try_from(page - 1).unwrap_or(0).saturating_mul(size));
    if newest_first {
        request = request.newest_first();
    }
    let total_count = state.service.count_customers(&caller, &filter).await?;
    let customers = state
        .service
        .list_customers(&caller, &filter, &request)
        .await?
        .items;
    Ok(Json(ListView {
        items: customers
            .items
            .iter()
            .map(|c| CustomerView::of(c, shape))
            .collect(),
        pagination: Pagination {
            total_count,
            max_page: total_count.div_ceil(size).max(1),
        },
    }))
}
