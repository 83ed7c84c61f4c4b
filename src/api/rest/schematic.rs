//! Schematic's users and companies API (seed 001): `/users…`, `/companies…`,
//! `/company-memberships…`, `/user-traits`, `/company-traits`,
//! `X-Schematic-Api-Key`, `{"data": …, "params": {…}}` envelopes and
//! `{"error": "…"}` errors. Lists page by `limit`/`offset`, newest first.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::RestState;
use super::family::{
    ApiError, Authed, Body, Family, Params, integral, rfc3339, to_json, violation_list,
};
use super::schemas;
use crate::auth::header_key;
use crate::domain::customer::{CustomerFilter, CustomerFilterInput};
use crate::domain::page::{PageRequest, SCHEMATIC_PAGES};
use crate::domain::user::{
    Company, CompanyLookup, CompanyTraitUpdate, CompanyUpsert, Keys, MembershipDetail,
    MembershipFilter, MembershipInput, TraitChange, TraitChangeInput, TraitUpdate, Upsert,
    UpsertInput, UserDetail, UserFilter, UserLookup, parse_id_filter, parse_uuid,
};
use crate::domain::{Caller, WorkspaceId};
use crate::error::{Error, FieldPath};

/// Seed 001's family.
pub struct Schematic;

impl Family for Schematic {
    const TAG: &str = "schematic";
    const ERROR_SCHEMA: &str = "SchematicError";
    /// Schematic answers every invalid request with 400.
    const INVALID: StatusCode = StatusCode::BAD_REQUEST;

    fn key(headers: &HeaderMap) -> Option<&str> {
        header_key(headers, "x-schematic-api-key")
    }

    fn field_name(path: &FieldPath) -> String {
        path.to_string()
    }

    fn error_body(error: &Error, message: &str, _input: Option<&Value>) -> Value {
        let message = if error.violations().is_empty() {
            message.to_owned()
        } else {
            violation_list::<Self>(error.violations())
        };
        to_json(ErrorBody { error: message })
    }
}

pub(super) fn routes() -> OpenApiRouter<RestState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_user, list_users))
        .routes(routes!(create_user))
        .routes(routes!(count_users))
        .routes(routes!(lookup_user))
        .routes(routes!(delete_user_by_keys))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(user_trait))
        .routes(routes!(upsert_company, list_companies))
        .routes(routes!(create_company))
        .routes(routes!(count_companies))
        .routes(routes!(lookup_company))
        .routes(routes!(delete_company_by_keys))
        .routes(routes!(get_company, delete_company))
        .routes(routes!(company_trait))
        .routes(routes!(get_or_create_membership, list_memberships))
        .routes(routes!(delete_membership))
}

/// `{"data": …, "params": {…}}`: every Schematic reply's envelope.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Envelope<T> {
    data: T,
    /// The request's inputs, echoed.
    #[schema(value_type = Object)]
    params: Value,
}

fn envelope<T>(data: T, params: Value) -> Json<Envelope<T>> {
    Json(Envelope { data, params })
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Deleted {
    deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Count {
    count: u64,
}

/// Schematic's error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SchematicError)]
pub(super) struct ErrorBody {
    pub(super) error: String,
}

/// A company's upsert body, and what a user's adds its companies to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = SchematicCompanyBody)]
pub(super) struct RecordBody {
    /// The record's id; without it, `keys` must name at least one key.
    #[schema(schema_with = schemas::nullable_uuid)]
    id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = upsert_keys)]
    keys: BTreeMap<String, String>,
    #[schema(schema_with = schemas::user_name)]
    name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::traits)]
    traits: Map<String, Value>,
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    update_only: Option<bool>,
}

