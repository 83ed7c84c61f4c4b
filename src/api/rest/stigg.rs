//! Stigg's entities API (seed 000): `/api/v1-beta/customers/{id}/entities…`
//! and `/api/v1-beta/entity-types`, `X-API-KEY`, camelCase bodies in a
//! `{"data": …}` envelope, errors as `{"error":{"code","message"}}`.
//! The type is accepted as `typeRefId` (the seed) or `entityTypeId` (the
//! current SDKs) and returned under both names.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::RestState;
use super::family::{
    ApiError, Authed, Body, Family, Params, present, rfc3339, to_json, violation_list,
};
use super::schemas;
use crate::auth::header_key;
use crate::domain::Caller;
use crate::domain::customer::ExternalId;
use crate::domain::entity::{
    self, Entity, EntityFilter, EntityId, EntityType, EntityTypeInput, EntityUpsertInput,
    entity_types_query,
};
use crate::domain::page::{Cursor, Page, PageRequest, STIGG_PAGES};
use crate::error::{Error, FieldPath, FieldViolation, lower_camel};

/// Seed 000's family.
pub struct Stigg;

impl Family for Stigg {
    const TAG: &str = "stigg";
    const ERROR_SCHEMA: &str = "StiggError";
    /// Stigg answers every invalid request with 400.
    const INVALID: StatusCode = StatusCode::BAD_REQUEST;

    fn key(headers: &HeaderMap) -> Option<&str> {
        header_key(headers, "x-api-key")
    }

    /// Field names as Stigg's bodies spell them; map keys as sent.
    fn field_name(path: &FieldPath) -> String {
        path.render(|name| match name {
            "type_id" => Cow::Borrowed("typeRefId"),
            "customer_id" => Cow::Borrowed("id"),
            other => lower_camel(other),
        })
    }

    fn error_body(error: &Error, message: &str, _input: Option<&Value>) -> Value {
        let code = match error {
            Error::InvalidArgument(_)
            | Error::InvalidPageToken(_)
            | Error::ForbiddenTransition(_) => "BAD_REQUEST",
            Error::AlreadyExists { .. } | Error::Aborted(_) => "CONFLICT",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::CursorExpired => "GONE",
            Error::TooSlow => "TOO_MANY_REQUESTS",
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::RateLimited { .. } => "TOO_MANY_REQUESTS",
            Error::Unavailable(_) | Error::ShuttingDown => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        };
        let message = match error {
            Error::Unauthenticated => "Invalid or missing API key".to_owned(),
            _ if error.violations().is_empty() => message.to_owned(),
            _ => violation_list::<Self>(error.violations()),
        };
        to_json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        })
    }
}

pub(super) fn routes() -> OpenApiRouter<RestState> {
    OpenApiRouter::new()
        .routes(routes!(list, upsert))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(get_one))
        .routes(routes!(list_types, upsert_types))
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
#[schema(as = StiggError)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StiggErrorDetail)]
pub(super) struct ErrorDetail {
    code: String,
    message: String,
}

fn owner(customer_id: &str) -> Result<ExternalId, Error> {
    entity::parse_owner(customer_id, "customer_id").map_err(|v| Error::InvalidArgument(vec![v]))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntityBody {
    #[serde(default)]
    #[schema(schema_with = schemas::entity_id, required = true)]
    id: String,
    /// The entity's type; required to create an entity.
    #[serde(alias = "entityTypeId")]
    #[schema(schema_with = schemas::nullable_entity_id)]
    type_ref_id: Option<String>,
    /// Absent keeps the name; `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = schemas::entity_display_name)]
    display_name: Option<Option<String>>,
    /// String values; an empty one deletes its key.
    #[serde(default)]
    #[schema(schema_with = schemas::entity_metadata)]
    metadata: Map<String, Value>,
}

/// 1 to 100 entities, each id once.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = StiggUpsertBody)]
pub(super) struct UpsertBody {
    #[schema(schema_with = entity_batch)]
    entities: Vec<EntityBody>,
}

fn entity_batch() -> utoipa::openapi::schema::Schema {
    schemas::batch(
        <EntityBody as utoipa::PartialSchema>::schema(),
        entity::MAX_BATCH,
    )
}

fn id_batch() -> utoipa::openapi::schema::Schema {
    schemas::batch(schemas::entity_id(), entity::MAX_BATCH)
}

fn type_batch() -> utoipa::openapi::schema::Schema {
    schemas::batch(
        <TypeBody as utoipa::PartialSchema>::schema(),
        entity::MAX_BATCH,
    )
}

fn stigg_page_size() -> utoipa::openapi::schema::Object {
    schemas::page_size(STIGG_PAGES.max)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntityView {
    id: String,
    type_id: String,
    entity_type_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    metadata: BTreeMap<String, String>,
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
) -> Result<BTreeMap<String, String>, FieldViolation> {
    pairs
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            _ => Err(FieldViolation::new(
                FieldPath::field("entities")
                    .index(position)
                    .then("metadata")
                    .key(key),
                "must be a string",
            )),
        })
        .collect()
}

