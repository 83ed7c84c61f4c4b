//! Test databases on both backends, and the real server on a free port.
//!
//! PostgreSQL comes from `KITH_TEST_POSTGRES_URL` (a server where the tests
//! may create databases) or, failing that, from a throwaway server started
//! with Debian's binaries. Without either the PostgreSQL half is skipped,
//! loudly; with `KITH_REQUIRE_POSTGRES=1` (CI) that is a failure instead.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use kith::config::{
    ChangeLogConfig, RateLimit, ReadReplicas, RetryPolicy, ServeConfig, TlsFiles, WebhookConfig,
};
use kith::domain::workspace::WorkspaceName;
use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::entity_service_client::EntityServiceClient;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::user_service_client::UserServiceClient;
use kith::pb::kith::v1::webhook_service_client::WebhookServiceClient;
use kith::server::Application;
use kith::service::Service;
use kith::store::Store;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The one web origin test servers let call over gRPC-Web (`--cors-origin`).
pub const BROWSER_ORIGIN: &str = "http://console.test:5173";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one backend, removed with the value.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A database a test made elsewhere (on a server of its own).
    pub fn existing(url: String) -> Self {
        Self { url, _dir: None }
    }

    /// `None` when the backend is not available here (PostgreSQL only).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("kith.db").display());
                Some(Self {
                    url,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let server = postgres_server()?;
                let url = kith::throwaway_postgres::create_database(&server)
                    .await
                    .expect("create a test database");
                Some(Self { url, _dir: None })
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .expect("open the test store")
    }

    pub async fn service(&self) -> Service {
        Service::new(self.store().await)
    }
}

/// The base URL (no database) of the PostgreSQL server tests use.
fn postgres_server() -> Option<String> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let found = std::env::var("KITH_TEST_POSTGRES_URL")
                .ok()
                .map(|url| url.trim_end_matches('/').to_owned())
                .or_else(kith::throwaway_postgres::start);
            if found.is_none() {
                let required = std::env::var("KITH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "KITH_REQUIRE_POSTGRES=1 but no PostgreSQL server is available"
                );
                // Straight to stderr: libtest captures print macros, not this.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n==== PostgreSQL half SKIPPED: no server. Set KITH_TEST_POSTGRES_URL or \
                     install Debian's `postgresql` package (see README). ====\n"
                );
            }
            found
        })
        .clone()
}

/// How test servers run: free ports on 127.0.0.1 (metrics and probes on
/// their own), quick health checks, metrics on, plaintext.
pub fn serve_config(database_url: String) -> ServeConfig {
    ServeConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        rest_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url,
        read_replicas: ReadReplicas::default(),
        health_interval: Duration::from_millis(200),
        drain_timeout: Duration::from_secs(10),
        rate_limit: None,
        change_log: ChangeLogConfig::default(),
        cors_origins: vec![http::HeaderValue::from_static(BROWSER_ORIGIN)],
        metrics: true,
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        tls: None,
        tls_watch_interval: Duration::from_secs(10),
        webhooks: test_webhooks(),
    }
}

/// Webhooks as tests deliver them: to receivers on loopback, claimed
/// within 100 ms, retried within a fraction of a second, never given up on
/// unless a test says so, and a lease short enough to see taken over.
pub fn test_webhooks() -> WebhookConfig {
    WebhookConfig {
        allow_private: true,
        retry: RetryPolicy {
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            disable_after_failures: u32::MAX,
            disable_after: Duration::ZERO,
        },
        lease: Duration::from_secs(3),
        claim_every: Duration::from_millis(100),
    }
}

