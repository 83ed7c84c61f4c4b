//! Webhook endpoints' rules: what a destination may be, the signing
//! secret's shape, the settings a caller changes, and the retry policy that
//! decides when a failing endpoint is tried again and when it is disabled.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use uuid::Uuid;

use super::WorkspaceId;
use super::change::{ChangeFilter, ChangeKind};
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

/// The longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 512;
/// Delivery attempts kept per endpoint for `ListWebhookDeliveries`.
pub const KEPT_ATTEMPTS: i64 = 1000;
/// The prefix of a signing secret (Standard Webhooks).
const SECRET_PREFIX: &str = "whsec_";
/// Bytes of randomness in a secret: the spec asks for 24 to 64.
const SECRET_BYTES: usize = 32;

/// Where an endpoint's changes go: an absolute `http` or `https` URL with a
/// host and no user name or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

/// The host an endpoint URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An address written in the URL.
    Address(IpAddr),
    /// A name, resolved when checked and again at every connection.
    Name(String),
}

impl EndpointUrl {
    pub fn parse(text: &str, field: &FieldPath) -> Result<Self, FieldViolation> {
        let refuse = |why: &str| FieldViolation::new(field.clone(), why);
        let chars = text.chars().count();
        if chars > MAX_URL_CHARS {
            return Err(refuse(&format!(
                "must be at most {MAX_URL_CHARS} characters, got {chars}"
            )));
        }
        let url = url::Url::parse(text)
            .map_err(|error| refuse(&format!("is not an absolute URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("must be an http:// or https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("must not hold a user name or password"));
        }
        let Some(host) = url.host() else {
            return Err(refuse("must name a host"));
        };
        if let url::Host::Domain(name) = host {
            let name = name.trim_end_matches('.');
            if name == "localhost" || name.ends_with(".localhost") || is_metadata_name(name) {
                return Err(refuse(FORBIDDEN_DESTINATION));
            }
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn destination(&self) -> Destination {
        match self.0.host() {
            Some(url::Host::Ipv4(address)) => Destination::Address(IpAddr::V4(address)),
            Some(url::Host::Ipv6(address)) => Destination::Address(IpAddr::V6(address)),
            Some(url::Host::Domain(name)) => Destination::Name(name.to_owned()),
            None => unreachable!("an endpoint URL always has a host"),
        }
    }

    /// The port connections go to.
    pub fn port(&self) -> u16 {
        self.0
            .port_or_known_default()
            .expect("http and https have default ports")
    }
}

/// Why a destination is refused.
pub const FORBIDDEN_DESTINATION: &str = "must not name or resolve to a loopback, private, link-local or metadata \
     address (the server allows them with --webhook-allow-private)";

/// Names of cloud metadata services that do not look like addresses.
fn is_metadata_name(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "metadata.google.internal" | "metadata" | "instance-data"
    )
}

/// Whether a webhook may not be sent to this address: loopback, private
/// (RFC 1918, unique local), shared (CGNAT), link-local (which holds the
/// cloud metadata address 169.254.169.254), unspecified, broadcast,
/// multicast or documentation addresses, and IPv6 forms of any of them.
pub fn is_forbidden_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // Forms that carry an IPv4 address are judged by it: mapped,
            // compatible (::a.b.c.d) and 6to4 (2002:aabb:ccdd::/48).
            if let Some(v4) = v6.to_ipv4() {
                return is_forbidden_v4(v4);
            }
            if v6.segments()[0] == 0x2002 {
                let [_, high, low, ..] = v6.segments();
                return is_forbidden_v4(Ipv4Addr::from_bits(
                    (u32::from(high) << 16) | u32::from(low),
                ));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // NAT64 (64:ff9b::/96) reaches IPv4 addresses: judged by them.
                || (v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_forbidden_v4(Ipv4Addr::from_bits(v6.to_bits() as u32)))
                // Documentation (2001:db8::/32).
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

fn is_forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        // "This network" (0.0.0.0/8), shared address space (100.64.0.0/10),
        // benchmarking (198.18.0.0/15) and reserved (240.0.0.0/4).
        || a == 0
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240
}

/// An endpoint's signing secret: `whsec_` and the base64 of random bytes.
/// Never logged: its `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// A secret as stored.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The text shown to the caller once, and stored.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the bytes the base64 after `whsec_` encodes.
    pub fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        STANDARD
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec())
    }
}

