//! The protobuf codec of every Kith service: prost's, except that a message
//! that does not parse (a string that is not UTF-8, a truncated field) is
//! the caller's INVALID_ARGUMENT instead of prost's INTERNAL, so callers and
//! alerts can tell a bad request from a fault in the server.

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::pb::kith::v1::ErrorReason;

/// Named by `build.rs` as the codec of the generated services and clients.
#[derive(Debug, Clone)]
pub struct KithCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for KithCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for KithCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MalformedIsInvalid<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MalformedIsInvalid(self.0.decoder())
    }
}

/// prost's decoder, with its parse failures reported as INVALID_ARGUMENT.
#[derive(Debug)]
pub struct MalformedIsInvalid<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MalformedIsInvalid<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            // prost's message names the path: `Person.email: invalid string
            // value: data is not UTF-8 encoded`.
            let mut details = ErrorDetails::new();
            details.set_error_info(
                ErrorReason::InvalidField.as_str_name(),
                "kith",
                std::collections::HashMap::new(),
            );
            Status::with_error_details(
                Code::InvalidArgument,
                format!("malformed request: {}", status.message()),
                details,
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
