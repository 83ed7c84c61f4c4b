//! The web console over plain HTTP on both backends: sign-in and its
//! cookie, pages refused without a session or with a revoked key, CSRF and
//! same-origin checks on every form, the headers every page carries,
//! escaping, and one workspace never seeing another's records. Then the
//! whole flow in headless Chromium (`tests/browser/console.mjs`).

use std::process::Command;

use kith::pb::kith::v1::{self as pb, CreateCustomerRequest};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{StatusCode, redirect};

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    pages_need_a_session_and_a_signed_in_key_sees_its_records,
    a_wrong_key_is_refused_and_a_revoked_keys_session_ends,
    every_form_needs_its_token_and_the_consoles_own_origin,
    records_are_escaped_and_another_workspace_sees_none_of_them,
    the_browser_signs_in_searches_reads_history_and_signs_out,
);

/// A client that shows redirects instead of following them and keeps no
/// cookies: each test says which cookie it sends.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of a form's hidden `csrf` field in `page`.
fn form_token(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a form with a token") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("a closing quote")
        .to_owned()
}

/// `name=value` of the cookie `name` a response sets, and the whole header.
fn cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|header| {
            let pair = header.split(';').next().unwrap_or_default().to_owned();
            (pair, header.to_owned())
        })
}

/// Signs in with `key` through the form, as a browser does; returns the
/// session cookie (`kith_console=…`).
async fn sign_in(app: &TestApp, key: &str) -> String {
    let http = client();
    let form = http
        .get(format!("{}/console/sign-in", app.rest))
        .send()
        .await
        .unwrap();
    let (csrf_cookie, _) = cookie(&form, "kith_console_csrf").expect("the form's own cookie");
    let token = form_token(&form.text().await.unwrap());
    let signed_in = http
        .post(format!("{}/console/sign-in", app.rest))
        .header(COOKIE, csrf_cookie)
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()[LOCATION], "/console/customers");
    let (session, header) = cookie(&signed_in, "kith_console").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.contains("Secure"), "plain HTTP here: {header}");
    session
}

async fn page(app: &TestApp, path: &str, session: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("{}{path}", app.rest));
    if let Some(session) = session {
        request = request.header(COOKIE, session);
    }
    request.send().await.unwrap()
}