/// The change kinds an endpoint receives; every kind when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointKinds(Vec<ChangeKind>);

impl EndpointKinds {
    pub fn new(mut kinds: Vec<ChangeKind>) -> Self {
        kinds.sort_unstable();
        kinds.dedup();
        Self(kinds)
    }

    pub fn kinds(&self) -> &[ChangeKind] {
        &self.0
    }

    /// The log filter delivery reads with.
    pub fn filter(&self) -> ChangeFilter {
        ChangeFilter {
            kinds: self.0.clone(),
            owner_id: None,
            record_id: None,
        }
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_stored(text: &str) -> Result<Self> {
        text.split(',')
            .filter(|kind| !kind.is_empty())
            .map(|kind| {
                ChangeKind::from_stored(kind)
                    .ok_or_else(|| Error::internal(format!("stored change kind {kind:?}")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Self::new)
    }
}

/// An endpoint's description: plain text of at most 512 characters.
fn description(text: &str, field: &FieldPath) -> Result<String, FieldViolation> {
    super::bounded_text(text, MAX_DESCRIPTION_CHARS)
        .map(|()| text.to_owned())
        .map_err(|why| FieldViolation::new(field.clone(), why))
}

fn url(text: &str, field: &FieldPath) -> Result<EndpointUrl, FieldViolation> {
    if text.is_empty() {
        return Err(FieldViolation::new(field.clone(), "is required"));
    }
    EndpointUrl::parse(text, field)
}

/// A new endpoint's settings.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: EndpointUrl,
    pub kinds: EndpointKinds,
    pub description: String,
    pub enabled: bool,
}

impl NewEndpoint {
    /// Paths are relative to the request's `endpoint`.
    pub fn parse(
        url_text: &str,
        kinds: Vec<ChangeKind>,
        description_text: &str,
        enabled: Option<bool>,
    ) -> Result<Self> {
        let parent = FieldPath::field("endpoint");
        let mut v = Violations::default();
        let url = v.check(url(url_text, &parent.clone().then("url")));
        let description = v.check(description(
            description_text,
            &parent.clone().then("description"),
        ));
        match (url, description) {
            (Some(url), Some(description)) if v.is_empty() => Ok(Self {
                url,
                kinds: EndpointKinds::new(kinds),
                description,
                enabled: enabled.unwrap_or(true),
            }),
            _ => Err(Error::InvalidArgument(v.into_vec())),
        }
    }
}

/// What an update changes: each field named in its mask.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<EndpointUrl>,
    pub kinds: Option<EndpointKinds>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

impl EndpointPatch {
    /// Each named field's new value; paths relative to `endpoint`.
    pub fn parse(
        url_text: Option<&str>,
        kinds: Option<Vec<ChangeKind>>,
        description_text: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Self> {
        let parent = FieldPath::field("endpoint");
        let mut v = Violations::default();
        let url = url_text.and_then(|text| v.check(url(text, &parent.clone().then("url"))));
        let description = description_text
            .and_then(|text| v.check(description(text, &parent.clone().then("description"))));
        v.finish(
            Self {
                url,
                kinds: kinds.map(EndpointKinds::new),
                description,
                enabled,
            },
            Error::InvalidArgument,
        )
    }
}

/// An endpoint as stored: its settings and where its delivery stands.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub workspace: WorkspaceId,
    pub url: EndpointUrl,
    pub kinds: EndpointKinds,
    pub description: String,
    pub secret: Secret,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The last change acknowledged or skipped.
    pub cursor_seq: i64,
    pub failures: Failures,
    /// Bumped by every change a caller makes.
    pub generation: i64,
    /// The generation of the last replay: a deliverer that saw an older
    /// generation reads from the cursor as stored.
    pub replay_generation: i64,
    /// Replayed since read: saving it records the replay.
    pub replayed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Failed attempts in a row at the change an endpoint waits on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub since: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Failures {
    /// The number of the next attempt at the change waited on.
    pub fn next_attempt(&self) -> u32 {
        self.count + 1
    }
}

impl WebhookEndpoint {
    /// A new endpoint, delivering the changes after `cursor_seq`.
    pub fn new(
        workspace: WorkspaceId,
        new: NewEndpoint,
        cursor_seq: i64,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: super::new_id(),
            workspace,
            url: new.url,
            kinds: new.kinds,
            description: new.description,
            secret: Secret::generate(),
            enabled: new.enabled,
            disabled_reason: None,
            disabled_at: (!new.enabled).then_some(now),
            cursor_seq,
            failures: Failures::default(),
            generation: 0,
            replay_generation: 0,
            replayed: false,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn apply(&mut self, patch: EndpointPatch, now: DateTime<Utc>) {
        if let Some(url) = patch.url {
            self.url = url;
        }
        if let Some(kinds) = patch.kinds {
            self.kinds = kinds;
        }
        if let Some(description) = patch.description {
            self.description = description;
        }
        match patch.enabled {
            Some(true) => self.enable(now),
            Some(false) if self.enabled => {
                self.enabled = false;
                self.disabled_reason = None;
                self.disabled_at = Some(now);
            }
            _ => {}
        }
        self.updated_at = now;
    }

    /// Enabled, due at once: delivery resumes from the cursor.
    pub fn enable(&mut self, now: DateTime<Utc>) {
        if !self.enabled {
            self.enabled = true;
            self.disabled_reason = None;
            self.disabled_at = None;
            self.failures = Failures::default();
        }
        self.failures.next_attempt_at = None;
        self.updated_at = now;
    }

    pub fn rotate_secret(&mut self, now: DateTime<Utc>) {
        self.secret = Secret::generate();
        self.updated_at = now;
    }

    /// Delivery goes on after `seq`, due at once.
    pub fn replay_after(&mut self, seq: i64, now: DateTime<Utc>) {
        self.cursor_seq = seq;
        self.failures = Failures::default();
        self.replayed = true;
        self.updated_at = now;
    }
}

/// The `webhook-id` of a change: the same for every attempt and every
/// endpoint, so receivers dedupe on it.
pub fn webhook_id(workspace: WorkspaceId, seq: i64) -> String {
    format!("chg_{}_{seq}", workspace.0.simple())
}

/// How failing deliveries are retried, and when an endpoint is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each next one.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// An endpoint is disabled after this many failed attempts in a row…
    pub disable_after_failures: u32,
    /// …spread over at least this long.
    pub disable_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            disable_after_failures: 10,
            disable_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`th failure in a row: doubling from the
    /// first backoff up to the longest, each drawn between half and all of
    /// it ("equal jitter"), so endpoints that failed together do not all
    /// come back at once, and no wait is ever near zero.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let ceiling = self
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    /// Whether an endpoint that has now failed `failures` times in a row,
    /// the first at `since`, is to be disabled.
    pub fn gives_up(&self, failures: u32, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let spread = (now - since).to_std().unwrap_or_default();
        failures >= self.disable_after_failures && spread >= self.disable_after
    }

    /// The reason an endpoint disabled by this policy shows.
    pub fn reason(&self, failures: u32, last_error: &str) -> String {
        format!(
            "disabled after {failures} failed attempts in a row over at least {}; last: {last_error}",
            humantime::format_duration(self.disable_after)
        )
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer: the change is acknowledged.
    Acknowledged { status: u16 },
    /// Another answer; `excerpt` is the start of its body.
    Refused { status: u16, excerpt: String },
    /// No answer: a refused connection, a timeout, a refused destination.
    Failed { error: String },
}

impl AttemptOutcome {
    pub fn acknowledged(&self) -> bool {
        matches!(self, Self::Acknowledged { .. })
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Self::Acknowledged { status } | Self::Refused { status, .. } => *status,
            Self::Failed { .. } => 0,
        }
    }

    /// What went wrong, in words; empty when acknowledged.
    pub fn error(&self) -> String {
        match self {
            Self::Acknowledged { .. } => String::new(),
            Self::Refused { status, excerpt } if excerpt.is_empty() => {
                format!("answered {status}")
            }
            Self::Refused { status, excerpt } => format!("answered {status}: {excerpt}"),
            Self::Failed { error } => error.clone(),
        }
    }

    /// A label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Acknowledged { .. } => "delivered",
            Self::Refused { .. } => "refused",
            Self::Failed { .. } => "failed",
        }
    }
}

/// One attempt to deliver one change to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub id: Uuid,
    pub seq: i64,
    pub attempt: u32,
    pub http_status: u16,
    pub error: String,
    pub latency: Duration,
    pub attempted_at: DateTime<Utc>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub delivered: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(text: &str) -> Result<EndpointUrl, FieldViolation> {
        EndpointUrl::parse(text, &FieldPath::field("url"))
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(url_of("https://hooks.example.com/kith").is_ok());
        assert!(url_of("http://example.com:8080/in?x=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "hooks.example.com",
            "https://user:pw@example.com/",
            "https://localhost/",
            "http://api.localhost:80/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            let violation = url_of(bad).expect_err(bad);
            assert_eq!(violation.field.to_string(), "url", "{bad}");
        }
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_forbidden() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::10.0.0.1",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
        ] {
            assert!(
                is_forbidden_address(address.parse().unwrap()),
                "{address} must be refused"
            );
        }
        for address in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(
                !is_forbidden_address(address.parse().unwrap()),
                "{address} is public"
            );
        }
    }

    #[test]
    fn secrets_are_whsec_and_their_key_is_the_decoded_bytes() {
        let secret = Secret::generate();
        assert!(secret.reveal().starts_with("whsec_"));
        assert_eq!(secret.key().len(), SECRET_BYTES);
        assert_eq!(format!("{secret:?}"), "Secret(…)");
        assert_ne!(secret, Secret::generate());
    }

    #[test]
    fn backoff_doubles_within_jitter_up_to_the_ceiling() {
        let policy = RetryPolicy::default();
        for failures in 1..=20 {
            let ceiling =
                (policy.first_backoff * (1 << (failures - 1).min(20))).min(policy.max_backoff);
            let wait = policy.backoff(failures);
            assert!(
                wait <= ceiling && wait >= ceiling / 2,
                "{failures}: {wait:?}"
            );
        }
    }

    #[test]
    fn an_endpoint_is_given_up_on_only_after_enough_failures_over_enough_time() {
        let policy = RetryPolicy::default();
        let since = Utc::now();
        let later = since + chrono::Duration::days(4);
        assert!(!policy.gives_up(9, since, later));
        assert!(!policy.gives_up(10, since, since + chrono::Duration::hours(2)));
        assert!(policy.gives_up(10, since, later));
    }

    #[test]
    fn kinds_are_stored_sorted_and_read_back() {
        let kinds = EndpointKinds::new(vec![
            ChangeKind::Person,
            ChangeKind::Customer,
            ChangeKind::Person,
        ]);
        assert_eq!(kinds.to_stored(), "customer,person");
        assert_eq!(
            EndpointKinds::from_stored("customer,person").unwrap(),
            kinds
        );
        assert_eq!(
            EndpointKinds::from_stored("").unwrap(),
            EndpointKinds::default()
        );
    }
}
