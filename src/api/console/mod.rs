//! The web console at `/console`: pages for people, rendered on the server
//! from the service layer's answers, that work without JavaScript (the one
//! script only shows times in the reader's time zone). Records are read
//! only; API keys can be created and revoked.
//!
//! A person signs in with an API key, which the browser then holds in an
//! `HttpOnly`, `SameSite=Strict` cookie and never puts in a URL. Every form
//! carries a token derived from that cookie (`session`), every write must
//! come from the console's own origin, and every answer carries a content
//! security policy that allows no inline script or style.

mod keys;
mod pages;
mod session;
mod views;

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::Authenticator;
use crate::error::Error;
use crate::service::Service;

/// Where a signed-in person lands.
const HOME: &str = "/console/customers";

/// The largest form the console reads: its forms hold a key and a token.
const FORM_LIMIT: usize = 16 * 1024;

/// Scripts, styles, images and fonts come only from the console's own
/// files; no page may be framed, post elsewhere or rebase its links.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The assets change only with a new build, and their URLs carry a digest of
/// their content, so a browser may keep them for a year.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// A digest of the assets, in their URLs: a new build's pages ask for the
/// new files rather than what a browser cached.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new()
        .chain_update(STYLESHEET)
        .chain_update(SCRIPT)
        .finalize();
    format!("{digest:x}").chars().take(12).collect()
});

#[derive(Clone)]
struct ConsoleState {
    service: Service,
    authenticator: Authenticator,
    /// Whether the console is served over TLS: its cookies are then
    /// `Secure`, so a browser never sends them in clear.
    secure: bool,
    tokens: session::FormTokens,
}

/// The console's routes, under `/console`, with their state: to be merged
/// into the REST gateway. `authenticator` is the gateway's, so page views
/// count against a key's rate like its API calls; `secure` says whether the
/// gateway serves TLS.
pub fn routes(service: Service, authenticator: Authenticator, secure: bool) -> Router {
    let state = ConsoleState {
        service,
        authenticator,
        secure,
        tokens: session::FormTokens,
    };
    Router::new()
        .route("/console", get(home))
        .route(
            "/console/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/customers", get(pages::customers))
        .route("/console/customers/{id}", get(pages::customer))
        .route("/console/users", get(pages::users))
        .route("/console/users/{id}", get(pages::user))
        .route("/console/companies", get(pages::companies))
        .route("/console/people", get(pages::people))
        .route("/console/people/{id}", get(pages::person))
        .route("/console/entity-types", get(pages::entity_types))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{id}/revoke", post(keys::revoke))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route("/console/{*rest}", any(no_such_page))
        .layer(middleware::from_fn(same_origin_writes))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::map_response(with_security_headers))
        .with_state(state)
}

async fn home() -> Redirect {
    Redirect::to(HOME)
}

async fn no_such_page() -> Failure {
    Failure::from(Error::NotFound { resource: "page" })
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        body,
    )
        .into_response()
}

/// The headers every console answer carries. Pages show a workspace's
/// records (and, once, a new key), so no cache may keep them.
async fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses a write whose `Origin` names another site, before any form is
/// read: SameSite cookies and form tokens already stop cross-site forms,
/// and this stops them even in a browser that honours neither.
async fn same_origin_writes(request: Request, next: Next) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !from_own_origin(request.headers(), request.uri()) {
        return Failure::forbidden_origin().into_response();
    }
    next.run(request).await
}

/// Whether the request's `Origin`, if it sent one, is the host it was sent
/// to. Only the authority is compared: behind a proxy that ends TLS the
/// console is served over HTTP to a page the browser loaded over HTTPS.
fn from_own_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(|origin| {
        origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
    }) else {
        // `null` (a sandboxed or privacy-sensitive context) and anything
        // that is no web origin.
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()));
    host.is_some_and(|host| host.eq_ignore_ascii_case(origin))
}

/// The page, rendered; a template that fails to render is a 500 page.
fn html(page: &impl Template) -> Response {
    html_as(StatusCode::OK, page)
}

/// The page with another status than 200.
fn html_as(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => Failure::from(Error::internal(error)).into_response(),
    }
}

/// The frame of every page: its title, the workspace and the navigation
/// when someone is signed in, and where the assets are.
struct Chrome {
    title: String,
    signed_in: bool,
    workspace: String,
    nav: Vec<NavItem>,
    /// The sign-out form's token.
    csrf: String,
    assets: &'static str,
}

struct NavItem {
    href: &'static str,
    label: &'static str,
    current: bool,
}

/// The sections, in the order the top bar shows them.
const SECTIONS: [(&str, &str); 6] = [
    ("/console/customers", "Customers"),
    ("/console/users", "Users"),
    ("/console/companies", "Companies"),
    ("/console/people", "People"),
    ("/console/entity-types", "Entity types"),
    ("/console/keys", "API keys"),
];

