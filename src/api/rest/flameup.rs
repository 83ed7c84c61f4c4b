//! Flameup's people API (seed 002): `/api/v1/workspaces/{workspaceId}/people…`
//! and `/api/v1/people…`, `Authorization: Bearer`, snake_case bodies with a
//! camelCase `userId`, errors as `{"error":{"code","message","details"}}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Family, RestState, authenticate, body, rfc3339};
use crate::domain::WorkspaceId;
use crate::domain::page::PageRequest;
use crate::domain::person::{
    self, Person, PersonFilter, PersonLookup, PersonStatus, PersonUpsertInput,
};
use crate::error::Error;

const FAMILY: Family = Family::Flameup;

pub(super) fn routes() -> Router<RestState> {
    Router::new()
        .route(
            "/api/v1/workspaces/{workspace_id}/people/batch",
            post(batch),
        )
        .route(
            "/api/v1/workspaces/{workspace_id}/people/upsert",
            post(upsert),
        )
        .route(
            "/api/v1/workspaces/{workspace_id}/people",
            post(create_in_workspace),
        )
        .route(
            "/api/v1/workspaces/{workspace_id}/people/{person_id}",
            put(update)
                .get(get_in_workspace)
                .delete(delete_in_workspace),
        )
        .route("/api/v1/people", post(create).get(list))
        .route("/api/v1/people/{id}", get(get_person).delete(delete))
}

/// Flameup's error body.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