async fn create_customer(app: &TestApp, name: &str, email: &str) -> String {
    app.customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(pb::Customer {
                name: Some(name.to_owned()),
                email: Some(email.to_owned()),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap()
        .id
}

async fn pages_need_a_session_and_a_signed_in_key_sees_its_records(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let ada = create_customer(&app, "Ada Lovelace", "ada@example.com").await;
    create_customer(&app, "Grace Hopper", "grace@example.com").await;
    for path in [
        "/console",
        "/console/customers",
        &format!("/console/customers/{ada}"),
        "/console/people",
        "/console/keys",
    ] {
        let response = page(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        let to = response.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(to.starts_with("/console/"), "{path} → {to}");
    }
    let refused = page(&app, "/console/customers", None).await;
    assert_eq!(refused.headers()[LOCATION], "/console/sign-in");

    let session = sign_in(&app, &app.key).await;
    let list = page(&app, "/console/customers?q=LOVELACE", Some(&session)).await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(
        list.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("default-src 'self'")
    );
    let body = list.text().await.unwrap();
    assert!(body.contains("Ada Lovelace"), "{body}");
    assert!(!body.contains("Grace Hopper"), "the search filters");
    let detail = page(&app, &format!("/console/customers/{ada}"), Some(&session)).await;
    assert_eq!(detail.status(), StatusCode::OK);
    let body = detail.text().await.unwrap();
    assert!(body.contains("ada@example.com"), "{body}");
    assert!(body.contains("History"), "{body}");
    for path in [
        "/console/users",
        "/console/companies",
        "/console/people",
        "/console/entity-types",
        "/console/keys",
    ] {
        let response = page(&app, path, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let missing = page(
        &app,
        "/console/customers/00000000-0000-7000-8000-000000000000",
        Some(&session),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn a_wrong_key_is_refused_and_a_revoked_keys_session_ends(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let http = client();
    let form = http
        .get(format!("{}/console/sign-in", app.rest))
        .send()
        .await
        .unwrap();
    let (csrf_cookie, _) = cookie(&form, "kith_console_csrf").unwrap();
    let token = form_token(&form.text().await.unwrap());
    let refused = http
        .post(format!("{}/console/sign-in", app.rest))
        .header(COOKIE, &csrf_cookie)
        .form(&[("key", "kith_not-a-key"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie(&refused, "kith_console").is_none());
    assert!(refused.text().await.unwrap().contains("not accepted"));

    // A second key signs in; the first revokes it from the keys page.
    let workspace = app
        .service
        .find_workspace("default")
        .await
        .unwrap()
        .unwrap();
    let second = app.service.create_api_key(workspace.id).await.unwrap();
    let doomed = sign_in(&app, second.reveal()).await;
    assert_eq!(
        page(&app, "/console/customers", Some(&doomed))
            .await
            .status(),
        StatusCode::OK
    );
    let admin = sign_in(&app, &app.key).await;
    let keys = page(&app, "/console/keys", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    let token = form_token(&keys);
    let revoked = client()
        .post(format!("{}/console/keys/{}/revoke", app.rest, second.id))
        .header(COOKIE, &admin)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let after = page(&app, "/console/customers", Some(&doomed)).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()[LOCATION], "/console/sign-in");
    assert_eq!(
        page(&app, "/console/customers", Some(&admin))
            .await
            .status(),
        StatusCode::OK
    );
}

async fn every_form_needs_its_token_and_the_consoles_own_origin(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let session = sign_in(&app, &app.key).await;
    let keys_before = app
        .service
        .list_api_keys(app_workspace(&app).await)
        .await
        .unwrap()
        .len();
    let post = |token: Option<&str>, origin: Option<&str>| {
        let mut request = client()
            .post(format!("{}/console/keys", app.rest))
            .header(COOKIE, &session);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let form: Vec<(&str, &str)> = token.map(|t| vec![("csrf", t)]).unwrap_or_default();
        request.form(&form).send()
    };
    let missing = post(None, None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let forged = post(Some("AAAA"), None).await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let token = form_token(
        &page(&app, "/console/keys", Some(&session))
            .await
            .text()
            .await
            .unwrap(),
    );
    let elsewhere = post(Some(&token), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.service
            .list_api_keys(app_workspace(&app).await)
            .await
            .unwrap()
            .len(),
        keys_before,
        "a refused form changed nothing"
    );
    // The same form from the console's own page creates a key, shown once.
    let own_origin = app.rest.clone();
    let created = post(Some(&token), Some(&own_origin)).await.unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let body = created.text().await.unwrap();
    assert!(
        body.contains("kith_"),
        "the new key's secret is on the page"
    );
    assert_eq!(
        app.service
            .list_api_keys(app_workspace(&app).await)
            .await
            .unwrap()
            .len(),
        keys_before + 1
    );
    // Signing out needs the token too, and ends the cookie.
    let out = client()
        .post(format!("{}/console/sign-out", app.rest))
        .header(COOKIE, &session)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (_, cleared) = cookie(&out, "kith_console").expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

async fn app_workspace(app: &TestApp) -> kith::domain::WorkspaceId {
    app.service
        .find_workspace("default")
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn records_are_escaped_and_another_workspace_sees_none_of_them(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let hostile = create_customer(&app, "<script>alert(1)</script>", "xss@example.com").await;
    let session = sign_in(&app, &app.key).await;
    for path in [
        "/console/customers".to_owned(),
        format!("/console/customers/{hostile}"),
    ] {
        let body = page(&app, &path, Some(&session))
            .await
            .text()
            .await
            .unwrap();
        // Escaped as askama does, with numeric character references.
        assert!(
            body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {body}"
        );
        assert!(!body.contains("<script>alert(1)"), "{path}");
    }

    let other_key = app.other_workspace_key().await;
    let theirs = sign_in(&app, &other_key).await;
    let list = page(&app, "/console/customers", Some(&theirs))
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains("xss@example.com"));
    let detail = page(
        &app,
        &format!("/console/customers/{hostile}"),
        Some(&theirs),
    )
    .await;
    assert_eq!(detail.status(), StatusCode::NOT_FOUND);
    let keys = page(&app, "/console/keys", Some(&theirs))
        .await
        .text()
        .await
        .unwrap();
    let mine = app
        .service
        .list_api_keys(app_workspace(&app).await)
        .await
        .unwrap();
    assert!(
        !keys.contains(&mine[0].id.to_string()),
        "another workspace's keys"
    );
    // Nor can it revoke one: the key is as unknown as a made-up one.
    let token = form_token(&keys);
    let revoke = client()
        .post(format!("{}/console/keys/{}/revoke", app.rest, mine[0].id))
        .header(COOKIE, &theirs)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        page(&app, "/console/customers", Some(&session))
            .await
            .status(),
        StatusCode::OK,
        "the key still works"
    );
}

/// Chromium and `playwright-core` (installed in tests/browser), when both
/// are here; with `KITH_REQUIRE_BROWSER=1` their absence fails.
fn browser() -> Option<String> {
    let chromium = std::env::var("KITH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let playwright = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/node_modules/playwright-core"
    );
    let present =
        std::path::Path::new(&chromium).exists() && std::path::Path::new(playwright).exists();
    let required = std::env::var("KITH_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        present || !required,
        "KITH_REQUIRE_BROWSER=1 but {chromium} or {playwright} is missing"
    );
    if !present {
        eprintln!("==== browser test SKIPPED: no Chromium or playwright-core ====");
    }
    present.then_some(chromium)
}

async fn the_browser_signs_in_searches_reads_history_and_signs_out(backend: Backend) {
    let Some(chromium) = browser() else { return };
    let app = require!(TestApp::spawn(backend).await);
    let screenshots = std::env::var("KITH_SCREENSHOTS").ok();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console.mjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("KITH_REST", &app.rest)
        .env("KITH_KEY", &app.key)
        .env("KITH_CHROMIUM", chromium);
    // One backend's screenshots are enough for the README.
    if let (Some(dir), Backend::Sqlite) = (screenshots, backend) {
        command.env("KITH_SCREENSHOTS", dir);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
