//! The outbound transport: webhook attempts as HTTP POSTs signed per the
//! Standard Webhooks specification.
//!
//! The body is the change's canonical JSON; the headers are `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (`v1,` and the base64
//! HMAC-SHA256 of `id.timestamp.body`, keyed by the secret's bytes).
//! Redirects are not followed, an answer's body is read to at most 64 KiB,
//! and names are resolved by a resolver that refuses loopback, private,
//! link-local and metadata addresses (unless the server allows them), so a
//! name that resolves somewhere else at delivery time is still refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::domain::webhook::{
    AttemptOutcome, Destination, FORBIDDEN_DESTINATION, Secret, is_forbidden_address,
};
use crate::pb::canonical_json;
use crate::pb::records::change_to_proto;
use crate::service::{Outgoing, WebhookSender};

/// The longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of a refusal's body kept for the attempt's record.
const EXCERPT_BYTES: usize = 256;

/// Sends attempts with one pooled HTTP client (keep-alive per endpoint).
pub struct HttpSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpSender {
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself,
            // past the resolver that refuses private addresses.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("Kith-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }

    async fn post(&self, outgoing: &Outgoing<'_>) -> Result<AttemptOutcome, String> {
        let change = change_to_proto(outgoing.change)
            .map_err(|error| format!("the change could not be read: {error}"))?;
        let body = canonical_json(&change, "kith.v1.Change");
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(
            &outgoing.endpoint.secret,
            outgoing.webhook_id,
            timestamp,
            &body,
        );
        let response = self
            .client
            .post(outgoing.endpoint.url.as_str())
            .timeout(outgoing.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", outgoing.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let answer = read_capped(response).await;
        if (200..300).contains(&status) {
            return Ok(AttemptOutcome::Acknowledged { status });
        }
        let excerpt = String::from_utf8_lossy(&answer[..answer.len().min(EXCERPT_BYTES)])
            .trim()
            .to_owned();
        Ok(AttemptOutcome::Refused { status, excerpt })
    }
}

#[async_trait::async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, outgoing: Outgoing<'_>) -> AttemptOutcome {
        if outgoing.timeout.is_zero() {
            return AttemptOutcome::Failed {
                error: "no time left in this replica's lease".to_owned(),
            };
        }
        // An address in the URL reaches no resolver: checked here.
        if let Destination::Address(address) = outgoing.endpoint.url.destination()
            && !self.allow_private
            && is_forbidden_address(address)
        {
            return AttemptOutcome::Failed {
                error: format!("refused: the URL {FORBIDDEN_DESTINATION}"),
            };
        }
        self.post(&outgoing)
            .await
            .unwrap_or_else(|error| AttemptOutcome::Failed { error })
    }
}

/// The `webhook-signature` header of a body sent at `timestamp`.
pub fn sign(secret: &Secret, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&secret.key()).expect("HMAC takes a key of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Up to `MAX_ANSWER_BYTES` of an answer's body; the rest is left unread
/// (the connection is then not reused).
async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut answer = Vec::new();
    while answer.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    answer
}

/// A transport error in words, its causes included ("connection refused",
/// "operation timed out", a refused destination).
fn describe(error: reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.dedup();
    if causes.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {}", causes.join(": "))
    }
}

/// Resolves names as the system does, keeping only the addresses webhooks
/// may reach.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_public(name.as_str().to_owned()))
    }
}

async fn resolve_public(
    name: String,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
    let public: Vec<SocketAddr> = found
        .into_iter()
        .filter(|address| !is_forbidden_address(address.ip()))
        .collect();
    if public.is_empty() {
        return Err(format!("refused: {name} {FORBIDDEN_DESTINATION}").into());
    }
    Ok(Box::new(public.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's worked example.
        let secret = Secret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
