//! The transports: gRPC (tonic) and the REST gateway (axum), both thin
//! adapters over the service layer; the request spans and metric layers
//! they share; and the operator's routes (metrics, probes).

pub mod freshness;
pub mod grpc;
pub mod observe;
pub mod operations;
pub mod rest;
