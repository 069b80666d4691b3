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

pub use webhook::{SIGNATURE_HEADER, sign};

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

/// Delivers until the task is aborted.
pub async fn run_worker(app: AppState) {
    let worker = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    loop {
        match try_deliver_one(&app, &worker).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(IDLE).await,
            Err(error) => {
                tracing::error!(error = %error, "the delivery queue could not be read");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
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
    // Long enough for one attempt: a command's own timeout, or a webhook's.
    let longest = deliveries
        .targets
        .iter()
        .filter_map(|t| match &t.kind {
            TargetKind::Command { timeout, .. } => Some(*timeout),
            TargetKind::Webhook { .. } | TargetKind::InProcess(_) => None,
        })
        .max()
        .unwrap_or_default()
        .max(deliveries.timeout);
    let locked_until = now() + i64::try_from(longest.as_secs()).unwrap_or(60) + 30;
    let Some(delivery) = app.store.claim_delivery(worker, locked_until).await? else {
        return Ok(false);
    };
    match attempt(app, &delivery).await {
        Ok(()) => {
            app.store.mark_delivered(delivery.id, worker).await?;
            tracing::info!(
                event_id = delivery.event_id,
                target = delivery.target,
                event_type = delivery.event_type,
                "event delivered"
            );
        }
        Err(error) => {
            let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
            let dead =
                attempts >= deliveries.max_attempts || matches!(error, AttemptError::UnknownTarget);
            let wait = backoff(deliveries.retry_base, attempts);
            let next = now()
                + i64::try_from(wait.as_secs()).unwrap_or(3600).max(if wait.is_zero() {
                    0
                } else {
                    1
                });
            app.store.mark_failed(delivery.id, worker, &error.to_string(), next, dead).await?;
            if dead {
                tracing::error!(event_id = delivery.event_id, target = delivery.target, attempts, error = %error, "delivery dead-lettered; redeliver it once the target works");
            } else {
                tracing::warn!(event_id = delivery.event_id, target = delivery.target, attempts, error = %error, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
            }
        }
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
        TargetKind::Command { program, args, timeout } => {
            command::run(program, args, *timeout, delivery).await.map_err(AttemptError::Command)
        }
        TargetKind::InProcess(hook) => {
            let event: crate::embed::HookEvent = serde_json::from_str(&delivery.payload)
                .map_err(|e| AttemptError::Prepare(e.to_string()))?;
            match tokio::time::timeout(app.config.deliveries.timeout, hook.0.on_event(&event)).await
            {
                Ok(result) => result.map_err(AttemptError::Hook),
                Err(_) => Err(AttemptError::Hook(format!(
                    "the hook ran longer than {} s",
                    app.config.deliveries.timeout.as_secs()
                ))),
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

/// `base × 2^(attempts-1)`, ±25 % jitter, capped at an hour.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    // 0.75 .. 1.25
    let factor = 0.75 + f64::from(jitter[0]) / 510.0;
    exponential.min(MAX_BACKOFF).mul_f64(factor)
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
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.26));
    }
}