/// A user's upsert body: the record, and the companies it belongs to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = SchematicUpsertBody)]
pub(super) struct UpsertBody {
    #[serde(flatten)]
    record: RecordBody,
    #[schema(schema_with = schemas::nullable_keys)]
    company: Option<BTreeMap<String, String>>,
    #[schema(schema_with = schemas::nullable_uuid)]
    company_id: Option<String>,
    #[schema(schema_with = schemas::company_key_list)]
    companies: Option<Vec<BTreeMap<String, String>>>,
    #[schema(schema_with = schemas::company_id_list)]
    company_ids: Option<Vec<String>>,
}

/// An upsert's keys: at least one is required without an `id`, which the
/// body's schema states (`anyOf`), so each alone may be empty.
fn upsert_keys() -> utoipa::openapi::schema::Object {
    schemas::keys(false)
}

impl RecordBody {
    fn into_input(self) -> UpsertInput {
        UpsertInput {
            id: self.id,
            keys: self.keys,
            name: self.name,
            traits: self.traits,
            last_seen_at: self
                .last_seen_at
                .map(|t| chrono::SubsecRound::trunc_subsecs(t, 3)),
            update_only: self.update_only.unwrap_or(false),
        }
    }

    /// A company upsert. A user's membership fields, sent here, are
    /// fields a company does not have, ignored like any other.
    fn into_company(self) -> Result<CompanyUpsert, Error> {
        CompanyUpsert::parse(self.into_input())
    }
}

impl UpsertBody {
    fn into_user(self) -> Result<Upsert, Error> {
        let memberships = MembershipInput {
            company: self.company,
            company_id: self.company_id,
            replace: self.companies.is_some() || self.company_ids.is_some(),
            companies: self.companies.unwrap_or_default(),
            company_ids: self.company_ids.unwrap_or_default(),
        };
        Upsert::parse(self.record.into_input(), memberships)
    }
}

/// The names Schematic gives a trait's type.
fn trait_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        _ => "string",
    }
}

/// What every view of an entity (user or company) shares.
pub(super) struct Owner<'a> {
    id: String,
    kind: &'static str,
    workspace: String,
    created: &'a str,
    updated: &'a str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyDefinition {
    id: String,
    key: String,
    entity_type: &'static str,
    created_at: String,
    updated_at: String,
}

/// One key, in Schematic's shape. Kith stores a key as a pair; the ids and
/// definitions are derived from it, stable across calls.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyView {
    id: String,
    key: String,
    value: String,
    definition_id: String,
    entity_id: String,
    entity_type: &'static str,
    environment_id: String,
    created_at: String,
    updated_at: String,
    definition: KeyDefinition,
}

