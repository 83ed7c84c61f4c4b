//! Workspaces (tenants) and the API keys that name them.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::change::ChangeCursor;
use crate::error::{Error, FieldViolation, Result};

/// The tenant every record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(pub Uuid);

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who makes a call: the workspace its key opens, and the key itself, which
/// the change log records as the author of every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub workspace: WorkspaceId,
    pub key: ApiKeyId,
    /// A change the caller knows committed (the cursor its own write was
    /// answered with): its reads must reflect it, wherever they are served.
    pub seen: Option<ChangeCursor>,
}

impl Caller {
    pub fn new(workspace: WorkspaceId, key: ApiKeyId) -> Self {
        Self {
            workspace,
            key,
            seen: None,
        }
    }

    /// The caller, whose reads must reflect the change `seen` names.
    pub fn having_seen(self, seen: ChangeCursor) -> Self {
        Self {
            seen: Some(seen),
            ..self
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: WorkspaceName,
    pub created_at: DateTime<Utc>,
}

impl Workspace {
    pub fn new(name: WorkspaceName, now: DateTime<Utc>) -> Self {
        Self {
            id: WorkspaceId(Uuid::new_v4()),
            name,
            created_at: now,
        }
    }
}

/// 1 to 64 characters of letters, digits, `-`, `_` and `.`; unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    /// The workspace a first start creates.
    pub const DEFAULT: &'static str = "default";

    pub fn parse(name: &str) -> Result<Self, FieldViolation> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(FieldViolation::new(
                "name",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The public half of an API key: shown in listings and used to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyId(pub Uuid);

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.simple().fmt(f)
    }
}

impl ApiKeyId {
    pub fn parse(text: &str) -> Result<Self, FieldViolation> {
        Uuid::try_parse(text).map(Self).map_err(|_| {
            FieldViolation::new("key_id", "must be a key id as `kith keys list` shows it")
        })
    }
}

const KEY_PREFIX: &str = "kith_";
const KEY_ID_LEN: usize = 32;
const SECRET_BYTES: usize = 32;

/// SHA-256 of a key's secret. The secret has 256 random bits, so a fast hash
/// is as strong as a slow one and keeps the per-call check cheap.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares in constant time, so response timing reveals nothing.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A key as presented by a caller: `kith_<32 hex key id>_<secret>`.
pub struct PresentedKey {
    pub id: ApiKeyId,
    pub secret_hash: SecretHash,
}

impl PresentedKey {
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .strip_prefix(KEY_PREFIX)
            .ok_or(Error::Unauthenticated)?;
        let (id, secret) = rest
            .split_at_checked(KEY_ID_LEN)
            .ok_or(Error::Unauthenticated)?;
        let secret = secret.strip_prefix('_').ok_or(Error::Unauthenticated)?;
        let id = Uuid::try_parse(id).map_err(|_| Error::Unauthenticated)?;
        Ok(Self {
            id: ApiKeyId(id),
            secret_hash: SecretHash::of(secret),
        })
    }
}

/// A freshly minted key. The plain text exists only here, to be shown once.
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub secret_hash: SecretHash,
    pub created_at: DateTime<Utc>,
    plain: String,
}

impl NewApiKey {
    pub fn generate(workspace_id: WorkspaceId) -> Self {
        use base64::Engine as _;
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let id = ApiKeyId(Uuid::new_v4());
        Self {
            plain: format!("{KEY_PREFIX}{id}_{secret}"),
            secret_hash: SecretHash::of(&secret),
            id,
            workspace_id,
            created_at: super::now(),
        }
    }

    /// The key to hand to the caller. Never log it.
    pub fn reveal(&self) -> &str {
        &self.plain
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the store keeps of a key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub secret_hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// The caller `presented` makes, if this stored key accepts it.
    pub fn admit(&self, presented: &PresentedKey) -> Result<Caller> {
        if self.revoked_at.is_none() && self.secret_hash.matches(&presented.secret_hash) {
            Ok(Caller::new(self.workspace_id, self.id))
        } else {
            Err(Error::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_to_its_id_and_hash() {
        let key = NewApiKey::generate(WorkspaceId(Uuid::new_v4()));
        let presented = PresentedKey::parse(key.reveal()).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(presented.secret_hash.matches(&key.secret_hash));
    }

    #[test]
    fn a_tampered_secret_is_refused() {
        let key = NewApiKey::generate(WorkspaceId(Uuid::new_v4()));
        let stored = ApiKey {
            id: key.id,
            workspace_id: key.workspace_id,
            secret_hash: key.secret_hash.clone(),
            created_at: key.created_at,
            revoked_at: None,
        };
        let mut tampered = key.reveal().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'x' { 'y' } else { 'x' });
        let presented = PresentedKey::parse(&tampered).unwrap();
        assert!(matches!(
            stored.admit(&presented),
            Err(Error::Unauthenticated)
        ));
        assert!(
            stored
                .admit(&PresentedKey::parse(key.reveal()).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn malformed_keys_are_unauthenticated() {
        for text in [
            "",
            "kith_",
            "kith_zz",
            "bearer",
            "kith_0123456789abcdef0123456789abcdefXsecret",
        ] {
            assert!(PresentedKey::parse(text).is_err(), "{text}");
        }
    }
}
