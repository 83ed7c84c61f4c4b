//! Rapidly's customer API (seed 003, modelled on Polar): `/api/customers…`,
//! and the same routes under `/v1/customers…` where Polar's SDKs call them.
//! `Authorization: Bearer`; 422 `{"error","detail":[{type,loc,msg,input}]}`
//! with every violation; 404 `{"error":"ResourceNotFound","detail":"Not found"}`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Family, RestState, authenticate, body, present, rfc3339};
use crate::domain::customer::{
    AddressInput, BillingAddress, Customer, CustomerFilter, CustomerInput, CustomerLookup,
    CustomerPatch, CustomerPatchInput, CustomerType, MetadataValue, NewCustomer,
};
use crate::domain::page::PageRequest;
use crate::domain::user::Member;
use crate::domain::{Change, WorkspaceId, now};
use crate::error::{Error, FieldViolation};

const FAMILY: Family = Family::Rapidly;

pub(super) fn routes() -> Router<RestState> {
    let mut router = Router::new();
    // Polar's SDKs call `/v1/customers/` with a trailing slash.
    for prefix in ["/api/customers", "/v1/customers"] {
        router = router
            .route(prefix, get(list).post(create))
            .route(&format!("{prefix}/"), get(list).post(create))
            .route(
                &format!("{prefix}/{{id}}"),
                get(get_by_id).patch(update_by_id).delete(delete_by_id),
            )
            .route(
                &format!("{prefix}/external/{{external_id}}"),
                get(get_by_external_id)
                    .patch(update_by_external_id)
                    .delete(delete_by_external_id),
            );
    }
    router
}

/// Polar's error bodies: `detail` is a message, or for 422 the list of
/// violations (`type`, `loc`, `msg`, `input`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: String,
    #[schema(value_type = Object)]
    detail: Value,
}

impl ErrorBody {
    pub(super) fn new(error: &str, detail: Value) -> Self {
        Self {
            error: error.to_owned(),
            detail,
        }
    }
}

/// The list's query (`metadata[key]=value` pairs filter by metadata too).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct ListParams {
    /// Page number, from 1.
    page: Option<u64>,
    /// Page size, 1 to 100 (default 10).
    limit: Option<u64>,
    /// Only the customer with this email.
    email: Option<String>,
    /// Only the customer with this external id.
    external_id: Option<String>,
    /// `-created_at` (default) or `created_at`.
    sorting: Option<String>,
}

fn fail(error: Error) -> ApiError {
    ApiError::new(FAMILY, error)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct AddressBody {
    #[serde(default)]
    country: String,
    line1: Option<String>,
    line2: Option<String>,
    postal_code: Option<String>,
    city: Option<String>,
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
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    r#type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AddressBody>)]
    billing_address: Option<Option<AddressBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Option<Map<String, Value>>>,
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
                        format!("metadata.{key}"),
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

/// The body as JSON (kept to echo offending inputs) and as a customer.
fn customer_body(
    family_body: Result<Json<Value>, JsonRejection>,
) -> Result<(Value, CustomerBody), ApiError> {
    let raw = body(FAMILY, family_body)?;
    let parsed = serde_json::from_value::<CustomerBody>(raw.clone())
        .map_err(|e| fail(Error::invalid("body", e.to_string())).with_input(raw.clone()))?;
    Ok((raw, parsed))
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

/// Whether a request came through Polar's prefix.
fn polar(uri: &Uri) -> bool {
    uri.path().starts_with("/v1/")
}

impl CustomerView {
    fn of(customer: &Customer, members: &[Member], polar: bool) -> Self {
        Self {
            polar: polar.then(|| PolarFields {
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
            members: members.iter().map(Into::into).collect(),
        }
    }
}

pub(super) async fn view(
    state: &RestState,
    workspace: WorkspaceId,
    customer: &Customer,
    uri: &Uri,
) -> Result<CustomerView, ApiError> {
    let mut members = state
        .store
        .customer_members(workspace, &[customer.id])
        .await
        .map_err(fail)?;
    Ok(CustomerView::of(
        customer,
        &members.remove(&customer.id).unwrap_or_default(),
        polar(uri),
    ))
}

#[utoipa::path(post, path = "/api/customers", tag = "rapidly", request_body = CustomerBody, responses((status = 201, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<RestState>,
    uri: Uri,
    headers: HeaderMap,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let workspace = authenticate(&state, FAMILY, &headers).await?;
    let (raw, request) = customer_body(request)?;
    let (input, wire) = request.into_input();
    let customer = Error::with_wire_violations(wire, NewCustomer::parse(input))
        .map_err(|e| fail(e).with_input(raw.clone()))?
        .into_customer(workspace, now());
    state
        .store
        .insert_customer(&customer)
        .await
        .map_err(|e| fail(e).with_input(raw))?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, workspace, &customer, &uri).await?),
    ))
}

