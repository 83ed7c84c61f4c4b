//! Webhook endpoints and their delivery attempts; the lease that lets one
//! replica at a time deliver for an endpoint.
//!
//! The deliverer's writes name the lease they hold and the endpoint's
//! generation they read: a write from a replica whose lease was taken over,
//! or that has not seen a caller's latest change (a replay, a new URL),
//! matches no row and changes nothing. The database settles every race.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::Sql;
use super::{Session, Store, Transaction, push_page};
use crate::domain::WorkspaceId;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::webhook::{
    DeliveryAttempt, EndpointKinds, EndpointUrl, Failures, KEPT_ATTEMPTS, Secret, WebhookEndpoint,
};
use crate::error::{Error, FieldPath, Result};

const ENDPOINT_COLUMNS: &str = "id, workspace_id, url, description, kinds, secret, enabled, \
     disabled_reason, disabled_at, cursor_seq, consecutive_failures, failing_since, \
     next_attempt_at, generation, replay_generation, created_at, updated_at";

const ATTEMPT_COLUMNS: &str =
    "id, seq, attempt, http_status, error, latency_ms, delivered, next_retry_at, created_at";

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    workspace_id: Uuid,
    url: String,
    description: String,
    kinds: String,
    secret: String,
    enabled: bool,
    disabled_reason: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
    cursor_seq: i64,
    consecutive_failures: i32,
    failing_since: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    generation: i64,
    replay_generation: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = Error;

    fn try_from(row: EndpointRow) -> Result<Self> {
        let url = EndpointUrl::parse(&row.url, &FieldPath::field("url"))
            .map_err(|violation| Error::internal(format!("stored webhook URL: {violation}")))?;
        Ok(Self {
            id: row.id,
            workspace: WorkspaceId(row.workspace_id),
            url,
            kinds: EndpointKinds::from_stored(&row.kinds)?,
            description: row.description,
            secret: Secret::from_stored(row.secret),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            disabled_at: row.disabled_at,
            cursor_seq: row.cursor_seq,
            failures: Failures {
                count: u32::try_from(row.consecutive_failures).unwrap_or(0),
                since: row.failing_since,
                next_attempt_at: row.next_attempt_at,
            },
            generation: row.generation,
            replay_generation: row.replay_generation,
            replayed: false,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Uuid,
    seq: i64,
    attempt: i32,
    http_status: i32,
    error: String,
    latency_ms: i64,
    delivered: bool,
    next_retry_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<AttemptRow> for DeliveryAttempt {
    fn from(row: AttemptRow) -> Self {
        Self {
            id: row.id,
            seq: row.seq,
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            http_status: u16::try_from(row.http_status).unwrap_or(0),
            error: row.error,
            latency: std::time::Duration::from_millis(u64::try_from(row.latency_ms).unwrap_or(0)),
            attempted_at: row.created_at,
            next_retry_at: row.next_retry_at,
            delivered: row.delivered,
        }
    }
}

fn endpoints(rows: Vec<EndpointRow>) -> Result<Vec<WebhookEndpoint>> {
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Where an endpoint's page cursor stands.
pub fn endpoint_cursor(endpoint: &WebhookEndpoint) -> Cursor {
    Cursor {
        created_at: endpoint.created_at,
        id: endpoint.id,
    }
}

/// Where an attempt's page cursor stands.
pub fn attempt_cursor(attempt: &DeliveryAttempt) -> Cursor {
    Cursor {
        created_at: attempt.attempted_at,
        id: attempt.id,
    }
}

fn count(value: u32) -> i64 {
    i64::from(value)
}

impl Session {
    pub async fn webhook_endpoint(
        &mut self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<WebhookEndpoint>> {
        let sql = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace.0)
        .bind(id);
        let row: Option<EndpointRow> = self.fetch_optional(sql).await?;
        row.map(TryInto::try_into).transpose()
    }

    /// A page of the workspace's endpoints, oldest first (up to one more
    /// than the page, for `PageRequest::finish`).
    pub async fn webhook_endpoints(
        &mut self,
        workspace: WorkspaceId,
        page: &PageRequest,
    ) -> Result<Vec<WebhookEndpoint>> {
        let mut sql = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1"
        ))
        .bind(workspace.0);
        push_page(&mut sql, page, "", "id");
        endpoints(self.fetch_all(sql).await?)
    }

    /// A page of an endpoint's attempts, newest first.
    pub async fn webhook_deliveries(
        &mut self,
        endpoint: Uuid,
        page: &PageRequest,
    ) -> Result<Vec<DeliveryAttempt>> {
        let mut sql = Sql::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1"
        ))
        .bind(endpoint);
        push_page(&mut sql, &page.newest_first(), "", "id");
        let rows: Vec<AttemptRow> = self.fetch_all(sql).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The number of the last change committed before `time` (the oldest
    /// kept, when every earlier one was pruned).
    pub async fn last_seq_before(
        &mut self,
        workspace: WorkspaceId,
        time: DateTime<Utc>,
    ) -> Result<i64> {
        let sql = Sql::new(
            "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE workspace_id = $1 AND committed_at < $2",
        )
        .bind(workspace.0)
        .bind(time);
        let (before,): (i64,) = self.fetch_one(sql).await?;
        let horizon = self.log_horizon(workspace).await?;
        Ok(before.max(horizon.pruned_seq))
    }
}

impl Transaction {
    pub async fn insert_webhook_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()> {
        let sql = Sql::new(
            "INSERT INTO webhook_endpoints (id, workspace_id, url, description, kinds, secret, \
             enabled, disabled_at, cursor_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(endpoint.id)
        .bind(endpoint.workspace.0)
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_str())
        .bind(endpoint.kinds.to_stored())
        .bind(endpoint.secret.reveal())
        .bind(endpoint.enabled)
        .bind(endpoint.disabled_at)
        .bind(endpoint.cursor_seq)
        .bind(endpoint.created_at)
        .bind(endpoint.updated_at);
        self.execute(sql).await.map(drop)
    }

    /// The endpoint, locked until the transaction ends.
    pub async fn lock_webhook_endpoint(
        &mut self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<WebhookEndpoint>> {
        let sql = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2{}",
            self.dialect().lock_row()
        ))
        .bind(workspace.0)
        .bind(id);
        let row: Option<EndpointRow> = self.fetch_optional(sql).await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Writes a caller's change of the endpoint and bumps its generation, so
    /// its deliverer sees the change before its next write (and, for a
    /// replay, that the cursor moved). The lease stays: its holder gives it
    /// back when it sees the endpoint disabled, after any send in flight.
    pub async fn save_webhook_endpoint(
        &mut self,
        endpoint: &WebhookEndpoint,
    ) -> Result<WebhookEndpoint> {
        let sql = Sql::new(format!(
            "UPDATE webhook_endpoints SET url = $3, description = $4, kinds = $5, secret = $6, \
             enabled = $7, disabled_reason = $8, disabled_at = $9, cursor_seq = $10, \
             consecutive_failures = $11, failing_since = $12, next_attempt_at = $13, \
             updated_at = $14, generation = generation + 1, \
             replay_generation = CASE WHEN $15 THEN generation + 1 ELSE replay_generation END \
             WHERE workspace_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(endpoint.workspace.0)
        .bind(endpoint.id)
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_str())
        .bind(endpoint.kinds.to_stored())
        .bind(endpoint.secret.reveal())
        .bind(endpoint.enabled)
        .bind(endpoint.disabled_reason.clone())
        .bind(endpoint.disabled_at)
        .bind(endpoint.cursor_seq)
        .bind(count(endpoint.failures.count))
        .bind(endpoint.failures.since)
        .bind(endpoint.failures.next_attempt_at)
        .bind(endpoint.updated_at)
        .bind(endpoint.replayed);
        let row: EndpointRow = self.fetch_one(sql).await?;
        row.try_into()
    }

    pub async fn delete_webhook_endpoint(
        &mut self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<WebhookEndpoint>> {
        let sql = Sql::new(format!(
            "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2 \
             RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(workspace.0)
        .bind(id);
        let row: Option<EndpointRow> = self.fetch_optional(sql).await?;
        row.map(TryInto::try_into).transpose()
    }
}

/// What a deliverer writes after attempts: where the endpoint's delivery
/// stands, the attempts made, and its lease renewed or given back.
#[derive(Debug)]
pub struct DeliveryProgress<'a> {
    pub endpoint: Uuid,
    /// The lease holder.
    pub owner: Uuid,
    /// The generation the deliverer read.
    pub generation: i64,
    pub cursor_seq: i64,
    pub failures: Failures,
    /// The lease's new expiry; `None` gives the lease back (a backoff, a
    /// stop).
    pub lease_until: Option<DateTime<Utc>>,
    /// Disables the endpoint with this reason.
    pub disable: Option<(String, DateTime<Utc>)>,
    pub attempts: &'a [DeliveryAttempt],
}

impl Store {
    /// Takes the lease of every enabled endpoint that is due and that no
    /// one holds (or whose holder let its lease expire), until `until`.
    /// One statement: two replicas claiming at once never both win one.
    pub async fn claim_webhook_endpoints(
        &self,
        owner: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<WebhookEndpoint>> {
        let mut tx = self.write_unqueued().await?;
        let sql = Sql::new(format!(
            "UPDATE webhook_endpoints SET lease_owner = $1, lease_expires_at = $3 \
             WHERE enabled AND (lease_owner IS NULL OR lease_expires_at < $2) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
             RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(owner)
        .bind(now)
        .bind(until);
        let rows: Vec<EndpointRow> = tx.fetch_all(sql).await?;
        tx.commit().await?;
        endpoints(rows)
    }

    /// Records a deliverer's progress if it still holds the lease and has
    /// seen the endpoint's latest generation; `false` (nothing written)
    /// otherwise. Attempts beyond the newest `KEPT_ATTEMPTS` are dropped.
    pub async fn record_webhook_progress(&self, progress: &DeliveryProgress<'_>) -> Result<bool> {
        let mut tx = self.write_unqueued().await?;
        let (enabled, reason, disabled_at) = match &progress.disable {
            Some((reason, at)) => (false, Some(reason.clone()), Some(*at)),
            None => (true, None, None),
        };
        let owner = progress.lease_until.map(|_| progress.owner);
        let sql = Sql::new(
            "UPDATE webhook_endpoints SET cursor_seq = $4, consecutive_failures = $5, \
             failing_since = $6, next_attempt_at = $7, lease_owner = $8, lease_expires_at = $9, \
             enabled = $10, disabled_reason = $11, disabled_at = $12 \
             WHERE id = $1 AND lease_owner = $2 AND generation = $3 AND enabled",
        )
        .bind(progress.endpoint)
        .bind(progress.owner)
        .bind(progress.generation)
        .bind(progress.cursor_seq)
        .bind(count(progress.failures.count))
        .bind(progress.failures.since)
        .bind(progress.failures.next_attempt_at)
        .bind(owner)
        .bind(progress.lease_until)
        .bind(enabled)
        .bind(reason)
        .bind(disabled_at);
        if tx.execute(sql).await? == 0 {
            return Ok(false);
        }
        if !progress.attempts.is_empty() {
            // Its text varies with the number of attempts: not kept prepared.
            let mut insert = Sql::new(format!(
                "INSERT INTO webhook_deliveries (endpoint_id, {ATTEMPT_COLUMNS}) "
            ))
            .unprepared();
            insert.push_values(progress.attempts, |row, attempt| {
                row.bind(progress.endpoint)
                    .bind(attempt.id)
                    .bind(attempt.seq)
                    .bind(count(attempt.attempt))
                    .bind(i64::from(attempt.http_status))
                    .bind(attempt.error.as_str())
                    .bind(i64::try_from(attempt.latency.as_millis()).unwrap_or(i64::MAX))
                    .bind(attempt.delivered)
                    .bind(attempt.next_retry_at)
                    .bind(attempt.attempted_at);
            });
            tx.execute(insert).await?;
            // SQLite takes an OFFSET only after a LIMIT.
            let prune = Sql::new(
                "DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND id IN (\
                 SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT 1000000 OFFSET $2)",
            )
            .bind(progress.endpoint)
            .bind(KEPT_ATTEMPTS);
            tx.execute(prune).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Extends a held lease and reads the endpoint as it now stands; `None`
    /// when the lease is lost or the endpoint deleted.
    pub async fn renew_webhook_lease(
        &self,
        endpoint: Uuid,
        owner: Uuid,
        until: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>> {
        let mut tx = self.write_unqueued().await?;
        let sql = Sql::new(format!(
            "UPDATE webhook_endpoints SET lease_expires_at = $3 \
             WHERE id = $1 AND lease_owner = $2 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(endpoint)
        .bind(owner)
        .bind(until);
        let row: Option<EndpointRow> = tx.fetch_optional(sql).await?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Gives a lease back, so another replica may take the endpoint over at
    /// once (a stopping server).
    pub async fn release_webhook_lease(&self, endpoint: Uuid, owner: Uuid) -> Result<()> {
        let mut tx = self.write_unqueued().await?;
        let sql = Sql::new(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(endpoint)
        .bind(owner);
        tx.execute(sql).await?;
        tx.commit().await
    }
}