fn keys_view(keys: &Keys, owner: &Owner<'_>) -> Vec<KeyView> {
    keys.iter()
        .map(|(key, value)| KeyView {
            id: format!("{}:{key}", owner.id),
            key: key.clone(),
            value: value.clone(),
            definition_id: format!("{}:{key}", owner.kind),
            entity_id: owner.id.clone(),
            entity_type: owner.kind,
            environment_id: owner.workspace.clone(),
            created_at: owner.created.to_owned(),
            updated_at: owner.updated.to_owned(),
            definition: KeyDefinition {
                id: format!("{}:{key}", owner.kind),
                key: key.clone(),
                entity_type: owner.kind,
                created_at: owner.created.to_owned(),
                updated_at: owner.updated.to_owned(),
            },
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TraitDefinition {
    id: String,
    display_name: String,
    entity_type: &'static str,
    hierarchy: Vec<String>,
    trait_type: &'static str,
    created_at: String,
    updated_at: String,
}

/// A trait as `entity_traits[]` shows it: its value always a string.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EntityTraitView {
    id: String,
    definition_id: String,
    environment_id: String,
    value: String,
    created_at: String,
    updated_at: String,
    definition: TraitDefinition,
}

fn entity_traits(traits: &Map<String, Value>, owner: &Owner<'_>) -> Vec<EntityTraitView> {
    traits
        .iter()
        .map(|(name, value)| EntityTraitView {
            id: format!("{}:trait:{name}", owner.id),
            definition_id: format!("{}:trait:{name}", owner.kind),
            environment_id: owner.workspace.clone(),
            value: match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            created_at: owner.created.to_owned(),
            updated_at: owner.updated.to_owned(),
            definition: TraitDefinition {
                id: format!("{}:trait:{name}", owner.kind),
                display_name: name.clone(),
                entity_type: owner.kind,
                hierarchy: vec![name.clone()],
                trait_type: trait_type(value),
                created_at: owner.created.to_owned(),
                updated_at: owner.updated.to_owned(),
            },
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CompanyView {
    id: String,
    name: String,
    environment_id: String,
    created_at: String,
    updated_at: String,
    last_seen_at: Option<String>,
    logo_url: Option<String>,
    keys: Vec<KeyView>,
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
    entity_traits: Vec<EntityTraitView>,
}

fn company_view(company: &Company, workspace: WorkspaceId) -> CompanyView {
    let (created, updated) = (rfc3339(company.created_at), rfc3339(company.updated_at));
    let owner = Owner {
        id: company.id.to_string(),
        kind: "company",
        workspace: workspace.to_string(),
        created: &created,
        updated: &updated,
    };
    CompanyView {
        keys: keys_view(&company.keys, &owner),
        entity_traits: entity_traits(&company.traits, &owner),
        id: owner.id,
        name: company.name.clone().unwrap_or_default(),
        environment_id: owner.workspace,
        last_seen_at: company.last_seen_at.map(rfc3339),
        logo_url: None,
        traits: company.traits.clone(),
        created_at: created.clone(),
        updated_at: updated.clone(),
    }
}

/// A company as its own endpoints return it. Schematic's SDKs require its
/// billing fields; Kith keeps no billing, so they are empty, and
/// `user_count` is the company's members.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CompanyDetailView {
    #[serde(flatten)]
    company: CompanyView,
    #[schema(value_type = Vec<Object>)]
    add_ons: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    billing_subscriptions: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    custom_plan_billings: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    entitlements: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    metrics: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    payment_methods: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    plans: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    rules: Vec<Value>,
    user_count: u64,
}

async fn company_detail(
    state: &RestState,
    caller: &Caller,
    company: &Company,
) -> Result<CompanyDetailView, Error> {
    let members = UserFilter::of_company(company.id);
    let user_count = state.service.count_users(caller, &members).await?;
    Ok(CompanyDetailView {
        company: company_view(company, caller.workspace),
        add_ons: Vec::new(),
        billing_subscriptions: Vec::new(),
        custom_plan_billings: Vec::new(),
        entitlements: Vec::new(),
        metrics: Vec::new(),
        payment_methods: Vec::new(),
        plans: Vec::new(),
        rules: Vec::new(),
        user_count,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MembershipView {
    id: String,
    company_id: String,
    user_id: String,
    created_at: String,
    updated_at: String,
    company: CompanyView,
}

fn membership_view(detail: &MembershipDetail, workspace: WorkspaceId) -> MembershipView {
    let m = &detail.membership;
    MembershipView {
        id: m.id.to_string(),
        company_id: m.company_id.to_string(),
        user_id: m.user_id.to_string(),
        created_at: rfc3339(m.created_at),
        updated_at: rfc3339(m.updated_at),
        company: company_view(&detail.company, workspace),
    }
}

/// A user in Schematic's shape (seed 001's response).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserView {
    id: String,
    environment_id: String,
    name: String,
    created_at: String,
    updated_at: String,
    last_seen_at: Option<String>,
    keys: Vec<KeyView>,
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
    entity_traits: Vec<EntityTraitView>,
    company_memberships: Vec<MembershipView>,
}

fn user_view(detail: &UserDetail, workspace: WorkspaceId) -> UserView {
    let user = &detail.user;
    let (created, updated) = (rfc3339(user.created_at), rfc3339(user.updated_at));
    let owner = Owner {
        id: user.id.to_string(),
        kind: "user",
        workspace: workspace.to_string(),
        created: &created,
        updated: &updated,
    };
    UserView {
        keys: keys_view(&user.keys, &owner),
        entity_traits: entity_traits(&user.traits, &owner),
        id: owner.id,
        environment_id: owner.workspace,
        name: user.name.clone().unwrap_or_default(),
        last_seen_at: user.last_seen_at.map(rfc3339),
        traits: user.traits.clone(),
        company_memberships: detail
            .memberships
            .iter()
            .map(|m| membership_view(m, workspace))
            .collect(),
        created_at: created.clone(),
        updated_at: updated.clone(),
    }
}

async fn upsert_user_as(
    state: &RestState,
    caller: &Caller,
    request: UpsertBody,
) -> Result<Json<Envelope<UserView>>, Error> {
    let (user, _) = state
        .service
        .upsert_user(caller, &request.into_user()?)
        .await?;
    Ok(envelope(user_view(&user, caller.workspace), json!({})))
}

#[utoipa::path(post, tag = "schematic", path = "/users", request_body = UpsertBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn upsert_user(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, UpsertBody>,
) -> Result<Json<Envelope<UserView>>, ApiError<Schematic>> {
    Ok(upsert_user_as(&state, &caller, request).await?)
}

#[utoipa::path(post, tag = "schematic", path = "/users/create", request_body = UpsertBody, responses((status = 201, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_user(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, UpsertBody>,
) -> Result<(StatusCode, Json<Envelope<UserView>>), ApiError<Schematic>> {
    Ok((
        StatusCode::CREATED,
        upsert_user_as(&state, &caller, request).await?,
    ))
}

/// Lookup keys from a query string, in either form the SDKs send:
/// `keys[email]=…` pairs (deepObject; the Python SDK and the docs) or
/// `keys={"email":"…"}` (a JSON object; the TypeScript SDK).
/// A lookup's query, for `/openapi.json` (the routes read every
/// `keys[name]` pair themselves).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only")]
pub(super) struct LookupQuery {
    /// The keys, as `keys[name]=value` pairs; at least one.
    #[param(style = DeepObject, explode, schema_with = schemas::required_keys)]
    keys: BTreeMap<String, String>,
}

fn query_keys(query: &HashMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    let mut keys: BTreeMap<String, String> = query
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.strip_prefix("keys[")?.strip_suffix(']')?.to_owned(),
                value.clone(),
            ))
        })
        .collect();
    if let Some(object) = query.get("keys") {
        let object: BTreeMap<String, String> = serde_json::from_str(object).map_err(|_| {
            Error::invalid(
                "keys",
                "must be keys[name]=value pairs or a JSON object of strings",
            )
        })?;
        keys.extend(object);
    }
    Ok(keys)
}

