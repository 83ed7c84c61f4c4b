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
use serde::Deserialize;
use serde_json::{Map, Value, json};

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

/// `{"data": …, "params": {…}}`.
fn envelope(data: Value, params: Value) -> Json<Value> {
    Json(json!({ "data": data, "params": params }))
}

async fn caller(state: &RestState, headers: &HeaderMap) -> Result<WorkspaceId, ApiError> {
    authenticate(state, FAMILY, headers).await
}

/// An upsert body; users and companies share it (companies ignore the
/// membership fields).
#[derive(Debug, Default, Deserialize)]
struct UpsertBody {
    id: Option<String>,
    #[serde(default)]
    keys: BTreeMap<String, String>,
    name: Option<String>,
    #[serde(default)]
    traits: Map<String, Value>,
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

/// An entity's keys in Schematic's shape. Kith stores a key as a pair; the
/// ids and definitions are derived from it, stable across calls.
fn keys_view(
    keys: &Keys,
    entity_id: &str,
    entity_type: &str,
    workspace: &str,
    created: &str,
    updated: &str,
) -> Vec<Value> {
    keys.iter()
        .map(|(key, value)| {
            json!({
                "id": format!("{entity_id}:{key}"),
                "key": key,
                "value": value,
                "definition_id": format!("{entity_type}:{key}"),
                "entity_id": entity_id,
                "entity_type": entity_type,
                "environment_id": workspace,
                "created_at": created,
                "updated_at": updated,
                "definition": {
                    "id": format!("{entity_type}:{key}"),
                    "key": key,
                    "entity_type": entity_type,
                    "created_at": created,
                    "updated_at": updated,
                },
            })
        })
        .collect()
}

/// Traits in both of Schematic's shapes: `traits` as sent, and
/// `entity_traits[]` with every value as a string.
fn entity_traits(
    traits: &Map<String, Value>,
    entity_id: &str,
    entity_type: &str,
    workspace: &str,
    created: &str,
    updated: &str,
) -> Vec<Value> {
    traits
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({
                "id": format!("{entity_id}:trait:{name}"),
                "definition_id": format!("{entity_type}:trait:{name}"),
                "environment_id": workspace,
                "value": text,
                "created_at": created,
                "updated_at": updated,
                "definition": {
                    "id": format!("{entity_type}:trait:{name}"),
                    "display_name": name,
                    "entity_type": entity_type,
                    "hierarchy": [name],
                    "trait_type": trait_type(value),
                    "created_at": created,
                    "updated_at": updated,
                },
            })
        })
        .collect()
}

fn company_view(company: &Company, workspace: WorkspaceId) -> Value {
    let (id, ws) = (company.id.to_string(), workspace.to_string());
    let (created, updated) = (rfc3339(company.created_at), rfc3339(company.updated_at));
    json!({
        "id": id,
        "name": company.name.clone().unwrap_or_default(),
        "environment_id": ws,
        "created_at": created,
        "updated_at": updated,
        "last_seen_at": company.last_seen_at.map(rfc3339),
        "logo_url": Value::Null,
        "keys": keys_view(&company.keys, &id, "company", &ws, &created, &updated),
        "traits": company.traits,
        "entity_traits": entity_traits(&company.traits, &id, "company", &ws, &created, &updated),
    })
}

/// A company as its own detail endpoints return it. Schematic's SDKs
/// require its billing fields; Kith keeps no billing, so they are empty,
/// and `user_count` is the company's members.
async fn company_detail(
    state: &RestState,
    company: &Company,
    workspace: WorkspaceId,
) -> Result<Value, ApiError> {
    let user_count = state
        .store
        .count_users(workspace, Some(company.id))
        .await
        .map_err(fail)?;
    let mut view = company_view(company, workspace);
    for list in [
        "add_ons",
        "billing_subscriptions",
        "custom_plan_billings",
        "entitlements",
        "metrics",
        "payment_methods",
        "plans",
        "rules",
    ] {
        view[list] = json!([]);
    }
    view["user_count"] = json!(user_count);
    Ok(view)
}

fn membership_view(detail: &MembershipDetail, workspace: WorkspaceId) -> Value {
    let m = &detail.membership;
    json!({
        "id": m.id.to_string(),
        "company_id": m.company_id.to_string(),
        "user_id": m.user_id.to_string(),
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
        "company": company_view(&detail.company, workspace),
    })
}

fn user_view(detail: &UserDetail, workspace: WorkspaceId) -> Value {
    let user = &detail.user;
    let (id, ws) = (user.id.to_string(), workspace.to_string());
    let (created, updated) = (rfc3339(user.created_at), rfc3339(user.updated_at));
    json!({
        "id": id,
        "environment_id": ws,
        "name": user.name.clone().unwrap_or_default(),
        "created_at": created,
        "updated_at": updated,
        "last_seen_at": user.last_seen_at.map(rfc3339),
        "keys": keys_view(&user.keys, &id, "user", &ws, &created, &updated),
        "traits": user.traits,
        "entity_traits": entity_traits(&user.traits, &id, "user", &ws, &created, &updated),
        "company_memberships": detail.memberships.iter().map(|m| membership_view(m, workspace)).collect::<Vec<_>>(),
    })
}