impl ErrorBody {
    pub(super) fn new(code: &str, message: &str, details: Option<Value>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
                details,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorDetail {
    code: String,
    message: String,
    /// `{"fields": {"people[0].userId": "…"}}` for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    details: Option<Value>,
}

/// Domain field paths in the names Flameup callers send.
pub(super) fn field_name(path: &str) -> String {
    path.replace("user_id", "userId")
}

fn fail(error: Error) -> ApiError {
    ApiError::new(FAMILY, error)
}

/// The key's workspace, which a workspace in the path must be; another
/// workspace is not found, never revealed.
pub(super) async fn workspace(
    state: &RestState,
    headers: &HeaderMap,
    path_workspace: Option<&str>,
) -> Result<WorkspaceId, ApiError> {
    let workspace = authenticate(state, FAMILY, headers).await?;
    match path_workspace {
        Some(path) if path != workspace.to_string() => Err(fail(Error::NotFound {
            resource: "workspace",
        })),
        _ => Ok(workspace),
    }
}

/// One person as sent: `userId`, `email`, `phone` (create) and `traits`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PersonBody {
    user_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
}

impl PersonBody {
    fn into_input(self) -> PersonUpsertInput {
        let mut traits = self.traits;
        if let Some(phone) = self.phone {
            traits.entry("phone").or_insert(Value::String(phone));
        }
        PersonUpsertInput {
            user_id: self.user_id.unwrap_or_default(),
            email: self.email,
            traits,
            status: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct BatchBody {
    people: Vec<PersonBody>,
}

/// A person as Flameup returns one.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PersonView {
    id: String,
    workspace_id: String,
    external_id: String,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    avatar_url: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
    status: &'static str,
    #[schema(value_type = Object)]
    attributes: Map<String, Value>,
    created_at: String,
    updated_at: String,
    first_seen_at: String,
    last_seen_at: String,
}

impl From<&Person> for PersonView {
    fn from(person: &Person) -> Self {
        let field = |name: &str| person.profile.get(name).map(str::to_owned);
        Self {
            id: person.id.to_string(),
            workspace_id: person.workspace_id.to_string(),
            external_id: person.external_id.clone(),
            email: person.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: field("phone"),
            first_name: field("first_name"),
            last_name: field("last_name"),
            avatar_url: field("avatar_url"),
            timezone: field("timezone"),
            locale: field("locale"),
            status: person.status.as_str(),
            attributes: person.attributes.clone(),
            created_at: rfc3339(person.created_at),
            updated_at: rfc3339(person.updated_at),
            first_seen_at: rfc3339(person.first_seen_at),
            last_seen_at: rfc3339(person.last_seen_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BatchView {
    people: Vec<PersonView>,
    created_count: usize,
    updated_count: usize,
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/people/batch", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id")), request_body = BatchBody, responses((status = 200, body = BatchView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn batch(
    State(state): State<RestState>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<BatchBody>, JsonRejection>,
) -> Result<Json<BatchView>, ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    let request = body(FAMILY, request)?;
    let inputs = request
        .people
        .into_iter()
        .map(PersonBody::into_input)
        .collect();
    let batch = person::parse_batch(inputs).map_err(fail)?;
    let written = state
        .store
        .upsert_people(workspace, &batch)
        .await
        .map_err(fail)?;
    let created_count = written.iter().filter(|u| u.created).count();
    Ok(Json(BatchView {
        people: written
            .iter()
            .map(|u| PersonView::from(&u.person))
            .collect(),
        created_count,
        updated_count: written.len() - created_count,
    }))
}

/// One person through the batch path, with field paths named from the
/// person rather than `people[0]`.
pub(super) async fn upsert_one(
    state: &RestState,
    workspace: WorkspaceId,
    person: PersonBody,
) -> Result<person::Upserted, ApiError> {
    let unprefix = |error: Error| match error {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|mut v| {
                    v.field = v.field.trim_start_matches("people[0].").to_owned();
                    v
                })
                .collect(),
        ),
        Error::AlreadyExists(mut v) => {
            v.field = v.field.trim_start_matches("people[0].").to_owned();
            Error::AlreadyExists(v)
        }
        other => other,
    };
    let batch = person::parse_batch(vec![person.into_input()]).map_err(|e| fail(unprefix(e)))?;
    let mut written = state
        .store
        .upsert_people(workspace, &batch)
        .await
        .map_err(|e| fail(unprefix(e)))?;
    Ok(written.remove(0))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/people/upsert", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id")), request_body = PersonBody, responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn upsert(
    State(state): State<RestState>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<PersonBody>, JsonRejection>,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    let upserted = upsert_one(&state, workspace, body(FAMILY, request)?).await?;
    Ok(Json(PersonView::from(&upserted.person)))
}

pub(super) async fn create_person(
    state: &RestState,
    workspace: WorkspaceId,
    person: PersonBody,
) -> Result<(StatusCode, Json<PersonView>), ApiError> {
    if let Some(user_id) = person.user_id.as_deref().filter(|id| !id.is_empty()) {
        let lookup = PersonLookup::by_external_id(user_id).map_err(fail)?;
        match state.store.get_person(workspace, &lookup).await {
            Ok(_) => {
                return Err(fail(Error::AlreadyExists(
                    crate::error::FieldViolation::new(
                        "userId",
                        "A person with this user id already exists.",
                    ),
                )));
            }
            Err(Error::NotFound { .. }) => {}
            Err(error) => return Err(fail(error)),
        }
    }
    let upserted = upsert_one(state, workspace, person).await?;
    Ok((
        StatusCode::CREATED,
        Json(PersonView::from(&upserted.person)),
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/people", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id")), request_body = PersonBody, responses((status = 201, body = PersonView), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_in_workspace(
    State(state): State<RestState>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<PersonBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PersonView>), ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    create_person(&state, workspace, body(FAMILY, request)?).await
}

#[utoipa::path(post, path = "/api/v1/people", tag = "flameup", request_body = PersonBody, responses((status = 201, body = PersonView), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<RestState>,
    headers: HeaderMap,
    request: Result<Json<PersonBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PersonView>), ApiError> {
    let workspace = workspace(&state, &headers, None).await?;
    create_person(&state, workspace, body(FAMILY, request)?).await
}

/// `{id}` is the person's id, external id or email, as Flameup allows.
fn lookup(id: &str) -> Result<PersonLookup, ApiError> {
    if let Ok(uuid) = uuid::Uuid::try_parse(id) {
        return Ok(PersonLookup::Id(uuid));
    }
    if id.contains('@')
        && let Ok(lookup) = PersonLookup::by_email(id)
    {
        return Ok(lookup);
    }
    PersonLookup::by_external_id(id).map_err(fail)
}

/// The person `{id}` names; a UUID that is no person's id may still be
/// someone's external id.
pub(super) async fn find(
    state: &RestState,
    workspace: WorkspaceId,
    id: &str,
) -> Result<Person, ApiError> {
    match state.store.get_person(workspace, &lookup(id)?).await {
        Err(Error::NotFound { .. }) if uuid::Uuid::try_parse(id).is_ok() => {
            let by_external = PersonLookup::by_external_id(id).map_err(fail)?;
            state
                .store
                .get_person(workspace, &by_external)
                .await
                .map_err(fail)
        }
        other => other.map_err(fail),
    }
}

#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "flameup", params(("id" = String, Path, description = "The person's id, external id or email")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn get_person(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, None).await?;
    Ok(Json(PersonView::from(&find(&state, workspace, &id).await?)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn get_in_workspace(
    State(state): State<RestState>,
    Path((workspace_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    Ok(Json(PersonView::from(&find(&state, workspace, &id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct UpdateBody {
    #[serde(default)]
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
}

/// Merges traits into a person found by id, with the upsert's rules.
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email")), request_body = UpdateBody, responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update(
    State(state): State<RestState>,
    Path((workspace_id, person_id)): Path<(String, String)>,
    headers: HeaderMap,
    request: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    let request = body(FAMILY, request)?;
    let current = find(&state, workspace, &person_id).await?;
    let person = PersonBody {
        user_id: Some(current.external_id),
        email: None,
        phone: None,
        traits: request.traits,
    };
    let upserted = upsert_one(&state, workspace, person).await?;
    Ok(Json(PersonView::from(&upserted.person)))
}

pub(super) async fn delete_person(
    state: &RestState,
    workspace: WorkspaceId,
    id: &str,
) -> Result<Json<PersonView>, ApiError> {
    let person = find(state, workspace, id).await?;
    let deleted = state
        .store
        .delete_person(workspace, &PersonLookup::Id(person.id))
        .await
        .map_err(fail)?;
    Ok(Json(PersonView::from(&deleted)))
}

#[utoipa::path(delete, path = "/api/v1/people/{id}", tag = "flameup", params(("id" = String, Path, description = "The person's id, external id or email")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn delete(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, None).await?;
    delete_person(&state, workspace, &id).await
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn delete_in_workspace(
    State(state): State<RestState>,
    Path((workspace_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<PersonView>, ApiError> {
    let workspace = workspace(&state, &headers, Some(&workspace_id)).await?;
    delete_person(&state, workspace, &id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    limit: Option<i64>,
    offset: Option<u64>,
    status: Option<String>,
    search: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ListView {
    people: Vec<PersonView>,
    limit: usize,
    offset: u64,
    has_more: bool,
}

#[utoipa::path(get, path = "/api/v1/people", tag = "flameup", params(ListQuery), responses((status = 200, body = ListView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<RestState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListView>, ApiError> {
    let workspace = workspace(&state, &headers, None).await?;
    let Query(query) =
        query.map_err(|rejection| fail(Error::invalid("query", rejection.body_text())))?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(PersonStatus::parse(text).ok_or_else(|| {
            fail(Error::invalid(
                "status",
                "must be one of active, unsubscribed, bounced",
            ))
        })?),
    };
    let filter =
        PersonFilter::parse(status, query.search.as_deref().unwrap_or("")).map_err(fail)?;
    let offset = query.offset.unwrap_or(0);
    let page = PageRequest::parse(query.limit.unwrap_or(0), "", &filter.canonical(workspace))
        .map_err(|e| fail(rename(e, "page_size", "limit")))?
        .skipping(offset);
    let limit = page.size;
    let page = state
        .store
        .list_people(workspace, &filter, &page)
        .await
        .map_err(fail)?;
    Ok(Json(ListView {
        people: page.items.iter().map(PersonView::from).collect(),
        limit,
        offset,
        has_more: page.next_token.is_some(),
    }))
}

fn rename(error: Error, from: &str, to: &str) -> Error {
    match error {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|mut v| {
                    if v.field == from {
                        to.clone_into(&mut v.field);
                    }
                    v
                })
                .collect(),
        ),
        other => other,
    }
}
