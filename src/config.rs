//! Command-line flags, each also read from a `KITH_*` environment variable.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderValue;

pub use crate::auth::RateLimit;
pub use crate::domain::webhook::RetryPolicy;
pub use crate::service::{ChangeLogConfig, WebhookConfig};
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
    /// Import records from a CSV or JSONL file into a running server.
    #[command(after_long_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Export every record of one kind, in the format `kith import` reads.
    #[command(after_long_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Print the workspace's changes as they commit.
    #[command(after_long_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Print every kept change of one record, oldest first.
    #[command(after_long_help = HISTORY_HELP)]
    History(HistoryArgs),
    /// Copy a SQLite database while the server runs.
    #[command(after_long_help = BACKUP_HELP)]
    Backup(BackupArgs),
}

const IMPORT_HELP: &str = "Examples:
  kith import people --file contacts.csv --rejects rejected.csv
  kith export people | kith import people --file - --server http://other:50051

Rows are upserted by the kind's keys, so a file can be imported again: rows that \
already exist are updated and counted as such. A bad row is reported with its line \
number, field and reason, written to --rejects, and the import goes on. Columns are \
listed in docs/import-export.md.

Exit codes: 0 done; 1 some rows were rejected; 2 bad arguments or input; 3 the \
server could not be reached, refused the key or failed; 130 interrupted.";

const EXPORT_HELP: &str = "Examples:
  kith export customers --format csv > customers.csv
  kith export people --query smith

Records are read page by page and written as they arrive, oldest first.

Exit codes: 0 done; 2 bad arguments; 3 the server could not be reached, refused \
the key or failed.";

const WATCH_HELP: &str = "Examples:
  kith watch --kinds person,customer
  kith watch --from CURSOR --json

On Ctrl-C, prints the cursor to resume from (on standard error).

Exit codes: 0 stopped by Ctrl-C; 2 bad arguments; 3 the server could not be \
reached, refused the key or the cursor, or failed.";

const HISTORY_HELP: &str = "Example:
  kith history customer 01939a4e-8c1f-7cc3-b1c4-5f2e6a7b8c9d

Exit codes: 0 done; 2 bad arguments; 3 the server could not be reached, refused \
the key or failed.";

const BACKUP_HELP: &str = "Example:
  kith backup --database-url sqlite:kith.db --to kith-backup.db

SQLite only: a consistent copy made with VACUUM INTO, safe while the server \
writes. For PostgreSQL use pg_dump.

Exit codes: 0 done; 2 bad arguments; 3 the database could not be read or the copy \
written.";

/// How `kith import`, `export`, `watch` and `history` reach a server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The gRPC server: `http://host:port`, or `https://host:port` for TLS.
    #[arg(long, env = "KITH_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// The API key, as `kith keys create` or the first `kith serve` printed it.
    #[arg(long, env = "KITH_API_KEY", hide_env_values = true)]
    pub key: String,

    /// The CA certificate (PEM) of an `https://` server.
    #[arg(long, env = "KITH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// What the file holds.
    pub kind: RecordKind,

    /// The file to read; `-` reads standard input.
    #[arg(long)]
    pub file: PathBuf,

    /// The file's format; by default from its extension (`.csv` is CSV,
    /// anything else JSONL).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,

    /// Write the rejected rows here, as they were (CSV with its header
    /// line), to fix and import again.
    #[arg(long)]
    pub rejects: Option<PathBuf>,

    /// Requests in flight at once (batches, or rows where a kind has no
    /// batch method).
    #[arg(long, default_value_t = NonZeroU32::new(8).expect("8 is not zero"))]
    pub in_flight: NonZeroU32,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// What to export.
    pub kind: RecordKind,

    /// The format written to standard output.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FileFormat,

    /// Only people whose name or email contains this text (people only).
    #[arg(long)]
    pub query: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Only these kinds of record (comma-separated); every kind by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kinds: Vec<ChangeKindArg>,

    /// Resume after this cursor (printed by an earlier `kith watch`, or a
    /// list's `change_cursor`); from now when unset.
    #[arg(long)]
    pub from: Option<String>,

    /// One JSON change per line (the change's canonical JSON).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The record's kind.
    pub kind: ChangeKindArg,

    /// The record's id (for an entity, its id within its customer).
    pub id: String,

    /// One JSON change per line.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where to write the copy; the file must not exist.
    #[arg(long)]
    pub to: PathBuf,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The kinds of record `kith import` and `kith export` move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordKind {
    People,
    Customers,
    Users,
    Entities,
    EntityTypes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Csv,
    Jsonl,
}

