//! Flameup's people API (seed 002): `/api/v1/workspaces/{workspaceId}/people…`
//! and `/api/v1/people…`, `Authorization: Bearer`, snake_case bodies with a
//! camelCase `userId`, errors as `{"error":{"code","message","details"}}`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::RestState;
use super::family::{ApiError, Authed, Body, Family, Params, rfc3339, to_json};
use super::schemas;
use crate::auth::bearer_key;
use crate::domain::Caller;
use crate::domain::page::{FLAMEUP_PAGES, PageRequest};
use crate::domain::person::{
    self, Person, PersonFilter, PersonLookup, PersonStatus, PersonUpsert, PersonUpsertInput,
};
use crate::error::{Error, FieldPath, FieldViolation};

/// Seed 002's family.
pub struct Flameup;

impl Family for Flameup {
    const TAG: &str = "flameup";
    const ERROR_SCHEMA: &str = "FlameupError";
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    /// Syntax errors are 400; well-formed JSON of the wrong shape is 422.
    const MALFORMED: StatusCode = StatusCode::BAD_REQUEST;

    fn key(headers: &HeaderMap) -> Option<&str> {
        bearer_key(headers)
    }

    /// Snake case, but for the `userId` callers send; trait names as sent.
    fn field_name(path: &FieldPath) -> String {
        path.render(|name| match name {
            "user_id" => Cow::Borrowed("userId"),
            other => Cow::Borrowed(other),
        })
    }

    fn error_body(error: &Error, message: &str, _input: Option<&Value>) -> Value {
        let code = match error {
            Error::InvalidArgument(_)
            | Error::InvalidPageToken(_)
            | Error::ForbiddenTransition(_) => "validation_error",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Aborted(_) => "conflict",
            Error::NotFound { .. } => "not_found",
            Error::CursorExpired => "cursor_expired",
            Error::TooSlow => "too_slow",
            Error::Unauthenticated => "unauthorized",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) | Error::ShuttingDown => "service_unavailable",
            Error::Internal(_) => "internal_error",
        };
        let fields: BTreeMap<String, String> = error
            .violations()
            .iter()
            .map(|v| (Self::field_name(&v.field), v.description.clone()))
            .collect();
        to_json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
                details: (!fields.is_empty()).then_some(FieldErrors { fields }),
            },
        })
    }
}

pub(super) fn routes() -> OpenApiRouter<RestState> {
    OpenApiRouter::new()
        .routes(routes!(batch))
        .routes(routes!(upsert))
        .routes(routes!(create_in_workspace))
        .routes(routes!(update, get_in_workspace, delete_in_workspace))
        .routes(routes!(create, list))
        .routes(routes!(get_person, delete))
}

/// Flameup's error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FlameupError)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FlameupErrorDetail)]
pub(super) struct ErrorDetail {
    code: String,
    message: String,
    /// `{"fields": {"people[0].userId": "…"}}` for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<FieldErrors>,
}

/// Each offending field, in the family's spelling, with what is wrong.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FlameupFieldErrors)]
pub(super) struct FieldErrors {
    fields: BTreeMap<String, String>,
}

/// The caller Flameup's header admits, when the workspace the path names
/// is its key's: another workspace is not found, never revealed. A parts
/// extractor, so the check comes before the body is read.
pub(super) struct InWorkspace(Caller);

impl FromRequestParts<RestState> for InWorkspace {
    type Rejection = ApiError<Flameup>;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &RestState,
    ) -> Result<Self, Self::Rejection> {
        let Authed(caller, _) = Authed::<Flameup>::from_request_parts(parts, state).await?;
        let not_found = || Error::NotFound {
            resource: "workspace",
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let named = params
            .iter()
            .find_map(|(name, value)| (name == "workspace_id").then_some(value));
        match named {
            Some(workspace) if workspace == caller.workspace.to_string() => Ok(Self(caller)),
            _ => Err(not_found().into()),
        }
    }
}