/// The path id must be a UUID; anything else is a 422 on `["path","id"]`.
fn by_id(id: &str) -> Result<CustomerLookup, ApiError> {
    CustomerLookup::by_id(id)
        .map_err(|_| fail(Error::invalid("path.id", "Input should be a valid UUID")))
}

fn by_external_id(id: &str) -> Result<CustomerLookup, ApiError> {
    CustomerLookup::by_external_id(id).map_err(|_| {
        fail(Error::NotFound {
            resource: "customer",
        })
    })
}

pub(super) async fn get_one(
    state: &RestState,
    uri: &Uri,
    headers: &HeaderMap,
    lookup: Result<CustomerLookup, ApiError>,
) -> Result<Json<CustomerView>, ApiError> {
    let workspace = authenticate(state, FAMILY, headers).await?;
    let customer = state
        .store
        .get_customer(workspace, &lookup?)
        .await
        .map_err(fail)?;
    Ok(Json(view(state, workspace, &customer, uri).await?))
}

#[utoipa::path(get, path = "/api/customers/{id}", tag = "rapidly", params(("id" = String, Path, description = "The customer id (a UUID)")), responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn get_by_id(
    State(state): State<RestState>,
    uri: Uri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CustomerView>, ApiError> {
    get_one(&state, &uri, &headers, by_id(&id)).await
}

#[utoipa::path(get, path = "/api/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id")), responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn get_by_external_id(
    State(state): State<RestState>,
    uri: Uri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CustomerView>, ApiError> {
    get_one(&state, &uri, &headers, by_external_id(&id)).await
}

pub(super) async fn update_one(
    state: &RestState,
    uri: &Uri,
    headers: &HeaderMap,
    lookup: Result<CustomerLookup, ApiError>,
    request: Result<Json<Value>, JsonRejection>,
    by_external: bool,
) -> Result<Json<CustomerView>, ApiError> {
    let workspace = authenticate(state, FAMILY, headers).await?;
    let lookup = lookup?;
    let (raw, request) = customer_body(request)?;
    // Updating by external id cannot change the external id or the type.
    let mut refused = Vec::new();
    if by_external {
        for field in ["external_id", "type"] {
            if raw.get(field).is_some() {
                refused.push(FieldViolation::new(
                    field,
                    "cannot be changed when updating by external id",
                ));
            }
        }
    }
    let (patch, mut wire) = request.into_patch();
    wire.append(&mut refused);
    let patch = Error::with_wire_violations(wire, CustomerPatch::parse(patch))
        .map_err(|e| fail(e).with_input(raw.clone()))?;
    let customer = state
        .store
        .update_customer(workspace, &lookup, &patch)
        .await
        .map_err(|e| fail(e).with_input(raw))?;
    Ok(Json(view(state, workspace, &customer, uri).await?))
}

#[utoipa::path(patch, path = "/api/customers/{id}", tag = "rapidly", params(("id" = String, Path, description = "The customer id (a UUID)")), request_body = CustomerBody, responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update_by_id(
    State(state): State<RestState>,
    uri: Uri,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<CustomerView>, ApiError> {
    update_one(&state, &uri, &headers, by_id(&id), request, false).await
}

