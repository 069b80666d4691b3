//! A connection's life after the flow: a working token on demand, a refresh that happens
//! exactly once however many callers ask, introspection, revocation.
//!
//! Notion rotates refresh tokens: of two concurrent refreshes with the same token one wins and
//! the other gets `invalid_grant`, and the connection is lost. So a refresh (and a revoke) takes
//! two locks: an in-process one per connection (callers in this process queue behind it) and a
//! lease row in the database (other processes wait for it), which its owner renews while it
//! works. Whoever gets both re-reads the tokens: if their generation moved on since the caller
//! looked, someone else already refreshed, and that pair is returned instead. Every outcome is
//! written only if the connection is still at the generation the lease was taken at, so a
//! re-authorization or revoke that lands meanwhile wins.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notion_oauth::{AccessToken, NotionError, RefreshToken, TokenResponse};

use crate::startup::AppState;
use crate::store::{Claim, RefreshFailure, SealedGrant, StoreError, StoredTokens, now};

/// How long a lease lasts without renewal: how long a dead holder keeps others waiting.
const LEASE: Duration = Duration::from_secs(15);
/// How often a live holder renews its lease.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Attempts after the first, for failures that leave the stored pair usable.
const RETRIES: u32 = 2;
/// Longest wait between attempts: Notion's `Retry-After` is honoured up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    /// Notion failed in a way that leaves the stored pair as it was.
    #[error("{0}; the stored tokens are unchanged")]
    Notion(NotionError),
    /// Notion may have acted without its answer arriving (a timeout, a broken connection, a
    /// garbled answer): the stored pair may have been rotated away.
    #[error(
        "{0}; Notion may have rotated the pair before its answer was lost, so the next refresh will tell whether the user must connect again"
    )]
    NotionUncertain(NotionError),
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

/// One async lock per connection, for refreshes and revokes within this process.
#[derive(Debug, Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn for_bot(&self, bot_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds or waits for, so the map does not grow with every bot.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(bot_id.to_owned()).or_default().clone()
    }

    /// Waits (up to `limit`) until no refresh or revoke is under way in this process, so a
    /// shutdown does not drop a pair Notion has already rotated.
    pub async fn wait_idle(&self, limit: Duration) {
        let locks: Vec<_> =
            self.0.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let all = async {
            for lock in locks {
                drop(lock.lock().await);
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                "a refresh was still under way at shutdown; the next start will report it"
            );
        }
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

fn lease_until() -> i64 {
    now() + i64::try_from(LEASE.as_secs()).unwrap_or(15)
}

fn new_owner() -> Result<String, LifecycleError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| LifecycleError::Task)?;
    Ok(crate::crypto::hex(&bytes))
}

/// Runs `work` while renewing `owner`'s lease, so a slow Notion or a slow database does not
/// let the lease lapse under a live holder.
async fn holding_lease<T>(
    app: &AppState,
    bot_id: &str,
    owner: &str,
    work: impl Future<Output = T>,
) -> T {
    let (renewing_app, bot, owner) = (app.clone(), bot_id.to_owned(), owner.to_owned());
    let _renewer = AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if let Err(error) = renewing_app.store.renew_lease(&bot, &owner, lease_until()).await {
                tracing::warn!(bot_id = bot, error = %error, "could not renew a refresh lease");
            }
        }
    }));
    work.await
}