impl Chrome {
    /// A signed-in person's page in the section at `section` (one of
    /// `SECTIONS`' paths).
    fn signed_in(title: String, workspace: String, section: &str, csrf: String) -> Self {
        Self {
            title,
            signed_in: true,
            workspace,
            nav: SECTIONS
                .iter()
                .map(|&(href, label)| NavItem {
                    href,
                    label,
                    current: href == section,
                })
                .collect(),
            csrf,
            assets: ASSET_VERSION.as_str(),
        }
    }

    /// A page shown to anyone: the sign-in form, an error.
    fn signed_out(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            signed_in: false,
            workspace: String::new(),
            nav: Vec::new(),
            csrf: String::new(),
            assets: ASSET_VERSION.as_str(),
        }
    }
}

/// A request the console cannot answer with its page: said in words, with
/// the status that fits.
struct Failure {
    status: StatusCode,
    title: String,
    message: String,
    /// Each refused field, as `field: why`.
    details: Vec<String>,
    /// For errors that were logged: the id to quote to an operator.
    request_id: Option<String>,
}

impl Failure {
    fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            details: Vec::new(),
            request_id: None,
        }
    }

    /// A form whose token is missing or not this session's.
    fn form_expired() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form expired",
            "This form expired; reload the page and try again.",
        )
    }

    fn forbidden_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Sent from another site",
            "This form was sent from another site, so the console did not act on it.",
        )
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        // Logs internal errors under the request's id, and outages.
        let public = error.public_message();
        let details: Vec<String> = error
            .violations()
            .iter()
            .map(|violation| format!("{}: {}", violation.field, violation.description))
            .collect();
        let failure = match &error {
            Error::InvalidArgument(_) | Error::ForbiddenTransition(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "That request cannot be used",
                "Check these and try again:",
            ),
            Error::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "That already exists", "")
            }
            Error::NotFound { resource } => Self::new(
                StatusCode::NOT_FOUND,
                format!("No such {resource}"),
                "It may have been deleted, or the link may be wrong.",
            ),
            Error::InvalidPageToken(why) => Self::new(
                StatusCode::BAD_REQUEST,
                "That page link no longer works",
                format!("The link is not usable ({why}); start again from the first page."),
            ),
            Error::CursorExpired => Self::new(
                StatusCode::GONE,
                "That history link has expired",
                "Older changes are no longer kept; open the record again to see its history.",
            ),
            Error::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "Sign in again with an API key.",
            ),
            Error::RateLimited { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "This key made too many calls just now; wait a few seconds and reload.",
            ),
            Error::Unavailable(_) | Error::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Kith is unavailable",
                "The directory cannot be reached right now; try again shortly.",
            ),
            Error::Aborted(_) => Self::new(
                StatusCode::CONFLICT,
                "Try again",
                "That collided with another change; try again.",
            ),
            Error::TooSlow | Error::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side, and it was logged.",
            ),
        };
        Self {
            details,
            request_id: public.request_id,
            ..failure
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    failure: &'a Failure,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::signed_out(&self.title),
            failure: &self,
        };
        match page.render() {
            Ok(body) => (self.status, Html(body)).into_response(),
            // The error page itself failed: say so plainly, once.
            Err(_) => (self.status, self.title).into_response(),
        }
    }
}

/// A query string read as `T`, or a 400 page naming the problem.
struct Params<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Error::invalid("query", rejection.body_text()).into()),
        }
    }
}

/// A submitted form's fields. Read by hand rather than with axum's `Form`,
/// which needs a feature the gateway does not otherwise use.
struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The field's value; empty when it was not sent.
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Not a form",
                "The console only reads forms its own pages send.",
            )
            .into_response());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(form_urlencoded::parse(&body).into_owned().collect()))
    }
}

/// A link to `path` with these query parameters, empty ones left out.
fn href(path: &str, params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, value)| !value.is_empty()))
        .finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn writes_from_another_origin_are_refused() {
        let uri = Uri::from_static("/console/keys");
        let own = headers(&[
            (header::HOST, "kith.example:8080"),
            (header::ORIGIN, "https://kith.example:8080"),
        ]);
        assert!(from_own_origin(&own, &uri));
        assert!(from_own_origin(
            &headers(&[(header::HOST, "kith.example")]),
            &uri
        ));
        for origin in ["https://evil.example", "null", "https://kith.example:8081"] {
            let foreign = headers(&[
                (header::HOST, "kith.example:8080"),
                (header::ORIGIN, origin),
            ]);
            assert!(!from_own_origin(&foreign, &uri), "{origin}");
        }
    }

    #[test]
    fn links_encode_their_parameters_and_drop_empty_ones() {
        assert_eq!(
            href(
                "/console/customers",
                &[("q", "a&b <c>"), ("type", ""), ("page", "x")]
            ),
            "/console/customers?q=a%26b+%3Cc%3E&page=x"
        );
        assert_eq!(href("/console/people", &[("q", "")]), "/console/people");
    }
}
