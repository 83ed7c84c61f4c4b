//! Schematic's users and companies API (seed 001): `/users…`, `/companies…`,
//! `/company-memberships…`, `/user-traits`, `/company-traits`,
//! `X-Schematic-Api-Key`, `{"data": …, "params": {…}}` envelopes and
//! `{"error": "…"}` errors. Lists page by `limit`/`offset`, newest first.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Family, RestState, authenticate, body, rfc3339};
use crate::domain::WorkspaceId;
use crate::domain::customer::CustomerFilter;
use crate::domain::page::PageRequest;
use crate::domain::user::{
    Company, Keys, MembershipDetail, MembershipInput, TraitChange, TraitChangeInput, TraitUpdate,
    Upsert, UpsertInput, UserDetail, UserLookup, parse_uuid,
};
use crate::error::Error;

const FAMILY: Family = Family::Schematic;

pub(super) fn routes() -> Router<RestState> {
    Router::new()
        .route("/users", post(upsert_user).get(list_users))
        .route("/users/create", post(create_user))
        .route("/users/count", get(count_users))
        .route("/users/lookup", get(lookup_user))
        .route("/users/delete", post(delete_user_by_keys))
        .route("/users/{user_id}", get(get_user).delete(delete_user))
        .route("/user-traits", post(user_trait))
        .route("/companies", post(upsert_company).get(list_companies))
        .route("/companies/create", post(create_company))
        .route("/companies/count", get(count_companies))
        .route("/companies/lookup", get(lookup_company))
        .route("/companies/delete", post(delete_company_by_keys))
        .route(
            "/companies/{company_id}",
            get(get_company).delete(delete_company),
        )
        .route("/company-traits", post(company_trait))
        .route(
            "/company-memberships",
            post(get_or_create_membership).get(list_memberships),
        )
        .route(
            "/company-memberships/{membership_id}",
            delete(delete_membership),
        )
}

fn fail(error: Error) -> ApiError {
    ApiError::new(FAMILY, error)
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
pub(super) struct ErrorBody {
    pub(super) error: String,
}

pub(super) async fn caller(
    state: &RestState,
    headers: &HeaderMap,
) -> Result<WorkspaceId, ApiError> {
    authenticate(state, FAMILY, headers).await
}

/// An upsert body; users and companies share it (companies ignore the
/// membership fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct UpsertBody {
    id: Option<String>,
    #[serde(default)]
    keys: BTreeMap<String, String>,
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
    #[schema(value_type = Option<String>)]
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    update_only: Option<bool>,
    company: Option<BTreeMap<String, String>>,
    company_id: Option<String>,
    companies: Option<Vec<BTreeMap<String, String>>>,
    company_ids: Option<Vec<String>>,
}

