pub mod grpc;
pub mod rest;
