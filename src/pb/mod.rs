//! The contract: code generated from `proto/` by `build.rs`, and the domain
//! records as its messages (`records`).

pub mod records;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod kith {
    pub mod v1 {
        tonic::include_proto!("kith.v1");
    }
}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The encoded descriptors of the whole contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kith_descriptor");