impl UpsertBody {
    fn into_upsert(self, with_memberships: bool) -> Result<Upsert, Error> {
        let memberships = if with_memberships {
            MembershipInput {
                company: self.company,
                company_id: self.company_id,
                replace: self.companies.is_some() || self.company_ids.is_some(),
                companies: self.companies.unwrap_or_default(),
                company_ids: self.company_ids.unwrap_or_default(),
            }
        } else {
            MembershipInput::default()
        };
        Upsert::parse(
            UpsertInput {
                id: self.id,
                keys: self.keys,
                name: self.name,
                traits: self.traits,
                last_seen_at: self
                    .last_seen_at
                    .map(|t| chrono::SubsecRound::trunc_subsecs(t, 3)),
                update_only: self.update_only.unwrap_or(false),
            },
            memberships,
        )
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

pub(super) async fn company_detail(
    state: &RestState,
    company: &Company,
    workspace: WorkspaceId,
) -> Result<CompanyDetailView, ApiError> {
    let user_count = state
        .store
        .count_users(workspace, Some(company.id))
        .await
        .map_err(fail)?;
    Ok(CompanyDetailView {
        company: company_view(company, workspace),
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

pub(super) async fn upsert_user_as(
    state: &RestState,
    headers: &HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(UserView, WorkspaceId), ApiError> {
    let workspace = caller(state, headers).await?;
    let upsert = body(FAMILY, request)?.into_upsert(true).map_err(fail)?;
    let (user, _) = state
        .store
        .upsert_user(workspace, &upsert)
        .await
        .map_err(fail)?;
    Ok((user_view(&user, workspace), workspace))
}

#[utoipa::path(post, tag = "schematic", path = "/users", request_body = UpsertBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn upsert_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let (user, _) = upsert_user_as(&state, &headers, request).await?;
    Ok(envelope(user, json!({})))
}

#[utoipa::path(post, tag = "schematic", path = "/users/create", request_body = UpsertBody, responses((status = 201, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Envelope<UserView>>), ApiError> {
    let (user, _) = upsert_user_as(&state, &headers, request).await?;
    Ok((StatusCode::CREATED, envelope(user, json!({}))))
}

/// Lookup keys from a query string, in either form the SDKs send:
/// `keys[email]=…` pairs (deepObject; the Python SDK and the docs) or
/// `keys={"email":"…"}` (a JSON object; the TypeScript SDK).
fn query_keys(query: &HashMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
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
            fail(Error::invalid(
                "keys",
                "must be keys[name]=value pairs or a JSON object of strings",
            ))
        })?;
        keys.extend(object);
    }
    Ok(keys)
}

#[utoipa::path(get, tag = "schematic", path = "/users/lookup", params(("keys" = Object, Query, description = "The keys: `keys[name]=value` pairs, or a JSON object")), responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn lookup_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let keys = query_keys(&query)?;
    let lookup = UserLookup::by_keys(keys.clone()).map_err(fail)?;
    let user = state
        .store
        .get_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(
        user_view(&user, workspace),
        json!({ "keys": keys }),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/users/{user_id}", params(("user_id" = String, Path, description = "The user id")), responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let lookup =
        UserLookup::by_id(&user_id).map_err(|_| fail(Error::NotFound { resource: "user" }))?;
    let user = state
        .store
        .get_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(user_view(&user, workspace), json!({})))
}

