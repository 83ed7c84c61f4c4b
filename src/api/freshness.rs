//! Read-your-writes over the wire, the same on every transport: a write is
//! answered with `x-kith-cursor`, the cursor of the last change it
//! committed; a read that sends it back as `x-kith-at-least` is served only
//! by a database that has that change (the primary, or a read replica that
//! has caught up to it). The service does the routing; this is the headers.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::domain::Caller;
use crate::domain::change::ChangeCursor;
use crate::error::{Error, Result};
use crate::service::noting_commits;

/// The cursor a write's answer carries.
pub const CURSOR_HEADER: HeaderName = HeaderName::from_static("x-kith-cursor");

/// The cursor a read must reflect.
pub const AT_LEAST_HEADER: HeaderName = HeaderName::from_static(AT_LEAST);
const AT_LEAST: &str = "x-kith-at-least";

/// The caller, bound to see the change its `x-kith-at-least` names. A
/// cursor that is not one, or another workspace's, is refused on the
/// header's name.
pub fn seeing(headers: &HeaderMap, caller: Caller) -> Result<Caller> {
    let Some(value) = headers.get(AT_LEAST_HEADER) else {
        return Ok(caller);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid(AT_LEAST, "is not a change cursor"))?;
    let cursor = ChangeCursor::parse(text.trim(), caller.workspace, AT_LEAST)?;
    Ok(caller.having_seen(cursor))
}

/// Adds `x-kith-cursor` to an answer, when the call committed something.
pub fn answer_with(headers: &mut HeaderMap, cursor: Option<String>) {
    if let Some(value) = cursor.and_then(|cursor| HeaderValue::try_from(cursor).ok()) {
        headers.insert(CURSOR_HEADER, value);
    }
}

/// Middleware for the REST routes: each answer carries the cursor of what
/// its call committed.
pub async fn answering_cursors(request: Request, next: Next) -> Response {
    let (mut response, cursor) = noting_commits(next.run(request)).await;
    answer_with(response.headers_mut(), cursor);
    response
}
