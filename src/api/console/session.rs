//! Signing in and out, and what proves that a request comes from a
//! signed-in person's own page.
//!
//! The session is the API key itself, in a cookie only the console's paths
//! receive, that no script can read and that no other site's request
//! carries. Each form carries a token: an HMAC, keyed by that cookie's
//! secret value, of what the form is for. Another site can neither read the
//! cookie nor so forge the token, so a form posted from elsewhere is refused
//! even where SameSite is not honoured; and since the key is the cookie's,
//! not the process's, any replica checks a form another rendered, and a
//! restart expires none.

use std::fmt::Write as _;

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use rand::RngCore;
use sha2::Sha256;

use super::{Chrome, ConsoleState, Failure, FormFields, HOME, html_as};
use crate::domain::Caller;
use crate::error::Error;

/// The session cookie: the signed-in key.
const SESSION_COOKIE: &str = "kith_console";
/// The sign-in form's own cookie, before there is a session to bind its
/// token to.
const SIGN_IN_COOKIE: &str = "kith_console_csrf";
/// How long a sign-in form stays usable.
const SIGN_IN_SECONDS: u64 = 60 * 60;

const SIGN_IN_PAGE: &str = "/console/sign-in";

/// What a form token is for, so that a sign-in token never passes for a
/// session's and the other way round.
const SESSION_FORMS: &str = "session";
const SIGN_IN_FORMS: &str = "sign-in";

/// Bytes of randomness in a sign-in form's cookie.
const NONCE_BYTES: usize = 18;

/// Makes and checks form tokens: stateless, the same on every replica.
#[derive(Clone, Default)]
pub(super) struct FormTokens;

impl FormTokens {
    fn mac(&self, purpose: &str, cookie: &str) -> Hmac<Sha256> {
        // The cookie's value (an API key, or the sign-in form's random
        // nonce) is the secret: only its holder and this server know it.
        let mut mac = Hmac::<Sha256>::new_from_slice(cookie.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"kith console form\0");
        mac.update(purpose.as_bytes());
        mac
    }

    fn token(&self, purpose: &str, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, cookie).finalize().into_bytes())
    }

    /// Whether `token` is the one for this purpose and cookie; compared in
    /// constant time.
    fn accepts(&self, purpose: &str, cookie: &str, token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|token| self.mac(purpose, cookie).verify_slice(&token).is_ok())
    }
}

/// A signed-in person: the caller their key makes, and the key, which
/// their forms' tokens are bound to.
pub(super) struct Session {
    pub(super) caller: Caller,
    key: String,
}

impl Session {
    /// The token this session's forms carry.
    pub(super) fn form_token(&self, state: &ConsoleState) -> String {
        state.tokens.token(SESSION_FORMS, &self.key)
    }

    /// Refuses a form that did not come from this session's pages.
    pub(super) fn check_form(
        &self,
        state: &ConsoleState,
        form: &FormFields,
    ) -> Result<(), Failure> {
        if state
            .tokens
            .accepts(SESSION_FORMS, &self.key, form.get("csrf"))
        {
            Ok(())
        } else {
            Err(Failure::form_expired())
        }
    }

    /// The frame of a page in `section`, with the workspace's name.
    pub(super) async fn chrome(
        &self,
        state: &ConsoleState,
        title: impl Into<String>,
        section: &str,
    ) -> Chrome {
        let id = self.caller.workspace.to_string();
        let found = state.service.find_workspace(&id).await;
        let workspace = match found {
            Ok(Some(workspace)) => workspace.name.as_str().to_owned(),
            // The name is a courtesy: a page that can be shown is not
            // refused for it, and shows the id instead.
            Ok(None) => id,
            Err(error) => {
                tracing::debug!(%error, "the workspace's name could not be read");
                id
            }
        };
        Chrome::signed_in(title.into(), workspace, section, self.form_token(state))
    }

    /// Whether this session signed in with the key `id` names.
    pub(super) fn uses_key(&self, id: crate::domain::workspace::ApiKeyId) -> bool {
        self.caller.key == id
    }
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    /// The session cookie's caller. Without one, or with a key that is no
    /// longer accepted (revoked, say), the person is sent to sign in.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Some(key) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(Redirect::to(SIGN_IN_PAGE).into_response());
        };
        match state.authenticator.caller_for(&key).await {
            Ok(caller) => {
                crate::api::observe::record_caller(&caller);
                Ok(Self { caller, key })
            }
            Err(Error::Unauthenticated) => Err(signed_out(state)),
            Err(error) => Err(Failure::from(error).into_response()),
        }
    }
}

/// The sign-in page, with a token bound to the sign-in cookie, which a
/// browser that has one keeps (so two open sign-in tabs both work). Someone
/// already signed in goes straight to the console.
pub(super) async fn sign_in_form(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let mut refused = false;
    if let Some(key) = cookie(&headers, SESSION_COOKIE) {
        match state.authenticator.caller_for(key).await {
            Ok(_) => return Ok(Redirect::to(HOME).into_response()),
            Err(Error::Unauthenticated) => refused = true,
            // Whether the key is still good cannot be told now (a rate
            // limit, an outage): offer the form and keep the cookie.
            Err(_) => {}
        }
    }
    let nonce = match cookie(&headers, SIGN_IN_COOKIE) {
        Some(nonce) if is_cookie_value(nonce) => nonce.to_owned(),
        _ => new_nonce(),
    };
    let mut response = sign_in_page(&state, &nonce, StatusCode::OK, "")?;
    if refused {
        // A key that is no longer accepted (revoked, say): forget it.
        set_cookie(&mut response, SESSION_COOKIE, "", Some(0), state.secure)?;
    }
    Ok(response)
}

