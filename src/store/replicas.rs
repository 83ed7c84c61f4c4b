//! PostgreSQL hot standbys that serve reads: which of them are in rotation,
//! and how far behind the primary each one is.
//!
//! A standby is taken out of rotation when it stops answering or falls
//! further behind than the configured bound, and put back once a check finds
//! it healthy again. Reads never depend on a standby being right about its
//! own freshness: a read that must see a given change asks the standby's
//! copy of the workspace's change counter first (see `Store::read_fresh`).
//!
//! **Lag is measured against the primary.** Each check samples the
//! primary's WAL position; a standby whose replay has reached the position
//! sampled at time t had everything the primary had at t, so it is at most
//! `now - t` behind. The newest sample it has reached bounds its lag. An
//! idle primary's position does not move, so a caught-up standby reads 0
//! however long ago the last write was; a standby cut off from the primary,
//! or one whose replay stopped, grows stale as soon as the primary writes.

use std::collections::VecDeque;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};

/// How many of the primary's positions are kept: enough, at one check per
/// health interval, to bound a lag well past any sensible `max_lag`.
const POSITIONS_KEPT: usize = 120;

/// The standbys and the next one to read from.
#[derive(Clone, Default)]
pub(super) struct Replicas {
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
    max_lag: Duration,
    /// The primary's WAL position at each recent check, oldest first.
    positions: Arc<Mutex<VecDeque<(Instant, u64)>>>,
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
    /// The last check's lag (at most this much behind, or at least this
    /// much when it had reached none of the positions kept), when it
    /// answered.
    pub lag: Option<Duration>,
    /// Why it is out of rotation.
    pub trouble: Option<String>,
}

/// How far a standby is behind, as the primary's positions bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lag {
    /// It had reached the position of this long ago.
    AtMost(Duration),
    /// It had reached none of the positions kept, the oldest this old.
    MoreThan(Duration),
}

impl Replicas {
    /// Pools for the standbys `urls` name, opened lazily: a standby that is
    /// down at start is only out of rotation, not a failed start. Each
    /// starts out of rotation until a check finds it caught up.
    pub(super) fn open(urls: &[String], max_lag: Duration) -> anyhow::Result<Self> {
        let replicas = urls
            .iter()
            .map(|url| {
                let options = PgConnectOptions::from_str(url)?;
                let name = format!("{}:{}", options.get_host(), options.get_port());
                let options = options.options([
                    ("statement_timeout", "30s"),
                    // A primary set to SERIALIZABLE passes its setting on
                    // (ALTER DATABASE and ALTER SYSTEM replicate), and a hot
                    // standby refuses every statement at that level.
                    ("default_transaction_isolation", "read committed"),
                ]);
                let pool = super::postgres::pool_options()
                    // A standby that cannot hand out a connection at once is
                    // passed over for the primary, not waited for.
                    .acquire_timeout(Duration::from_millis(250))
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
            positions: Arc::default(),
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

    /// Samples the primary's position, then checks every standby against
    /// the positions kept, within `timeout` each, and puts each in or out of
    /// rotation by what it answered. While the primary does not answer, the
    /// standbys are judged by the positions already kept.
    pub(super) async fn check(&self, primary: &PgPool, timeout: Duration) -> Vec<ReplicaState> {
        if self.replicas.is_empty() {
            return Vec::new();
        }
        let sampled_at = Instant::now();
        if let Ok(Ok(position)) = tokio::time::timeout(timeout, primary_position(primary)).await {
            let mut positions = self.positions.lock().expect("positions lock");
            positions.push_back((sampled_at, position));
            if positions.len() > POSITIONS_KEPT {
                positions.pop_front();
            }
        }
        let positions = self.positions.lock().expect("positions lock").clone();
        let mut states = Vec::with_capacity(self.replicas.len());
        for replica in self.replicas.iter() {
            states.push(replica.check(timeout, self.max_lag, &positions).await);
        }
        states
    }
}

impl Replica {
    async fn check(
        &self,
        timeout: Duration,
        max_lag: Duration,
        positions: &VecDeque<(Instant, u64)>,
    ) -> ReplicaState {
        let replayed = match tokio::time::timeout(timeout, self.replayed()).await {
            Ok(Ok(Some(replayed))) => replayed,
            Ok(Ok(None)) => {
                self.take_out("not a standby: it replays no primary's log".to_owned());
                return self.state(None);
            }
            Ok(Err(error)) => {
                self.take_out(format!("not answering: {error}"));
                return self.state(None);
            }
            Err(_) => {
                self.take_out(format!("no answer within {timeout:?}"));
                return self.state(None);
            }
        };
        let lag = lag(replayed, positions);
        let shown = match lag {
            Some(Lag::AtMost(lag)) if lag <= max_lag => {
                self.put_back();
                return self.state(Some(lag));
            }
            Some(Lag::AtMost(lag) | Lag::MoreThan(lag)) => lag,
            None => Duration::ZERO,
        };
        self.take_out(format!(
            "{:.1} s or more behind the primary, more than the {:.1} s allowed",
            shown.as_secs_f64(),
            max_lag.as_secs_f64()
        ));
        self.state(lag.map(|_| shown))
    }

    /// How far its replay has come; `None` on a server that replays nothing
    /// (a primary: promoted, or named by mistake).
    async fn replayed(&self) -> Result<Option<u64>, sqlx::Error> {
        let (replayed,): (Option<String>,) =
            sqlx::query_as("SELECT pg_last_wal_replay_lsn()::text")
                .fetch_one(&self.pool)
                .await?;
        Ok(replayed.as_deref().and_then(parse_lsn))
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

/// The primary's current WAL position.
async fn primary_position(primary: &PgPool) -> anyhow::Result<u64> {
    let (position,): (String,) = sqlx::query_as("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(primary)
        .await?;
    parse_lsn(&position).ok_or_else(|| anyhow::anyhow!("WAL position {position:?}"))
}

/// The lag `replayed` shows against the primary's `positions` (oldest
/// first): the age of the newest one it has reached; `None` before any
/// position was sampled.
fn lag(replayed: u64, positions: &VecDeque<(Instant, u64)>) -> Option<Lag> {
    let (oldest, _) = positions.front()?;
    Some(
        positions
            .iter()
            .rev()
            .find(|(_, position)| *position <= replayed)
            .map_or(Lag::MoreThan(oldest.elapsed()), |(at, _)| {
                Lag::AtMost(at.elapsed())
            }),
    )
}

/// A WAL position as PostgreSQL writes it, `16/B374D848`.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_read_as_postgres_writes_them() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x0300_0060));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn lag_is_the_age_of_the_newest_position_reached() {
        let now = Instant::now();
        let positions: VecDeque<(Instant, u64)> = [
            (now - Duration::from_secs(30), 100),
            (now - Duration::from_secs(20), 200),
            (now - Duration::from_secs(10), 300),
        ]
        .into();
        let at_most = |replayed| match lag(replayed, &positions) {
            Some(Lag::AtMost(lag)) => lag.as_secs(),
            other => panic!("{other:?}"),
        };
        assert_eq!(at_most(300), 10);
        assert_eq!(at_most(250), 20);
        assert!(matches!(lag(50, &positions), Some(Lag::MoreThan(lag)) if lag.as_secs() == 30));
        assert_eq!(lag(50, &VecDeque::new()), None);
    }
}
