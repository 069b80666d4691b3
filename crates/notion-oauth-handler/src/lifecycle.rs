//! A connection's life after the flow: a working token on demand, a refresh that happens
//! exactly once however many callers ask, introspection, revocation.
//!
//! Notion rotates refresh tokens: of two concurrent refreshes with the same token one wins and
//! the other gets `invalid_grant`, and the connection is lost. So a refresh takes two locks:
//! an in-process one per connection (callers in this process queue behind it), and a lease row
//! in the database (callers in other processes wait for it). Whoever gets both re-reads the
//! tokens first: if their generation moved on since the caller looked, someone else already
//! refreshed, and that token is returned instead of refreshing again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notion_oauth::{AccessToken, NotionError, RefreshToken};

use crate::startup::AppState;
use crate::store::{Claim, StoreError, StoredTokens, now};

/// Attempts after the first, for failures where Notion certainly did not rotate the pair.
const RETRIES: u32 = 2;

/// Longest wait between attempts: Notion's `Retry-After` is honoured up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a refresh may hold the database lease: every attempt's timeout, the longest waits
/// between them, and a margin for the database. A holder that died keeps others waiting no
/// longer than this.
fn lease(app: &AppState) -> Duration {
    app.config.notion.timeout * (RETRIES + 1) + MAX_BACKOFF * RETRIES + Duration::from_secs(5)
}

/// Why a token could not be given.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("there is no connection with bot id {0}")]
    NotFound(String),
    #[error("the user has to connect again: {0}")]
    NeedsReauth(String),
    #[error("the connection was revoked: {0}")]
    Revoked(String),
    #[error("another process is refreshing this connection and has not finished")]
    Busy,
    #[error("{0}")]
    Notion(NotionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the refresh task stopped unexpectedly")]
    Task,
}

/// A usable token for a connection.
#[derive(Debug)]
pub struct Grant {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub generation: i64,
    /// Whether the token is newer than the one stored when the caller asked.
    pub refreshed: bool,
}

/// The result of asking Notion about a connection's token.
#[derive(Debug)]
pub struct Checked {
    pub active: bool,
    pub status: String,
    pub scope: Option<String>,
    pub issued_at_ms: Option<i64>,
}

/// One async lock per connection, for refreshes within this process.
#[derive(Debug, Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn for_bot(&self, bot_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds or waits for, so the map does not grow with every bot.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(bot_id.to_owned()).or_default().clone()
    }
}

fn usable(bot_id: &str, tokens: Option<StoredTokens>) -> Result<StoredTokens, LifecycleError> {
    let tokens = tokens.ok_or_else(|| LifecycleError::NotFound(bot_id.to_owned()))?;
    let reason = || tokens.status_reason.clone().unwrap_or_default();
    match tokens.status.as_str() {
        "needs_reauth" => Err(LifecycleError::NeedsReauth(reason())),
        "revoked" => Err(LifecycleError::Revoked(reason())),
        _ if tokens.access_token.is_none() => Err(LifecycleError::Revoked(reason())),
        _ => Ok(tokens),
    }
}

fn grant(tokens: StoredTokens, refreshed: bool) -> Result<Grant, LifecycleError> {
    let access_token = tokens.access_token.ok_or_else(|| LifecycleError::Revoked(String::new()))?;
    Ok(Grant {
        access_token,
        refresh_token: tokens.refresh_token,
        generation: tokens.generation,
        refreshed,
    })
}

/// The connection's current token; with `force_refresh`, one newer than the stored one.
///
/// # Errors
/// See [`LifecycleError`].
pub async fn token(
    app: &AppState,
    bot_id: &str,
    force_refresh: bool,
) -> Result<Grant, LifecycleError> {
    let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
    if !force_refresh {
        return grant(tokens, false);
    }
    refresh_after(app, bot_id, tokens.generation, Coalesce::WithRecent).await
}

/// Whether a refresh that completed moments ago satisfies the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coalesce {
    /// An API caller forcing a refresh gets the pair refreshed within
    /// `min_refresh_interval_seconds`: refreshing again at once gains nothing, and stragglers
    /// of a burst of callers must not each refresh.
    WithRecent,
    /// The caller knows the stored pair is not good enough (Notion called it inactive, an
    /// operator asked): only a pair newer than the one it saw will do.
    OnlyNewer,
}

