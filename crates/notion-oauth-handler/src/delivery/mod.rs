//! Delivers each queued connection event to the developer's app: signed webhooks, a command
//! hook and in-process hooks, at least once, in order per connection, across restarts.
//!
//! The outbox row was written with the change it reports; a worker claims it (a lease on the
//! row, so several workers and processes share the queue), sends it, and marks it delivered, or
//! schedules a retry with exponential backoff and jitter, or after `max_attempts` dead-letters
//! it for an operator to redeliver. A crash between sending and marking sends it again: receivers
//! deduplicate by the event id.

mod command;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{DeliveryPolicy, Target, TargetKind};
use crate::domain::ConnectionStatus;
use crate::hooks::{ConnectionHook, HookError, HookEvent};
use crate::metrics::{AttemptOutcome, Metrics};
use crate::store::{Delivery, Retry, Store, StoreError, now};
use crate::telemetry::Chain;
use crate::vault::Vault;

/// How long the first worker, idle, waits before looking again.
const IDLE: Duration = Duration::from_millis(200);
/// How long the other workers, idle, wait for the first to wake them before looking anyway.
const IDLE_OTHERS: Duration = Duration::from_secs(5);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// An embedding app's hook, under its name in delivery listings.
pub(crate) type NamedHook = (String, Arc<dyn ConnectionHook>);