#[utoipa::path(put, path = "/api/v1-beta/customers/{customer_id}/entities", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.@\\-]{0,254}$")), request_body = UpsertBody, responses((status = 200, body = Data<Vec<EntityView>>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn upsert(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    Authed(caller, _): Authed<Stigg>,
    Body(request, _): Body<Stigg, UpsertBody>,
) -> Result<Json<Data<Vec<EntityView>>>, ApiError<Stigg>> {
    let owner = owner(&customer_id)?;
    let mut wire = Vec::new();
    let mut inputs = Vec::with_capacity(request.entities.len());
    for (i, e) in request.entities.into_iter().enumerate() {
        let metadata = metadata(i, e.metadata).unwrap_or_else(|violation| {
            wire.push(violation);
            BTreeMap::new()
        });
        inputs.push(EntityUpsertInput {
            id: e.id,
            type_id: e.type_ref_id,
            display_name: e.display_name.map(Option::unwrap_or_default),
            metadata,
        });
    }
    let batch = Error::with_wire_violations(wire, entity::parse_batch(inputs))?;
    let entities = state
        .service
        .batch_upsert_entities(&caller, &owner, &batch)
        .await?;
    Ok(Json(Data {
        data: entities.iter().map(EntityView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1-beta/customers/{customer_id}/entities/{entity_id}", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.@\\-]{0,254}$"), ("entity_id" = String, Path, description = "The entity id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.\\-]{0,254}$")), responses((status = 200, body = Data<EntityView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<RestState>,
    Path((customer_id, entity_id)): Path<(String, String)>,
    Authed(caller, _): Authed<Stigg>,
) -> Result<Json<Data<EntityView>>, ApiError<Stigg>> {
    let owner = owner(&customer_id)?;
    let id =
        EntityId::parse(&entity_id, "entity_id").map_err(|v| Error::InvalidArgument(vec![v]))?;
    let entity = state.service.get_entity(&caller, &owner, &id).await?;
    Ok(Json(Data {
        data: EntityView::from(&entity),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    /// 1 to 100, 20 by default.
    #[param(schema_with = stigg_page_size)]
    limit: Option<i64>,
    /// List after this entity (its UUID).
    #[param(schema_with = schemas::uuid_cursor)]
    after: Option<String>,
    /// List before this entity (its UUID).
    #[param(schema_with = schemas::uuid_cursor)]
    before: Option<String>,
    /// Only entities of this type.
    #[serde(alias = "entityTypeId")]
    #[param(schema_with = schemas::entity_type_filter)]
    type_ref_id: Option<String>,
    /// Archived entities too.
    #[param(schema_with = schemas::boolean_text)]
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
) -> Result<Window, Error> {
    let mut page = PageRequest::parse(&STIGG_PAGES, limit, "", query)?;
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

fn cursor_id(text: Option<&str>, field: &'static str) -> Result<Option<uuid::Uuid>, Error> {
    text.filter(|t| !t.is_empty())
        .map(|t| uuid::Uuid::try_parse(t).map_err(|_| Error::invalid(field, "must be a UUID")))
        .transpose()
}

#[utoipa::path(get, path = "/api/v1-beta/customers/{customer_id}/entities", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.@\\-]{0,254}$"), ListQuery), responses((status = 200, body = Paged<EntityView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    Authed(caller, _): Authed<Stigg>,
    Params(query, _): Params<Stigg, ListQuery>,
) -> Result<Json<Paged<EntityView>>, ApiError<Stigg>> {
    let owner = owner(&customer_id)?;
    let include_archived = match query.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(Error::invalid("include_archived", "must be \"true\" or \"false\"").into());
        }
    };
    let filter = EntityFilter::parse(
        query.type_ref_id.as_deref().unwrap_or(""),
        include_archived,
        "",
    )?;
    let after = entity_cursor(
        &state,
        &caller,
        &owner,
        cursor_id(query.after.as_deref(), "after")?,
    )
    .await?;
    let before = entity_cursor(
        &state,
        &caller,
        &owner,
        cursor_id(query.before.as_deref(), "before")?,
    )
    .await?;
    let window = window(
        query.limit,
        &filter.canonical(caller.workspace, &owner),
        after,
        before,
    )?;
    let page = state
        .service
        .list_entities(&caller, &owner, &filter, &window.page)
        .await?
        .items;
    let (items, next, prev) = paged(&window, page, |e| e.key);
    Ok(Json(Paged {
        data: items.iter().map(EntityView::from).collect(),
        pagination: Cursors { next, prev },
    }))
}

/// Where the entity a cursor names sits, if a cursor was given.
async fn entity_cursor(
    state: &RestState,
    caller: &Caller,
    owner: &ExternalId,
    id: Option<uuid::Uuid>,
) -> Result<Option<Cursor>, Error> {
    match id {
        Some(id) => state
            .service
            .entity_cursor(caller, owner, id)
            .await
            .map(Some),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct IdsBody {
    #[schema(schema_with = id_batch)]
    ids: Vec<String>,
}

async fn set_archived(
    state: &RestState,
    caller: &Caller,
    customer_id: &str,
    request: IdsBody,
    archived: bool,
) -> Result<Json<Data<Ids>>, ApiError<Stigg>> {
    let owner = owner(customer_id)?;
    let ids = entity::parse_ids(&request.ids)?;
    let entities = state
        .service
        .set_entities_archived(caller, &owner, &ids, archived)
        .await?;
    let ids = entities.iter().map(|e| e.id.as_str().to_owned()).collect();
    Ok(Json(Data { data: Ids { ids } }))
}

#[utoipa::path(post, path = "/api/v1-beta/customers/{customer_id}/entities/archive", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.@\\-]{0,254}$")), request_body = IdsBody, responses((status = 200, body = Data<Ids>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    Authed(caller, _): Authed<Stigg>,
    Body(request, _): Body<Stigg, IdsBody>,
) -> Result<Json<Data<Ids>>, ApiError<Stigg>> {
    set_archived(&state, &caller, &customer_id, request, true).await
}

#[utoipa::path(post, path = "/api/v1-beta/customers/{customer_id}/entities/unarchive", tag = "stigg", params(("customer_id" = String, Path, description = "The owner customer's external id", pattern = "^[A-Za-z0-9][A-Za-z0-9_|.@\\-]{0,254}$")), request_body = IdsBody, responses((status = 200, body = Data<Ids>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unarchive(
    State(state): State<RestState>,
    Path(customer_id): Path<String>,
    Authed(caller, _): Authed<Stigg>,
    Body(request, _): Body<Stigg, IdsBody>,
) -> Result<Json<Data<Ids>>, ApiError<Stigg>> {
    set_archived(&state, &caller, &customer_id, request, false).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TypeBody {
    #[serde(default)]
    #[schema(schema_with = schemas::entity_id, required = true)]
    id: String,
    #[serde(default)]
    #[schema(schema_with = schemas::entity_type_display_name, required = true)]
    display_name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::attribution_keys)]
    attribution_keys: Vec<String>,
}

/// 1 to 100 entity types, each id once.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct TypesBody {
    #[schema(schema_with = type_batch)]
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
async fn upsert_types(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Stigg>,
    Body(request, _): Body<Stigg, TypesBody>,
) -> Result<Json<Data<Vec<TypeView>>>, ApiError<Stigg>> {
    let inputs = request
        .types
        .into_iter()
        .map(|t| EntityTypeInput {
            id: t.id,
            display_name: t.display_name,
            attribution_keys: t.attribution_keys,
            archived: None,
        })
        .collect();
    let batch = entity::parse_type_batch(inputs)?;
    let types = state
        .service
        .batch_upsert_entity_types(&caller, &batch)
        .await?;
    Ok(Json(Data {
        data: types.iter().map(TypeView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TypesQuery {
    /// 1 to 100, 20 by default.
    #[param(schema_with = stigg_page_size)]
    limit: Option<i64>,
    /// List after this type (its UUID).
    #[param(schema_with = schemas::uuid_cursor)]
    after: Option<String>,
    /// List before this type (its UUID).
    #[param(schema_with = schemas::uuid_cursor)]
    before: Option<String>,
}

#[utoipa::path(get, path = "/api/v1-beta/entity-types", tag = "stigg", params(TypesQuery), responses((status = 200, body = Paged<TypeView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_types(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Stigg>,
    Params(query, _): Params<Stigg, TypesQuery>,
) -> Result<Json<Paged<TypeView>>, ApiError<Stigg>> {
    let type_cursor = |id: Option<uuid::Uuid>| {
        let (state, caller) = (&state, &caller);
        async move {
            match id {
                Some(id) => state.service.entity_type_cursor(caller, id).await.map(Some),
                None => Ok(None),
            }
        }
    };
    let after = type_cursor(cursor_id(query.after.as_deref(), "after")?).await?;
    let before = type_cursor(cursor_id(query.before.as_deref(), "before")?).await?;
    let window = window(
        query.limit,
        &entity_types_query(caller.workspace),
        after,
        before,
    )?;
    let page = state
        .service
        .list_entity_types(&caller, &window.page)
        .await?
        .items;
    let (items, next, prev) = paged(&window, page, |t| t.key);
    Ok(Json(Paged {
        data: items.iter().map(TypeView::from).collect(),
        pagination: Cursors { next, prev },
    }))
}