/// A token newer than generation `seen`: refreshed now, or by whoever refreshed meanwhile.
///
/// The work runs in its own task: if the caller goes away (a client disconnects), a refresh
/// that Notion may already have answered still gets stored.
///
/// # Errors
/// See [`LifecycleError`].
pub async fn refresh_after(
    app: &AppState,
    bot_id: &str,
    seen: i64,
    coalesce: Coalesce,
) -> Result<Grant, LifecycleError> {
    let (app, bot_id) = (app.clone(), bot_id.to_owned());
    tokio::spawn(async move { single_flight(&app, &bot_id, seen, coalesce).await })
        .await
        .map_err(|_| LifecycleError::Task)?
}

async fn single_flight(
    app: &AppState,
    bot_id: &str,
    seen: i64,
    coalesce: Coalesce,
) -> Result<Grant, LifecycleError> {
    let lock = app.refresh_locks.for_bot(bot_id);
    let _in_process = lock.lock().await;
    let lease = lease(app);
    let deadline = Instant::now() + lease;
    loop {
        let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
        let recently = coalesce == Coalesce::WithRecent
            && tokens
                .refreshed_at
                .is_some_and(|at| now() - at < app.config.min_refresh_interval_secs);
        if tokens.generation > seen || recently {
            let newer = tokens.generation > seen;
            return grant(tokens, newer);
        }
        let refresh_token = tokens.refresh_token.ok_or_else(|| {
            LifecycleError::NeedsReauth("Notion gave this connection no refresh token".into())
        })?;
        let lease_until = now() + i64::try_from(lease.as_secs()).unwrap_or(60);
        match app.store.claim_refresh(bot_id, tokens.generation, lease_until).await? {
            Claim::Claimed { interrupted } => {
                return refresh_now(app, bot_id, &refresh_token, tokens.generation, interrupted)
                    .await;
            }
            Claim::Moved => continue,
            Claim::Held if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Claim::Held => return Err(LifecycleError::Busy),
        }
    }
}

/// Calls Notion with the lease held, stores the answer, and releases the lease.
///
/// Every outcome is written only if the connection is still at `from` (the generation the lease
/// was taken at): a re-authorization or a revoke that happened meanwhile wins, and the caller
/// gets the connection as it now is.
async fn refresh_now(
    app: &AppState,
    bot_id: &str,
    refresh_token: &RefreshToken,
    from: i64,
    interrupted: Option<i64>,
) -> Result<Grant, LifecycleError> {
    if let Some(started) = interrupted {
        let message = format!(
            "a refresh started at {started} (Unix time) never finished; Notion may have rotated the pair before the answer was stored"
        );
        tracing::warn!(bot_id, "{message}");
        app.store.record_event(bot_id, "refresh_interrupted", Some(&message), None).await?;
    }
    let mut attempt = 0;
    loop {
        let error = match app.client.refresh(refresh_token).await {
            Ok(response) if response.bot_id.as_str() == bot_id => {
                let Some(generation) =
                    app.store.complete_refresh(&app.config.vault, &response, from).await?
                else {
                    return changed_meanwhile(app, bot_id).await;
                };
                tracing::info!(
                    bot_id,
                    generation,
                    request_id = response.request_id.as_deref(),
                    "connection refreshed"
                );
                return Ok(Grant {
                    access_token: response.access_token,
                    refresh_token: response.refresh_token,
                    generation,
                    refreshed: true,
                });
            }
            Ok(response) => NotionError::InvalidResponse {
                status: 200,
                reason: "the refreshed pair belongs to another bot".into(),
                request_id: response.request_id,
            },
            Err(error) => error,
        };
        if error.is_invalid_grant() {
            let reason = if interrupted.is_some() {
                "Notion refused the refresh token after an interrupted refresh (it had rotated the pair); send the user to connect again"
            } else {
                "Notion refused the refresh token (invalid_grant): the user removed the connection or the token was used elsewhere; send the user to connect again"
            };
            if !app.store.fail_refresh(bot_id, from, true, reason, error.request_id()).await? {
                return changed_meanwhile(app, bot_id).await;
            }
            tracing::warn!(
                bot_id,
                request_id = error.request_id(),
                "refresh refused: the connection needs the user"
            );
            return Err(LifecycleError::NeedsReauth(reason.into()));
        }
        if attempt < RETRIES && is_retryable(&error) {
            attempt += 1;
            let wait = backoff(attempt, &error);
            tracing::info!(bot_id, attempt, error = %error, wait_ms = wait.as_millis() as u64, "refresh failed; retrying");
            tokio::time::sleep(wait).await;
            continue;
        }
        let message = format!("refresh failed: {error}");
        if !app.store.fail_refresh(bot_id, from, false, &message, error.request_id()).await? {
            return changed_meanwhile(app, bot_id).await;
        }
        tracing::warn!(bot_id, error = %error, "refresh failed; the stored pair is unchanged");
        return Err(LifecycleError::Notion(error));
    }
}

