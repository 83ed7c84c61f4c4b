//! PostgreSQL hot standbys that serve reads: which of them are in rotation,
//! and how far behind the primary each one is.
//!
//! A standby is taken out of rotation when it stops answering or falls
//! further behind than the configured bound, and put back once a check finds
//! it healthy again. Reads never depend on a standby being right about its
//! own freshness: a read that must see a given change asks the standby's
//! copy of the workspace's change counter first (see `Store::read_fresh`).

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The standbys and the next one to read from.
#[derive(Clone, Default)]
pub(super) struct Replicas {
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
    max_lag: Duration,
}

pub(super) struct Replica {
    /// `host:port`, for logs, metrics and the readiness probe.
    pub(super) name: String,
    pub(super) pool: PgPool,
    in_rotation: AtomicBool,
    /// Why it is out of rotation, while it is.
    trouble: Mutex<Option<String>>,
}

/// What a check of one standby found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaState {
    pub name: String,
    pub in_rotation: bool,
    /// The last check's lag, when it answered.
    pub lag: Option<Duration>,
    /// Why it is out of rotation.
    pub trouble: Option<String>,
}

/// How far a standby's replay is behind: nothing when it has replayed all it
/// received, else the age of the last transaction it replayed. (An idle
/// primary sends nothing, so a caught-up standby reads 0, not the time since
/// the last write.)
const LAG_QUERY: &str = "SELECT CASE \
       WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8 \
       ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) \
     END";

impl Replicas {
    /// Pools for the standbys `urls` name, opened lazily: a standby that is
    /// down at start is only out of rotation, not a failed start. Each
    /// starts out of rotation until its first check.
    pub(super) fn open(urls: &[String], max_lag: Duration) -> anyhow::Result<Self> {
        let replicas = urls
            .iter()
            .map(|url| {
                let options = PgConnectOptions::from_str(url)?;
                let name = format!("{}:{}", options.get_host(), options.get_port());
                let options = options.options([("statement_timeout", "30s")]);
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    // A standby that cannot hand out a connection at once is
                    // passed over for the primary, not waited for.
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_lazy_with(options);
                Ok(Replica {
                    name,
                    pool,
                    in_rotation: AtomicBool::new(false),
                    trouble: Mutex::new(Some("not checked yet".to_owned())),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            replicas: replicas.into(),
            next: Arc::default(),
            max_lag,
        })
    }

    pub(super) fn all(&self) -> &[Replica] {
        &self.replicas
    }

    /// The next standby in rotation, round robin; `None` when none is.
    pub(super) fn pick(&self) -> Option<usize> {
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&index| self.replicas[index].in_rotation.load(Ordering::Relaxed))
    }

    pub(super) fn get(&self, index: usize) -> &Replica {
        &self.replicas[index]
    }

    /// Checks every standby once, within `timeout` each, and puts each in or
    /// out of rotation by what it answered.
    pub(super) async fn check(&self, timeout: Duration) -> Vec<ReplicaState> {
        let mut states = Vec::with_capacity(self.replicas.len());
        for replica in self.replicas.iter() {
            states.push(replica.check(timeout, self.max_lag).await);
        }
        states
    }
}

impl Replica {
    async fn check(&self, timeout: Duration, max_lag: Duration) -> ReplicaState {
        let lag = match tokio::time::timeout(timeout, self.lag()).await {
            Ok(Ok(lag)) => lag,
            Ok(Err(error)) => {
                self.take_out(format!("not answering: {error}"));
                return self.state(None);
            }
            Err(_) => {
                self.take_out(format!("no answer within {timeout:?}"));
                return self.state(None);
            }
        };
        if lag > max_lag {
            self.take_out(format!(
                "{:.1} s behind the primary, more than the {:.1} s allowed",
                lag.as_secs_f64(),
                max_lag.as_secs_f64()
            ));
        } else {
            self.put_back();
        }
        self.state(Some(lag))
    }

    async fn lag(&self) -> Result<Duration, sqlx::Error> {
        let (seconds,): (f64,) = sqlx::query_as(LAG_QUERY).fetch_one(&self.pool).await?;
        Ok(Duration::try_from_secs_f64(seconds).unwrap_or_default())
    }

    /// Out of rotation for `why`, logged once when it leaves.
    pub(super) fn take_out(&self, why: String) {
        if self.in_rotation.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %self.name, reason = %why, "read replica out of rotation");
        }
        *self.trouble.lock().expect("replica trouble lock") = Some(why);
    }

    fn put_back(&self) {
        *self.trouble.lock().expect("replica trouble lock") = None;
        if !self.in_rotation.swap(true, Ordering::Relaxed) {
            tracing::info!(replica = %self.name, "read replica in rotation");
        }
    }

    fn state(&self, lag: Option<Duration>) -> ReplicaState {
        ReplicaState {
            name: self.name.clone(),
            in_rotation: self.in_rotation.load(Ordering::Relaxed),
            lag,
            trouble: self.trouble.lock().expect("replica trouble lock").clone(),
        }
    }
}
