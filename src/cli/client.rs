//! A connection to a running server, with the API key on every call, and
//! the server's refusals in words.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::Failure;
use crate::config::ServerArgs;
use crate::pb::kith::v1::change_service_client::ChangeServiceClient;
use crate::pb::kith::v1::customer_service_client::CustomerServiceClient;
use crate::pb::kith::v1::entity_service_client::EntityServiceClient;
use crate::pb::kith::v1::people_service_client::PeopleServiceClient;
use crate::pb::kith::v1::user_service_client::UserServiceClient;

/// Imports stream large messages; the server accepts them up to its own
/// limit, which the reply states if a message is too large.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

pub type Authed = InterceptedService<Channel, Bearer>;

/// How long a server that does not answer may take to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/2 connection to the server, shared by every call.
#[derive(Clone)]
pub struct Connection {
    channel: Channel,
    bearer: Bearer,
    server: String,
}

impl Connection {
    /// Connects now, so an unreachable server is reported before any work.
    pub async fn open(args: &ServerArgs) -> Result<Self, Failure> {
        let bearer = Bearer::new(&args.key)?;
        let mut endpoint = Endpoint::from_shared(args.server.clone())
            .map_err(|_| Failure::usage(format!("`{}` is not a server URL", args.server)))?
            .connect_timeout(CONNECT_TIMEOUT);
        if args.server.starts_with("https://") {
            let ca = args.ca_cert.as_ref().ok_or_else(|| {
                Failure::usage("an https:// server needs --ca-cert (its CA certificate, PEM)")
            })?;
            let pem = std::fs::read(ca)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", ca.display())))?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| Failure::usage(format!("TLS: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|error| {
            Failure::server(format!(
                "cannot reach the server at {}: {}",
                args.server,
                error_chain(&error)
            ))
        })?;
        Ok(Self {
            channel,
            bearer,
            server: args.server.clone(),
        })
    }

    fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    pub fn people(&self) -> PeopleServiceClient<Authed> {
        PeopleServiceClient::new(self.authed())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn customers(&self) -> CustomerServiceClient<Authed> {
        CustomerServiceClient::new(self.authed())
    }

    pub fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::new(self.authed())
    }

    pub fn entities(&self) -> EntityServiceClient<Authed> {
        EntityServiceClient::new(self.authed())
    }

    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::new(self.authed())
    }

    /// A failed call that is not about one row: the whole command stops.
    pub fn failure(&self, status: &Status) -> Failure {
        Failure::server(describe(status, &self.server))
    }
}

/// `authorization: Bearer <key>` on every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    fn new(key: &str) -> Result<Self, Failure> {
        format!("Bearer {key}")
            .parse()
            .map(Self)
            .map_err(|_| Failure::usage("the API key holds characters a header cannot carry"))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A status that stops a command, in words.
fn describe(status: &Status, server: &str) -> String {
    let message = status.message();
    match status.code() {
        Code::Unauthenticated => format!("the server refused the API key: {message}"),
        Code::PermissionDenied => format!("the API key may not do this: {message}"),
        Code::Unavailable => format!("the server at {server} is unavailable: {message}"),
        Code::DeadlineExceeded => format!("the server at {server} did not answer in time"),
        Code::ResourceExhausted => format!("the server is refusing calls for now: {message}"),
        code => format!("the server failed the call ({code:?}): {message}"),
    }
}

/// What was wrong with one row, as the server's status says it: each
/// offending field (relative to the request) and why.
pub fn violations(status: &Status) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        found.push((String::new(), status.message().to_owned()));
    }
    found
}

/// Whether a status is about the request's content (the row), rather than
/// the server, the key or the connection.
pub fn is_about_the_row(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
    )
}

/// Attempts of one call while the server asks to wait.
const ATTEMPTS: u32 = 8;

/// Runs `call` again while the server asks the caller to wait: a rate limit
/// (after the delay its RetryInfo gives), or a transaction aborted by a
/// concurrent one that its own retries could not settle. Anything else,
/// and the last attempt's answer, is returned as it is.
pub async fn retrying<T, Call, Answer>(mut call: Call) -> Result<T, Status>
where
    Call: FnMut() -> Answer,
    Answer: Future<Output = Result<T, Status>>,
{
    let mut backoff = Duration::from_millis(50);
    for _ in 1..ATTEMPTS {
        let status = match call().await {
            Err(status) if is_transient(&status) => status,
            answer => return answer,
        };
        let wait = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .unwrap_or(backoff);
        tokio::time::sleep(wait.max(backoff)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    call().await
}

fn is_transient(status: &Status) -> bool {
    match status.code() {
        Code::Aborted => true,
        // A rate limit says when to come back; other exhaustion does not.
        Code::ResourceExhausted => status.get_details_retry_info().is_some(),
        _ => false,
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_words = cause.to_string();
        // Layers often repeat their cause's words.
        if !words.ends_with(&cause_words) {
            words.push_str(": ");
            words.push_str(&cause_words);
        }
        source = cause.source();
    }
    words
}
