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

/// The contract's descriptors, decoded once: for the canonical REST
/// routes, the metrics' method list and the command line's file formats.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the built-in descriptor set decodes")
    })
}
