//! Stigg's entities API (seed 000): `/api/v1-beta/customers/{id}/entities…`
//! and `/api/v1-beta/entity-types`, `X-API-KEY`, camelCase bodies in a
//! `{"data": …}` envelope, errors as `{"error":{"code","message"}}`.
//! The type is accepted as `typeRefId` (the seed) or `entityTypeId` (the
//! current SDKs) and returned under both names.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Family, RestState, authenticate, body, present, rfc3339};
use crate::domain::WorkspaceId;
use crate::domain::customer::ExternalId;
use crate::domain::entity::{
    self, Entity, EntityFilter, EntityId, EntityType, EntityTypeInput, EntityUpsertInput,
};
use crate::domain::page::{Cursor, Page, PageRequest};
use crate::error::Error;

const FAMILY: Family = Family::Stigg;

pub(super) fn routes() -> Router<RestState> {
    Router::new()
        .route(
            "/api/v1-beta/customers/{customer_id}/entities",
            get(list).put(upsert),
        )
        .route(
            "/api/v1-beta/customers/{customer_id}/entities/archive",
            post(archive),
        )
        .route(
            "/api/v1-beta/customers/{customer_id}/entities/unarchive",
            post(unarchive),
        )
        .route(
            "/api/v1-beta/customers/{customer_id}/entities/{entity_id}",
            get(get_one),
        )
        .route(
            "/api/v1-beta/entity-types",
            get(list_types).put(upsert_types),
        )
}

/// Domain field paths in the names Stigg callers send.
pub(super) fn field_name(path: &str) -> String {
    path.replace("type_id", "typeRefId")
        .replace("display_name", "displayName")
        .replace("customer_id", "id")
        .replace("attribution_keys", "attributionKeys")
}

/// `{"data": …}`: every Stigg reply's envelope.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Data<T> {
    data: T,
}

