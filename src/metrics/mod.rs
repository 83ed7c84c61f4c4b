//! Prometheus metrics: what a server shows at `/metrics`.
//!
//! Each server keeps its own registry (tests start several in one process),
//! and hands its parts to the layers that count: the transports' request
//! layers (`grpc`, `http`), the store's statement timer, the service's
//! write and Watch counters, the authenticator's refusals. Counting into a
//! part costs an atomic add; nothing is looked up by name on a call.
//!
//! Cardinality is bounded by construction: labels hold method names, route
//! templates, codes, resource kinds and statement verbs, never an id.

mod grpc;
mod http;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use grpc::{GrpcMetrics, MethodMetrics, go_code_name};
pub use http::HttpMetrics;

use crate::domain::change::{Change, ChangeKind, ChangeOperation};
use crate::store::{ReplicaState, Store};

/// The content type of the exposition: OpenMetrics text, which every
/// Prometheus since 2.5 scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The git commit this binary was built from (`unknown` outside a checkout).
const GIT_COMMIT: &str = env!("KITH_GIT_COMMIT");

/// Upper bounds of the statement-duration buckets, in seconds: statements
/// take from tens of microseconds to the busy timeout.
const STATEMENT_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// One server's registry and the parts that count into it.
#[derive(Clone)]
pub struct Metrics(Arc<Registered>);

struct Registered {
    registry: Registry,
    grpc: GrpcMetrics,
    http: HttpMetrics,
    statements: StatementMetrics,
    service: ServiceMetrics,
    tls_reloads: ReloadCounts,
    rate_limited: Counter,
    serving: Gauge,
    pools: PoolGauges,
    replicas: ReplicaGauges,
    /// The store whose pools are read at each scrape.
    store: Store,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    git_commit: &'static str,
    backend: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

#[derive(Default)]
struct ReplicaGauges {
    in_rotation: Family<ReplicaLabels, Gauge>,
    lag: Family<ReplicaLabels, Gauge<f64, AtomicU64>>,
}

#[derive(Default)]
struct PoolGauges {
    size: Family<PoolLabels, Gauge>,
    idle: Family<PoolLabels, Gauge>,
}

impl Metrics {
    /// A registry for a server over `store`, with every series that is
    /// known in advance (each gRPC method, each code) present at zero.
    pub fn new(store: &Store) -> Self {
        let mut registry = Registry::default();
        let grpc = GrpcMetrics::register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        let statements = StatementMetrics::default();
        registry.register(
            "kith_store_statement_duration_seconds",
            "Time a store statement or commit took, by operation",
            statements.family.clone(),
        );
        let service = ServiceMetrics::default();
        service.register(&mut registry);
        let tls_reloads = ReloadCounts::default();
        tls_reloads.register(&mut registry);
        let rate_limited = Counter::default();
        registry.register(
            "kith_rate_limited",
            "Calls refused because their key was over its rate, on either transport",
            rate_limited.clone(),
        );
        let serving = Gauge::default();
        registry.register(
            "kith_serving",
            "1 while health says SERVING (database reachable, not draining), else 0",
            serving.clone(),
        );
        registry.register(
            "kith_build",
            "The running build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                git_commit: GIT_COMMIT,
                backend: store.backend(),
            }),
        );
        let pools = PoolGauges::default();
        registry.register(
            "kith_db_pool_connections",
            "Connections the database pool holds",
            pools.size.clone(),
        );
        registry.register(
            "kith_db_pool_idle_connections",
            "Connections of the database pool not in use",
            pools.idle.clone(),
        );
        let replicas = ReplicaGauges::default();
        registry.register(
            "kith_db_replica_in_rotation",
            "1 while the read replica serves reads, 0 while it is out of rotation",
            replicas.in_rotation.clone(),
        );
        registry.register(
            "kith_db_replica_lag_seconds",
            "How far the read replica's replay was behind the primary at its last check",
            replicas.lag.clone(),
        );
        Self(Arc::new(Registered {
            registry,
            grpc,
            http,
            statements,
            service,
            tls_reloads,
            rate_limited,
            serving,
            pools,
            replicas,
            store: store.clone(),
        }))
    }

    pub fn grpc(&self) -> &GrpcMetrics {
        &self.0.grpc
    }

    pub fn http(&self) -> &HttpMetrics {
        &self.0.http
    }

    /// The store's statement timer.
    pub fn statements(&self) -> StatementMetrics {
        self.0.statements.clone()
    }

    /// The service's write and Watch counters.
    pub fn service(&self) -> ServiceMetrics {
        self.0.service.clone()
    }

    /// The count of TLS certificate reloads.
    pub fn tls_reloads(&self) -> ReloadCounts {
        self.0.tls_reloads.clone()
    }

    /// The count of calls refused for their key's rate.
    pub fn rate_limited(&self) -> Counter {
        self.0.rate_limited.clone()
    }

    /// Mirrors health: 1 while serving.
    pub fn set_serving(&self, serving: bool) {
        self.0.serving.set(i64::from(serving));
    }

    /// What the last check of the read replicas found.
    pub fn set_replicas(&self, states: &[ReplicaState]) {
        for state in states {
            let labels = ReplicaLabels {
                replica: state.name.clone(),
            };
            let gauges = &self.0.replicas;
            gauges
                .in_rotation
                .get_or_create(&labels)
                .set(i64::from(state.in_rotation));
            if let Some(lag) = state.lag {
                gauges.lag.get_or_create(&labels).set(lag.as_secs_f64());
            }
        }
    }

    /// The exposition, with the pools read as they are now.
    pub fn render(&self) -> String {
        for (pool, size, idle) in self.0.store.pool_stats() {
            let labels = PoolLabels { pool };
            self.0
                .pools
                .size
                .get_or_create(&labels)
                .set(i64::from(size));
            self.0
                .pools
                .idle
                .get_or_create(&labels)
                .set(i64::try_from(idle).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    operation: &'static str,
}

/// What a timed statement did, as a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementOperation {
    Select,
    Insert,
    Update,
    Delete,
    /// A statement with CTEs (this store's are writes).
    With,
    Other,
    /// A transaction's commit: where SQLite syncs its log.
    Commit,
}

impl StatementOperation {
    const ALL: [Self; 7] = [
        Self::Select,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::With,
        Self::Other,
        Self::Commit,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::With => "with",
            Self::Other => "other",
            Self::Commit => "commit",
        }
    }

    /// A statement's operation, from its first keyword.
    pub fn of(sql: &str) -> Self {
        let word = sql
            .trim_start()
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("");
        [
            Self::Select,
            Self::Insert,
            Self::Update,
            Self::Delete,
            Self::With,
        ]
        .into_iter()
        .find(|operation| word.eq_ignore_ascii_case(operation.as_str()))
        .unwrap_or(Self::Other)
    }
}

