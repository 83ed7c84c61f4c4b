//! `kith.v1.EntityService`.

use tonic::{Request, Response, Status};

use super::caller_of;
use crate::domain::Caller;
use crate::domain::customer::ExternalId;
use crate::domain::entity::{
    self, EntityFilter, EntityId, EntityTypeInput, EntityUpsertInput, entity_types_query,
};
use crate::domain::page::{KITH_PAGES, PageRequest};
use crate::error::{Error, Result};
use crate::pb::kith::v1::entity_service_server::EntityService;
use crate::pb::kith::v1::{
    self as pb, BatchArchiveEntitiesRequest, BatchArchiveEntitiesResponse,
    BatchUnarchiveEntitiesRequest, BatchUnarchiveEntitiesResponse, BatchUpsertEntitiesRequest,
    BatchUpsertEntitiesResponse, BatchUpsertEntityTypesRequest, BatchUpsertEntityTypesResponse,
    GetEntityRequest, GetEntityResponse, ListEntitiesRequest, ListEntitiesResponse,
    ListEntityTypesRequest, ListEntityTypesResponse,
};
use crate::pb::records::{entity_to_proto, entity_type_to_proto};
use crate::service::Service;

pub struct EntityApi {
    service: Service,
}

impl EntityApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    async fn set_archived(
        &self,
        caller: &Caller,
        customer_id: &str,
        ids: &[String],
        archived: bool,
    ) -> Result<Vec<pb::Entity>> {
        let owner = owner(customer_id)?;
        let ids = entity::parse_ids(ids)?;
        let entities = self
            .service
            .set_entities_archived(caller, &owner, &ids, archived)
            .await?;
        Ok(entities
            .iter()
            .map(|e| entity_to_proto(e, &owner))
            .collect())
    }
}

fn owner(customer_external_id: &str) -> Result<ExternalId> {
    entity::parse_owner(customer_external_id, "customer_external_id")
        .map_err(|v| Error::InvalidArgument(vec![v]))
}

#[tonic::async_trait]
impl EntityService for EntityApi {
    async fn batch_upsert_entities(
        &self,
        request: Request<BatchUpsertEntitiesRequest>,
    ) -> Result<Response<BatchUpsertEntitiesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let owner = owner(&request.customer_external_id)?;
        let inputs = request
            .entities
            .into_iter()
            .map(|e| EntityUpsertInput {
                id: e.id,
                type_id: e.type_id,
                display_name: e.display_name,
                metadata: e.metadata.into_iter().collect(),
            })
            .collect();
        let batch = entity::parse_batch(inputs)?;
        let entities = self
            .service
            .batch_upsert_entities(&caller, &owner, &batch)
            .await?;
        Ok(Response::new(BatchUpsertEntitiesResponse {
            entities: entities
                .iter()
                .map(|e| entity_to_proto(e, &owner))
                .collect(),
        }))
    }

    async fn get_entity(
        &self,
        request: Request<GetEntityRequest>,
    ) -> Result<Response<GetEntityResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let owner = owner(&request.customer_external_id)?;
        let id = EntityId::parse(&request.entity_id, "entity_id")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let entity = self.service.get_entity(&caller, &owner, &id).await?;
        Ok(Response::new(GetEntityResponse {
            entity: Some(entity_to_proto(&entity, &owner)),
        }))
    }

    async fn list_entities(
        &self,
        request: Request<ListEntitiesRequest>,
    ) -> Result<Response<ListEntitiesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let owner = owner(&request.customer_external_id)?;
        let filter =
            EntityFilter::parse(&request.type_id, request.include_archived, &request.query)?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &filter.canonical(caller.workspace, &owner),
        )?;
        let listing = self
            .service
            .list_entities(&caller, &owner, &filter, &page)
            .await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListEntitiesResponse {
            entities: page
                .items
                .iter()
                .map(|e| entity_to_proto(e, &owner))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn batch_archive_entities(
        &self,
        request: Request<BatchArchiveEntitiesRequest>,
    ) -> Result<Response<BatchArchiveEntitiesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let entities = self
            .set_archived(&caller, &request.customer_external_id, &request.ids, true)
            .await?;
        Ok(Response::new(BatchArchiveEntitiesResponse { entities }))
    }

    async fn batch_unarchive_entities(
        &self,
        request: Request<BatchUnarchiveEntitiesRequest>,
    ) -> Result<Response<BatchUnarchiveEntitiesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let entities = self
            .set_archived(&caller, &request.customer_external_id, &request.ids, false)
            .await?;
        Ok(Response::new(BatchUnarchiveEntitiesResponse { entities }))
    }

    async fn batch_upsert_entity_types(
        &self,
        request: Request<BatchUpsertEntityTypesRequest>,
    ) -> Result<Response<BatchUpsertEntityTypesResponse>, Status> {
        let caller = caller_of(&request)?;
        let inputs = request
            .into_inner()
            .types
            .into_iter()
            .map(|t| EntityTypeInput {
                id: t.id,
                display_name: t.display_name,
                attribution_keys: t.attribution_keys,
                archived: t.archived,
            })
            .collect();
        let batch = entity::parse_type_batch(inputs)?;
        let types = self
            .service
            .batch_upsert_entity_types(&caller, &batch)
            .await?;
        Ok(Response::new(BatchUpsertEntityTypesResponse {
            types: types.iter().map(entity_type_to_proto).collect(),
        }))
    }

    async fn list_entity_types(
        &self,
        request: Request<ListEntityTypesRequest>,
    ) -> Result<Response<ListEntityTypesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &entity_types_query(caller.workspace),
        )?;
        let listing = self.service.list_entity_types(&caller, &page).await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListEntityTypesResponse {
            types: page.items.iter().map(entity_type_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }
}
