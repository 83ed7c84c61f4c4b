//! `GET /openapi.json`: an OpenAPI 3.1 document of every gateway route. The
//! paths and schemas come from the router itself (each route is registered
//! with its `#[utoipa::path]`), so the document cannot drift from what is
//! served; this module adds the description and the family tags.

use utoipa::OpenApi;

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
    // Operation ids must be unique in a document, and handlers of several
    // families share names (`list`, `create`): each id takes its family's
    // name first. The Rapidly handlers serve two prefixes; the copies
    // under `/v1` are Polar's.
    for (path, item) in &mut document.paths.paths {
        let polar = path.starts_with("/v1/");
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
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
