//! Arbitrary bodies to the gateway's write routes, through the real router
//! and a real (SQLite) store: no panic, and never a 5xx. A hostile body is
//! the caller's error, whatever it holds.

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct Gateway {
    runtime: tokio::runtime::Runtime,
    router: Router,
    key: String,
    workspace: String,
    _dir: tempfile::TempDir,
}

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::TempDir::new().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let (router, key, workspace) = runtime.block_on(async {
            let store = kith::store::Store::connect(&url).await.expect("a store");
            let service = kith::service::Service::new(store);
            let (workspace, key) = service.bootstrap().await.expect("bootstrap").expect("fresh");
            let authenticator = kith::auth::Authenticator::new(service.clone(), None);
            (
                // Plaintext: the console's cookies are not `Secure`.
                kith::api::rest::router(service, authenticator, &Default::default(), false),
                key.reveal().to_owned(),
                workspace.id.to_string(),
            )
        });
        Gateway {
            runtime,
            router,
            key,
            workspace,
            _dir: dir,
        }
    })
}

/// The write routes, each with the header its family reads the key from.
const ROUTES: [(&str, &str, &str); 11] = [
    ("POST", "/kith/v1/customers", "authorization"),
    ("POST", "/kith/v1/people:batchUpsert", "authorization"),
    ("POST", "/kith/v1/users:upsert", "authorization"),
    ("POST", "/api/v1/workspaces/{ws}/people/batch", "authorization"),
    ("POST", "/api/v1/people", "authorization"),
    ("POST", "/api/customers", "authorization"),
    ("PATCH", "/api/customers/external/fuzz", "authorization"),
    ("POST", "/api/v1-beta/customers/fuzz/entities", "x-api-key"),
    ("POST", "/api/v1-beta/entity-types", "x-api-key"),
    ("POST", "/users", "x-schematic-api-key"),
    ("POST", "/companies", "x-schematic-api-key"),
];

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (route, body) = input;
    let gateway = gateway();
    let (method, path, header) = ROUTES[usize::from(route) % ROUTES.len()];
    let key = if header == "authorization" {
        format!("Bearer {}", gateway.key)
    } else {
        gateway.key.clone()
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path.replace("{ws}", &gateway.workspace))
        .header(header, key)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("a request");
    let response = gateway
        .runtime
        .block_on(gateway.router.clone().oneshot(request))
        .expect("the router is infallible");
    assert!(
        !response.status().is_server_error(),
        "{method} {path} answered {}",
        response.status()
    );
});
