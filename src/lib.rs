//! Kith: a customer and identity directory served over gRPC.
//!
//! `domain` holds every rule, `store` the repository interface and its
//! SQLite and PostgreSQL backends, `api` the thin transports, `server` the
//! wiring. See ARCHITECTURE.md for the path of a request.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod import;
pub mod pb;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod throwaway_postgres;
