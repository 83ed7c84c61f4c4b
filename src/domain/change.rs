//! The change log's rules: what a change is, how changes are filtered, and
//! the cursors that resume a reader right after a change, bound to their
//! workspace.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::WorkspaceId;
use super::workspace::ApiKeyId;
use crate::error::{Error, FieldPath, FieldViolation, Result, Violations};

/// The kinds of records the log follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    Customer,
    Entity,
    EntityType,
    Person,
    User,
    Company,
    Membership,
}

impl ChangeKind {
    pub const ALL: [Self; 7] = [
        Self::Customer,
        Self::Entity,
        Self::EntityType,
        Self::Person,
        Self::User,
        Self::Company,
        Self::Membership,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Entity => "entity",
            Self::EntityType => "entity_type",
            Self::Person => "person",
            Self::User => "user",
            Self::Company => "company",
            Self::Membership => "membership",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOperation {
    Created,
    Updated,
    Deleted,
    Archived,
    Unarchived,
}

impl ChangeOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Archived => "archived",
            Self::Unarchived => "unarchived",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [
            Self::Created,
            Self::Updated,
            Self::Deleted,
            Self::Archived,
            Self::Unarchived,
        ]
        .into_iter()
        .find(|operation| operation.as_str() == text)
    }

    /// The operation of a write that created a record or changed it.
    pub fn of_upsert(created: bool) -> Self {
        if created {
            Self::Created
        } else {
            Self::Updated
        }
    }
}

/// A change a write makes, before it is numbered: the record's identity and
/// its state as committed, encoded as the contract's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    pub operation: ChangeOperation,
    pub record_id: String,
    pub external_id: Option<String>,
    pub owner_id: Option<String>,
    /// The record as the contract's message, encoded.
    pub record: Vec<u8>,
}

/// A change as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedChange {
    /// Per workspace, gap-free, in commit order; also the record's
    /// revision after this change.
    pub seq: i64,
    pub change: Change,
    pub api_key: ApiKeyId,
    pub committed_at: DateTime<Utc>,
}

/// Which changes a reader wants; every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Empty: every kind.
    pub kinds: Vec<ChangeKind>,
    pub owner_id: Option<String>,
    pub record_id: Option<String>,
}

/// Longest owner or record id a filter takes: the longest id Kith stores.
const MAX_FILTER_ID_CHARS: usize = 255;

impl ChangeFilter {
    pub fn parse(kinds: Vec<ChangeKind>, owner_id: &str, record_id: &str) -> Result<Self> {
        let mut v = Violations::default();
        let mut id = |text: &str, field: &'static str| {
            if text.is_empty() {
                return None;
            }
            v.check(
                super::bounded_text(text, MAX_FILTER_ID_CHARS).map_err(|why| {
                    FieldViolation::new(FieldPath::field("filter").then(field), why)
                }),
            )
            .map(|()| text.to_owned())
        };
        let owner_id = id(owner_id, "owner_id");
        let record_id = id(record_id, "record_id");
        let mut kinds = kinds;
        kinds.sort_unstable();
        kinds.dedup();
        v.finish(
            Self {
                kinds,
                owner_id,
                record_id,
            },
            Error::InvalidArgument,
        )
    }

    pub fn matches(&self, change: &Change) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&change.kind))
            && self
                .owner_id
                .as_ref()
                .is_none_or(|owner| change.owner_id.as_ref() == Some(owner))
            && self
                .record_id
                .as_ref()
                .is_none_or(|record| *record == change.record_id)
    }
}

/// How many changes one read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeBatchSize(pub usize);

impl ChangeBatchSize {
    pub const DEFAULT: usize = 100;
    pub const MAX: usize = 1000;

    /// `field` names the size in errors; 0 asks for the default.
    pub fn parse(requested: i32, field: &'static str) -> Result<Self> {
        match usize::try_from(requested) {
            Ok(0) => Ok(Self(Self::DEFAULT)),
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(Error::invalid(
                field,
                format!(
                    "must be 0 (the default, {}) to {}",
                    Self::DEFAULT,
                    Self::MAX
                ),
            )),
        }
    }
}

