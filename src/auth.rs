//! API key → workspace, for every transport. The transports only find the key
//! in their own headers; checking it happens here.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;

use crate::domain::Caller;
use crate::domain::workspace::{ApiKey, ApiKeyId, PresentedKey};
use crate::error::{Error, Result};
use crate::service::Service;

/// How long a stored key is trusted without reading it again: a revoked key
/// stops working within this time on every replica.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_CAPACITY: usize = 10_000;

/// How many calls one key may make: a sustained rate and a burst above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Clone)]
pub struct Authenticator {
    service: Service,
    /// Stored keys by id, with when they were read. Only what the store said
    /// is cached; the secret is still checked on every call.
    cache: Arc<Mutex<HashMap<ApiKeyId, (ApiKey, Instant)>>>,
    /// A token bucket per key, when calls are limited. Per process: with
    /// several replicas a key may make this many calls on each.
    limiter: Option<Arc<DefaultKeyedRateLimiter<ApiKeyId>>>,
    /// Calls refused for their rate.
    refused: Counter,
}

impl Authenticator {
    pub fn new(service: Service, rate_limit: Option<RateLimit>) -> Self {
        Self {
            service,
            cache: Arc::default(),
            limiter: rate_limit.map(|limit| {
                let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
                Arc::new(RateLimiter::keyed(quota))
            }),
            refused: Counter::default(),
        }
    }

    /// The authenticator, counting its rate refusals into `refused`.
    pub fn counting_refusals(self, refused: Counter) -> Self {
        Self { refused, ..self }
    }

    /// The caller a presented key makes. Unknown, malformed and revoked
    /// keys are all the same `Unauthenticated`, so probing learns nothing.
    pub async fn caller_for(&self, key: &str) -> Result<Caller> {
        let presented = PresentedKey::parse(key)?;
        let stored = match self.cached(presented.id) {
            Some(stored) => stored,
            None => {
                let stored = self
                    .service
                    .find_api_key(presented.id)
                    .await?
                    .ok_or(Error::Unauthenticated)?;
                self.remember(stored.clone());
                stored
            }
        };
        let caller = stored.admit(&presented)?;
        self.within_rate(presented.id)?;
        Ok(caller)
    }

    /// Takes a token from the key's bucket, or says when the next one comes.
    fn within_rate(&self, key: ApiKeyId) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            self.refused.inc();
            Error::RateLimited {
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }
        })
    }

    /// Drops what is cached of a key this process just revoked, so that it
    /// stops working here at once (other replicas within `KEY_CACHE_TTL`).
    pub fn forget(&self, id: ApiKeyId) {
        self.cache.lock().expect("key cache lock").remove(&id);
    }

    fn cached(&self, id: ApiKeyId) -> Option<ApiKey> {
        let cache = self.cache.lock().expect("key cache lock");
        cache
            .get(&id)
            .filter(|(_, read_at)| read_at.elapsed() < KEY_CACHE_TTL)
            .map(|(key, _)| key.clone())
    }

    fn remember(&self, key: ApiKey) {
        let mut cache = self.cache.lock().expect("key cache lock");
        if cache.len() >= KEY_CACHE_CAPACITY {
            cache.retain(|_, (_, read_at)| read_at.elapsed() < KEY_CACHE_TTL);
        }
        if cache.len() < KEY_CACHE_CAPACITY {
            cache.insert(key.id, (key, Instant::now()));
        }
    }
}

/// The key in `authorization: Bearer <key>` or, failing that, `x-api-key`
/// (gRPC accepts both).
pub fn key_from_headers(headers: &HeaderMap) -> Option<&str> {
    bearer_key(headers).or_else(|| header_key(headers, "x-api-key"))
}

/// The key in `authorization: Bearer <key>`.
pub fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
}

/// The key in a header of its own.
pub fn header_key<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_from_headers(&headers), None);
        headers.insert("x-api-key", "kith_b".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("kith_b"));
        headers.insert("authorization", "bearer kith_a".parse().unwrap());
        assert_eq!(key_from_headers(&headers), Some("kith_a"));
    }
}