#[utoipa::path(delete, tag = "schematic", path = "/users/{user_id}", params(("user_id" = String, Path, description = "The user id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Deleted>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let lookup =
        UserLookup::by_id(&user_id).map_err(|_| fail(Error::NotFound { resource: "user" }))?;
    state
        .store
        .delete_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct KeysBody {
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

#[utoipa::path(post, tag = "schematic", path = "/users/delete", request_body = KeysBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_user_by_keys(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<KeysBody>, JsonRejection>,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let lookup = UserLookup::by_keys(body(FAMILY, request)?.keys).map_err(fail)?;
    let user = state
        .store
        .delete_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(user_view(&user, workspace), json!({})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    limit: Option<i64>,
    offset: Option<u64>,
    company_id: Option<String>,
}

/// Newest-first offset pages; `limit` defaults to 100, its maximum here.
fn offset_page(query: &ListQuery, canonical: &str) -> Result<PageRequest, ApiError> {
    Ok(
        PageRequest::parse(query.limit.unwrap_or(100), "", canonical)
            .map_err(fail)?
            .skipping(query.offset.unwrap_or(0))
            .newest_first(),
    )
}

fn company_filter(query: &ListQuery) -> Result<Option<uuid::Uuid>, ApiError> {
    query
        .company_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(|id| parse_uuid(id, "company_id").map_err(fail))
        .transpose()
}

#[utoipa::path(get, tag = "schematic", path = "/users", params(ListQuery), responses((status = 200, body = Envelope<Vec<UserView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list_users(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Envelope<Vec<UserView>>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let company = company_filter(&query)?;
    let page = offset_page(&query, &format!("users|{workspace}|{company:?}"))?;
    let users = state
        .store
        .list_users(workspace, company, &page)
        .await
        .map_err(fail)?;
    let data: Vec<_> = users
        .items
        .iter()
        .map(|u| user_view(u, workspace))
        .collect();
    Ok(envelope(
        data,
        json!({ "limit": page.size, "offset": page.skip, "company_id": query.company_id }),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/users/count", params(ListQuery), responses((status = 200, body = Envelope<Count>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn count_users(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Envelope<Count>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let count = state
        .store
        .count_users(workspace, company_filter(&query)?)
        .await
        .map_err(fail)?;
    Ok(envelope(
        Count { count },
        json!({ "company_id": query.company_id }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct TraitBody {
    #[serde(default)]
    keys: BTreeMap<String, String>,
    #[serde(default, rename = "trait")]
    name: String,
    incr: Option<i64>,
    set: Option<String>,
    #[serde(default)]
    update_only: Option<bool>,
}

impl TraitBody {
    fn into_update(self) -> Result<TraitUpdate, Error> {
        TraitUpdate::parse(TraitChangeInput {
            keys: self.keys,
            name: self.name,
            change: match (self.incr, self.set) {
                (Some(by), _) => Some(TraitChange::Incr(by)),
                (None, Some(value)) => Some(TraitChange::Set(value)),
                (None, None) => None,
            },
            update_only: self.update_only.unwrap_or(false),
        })
    }
}

#[utoipa::path(post, tag = "schematic", path = "/user-traits", request_body = TraitBody, responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn user_trait(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<TraitBody>, JsonRejection>,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let update = body(FAMILY, request)?.into_update().map_err(fail)?;
    let user = state
        .store
        .update_user_trait(workspace, &update)
        .await
        .map_err(fail)?;
    Ok(envelope(user_view(&user, workspace), json!({})))
}

pub(super) async fn upsert_company_as(
    state: &RestState,
    headers: &HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<CompanyDetailView, ApiError> {
    let workspace = caller(state, headers).await?;
    let upsert = body(FAMILY, request)?.into_upsert(false).map_err(fail)?;
    let (company, _) = state
        .store
        .upsert_company(workspace, &upsert)
        .await
        .map_err(fail)?;
    company_detail(state, &company, workspace).await
}

#[utoipa::path(post, tag = "schematic", path = "/companies", request_body = UpsertBody, responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn upsert_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError> {
    Ok(envelope(
        upsert_company_as(&state, &headers, request).await?,
        json!({}),
    ))
}

#[utoipa::path(post, tag = "schematic", path = "/companies/create", request_body = UpsertBody, responses((status = 201, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Envelope<CompanyDetailView>>), ApiError> {
    Ok((
        StatusCode::CREATED,
        envelope(
            upsert_company_as(&state, &headers, request).await?,
            json!({}),
        ),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/companies/lookup", params(("keys" = Object, Query, description = "The keys: `keys[name]=value` pairs, or a JSON object")), responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn lookup_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let keys = query_keys(&query)?;
    let parsed =
        Keys::parse(keys.clone(), "keys", true).map_err(|v| fail(Error::InvalidArgument(v)))?;
    let company = state
        .store
        .lookup_company(workspace, &parsed)
        .await
        .map_err(fail)?;
    Ok(envelope(
        company_detail(&state, &company, workspace).await?,
        json!({ "keys": keys }),
    ))
}

pub(super) async fn company_by_id(
    state: &RestState,
    workspace: WorkspaceId,
    id: &str,
) -> Result<Company, ApiError> {
    let id = parse_uuid(id, "company_id").map_err(|_| {
        fail(Error::NotFound {
            resource: "company",
        })
    })?;
    state
        .store
        .companies(workspace, &[id])
        .await
        .map_err(fail)?
        .pop()
        .ok_or_else(|| {
            fail(Error::NotFound {
                resource: "company",
            })
        })
}

#[utoipa::path(get, tag = "schematic", path = "/companies/{company_id}", params(("company_id" = String, Path, description = "The company (customer) id")), responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let company = company_by_id(&state, workspace, &company_id).await?;
    Ok(envelope(
        company_detail(&state, &company, workspace).await?,
        json!({}),
    ))
}

#[utoipa::path(delete, tag = "schematic", path = "/companies/{company_id}", params(("company_id" = String, Path, description = "The company (customer) id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Deleted>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let company = company_by_id(&state, workspace, &company_id).await?;
    let lookup = crate::domain::customer::CustomerLookup::Id(company.id);
    state
        .store
        .delete_customer(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}

#[utoipa::path(post, tag = "schematic", path = "/companies/delete", request_body = KeysBody, responses((status = 200, body = Envelope<CompanyView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_company_by_keys(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<KeysBody>, JsonRejection>,
) -> Result<Json<Envelope<CompanyView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let keys = Keys::parse(body(FAMILY, request)?.keys, "keys", true)
        .map_err(|v| fail(Error::InvalidArgument(v)))?;
    let company = state
        .store
        .delete_company(workspace, &keys)
        .await
        .map_err(fail)?;
    Ok(envelope(company_view(&company, workspace), json!({})))
}

#[utoipa::path(get, tag = "schematic", path = "/companies", params(ListQuery), responses((status = 200, body = Envelope<Vec<CompanyView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list_companies(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Envelope<Vec<CompanyView>>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let filter = CustomerFilter::default();
    let page = offset_page(&query, &filter.canonical(workspace))?;
    let customers = state
        .store
        .list_customers(workspace, &filter, &page)
        .await
        .map_err(fail)?;
    let ids: Vec<_> = customers.items.iter().map(|c| c.id).collect();
    let companies = state.store.companies(workspace, &ids).await.map_err(fail)?;
    let data: Vec<_> = companies
        .iter()
        .map(|c| company_view(c, workspace))
        .collect();
    Ok(envelope(
        data,
        json!({ "limit": page.size, "offset": page.skip }),
    ))
}

#[utoipa::path(get, tag = "schematic", path = "/companies/count", responses((status = 200, body = Envelope<Count>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn count_companies(
    State(state): State<RestState>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Count>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let count = state
        .store
        .count_customers(workspace, &CustomerFilter::default())
        .await
        .map_err(fail)?;
    Ok(envelope(Count { count }, json!({})))
}

#[utoipa::path(post, tag = "schematic", path = "/company-traits", request_body = TraitBody, responses((status = 200, body = Envelope<CompanyDetailView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn company_trait(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<TraitBody>, JsonRejection>,
) -> Result<Json<Envelope<CompanyDetailView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let update = body(FAMILY, request)?.into_update().map_err(fail)?;
    let company = state
        .store
        .update_company_trait(workspace, &update)
        .await
        .map_err(fail)?;
    Ok(envelope(
        company_detail(&state, &company, workspace).await?,
        json!({}),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct MembershipBody {
    #[serde(default)]
    company_id: String,
    #[serde(default)]
    user_id: String,
}

#[utoipa::path(post, tag = "schematic", path = "/company-memberships", request_body = MembershipBody, responses((status = 200, body = Envelope<MembershipView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_or_create_membership(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<MembershipBody>, JsonRejection>,
) -> Result<Json<Envelope<MembershipView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let request = body(FAMILY, request)?;
    let company = parse_uuid(&request.company_id, "company_id").map_err(fail)?;
    let user = parse_uuid(&request.user_id, "user_id").map_err(fail)?;
    let (membership, _) = state
        .store
        .get_or_create_membership(workspace, company, user, None)
        .await
        .map_err(fail)?;
    Ok(envelope(membership_view(&membership, workspace), json!({})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MembershipQuery {
    company_id: Option<String>,
    user_id: Option<String>,
    limit: Option<i64>,
    offset: Option<u64>,
}

#[utoipa::path(get, tag = "schematic", path = "/company-memberships", params(MembershipQuery), responses((status = 200, body = Envelope<Vec<MembershipView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list_memberships(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<MembershipQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Envelope<Vec<MembershipView>>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let id = |text: &Option<String>, field: &str| {
        text.as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| parse_uuid(t, field).map_err(fail))
            .transpose()
    };
    let company = id(&query.company_id, "company_id")?;
    let user = id(&query.user_id, "user_id")?;
    if company.is_none() && user.is_none() {
        return Err(fail(Error::invalid(
            "company_id",
            "set company_id, user_id or both",
        )));
    }
    let canonical = format!("memberships|{workspace}|{company:?}|{user:?}");
    let page = PageRequest::parse(query.limit.unwrap_or(100), "", &canonical)
        .map_err(fail)?
        .skipping(query.offset.unwrap_or(0));
    let memberships = state
        .store
        .list_memberships(workspace, company, user, &page)
        .await
        .map_err(fail)?;
    let data: Vec<_> = memberships
        .items
        .iter()
        .map(|m| membership_view(m, workspace))
        .collect();
    Ok(envelope(
        data,
        json!({ "company_id": query.company_id, "user_id": query.user_id }),
    ))
}

#[utoipa::path(delete, tag = "schematic", path = "/company-memberships/{membership_id}", params(("membership_id" = String, Path, description = "The membership id")), responses((status = 200, body = Envelope<Deleted>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_membership(
    State(state): State<RestState>,
    Path(membership_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Envelope<Deleted>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let id = parse_uuid(&membership_id, "membership_id").map_err(|_| {
        fail(Error::NotFound {
            resource: "membership",
        })
    })?;
    state
        .store
        .delete_membership(workspace, id, None)
        .await
        .map_err(fail)?;
    Ok(envelope(Deleted { deleted: true }, json!({})))
}