#[utoipa::path(get, tag = "schematic", path = "/users/lookup", params(LookupQuery), responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn lookup_user(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, HashMap<String, String>>,
) -> Result<Json<Envelope<UserView>>, ApiError<Schematic>> {
    let keys = query_keys(&query)?;
    let user = state
        .service
        .get_user(&caller, &UserLookup::by_keys(keys.clone())?)
        .await?;
    Ok(envelope(
        user_view(&user, caller.workspace),
        json!({ "keys": keys }),
    ))
}

/// A user id in a path; one that is no UUID names no user.
fn user_by_id(id: &str) -> Result<UserLookup, Error> {
    UserLookup::by_id(id).map_err(|_| Error::NotFound { resource: "user" })
}

#[utoipa::path(get, tag = "schematic", path = "/users/{user_id}", params(("user_id" = uuid::Uuid, Path, description = "The user id")), responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    Authed(caller, _): Authed<Schematic>,
) -> Result<Json<Envelope<UserView>>, ApiError<Schematic>> {
    let user = state
        .service
        .get_user(&caller, &user_by_id(&user_id)?)
        .await?;
    Ok(envelope(user_view(&user, caller.workspace), json!({})))
}

#[utoipa::path(delete, tag = "schematic", path = "/users/{user_id}", params(("user_id" = uuid::Uuid, Path, description = "The user id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    Authed(caller, _): Authed<Schematic>,
) -> Result<Json<Envelope<Deleted>>, ApiError<Schematic>> {
    state
        .service
        .delete_user(&caller, &user_by_id(&user_id)?)
        .await?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct KeysBody {
    #[serde(default)]
    #[schema(schema_with = schemas::required_keys, required = true)]
    keys: BTreeMap<String, String>,
}

#[utoipa::path(post, tag = "schematic", path = "/users/delete", request_body = KeysBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user_by_keys(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, KeysBody>,
) -> Result<Json<Envelope<UserView>>, ApiError<Schematic>> {
    let user = state
        .service
        .delete_user(&caller, &UserLookup::by_keys(request.keys)?)
        .await?;
    Ok(envelope(user_view(&user, caller.workspace), json!({})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Up to 100, which is also the default; larger values are lowered.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    offset: Option<u64>,
    /// Only members of this company.
    #[param(schema_with = schemas::uuid_filter)]
    company_id: Option<String>,
    /// Only users whose name or a key value contains this text
    /// (case-insensitive, for all of Unicode).
    #[param(schema_with = schemas::search_query)]
    q: Option<String>,
}

/// `/users`' query, as documented: the list's, and the `ids` it reads from
/// the raw query (a repeated parameter).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only: the route reads a ListQuery")]
pub(super) struct UsersQuery {
    /// Up to 100, which is also the default; larger values are lowered.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    offset: Option<u64>,
    /// Only members of this company.
    #[param(schema_with = schemas::uuid_filter)]
    company_id: Option<String>,
    /// Only users whose name or a key value contains this text
    /// (case-insensitive, for all of Unicode).
    #[param(schema_with = schemas::search_query)]
    q: Option<String>,
    /// Only users with these ids (`ids=…&ids=…`, at most 100).
    #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100, explode = true)]
    ids: (),
}

/// `/companies/count`'s query: the list's filter, without paging.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only: the route reads a ListQuery")]
pub(super) struct CompanyCountQuery {
    /// Only companies whose name, email or a key value contains this text,
    /// or whose external id starts with it (case-insensitive).
    #[param(schema_with = schemas::search_query)]
    q: Option<String>,
    /// Only companies with these ids (`ids=…&ids=…`, at most 100).
    #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100, explode = true)]
    ids: (),
}

/// Newest-first offset pages.
/// `/users/count`'s query: the list's filter, without paging.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only: the route reads a ListQuery")]
pub(super) struct CountQuery {
    /// Only members of this company.
    #[param(schema_with = schemas::uuid_filter)]
    company_id: Option<String>,
    /// Only users whose name or a key value contains this text.
    #[param(schema_with = schemas::search_query)]
    q: Option<String>,
    /// Only users with these ids (`ids=…&ids=…`, at most 100).
    #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100, explode = true)]
    ids: (),
}

/// `/companies`' query: paging, a search and an id filter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a schema only: the route reads a ListQuery")]
pub(super) struct PageQuery {
    /// Up to 100, which is also the default; larger values are lowered.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    offset: Option<u64>,
    /// Only companies whose name, email or a key value contains this text,
    /// or whose external id starts with it (case-insensitive).
    #[param(schema_with = schemas::search_query)]
    q: Option<String>,
    /// Only companies with these ids (`ids=…&ids=…`, at most 100).
    #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100, explode = true)]
    ids: (),
}

/// The `ids` of a list's query string, each repeated (`ids=a&ids=b`, or
/// `ids[]=a` as some clients spell it), checked.
fn id_filter(raw_query: Option<&str>) -> Result<Vec<uuid::Uuid>, Error> {
    let ids: Vec<String> = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "ids" || name == "ids[]")
        .map(|(_, value)| value.into_owned())
        .collect();
    parse_id_filter(&ids, "ids")
}

/// A company listing's filter from its query string.
fn company_filter(query: &ListQuery, raw_query: Option<&str>) -> Result<CustomerFilter, Error> {
    let mut filter = CustomerFilter::parse(CustomerFilterInput {
        query: ("q", query.q.as_deref().unwrap_or("")),
        ..CustomerFilterInput::default()
    })?;
    filter.ids = id_filter(raw_query)?;
    Ok(filter)
}

/// A user listing's filter from its query string.
fn user_filter(query: &ListQuery, raw_query: Option<&str>) -> Result<UserFilter, Error> {
    let mut filter = UserFilter::parse(
        query.company_id.as_deref().unwrap_or(""),
        "q",
        query.q.as_deref().unwrap_or(""),
    )?;
    filter.ids = id_filter(raw_query)?;
    Ok(filter)
}

fn offset_page(query: &ListQuery, canonical: &str) -> Result<PageRequest, Error> {
    Ok(
        PageRequest::parse(&SCHEMATIC_PAGES, query.limit, "", canonical)?
            .skipping(query.offset.unwrap_or(0))
            .newest_first(),
    )
}

#[utoipa::path(get, tag = "schematic", path = "/users", params(UsersQuery), responses((status = 200, body = Envelope<Vec<UserView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_users(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, ListQuery>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<Envelope<Vec<UserView>>>, ApiError<Schematic>> {
    let filter = user_filter(&query, raw_query.as_deref())?;
    let page = offset_page(&query, &filter.canonical(caller.workspace))?;
    let users = state
        .service
        .list_users(&caller, &filter, &page)
        .await?
        .items;
    let data: Vec<_> = users
        .items
        .iter()
        .map(|u| user_view(u, caller.workspace))
        .collect();
    Ok(envelope(
        data,
        json!({
            "limit": page.size,
            "offset": page.skip,
            "company_id": query.company_id,
            "q": query.q,
        }),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/users/count", params(CountQuery), responses((status = 200, body = Envelope<Count>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn count_users(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, ListQuery>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<Envelope<Count>>, ApiError<Schematic>> {
    let filter = user_filter(&query, raw_query.as_deref())?;
    let count = state.service.count_users(&caller, &filter).await?;
    Ok(envelope(
        Count { count },
        json!({ "company_id": query.company_id }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct TraitBody {
    #[serde(default)]
    #[schema(schema_with = schemas::required_keys, required = true)]
    keys: BTreeMap<String, String>,
    #[serde(default, rename = "trait")]
    #[schema(schema_with = schemas::trait_name, required = true)]
    name: String,
    /// Adds to a number; one of `incr` and `set` is required.
    #[serde(default, deserialize_with = "integral")]
    incr: Option<i64>,
    /// Sets a string.
    #[schema(schema_with = schemas::trait_string)]
    set: Option<String>,
    #[serde(default)]
    update_only: Option<bool>,
}

/// A trait body's own rule, for `/openapi.json`: `incr` or `set`.
pub(super) struct TraitChangeBody;

impl utoipa::PartialSchema for TraitChangeBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let incr = ObjectBuilder::new().schema_type(Type::Integer).build();
        schemas::with_exactly_one_of(
            "TraitBody",
            vec![("incr", incr), ("set", schemas::trait_name_or_value())],
        )
    }
}

impl ToSchema for TraitChangeBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas::register_base::<TraitBody>("TraitBody", schemas);
    }
}

impl TraitBody {
    fn into_input(self) -> TraitChangeInput {
        TraitChangeInput {
            keys: self.keys,
            name: self.name,
            change: match (self.incr, self.set) {
                (Some(by), None) => Some(TraitChange::Incr(by)),
                (None, Some(value)) => Some(TraitChange::Set(value)),
                (None, None) | (Some(_), Some(_)) => None,
            },
            update_only: self.update_only.unwrap_or(false),
        }
    }
}

#[utoipa::path(post, tag = "schematic", path = "/user-traits", request_body = TraitChangeBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_trait(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, TraitBody>,
) -> Result<Json<Envelope<UserView>>, ApiError<Schematic>> {
    let update = TraitUpdate::parse(request.into_input())?;
    let user = state.service.upsert_user_trait(&caller, &update).await?;
    Ok(envelope(user_view(&user, caller.workspace), json!({})))
}

async fn upsert_company_as(
    state: &RestState,
    caller: &Caller,
    request: RecordBody,
) -> Result<Json<Envelope<CompanyDetailView>>, Error> {
    let (company, _) = state
        .service
        .upsert_company(caller, &request.into_company()?)
        .await?;
    Ok(envelope(
        company_detail(state, caller, &company).await?,
        json!({}),
    ))
}

#[utoipa::path(post, tag = "schematic", path = "/companies", request_body = RecordBody, responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn upsert_company(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, RecordBody>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError<Schematic>> {
    Ok(upsert_company_as(&state, &caller, request).await?)
}

