//! Startup and wiring: the store, the bootstrap key, health, reflection, the
//! gRPC server and the REST listener, all stopped by one shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;

use crate::api::grpc::{RequireApiKey, browser_cors};
use crate::api::observe::{GrpcMetricsLayer, RequestSpans, Transport};
use crate::api::operations::{self, Operations, Readiness};
use crate::auth::Authenticator;
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::{ReplicaState, Store};
use crate::tls::{self, Certificates, TlsListener};

/// The gRPC services health reports on, by their full names.
const SERVICES: [&str; 5] = [
    "kith.v1.ChangeService",
    "kith.v1.CustomerService",
    "kith.v1.EntityService",
    "kith.v1.PeopleService",
    "kith.v1.UserService",
];

/// The health service name that says whether every read replica serves
/// reads. The server's own status ("") stays SERVING without them.
pub const REPLICAS_HEALTH: &str = "kith.ReadReplicas";

pub struct Application {
    service: Service,
    grpc: TcpListener,
    rest: Option<TcpListener>,
    /// The operator's listener: metrics and probes.
    operations_listener: Option<TcpListener>,
    ops: Operations,
    /// TLS on both listeners, when configured.
    certificates: Option<Certificates>,
    /// SIGHUP, listened for from the start so that one sent early
    /// reloads rather than ends the process.
    #[cfg(unix)]
    hangups: tokio::signal::unix::Signal,
    tls_watch_interval: Duration,
    bootstrap_key: Option<String>,
    health_interval: Duration,
    drain_timeout: Duration,
    cors_origins: Vec<HeaderValue>,
    authenticator: Authenticator,
    webhook_sender: Arc<dyn crate::service::WebhookSender>,
}

impl Application {
    /// Opens and migrates the database, creates the first workspace and key
    /// on an empty one, and binds both listeners (port 0 picks a free port).
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        // Bad TLS files stop the start before anything else is opened.
        let certificates = config
            .tls
            .clone()
            .map(Certificates::load)
            .transpose()
            .context("loading the TLS files")?;
        // Listened for from here on, whether or not there is TLS: SIGHUP's
        // default is to end the process, and logrotate sends it.
        #[cfg(unix)]
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let store = Store::connect(&config.database_url)
            .await
            .context("opening the database")?
            .reading_from_replicas(&config.read_replicas.urls, config.read_replicas.max_lag)
            .context("opening the read replicas")?;
        store
            .rebuild_search_documents()
            .await
            .context("rebuilding search documents")?;
        let metrics = config.metrics.then(|| Metrics::new(&store));
        let (store, service_metrics) = match &metrics {
            Some(metrics) => (
                store.timing_statements(metrics.statements()),
                metrics.service(),
            ),
            None => (store, crate::metrics::ServiceMetrics::default()),
        };
        let service = Service::with_change_log(store, config.change_log)
            .with_webhooks(config.webhooks)
            .counting_into(service_metrics);
        let webhook_sender = crate::api::webhooks::HttpSender::new(config.webhooks.allow_private)
            .context("building the webhook client")?;
        let certificates = match (certificates, &metrics) {
            (Some(certificates), Some(metrics)) => {
                Some(certificates.counting_reloads(metrics.tls_reloads()))
            }
            (certificates, _) => certificates,
        };
        let bootstrap_key = service.bootstrap().await?.map(|(workspace, key)| {
            tracing::info!(workspace = %workspace.id, key_id = %key.id, "created the default workspace and its first key");
            key.reveal().to_owned()
        });
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", config.grpc_addr))?;
        let rest = bind_optional(config.rest_addr, "REST").await?;
        let operations_listener = bind_optional(config.metrics_addr, "metrics").await?;
        let mut authenticator = Authenticator::new(service.clone(), config.rate_limit);
        if let Some(metrics) = &metrics {
            authenticator = authenticator.counting_refusals(metrics.rate_limited());
        }
        Ok(Self {
            service,
            grpc,
            rest,
            operations_listener,
            ops: Operations {
                metrics,
                readiness: Readiness::default(),
            },
            certificates,
            #[cfg(unix)]
            hangups,
            tls_watch_interval: config.tls_watch_interval,
            bootstrap_key,
            health_interval: config.health_interval,
            drain_timeout: config.drain_timeout,
            cors_origins: config.cors_origins.clone(),
            authenticator,
            webhook_sender: Arc::new(webhook_sender),
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The metrics and probes listener's address, with `--metrics-addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.operations_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The key created by the first start on an empty database, to be shown
    /// once.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    pub fn service(&self) -> Service {
        self.service.clone()
    }

    /// Serves until `shutdown` completes: then health turns NOT_SERVING,
    /// listeners stop accepting, and in-flight calls are drained.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health {
            reporter,
            readiness: self.ops.readiness.clone(),
            metrics: self.ops.metrics.clone(),
            draining: Arc::default(),
        };
        // Both versions: `buf curl` and new grpcurl speak v1, older grpcurl v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        // Health answers for every service from the first call on, and
        // replicas that answer serve reads from the first call on.
        let healthy = database_answers(&self.service, self.health_interval).await;
        health.set(healthy).await;
        health
            .replicas(&check_replicas(&self.service, self.health_interval).await)
            .await;
        let (stopping_tx, stopping) = watch::channel(false);
        let watchdog = tokio::spawn(watch_database(
            self.service.clone(),
            health.clone(),
            healthy,
            self.health_interval,
            stopping.clone(),
        ));

