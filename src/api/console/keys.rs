//! The workspace's API keys: listed, created and revoked. A new key's
//! secret is shown once, in the answer to the form that made it, and never
//! travels in a URL.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{Session, signed_out};
use super::views::KeyRow;
use super::{Chrome, ConsoleState, Failure, FormFields, html};
use crate::domain::workspace::ApiKeyId;
use crate::error::Error;

const KEYS_PAGE: &str = "/console/keys";

/// A key just made, to copy now.
struct NewKey {
    id: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    rows: Vec<KeyRow>,
    created: Option<NewKey>,
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, Failure> {
    Ok(html(&keys_page(&state, &session, None).await?))
}

/// Makes a key for the session's workspace and shows its secret, once.
pub(super) async fn create(
    State(state): State<ConsoleState>,
    session: Session,
    form: FormFields,
) -> Result<Response, Failure> {
    session.check_form(&state, &form)?;
    let key = state
        .service
        .create_api_key(session.caller.workspace)
        .await?;
    let created = NewKey {
        id: key.id.to_string(),
        secret: key.reveal().to_owned(),
    };
    Ok(html(&keys_page(&state, &session, Some(created)).await?))
}

/// Revokes one of the workspace's keys. Revoking the session's own key
/// ends the session.
pub(super) async fn revoke(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, Failure> {
    session.check_form(&state, &form)?;
    let id = ApiKeyId::parse(&id).map_err(|violation| Error::InvalidArgument(vec![violation]))?;
    let key = state
        .service
        .revoke_workspace_api_key(session.caller.workspace, id)
        .await?;
    state.authenticator.forget(key.id);
    if session.uses_key(key.id) {
        return Ok(signed_out(&state));
    }
    Ok(Redirect::to(KEYS_PAGE).into_response())
}

/// The workspace's keys, newest first.
async fn keys_page(
    state: &ConsoleState,
    session: &Session,
    created: Option<NewKey>,
) -> Result<KeysPage, Failure> {
    let keys = state
        .service
        .list_api_keys(session.caller.workspace)
        .await?;
    Ok(KeysPage {
        chrome: session.chrome(state, "API keys", KEYS_PAGE).await,
        rows: keys
            .iter()
            .rev()
            .map(|key| KeyRow::of(key, session.uses_key(key.id)))
            .collect(),
        created,
    })
}