/// Stops the renewal with the work, however the work ends: a leaked renewer would hold the
/// lease forever.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    let deadline = Instant::now() + LEASE * 2;
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
        let from = tokens.generation;
        let refresh_token = tokens.refresh_token.ok_or_else(|| {
            LifecycleError::NeedsReauth("Notion gave this connection no refresh token".into())
        })?;
        let owner = new_owner()?;
        match app.store.claim_lease(bot_id, from, &owner, lease_until(), true).await? {
            Claim::Claimed { interrupted } => {
                return holding_lease(
                    app,
                    bot_id,
                    &owner,
                    refresh_now(app, bot_id, &refresh_token, from, interrupted),
                )
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
        app.store
            .record_event(
                bot_id,
                "refresh_interrupted",
                Some(&message),
                None,
                &app.config.deliveries,
            )
            .await?;
    }
    // Whether an attempt may have reached Notion without its answer reaching us.
    let mut uncertain = interrupted.is_some();
    let mut attempt = 0;
    loop {
        let error = match app.client.refresh(refresh_token).await {
            Ok(response) if response.bot_id.as_str() == bot_id => {
                return store_refreshed(app, bot_id, response, from).await;
            }
            Ok(response) => NotionError::InvalidResponse {
                status: 200,
                reason: "the refreshed pair belongs to another bot".into(),
                request_id: response.request_id,
            },
            Err(error) => error,
        };
        uncertain |= may_have_rotated(&error);
        if error.is_invalid_grant() {
            let reason = if uncertain {
                "Notion refused the refresh token after a refresh whose answer was lost (Notion had rotated the pair); send the user to connect again"
            } else {
                "Notion refused the refresh token (invalid_grant): the user removed the connection or the token was used elsewhere; send the user to connect again"
            };
            if !app
                .store
                .fail_refresh(
                    bot_id,
                    from,
                    RefreshFailure {
                        needs_reauth: true,
                        outcome_unknown: false,
                        message: reason,
                        request_id: error.request_id(),
                    },
                    &app.config.deliveries,
                )
                .await?
            {
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
        let failure = if uncertain {
            LifecycleError::NotionUncertain(error)
        } else {
            LifecycleError::Notion(error)
        };
        let message = format!("refresh failed: {failure}");
        let request_id = match &failure {
            LifecycleError::Notion(e) | LifecycleError::NotionUncertain(e) => {
                e.request_id().map(str::to_owned)
            }
            _ => None,
        };
        if !app
            .store
            .fail_refresh(
                bot_id,
                from,
                RefreshFailure {
                    needs_reauth: false,
                    outcome_unknown: uncertain,
                    message: &message,
                    request_id: request_id.as_deref(),
                },
                &app.config.deliveries,
            )
            .await?
        {
            return changed_meanwhile(app, bot_id).await;
        }
        tracing::warn!(bot_id, "{message}");
        return Err(failure);
    }
}

/// Commits a pair Notion has rotated to. It is the only copy of a working pair, so a busy
/// database is waited out (the lease is being renewed meanwhile) rather than giving up.
async fn store_refreshed(
    app: &AppState,
    bot_id: &str,
    response: TokenResponse,
    from: i64,
) -> Result<Grant, LifecycleError> {
    // Sealing fails only without randomness: waiting would not help, unlike a busy database.
    let grant = SealedGrant::seal(&app.config.vault, &response).inspect_err(|error| {
        tracing::error!(bot_id, error = %error, "a refreshed pair could not be sealed; the connection will report an interrupted refresh");
    })?;
    let mut attempt = 0;
    let generation = loop {
        let stored = app.store.complete_refresh(&grant, from, &app.config.deliveries).await;
        match stored {
            Ok(Some(generation)) => break generation,
            Ok(None) => return changed_meanwhile(app, bot_id).await,
            Err(error) if attempt < 20 => {
                attempt += 1;
                tracing::warn!(bot_id, attempt, error = %error, "a refreshed pair could not be stored yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                tracing::error!(bot_id, error = %error, "a refreshed pair could not be stored; the connection will report an interrupted refresh");
                return Err(error.into());
            }
        }
    };
    tracing::info!(
        bot_id,
        generation,
        request_id = response.request_id.as_deref(),
        "connection refreshed"
    );
    Ok(Grant {
        access_token: response.access_token,
        refresh_token: response.refresh_token,
        generation,
        refreshed: true,
    })
}

/// The connection was re-authorized or revoked while a refresh was at Notion: what it is now.
async fn changed_meanwhile(app: &AppState, bot_id: &str) -> Result<Grant, LifecycleError> {
    tracing::info!(bot_id, "the connection changed during its refresh; its new state wins");
    let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
    grant(tokens, true)
}

/// Failures after which a retry may still succeed: Notion said it failed (5xx, 429), or the
/// attempt may not have reached it. A garbled 200 is not among them: Notion answered, so it
/// may have rotated, and a retry would spend a dead token.
fn is_retryable(error: &NotionError) -> bool {
    match error {
        NotionError::Timeout(_) | NotionError::Network(_) => true,
        NotionError::UnexpectedStatus { status, .. } => *status >= 500,
        NotionError::Api(api) => api.status >= 500 || api.status == 429,
        NotionError::InvalidResponse { .. } => false,
    }
}

/// Whether Notion may have acted on the attempt without its answer arriving.
fn may_have_rotated(error: &NotionError) -> bool {
    match error {
        NotionError::Timeout(_) | NotionError::InvalidResponse { .. } => true,
        NotionError::Network(_) => !error.is_connect_failure(),
        NotionError::UnexpectedStatus { .. } | NotionError::Api(_) => false,
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
    Duration::from_millis(200 * 2u64.pow(attempt - 1) + u64::from(jitter[0]) / 2).min(MAX_BACKOFF)
}

/// Asks Notion whether the token still works. An inactive token is first refreshed (in case it
/// merely expired); only a definite refusal makes the connection revoked, never an outage.
///
/// # Errors
/// See [`LifecycleError`]; the status is then left as it was.
pub async fn check(app: &AppState, bot_id: &str) -> Result<Checked, LifecycleError> {
    let tokens = usable(bot_id, app.store.tokens(&app.config.vault, bot_id).await?)?;
    let from = tokens.generation;
    let access = grant(tokens, false)?;
    let introspection =
        app.client.introspect(&access.access_token).await.map_err(LifecycleError::Notion)?;
    let active = match (introspection.active, &access.refresh_token) {
        (true, _) => true,
        (false, None) => false,
        (false, Some(_)) => match refresh_after(app, bot_id, from, Coalesce::OnlyNewer).await {
            Ok(_) => true,
            Err(LifecycleError::NeedsReauth(_)) => false,
            Err(error) => return Err(error),
        },
    };
    app.store
        .record_check(
            bot_id,
            active,
            from,
            introspection.request_id.as_deref(),
            &app.config.deliveries,
        )
        .await?;
    let status = app.store.connection(bot_id).await?.map_or_else(|| "revoked".into(), |c| c.status);
    Ok(Checked { active, status, scope: introspection.scope, issued_at_ms: introspection.iat })
}

/// Revokes the token at Notion, then forgets it. It takes the same locks as a refresh, so it
/// cannot race one, and it revokes whatever pair is current when it finishes (a
/// re-authorization meanwhile is revoked too). Revoking a revoked connection does nothing.
///
/// # Errors
/// See [`LifecycleError`]; when Notion fails the tokens are kept, so the call can be repeated.
pub async fn revoke(app: &AppState, bot_id: &str, reason: &str) -> Result<(), LifecycleError> {
    let lock = app.refresh_locks.for_bot(bot_id);
    let _in_process = lock.lock().await;
    let deadline = Instant::now() + LEASE * 2;
    loop {
        let tokens = app.store.tokens(&app.config.vault, bot_id).await?;
        let tokens = tokens.ok_or_else(|| LifecycleError::NotFound(bot_id.to_owned()))?;
        let Some(access) = tokens.access_token else {
            return Ok(());
        };
        let owner = new_owner()?;
        match app.store.claim_lease(bot_id, tokens.generation, &owner, lease_until(), false).await?
        {
            Claim::Claimed { .. } => {}
            Claim::Moved => continue,
            Claim::Held if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Claim::Held => return Err(LifecycleError::Busy),
        }
        let request_id = match holding_lease(app, bot_id, &owner, app.client.revoke(&access)).await
        {
            Ok(revocation) => revocation.request_id,
            // A token Notion already considers dead is as revoked as it gets.
            Err(error) if error.is_invalid_grant() || error.code() == Some("unauthorized") => {
                error.request_id().map(str::to_owned)
            }
            Err(error) => {
                app.store.release_lease(bot_id, &owner).await?;
                return Err(LifecycleError::Notion(error));
            }
        };
        if app
            .store
            .revoke_connection(
                bot_id,
                tokens.generation,
                reason,
                request_id.as_deref(),
                &app.config.deliveries,
            )
            .await?
        {
            tracing::info!(bot_id, request_id = request_id.as_deref(), "connection revoked");
            return Ok(());
        }
    }
}

/// One pass of the background refresh: every active connection whose pair is older than
/// `older_than`.
pub async fn refresh_old_tokens(app: &AppState, older_than: Duration) {
    let cutoff = now() - i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
    match app.store.due_for_refresh(cutoff).await {
        Ok(due) => {
            for (bot_id, generation) in due {
                if let Err(error) =
                    refresh_after(app, &bot_id, generation, Coalesce::OnlyNewer).await
                {
                    tracing::warn!(bot_id, error = %error, "background refresh failed");
                }
            }
        }
        Err(error) => {
            tracing::error!(error = %error, "background refresh could not list connections")
        }
    }
}

/// One pass of the background check: every active connection not checked within `interval`.
pub async fn check_connections(app: &AppState, interval: Duration) {
    let cutoff = now() - i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
    match app.store.due_for_check(cutoff).await {
        Ok(due) => {
            for bot_id in due {
                if let Err(error) = check(app, &bot_id).await {
                    tracing::warn!(bot_id, error = %error, "background check failed");
                }
            }
        }
        Err(error) => {
            tracing::error!(error = %error, "background check could not list connections")
        }
    }
}