/// Why one attempt failed; its words are what delivery listings show as `last_error`.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the target is no longer configured")]
    UnknownTarget,
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
    #[error(transparent)]
    Command(#[from] command::CommandError),
    #[error("the hook failed: {0}")]
    Hook(#[source] HookFailure),
    #[error("the event could not be prepared: {0}")]
    Body(#[from] serde_json::Error),
    #[error("the event could not be prepared: {0}")]
    Tokens(#[from] StoreError),
}

/// How an in-process hook failed.
#[derive(Debug, thiserror::Error)]
enum HookFailure {
    #[error("{0}")]
    Returned(#[source] HookError),
    #[error("the hook panicked")]
    Panicked,
    #[error("the hook ran longer than {0} s")]
    TimedOut(u64),
}

/// What one turn of a worker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    /// It claimed a delivery and recorded its outcome.
    Handled,
    /// Nothing was due.
    EmptyQueue,
}

/// Where a target's deliveries go.
enum Destination<'a> {
    Configured(&'a TargetKind),
    Hook(&'a Arc<dyn ConnectionHook>),
}

/// Delivers queued events to the targets this process knows: the configured ones and the
/// embedding app's hooks.
pub(crate) struct Deliverer {
    store: Arc<dyn Store>,
    /// Opens tokens for webhooks that asked for them.
    vault: Arc<Vault>,
    targets: Vec<Target>,
    hooks: Vec<NamedHook>,
    policy: DeliveryPolicy,
    /// Its own timeout, and no redirects (a redirect would resend the signed body, tokens
    /// perhaps included, somewhere else).
    webhook_client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Deliverer {
    /// Delivers to `targets` and `hooks` as `policy` says.
    ///
    /// # Errors
    /// The webhook client cannot be built (no TLS provider).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        targets: Vec<Target>,
        hooks: Vec<NamedHook>,
        policy: DeliveryPolicy,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let webhook_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .user_agent(concat!("notion-oauth-handler/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .build()?;
        Ok(Self { store, vault, targets, hooks, policy, webhook_client, metrics })
    }

    /// Whether there is anywhere to deliver to.
    pub(crate) fn has_targets(&self) -> bool {
        !self.targets.is_empty() || !self.hooks.is_empty()
    }

    fn names(&self) -> Vec<&str> {
        let hooks = self.hooks.iter().map(|(name, _)| name.as_str());
        self.targets.iter().map(|t| t.name.as_str()).chain(hooks).collect()
    }

    fn destination(&self, name: &str) -> Option<Destination<'_>> {
        if let Some(target) = self.targets.iter().find(|t| t.name == name) {
            return Some(Destination::Configured(&target.kind));
        }
        self.hooks.iter().find(|(hook, _)| hook == name).map(|(_, hook)| Destination::Hook(hook))
    }

    /// How long a worker holds a delivery: the attempt's own limit plus a margin. A worker that
    /// dies keeps the delivery (and those after it, for order) waiting no longer than this.
    fn lock_for(&self, destination: Option<&Destination<'_>>) -> i64 {
        let limit = match destination {
            Some(Destination::Configured(TargetKind::Command { timeout, .. })) => *timeout,
            _ => self.policy.timeout,
        };
        now() + i64::try_from(limit.as_secs()).unwrap_or(600) + 5
    }

    /// Claims and handles one due delivery, waking another worker when it found one.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "delivery.try_deliver_one", level = "debug", skip_all)]
    async fn try_deliver_one(
        &self,
        worker: &str,
        wake: &tokio::sync::Notify,
    ) -> Result<Polled, StoreError> {
        let names = self.names();
        let Some(delivery) = self.store.claim_delivery(worker, self.lock_for(None), &names).await?
        else {
            return Ok(Polled::EmptyQueue);
        };
        // There may be more: another worker looks while this one delivers.
        wake.notify_one();
        let destination = self.destination(&delivery.target);
        if let Some(command @ Destination::Configured(TargetKind::Command { .. })) = &destination {
            let until = self.lock_for(Some(command));
            self.store.extend_delivery_lock(delivery.id, worker, until).await?;
        }
        let outcome = match destination {
            Some(destination) => self.attempt(&destination, &delivery).await,
            None => Err(AttemptError::UnknownTarget),
        };
        let held = match outcome {
            Ok(()) => {
                tracing::info!(
                    event_id = delivery.event_id,
                    target = delivery.target,
                    event_type = delivery.event_type,
                    "event delivered"
                );
                self.metrics.delivery_attempt(AttemptOutcome::Delivered);
                self.store.mark_delivered(delivery.id, worker).await?
            }
            Err(error) => self.record_failure(&delivery, worker, &error).await?,
        };
        if !held {
            tracing::warn!(
                event_id = delivery.event_id,
                target = delivery.target,
                "the delivery's lock had expired before its outcome was recorded; it may be sent again"
            );
        }
        Ok(Polled::Handled)
    }

    /// Schedules the retry, or dead-letters the delivery when its attempts are spent.
    async fn record_failure(
        &self,
        delivery: &Delivery,
        worker: &str,
        error: &AttemptError,
    ) -> Result<bool, StoreError> {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
        let retry = if attempts >= self.policy.max_attempts {
            tracing::error!(event_id = delivery.event_id, target = delivery.target, attempts, error = %Chain(error), "delivery dead-lettered; later events of this connection wait until it is redelivered");
            self.metrics.delivery_attempt(AttemptOutcome::Dead);
            Retry::DeadLetter
        } else {
            self.metrics.delivery_attempt(AttemptOutcome::Failed);
            let wait = backoff(self.policy.retry_base, attempts);
            tracing::warn!(event_id = delivery.event_id, target = delivery.target, attempts, error = %Chain(error), retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
            // Rounded up, so a retry never comes sooner than the backoff says.
            Retry::At(now() + i64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(3600))
        };
        self.store.mark_failed(delivery.id, worker, &error.to_string(), retry).await
    }

    async fn attempt(
        &self,
        destination: &Destination<'_>,
        delivery: &Delivery,
    ) -> Result<(), AttemptError> {
        match destination {
            Destination::Configured(TargetKind::Webhook { url, secret, include_tokens }) => {
                let body = if *include_tokens {
                    self.with_tokens(delivery).await?
                } else {
                    delivery.payload.clone()
                };
                Ok(webhook::send(&self.webhook_client, url, secret, delivery, &body).await?)
            }
            Destination::Configured(TargetKind::Command { program, args, env, timeout }) => {
                let command = command::Command { program, args, pass_env: env, timeout: *timeout };
                Ok(command.run(delivery).await?)
            }
            Destination::Hook(hook) => {
                let event: HookEvent = serde_json::from_str(&delivery.payload)?;
                self.call_hook(hook, event).await.map_err(AttemptError::Hook)
            }
        }
    }

    /// Runs an in-process hook in its own task, so that one that panics fails this attempt,
    /// not the worker.
    async fn call_hook(
        &self,
        hook: &Arc<dyn ConnectionHook>,
        event: HookEvent,
    ) -> Result<(), HookFailure> {
        let hook = hook.clone();
        let call = tokio::spawn(async move { hook.on_event(&event).await });
        let aborter = call.abort_handle();
        match tokio::time::timeout(self.policy.timeout, call).await {
            Ok(Ok(result)) => result.map_err(HookFailure::Returned),
            Ok(Err(_)) => Err(HookFailure::Panicked),
            Err(_) => {
                aborter.abort();
                Err(HookFailure::TimedOut(self.policy.timeout.as_secs()))
            }
        }
    }

    /// The body with the connection's current tokens added, for webhooks that asked for them.
    /// Tokens are never stored in the outbox: they are read (and opened) at send time.
    async fn with_tokens(&self, delivery: &Delivery) -> Result<String, AttemptError> {
        let mut body: serde_json::Value = serde_json::from_str(&delivery.payload)?;
        if let Some(bot_id) = &delivery.bot_id {
            let tokens = self.store.tokens(&self.vault, bot_id).await?;
            if let Some(tokens) = tokens.filter(|t| t.status == ConnectionStatus::Active) {
                body["data"]["tokens"] = serde_json::json!({
                    "access_token": tokens.access_token.as_ref().map(|t| t.expose_secret()),
                    "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
                });
            }
        }
        Ok(serde_json::to_string(&body)?)
    }
}

/// The delivery workers of this process.
pub(crate) struct Workers {
    deliverer: Arc<Deliverer>,
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// Begins every worker id of this process, to free its leases at shutdown.
    prefix: String,
}

impl Workers {
    /// Starts the workers.
    pub(crate) fn start(deliverer: Arc<Deliverer>) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let prefix = format!("{}-{}-", std::process::id(), uuid::Uuid::new_v4().simple());
        let wake = Arc::new(tokio::sync::Notify::new());
        let handles = (0..deliverer.policy.concurrency)
            .map(|index| {
                let worker = Worker {
                    id: format!("{prefix}{index}"),
                    idle: if index == 0 { IDLE } else { IDLE_OTHERS },
                    wake: wake.clone(),
                };
                tokio::spawn(run_worker(deliverer.clone(), worker, stopped.clone()))
            })
            .collect();
        Self { deliverer, stop, handles, prefix }
    }

    /// Lets each worker finish its attempt under way (up to `limit`), then frees the leases of
    /// any that did not, so a restart delivers them at once.
    pub(crate) async fn stop(mut self, limit: Duration) {
        let _ = self.stop.send(true);
        let handles = std::mem::take(&mut self.handles);
        let aborts: Vec<_> = handles.iter().map(tokio::task::JoinHandle::abort_handle).collect();
        if tokio::time::timeout(limit, futures_util::future::join_all(handles)).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
        match self.deliverer.store.release_delivery_locks(&self.prefix).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "released deliveries cut short by the shutdown"),
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "could not release delivery locks; they expire by themselves")
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}

/// One of the process's workers. Only the first looks at the queue often while it is empty;
/// a worker that finds a delivery wakes another, so a backlog has every worker on it within a
/// few claims while an idle server asks its database a few times a second, not a few dozen.
struct Worker {
    /// The lock owner written on the deliveries it claims.
    id: String,
    /// How long it waits, idle, before looking again.
    idle: Duration,
    wake: Arc<tokio::sync::Notify>,
}

/// Delivers until told to stop, finishing the attempt under way first.
async fn run_worker(
    deliverer: Arc<Deliverer>,
    worker: Worker,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let idle = match deliverer.try_deliver_one(&worker.id, &worker.wake).await {
            Ok(Polled::Handled) => continue,
            Ok(Polled::EmptyQueue) => worker.idle,
            Err(error) => {
                tracing::error!(error = %Chain(&error), "the delivery queue could not be read");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = stop.changed() => {}
            () = worker.wake.notified() => {}
            () = tokio::time::sleep(idle) => {}
        }
    }
}

/// `base × 2^(attempts-1)`, ±25 % jitter, then capped at an hour.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    // A random byte spread over a factor of 0.75 to 1.25, so retries of many deliveries that
    // failed together do not arrive together.
    let factor = 0.75 + f64::from(jitter[0]) / 510.0;
    exponential.min(MAX_BACKOFF * 2).mul_f64(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempts in 1..=5 {
            let wait = backoff(base, attempts).as_secs_f64();
            let nominal = 2.0 * 2f64.powi(attempts as i32 - 1);
            assert!(wait >= nominal * 0.74 && wait <= nominal * 1.26, "{attempts}: {wait}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }
}
