//! Command-line flags, each also read from a `KITH_*` environment variable.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderValue;

pub use crate::auth::RateLimit;
pub use crate::service::ChangeLogConfig;
pub use crate::tls::TlsFiles;

#[derive(Debug, Parser)]
#[command(
    name = "kith",
    version,
    about = "A customer and identity directory served over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC services (and the REST gateway).
    Serve(Box<ServeArgs>),
    /// Manage workspaces.
    Workspaces {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and print its id.
    Create {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for a workspace and print it (it is shown only once).
    Create {
        /// The workspace's name or id.
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List a workspace's keys (ids and state, never the keys themselves).
    List {
        /// The workspace's name or id.
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a key by the id `kith keys list` shows.
    Revoke {
        key_id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `postgres://…` for PostgreSQL; a file path or `sqlite:` URL for SQLite.
    #[arg(long, env = "KITH_DATABASE_URL", default_value = "sqlite:kith.db")]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, env = "KITH_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the REST gateway.
    #[arg(long, env = "KITH_REST_ADDR", default_value = "127.0.0.1:8080")]
    pub rest_addr: SocketAddr,

    /// Do not serve the REST gateway.
    #[arg(long, env = "KITH_NO_REST")]
    pub no_rest: bool,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Log format on stderr.
    #[arg(long, env = "KITH_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Export request spans to this OpenTelemetry collector over OTLP/gRPC
    /// (`http://collector:4317`). Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Seconds between database health checks.
    #[arg(long, env = "KITH_HEALTH_INTERVAL", default_value_t = 2)]
    pub health_interval_secs: u64,

    /// Seconds a shutdown waits for calls in flight before cutting them off.
    #[arg(long, env = "KITH_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout_secs: u64,

    /// Calls per second each API key may make, over gRPC and REST together;
    /// beyond it calls fail with RESOURCE_EXHAUSTED / 429. Off when unset.
    #[arg(long, env = "KITH_RATE_LIMIT")]
    pub rate_limit: Option<NonZeroU32>,

    /// Calls a key may make at once above its rate (default: one second's
    /// worth).
    #[arg(long, env = "KITH_RATE_BURST", requires = "rate_limit")]
    pub rate_burst: Option<NonZeroU32>,

    /// How long the change log keeps changes (`7d`, `12h`, `90m`); a
    /// cursor older than that has expired.
    #[arg(long, env = "KITH_CHANGE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub change_retention: Duration,

    /// How long a Watch stream waits for a reader that has stopped reading
    /// before ending it with RESOURCE_EXHAUSTED (`30s`).
    #[arg(long, env = "KITH_WATCH_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub watch_stall_timeout: Duration,

    /// How often a Watch stream looks for changes no wake-up announced:
    /// the backstop for notifications from other replicas (`1s`).
    #[arg(long, env = "KITH_WATCH_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub watch_poll_interval: Duration,

    /// A web origin (`https://app.example.com`) whose pages may call the
    /// gRPC listener over gRPC-Web; repeat it, or comma-separate in the
    /// variable, for several. None by default: browsers on other origins
    /// are refused.
    #[arg(long = "cors-origin", env = "KITH_CORS_ORIGINS", value_delimiter = ',', value_parser = crate::api::grpc::parse_origin)]
    pub cors_origins: Vec<HeaderValue>,

    /// Keep no metrics: no `/metrics`, no per-call layers and no statement
    /// timing (the few counters the service keeps are not shown).
    #[arg(long, env = "KITH_NO_METRICS")]
    pub no_metrics: bool,

    /// Also serve `/metrics`, `/livez` and `/readyz` here, in plaintext:
    /// for `--no-rest`, or to keep scrapes off the API's port. This
    /// listener stays up while the server drains.
    #[arg(long, env = "KITH_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve gRPC and REST over TLS with this certificate chain (PEM).
    /// Reloaded on SIGHUP and when the files change.
    #[arg(long, env = "KITH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM).
    #[arg(long, env = "KITH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates that chain to this CA (PEM): mTLS. A
    /// client without one is refused at the handshake.
    #[arg(long, env = "KITH_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// What `Application::build` needs; tests build it directly.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub grpc_addr: SocketAddr,
    pub rest_addr: Option<SocketAddr>,
    pub database_url: String,
    pub health_interval: Duration,
    pub drain_timeout: Duration,
    pub rate_limit: Option<RateLimit>,
    pub change_log: ChangeLogConfig,
    /// Origins allowed to call over gRPC-Web from a page.
    pub cors_origins: Vec<HeaderValue>,
    /// Whether to keep Prometheus metrics.
    pub metrics: bool,
    /// The operator's own listener (metrics and probes), if any.
    pub metrics_addr: Option<SocketAddr>,
    /// TLS on the gRPC and REST listeners; plaintext when `None`.
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are checked for a replacement.
    pub tls_watch_interval: Duration,
}

/// How often `kith serve` looks at its TLS files for a change.
pub const TLS_WATCH_INTERVAL: Duration = Duration::from_secs(10);

impl From<&ServeArgs> for ServeConfig {
    fn from(args: &ServeArgs) -> Self {
        Self {
            grpc_addr: args.grpc_addr,
            rest_addr: (!args.no_rest).then_some(args.rest_addr),
            database_url: args.database.database_url.clone(),
            health_interval: Duration::from_secs(args.health_interval_secs.max(1)),
            drain_timeout: Duration::from_secs(args.drain_timeout_secs),
            rate_limit: args.rate_limit.map(|per_second| RateLimit {
                per_second,
                burst: args.rate_burst.unwrap_or(per_second),
            }),
            change_log: ChangeLogConfig {
                retention: args.change_retention,
                stall_timeout: args.watch_stall_timeout.max(Duration::from_millis(100)),
                poll_every: args.watch_poll_interval.max(Duration::from_millis(10)),
                ..ChangeLogConfig::default()
            },
            cors_origins: args.cors_origins.clone(),
            metrics: !args.no_metrics,
            metrics_addr: args.metrics_addr,
            tls: args
                .tls_cert
                .clone()
                .zip(args.tls_key.clone())
                .map(|(cert, key)| TlsFiles {
                    cert,
                    key,
                    client_ca: args.tls_client_ca.clone(),
                }),
            tls_watch_interval: TLS_WATCH_INTERVAL,
        }
    }
}
