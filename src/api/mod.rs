//! The transports: gRPC (tonic) and the REST gateway (axum), both thin
//! adapters over the service layer, and the request spans they share.

pub mod grpc;
pub mod observe;
pub mod rest;
