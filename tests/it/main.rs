//! Kith's integration tests: one binary, so it links once.

mod harness;
mod store_conformance;