/// One person as sent: `userId`, `email`, `phone` (create) and `traits`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PersonBody {
    #[schema(schema_with = schemas::person_user_id, required = true)]
    user_id: Option<String>,
    #[schema(schema_with = schemas::email_or_none)]
    email: Option<String>,
    /// The `phone` trait, when the traits hold none.
    #[schema(schema_with = person_phone)]
    phone: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::person_traits)]
    traits: Map<String, Value>,
}

fn person_phone() -> utoipa::openapi::schema::Object {
    schemas::nullable_text(50)
}

fn people_batch() -> utoipa::openapi::schema::Schema {
    schemas::batch(
        utoipa::openapi::Ref::from_schema_name("PersonBody"),
        crate::domain::entity::MAX_BATCH,
    )
}

impl PersonBody {
    /// The person as the domain takes it: `phone` is the `phone` trait
    /// sent outside `traits`, and sending both with different values is a
    /// mistake (whichever won, the other would go unchecked).
    fn into_input(self, at: &FieldPath) -> Result<PersonUpsertInput, FieldViolation> {
        let mut traits = self.traits;
        if let Some(phone) = self.phone {
            match traits.get("phone") {
                Some(trait_phone) if trait_phone.as_str() != Some(phone.as_str()) => {
                    return Err(FieldViolation::new(
                        at.clone().then("phone"),
                        "differs from traits.phone; send one",
                    ));
                }
                _ => {
                    traits.insert("phone".to_owned(), Value::String(phone));
                }
            }
        }
        Ok(PersonUpsertInput {
            user_id: self.user_id.unwrap_or_default(),
            email: self.email,
            traits,
            status: None,
        })
    }

