//! The transports: gRPC (tonic) and the REST gateway (axum), both thin
//! adapters over the service layer; the request spans and metric layers
//! they share; the operator's routes (metrics, probes); and the one
//! outbound transport, webhook attempts over HTTP.

pub mod console;
pub mod freshness;
pub mod grpc;
pub mod observe;
pub mod operations;
pub mod rest;
pub mod webhooks;
