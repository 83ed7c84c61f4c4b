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

pub use auth::RequireApiKey;
pub use changes::ChangeApi;
pub use codec::KithCodec;
pub use customers::CustomerApi;
pub use entities::EntityApi;
pub use people::PeopleApi;
pub use users::UserApi;

use tonic::{Request, Status};

use crate::domain::Caller;

/// The caller `RequireApiKey` admitted for this call.
fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .copied()
        .ok_or_else(|| crate::error::Error::Unauthenticated.into())
}