        // The change log's keepers: pruning, and wake-ups from other
        // replicas' commits.
        let pruner = tokio::spawn(self.service.clone().prune_changes_forever());
        let relay = tokio::spawn(self.service.clone().relay_other_replicas_changes());
        // Webhook delivery, until the shutdown signal ends it (with the
        // watches): each endpoint's progress recorded and its lease given
        // back for another replica.
        let webhooks = tokio::spawn(
            self.service
                .clone()
                .deliver_webhooks_forever(self.webhook_sender.clone()),
        );

        let signal_health = health.clone();
        let watches = self.service.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight calls");
            signal_health.drain().await;
            let _ = stopping_tx.send(true);
            watches.end_watches();
        });

        let rest_addr = self.rest_addr();
        let metrics_addr = self.metrics_addr();
        let authenticator = self.authenticator;
        let reloaders = keep_certificates_fresh(
            self.certificates.clone(),
            #[cfg(unix)]
            self.hangups,
            self.tls_watch_interval,
        );
        let rest = self.rest.map(|listener| {
            let router = crate::api::rest::router(
                self.service.clone(),
                authenticator.clone(),
                &self.ops,
                self.certificates.is_some(),
            );
            tokio::spawn(serve_rest(
                listener,
                router,
                self.certificates.clone(),
                stopping.clone(),
            ))
        });

        // Up until every call has drained, so that probes see the drain.
        let (operations_stop, operations_stopped) = tokio::sync::oneshot::channel::<()>();
        let operations = self.operations_listener.map(|listener| {
            let router = operations::routes::<()>(&self.ops);
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = operations_stopped.await;
                    })
                    .await
            })
        });

        tracing::info!(
            grpc = %self.grpc.local_addr()?,
            rest = rest_addr.map(tracing::field::display),
            metrics = metrics_addr.map(tracing::field::display),
            tls = self.certificates.is_some(),
            backend = self.service.store().backend(),
            "serving"
        );
        let grpc = Server::builder()
            // Browsers speak gRPC-Web over HTTP/1.1 as well as HTTP/2.
            .accept_http1(true)
            .layer(browser_cors(&self.cors_origins))
            .layer(GrpcWebLayer::new())
            .layer(GrpcMetricsLayer(self.ops.metrics.clone()))
            .layer(RequestSpans(Transport::Grpc))
            .layer(RequireApiKey::new(authenticator))
            .add_routes(
                crate::api::grpc::contract(&self.service)
                    .add_service(health_service)
                    .add_service(reflection_v1)
                    .add_service(reflection_v1alpha),
            );
        let stop = stopped(stopping.clone());
        let grpc: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match &self.certificates {
                Some(certificates) => {
                    let connections =
                        tls::accept(self.grpc, certificates.clone(), stopping.clone());
                    let incoming = ReceiverStream::new(connections)
                        .map(|(connection, _peer)| Ok::<_, std::io::Error>(connection));
                    Box::pin(grpc.serve_with_incoming_shutdown(incoming, stop))
                }
                // Without TCP_NODELAY a small reply can wait for the peer's
                // delayed ACK: about 40 ms on Linux.
                None => Box::pin(grpc.serve_with_incoming_shutdown(
                    TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                    stop,
                )),
            };
        let rest_abort = rest.as_ref().map(tokio::task::JoinHandle::abort_handle);
        let serving = async {
            grpc.await.context("serving gRPC")?;
            if let Some(rest) = rest {
                rest.await?.context("serving REST")?;
            }
            anyhow::Ok(())
        };
        // A call that never ends (a stream its client keeps open) must not
        // hold the process: past the drain time it is cut off.
        let drain_timeout = self.drain_timeout;
        let drain_deadline = async move {
            stopped(stopping).await;
            tokio::time::sleep(drain_timeout).await;
        };
        tokio::select! {
            served = serving => served?,
            () = drain_deadline => {
                tracing::warn!(
                    drain_timeout_secs = drain_timeout.as_secs_f64(),
                    "calls still in flight after the drain time are cut off"
                );
                if let Some(rest) = rest_abort {
                    rest.abort();
                }
            }
        }
        // Deliverers finish the attempt in flight (10 s at most) and give
        // their leases back; past the drain time they are cut off, and
        // their leases expire instead.
        let webhooks_abort = webhooks.abort_handle();
        if tokio::time::timeout(self.drain_timeout, webhooks)
            .await
            .is_err()
        {
            webhooks_abort.abort();
        }
        watchdog.abort();
        pruner.abort();
        relay.abort();
        for reloader in reloaders {
            reloader.abort();
        }
        let _ = operations_stop.send(());
        if let Some(operations) = operations {
            operations.await?.context("serving metrics")?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Serves the REST gateway on `listener`, over TLS with `certificates`,
/// until `stopping`.
async fn serve_rest(
    listener: TcpListener,
    router: axum::Router,
    certificates: Option<Certificates>,
    stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stop = stopped(stopping.clone());
    match certificates {
        Some(certificates) => {
            let local_addr = listener.local_addr()?;
            let connections = tls::accept(listener, certificates, stopping);
            axum::serve(TlsListener::new(connections, local_addr), router)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "could not set TCP_NODELAY");
                }
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

/// Binds `addr`, if given; `what` names it in the error.
async fn bind_optional(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .with_context(|| format!("binding the {what} address {addr}")),
        None => Ok(None),
    }
}

/// Reloads the certificates on SIGHUP and when their files change. Without
/// TLS, a SIGHUP is only logged.
fn keep_certificates_fresh(
    certificates: Option<Certificates>,
    #[cfg(unix)] mut hangups: tokio::signal::unix::Signal,
    watch_interval: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(certificates) = certificates else {
        #[cfg(unix)]
        return vec![tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: no TLS files to reload");
            }
        })];
        #[cfg(not(unix))]
        return Vec::new();
    };
    vec![
        #[cfg(unix)]
        tokio::spawn(certificates.clone().reload_on_hangup(hangups)),
        tokio::spawn(certificates.reload_on_change(watch_interval)),
    ]
}

