//! Webhook delivery: the change log pushed to each endpoint, in order, one
//! change at a time, by one replica at a time.
//!
//! A dispatcher per process claims the endpoints that are due and that no
//! replica holds (a lease row in the database), and runs a `Deliverer` for
//! each. A deliverer reads its endpoint's changes after its cursor, sends
//! each until it is acknowledged, and records its progress (cursor,
//! attempts, lease renewal) in one statement every few hundred
//! milliseconds: an acknowledgement not yet recorded when a replica dies is
//! sent again by the next (at least once, never out of order).
//!
//! A change that fails gives the lease back with the time it is due again,
//! so a failing endpoint holds no replica's attention while it backs off,
//! and any replica picks it up when it is due. Sends are cut short before
//! the lease would expire, so a lease taken over never has two senders.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::Service;
use super::changes::{Wakeups, changes_page};
use crate::domain::change::{ChangeBatchSize, ChangeCursor, LoggedChange};
use crate::domain::webhook::{
    AttemptOutcome, DeliveryAttempt, Failures, WebhookEndpoint, webhook_id,
};
use crate::domain::{new_id, now};
use crate::error::{Error, Result};
use crate::store::DeliveryProgress;

/// The longest an attempt may take: connecting, sending and the answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Changes read from the log at a time.
const READ_BATCH: ChangeBatchSize = ChangeBatchSize(100);
/// Progress is recorded at least this often while changes are acknowledged…
const RECORD_EVERY: Duration = Duration::from_millis(250);
/// …or once this many attempts are waiting to be recorded.
const RECORD_ATTEMPTS: usize = 200;

/// One change to send to one endpoint.
pub struct Outgoing<'a> {
    pub endpoint: &'a WebhookEndpoint,
    pub change: &'a LoggedChange,
    /// The change's `webhook-id`.
    pub webhook_id: &'a str,
    /// The longest the attempt may take.
    pub timeout: Duration,
}

/// Sends a change over the wire: the HTTP transport implements it
/// (`api::webhooks`); tests may count or fail attempts.
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn send(&self, outgoing: Outgoing<'_>) -> AttemptOutcome;
}