/// Durations of the store's statements and commits, by operation: which
/// kind of work the database is slow at. Each operation's histogram is
/// found once, so timing a statement takes no lock beyond the histogram's.
#[derive(Clone)]
pub struct StatementMetrics {
    family: Family<StatementLabels, Histogram, fn() -> Histogram>,
    /// Indexed by `StatementOperation`.
    by_operation: Arc<[Histogram; 7]>,
}

impl Default for StatementMetrics {
    fn default() -> Self {
        let family: Family<StatementLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(STATEMENT_BUCKETS));
        let by_operation = StatementOperation::ALL.map(|operation| {
            family.get_or_create_owned(&StatementLabels {
                operation: operation.as_str(),
            })
        });
        Self {
            family,
            by_operation: Arc::new(by_operation),
        }
    }
}

impl StatementMetrics {
    /// A statement (or commit) took `seconds`.
    pub fn observe(&self, operation: StatementOperation, seconds: f64) {
        // `ALL` lists the operations in their declared order.
        self.by_operation[operation as usize].observe(seconds);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WrittenLabels {
    resource: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    outcome: &'static str,
}

/// What the service counts: records written (one per change it logs), rows
/// imported, the change log's readers, and webhook deliveries.
#[derive(Clone, Default)]
pub struct ServiceMetrics {
    written: Family<WrittenLabels, Counter>,
    imported: Family<ImportLabels, Counter>,
    watchers: Gauge,
    watch_changes_sent: Counter,
    changes_pruned: Counter,
    webhooks: WebhookMetrics,
}

/// Webhook delivery: attempts by outcome, the delay from a change's commit
/// to its acknowledgement, and the endpoints this server delivers for. No
/// endpoint id in a label: the delay's histogram shows the spread.
#[derive(Clone)]
struct WebhookMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    delay: Histogram,
    delivering: Gauge,
}

/// Commit → acknowledgement, in seconds: from a healthy receiver's
/// milliseconds to an hour-long backoff.
const WEBHOOK_DELAY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1800.0, 3600.0,
];

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            delay: Histogram::new(WEBHOOK_DELAY_BUCKETS),
            delivering: Gauge::default(),
        }
    }
}

/// The outcomes an import row can have.
#[derive(Debug, Clone, Copy)]
pub enum ImportOutcome {
    Created,
    Updated,
    Rejected,
}

