//! Cursor pagination shared by every List method: page sizes and opaque page
//! tokens that resume a query after the last record it returned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

/// How an API sizes its pages: the one place each family's rule lives.
/// The seeds differ, so each keeps its own (see the constants below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizing {
    /// The request field that sets the size, for errors.
    pub field: &'static str,
    pub default: usize,
    pub max: usize,
    /// Zero asks for the default (AIP-158) rather than being a mistake.
    pub zero_is_default: bool,
    /// A size above the maximum is lowered to it (AIP-158, Polar) rather
    /// than refused (Stigg).
    pub clamp: bool,
}

/// Kith's own List methods (AIP-158): 50 by default, at most 100, larger
/// sizes lowered to 100, zero for the default.
pub const KITH_PAGES: PageSizing = PageSizing {
    field: "page_size",
    default: 50,
    max: 100,
    zero_is_default: true,
    clamp: true,
};

/// Seed 000 (Stigg): `limit` 1 to 100, 20 by default; anything else refused.
pub const STIGG_PAGES: PageSizing = PageSizing {
    field: "limit",
    default: 20,
    max: 100,
    zero_is_default: false,
    clamp: false,
};

/// Seed 001 (Schematic): `limit` up to 100, which is also the default.
pub const SCHEMATIC_PAGES: PageSizing = PageSizing {
    field: "limit",
    default: 100,
    max: 100,
    zero_is_default: true,
    clamp: true,
};

/// Seed 002 (Flameup): `limit` up to 100, 50 by default.
pub const FLAMEUP_PAGES: PageSizing = PageSizing {
    field: "limit",
    default: 50,
    max: 100,
    zero_is_default: true,
    clamp: true,
};

/// Seed 003 (Rapidly, after Polar): `limit` from 1, 10 by default, larger
/// values silently lowered to 100.
pub const RAPIDLY_PAGES: PageSizing = PageSizing {
    field: "limit",
    default: 10,
    max: 100,
    zero_is_default: false,
    clamp: true,
};

impl PageSizing {
    /// The size a request asks for (`None`: not sent).
    pub fn size(&self, requested: Option<i64>) -> Result<usize> {
        let refuse = |why: String| Error::invalid(self.field, why);
        let Some(requested) = requested else {
            return Ok(self.default);
        };
        match usize::try_from(requested) {
            Err(_) => Err(refuse("must not be negative".to_owned())),
            Ok(0) if self.zero_is_default => Ok(self.default),
            Ok(n) if n > self.max && self.clamp => Ok(self.max),
            Ok(n) if (1..=self.max).contains(&n) => Ok(n),
            Ok(_) if self.clamp => Err(refuse("must be at least 1".to_owned())),
            Ok(_) => Err(refuse(format!("must be 1 to {}", self.max))),
        }
    }
}

/// Where a page starts: after the record with this creation time and id.
/// Records are listed in `(created_at, id)` order, which concurrent writes
/// cannot reshuffle: a new record always sorts after every existing one or at
/// a fixed place, so no record is skipped or repeated between pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: usize,
    pub after: Option<Cursor>,
    /// Rows to skip first, for APIs that page by offset (seed 002). Offsets
    /// shift under concurrent writes; cursors do not, so gRPC uses those.
    pub skip: u64,
    /// Newest first instead of oldest first (offset pages only).
    pub descending: bool,
    /// Digest of the query the token belongs to; a token replayed against a
    /// different query is refused rather than silently mixing result sets.
    query_digest: [u8; 8],
}

/// One page of results and the token of the next, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

impl PageRequest {
    /// `query` is a canonical rendering of everything that selects the rows
    /// (workspace and filters), so tokens are bound to it.
    pub fn parse(
        sizing: &PageSizing,
        page_size: Option<i64>,
        page_token: &str,
        query: &str,
    ) -> Result<Self> {
        let size = sizing.size(page_size)?;
        let query_digest = digest(query);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode(page_token, query_digest)?)
        };
        Ok(Self {
            size,
            after,
            skip: 0,
            descending: false,
            query_digest,
        })
    }

    /// The same request, newest first.
    #[must_use]
    pub fn newest_first(mut self) -> Self {
        self.descending = true;
        self
    }

    /// The same request, starting `skip` rows in.
    #[must_use]
    pub fn skipping(mut self, skip: u64) -> Self {
        self.skip = skip;
        self
    }

    /// Builds the page from up to `size + 1` rows fetched in cursor order: the
    /// extra row only tells that another page exists.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
        let next_token = if rows.len() > self.size {
            rows.truncate(self.size);
            rows.last()
                .map(|last| encode(cursor_of(last), self.query_digest))
        } else {
            None
        };
        Page {
            items: rows,
            next_token,
        }
    }

    /// How many rows the store should fetch.
    pub fn fetch_limit(&self) -> i64 {
        i64::try_from(self.size + 1).expect("page sizes are small")
    }
}

