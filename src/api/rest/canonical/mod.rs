//! The contract's own REST: every `kith.v1` method at its `google.api.http`
//! binding, in the proto3 JSON mapping, with AIP-193 errors.
//!
//! Nothing here knows a method. The bindings come from the descriptor set;
//! a request becomes the method's message and is dispatched, in process,
//! to the same gRPC services the gRPC listener serves (API key check
//! included), so REST and gRPC cannot answer differently. A server stream
//! answers newline-delimited JSON, ending with an `{"error": …}` line if it
//! fails; a client stream reads one message per line of the body.

mod binding;
mod json;
pub mod openapi;
mod rules;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio_stream::StreamExt as _;
use tonic::Status;
use tower::{Layer as _, ServiceExt as _};

use self::binding::{Binding, Bound};
use super::RestState;
use crate::api::freshness;
use crate::api::grpc::RequireApiKey;
use crate::api::observe::RouteTemplate;
use crate::auth::Authenticator;
use crate::error::Error;
use crate::service::Service;

/// The gRPC services a canonical request is dispatched to, behind the same
/// API key check as the gRPC listener.
type Contract = crate::api::grpc::RequireApiKeyService<tonic::service::Routes>;

/// Largest body a client-streaming route reads (an import's NDJSON).
const STREAM_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The canonical routes and where they lead.
#[derive(Clone)]
pub struct Gateway {
    bindings: Arc<Vec<Binding>>,
    contract: Contract,
}

impl Gateway {
    /// The served routes in OpenAPI terms, for `/openapi.json`.
    pub fn document(&self) -> openapi::Document {
        openapi::document(crate::pb::descriptor_pool(), &self.bindings)
    }

    /// The contract's services on `service`, behind `authenticator`, at the
    /// bindings of the descriptor set built into the binary (which the
    /// tests read too: a bad one is a build's bug, not a runtime error).
    pub fn new(service: &Service, authenticator: &Authenticator) -> Self {
        let bindings =
            binding::bindings(crate::pb::descriptor_pool()).expect("the built-in bindings parse");
        let contract =
            RequireApiKey::new(authenticator.clone()).layer(crate::api::grpc::contract(service));
        Self {
            bindings: Arc::new(bindings),
            contract,
        }
    }

    /// The binding `verb` and `path` name, and its variables' values;
    /// `Err` with the status to answer when none does.
    fn route(&self, verb: &Method, path: &str) -> Result<(&Binding, Bound), Status> {
        let mut allowed: Vec<&str> = Vec::new();
        for binding in self.bindings.iter() {
            if let Some(variables) = binding.template.matches(path) {
                if binding.verb == *verb {
                    return Ok((binding, variables));
                }
                allowed.push(binding.verb.as_str());
            }
        }
        if allowed.is_empty() {
            return Err(Status::not_found(format!("no route {path}")));
        }
        // The path's own verbs travel with the status, for `Allow`.
        let mut status = Status::unimplemented(format!("{verb} is not a method of {path}"));
        if let Ok(allow) = allowed.join(", ").parse() {
            status.metadata_mut().insert(ALLOW_METADATA, allow);
        }
        Err(status)
    }
}

/// Where a routing refusal keeps the verbs its path does take.
const ALLOW_METADATA: &str = "allow";

/// Serves one canonical request.
/// A response names the binding it answered for, for the metrics.
pub async fn serve(State(state): State<RestState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (binding, variables) = match state.gateway.route(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(status) => return error_response(&status),
    };
    let mut response = dispatch(&state.gateway, binding, variables, parts, body)
        .await
        .unwrap_or_else(|status| error_response(&status));
    response
        .extensions_mut()
        .insert(RouteTemplate(Arc::clone(&binding.route)));
    response
}

