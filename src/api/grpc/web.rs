//! gRPC-Web for browsers, on the gRPC listener: tonic-web translates the
//! calls, and a CORS layer answers preflights for the origins the operator
//! allowed (`--cors-origin`), none by default.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Uri};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a gRPC-Web client sends: its framing headers, the
/// deadline and the API key.
const REQUEST_HEADERS: [&str; 5] = [
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    "x-kith-at-least",
];

/// Response headers a script may read: the status, its message and details
/// (the `google.rpc.Status` with `BadRequest` and `ErrorInfo`), and the
/// cursor a write answers with.
const EXPOSED_HEADERS: [&str; 5] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "x-kith-cursor",
];

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS policy of the gRPC listener: exactly `origins` may call from a
/// page, with credentials in the `authorization` header (never cookies).
pub fn browser_cors(origins: &[HeaderValue]) -> CorsLayer {
    let static_header = |name: &'static str| HeaderName::from_static(name);
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(
            REQUEST_HEADERS
                .into_iter()
                .map(static_header)
                .chain([AUTHORIZATION, CONTENT_TYPE])
                .collect::<Vec<_>>(),
        )
        .expose_headers(EXPOSED_HEADERS.map(static_header))
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Parses one `--cors-origin`: a browser origin, `scheme://host[:port]`,
/// exactly as browsers send it in `Origin`.
pub fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("`{text}` is not an origin such as https://app.example.com"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() {
        return Err(format!(
            "`{text}` is not an origin: write scheme and host, such as https://app.example.com"
        ));
    }
    // `Uri` reads `https://a.example` and `https://a.example/` alike; an
    // `Origin` header never has the slash, so one here would never match.
    if text.ends_with('/') || uri.path() != "/" || uri.query().is_some() {
        return Err(format!(
            "`{text}` is not an origin: an origin has no path, such as https://app.example.com"
        ));
    }
    HeaderValue::from_str(text).map_err(|_| format!("`{text}` is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_are_scheme_and_host_only() {
        assert!(parse_origin("https://app.example.com").is_ok());
        assert!(parse_origin("http://127.0.0.1:5173").is_ok());
        for wrong in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/console",
            "ftp://app.example.com",
            "*",
            "",
        ] {
            assert!(parse_origin(wrong).is_err(), "{wrong} accepted");
        }
    }
}