/// A position in a workspace's log: after the change numbered `seq` (0:
/// before the first). Opaque to callers, and bound to its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeCursor {
    pub seq: i64,
}

const CURSOR_LEN: usize = 8 + 8;

impl ChangeCursor {
    pub fn at(seq: i64) -> Self {
        Self { seq }
    }

    pub fn encode(self, workspace: WorkspaceId) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&workspace_digest(workspace));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor the caller sent; another workspace's, or anything that is
    /// no cursor, is refused on `field`.
    pub fn parse(text: &str, workspace: WorkspaceId, field: &'static str) -> Result<Self> {
        let refuse = |why: &str| Error::invalid(field, why);
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| refuse("is not a change cursor"))?;
        let bytes: [u8; CURSOR_LEN] = bytes
            .try_into()
            .map_err(|_| refuse("is not a change cursor"))?;
        let (seq, digest) = bytes.split_at(8);
        if digest != workspace_digest(workspace) {
            return Err(refuse("belongs to another workspace"));
        }
        let seq = i64::from_be_bytes(seq.try_into().expect("8 bytes"));
        if seq < 0 {
            return Err(refuse("is not a change cursor"));
        }
        Ok(Self { seq })
    }

    /// Whether the changes right after this cursor are still kept, given
    /// that those up to `pruned_seq` were deleted.
    pub fn check_kept(self, pruned_seq: i64) -> Result<()> {
        if self.seq < pruned_seq {
            Err(Error::CursorExpired)
        } else {
            Ok(())
        }
    }
}

fn workspace_digest(workspace: WorkspaceId) -> [u8; 8] {
    let digest = Sha256::digest(workspace.0.as_bytes());
    digest[..8].try_into().expect("sha256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> WorkspaceId {
        WorkspaceId(uuid::Uuid::new_v4())
    }

    #[test]
    fn a_cursor_resumes_in_its_own_workspace_only() {
        let (mine, theirs) = (workspace(), workspace());
        let text = ChangeCursor::at(42).encode(mine);
        assert_eq!(ChangeCursor::parse(&text, mine, "cursor").unwrap().seq, 42);
        let foreign = ChangeCursor::parse(&text, theirs, "cursor").unwrap_err();
        assert_eq!(foreign.violations()[0].field.to_string(), "cursor");
        for forged in ["", "x", "!!!", &text[1..]] {
            assert!(
                ChangeCursor::parse(forged, mine, "cursor").is_err(),
                "{forged:?}"
            );
        }
    }

    #[test]
    fn a_cursor_before_what_was_pruned_has_expired() {
        assert!(ChangeCursor::at(10).check_kept(10).is_ok());
        assert!(matches!(
            ChangeCursor::at(9).check_kept(10),
            Err(Error::CursorExpired)
        ));
    }

    #[test]
    fn filters_match_kind_owner_and_record() {
        let change = Change {
            kind: ChangeKind::Entity,
            operation: ChangeOperation::Created,
            record_id: "e1".into(),
            external_id: None,
            owner_id: Some("acme".into()),
            record: Vec::new(),
        };
        let all = ChangeFilter::parse(Vec::new(), "", "").unwrap();
        assert!(all.matches(&change));
        let people = ChangeFilter::parse(vec![ChangeKind::Person], "", "").unwrap();
        assert!(!people.matches(&change));
        let acme = ChangeFilter::parse(vec![ChangeKind::Entity], "acme", "").unwrap();
        assert!(acme.matches(&change));
        let other = ChangeFilter::parse(Vec::new(), "", "e2").unwrap();
        assert!(!other.matches(&change));
        assert!(ChangeBatchSize::parse(1001, "max_changes").is_err());
        assert_eq!(ChangeBatchSize::parse(0, "max_changes").unwrap().0, 100);
    }
}