/// A running Kith server with a key for its default workspace.
pub struct TestApp {
    pub key: String,
    /// Base URL of the REST gateway, `http://127.0.0.1:<port>`.
    pub rest: String,
    /// The gRPC address, `127.0.0.1:<port>`.
    pub grpc: std::net::SocketAddr,
    /// Base URL of the metrics and probes listener (`--metrics-addr`).
    pub metrics: String,
    /// The server's own service, for setup and checks behind the API.
    pub service: Service,
    /// Held so the database outlives the server.
    _db: TestDb,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// How to start a `TestApp`: a fresh database of one backend, or one the
/// test made, reached directly or through some address; calls limited or
/// not.
pub struct TestAppBuilder {
    backend: Backend,
    db: Option<(TestDb, String)>,
    rate_limit: Option<RateLimit>,
    change_log: Option<ChangeLogConfig>,
    tls: Option<(TlsFiles, Duration)>,
    read_replicas: ReadReplicas,
    webhooks: WebhookConfig,
}

impl TestAppBuilder {
    /// Serves reads from these hot standbys as well.
    pub fn read_replicas(mut self, replicas: ReadReplicas) -> Self {
        self.read_replicas = replicas;
        self
    }

    /// Serves gRPC and REST over TLS with these files, checked for a
    /// change every `watch_interval`.
    pub fn tls(mut self, files: TlsFiles, watch_interval: Duration) -> Self {
        self.tls = Some((files, watch_interval));
        self
    }

    /// Serves `db`, reaching it through `url` (a proxy, say).
    pub fn database(mut self, db: TestDb, url: String) -> Self {
        self.db = Some((db, url));
        self
    }

    /// Limits each key's calls.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Checks and delivers webhooks this way.
    pub fn webhooks(mut self, webhooks: WebhookConfig) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// Keeps and follows the change log this way.
    pub fn change_log(mut self, change_log: ChangeLogConfig) -> Self {
        self.change_log = Some(change_log);
        self
    }