    /// The one person of a single-person route, checked.
    fn parse(self) -> Result<PersonUpsert, Error> {
        let input = self
            .into_input(&FieldPath::default())
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        PersonUpsert::parse(input).map_err(Error::InvalidArgument)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct BatchBody {
    #[schema(schema_with = people_batch)]
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
async fn batch(
    State(state): State<RestState>,
    InWorkspace(caller): InWorkspace,
    Body(request, _): Body<Flameup, BatchBody>,
) -> Result<Json<BatchView>, ApiError<Flameup>> {
    let inputs = request
        .people
        .into_iter()
        .enumerate()
        .map(|(position, person)| person.into_input(&person::batch_item(position)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
    let batch = person::parse_batch(inputs)?;
    let written = state.service.batch_upsert_people(&caller, &batch).await?;
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

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/people/upsert", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id")), request_body = PersonBody, responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upsert(
    State(state): State<RestState>,
    InWorkspace(caller): InWorkspace,
    Body(request, _): Body<Flameup, PersonBody>,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    let upserted = state
        .service
        .upsert_person(&caller, request.parse()?)
        .await?;
    Ok(Json(PersonView::from(&upserted.person)))
}

/// A create: 201, or 409 when someone has the user id.
async fn create_person(
    state: &RestState,
    caller: &Caller,
    request: PersonBody,
) -> Result<(StatusCode, Json<PersonView>), ApiError<Flameup>> {
    let created = state
        .service
        .create_person(caller, request.parse()?)
        .await?;
    Ok((StatusCode::CREATED, Json(PersonView::from(&created.person))))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/people", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id")), request_body = PersonBody, responses((status = 201, body = PersonView), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_in_workspace(
    State(state): State<RestState>,
    InWorkspace(caller): InWorkspace,
    Body(request, _): Body<Flameup, PersonBody>,
) -> Result<(StatusCode, Json<PersonView>), ApiError<Flameup>> {
    create_person(&state, &caller, request).await
}

#[utoipa::path(post, path = "/api/v1/people", tag = "flameup", request_body = PersonBody, responses((status = 201, body = PersonView), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Flameup>,
    Body(request, _): Body<Flameup, PersonBody>,
) -> Result<(StatusCode, Json<PersonView>), ApiError<Flameup>> {
    create_person(&state, &caller, request).await
}

#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "flameup", params(("id" = String, Path, description = "The person's id, external id or email", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_person(
    State(state): State<RestState>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Flameup>,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    let person = state.service.find_person(&caller, &id).await?;
    Ok(Json(PersonView::from(&person)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_in_workspace(
    State(state): State<RestState>,
    Path((_, id)): Path<(String, String)>,
    InWorkspace(caller): InWorkspace,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    let person = state.service.find_person(&caller, &id).await?;
    Ok(Json(PersonView::from(&person)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct UpdateBody {
    #[serde(default)]
    #[schema(schema_with = schemas::person_traits)]
    traits: Map<String, Value>,
}

/// Merges traits into a person found by id, external id or email, with
/// the upsert's rules.
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), request_body = UpdateBody, responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<RestState>,
    Path((_, person_id)): Path<(String, String)>,
    InWorkspace(caller): InWorkspace,
    Body(request, _): Body<Flameup, UpdateBody>,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    let person = state
        .service
        .merge_person_traits(&caller, &person_id, request.traits)
        .await?;
    Ok(Json(PersonView::from(&person)))
}

/// Deletes the person a path segment names.
async fn delete_person(
    state: &RestState,
    caller: &Caller,
    id: &str,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    let person = state.service.find_person(caller, id).await?;
    let deleted = state
        .service
        .delete_person(caller, &PersonLookup::Id(person.id))
        .await?;
    Ok(Json(PersonView::from(&deleted)))
}

#[utoipa::path(delete, path = "/api/v1/people/{id}", tag = "flameup", params(("id" = String, Path, description = "The person's id, external id or email", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete(
    State(state): State<RestState>,
    Path(id): Path<String>,
    Authed(caller, _): Authed<Flameup>,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    delete_person(&state, &caller, &id).await
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/people/{person_id}", tag = "flameup", params(("workspace_id" = String, Path, description = "The key's workspace id"), ("person_id" = String, Path, description = "The person's id, external id or email", min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")), responses((status = 200, body = PersonView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_in_workspace(
    State(state): State<RestState>,
    Path((_, id)): Path<(String, String)>,
    InWorkspace(caller): InWorkspace,
) -> Result<Json<PersonView>, ApiError<Flameup>> {
    delete_person(&state, &caller, &id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Up to 100, 50 by default; larger values are lowered.
    #[param(schema_with = schemas::lowered_page_size)]
    limit: Option<i64>,
    #[param(schema_with = schemas::offset)]
    offset: Option<u64>,
    /// `active`, `unsubscribed` or `bounced`; empty for all.
    #[param(schema_with = person_status)]
    status: Option<String>,
    /// Names or email containing this text, or an external id starting
    /// with it (case-insensitive, for all of Unicode).
    #[param(schema_with = schemas::search_query)]
    search: Option<String>,
}

fn person_status() -> utoipa::openapi::schema::Object {
    schemas::one_of_words(&["", "active", "unsubscribed", "bounced"])
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FlameupListView)]
pub(super) struct ListView {
    people: Vec<PersonView>,
    limit: usize,
    offset: u64,
    has_more: bool,
}

#[utoipa::path(get, path = "/api/v1/people", tag = "flameup", params(ListQuery), responses((status = 200, body = ListView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<RestState>,
    Authed(caller, _): Authed<Flameup>,
    Params(query, _): Params<Flameup, ListQuery>,
) -> Result<Json<ListView>, ApiError<Flameup>> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(PersonStatus::parse(text).ok_or_else(|| {
            Error::invalid("status", "must be one of active, unsubscribed, bounced")
        })?),
    };
    let filter = PersonFilter::parse(status, "search", query.search.as_deref().unwrap_or(""))?;
    let offset = query.offset.unwrap_or(0);
    let page = PageRequest::parse(
        &FLAMEUP_PAGES,
        query.limit,
        "",
        &filter.canonical(caller.workspace),
    )?
    .skipping(offset);
    let limit = page.size;
    let page = state
        .service
        .list_people(&caller, &filter, &page)
        .await?
        .items;
    Ok(Json(ListView {
        people: page.items.iter().map(PersonView::from).collect(),
        limit,
        offset,
        has_more: page.next_token.is_some(),
    }))
}
