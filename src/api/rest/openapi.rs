//! `GET /openapi.json`: an OpenAPI 3.1 document of every gateway route. The
//! paths and schemas come from the router itself (each route is registered
//! with its `#[utoipa::path]`), so the document cannot drift from what is
//! served; this module adds the description and the family tags.

use axum::http::StatusCode;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use super::family::Family;
use super::flameup::Flameup;
use super::rapidly::Rapidly;
use super::schematic::Schematic;
use super::stigg::Stigg;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kith REST gateway",
        description = "The four public APIs Kith serves beside gRPC: Rapidly customers (seed 003, \
                       also under /v1/customers, where Polar's SDKs call them), Stigg entities \
                       (000), Schematic users and companies (001) and Flameup people (002). Each \
                       family authenticates with its own header and answers errors in its own \
                       shape."
    ),
    tags(
        (name = "rapidly", description = "Customers (seed 003); `Authorization: Bearer`"),
        (name = "stigg", description = "Entities and entity types (seed 000); `X-API-KEY`"),
        (name = "schematic", description = "Users, companies, memberships (seed 001); `X-Schematic-Api-Key`"),
        (name = "flameup", description = "People (seed 002); `Authorization: Bearer`"),
    )
)]
struct Description;

/// The whole document: the description, and the paths the router serves.
pub(super) fn document(served: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut document = Description::openapi();
    document.merge(served);
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            document_family_errors::<Rapidly>(operation);
            document_family_errors::<Stigg>(operation);
            document_family_errors::<Schematic>(operation);
            document_family_errors::<Flameup>(operation);
        }
    }
    // Operation ids must be unique in a document, and handlers of several
    // families share names (`list`, `create`): each id takes its family's
    // name first. The Rapidly handlers serve two prefixes; the copies
    // under `/v1` are Polar's.
    for (path, item) in &mut document.paths.paths {
        let polar = path.starts_with("/v1/");
        for operation in operations(item) {
            let family = if polar {
                Some("polar".to_owned())
            } else {
                operation
                    .tags
                    .as_ref()
                    .and_then(|tags| tags.first().cloned())
            };
            if let (Some(family), Some(id)) = (family, &mut operation.operation_id) {
                *id = format!("{family}_{id}");
            }
        }
    }
    document
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// Adds to an operation of family `F` the errors any of its routes can
/// answer, beside those the route declares itself (its 404, its clash):
/// the key check, the limits, the request checks and the server's own
/// trouble, each with the family's error body.
fn document_family_errors<F: Family>(operation: &mut Operation) {
    let ours = operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|tag| tag == F::TAG));
    if !ours {
        return;
    }
    let reads_body = operation.request_body.is_some();
    let reads_input = reads_body
        || operation
            .parameters
            .as_ref()
            .is_some_and(|parameters| !parameters.is_empty());
    let mut errors = vec![
        (
            StatusCode::UNAUTHORIZED,
            "No API key, or an unknown or revoked one.",
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "The key's rate limit was reached; see `Retry-After`.",
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected server error.",
        ),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unreachable, or the server is stopping.",
        ),
    ];
    if reads_input {
        errors.push((
            F::INVALID,
            "The request is invalid; every offending field is named.",
        ));
    }
    if reads_body {
        errors.push((
            F::CLASH,
            "Another record already holds a value that must be unique, or the write lost a race it could not retry.",
        ));
        errors.push((F::MALFORMED, "The body is not JSON."));
        errors.push((
            StatusCode::PAYLOAD_TOO_LARGE,
            "The body is larger than 1 MiB.",
        ));
        errors.push((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The body is not sent as `application/json`.",
        ));
    }
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry(status.as_u16().to_string())
            .or_insert_with(|| error_response::<F>(description));
    }
}

fn error_response<F: Family>(description: &str) -> RefOr<Response> {
    let body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(F::ERROR_SCHEMA)))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
        .build()
        .into()
}

/// The served document: the seed families' routes, then the contract's own
/// under `/kith/v1/` (tag `kith`), as JSON.
pub(super) fn with_contract_routes(
    families: utoipa::openapi::OpenApi,
    contract: super::canonical::openapi::Document,
) -> std::sync::Arc<serde_json::Value> {
    let mut document = serde_json::to_value(families).expect("the document serialises");
    if let Some(paths) = document["paths"].as_object_mut() {
        paths.extend(contract.paths);
    }
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(contract.schemas);
    }
    if let Some(tags) = document["tags"].as_array_mut() {
        tags.push(serde_json::json!({
            "name": "kith",
            "description": "Every kith.v1 RPC at its google.api.http binding, in the proto3 JSON mapping, with AIP-193 errors; `Authorization: Bearer`",
        }));
    }
    std::sync::Arc::new(document)
}