fn digest(query: &str) -> [u8; 8] {
    let full = Sha256::digest(query.as_bytes());
    full[..8].try_into().expect("sha256 is 32 bytes")
}

const TOKEN_LEN: usize = 8 + 16 + 8;

fn encode(cursor: Cursor, query_digest: [u8; 8]) -> String {
    let mut bytes = Vec::with_capacity(TOKEN_LEN);
    bytes.extend_from_slice(&cursor.created_at.timestamp_millis().to_be_bytes());
    bytes.extend_from_slice(cursor.id.as_bytes());
    bytes.extend_from_slice(&query_digest);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(token: &str, query_digest: [u8; 8]) -> Result<Cursor> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| Error::InvalidPageToken("not a page token"))?;
    let bytes: [u8; TOKEN_LEN] = bytes
        .try_into()
        .map_err(|_| Error::InvalidPageToken("not a page token"))?;
    let (millis, rest) = bytes.split_at(8);
    let (id, digest) = rest.split_at(16);
    if digest != query_digest {
        return Err(Error::InvalidPageToken(
            "the token belongs to a different query",
        ));
    }
    let millis = i64::from_be_bytes(millis.try_into().expect("8 bytes"));
    let created_at = DateTime::from_timestamp_millis(millis)
        .ok_or(Error::InvalidPageToken("not a page token"))?;
    Ok(Cursor {
        created_at,
        id: Uuid::from_slice(id).expect("16 bytes"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            created_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            id: Uuid::new_v4(),
        }
    }

    #[test]
    fn page_sizes_default_and_clamp() {
        let size = |n| KITH_PAGES.size(Some(n));
        assert_eq!(size(0).unwrap(), 50);
        assert_eq!(KITH_PAGES.size(None).unwrap(), 50);
        assert_eq!(size(1000).unwrap(), 100);
        assert_eq!(size(7).unwrap(), 7);
        let err = size(-1).unwrap_err();
        assert_eq!(err.violations()[0].field.to_string(), "page_size");
    }

    #[test]
    fn each_family_keeps_its_own_sizes() {
        assert_eq!(STIGG_PAGES.size(None).unwrap(), 20);
        assert!(STIGG_PAGES.size(Some(0)).is_err());
        assert!(STIGG_PAGES.size(Some(101)).is_err());
        assert_eq!(RAPIDLY_PAGES.size(Some(500)).unwrap(), 100);
        assert!(RAPIDLY_PAGES.size(Some(0)).is_err());
        assert_eq!(SCHEMATIC_PAGES.size(Some(0)).unwrap(), 100);
        assert_eq!(FLAMEUP_PAGES.size(None).unwrap(), 50);
    }

    #[test]
    fn a_token_resumes_its_own_query_only() {
        let first = PageRequest::parse(&KITH_PAGES, Some(1), "", "q").unwrap();
        let page = first.finish(vec![cursor(), cursor()], |c| *c);
        let token = page.next_token.unwrap();
        let next = PageRequest::parse(&KITH_PAGES, Some(1), &token, "q").unwrap();
        assert_eq!(next.after, Some(page.items[0]));
        assert!(matches!(
            PageRequest::parse(&KITH_PAGES, Some(1), &token, "other"),
            Err(Error::InvalidPageToken(_))
        ));
    }

    #[test]
    fn forged_tokens_are_refused() {
        for token in ["x", "!!!", "AAAA"] {
            assert!(matches!(
                PageRequest::parse(&KITH_PAGES, Some(1), token, "q"),
                Err(Error::InvalidPageToken(_))
            ));
        }
    }

    #[test]
    fn the_last_page_has_no_token() {
        let request = PageRequest::parse(&KITH_PAGES, Some(2), "", "q").unwrap();
        assert!(
            request
                .finish(vec![cursor(), cursor()], |c| *c)
                .next_token
                .is_none()
        );
    }
}
