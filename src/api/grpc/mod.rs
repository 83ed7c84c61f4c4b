//! The gRPC transport: thin tonic adapters that turn messages into domain
//! inputs, call the service, and turn results and errors back into
//! messages.

mod auth;
mod changes;
mod codec;
mod convert;
mod customers;
mod entities;
mod people;
mod status;
mod users;
mod web;
mod webhooks;

pub use auth::{RequireApiKey, RequireApiKeyService};
pub use changes::ChangeApi;
pub use codec::KithCodec;
pub use customers::CustomerApi;
pub use entities::EntityApi;
pub use people::PeopleApi;
/// A person upsert as the domain's input: `kith import people` checks its
/// rows with the server's own conversion and rules.
pub(crate) use people::upsert_input as person_upsert_input;
pub use users::UserApi;
pub use web::{browser_cors, parse_origin};
pub use webhooks::WebhookApi;

use tonic::service::Routes;
use tonic::{Request, Status};

use crate::domain::Caller;
use crate::pb::kith::v1::change_service_server::ChangeServiceServer;
use crate::pb::kith::v1::customer_service_server::CustomerServiceServer;
use crate::pb::kith::v1::entity_service_server::EntityServiceServer;
use crate::pb::kith::v1::people_service_server::PeopleServiceServer;
use crate::pb::kith::v1::user_service_server::UserServiceServer;
use crate::pb::kith::v1::webhook_service_server::WebhookServiceServer;
use crate::service::Service;

/// The contract's services, every `kith.v1` one, on `service`: what the
/// gRPC listener serves beside health and reflection, and what the
/// canonical REST routes dispatch to.
pub fn contract(service: &Service) -> Routes {
    Routes::new(CustomerServiceServer::new(CustomerApi::new(
        service.clone(),
    )))
    .add_service(EntityServiceServer::new(EntityApi::new(service.clone())))
    .add_service(PeopleServiceServer::new(PeopleApi::new(service.clone())))
    .add_service(UserServiceServer::new(UserApi::new(service.clone())))
    .add_service(ChangeServiceServer::new(ChangeApi::new(service.clone())))
    .add_service(WebhookServiceServer::new(WebhookApi::new(service.clone())))
}

/// The caller `RequireApiKey` admitted for this call.
fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .copied()
        .ok_or_else(|| crate::error::Error::Unauthenticated.into())
}
