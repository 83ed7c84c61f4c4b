//! Webhook endpoints: the settings callers manage. Delivery itself is in
//! `delivery.rs`.
//!
//! Endpoints are read on the primary: they are settings, not records of the
//! change log, so no read-your-writes token vouches for a replica's copy.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Service, found, retrying};
use crate::domain::change::ChangeCursor;
use crate::domain::page::{Page, PageRequest};
use crate::domain::webhook::{
    DeliveryAttempt, Destination, EndpointPatch, EndpointUrl, FORBIDDEN_DESTINATION, NewEndpoint,
    RetryPolicy, WebhookEndpoint, is_forbidden_address,
};
use crate::domain::{Caller, now};
use crate::error::{Error, FieldPath, Result};
use crate::store::{attempt_cursor, endpoint_cursor};

/// How webhooks are checked and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Whether endpoints may be on loopback, private or link-local
    /// addresses (tests, local setups).
    pub allow_private: bool,
    pub retry: RetryPolicy,
    /// How long a replica's claim on an endpoint lasts unless renewed; a
    /// dead replica's endpoints move to another after this.
    pub lease: Duration,
    /// How often endpoints that no one delivers for are looked for.
    pub claim_every: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(30),
            claim_every: Duration::from_secs(1),
        }
    }
}

/// The longest wait for a name's addresses when an endpoint is set.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// After this cursor.
    Cursor(ChangeCursor),
    /// From the first change committed at or after this time.
    Time(DateTime<Utc>),
}

impl Service {
    /// Creates an endpoint that delivers the changes committed from now on.
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Caller,
        new: NewEndpoint,
    ) -> Result<WebhookEndpoint> {
        self.check_destination(&new.url).await?;
        let new = &new;
        let endpoint = retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let horizon = tx.log_horizon(caller.workspace).await?;
            let endpoint =
                WebhookEndpoint::new(caller.workspace, new.clone(), horizon.last_seq, now());
            tx.insert_webhook_endpoint(&endpoint).await?;
            tx.commit().await?;
            Ok(endpoint)
        })
        .await?;
        self.endpoints_changed();
        Ok(endpoint)
    }

    pub async fn get_webhook_endpoint(&self, caller: &Caller, id: Uuid) -> Result<WebhookEndpoint> {
        let mut session = self.store.read().await?;
        found(
            session.webhook_endpoint(caller.workspace, id).await?,
            "webhook endpoint",
        )
    }

    pub async fn list_webhook_endpoints(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>> {
        let mut session = self.store.read().await?;
        let rows = session.webhook_endpoints(caller.workspace, page).await?;
        Ok(page.finish(rows, endpoint_cursor))
    }

    pub async fn update_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<WebhookEndpoint> {
        if let Some(url) = &patch.url {
            self.check_destination(url).await?;
        }
        let patch = &patch;
        self.changing_endpoint(caller, id, |endpoint| {
            endpoint.apply(patch.clone(), now());
            Ok(())
        })
        .await
    }

    pub async fn delete_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<WebhookEndpoint> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let deleted = found(
                tx.delete_webhook_endpoint(caller.workspace, id).await?,
                "webhook endpoint",
            )?;
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    /// A new signing secret for the endpoint, in the endpoint returned.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<WebhookEndpoint> {
        self.changing_endpoint(caller, id, |endpoint| {
            endpoint.rotate_secret(now());
            Ok(())
        })
        .await
    }

    pub async fn enable_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<WebhookEndpoint> {
        self.changing_endpoint(caller, id, |endpoint| {
            endpoint.enable(now());
            Ok(())
        })
        .await
    }

    /// Moves the endpoint's cursor: delivery goes on from there, at once.
    pub async fn replay_webhook(
        &self,
        caller: &Caller,
        id: Uuid,
        from: ReplayFrom,
    ) -> Result<WebhookEndpoint> {
        retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let mut endpoint = found(
                tx.lock_webhook_endpoint(caller.workspace, id).await?,
                "webhook endpoint",
            )?;
            let horizon = tx.log_horizon(caller.workspace).await?;
            let after = match from {
                ReplayFrom::Cursor(cursor) => {
                    cursor.check_kept(horizon.pruned_seq)?;
                    if cursor.seq > horizon.last_seq {
                        return Err(Error::invalid(
                            "cursor",
                            "is after the last change committed",
                        ));
                    }
                    cursor.seq
                }
                ReplayFrom::Time(time) => tx.last_seq_before(caller.workspace, time).await?,
            };
            endpoint.replay_after(after, now());
            let saved = tx.save_webhook_endpoint(&endpoint).await?;
            tx.commit().await?;
            Ok(saved)
        })
        .await
        .inspect(|_| self.endpoints_changed())
    }

    /// A page of the endpoint's recent attempts, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        caller: &Caller,
        id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<DeliveryAttempt>> {
        let mut session = self.store.read().await?;
        found(
            session.webhook_endpoint(caller.workspace, id).await?,
            "webhook endpoint",
        )?;
        let rows = session.webhook_deliveries(id, page).await?;
        Ok(page.finish(rows, attempt_cursor))
    }

    /// Wakes this process's dispatcher and deliverers.
    fn endpoints_changed(&self) {
        self.webhooks_changed
            .send_modify(|changes| *changes = changes.wrapping_add(1));
    }

    /// Changes a locked endpoint with `change` and saves it (bumping its
    /// generation, which its deliverer notices before its next write).
    async fn changing_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
        change: impl Fn(&mut WebhookEndpoint) -> Result<()>,
    ) -> Result<WebhookEndpoint> {
        let change = &change;
        let saved = retrying(&[], || async move {
            let mut tx = self.store.write().await?;
            let mut endpoint = found(
                tx.lock_webhook_endpoint(caller.workspace, id).await?,
                "webhook endpoint",
            )?;
            change(&mut endpoint)?;
            let saved = tx.save_webhook_endpoint(&endpoint).await?;
            tx.commit().await?;
            Ok(saved)
        })
        .await?;
        self.endpoints_changed();
        Ok(saved)
    }

    /// Refuses a URL that names or resolves to an address webhooks may not
    /// reach, unless the server allows them. Deliveries check again at
    /// every connection, so a name that later resolves elsewhere is still
    /// refused.
    async fn check_destination(&self, url: &EndpointUrl) -> Result<()> {
        if self.webhooks.allow_private {
            return Ok(());
        }
        let field = FieldPath::field("endpoint").then("url");
        let addresses: Vec<IpAddr> = match url.destination() {
            Destination::Address(address) => vec![address],
            Destination::Name(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), url.port()));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(found)) => found.map(|socket| socket.ip()).collect(),
                    Ok(Err(error)) => {
                        return Err(Error::invalid(
                            field,
                            format!("names a host that does not resolve ({error})"),
                        ));
                    }
                    Err(_) => {
                        return Err(Error::invalid(
                            field,
                            "names a host that did not resolve in 3 seconds",
                        ));
                    }
                }
            }
        };
        if addresses.is_empty() || addresses.into_iter().any(is_forbidden_address) {
            return Err(Error::invalid(field, FORBIDDEN_DESTINATION));
        }
        Ok(())
    }
}