/// The connection was re-authorized or revoked while a refresh was at Notion: what it is now.
async fn changed_meanwhile(app: &AppState, bot_id: &str) -> Result<Grant, LifecycleError> {
    tracing::info!(bot_id, "the connection changed during its refresh; its new state wins");
    let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
    grant(tokens, true)
}

/// Failures after which Notion cannot have rotated the pair, or very likely did not. A garbled
/// 200 is not among them: Notion may have rotated, so a retry could spend a dead token.
fn is_retryable(error: &NotionError) -> bool {
    match error {
        NotionError::Timeout(_) | NotionError::Network(_) => true,
        NotionError::UnexpectedStatus { status, .. } => *status >= 500,
        NotionError::Api(api) => api.status >= 500 || api.status == 429,
        NotionError::InvalidResponse { .. } => false,
    }
}

/// Exponential backoff with jitter, or Notion's `Retry-After` when it names one (capped).
fn backoff(attempt: u32, error: &NotionError) -> Duration {
    if let NotionError::Api(api) = error
        && let Some(retry_after) = api.retry_after
    {
        return retry_after.min(MAX_BACKOFF);
    }
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    Duration::from_millis(200 * 2u64.pow(attempt - 1) + u64::from(jitter[0]) / 2)
}

/// Asks Notion whether the token still works. An inactive token is first refreshed (in case it
/// merely expired); if that fails too, the user removed the connection: it is marked revoked.
///
/// # Errors
/// See [`LifecycleError`].
pub async fn check(app: &AppState, bot_id: &str) -> Result<Checked, LifecycleError> {
    let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
    let access = grant(tokens, false)?;
    let introspection =
        app.client.introspect(&access.access_token).await.map_err(LifecycleError::Notion)?;
    let mut active = introspection.active;
    if !active && access.refresh_token.is_some() {
        active = refresh_after(app, bot_id, access.generation, Coalesce::OnlyNewer).await.is_ok();
    }
    app.store.record_check(bot_id, active, introspection.request_id.as_deref()).await?;
    let status = app.store.connection(bot_id).await?.map_or_else(|| "revoked".into(), |c| c.status);
    Ok(Checked { active, status, scope: introspection.scope, issued_at_ms: introspection.iat })
}

/// Revokes the token at Notion, then forgets it. Revoking a revoked connection does nothing.
///
/// # Errors
/// See [`LifecycleError`]; when Notion fails the tokens are kept, so the call can be repeated.
pub async fn revoke(app: &AppState, bot_id: &str, reason: &str) -> Result<(), LifecycleError> {
    let tokens = app
        .store
        .tokens(&app.config.vault, bot_id)
        .await?
        .ok_or_else(|| LifecycleError::NotFound(bot_id.to_owned()))?;
    let Some(access) = tokens.access_token else {
        return Ok(());
    };
    let request_id = match app.client.revoke(&access).await {
        Ok(revocation) => revocation.request_id,
        // A token Notion already considers dead is as revoked as it gets.
        Err(error) if error.is_invalid_grant() || error.code() == Some("unauthorized") => {
            error.request_id().map(str::to_owned)
        }
        Err(error) => return Err(LifecycleError::Notion(error)),
    };
    app.store.revoke_connection(bot_id, reason, request_id.as_deref()).await?;
    tracing::info!(bot_id, request_id = request_id.as_deref(), "connection revoked");
    Ok(())
}