/// Where the server says whether it takes calls: gRPC health (for every
/// service), `/readyz`, and the `kith_serving` gauge, always together.
#[derive(Clone)]
struct Health {
    reporter: HealthReporter,
    readiness: Readiness,
    metrics: Option<Metrics>,
    /// Set once the server drains; held while the state is written, so a
    /// database check finishing after the drain began cannot undo it.
    draining: Arc<tokio::sync::Mutex<bool>>,
}

impl Health {
    /// The database's state, unless the server is draining.
    async fn set(&self, database_answers: bool) {
        let draining = self.draining.lock().await;
        self.publish(database_answers && !*draining).await;
    }

    /// Not serving, from now on.
    async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.publish(false).await;
    }

    /// What the read replicas' check found: a replica out of rotation
    /// leaves the server serving (the primary takes its reads) but
    /// degraded, which `/readyz` says, and the `kith.ReadReplicas` health
    /// service as NOT_SERVING.
    async fn replicas(&self, states: &[ReplicaState]) {
        if states.is_empty() {
            return;
        }
        let out: Vec<String> = states
            .iter()
            .filter(|state| !state.in_rotation)
            .map(|state| {
                let why = state.trouble.as_deref().unwrap_or("out of rotation");
                format!("read replica {} out of rotation ({why})", state.name)
            })
            .collect();
        let status = if out.is_empty() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter
            .set_service_status(REPLICAS_HEALTH, status)
            .await;
        self.readiness
            .set_degraded((!out.is_empty()).then(|| out.join("; ")));
        if let Some(metrics) = &self.metrics {
            metrics.set_replicas(states);
        }
    }

    async fn publish(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
        self.readiness.set(serving);
        if let Some(metrics) = &self.metrics {
            metrics.set_serving(serving);
        }
    }
}

async fn database_answers(service: &Service, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, service.ping()).await,
        Ok(Ok(()))
    )
}

/// Checks the read replicas, allowing each at least a second to answer: a
/// check cut short drops its connection, and a quick health interval on a
/// loaded machine would otherwise take healthy standbys out.
async fn check_replicas(service: &Service, interval: Duration) -> Vec<ReplicaState> {
    const SHORTEST_CHECK: Duration = Duration::from_secs(1);
    service
        .store()
        .check_replicas(interval.max(SHORTEST_CHECK))
        .await
}

/// Pings the database every `interval` and mirrors the answer in health:
/// NOT_SERVING while it is unreachable, SERVING again once it answers. Each
/// read replica is checked as often, and put in or out of rotation.
async fn watch_database(
    service: Service,
    health: Health,
    mut serving: bool,
    interval: Duration,
    stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::time::sleep(interval).await;
        if *stopping.borrow() {
            return;
        }
        let healthy = database_answers(&service, interval).await;
        health
            .replicas(&check_replicas(&service, interval).await)
            .await;
        if healthy != serving {
            if healthy {
                tracing::info!("database reachable again: serving");
            } else {
                tracing::warn!("database unreachable: not serving");
            }
            health.set(healthy).await;
            serving = healthy;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