/// A kind of change, as `kith watch --kinds` and `kith history` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangeKindArg {
    Customer,
    Entity,
    EntityType,
    Person,
    User,
    Company,
    Membership,
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

    /// A PostgreSQL hot standby of the database to serve reads from:
    /// repeat the flag (or separate URLs with commas) for several. Writes,
    /// and reads that must see a caller's write, go to the primary.
    #[arg(
        long = "database-read-url",
        env = "KITH_DATABASE_READ_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub database_read_urls: Vec<String>,

    /// How far a read replica may fall behind the primary and still serve
    /// reads; one further behind is out of rotation until it catches up.
    #[arg(long, env = "KITH_MAX_REPLICA_LAG", default_value = "5s", value_parser = humantime::parse_duration)]
    pub max_replica_lag: Duration,

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

    /// Let webhook endpoints be on loopback, private and link-local
    /// addresses: for tests and local setups. Off, such URLs are refused
    /// when set and at every connection.
    #[arg(long, env = "KITH_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// The wait before a webhook's second attempt at a change; each next
    /// failure doubles it (with jitter) up to `--webhook-retry-max`.
    #[arg(long, env = "KITH_WEBHOOK_RETRY_FIRST", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_retry_first: Duration,

    /// The longest wait between a webhook's attempts.
    #[arg(long, env = "KITH_WEBHOOK_RETRY_MAX", default_value = "1h", value_parser = humantime::parse_duration)]
    pub webhook_retry_max: Duration,

    /// An endpoint is disabled after this many failed attempts in a row…
    #[arg(
        long,
        env = "KITH_WEBHOOK_DISABLE_AFTER_FAILURES",
        default_value_t = 10
    )]
    pub webhook_disable_after_failures: u32,

    /// …over at least this long (`3d`): it then shows why in Get, and
    /// EnableWebhookEndpoint resumes it from its cursor.
    #[arg(long, env = "KITH_WEBHOOK_DISABLE_AFTER", default_value = "3d", value_parser = humantime::parse_duration)]
    pub webhook_disable_after: Duration,

    /// How long a replica's claim on an endpoint lasts unless renewed: a
    /// replica that dies has its endpoints taken over after this.
    #[arg(long, env = "KITH_WEBHOOK_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub webhook_lease: Duration,

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
    /// Hot standbys that serve reads, and how far behind they may be.
    pub read_replicas: ReadReplicas,
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
    /// How webhooks are checked, delivered and retried.
    pub webhooks: WebhookConfig,
}

/// PostgreSQL hot standbys for reads.
#[derive(Debug, Clone, Default)]
pub struct ReadReplicas {
    pub urls: Vec<String>,
    pub max_lag: Duration,
}

/// How often `kith serve` looks at its TLS files for a change.
pub const TLS_WATCH_INTERVAL: Duration = Duration::from_secs(10);

impl From<&ServeArgs> for ServeConfig {
    fn from(args: &ServeArgs) -> Self {
        Self {
            grpc_addr: args.grpc_addr,
            rest_addr: (!args.no_rest).then_some(args.rest_addr),
            database_url: args.database.database_url.clone(),
            read_replicas: ReadReplicas {
                urls: args.database_read_urls.clone(),
                max_lag: args.max_replica_lag,
            },
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
            webhooks: WebhookConfig {
                allow_private: args.webhook_allow_private,
                retry: RetryPolicy {
                    first_backoff: args.webhook_retry_first.max(Duration::from_millis(10)),
                    max_backoff: args.webhook_retry_max.max(args.webhook_retry_first),
                    disable_after_failures: args.webhook_disable_after_failures.max(1),
                    disable_after: args.webhook_disable_after,
                },
                // Renewed every third of it: shorter than a second would
                // renew faster than a busy database answers.
                lease: args.webhook_lease.max(Duration::from_secs(1)),
                ..WebhookConfig::default()
            },
        }
    }
}