    /// Starts Kith; `None` when the backend is missing here.
    pub async fn start(self) -> Option<TestApp> {
        let (db, url) = match self.db {
            Some(given) => given,
            None => {
                let db = TestDb::new(self.backend).await?;
                let url = db.url.clone();
                (db, url)
            }
        };
        let config = ServeConfig {
            rate_limit: self.rate_limit,
            change_log: self.change_log.unwrap_or_default(),
            read_replicas: self.read_replicas,
            webhooks: self.webhooks,
            ..serve_config(url)
        };
        Some(TestApp::launch(db, config, self.tls).await)
    }
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            db: None,
            rate_limit: None,
            change_log: None,
            tls: None,
            read_replicas: ReadReplicas::default(),
            webhooks: test_webhooks(),
        }
    }

    /// Starts Kith on a fresh database; `None` when the backend is missing.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::builder(backend).start().await
    }

    async fn launch(db: TestDb, config: ServeConfig, tls: Option<(TlsFiles, Duration)>) -> Self {
        let (tls, tls_watch_interval) = tls.unzip();
        let config = ServeConfig {
            tls,
            tls_watch_interval: tls_watch_interval.unwrap_or(Duration::from_secs(10)),
            ..config
        };
        let app = Application::build(&config).await.expect("build the app");
        let key = app
            .bootstrap_key()
            .expect("a fresh database prints a key")
            .to_owned();
        let grpc_addr = app.grpc_addr();
        let rest = format!("http://{}", app.rest_addr().expect("REST is on"));
        let metrics = format!("http://{}", app.metrics_addr().expect("metrics listen"));
        let service = app.service();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect_lazy();
        Self {
            key,
            rest,
            grpc: grpc_addr,
            metrics,
            service,
            _db: db,
            channel,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The database Kith serves, for tests that reach it from outside.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A customer client sending the default workspace's key.
    pub fn customers(&self) -> CustomerServiceClient<Authed> {
        self.customers_with(Some(&self.key))
    }

    pub fn customers_with(&self, key: Option<&str>) -> CustomerServiceClient<Authed> {
        CustomerServiceClient::with_interceptor(self.channel(), Bearer::new(key))
    }

    /// A change log client sending the default workspace's key.
    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        self.changes_with(Some(&self.key))
    }

    pub fn changes_with(&self, key: Option<&str>) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel(), Bearer::new(key))
    }

    /// A change log client on a connection of its own, with HTTP/2's
    /// smallest flow-control windows: a stream it leaves unread soon stops
    /// the server sending, and leaves the connection the other clients
    /// share alone.
    pub fn changes_on_narrow_connection(&self) -> ChangeServiceClient<Authed> {
        const SMALLEST_WINDOW: u32 = 65_535;
        let channel = Endpoint::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .initial_stream_window_size(SMALLEST_WINDOW)
            .initial_connection_window_size(SMALLEST_WINDOW)
            .connect_lazy();
        ChangeServiceClient::with_interceptor(channel, Bearer::new(Some(&self.key)))
    }

    /// An entity client sending the default workspace's key.
    pub fn entities(&self) -> EntityServiceClient<Authed> {
        self.entities_with(Some(&self.key))
    }

    pub fn entities_with(&self, key: Option<&str>) -> EntityServiceClient<Authed> {
        EntityServiceClient::with_interceptor(self.channel(), Bearer::new(key))
    }

    /// A people client sending the default workspace's key.
    pub fn people(&self) -> PeopleServiceClient<Authed> {
        self.people_with(Some(&self.key))
    }

    pub fn people_with(&self, key: Option<&str>) -> PeopleServiceClient<Authed> {
        PeopleServiceClient::with_interceptor(self.channel(), Bearer::new(key))
    }

    /// A user client sending the default workspace's key.
    pub fn webhooks(&self) -> WebhookServiceClient<Authed> {
        self.webhooks_with(Some(&self.key))
    }

    pub fn webhooks_with(&self, key: Option<&str>) -> WebhookServiceClient<Authed> {
        WebhookServiceClient::with_interceptor(self.channel.clone(), Bearer::new(key))
    }

    pub fn users(&self) -> UserServiceClient<Authed> {
        self.users_with(Some(&self.key))
    }

    pub fn users_with(&self, key: Option<&str>) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel(), Bearer::new(key))
    }

    /// The workspace of the default key.
    pub async fn workspace_id(&self) -> String {
        self.service
            .find_workspace("default")
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string()
    }

    /// A new workspace and a key for it.
    pub async fn other_workspace_key(&self) -> String {
        let name = format!("ws-{}", uuid::Uuid::new_v4().simple());
        let workspace = self
            .service
            .create_workspace(WorkspaceName::parse(&name).unwrap())
            .await
            .unwrap();
        let key = self.service.create_api_key(workspace.id).await.unwrap();
        key.reveal().to_owned()
    }

    /// One REST call with `auth` as its `(header, value)`; returns the
    /// status and the JSON body, `null` when the body is empty.
    pub async fn rest_json(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.rest));
        if let Some((header, value)) = auth {
            request = request.header(header, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
        };
        (status, json)
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        self.begin_stopping();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Tells the server to stop, as SIGTERM does, without waiting.
    pub fn begin_stopping(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP proxy in front of a database that a test can cut and restore: while
/// down it refuses new connections and drops open ones, as an outage does.
pub struct Proxy {
    pub addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                if !*watch.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Kith on a fresh PostgreSQL database reached through a `Proxy`.
pub async fn spawn_behind_proxy() -> Option<(TestApp, Proxy)> {
    use sqlx::ConnectOptions as _;
    use std::str::FromStr as _;
    let db = TestDb::new(Backend::Postgres).await?;
    let options = sqlx::postgres::PgConnectOptions::from_str(&db.url).unwrap();
    let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let url = options
        .host("127.0.0.1")
        .port(proxy.addr.port())
        .to_url_lossy()
        .to_string();
    let app = TestApp::builder(Backend::Postgres)
        .database(db, url)
        .start()
        .await?;
    Some((app, proxy))
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    pub fn new(key: Option<&str>) -> Self {
        Self(key.map(|key| MetadataValue::try_from(format!("Bearer {key}")).unwrap()))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Runs each listed test once per backend, as `sqlite::name` and
/// `postgres::name`; a test is an `async fn(Backend)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await;
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// Returns from the test when the backend is not available (already
/// reported once by the harness).
macro_rules! require {
    ($option:expr) => {
        match $option {
            Some(value) => value,
            None => return,
        }
    };
}
pub(crate) use require;
