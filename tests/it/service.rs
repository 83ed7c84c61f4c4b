//! The server as operators and tools see it: keys, reflection, health.

use std::time::Duration;

use kith::domain::workspace::{ApiKeyId, PresentedKey};
use kith::pb::kith::v1::{ListCustomersRequest, customer_service_client::CustomerServiceClient};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::grpc_support::error_of;
use crate::harness::{Backend, TestApp, backend_tests, require, spawn_behind_proxy};

backend_tests!(
    calls_without_a_valid_key_are_unauthenticated,
    x_api_key_header_is_accepted,
    reflection_lists_the_services_without_a_key,
    health_reports_serving_without_a_key,
    stopping_drains_and_exits_cleanly,
);

async fn calls_without_a_valid_key_are_unauthenticated(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let other = app.other_workspace_key().await;
    let revoked_id = PresentedKey::parse(&other).unwrap().id;
    app.service.revoke_api_key(revoked_id).await.unwrap();
    let mut forged = app.key.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for key in [
        None,
        Some("garbage"),
        Some(forged.as_str()),
        Some(other.as_str()),
    ] {
        let result = app
            .customers_with(key)
            .list_customers(ListCustomersRequest::default())
            .await;
        let (code, reason, _) = error_of(result);
        assert_eq!(code, Code::Unauthenticated, "key {key:?}");
        assert_eq!(reason, "ERROR_REASON_UNAUTHENTICATED");
    }
    app.customers()
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap();
}

async fn x_api_key_header_is_accepted(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let key: tonic::metadata::AsciiMetadataValue = app.key.parse().unwrap();
    let mut client = CustomerServiceClient::with_interceptor(
        app.channel(),
        move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("x-api-key", key.clone());
            Ok(request)
        },
    );
    client
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap();
}

async fn reflection_lists_the_services_without_a_key(backend: Backend) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = require!(TestApp::spawn(backend).await);
    let mut client = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"kith.v1.CustomerService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    // The v1alpha protocol (older grpcurl) answers too.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = AlphaClient::new(app.channel());
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::FileContainingSymbol(
            "kith.v1.CustomerService".into(),
        )),
    };
    let mut responses = alpha
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    assert!(
        responses
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .is_some()
    );
}

async fn health_status(app: &TestApp, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(app.channel());
    let response = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

async fn health_reports_serving_without_a_key(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    for service in ["", "kith.v1.CustomerService"] {
        assert_eq!(health_status(&app, service).await, ServingStatus::Serving);
    }
}

async fn stopping_drains_and_exits_cleanly(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = app.customers();
    client
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap();
    app.stop().await;
    let refused = || {
        let mut client = client.clone();
        async move {
            match client.list_customers(ListCustomersRequest::default()).await {
                Err(status) => status.code(),
                Ok(_) => panic!("a stopped server answered"),
            }
        }
    };
    // A call racing the connection's close is reset by the client's own
    // HTTP/2 stack (CANCELLED) before it has read the server's GOAWAY; once
    // it has, every call finds no server: UNAVAILABLE, which clients retry.
    let first = refused().await;
    assert!(
        matches!(first, Code::Unavailable | Code::Cancelled),
        "{first:?}"
    );
    assert_eq!(refused().await, Code::Unavailable, "new calls are refused");
}

/// PostgreSQL only: the outage is a cut in a proxy between Kith and the
/// database, so Kith sees refused and dropped connections as in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_down_and_back_up() {
    let (app, proxy) = require!(spawn_behind_proxy().await);
    assert_eq!(health_status(&app, "").await, ServingStatus::Serving);
    proxy.set_up(false);
    assert_eq!(
        wait_for(&app, ServingStatus::NotServing).await,
        ServingStatus::NotServing
    );
    let (code, reason, _) = error_of(
        app.customers()
            .list_customers(ListCustomersRequest::default())
            .await,
    );
    assert_eq!(code, Code::Unavailable, "retryable, never internal");
    assert_eq!(reason, "ERROR_REASON_STORE_UNAVAILABLE");

    proxy.set_up(true);
    assert_eq!(
        wait_for(&app, ServingStatus::Serving).await,
        ServingStatus::Serving
    );
    app.customers()
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap();
}

/// PostgreSQL only: the database goes away under four writers and comes
/// back. Every failed call is UNAVAILABLE, none outlives its deadline, the
/// writers succeed again by themselves, and every acknowledged write is
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_write_load_loses_no_acknowledged_write() {
    use kith::pb::kith::v1::{BatchUpsertPeopleRequest, PersonUpsert};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let (app, proxy) = require!(spawn_behind_proxy().await);
    let running = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let client = app.people();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (mut client, running) = (client.clone(), running.clone());
            let (acknowledged, failures) = (acknowledged.clone(), failures.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while running.load(Ordering::Relaxed) {
                    let ids: Vec<String> = (0..10)
                        .map(|i| format!("w{writer}-b{batch}-p{i}"))
                        .collect();
                    let people = ids
                        .iter()
                        .map(|id| PersonUpsert {
                            user_id: id.clone(),
                            ..PersonUpsert::default()
                        })
                        .collect();
                    let mut request = tonic::Request::new(BatchUpsertPeopleRequest { people });
                    request.set_timeout(Duration::from_secs(10));
                    match client.batch_upsert_people(request).await {
                        Ok(_) => acknowledged.lock().unwrap().extend(ids),
                        Err(status) => {
                            failures.lock().unwrap().push(status.code());
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    let written = || acknowledged.lock().unwrap().len();
    // Waits for a condition, bounded so that a broken service fails the
    // test instead of hanging it.
    async fn until(done: impl Fn() -> bool, what: &str) {
        for _ in 0..6_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} never happened");
    }
    until(|| written() >= 200, "200 acknowledged writes").await;
    proxy.set_up(false);
    assert_eq!(
        wait_for(&app, ServingStatus::NotServing).await,
        ServingStatus::NotServing
    );
    until(|| failures.lock().unwrap().len() >= 8, "8 failed calls").await;
    proxy.set_up(true);
    assert_eq!(
        wait_for(&app, ServingStatus::Serving).await,
        ServingStatus::Serving
    );
    let after_outage = written();
    until(
        || written() >= after_outage + 200,
        "200 writes after the outage",
    )
    .await;
    running.store(false, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.iter().all(|code| *code == Code::Unavailable),
        "every failure is UNAVAILABLE (retryable, within the deadline): {failures:?}"
    );
    let stored = crate::grpc_support::stored_person_ids(app.channel(), &app.key).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .count();
    assert_eq!(lost, 0, "of {} acknowledged people", acknowledged.len());
}

async fn wait_for(app: &TestApp, wanted: ServingStatus) -> ServingStatus {
    let mut status = health_status(app, "kith.v1.CustomerService").await;
    for _ in 0..100 {
        if status == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = health_status(app, "kith.v1.CustomerService").await;
    }
    status
}

#[test]
fn key_ids_print_as_they_parse() {
    let id = ApiKeyId(uuid::Uuid::new_v4());
    assert_eq!(ApiKeyId::parse(&id.to_string()).unwrap(), id);
}
