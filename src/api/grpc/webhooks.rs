//! `kith.v1.WebhookService`.

use tonic::{Request, Response, Status};

use super::caller_of;
use super::convert::{change_kinds, masked_fields, timestamp_from_proto};
use crate::domain::change::{ChangeCursor, ChangeKind};
use crate::domain::page::{KITH_PAGES, PageRequest};
use crate::domain::user::parse_uuid;
use crate::domain::webhook::{EndpointPatch, NewEndpoint};
use crate::error::{Error, FieldPath, FieldViolation, Result};
use crate::pb::kith::v1::webhook_service_server::WebhookService;
use crate::pb::kith::v1::{
    self as pb, CreateWebhookEndpointRequest, CreateWebhookEndpointResponse,
    DeleteWebhookEndpointRequest, DeleteWebhookEndpointResponse, EnableWebhookEndpointRequest,
    EnableWebhookEndpointResponse, GetWebhookEndpointRequest, GetWebhookEndpointResponse,
    ListWebhookDeliveriesRequest, ListWebhookDeliveriesResponse, ListWebhookEndpointsRequest,
    ListWebhookEndpointsResponse, ReplayWebhookRequest, ReplayWebhookResponse,
    RotateWebhookSecretRequest, RotateWebhookSecretResponse, UpdateWebhookEndpointRequest,
    UpdateWebhookEndpointResponse, replay_webhook_request,
};
use crate::pb::records::{webhook_delivery_to_proto, webhook_endpoint_to_proto};
use crate::service::{ReplayFrom, Service};

pub struct WebhookApi {
    service: Service,
}

