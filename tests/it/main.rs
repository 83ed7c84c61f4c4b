//! Kith's integration tests: one binary, so it links once.

mod change_processes;
mod changes;
mod cli;
mod clients;
mod console;
mod customers;
mod data_cli;
mod entities;
mod grpc_support;
mod grpc_web;
mod harness;
mod hostile;
mod isolation;
#[path = "../support/kith_process.rs"]
#[allow(dead_code, reason = "the bench uses the rest")]
mod kith_process;
mod limits;
mod one_write_path;
mod operations;
mod people;
mod processes;
mod replicas;
mod rest_canonical;
mod rest_flameup;
mod rest_gateway;
mod rest_rapidly;
mod rest_schematic;
mod rest_stigg;
mod sdk;
mod search;
mod serializable;
mod service;
mod service_conformance;
mod soak;
mod store_conformance;
mod tls;
mod tracing;
mod users;
mod webhooks;