/// A page and the record ids to page on from.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Paged<T> {
    data: Vec<T>,
    pagination: Cursors,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Cursors {
    next: Option<String>,
    prev: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Ids {
    ids: Vec<String>,
}

/// Stigg's error body.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

impl ErrorBody {
    pub(super) fn new(code: &str, message: String) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorDetail {
    code: String,
    message: String,
}

fn fail(error: Error) -> ApiError {
    ApiError::new(FAMILY, error)
}

fn owner(customer_id: &str) -> Result<ExternalId, ApiError> {
    entity::parse_owner(customer_id).map_err(|v| fail(Error::InvalidArgument(vec![v])))
}

pub(super) async fn caller(
    state: &RestState,
    headers: &HeaderMap,
) -> Result<WorkspaceId, ApiError> {
    authenticate(state, FAMILY, headers).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntityBody {
    #[serde(default)]
    id: String,
    #[serde(alias = "entityTypeId")]
    type_ref_id: Option<String>,
    /// Absent keeps the name; `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    /// String values; an empty one deletes its key.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct UpsertBody {
    entities: Vec<EntityBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntityView {
    id: String,
    type_id: String,
    entity_type_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

impl From<&Entity> for EntityView {
    fn from(entity: &Entity) -> Self {
        Self {
            id: entity.id.as_str().to_owned(),
            type_id: entity.type_id.as_str().to_owned(),
            entity_type_id: entity.type_id.as_str().to_owned(),
            display_name: entity.display_name.clone(),
            metadata: entity.metadata.clone(),
            created_at: rfc3339(entity.created_at),
            updated_at: rfc3339(entity.updated_at),
            archived_at: entity.archived_at.map(rfc3339),
        }
    }
}

/// Metadata is string → string; any other value is the caller's error,
/// named by its key.
fn metadata(
    position: usize,
    pairs: Map<String, Value>,
) -> Result<std::collections::BTreeMap<String, String>, crate::error::FieldViolation> {
    pairs
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            _ => Err(crate::error::FieldViolation::new(
                format!("entities[{position}].metadata.{key}"),
                "must be a string",
            )),
        })
        .collect()
}

#[utoipa::path(put, path = "/api/v1-beta/customers/{customer_id}/entities", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id")), request_body = UpsertBody, responses((status = 200, body = Data<Vec<EntityView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn upsert(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<UpsertBody>, JsonRejection>,
) -> Result<Json<Data<Vec<EntityView>>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let owner = owner(&customer_id)?;
    let request = body(FAMILY, request)?;
    let mut wire = Vec::new();
    let mut inputs = Vec::with_capacity(request.entities.len());
    for (i, e) in request.entities.into_iter().enumerate() {
        let metadata = metadata(i, e.metadata).unwrap_or_else(|violation| {
            wire.push(violation);
            std::collections::BTreeMap::new()
        });
        inputs.push(EntityUpsertInput {
            id: e.id,
            type_id: e.type_ref_id,
            display_name: e.display_name.map(Option::unwrap_or_default),
            metadata,
        });
    }
    let batch = Error::with_wire_violations(wire, entity::parse_batch(inputs)).map_err(fail)?;
    let entities = state
        .store
        .upsert_entities(workspace, &owner, &batch)
        .await
        .map_err(fail)?;
    Ok(Json(Data {
        data: entities.iter().map(EntityView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1-beta/customers/{customer_id}/entities/{entity_id}", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id"), ("entity_id" = String, Path, description = "The entity id")), responses((status = 200, body = Data<EntityView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<RestState>,
    Path((customer_id, entity_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Data<EntityView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let owner = owner(&customer_id)?;
    let id = EntityId::parse(&entity_id, "entityId")
        .map_err(|v| fail(Error::InvalidArgument(vec![v])))?;
    let entity = state
        .store
        .get_entity(workspace, &owner, &id)
        .await
        .map_err(fail)?;
    Ok(Json(Data {
        data: EntityView::from(&entity),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
    before: Option<String>,
    #[serde(alias = "entityTypeId")]
    type_ref_id: Option<String>,
    include_archived: Option<String>,
}

/// Stigg's cursors: `after`/`before` name a record; a page lists forward
/// from `after`, or backward from `before`, and reports the ids to go on.
pub(super) struct Window {
    page: PageRequest,
    backward: bool,
    from_cursor: bool,
}

fn window(
    limit: Option<i64>,
    query: &str,
    after: Option<Cursor>,
    before: Option<Cursor>,
) -> Result<Window, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(fail(Error::invalid("limit", "must be 1 to 100")));
    }
    let mut page = PageRequest::parse(limit, "", query).map_err(fail)?;
    let backward = before.is_some();
    page.after = before.or(after);
    if backward {
        page = page.newest_first();
    }
    Ok(Window {
        page,
        from_cursor: page.after.is_some(),
        backward,
    })
}

/// The page in forward order, with the ids of the records to page on from.
fn paged<T>(
    window: &Window,
    mut page: Page<T>,
    key: impl Fn(&T) -> uuid::Uuid,
) -> (Vec<T>, Option<String>, Option<String>) {
    let more = page.next_token.is_some();
    if window.backward {
        page.items.reverse();
    }
    let first = page.items.first().map(|item| key(item).to_string());
    let last = page.items.last().map(|item| key(item).to_string());
    let (next, prev) = if window.backward {
        (last, if more { first } else { None })
    } else {
        (
            if more { last } else { None },
            if window.from_cursor { first } else { None },
        )
    };
    (page.items, next, prev)
}

fn cursor_id(text: Option<&str>, field: &str) -> Result<Option<uuid::Uuid>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            uuid::Uuid::try_parse(t).map_err(|_| fail(Error::invalid(field, "must be a UUID")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/v1-beta/customers/{customer_id}/entities", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id"), ListQuery), responses((status = 200, body = Paged<EntityView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<EntityView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let owner = owner(&customer_id)?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let include_archived = match query.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(fail(Error::invalid(
                "includeArchived",
                "must be \"true\" or \"false\"",
            )));
        }
    };
    let filter = EntityFilter::parse(query.type_ref_id.as_deref().unwrap_or(""), include_archived)
        .map_err(fail)?;
    let cursor = |id: Option<uuid::Uuid>| {
        let (state, owner) = (&state, &owner);
        async move {
            match id {
                Some(id) => state
                    .store
                    .entity_cursor(workspace, owner, id)
                    .await
                    .map(Some)
                    .map_err(fail),
                None => Ok(None),
            }
        }
    };
    let after = cursor(cursor_id(query.after.as_deref(), "after")?).await?;
    let before = cursor(cursor_id(query.before.as_deref(), "before")?).await?;
    let window = window(
        query.limit,
        &filter.canonical(workspace, &owner),
        after,
        before,
    )?;
    let page = state
        .store
        .list_entities(workspace, &owner, &filter, &window.page)
        .await
        .map_err(fail)?;
    let (items, next, prev) = paged(&window, page, |e| e.key);
    Ok(Json(Paged {
        data: items.iter().map(EntityView::from).collect(),
        pagination: Cursors { next, prev },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct IdsBody {
    ids: Vec<String>,
}

pub(super) async fn set_archived(
    state: RestState,
    customer_id: &str,
    headers: &HeaderMap,
    request: Result<Json<IdsBody>, JsonRejection>,
    archived: bool,
) -> Result<Json<Data<Ids>>, ApiError> {
    let workspace = caller(&state, headers).await?;
    let owner = owner(customer_id)?;
    let ids = entity::parse_ids(&body(FAMILY, request)?.ids).map_err(fail)?;
    let entities = state
        .store
        .set_entities_archived(workspace, &owner, &ids, archived)
        .await
        .map_err(fail)?;
    let ids = entities.iter().map(|e| e.id.as_str().to_owned()).collect();
    Ok(Json(Data { data: Ids { ids } }))
}

#[utoipa::path(post, path = "/api/v1-beta/customers/{customer_id}/entities/archive", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id")), request_body = IdsBody, responses((status = 200, body = Data<Ids>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn archive(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<IdsBody>, JsonRejection>,
) -> Result<Json<Data<Ids>>, ApiError> {
    set_archived(state, &customer_id, &headers, request, true).await
}

#[utoipa::path(post, path = "/api/v1-beta/customers/{customer_id}/entities/unarchive", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id")), request_body = IdsBody, responses((status = 200, body = Data<Ids>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn unarchive(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<IdsBody>, JsonRejection>,
) -> Result<Json<Data<Ids>>, ApiError> {
    set_archived(state, &customer_id, &headers, request, false).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TypeBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    attribution_keys: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct TypesBody {
    types: Vec<TypeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TypeView {
    id: String,
    display_name: String,
    attribution_keys: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<&EntityType> for TypeView {
    fn from(t: &EntityType) -> Self {
        Self {
            id: t.id.as_str().to_owned(),
            display_name: t.display_name.clone(),
            attribution_keys: t.attribution_keys.clone(),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

#[utoipa::path(put, path = "/api/v1-beta/entity-types", tag = "stigg", request_body = TypesBody, responses((status = 200, body = Data<Vec<TypeView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn upsert_types(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<TypesBody>, JsonRejection>,
) -> Result<Json<Data<Vec<TypeView>>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let inputs = body(FAMILY, request)?
        .types
        .into_iter()
        .map(|t| EntityTypeInput {
            id: t.id,
            display_name: t.display_name,
            attribution_keys: t.attribution_keys,
            archived: None,
        })
        .collect();
    let batch = entity::parse_type_batch(inputs).map_err(fail)?;
    let types = state
        .store
        .upsert_entity_types(workspace, &batch)
        .await
        .map_err(fail)?;
    Ok(Json(Data {
        data: types.iter().map(TypeView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TypesQuery {
    limit: Option<i64>,
    after: Option<String>,
    before: Option<String>,
}

#[utoipa::path(get, path = "/api/v1-beta/entity-types", tag = "stigg", params(TypesQuery), responses((status = 200, body = Paged<TypeView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list_types(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<TypesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<TypeView>>, ApiError> {
    let workspace = caller(&state, &headers).await?;
    let Query(query) = query.map_err(|r| fail(Error::invalid("query", r.body_text())))?;
    let cursor = |id: Option<uuid::Uuid>| {
        let state = &state;
        async move {
            match id {
                Some(id) => state
                    .store
                    .entity_type_cursor(workspace, id)
                    .await
                    .map(Some)
                    .map_err(fail),
                None => Ok(None),
            }
        }
    };
    let after = cursor(cursor_id(query.after.as_deref(), "after")?).await?;
    let before = cursor(cursor_id(query.before.as_deref(), "before")?).await?;
    let window = window(
        query.limit,
        &format!("entity_types|{workspace}"),
        after,
        before,
    )?;
    let page = state
        .store
        .list_entity_types(workspace, &window.page)
        .await
        .map_err(fail)?;
    let (items, next, prev) = paged(&window, page, |t| t.key);
    Ok(Json(Paged {
        data: items.iter().map(TypeView::from).collect(),
        pagination: Cursors { next, prev },
    }))
}