async fn upsert_user_as(
    state: &RestState,
    headers: &HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(Value, WorkspaceId), ApiError> {
    let workspace = caller(state, headers).await?;
    let upsert = body(FAMILY, request)?.into_upsert(true).map_err(fail)?;
    let (user, _) = state
        .store
        .upsert_user(workspace, &upsert)
        .await
        .map_err(fail)?;
    Ok((user_view(&user, workspace), workspace))
}

async fn upsert_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let (user, _) = upsert_user_as(&state, &headers, request).await?;
    Ok(envelope(user, json!({})))
}

async fn create_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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

async fn lookup_user(
    State(state): State<RestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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

async fn get_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
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

async fn delete_user(
    State(state): State<RestState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let lookup =
        UserLookup::by_id(&user_id).map_err(|_| fail(Error::NotFound { resource: "user" }))?;
    state
        .store
        .delete_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(json!({ "deleted": true }), json!({})))
}

#[derive(Debug, Deserialize)]
struct KeysBody {
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

async fn delete_user_by_keys(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<KeysBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let lookup = UserLookup::by_keys(body(FAMILY, request)?.keys).map_err(fail)?;
    let user = state
        .store
        .delete_user(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(user_view(&user, workspace), json!({})))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
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

async fn list_users(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
        json!(data),
        json!({ "limit": page.size, "offset": page.skip, "company_id": query.company_id }),
    ))
}

async fn count_users(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let count = state
        .store
        .count_users(workspace, company_filter(&query)?)
        .await
        .map_err(fail)?;
    Ok(envelope(
        json!({ "count": count }),
        json!({ "company_id": query.company_id }),
    ))
}

#[derive(Debug, Deserialize)]
struct TraitBody {
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

async fn user_trait(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<TraitBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let update = body(FAMILY, request)?.into_update().map_err(fail)?;
    let user = state
        .store
        .update_user_trait(workspace, &update)
        .await
        .map_err(fail)?;
    Ok(envelope(user_view(&user, workspace), json!({})))
}

async fn upsert_company_as(
    state: &RestState,
    headers: &HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Value, ApiError> {
    let workspace = caller(state, headers).await?;
    let upsert = body(FAMILY, request)?.into_upsert(false).map_err(fail)?;
    let (company, _) = state
        .store
        .upsert_company(workspace, &upsert)
        .await
        .map_err(fail)?;
    company_detail(state, &company, workspace).await
}

async fn upsert_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Ok(envelope(
        upsert_company_as(&state, &headers, request).await?,
        json!({}),
    ))
}

async fn create_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((
        StatusCode::CREATED,
        envelope(
            upsert_company_as(&state, &headers, request).await?,
            json!({}),
        ),
    ))
}

async fn lookup_company(
    State(state): State<RestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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

async fn company_by_id(
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

async fn get_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let company = company_by_id(&state, workspace, &company_id).await?;
    Ok(envelope(
        company_detail(&state, &company, workspace).await?,
        json!({}),
    ))
}

async fn delete_company(
    State(state): State<RestState>,
    Path(company_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let company = company_by_id(&state, workspace, &company_id).await?;
    let lookup = crate::domain::customer::CustomerLookup::Id(company.id);
    state
        .store
        .delete_customer(workspace, &lookup)
        .await
        .map_err(fail)?;
    Ok(envelope(json!({ "deleted": true }), json!({})))
}

async fn delete_company_by_keys(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<KeysBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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

async fn list_companies(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
        json!(data),
        json!({ "limit": page.size, "offset": page.skip }),
    ))
}

async fn count_companies(
    State(state): State<RestState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let count = state
        .store
        .count_customers(workspace, &CustomerFilter::default())
        .await
        .map_err(fail)?;
    Ok(envelope(json!({ "count": count }), json!({})))
}

async fn company_trait(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<TraitBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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

#[derive(Debug, Deserialize)]
struct MembershipBody {
    #[serde(default)]
    company_id: String,
    #[serde(default)]
    user_id: String,
}

async fn get_or_create_membership(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<MembershipBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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

#[derive(Debug, Deserialize)]
struct MembershipQuery {
    company_id: Option<String>,
    user_id: Option<String>,
    limit: Option<i64>,
    offset: Option<u64>,
}

async fn list_memberships(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<MembershipQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
        json!(data),
        json!({ "company_id": query.company_id, "user_id": query.user_id }),
    ))
}

async fn delete_membership(
    State(state): State<RestState>,
    Path(membership_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
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
    Ok(envelope(json!({ "deleted": true }), json!({})))
}