impl WebhookApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// The fields an update may name.
const UPDATABLE_FIELDS: [&str; 4] = ["url", "kinds", "description", "enabled"];

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_webhook_endpoint(
        &self,
        request: Request<CreateWebhookEndpointRequest>,
    ) -> Result<Response<CreateWebhookEndpointResponse>, Status> {
        let caller = caller_of(&request)?;
        let endpoint = request
            .into_inner()
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "is required"))?;
        let (kinds, wire) = kinds(&endpoint.kinds);
        let new = Error::with_wire_violations(
            wire,
            NewEndpoint::parse(
                &endpoint.url,
                kinds,
                &endpoint.description,
                endpoint.enabled,
            ),
        )?;
        let created = self.service.create_webhook_endpoint(&caller, new).await?;
        Ok(Response::new(CreateWebhookEndpointResponse {
            endpoint: Some(webhook_endpoint_to_proto(&created)),
            secret: created.secret.reveal().to_owned(),
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<GetWebhookEndpointRequest>,
    ) -> Result<Response<GetWebhookEndpointResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = parse_uuid(&request.get_ref().id, "id")?;
        let endpoint = self.service.get_webhook_endpoint(&caller, id).await?;
        Ok(Response::new(GetWebhookEndpointResponse {
            endpoint: Some(webhook_endpoint_to_proto(&endpoint)),
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<ListWebhookEndpointsRequest>,
    ) -> Result<Response<ListWebhookEndpointsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &format!("webhook_endpoints:{}", caller.workspace.0),
        )?;
        let page = self.service.list_webhook_endpoints(&caller, &page).await?;
        Ok(Response::new(ListWebhookEndpointsResponse {
            endpoints: page.items.iter().map(webhook_endpoint_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<UpdateWebhookEndpointRequest>,
    ) -> Result<Response<UpdateWebhookEndpointResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let id = parse_uuid(&request.id, "id")?;
        let endpoint = request
            .endpoint
            .ok_or_else(|| Error::invalid("endpoint", "is required"))?;
        let patch = patch(endpoint, request.update_mask)?;
        let updated = self
            .service
            .update_webhook_endpoint(&caller, id, patch)
            .await?;
        Ok(Response::new(UpdateWebhookEndpointResponse {
            endpoint: Some(webhook_endpoint_to_proto(&updated)),
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = parse_uuid(&request.get_ref().id, "id")?;
        let deleted = self.service.delete_webhook_endpoint(&caller, id).await?;
        Ok(Response::new(DeleteWebhookEndpointResponse {
            endpoint: Some(webhook_endpoint_to_proto(&deleted)),
        }))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<RotateWebhookSecretRequest>,
    ) -> Result<Response<RotateWebhookSecretResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = parse_uuid(&request.get_ref().id, "id")?;
        let endpoint = self.service.rotate_webhook_secret(&caller, id).await?;
        Ok(Response::new(RotateWebhookSecretResponse {
            endpoint: Some(webhook_endpoint_to_proto(&endpoint)),
            secret: endpoint.secret.reveal().to_owned(),
        }))
    }

    async fn enable_webhook_endpoint(
        &self,
        request: Request<EnableWebhookEndpointRequest>,
    ) -> Result<Response<EnableWebhookEndpointResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = parse_uuid(&request.get_ref().id, "id")?;
        let endpoint = self.service.enable_webhook_endpoint(&caller, id).await?;
        Ok(Response::new(EnableWebhookEndpointResponse {
            endpoint: Some(webhook_endpoint_to_proto(&endpoint)),
        }))
    }

    async fn replay_webhook(
        &self,
        request: Request<ReplayWebhookRequest>,
    ) -> Result<Response<ReplayWebhookResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let id = parse_uuid(&request.id, "id")?;
        let from = match request.from {
            Some(replay_webhook_request::From::Cursor(cursor)) => {
                ReplayFrom::Cursor(ChangeCursor::parse(&cursor, caller.workspace, "cursor")?)
            }
            Some(replay_webhook_request::From::Since(since)) => ReplayFrom::Time(
                timestamp_from_proto(&since, "since")
                    .map_err(|v| Error::InvalidArgument(vec![v]))?,
            ),
            None => {
                return Err(Error::invalid("from", "set `cursor` or `since`").into());
            }
        };
        let endpoint = self.service.replay_webhook(&caller, id, from).await?;
        Ok(Response::new(ReplayWebhookResponse {
            endpoint: Some(webhook_endpoint_to_proto(&endpoint)),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<ListWebhookDeliveriesRequest>,
    ) -> Result<Response<ListWebhookDeliveriesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let id = parse_uuid(&request.endpoint_id, "endpoint_id")?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &format!("webhook_deliveries:{}:{id}", caller.workspace.0),
        )?;
        let page = self
            .service
            .list_webhook_deliveries(&caller, id, &page)
            .await?;
        Ok(Response::new(ListWebhookDeliveriesResponse {
            deliveries: page
                .items
                .iter()
                .map(|attempt| webhook_delivery_to_proto(attempt, caller.workspace))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }
}

/// The endpoint's kinds, and a violation for each value that is no kind.
fn kinds(values: &[i32]) -> (Vec<ChangeKind>, Vec<FieldViolation>) {
    change_kinds(values, &FieldPath::field("endpoint").then("kinds"))
}

/// The update's patch: the fields its mask names, or without one those the
/// message sets.
fn patch(
    endpoint: pb::WebhookEndpoint,
    mask: Option<prost_types::FieldMask>,
) -> Result<EndpointPatch> {
    let named = masked_fields(
        mask,
        || {
            let mut populated = Vec::new();
            if !endpoint.url.is_empty() {
                populated.push("url");
            }
            if !endpoint.kinds.is_empty() {
                populated.push("kinds");
            }
            if !endpoint.description.is_empty() {
                populated.push("description");
            }
            if endpoint.enabled.is_some() {
                populated.push("enabled");
            }
            populated
        },
        &UPDATABLE_FIELDS,
        &UPDATABLE_FIELDS,
    )?;
    let (kinds, wire) = kinds(&endpoint.kinds);
    let parsed = EndpointPatch::parse(
        named.contains(&"url").then_some(endpoint.url.as_str()),
        named.contains(&"kinds").then_some(kinds),
        named
            .contains(&"description")
            .then_some(endpoint.description.as_str()),
        if named.contains(&"enabled") {
            // Named but unset reads as enabled, the default.
            Some(endpoint.enabled.unwrap_or(true))
        } else {
            None
        },
    );
    Error::with_wire_violations(wire, parsed)
}