/// Checks the key; on success the browser keeps it as the session and goes
/// to the console.
pub(super) async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, Failure> {
    let Some(nonce) = cookie(&headers, SIGN_IN_COOKIE) else {
        return Err(Failure::form_expired());
    };
    if !state.tokens.accepts(SIGN_IN_FORMS, nonce, form.get("csrf")) {
        return Err(Failure::form_expired());
    }
    let key = form.get("key").trim();
    // A real key is cookie-safe (`kith_<hex>_<base64url>`); anything else
    // is refused before it could shape a header.
    let admitted = if is_cookie_value(key) {
        state.authenticator.caller_for(key).await
    } else {
        Err(Error::Unauthenticated)
    };
    match admitted {
        Ok(_) => {
            let mut response = Redirect::to(HOME).into_response();
            set_cookie(&mut response, SESSION_COOKIE, key, None, state.secure)?;
            set_cookie(&mut response, SIGN_IN_COOKIE, "", Some(0), state.secure)?;
            Ok(response)
        }
        Err(Error::Unauthenticated) => sign_in_page(
            &state,
            nonce,
            StatusCode::UNAUTHORIZED,
            "That key was not accepted.",
        ),
        Err(error) => Err(error.into()),
    }
}

/// Forgets the session. The form must come from the session's own page, so
/// another site cannot sign someone out.
pub(super) async fn sign_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, Failure> {
    if let Some(key) = cookie(&headers, SESSION_COOKIE)
        && !state.tokens.accepts(SESSION_FORMS, key, form.get("csrf"))
    {
        return Err(Failure::form_expired());
    }
    Ok(signed_out(&state))
}

/// To the sign-in page, the session cookie cleared.
pub(super) fn signed_out(state: &ConsoleState) -> Response {
    let mut response = Redirect::to(SIGN_IN_PAGE).into_response();
    match set_cookie(&mut response, SESSION_COOKIE, "", Some(0), state.secure) {
        Ok(()) => response,
        Err(failure) => failure.into_response(),
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    token: String,
    /// Why the last attempt failed; empty on a first visit.
    problem: String,
}

fn sign_in_page(
    state: &ConsoleState,
    nonce: &str,
    status: StatusCode,
    problem: &str,
) -> Result<Response, Failure> {
    let page = SignInPage {
        chrome: Chrome::signed_out("Sign in"),
        token: state.tokens.token(SIGN_IN_FORMS, nonce),
        problem: problem.to_owned(),
    };
    let mut response = html_as(status, &page);
    set_cookie(
        &mut response,
        SIGN_IN_COOKIE,
        nonce,
        Some(SIGN_IN_SECONDS),
        state.secure,
    )?;
    Ok(response)
}

fn new_nonce() -> String {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    URL_SAFE_NO_PAD.encode(nonce)
}

/// The value of the cookie `name`, from any of the request's `Cookie`
/// headers (HTTP/2 may send several).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether `value` can be a cookie's value as it is, unquoted: the console
/// only ever sets keys and base64url nonces.
fn is_cookie_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
}

/// Adds a `Set-Cookie` for one of the console's cookies: sent back only to
/// the console's paths, never to script, never with another site's
/// requests, and only over TLS when the console is served so. `max_age`
/// `Some(0)` removes it; `None` keeps it for the browser's session.
fn set_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> Result<(), Failure> {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        let _ = write!(text, "; Max-Age={seconds}");
    }
    if secure {
        text.push_str("; Secure");
    }
    let value =
        HeaderValue::try_from(text).map_err(|error| Failure::from(Error::internal(error)))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_in_every_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; kith_console=k"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("kith_console_csrf=n"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("k"));
        assert_eq!(cookie(&headers, SIGN_IN_COOKIE), Some("n"));
        assert_eq!(cookie(&headers, "missing"), None);
        let mut cleared = HeaderMap::new();
        cleared.append(header::COOKIE, HeaderValue::from_static("kith_console="));
        assert_eq!(cookie(&cleared, SESSION_COOKIE), None);
    }

    #[test]
    fn a_token_passes_for_its_own_purpose_and_cookie_only() {
        let tokens = FormTokens;
        let token = tokens.token(SESSION_FORMS, "kith_a");
        assert!(tokens.accepts(SESSION_FORMS, "kith_a", &token));
        assert!(!tokens.accepts(SESSION_FORMS, "kith_b", &token));
        assert!(!tokens.accepts(SIGN_IN_FORMS, "kith_a", &token));
        assert!(!tokens.accepts(SESSION_FORMS, "kith_a", ""));
        assert!(!tokens.accepts(SESSION_FORMS, "kith_a", "!!"));
    }

    #[test]
    fn only_plain_values_are_set_as_cookies() {
        assert!(is_cookie_value("kith_0123abcd_Zm9v-YmFy"));
        for bad in ["", "a;b", "a b", "a=b", "a\r\nSet-Cookie: x"] {
            assert!(!is_cookie_value(bad), "{bad:?}");
        }
    }
}
