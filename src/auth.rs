//! API key → workspace, for every transport. The transports only find the key
//! in their own headers; checking it happens here.

use std::sync::Arc;

use http::HeaderMap;

use crate::domain::WorkspaceId;
use crate::domain::workspace::PresentedKey;
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The workspace a presented key opens. Unknown, malformed and revoked
    /// keys are all the same `Unauthenticated`, so probing learns nothing.
    pub async fn workspace_for(&self, key: &str) -> Result<WorkspaceId> {
        let presented = PresentedKey::parse(key)?;
        let stored = self
            .store
            .find_api_key(presented.id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        stored.admit(&presented)
    }
}

/// The key in `authorization: Bearer <key>` or, failing that, `x-api-key`.
pub fn key_from_headers(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    })
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