#[utoipa::path(post, tag = "schematic", path = "/companies/create", request_body = RecordBody, responses((status = 201, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_company(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, RecordBody>,
) -> Result<(StatusCode, Json<Envelope<CompanyDetailView>>), ApiError<Schematic>> {
    Ok((
        StatusCode::CREATED,
        upsert_company_as(&state, &caller, request).await?,
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/companies/lookup", params(LookupQuery), responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn lookup_company(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, HashMap<String, String>>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError<Schematic>> {
    let keys = query_keys(&query)?;
    let lookup = CompanyLookup::by_keys(keys.clone())?;
    let company = state.service.get_company(&caller, &lookup).await?;
    Ok(envelope(
        company_detail(&state, &caller, &company).await?,
        json!({ "keys": keys }),
    ))
}

/// A company id in a path; one that is no UUID names no company.
fn company_by_id(id: &str) -> Result<CompanyLookup, Error> {
    parse_uuid(id, "company_id")
        .map(CompanyLookup::Id)
        .map_err(|_| Error::NotFound {
            resource: "company",
        })
}

#[utoipa::path(get, tag = "schematic", path = "/companies/{company_id}", params(("company_id" = uuid::Uuid, Path, description = "The company (customer) id")), responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    Authed(caller, _): Authed<Schematic>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError<Schematic>> {
    let company = state
        .service
        .get_company(&caller, &company_by_id(&company_id)?)
        .await?;
    Ok(envelope(
        company_detail(&state, &caller, &company).await?,
        json!({}),
    ))
}

#[utoipa::path(delete, tag = "schematic", path = "/companies/{company_id}", params(("company_id" = uuid::Uuid, Path, description = "The company (customer) id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    Authed(caller, _): Authed<Schematic>,
) -> Result<Json<Envelope<Deleted>>, ApiError<Schematic>> {
    state
        .service
        .delete_company(&caller, &company_by_id(&company_id)?)
        .await?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}

