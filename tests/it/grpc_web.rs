//! gRPC-Web on the gRPC listener, spoken byte by byte over HTTP/1.1 the way
//! a browser's fetch does, and the CORS allow-list in front of it.
//! (`clients.rs` runs a real gRPC-Web client, connect-web, too.)

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use kith::pb::kith::v1::{
    self as pb, CreateCustomerRequest, CreateCustomerResponse, GetCustomerRequest,
    GetCustomerResponse, get_customer_request,
};
use prost::Message;
use reqwest::header::HeaderMap;
use tonic::{Code, Status};

use crate::grpc_support::error_of;
use crate::harness::{BROWSER_ORIGIN, Backend, TestApp, backend_tests, require};

backend_tests!(
    unary_calls_answer_over_grpc_web_on_http1,
    errors_carry_their_details_in_the_trailers,
    only_allowed_origins_pass_the_preflight,
    a_call_without_a_key_is_refused_over_grpc_web_too,
);

/// A gRPC-Web reply, split into its messages and its status.
struct Reply {
    headers: HeaderMap,
    messages: Vec<Bytes>,
    /// The trailer frame's fields, or the headers' for a trailers-only reply.
    status: HashMap<String, String>,
}

impl Reply {
    fn code(&self) -> Code {
        let code = self.status.get("grpc-status").expect("a grpc-status");
        Code::from(code.parse::<i32>().expect("a numeric grpc-status"))
    }

    fn message<M: Message + Default>(&self) -> M {
        assert_eq!(self.code(), Code::Ok, "status {:?}", self.status);
        assert_eq!(self.messages.len(), 1, "one message in a unary reply");
        M::decode(self.messages[0].clone()).expect("a message the contract decodes")
    }

    /// The reply as the `tonic::Status` a gRPC client would have seen.
    fn status(&self) -> Status {
        let details = self
            .status
            .get("grpc-status-details-bin")
            .map(|text| STANDARD_NO_PAD.decode(text.trim_end_matches('=')))
            .transpose()
            .expect("details in base64")
            .unwrap_or_default();
        let message = self.status.get("grpc-message").cloned().unwrap_or_default();
        let message = percent_encoding::percent_decode_str(&message)
            .decode_utf8_lossy()
            .into_owned();
        Status::with_details(self.code(), message, Bytes::from(details))
    }
}

/// One length-prefixed message, uncompressed.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
    framed.extend(body);
    framed
}

/// Splits a body into data frames and the trailer frame (flag bit 0x80).
fn unframe(headers: HeaderMap, mut body: &[u8]) -> Reply {
    let mut messages = Vec::new();
    let mut status: HashMap<String, String> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("grpc-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    while !body.is_empty() {
        let flags = body[0];
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + length];
        if flags & 0x80 == 0 {
            messages.push(Bytes::copy_from_slice(payload));
        } else {
            let trailers = std::str::from_utf8(payload).expect("trailers are text");
            for line in trailers.split("\r\n").filter(|line| !line.is_empty()) {
                let (name, value) = line.split_once(':').expect("name:value");
                status.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        body = &body[5 + length..];
    }
    Reply {
        headers,
        messages,
        status,
    }
}

/// Calls `method` (`/kith.v1.CustomerService/GetCustomer`) over gRPC-Web
/// from a page on `BROWSER_ORIGIN`, with HTTP/1.1 as fetch would.
async fn call(app: &TestApp, method: &str, key: Option<&str>, message: &impl Message) -> Reply {
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let mut request = client
        .post(format!("http://{}{method}", app.grpc))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", BROWSER_ORIGIN)
        .body(frame(message));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .expect("the gRPC listener answers HTTP/1.1");
    assert_eq!(
        response.status(),
        200,
        "gRPC-Web reports errors in its status"
    );
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    unframe(headers, &body)
}

fn new_customer(email: &str) -> CreateCustomerRequest {
    CreateCustomerRequest {
        customer: Some(pb::Customer {
            email: Some(email.to_owned()),
            name: Some("Web Customer".to_owned()),
            ..pb::Customer::default()
        }),
    }
}

async fn unary_calls_answer_over_grpc_web_on_http1(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let created = call(
        &app,
        "/kith.v1.CustomerService/CreateCustomer",
        Some(&app.key),
        &new_customer("web@example.com"),
    )
    .await;
    assert!(
        created.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web"),
    );
    assert_eq!(
        created.headers["access-control-allow-origin"], BROWSER_ORIGIN,
        "an allowed page may read the reply"
    );
    let exposed = created.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("grpc-status-details-bin"), "{exposed}");
    let created = created
        .message::<CreateCustomerResponse>()
        .customer
        .unwrap();

    let got = call(
        &app,
        "/kith.v1.CustomerService/GetCustomer",
        Some(&app.key),
        &GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(created.id.clone())),
        },
    )
    .await
    .message::<GetCustomerResponse>()
    .customer
    .unwrap();
    assert_eq!(got, created, "the same customer as over gRPC");
}

async fn errors_carry_their_details_in_the_trailers(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let refused = call(
        &app,
        "/kith.v1.CustomerService/CreateCustomer",
        Some(&app.key),
        &new_customer("not an email"),
    )
    .await;
    let (code, reason, fields) = error_of::<()>(Err(refused.status()));
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(reason, "ERROR_REASON_INVALID_FIELD");
    assert_eq!(fields, ["email"], "the same field path as over gRPC");

    let missing = call(
        &app,
        "/kith.v1.CustomerService/GetCustomer",
        Some(&app.key),
        &GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(
                uuid::Uuid::now_v7().to_string(),
            )),
        },
    )
    .await;
    assert_eq!(missing.code(), Code::NotFound);
}

async fn only_allowed_origins_pass_the_preflight(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let preflight = |origin: &'static str| {
        let url = format!("http://{}/kith.v1.CustomerService/GetCustomer", app.grpc);
        async move {
            reqwest::Client::new()
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,x-grpc-web,x-user-agent",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight(BROWSER_ORIGIN).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], BROWSER_ORIGIN);
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    for needed in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
    ] {
        assert!(allowed_headers.contains(needed), "{allowed_headers}");
    }
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let other = preflight("https://elsewhere.example").await;
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "an origin not on the list gets no permission"
    );
}

async fn a_call_without_a_key_is_refused_over_grpc_web_too(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let refused = call(
        &app,
        "/kith.v1.CustomerService/CreateCustomer",
        None,
        &new_customer("nokey@example.com"),
    )
    .await;
    assert_eq!(refused.code(), Code::Unauthenticated);
}
