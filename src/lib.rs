//! Kith: a customer and identity directory served over gRPC.
//!
//! `domain` holds every rule, `service` the use cases every transport
//! calls, `store` the repository on SQLite and PostgreSQL, `api` the thin
//! transports, `server` the wiring. See ARCHITECTURE.md for the path of a request.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod pb;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod throwaway_postgres;
pub mod tls;