#[utoipa::path(post, tag = "schematic", path = "/companies/delete", request_body = KeysBody, responses((status = 200, body = Envelope<CompanyView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_company_by_keys(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, KeysBody>,
) -> Result<Json<Envelope<CompanyView>>, ApiError<Schematic>> {
    let lookup = CompanyLookup::by_keys(request.keys)?;
    let company = state.service.delete_company(&caller, &lookup).await?;
    Ok(envelope(
        company_view(&company, caller.workspace),
        json!({}),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/companies", params(PageQuery), responses((status = 200, body = Envelope<Vec<CompanyView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_companies(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, ListQuery>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<Envelope<Vec<CompanyView>>>, ApiError<Schematic>> {
    let filter = company_filter(&query, raw_query.as_deref())?;
    let page = offset_page(&query, &filter.canonical(caller.workspace))?;
    let companies = state
        .service
        .list_companies(&caller, &filter, &page)
        .await?
        .items;
    let data: Vec<_> = companies
        .items
        .iter()
        .map(|c| company_view(c, caller.workspace))
        .collect();
    Ok(envelope(
        data,
        json!({ "limit": page.size, "offset": page.skip }),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/companies/count", params(CompanyCountQuery), responses((status = 200, body = Envelope<Count>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn count_companies(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, ListQuery>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<Envelope<Count>>, ApiError<Schematic>> {
    let filter = company_filter(&query, raw_query.as_deref())?;
    let count = state.service.count_customers(&caller, &filter).await?;
    Ok(envelope(Count { count }, json!({ "q": query.q })))
}

#[utoipa::path(post, tag = "schematic", path = "/company-traits", request_body = TraitChangeBody, responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn company_trait(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, TraitBody>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError<Schematic>> {
    let update = CompanyTraitUpdate::parse(request.into_input())?;
    let company = state.service.upsert_company_trait(&caller, &update).await?;
    Ok(envelope(
        company_detail(&state, &caller, &company).await?,
        json!({}),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct MembershipBody {
    #[serde(default)]
    #[schema(schema_with = schemas::uuid, required = true)]
    company_id: String,
    #[serde(default)]
    #[schema(schema_with = schemas::uuid, required = true)]
    user_id: String,
}

#[utoipa::path(post, tag = "schematic", path = "/company-memberships", request_body = MembershipBody, responses((status = 200, body = Envelope<MembershipView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_or_create_membership(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Body(request, _): Body<Schematic, MembershipBody>,
) -> Result<Json<Envelope<MembershipView>>, ApiError<Schematic>> {
    let company = parse_uuid(&request.company_id, "company_id")?;
    let user = parse_uuid(&request.user_id, "user_id")?;
    let (membership, _) = state
        .service
        .get_or_create_membership(&caller, company, user)
        .await?;
    Ok(envelope(
        membership_view(&membership, caller.workspace),
        json!({}),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MembershipQuery {
    /// This company's memberships; `company_id`, `user_id` or both are
    /// required.
    #[param(schema_with = schemas::uuid_filter)]
    company_id: Option<String>,
    /// This user's memberships.
    #[param(schema_with = schemas::uuid_filter)]
    user_id: Option<String>,
    /// Up to 100, which is also the default; larger values are lowered.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    limit: Option<i64>,
    #[param(minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    offset: Option<u64>,
}

#[utoipa::path(get, tag = "schematic", path = "/company-memberships", params(MembershipQuery), responses((status = 200, body = Envelope<Vec<MembershipView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_memberships(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Schematic>,
    Params(query, _): Params<Schematic, MembershipQuery>,
) -> Result<Json<Envelope<Vec<MembershipView>>>, ApiError<Schematic>> {
    let filter = MembershipFilter::parse(
        query.company_id.as_deref().unwrap_or(""),
        query.user_id.as_deref().unwrap_or(""),
    )?;
    let page = PageRequest::parse(
        &SCHEMATIC_PAGES,
        query.limit,
        "",
        &filter.canonical(caller.workspace),
    )?
    .skipping(query.offset.unwrap_or(0));
    let memberships = state
        .service
        .list_memberships(&caller, &filter, &page)
        .await?
        .items;
    let data: Vec<_> = memberships
        .items
        .iter()
        .map(|m| membership_view(m, caller.workspace))
        .collect();
    Ok(envelope(
        data,
        json!({ "company_id": query.company_id, "user_id": query.user_id }),
    ))
}

#[utoipa::path(delete, tag = "schematic", path = "/company-memberships/{membership_id}", params(("membership_id" = uuid::Uuid, Path, description = "The membership id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_membership(
    State(state): State<RestState>,
    Path(membership_id): Path<String>,
    Authed(caller, _): Authed<Schematic>,
) -> Result<Json<Envelope<Deleted>>, ApiError<Schematic>> {
    let id = parse_uuid(&membership_id, "membership_id").map_err(|_| Error::NotFound {
        resource: "membership",
    })?;
    state.service.delete_membership(&caller, id).await?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}
