//! Delivers each queued connection event to the developer's app: signed webhooks and a command
//! hook, at least once, in order per connection, across restarts.
//!
//! The outbox row was written with the change it reports; a worker claims it (a lease on the
//! row, so several workers and processes share the queue), sends it, and marks it delivered, or
//! schedules a retry with exponential backoff and jitter, or after `max_attempts` dead-letters
//! it for an operator to redeliver. A crash between sending and marking sends it again: receivers
//! deduplicate by the event id.

mod command;
mod webhook;

use std::time::Duration;

use crate::config::TargetKind;
use crate::startup::AppState;
use crate::store::{Delivery, now};

/// How long an idle worker waits before looking again.
const IDLE: Duration = Duration::from_millis(200);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Workers per process: deliveries to one connection stay in order whatever the count.
pub const WORKERS: usize = 2;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("the target is no longer configured")]
    UnknownTarget,
    #[error("{0}")]
    Webhook(String),
    #[error("{0}")]
    Command(String),
    #[error("the hook failed: {0}")]
    Hook(String),
    #[error("the event could not be prepared: {0}")]
    Prepare(String),
}

/// The delivery workers of this process.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// Begins every worker id of this process, to free its leases at shutdown.
    prefix: String,
}

impl Workers {
    /// Starts [`WORKERS`] workers.
    pub fn start(app: &AppState) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let prefix = format!("{}-{}-", std::process::id(), uuid::Uuid::new_v4().simple());
        let handles = (0..WORKERS)
            .map(|index| {
                tokio::spawn(run_worker(app.clone(), format!("{prefix}{index}"), stopped.clone()))
            })
            .collect();
        Self { stop, handles, prefix }
    }

    /// Lets each worker finish its attempt under way (up to `limit`), then frees the leases of
    /// any that did not, so a restart delivers them at once.
    pub async fn stop(mut self, app: &AppState, limit: Duration) {
        let _ = self.stop.send(true);
        let handles = std::mem::take(&mut self.handles);
        let aborts: Vec<_> = handles.iter().map(tokio::task::JoinHandle::abort_handle).collect();
        if tokio::time::timeout(limit, futures_util::future::join_all(handles)).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
        match app.store.release_delivery_locks(&self.prefix).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "released deliveries cut short by the shutdown"),
            Err(error) => {
                tracing::warn!(error = %error, "could not release delivery locks; they expire by themselves")
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

/// Delivers until told to stop, finishing the attempt under way first.
async fn run_worker(app: AppState, worker: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        let idle = match try_deliver_one(&app, &worker).await {
            Ok(true) => continue,
            Ok(false) => IDLE,
            Err(error) => {
                tracing::error!(error = %error, "the delivery queue could not be read");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(idle) => {}
        }
    }
}

/// How long a worker holds a delivery: the attempt's own limit plus a margin. A worker that
/// dies keeps the delivery (and those after it, for order) waiting no longer than this.
fn lock_for(app: &AppState, target: Option<&crate::config::Target>) -> i64 {
    let limit = match target.map(|t| &t.kind) {
        Some(TargetKind::Command { timeout, .. }) => *timeout,
        _ => app.config.deliveries.timeout,
    };
    now() + i64::try_from(limit.as_secs()).unwrap_or(600) + 5
}

/// Claims and handles one due delivery; `false` when none is due.
///
/// # Errors
/// Database failures.
pub async fn try_deliver_one(
    app: &AppState,
    worker: &str,
) -> Result<bool, crate::store::StoreError> {
    let deliveries = &app.config.deliveries;
    let known: Vec<&str> = deliveries.targets.iter().map(|t| t.name.as_str()).collect();
    let Some(delivery) = app.store.claim_delivery(worker, lock_for(app, None), &known).await?
    else {
        return Ok(false);
    };
    let target = deliveries.target(&delivery.target);
    if matches!(target.map(|t| &t.kind), Some(TargetKind::Command { .. })) {
        app.store.extend_delivery_lock(delivery.id, worker, lock_for(app, target)).await?;
    }
    let held = match attempt(app, &delivery).await {
        Ok(()) => {
            tracing::info!(
                event_id = delivery.event_id,
                target = delivery.target,
                event_type = delivery.event_type,
                "event delivered"
            );
            app.store.mark_delivered(delivery.id, worker).await?
        }
        Err(error) => {
            let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
            let dead = attempts >= deliveries.max_attempts;
            let wait = backoff(deliveries.retry_base, attempts);
            // Rounded up, so a retry never comes sooner than the backoff says.
            let next = now() + i64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(3600);
            if dead {
                tracing::error!(event_id = delivery.event_id, target = delivery.target, attempts, error = %error, "delivery dead-lettered; later events of this connection wait until it is redelivered");
            } else {
                tracing::warn!(event_id = delivery.event_id, target = delivery.target, attempts, error = %error, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
            }
            app.store.mark_failed(delivery.id, worker, &error.to_string(), next, dead).await?
        }
    };
    if !held {
        tracing::warn!(
            event_id = delivery.event_id,
            target = delivery.target,
            "the delivery's lock had expired before its outcome was recorded; it may be sent again"
        );
    }
    Ok(true)
}

async fn attempt(app: &AppState, delivery: &Delivery) -> Result<(), AttemptError> {
    let target =
        app.config.deliveries.target(&delivery.target).ok_or(AttemptError::UnknownTarget)?;
    match &target.kind {
        TargetKind::Webhook { url, secret, include_tokens } => {
            let body = if *include_tokens {
                with_tokens(app, delivery).await.map_err(AttemptError::Prepare)?
            } else {
                delivery.payload.clone()
            };
            webhook::send(&app.webhook_client, url, secret, delivery, &body)
                .await
                .map_err(AttemptError::Webhook)
        }
        TargetKind::Command { program, args, env, timeout } => {
            command::run(program, args, env, *timeout, delivery)
                .await
                .map_err(AttemptError::Command)
        }
        TargetKind::InProcess(hook) => {
            let event: crate::hooks::HookEvent = serde_json::from_str(&delivery.payload)
                .map_err(|e| AttemptError::Prepare(e.to_string()))?;
            // In its own task: a hook that panics fails this attempt, not the worker.
            let hook = hook.0.clone();
            let call = tokio::spawn(async move { hook.on_event(&event).await });
            let aborter = call.abort_handle();
            match tokio::time::timeout(app.config.deliveries.timeout, call).await {
                Ok(Ok(result)) => result.map_err(AttemptError::Hook),
                Ok(Err(_)) => Err(AttemptError::Hook("the hook panicked".into())),
                Err(_) => {
                    aborter.abort();
                    Err(AttemptError::Hook(format!(
                        "the hook ran longer than {} s",
                        app.config.deliveries.timeout.as_secs()
                    )))
                }
            }
        }
    }
}

/// The body with the connection's current tokens added, for webhooks that asked for them.
/// Tokens are never stored in the outbox: they are read (and opened) at send time.
async fn with_tokens(app: &AppState, delivery: &Delivery) -> Result<String, String> {
    let mut body: serde_json::Value =
        serde_json::from_str(&delivery.payload).map_err(|e| e.to_string())?;
    if let Some(bot_id) = &delivery.bot_id {
        let tokens =
            app.store.tokens(&app.config.vault, bot_id).await.map_err(|e| e.to_string())?;
        if let Some(tokens) = tokens.filter(|t| t.status == "active") {
            body["data"]["tokens"] = serde_json::json!({
                "access_token": tokens.access_token.as_ref().map(|t| t.expose_secret()),
                "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            });
        }
    }
    serde_json::to_string(&body).map_err(|e| e.to_string())
}

/// `base × 2^(attempts-1)`, ±25 % jitter, then capped at an hour.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    // 0.75 .. 1.25
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