/// Calls the binding's method with the request it describes.
async fn dispatch(
    gateway: &Gateway,
    binding: &Binding,
    variables: Bound,
    parts: http::request::Parts,
    body: Body,
) -> Result<Response, Status> {
    let method = &binding.method;
    let limit = if method.is_client_streaming() {
        STREAM_BODY_LIMIT
    } else {
        super::BODY_LIMIT
    };
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|error| Status::from(Error::invalid("body", error.to_string())))?;
    let frames = if method.is_client_streaming() {
        let input = method.input();
        let mut frames = BytesMut::new();
        for line in body.split(|byte| *byte == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            frame(
                &mut frames,
                &json::stream_item(&input, line).map_err(Status::from)?,
            );
        }
        frames.freeze()
    } else {
        let message =
            json::request(binding, variables, parts.uri.query(), &body).map_err(Status::from)?;
        let mut frames = BytesMut::new();
        frame(&mut frames, &message);
        frames.freeze()
    };

    let mut call = http::Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/{}/{}",
            method.parent_service().full_name(),
            method.name()
        ))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers");
    for name in [
        header::AUTHORIZATION,
        header::HeaderName::from_static("x-request-id"),
        freshness::AT_LEAST_HEADER,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            call = call.header(name, value);
        }
    }
    let call = call
        .body(tonic::body::Body::new(http_body_util::Full::new(frames)))
        .map_err(|error| Status::internal(error.to_string()))?;
    let answer = gateway
        .contract
        .clone()
        .oneshot(call)
        .await
        .unwrap_or_else(|never: Infallible| match never {});
    let cursor = answer.headers().get(freshness::CURSOR_HEADER).cloned();
    // A trailers-only answer: the call failed before any message.
    if let Some(status) = Status::from_header_map(answer.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let output = method.output();
    if method.is_server_streaming() {
        return Ok(ndjson(output, answer.into_body()));
    }
    let collected = answer
        .into_body()
        .collect()
        .await
        .map_err(|error| Status::internal(error.to_string()))?;
    if let Some(status) = collected.trailers().and_then(Status::from_header_map)
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let mut data = collected.to_bytes();
    let size_hint = data.len();
    let message = next_message(&mut data, &output)?
        .ok_or_else(|| Status::internal("the method answered no message"))?;
    let mut response = Response::new(Body::from(json::response(&message, size_hint)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cursor) = cursor {
        response
            .headers_mut()
            .insert(freshness::CURSOR_HEADER, cursor);
    }
    Ok(response)
}

/// Appends a message as one gRPC frame: uncompressed, length-prefixed.
fn frame(frames: &mut BytesMut, message: &DynamicMessage) {
    // The length is written after the message rather than measured first:
    // measuring a dynamic message walks all of it once more.
    let start = frames.len();
    frames.put_u8(0);
    frames.put_u32(0);
    message.encode_raw(frames);
    let length = u32::try_from(frames.len() - start - 5).expect("a message under 4 GiB");
    frames[start + 1..start + 5].copy_from_slice(&length.to_be_bytes());
}

/// The next whole message at the front of `data`, if one is there.
fn next_message(
    data: &mut Bytes,
    output: &MessageDescriptor,
) -> Result<Option<DynamicMessage>, Status> {
    if data.len() < 5 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if data.len() < 5 + length {
        return Ok(None);
    }
    data.advance(5);
    let bytes = data.split_to(length);
    DynamicMessage::decode(output.clone(), bytes)
        .map(Some)
        .map_err(|error| Status::internal(error.to_string()))
}

/// A server stream's messages as newline-delimited JSON, as they come; a
/// failure ends it with one `{"error": …}` line.
fn ndjson(output: MessageDescriptor, body: tonic::body::Body) -> Response {
    let mut pending = Bytes::new();
    let lines = http_body_util::BodyStream::new(body).map(move |frame| {
        let frame = frame.map_err(|error| Status::internal(error.to_string()));
        let mut out = Vec::new();
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    let mut joined = BytesMut::from(&pending[..]);
                    joined.extend_from_slice(&data);
                    pending = joined.freeze();
                    loop {
                        match next_message(&mut pending, &output) {
                            Ok(Some(message)) => {
                                json::write_message(&mut out, &message);
                                out.push(b'\n');
                            }
                            Ok(None) => break,
                            Err(status) => {
                                push_line(&mut out, &json::status(&status).1);
                                break;
                            }
                        }
                    }
                }
                Err(frame) => {
                    if let Some(status) = frame
                        .trailers_ref()
                        .and_then(Status::from_header_map)
                        .filter(|status| status.code() != tonic::Code::Ok)
                    {
                        push_line(&mut out, &json::status(&status).1);
                    }
                }
            },
            Err(status) => push_line(&mut out, &json::status(&status).1),
        }
        Ok::<_, Infallible>(Bytes::from(out))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

fn push_line(out: &mut Vec<u8>, value: &serde_json::Value) {
    serde_json::to_writer(&mut *out, value).expect("JSON values serialise");
    out.push(b'\n');
}

fn error_response(status: &Status) -> Response {
    let (mut code, mut body) = json::status(status);
    // Every method is implemented: UNIMPLEMENTED comes from the routing
    // alone, for a path that takes other HTTP methods.
    if code == StatusCode::NOT_IMPLEMENTED {
        code = StatusCode::METHOD_NOT_ALLOWED;
        body["error"]["code"] = code.as_u16().into();
    }
    let mut response = (code, axum::Json(body)).into_response();
    if let Some(allow) = status
        .metadata()
        .get(ALLOW_METADATA)
        .and_then(|allow| HeaderValue::from_bytes(allow.as_bytes()).ok())
    {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    if status.code() == tonic::Code::ResourceExhausted
        && let Some(retry) = tonic_types::StatusExt::get_error_details(status).retry_info()
        && let Some(delay) = retry.retry_delay
    {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.max(1).into());
    }
    response
}
