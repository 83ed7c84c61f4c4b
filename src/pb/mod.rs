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

/// A contract message as proto3 JSON, as the canonical REST routes write
/// it (lowerCamel names, enums by name, 64-bit integers as strings, unset
/// fields left out): `full_name` is its type, `kith.v1.Change` say.
pub fn canonical_json(message: &impl prost::Message, full_name: &str) -> Vec<u8> {
    let descriptor = descriptor_pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the contract"));
    let dynamic =
        prost_reflect::DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
            .expect("a message decodes as its own type");
    let mut out = Vec::with_capacity(message.encoded_len() * 2);
    dynamic
        .serialize_with_options(
            &mut serde_json::Serializer::new(&mut out),
            &prost_reflect::SerializeOptions::new(),
        )
        .expect("a decoded message serialises");
    out
}