#[utoipa::path(patch, path = "/api/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id")), request_body = CustomerBody, responses((status = 200, body = CustomerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update_by_external_id(
    State(state): State<RestState>,
    uri: Uri,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<Value>, JsonRejection>,
) -> Result<Json<CustomerView>, ApiError> {
    update_one(&state, &uri, &headers, by_external_id(&id), request, true).await
}

pub(super) async fn delete_one(
    state: &RestState,
    headers: &HeaderMap,
    lookup: Result<CustomerLookup, ApiError>,
) -> Result<StatusCode, ApiError> {
    let workspace = authenticate(state, FAMILY, headers).await?;
    state
        .store
        .delete_customer(workspace, &lookup?)
        .await
        .map_err(fail)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/customers/{id}", tag = "rapidly", params(("id" = String, Path, description = "The customer id (a UUID)")), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn delete_by_id(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete_one(&state, &headers, by_id(&id)).await
}

#[utoipa::path(delete, path = "/api/customers/external/{external_id}", tag = "rapidly", params(("external_id" = String, Path, description = "The customer's external id")), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn delete_by_external_id(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete_one(&state, &headers, by_external_id(&id)).await
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

/// `?page=1&limit=10&email=…&external_id=…&metadata[key]=value&sorting=-created_at`.
#[utoipa::path(get, path = "/api/customers", tag = "rapidly", params(ListParams), responses((status = 200, body = ListView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<RestState>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ListView>, ApiError> {
    let workspace = authenticate(&state, FAMILY, &headers).await?;
    let mut wire = Vec::new();
    let number = |name: &str, default: u64, wire: &mut Vec<FieldViolation>| match query.get(name) {
        None => default,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| {
                wire.push(FieldViolation::new(
                    format!("query.{name}"),
                    "Input should be a positive integer",
                ));
                default
            }),
    };
    let page = number("page", 1, &mut wire);
    // Polar clamps the limit silently.
    let limit = number("limit", 10, &mut wire).min(100);
    let newest_first = match query.get("sorting").map(String::as_str) {
        None | Some("-created_at") => true,
        Some("created_at") => false,
        Some(_) => {
            wire.push(FieldViolation::new(
                "query.sorting",
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
    let filter = CustomerFilter::parse(
        query.get("email").map_or("", String::as_str),
        query.get("external_id").map_or("", String::as_str),
        metadata,
    );
    let filter = Error::with_wire_violations(wire, filter).map_err(fail)?;
    let limit_i64 = i64::try_from(limit).unwrap_or(100);
    let mut request = PageRequest::parse(limit_i64, "", &filter.canonical(workspace))
        .map_err(fail)?
        .skipping((page - 1).saturating_mul(limit));
    if newest_first {
        request = request.newest_first();
    }
    let total_count = state
        .store
        .count_customers(workspace, &filter)
        .await
        .map_err(fail)?;
    let customers = state
        .store
        .list_customers(workspace, &filter, &request)
        .await
        .map_err(fail)?;
    let ids: Vec<_> = customers.items.iter().map(|c| c.id).collect();
    let mut members = state
        .store
        .customer_members(workspace, &ids)
        .await
        .map_err(fail)?;
    Ok(Json(ListView {
        items: customers
            .items
            .iter()
            .map(|c| CustomerView::of(c, &members.remove(&c.id).unwrap_or_default(), polar(&uri)))
            .collect(),
        pagination: Pagination {
            total_count,
            max_page: total_count.div_ceil(limit).max(1),
        },
    }))
}

/// A field path as Polar's `loc`: `["body", "billing_address", "country"]`;
/// query and path fields keep their own first segment.
pub(super) fn loc(path: &str) -> Vec<Value> {
    let mut parts: Vec<Value> = path.split('.').map(|p| json!(p)).collect();
    if !matches!(path.split('.').next(), Some("query" | "path")) {
        parts.insert(0, json!("body"));
    }
    parts
}