impl ServiceMetrics {
    fn register(&self, registry: &mut Registry) {
        for kind in ChangeKind::ALL {
            for operation in [
                ChangeOperation::Created,
                ChangeOperation::Updated,
                ChangeOperation::Deleted,
            ] {
                self.written
                    .get_or_create_owned(&written_labels(kind, operation));
            }
        }
        for outcome in ["created", "updated", "rejected"] {
            self.imported.get_or_create_owned(&ImportLabels { outcome });
        }
        registry.register(
            "kith_records_written",
            "Records created, updated, deleted, archived or unarchived, by resource",
            self.written.clone(),
        );
        registry.register(
            "kith_import_rows",
            "Rows of ImportPeople streams, by outcome",
            self.imported.clone(),
        );
        registry.register(
            "kith_watchers",
            "Watch streams open on this server",
            self.watchers.clone(),
        );
        registry.register(
            "kith_watch_changes_sent",
            "Changes sent to Watch streams",
            self.watch_changes_sent.clone(),
        );
        registry.register(
            "kith_changes_pruned",
            "Changes removed from the log past its retention",
            self.changes_pruned.clone(),
        );
        for outcome in ["delivered", "refused", "failed"] {
            self.webhooks
                .attempts
                .get_or_create_owned(&OutcomeLabels { outcome });
        }
        registry.register(
            "kith_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered (2xx), refused (another status), failed (no answer)",
            self.webhooks.attempts.clone(),
        );
        registry.register(
            "kith_webhook_delivery_delay_seconds",
            "Time from a change's commit to its acknowledgement by a webhook endpoint",
            self.webhooks.delay.clone(),
        );
        registry.register(
            "kith_webhook_endpoints_delivering",
            "Webhook endpoints this server holds the delivery lease of",
            self.webhooks.delivering.clone(),
        );
    }

    /// Counts one webhook attempt; an acknowledged one also observes the
    /// delay since its change committed.
    pub fn webhook_attempt(&self, outcome: &'static str, since_commit: Option<f64>) {
        self.webhooks
            .attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(seconds) = since_commit {
            self.webhooks.delay.observe(seconds.max(0.0));
        }
    }

    /// Counts an endpoint delivered for until the guard drops.
    pub fn delivering_webhooks(&self) -> WatcherGuard {
        self.webhooks.delivering.inc();
        WatcherGuard(self.webhooks.delivering.clone())
    }

    /// Counts the records a committed write changed: one label lookup per
    /// kind of change, not per record.
    pub fn written(&self, changes: &[Change]) {
        let mut counts: Vec<((ChangeKind, ChangeOperation), u64)> = Vec::new();
        for change in changes {
            let key = (change.kind, change.operation);
            match counts.iter_mut().find(|(counted, _)| *counted == key) {
                Some((_, count)) => *count += 1,
                None => counts.push((key, 1)),
            }
        }
        for ((kind, operation), count) in counts {
            self.written
                .get_or_create(&written_labels(kind, operation))
                .inc_by(count);
        }
    }

    pub fn imported(&self, outcome: ImportOutcome, rows: u64) {
        let outcome = match outcome {
            ImportOutcome::Created => "created",
            ImportOutcome::Updated => "updated",
            ImportOutcome::Rejected => "rejected",
        };
        self.imported
            .get_or_create(&ImportLabels { outcome })
            .inc_by(rows);
    }

    /// Counts a Watch stream open until the guard drops.
    pub fn watching(&self) -> WatcherGuard {
        self.watchers.inc();
        WatcherGuard(self.watchers.clone())
    }

    pub fn sent_to_watcher(&self, changes: usize) {
        self.watch_changes_sent
            .inc_by(u64::try_from(changes).unwrap_or(u64::MAX));
    }

    pub fn pruned(&self, changes: u64) {
        self.changes_pruned.inc_by(changes);
    }
}

fn written_labels(kind: ChangeKind, operation: ChangeOperation) -> WrittenLabels {
    WrittenLabels {
        resource: kind.as_str(),
        operation: operation.as_str(),
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// TLS certificate reloads by outcome (`ok`, `failed`): a failed one left
/// the previous certificate in use.
#[derive(Clone, Default)]
pub struct ReloadCounts(Family<OutcomeLabels, Counter>);

impl ReloadCounts {
    fn register(&self, registry: &mut Registry) {
        for outcome in ["ok", "failed"] {
            self.0.get_or_create_owned(&OutcomeLabels { outcome });
        }
        registry.register(
            "kith_tls_reloads",
            "TLS certificate reloads; a failed one kept the certificate in use",
            self.0.clone(),
        );
    }

    pub fn count(&self, succeeded: bool) {
        let outcome = if succeeded { "ok" } else { "failed" };
        self.0.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// One open Watch stream, in the `kith_watchers` gauge while it lives.
pub struct WatcherGuard(Gauge);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::StatementOperation;

    #[test]
    fn statements_are_labelled_by_their_verb_only() {
        let label = |sql| StatementOperation::of(sql).as_str();
        assert_eq!(label("SELECT id FROM people"), "select");
        assert_eq!(label("  insert INTO people"), "insert");
        assert_eq!(label("WITH written AS (…)"), "with");
        assert_eq!(label("BEGIN"), "other");
        assert_eq!(label(""), "other");
    }
}