impl Service {
    /// Delivers every endpoint this process can claim until the server
    /// stops (`end_watches`): the background task `server` runs. Returns
    /// once every deliverer has recorded its progress and given its lease
    /// back.
    pub async fn deliver_webhooks_forever(self, sender: Arc<dyn WebhookSender>) {
        let mut signal = self.changed.subscribe();
        let mut endpoints_changed = self.webhooks_changed.subscribe();
        let mut running: HashMap<Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            if signal.borrow_and_update().closing {
                break;
            }
            running.retain(|_, task| !task.is_finished());
            // A lease owner per claim: a deliverer that outlived its lease
            // (its writes then match nothing) never passes for a new one.
            let owner = Uuid::new_v4();
            let claimed_at = Instant::now();
            let claim = self.store.claim_webhook_endpoints(
                owner,
                now(),
                now() + chrono_duration(self.webhooks.lease),
            );
            match claim.await {
                Ok(claimed) => {
                    for endpoint in claimed {
                        tracing::debug!(endpoint = %endpoint.id, "delivering webhooks");
                        let deliverer = Deliverer::new(
                            self.clone(),
                            Arc::clone(&sender),
                            owner,
                            endpoint,
                            claimed_at,
                        );
                        let id = deliverer.endpoint.id;
                        running.insert(id, tokio::spawn(deliverer.run()));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming webhook endpoints failed; will try again")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.webhooks.claim_every) => {}
                _ = endpoints_changed.changed() => {}
                changed = signal.changed() => if changed.is_err() { break },
            }
        }
        for task in running.into_values() {
            let _ = task.await;
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Where a deliverer stands after renewing its lease.
enum Lease {
    Held,
    /// Held, and a caller moved the cursor (a replay): read from there.
    Moved,
    /// Another replica holds the endpoint, or it was disabled or deleted.
    Lost,
}

/// Why a deliverer stopped delivering.
enum Stop {
    /// The server is stopping.
    Closing,
    /// A change failed: the endpoint is due again later, on any replica.
    BackingOff,
    /// Another replica holds the endpoint, or it was disabled or deleted.
    LeaseLost,
}

/// Delivers one endpoint's changes while it holds the endpoint's lease.
struct Deliverer {
    service: Service,
    sender: Arc<dyn WebhookSender>,
    owner: Uuid,
    endpoint: WebhookEndpoint,
    /// When the lease expires, by this process's clock: set from the time
    /// before the statement that took or renewed it, so never late.
    lease_ends: Instant,
    /// The cursor last recorded in the database.
    recorded_seq: i64,
    /// Attempts not yet recorded.
    attempts: Vec<DeliveryAttempt>,
    last_recorded: Instant,
    signal: watch::Receiver<Wakeups>,
    /// A caller changed an endpoint (perhaps this one).
    endpoints_changed: watch::Receiver<u64>,
}

impl Deliverer {
    fn new(
        service: Service,
        sender: Arc<dyn WebhookSender>,
        owner: Uuid,
        endpoint: WebhookEndpoint,
        claimed_at: Instant,
    ) -> Self {
        let lease_ends = claimed_at + service.webhooks.lease;
        let signal = service.changed.subscribe();
        let endpoints_changed = service.webhooks_changed.subscribe();
        Self {
            endpoints_changed,
            recorded_seq: endpoint.cursor_seq,
            service,
            sender,
            owner,
            endpoint,
            lease_ends,
            attempts: Vec::new(),
            last_recorded: Instant::now(),
            signal,
        }
    }

    async fn run(mut self) {
        let _delivering = self.service.metrics.delivering_webhooks();
        let endpoint = self.endpoint.id;
        match self.deliver().await {
            Ok(Stop::Closing) => {
                if let Err(error) = self.give_back(None).await {
                    tracing::warn!(%error, %endpoint, "recording webhook progress at shutdown failed");
                }
            }
            Ok(Stop::BackingOff | Stop::LeaseLost) => {}
            Err(error) => {
                tracing::warn!(%error, %endpoint, "webhook delivery stopped; another claim resumes it");
                // What was acknowledged is kept if the database takes it;
                // else the next deliverer sends it again.
                let _ = self.give_back(None).await;
            }
        }
    }

    async fn deliver(&mut self) -> Result<Stop> {
        let lease = self.service.webhooks.lease;
        // After a wait (and after the claim), the endpoint is read again
        // before the next attempt, so a caller's change made meanwhile (a
        // new URL, a replay, a pause) applies to it; while changes flow, at
        // the next record (RECORD_EVERY).
        let mut waited = true;
        'read: loop {
            if self.signal.borrow_and_update().closing {
                return Ok(Stop::Closing);
            }
            if self.renewal_due(lease) && matches!(self.keep_lease().await?, Lease::Lost) {
                return Ok(Stop::LeaseLost);
            }
            let page = {
                let mut session = self.service.store.read().await?;
                let filter = self.endpoint.kinds.filter();
                let read = changes_page(
                    &mut session,
                    self.endpoint.workspace,
                    &filter,
                    Some(ChangeCursor::at(self.endpoint.cursor_seq)),
                    READ_BATCH,
                );
                match read.await {
                    Err(Error::CursorExpired) => {
                        let reason = "disabled: its cursor is older than the change log keeps \
                             (--change-retention); replay it from a later cursor or time"
                            .to_owned();
                        tracing::warn!(endpoint = %self.endpoint.id, %reason, "webhook endpoint disabled");
                        self.give_back(Some((reason, now()))).await?;
                        return Ok(Stop::BackingOff);
                    }
                    read => read?,
                }
            };
            if page.changes.is_empty() {
                // Changes the endpoint's kinds leave out move the cursor too.
                self.endpoint.cursor_seq = page.next.seq;
                if self.endpoint.cursor_seq != self.recorded_seq
                    && self.last_recorded.elapsed() >= RECORD_EVERY
                {
                    match self.keep_lease().await? {
                        Lease::Held => {}
                        Lease::Moved => continue 'read,
                        Lease::Lost => return Ok(Stop::LeaseLost),
                    }
                }
                self.wait_for_changes(lease).await;
                waited = true;
                continue;
            }
            for change in &page.changes {
                if self.signal.borrow().closing {
                    return Ok(Stop::Closing);
                }
                let record_due = std::mem::take(&mut waited)
                    || self.attempts.len() >= RECORD_ATTEMPTS
                    || self.last_recorded.elapsed() >= RECORD_EVERY;
                if record_due || self.renewal_due(lease) {
                    match self.keep_lease().await? {
                        Lease::Held => {}
                        Lease::Moved => continue 'read,
                        Lease::Lost => return Ok(Stop::LeaseLost),
                    }
                }
                if !self.attempt(change).await {
                    return self.back_off().await;
                }
            }
            self.endpoint.cursor_seq = page.next.seq;
        }
    }

    /// Whether a third of the lease has gone since it was last renewed.
    fn renewal_due(&self, lease: Duration) -> bool {
        self.lease_ends.saturating_duration_since(Instant::now()) < lease * 2 / 3
    }

    /// Sends one change once; `true` when it was acknowledged.
    async fn attempt(&mut self, change: &LoggedChange) -> bool {
        let id = webhook_id(self.endpoint.workspace, change.seq);
        // Cut short before the lease could expire: a replica that takes the
        // endpoint over never overlaps this send.
        let margin = self.service.webhooks.lease / 10;
        let timeout = SEND_TIMEOUT.min(
            self.lease_ends
                .saturating_duration_since(Instant::now())
                .saturating_sub(margin),
        );
        let attempted_at = now();
        let started = Instant::now();
        let outcome = self
            .sender
            .send(Outgoing {
                endpoint: &self.endpoint,
                change,
                webhook_id: &id,
                timeout,
            })
            .await;
        let latency = started.elapsed();
        let delivered = outcome.acknowledged();
        let since_commit = delivered.then(|| {
            (now() - change.committed_at)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64()
        });
        self.service
            .metrics
            .webhook_attempt(outcome.label(), since_commit);
        self.attempts.push(DeliveryAttempt {
            id: new_id(),
            seq: change.seq,
            attempt: self.endpoint.failures.next_attempt(),
            http_status: outcome.http_status(),
            error: excerpt(&outcome),
            latency,
            attempted_at,
            next_retry_at: None,
            delivered,
        });
        if delivered {
            self.endpoint.cursor_seq = change.seq;
            self.endpoint.failures = Failures::default();
        } else {
            let failures = &mut self.endpoint.failures;
            failures.count += 1;
            failures.since.get_or_insert(attempted_at);
        }
        delivered
    }

    /// After a failed attempt: records it with the time the change is due
    /// again and gives the lease back, or disables the endpoint when the
    /// retry policy gives up on it.
    async fn back_off(&mut self) -> Result<Stop> {
        let policy = self.service.webhooks.retry;
        let failures = self.endpoint.failures;
        let at = now();
        let last_error = self
            .attempts
            .last()
            .map(|attempt| attempt.error.clone())
            .unwrap_or_default();
        if policy.gives_up(failures.count, failures.since.unwrap_or(at), at) {
            let reason = policy.reason(failures.count, &last_error);
            tracing::warn!(endpoint = %self.endpoint.id, %reason, "webhook endpoint disabled");
            self.give_back(Some((reason, at))).await?;
            return Ok(Stop::BackingOff);
        }
        let due = at + chrono_duration(policy.backoff(failures.count));
        self.endpoint.failures.next_attempt_at = Some(due);
        if let Some(last) = self.attempts.last_mut() {
            last.next_retry_at = Some(due);
        }
        tracing::debug!(endpoint = %self.endpoint.id, failures = failures.count, %due, error = %last_error, "webhook attempt failed; backing off");
        self.give_back(None).await?;
        Ok(Stop::BackingOff)
    }

    /// Records progress and gives the lease back (disabling the endpoint
    /// when `disable` says why). A caller's change since the endpoint was
    /// read wins: the lease is given back all the same, so a replica
    /// claims the endpoint as the caller left it.
    async fn give_back(
        &mut self,
        disable: Option<(String, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<()> {
        if !self.record_with(None, disable).await? {
            self.service
                .store
                .release_webhook_lease(self.endpoint.id, self.owner)
                .await?;
        }
        Ok(())
    }

    /// Records progress and renews the lease. A caller's change to the
    /// endpoint since it was read is taken in: its settings, and its cursor
    /// if a replay moved it (`Moved`).
    async fn keep_lease(&mut self) -> Result<Lease> {
        let renewing = Instant::now();
        let until = now() + chrono_duration(self.service.webhooks.lease);
        if self.record(Some(until)).await? {
            self.lease_ends = renewing + self.service.webhooks.lease;
            return Ok(Lease::Held);
        }
        let Some(current) = self
            .service
            .store
            .renew_webhook_lease(self.endpoint.id, self.owner, until)
            .await?
        else {
            return Ok(Lease::Lost);
        };
        self.lease_ends = renewing + self.service.webhooks.lease;
        if !current.enabled {
            // Disabled by a caller: given back by its holder, so that no
            // one else sends while a send of this one may be in flight.
            self.service
                .store
                .release_webhook_lease(self.endpoint.id, self.owner)
                .await?;
            return Ok(Lease::Lost);
        }
        let replayed = current.replay_generation > self.endpoint.generation;
        let delivered_seq = self.endpoint.cursor_seq;
        self.recorded_seq = current.cursor_seq;
        self.endpoint = current;
        if !replayed {
            // Only the settings changed: what was acknowledged stays so.
            self.endpoint.cursor_seq = delivered_seq;
            self.record(Some(until)).await?;
        }
        // Either way the page in hand was read with the old settings: read
        // again from the cursor with the new ones.
        Ok(Lease::Moved)
    }

    async fn record(&mut self, lease_until: Option<chrono::DateTime<chrono::Utc>>) -> Result<bool> {
        self.record_with(lease_until, None).await
    }

    async fn record_with(
        &mut self,
        lease_until: Option<chrono::DateTime<chrono::Utc>>,
        disable: Option<(String, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<bool> {
        let progress = DeliveryProgress {
            endpoint: self.endpoint.id,
            owner: self.owner,
            generation: self.endpoint.generation,
            cursor_seq: self.endpoint.cursor_seq,
            failures: self.endpoint.failures,
            lease_until,
            disable,
            attempts: &self.attempts,
        };
        let recorded = self
            .service
            .store
            .record_webhook_progress(&progress)
            .await?;
        // Attempts of a write that matched nothing were made under a
        // generation the caller has since replaced: not kept.
        self.attempts.clear();
        self.last_recorded = Instant::now();
        if recorded {
            self.recorded_seq = self.endpoint.cursor_seq;
        }
        Ok(recorded)
    }

    /// Waits for a commit, the poll interval or the lease's renewal.
    async fn wait_for_changes(&mut self, lease: Duration) {
        let renew_at = self.lease_ends - lease * 2 / 3;
        let record_at = self.last_recorded + RECORD_EVERY;
        let pending = self.endpoint.cursor_seq != self.recorded_seq;
        tokio::select! {
            _ = self.signal.changed() => {}
            _ = self.endpoints_changed.changed() => {}
            () = tokio::time::sleep(self.service.log.poll_every) => {}
            () = tokio::time::sleep_until(renew_at) => {}
            () = tokio::time::sleep_until(record_at), if pending => {}
        }
    }
}

/// What an attempt's record says went wrong: at most 256 characters.
fn excerpt(outcome: &AttemptOutcome) -> String {
    outcome.error().chars().take(256).collect()
}
