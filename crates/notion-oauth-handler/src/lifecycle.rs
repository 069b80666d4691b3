//! A connection's life after the flow: a working token on demand, a refresh that happens
//! exactly once however many callers ask, introspection, revocation, and the background passes
//! that refresh old tokens and check connections.
//!
//! Notion rotates refresh tokens: of two concurrent refreshes with the same token one wins and
//! the other gets `invalid_grant`, and the connection is lost. So a refresh (and a revoke) takes
//! two locks: an in-process one per connection (callers in this process queue behind it) and a
//! lease row in the database (other processes wait for it), which its owner renews while it
//! works. Whoever gets both re-reads the tokens: if their generation moved on since the caller
//! looked, someone else already refreshed, and that pair is returned instead. Every outcome is
//! written only if the connection is still at the generation the lease was taken at, so a
//! re-authorization or revoke that lands meanwhile wins.
//!
//! Refreshes, checks and revocations run in a span naming the bot at the default log level, so
//! every line they log says which connection it is about; asking for a token is the hot path,
//! and its span is recorded only at debug level.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notion_oauth::{AccessToken, NotionError, RefreshToken, TokenResponse};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::LifecyclePolicy;
use crate::domain::{BotId, ConnectionStatus, HistoryKind};
use crate::notion::Notion;
pub use crate::store::WhichTokens;
use crate::store::{
    Claim, HistoryEntry, LeaseFor, RefreshFailure, RefreshFailureKind, SealedGrant, Store,
    StoreError, StoredTokens, now,
};
use crate::telemetry::Chain;
use crate::vault::Vault;

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
    /// No such connection.
    #[error("there is no connection with bot id {0}")]
    NotFound(BotId),
    /// Notion refused the refresh token: only the user can bring the connection back.
    #[error("the user has to connect again: {0}")]
    NeedsReauth(String),
    /// The connection's tokens are gone.
    #[error("the connection was revoked: {0}")]
    Revoked(String),
    /// Another process holds the connection's lease past the wait.
    #[error("another process is refreshing this connection and has not finished")]
    Busy,
    /// Notion failed in a way that leaves the stored pair as it was.
    #[error("{0}; the stored tokens are unchanged")]
    Notion(#[source] NotionError),
    /// Notion may have acted without its answer arriving (a timeout, a broken connection, a
    /// garbled answer): the stored pair may have been rotated away.
    #[error(
        "{0}; Notion may have rotated the pair before its answer was lost, so the next refresh will tell whether the user must connect again"
    )]
    NotionUncertain(#[source] NotionError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The refresh's own task stopped (a panic, or the runtime shutting down).
    #[error("the refresh task stopped unexpectedly")]
    Task,
}

impl LifecycleError {
    /// Notion's request id, when Notion caused the failure.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Notion(error) | Self::NotionUncertain(error) => error.request_id(),
            _ => None,
        }
    }
}

/// Which token the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The stored one, as it is.
    Stored,
    /// One newer than the stored one: refreshed now, or by a refresh under way or just done
    /// (see [`Coalesce::WithRecent`]). For a token Notion has just refused.
    Refreshed,
}

/// A usable token for a connection.
#[derive(Debug)]
pub struct Token {
    /// For Notion's API.
    pub access_token: AccessToken,
    /// For apps that refresh by themselves.
    pub refresh_token: Option<RefreshToken>,
    /// Goes up with every new pair.
    pub generation: i64,
    /// Whether the token is newer than the one stored when the caller asked.
    pub refreshed: bool,
}

impl Token {
    /// The stored pair, as the caller found it.
    fn as_stored(tokens: StoredTokens) -> Result<Self, LifecycleError> {
        let access_token =
            tokens.access_token.ok_or_else(|| LifecycleError::Revoked(String::new()))?;
        let (refresh_token, generation) = (tokens.refresh_token, tokens.generation);
        Ok(Self { access_token, refresh_token, generation, refreshed: false })
    }

    /// The stored pair, newer than the one the caller saw.
    fn newer(tokens: StoredTokens) -> Result<Self, LifecycleError> {
        Ok(Self { refreshed: true, ..Self::as_stored(tokens)? })
    }
}

/// Whether every attempt's answer reached us. An answer lost to a timeout or a broken
/// connection may hide a rotation Notion made: then the stored refresh token may be dead, and a
/// refusal of it means the rotation happened rather than that the user left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    AllReceived,
    SomeLost,
}

/// The result of asking Notion about a connection's token.
#[derive(Debug)]
pub struct Checked {
    /// Whether Notion considers the token usable (after refreshing one that had expired).
    pub active: bool,
    /// The connection's status after the check.
    pub status: ConnectionStatus,
    /// The connection's capabilities, as Notion reports them.
    pub scope: Option<String>,
    /// When Notion issued the token, in milliseconds since the Unix epoch.
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
struct RefreshLocks(Mutex<HashMap<BotId, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn for_bot(&self, bot_id: &BotId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds or waits for, so the map does not grow with every bot.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(bot_id.clone()).or_default().clone()
    }

    /// Waits (up to `limit`) until no refresh or revoke is under way in this process.
    async fn wait_idle(&self, limit: Duration) {
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

/// The stored tokens, if they can be used at all.
fn usable(bot_id: &BotId, tokens: Option<StoredTokens>) -> Result<StoredTokens, LifecycleError> {
    let tokens = tokens.ok_or_else(|| LifecycleError::NotFound(bot_id.clone()))?;
    let reason = || tokens.status_reason.clone().unwrap_or_default();
    match tokens.status {
        ConnectionStatus::NeedsReauth => Err(LifecycleError::NeedsReauth(reason())),
        ConnectionStatus::Revoked => Err(LifecycleError::Revoked(reason())),
        ConnectionStatus::Active if tokens.access_token.is_none() => {
            Err(LifecycleError::Revoked(reason()))
        }
        ConnectionStatus::Active => Ok(tokens),
    }
}

fn lease_until() -> i64 {
    now() + i64::try_from(LEASE.as_secs()).unwrap_or(15)
}

fn new_owner() -> Result<String, LifecycleError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| LifecycleError::Task)?;
    Ok(crate::crypto::hex(&bytes))
}

/// Another holder has the lease: look again after a moment, or give up once it has kept it past
/// `deadline`.
async fn wait_for_holder(deadline: Instant) -> Result<(), LifecycleError> {
    if Instant::now() >= deadline {
        return Err(LifecycleError::Busy);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

/// Stops the renewal with the work, however the work ends: a leaked renewer would hold the
/// lease forever.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tokens on demand, refreshed once however many ask; checks and revocations.
pub struct Lifecycle {
    client: Notion,
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    locks: RefreshLocks,
    /// A forced refresh this soon after the last one returns that one's token instead.
    min_refresh_interval: Duration,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// Calls Notion with `client`, keeps tokens in `store` sealed by `vault`.
    pub(crate) fn new(
        client: Notion,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        policy: &LifecyclePolicy,
    ) -> Self {
        let min_refresh_interval = policy.min_refresh_interval;
        Self { client, store, vault, locks: RefreshLocks::default(), min_refresh_interval }
    }

    async fn stored(&self, bot_id: &BotId) -> Result<StoredTokens, LifecycleError> {
        usable(bot_id, self.store.tokens(&self.vault, bot_id).await?)
    }

    /// The connection's current token, or a newer one; with its refresh token only when
    /// `which` asks for it.
    ///
    /// # Errors
    /// See [`LifecycleError`].
    #[tracing::instrument(name = "lifecycle.token", level = "debug", skip_all, fields(bot_id = %bot_id, ?freshness))]
    pub async fn token(
        self: &Arc<Self>,
        bot_id: &BotId,
        freshness: Freshness,
        which: WhichTokens,
    ) -> Result<Token, LifecycleError> {
        match freshness {
            // What a caller asks for most, so it may come from the store's recent copy (at most
            // `store::RECENT` old, and never older than this process's own last write).
            Freshness::Stored => Token::as_stored(usable(
                bot_id,
                self.store.recent_tokens(&self.vault, bot_id, which).await?,
            )?),
            Freshness::Refreshed => {
                let tokens = self.stored(bot_id).await?;
                let mut token =
                    self.refresh_after(bot_id, tokens.generation, Coalesce::WithRecent).await?;
                if which == WhichTokens::Access {
                    token.refresh_token = None;
                }
                Ok(token)
            }
        }
    }

    /// A token newer than generation `seen`: refreshed now, or by whoever refreshed meanwhile.
    ///
    /// The work runs in its own task: if the caller goes away (a client disconnects), a refresh
    /// that Notion may already have answered still gets stored.
    ///
    /// # Errors
    /// See [`LifecycleError`].
    #[tracing::instrument(name = "lifecycle.refresh", skip_all, fields(bot_id = %bot_id, seen))]
    pub async fn refresh_after(
        self: &Arc<Self>,
        bot_id: &BotId,
        seen: i64,
        coalesce: Coalesce,
    ) -> Result<Token, LifecycleError> {
        let (lifecycle, bot_id) = (self.clone(), bot_id.clone());
        let work = async move { lifecycle.single_flight(&bot_id, seen, coalesce).await };
        tokio::spawn(work.in_current_span()).await.map_err(|_| LifecycleError::Task)?
    }

    async fn single_flight(
        &self,
        bot_id: &BotId,
        seen: i64,
        coalesce: Coalesce,
    ) -> Result<Token, LifecycleError> {
        let lock = self.locks.for_bot(bot_id);
        let _in_process = lock.lock().await;
        let deadline = Instant::now() + LEASE * 2;
        loop {
            let tokens = self.stored(bot_id).await?;
            let interval = i64::try_from(self.min_refresh_interval.as_secs()).unwrap_or(i64::MAX);
            let recently = coalesce == Coalesce::WithRecent
                && tokens.refreshed_at.is_some_and(|at| now() - at < interval);
            if tokens.generation > seen {
                return Token::newer(tokens);
            }
            if recently {
                return Token::as_stored(tokens);
            }
            let from = tokens.generation;
            let refresh_token = tokens.refresh_token.ok_or_else(|| {
                LifecycleError::NeedsReauth("Notion gave this connection no refresh token".into())
            })?;
            let owner = new_owner()?;
            let claim =
                self.store.claim_lease(bot_id, from, &owner, lease_until(), LeaseFor::Refresh);
            match claim.await? {
                Claim::Claimed { interrupted } => {
                    let refresh = self.refresh_now(bot_id, &refresh_token, from, interrupted);
                    return self.holding_lease(bot_id, &owner, refresh).await;
                }
                Claim::Moved => {}
                Claim::Held => wait_for_holder(deadline).await?,
            }
        }
    }

    /// Runs `work` while renewing `owner`'s lease, so a slow Notion or a slow database does not
    /// let the lease lapse under a live holder.
    async fn holding_lease<T>(
        &self,
        bot_id: &BotId,
        owner: &str,
        work: impl Future<Output = T>,
    ) -> T {
        let (store, bot, owner) = (self.store.clone(), bot_id.clone(), owner.to_owned());
        let _renewer = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(error) = store.renew_lease(&bot, &owner, lease_until()).await {
                    tracing::warn!(bot_id = %bot, error = %Chain(&error), "could not renew a refresh lease");
                }
            }
        }));
        work.await
    }

    /// Calls Notion with the lease held, stores the answer, and releases the lease.
    async fn refresh_now(
        &self,
        bot_id: &BotId,
        refresh_token: &RefreshToken,
        from: i64,
        interrupted: Option<i64>,
    ) -> Result<Token, LifecycleError> {
        if let Some(started) = interrupted {
            let message = format!(
                "a refresh started at {started} (Unix time) never finished; Notion may have rotated the pair before the answer was stored"
            );
            tracing::warn!("{message}");
            let entry = HistoryEntry {
                kind: HistoryKind::RefreshInterrupted,
                message: Some(&message),
                request_id: None,
            };
            self.store.record_event(bot_id, entry).await?;
        }
        // A refresh cut short before may have rotated the pair already.
        let answers = if interrupted.is_some() { Answers::SomeLost } else { Answers::AllReceived };
        match self.call_refresh(bot_id, refresh_token, answers).await {
            Ok(mut response) => {
                // Notion kept the refresh token: it is sealed again with the new access token,
                // so the row's key id stays true of both (a rotation relies on it).
                if response.refresh_token.is_none() {
                    response.refresh_token = Some(refresh_token.clone());
                }
                self.store_refreshed(bot_id, response, from).await
            }
            Err((error, answers)) => self.refresh_failed(bot_id, from, error, answers).await,
        }
    }

    /// Asks Notion for a new pair, retrying the failures after which the stored pair is still
    /// usable. On failure, also says whether every attempt's answer arrived (`answers` is how
    /// it stood before the first).
    async fn call_refresh(
        &self,
        bot_id: &BotId,
        refresh_token: &RefreshToken,
        mut answers: Answers,
    ) -> Result<TokenResponse, (NotionError, Answers)> {
        let mut attempt = 0;
        loop {
            let error = match self.client.refresh(refresh_token).await {
                Ok(response) if response.bot_id == *bot_id => return Ok(response),
                Ok(response) => NotionError::InvalidResponse {
                    status: 200,
                    reason: "the refreshed pair belongs to another bot".into(),
                    request_id: response.request_id,
                },
                Err(error) => error,
            };
            if may_have_rotated(&error) {
                answers = Answers::SomeLost;
            }
            if error.is_invalid_grant() || attempt >= RETRIES || !is_retryable(&error) {
                return Err((error, answers));
            }
            attempt += 1;
            let wait = backoff(attempt, &error);
            tracing::info!(attempt, error = %Chain(&error), wait_ms = wait.as_millis() as u64, "refresh failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Records why a refresh failed, and tells the caller what it means.
    async fn refresh_failed(
        &self,
        bot_id: &BotId,
        from: i64,
        error: NotionError,
        answers: Answers,
    ) -> Result<Token, LifecycleError> {
        if error.is_invalid_grant() {
            let reason = if answers == Answers::SomeLost {
                "Notion refused the refresh token after a refresh whose answer was lost (Notion had rotated the pair); send the user to connect again"
            } else {
                "Notion refused the refresh token (invalid_grant): the user removed the connection or the token was used elsewhere; send the user to connect again"
            };
            let failure = RefreshFailure {
                kind: RefreshFailureKind::Refused,
                message: reason,
                request_id: error.request_id(),
            };
            if !self.store.fail_refresh(bot_id, from, failure).await? {
                return self.changed_meanwhile(bot_id).await;
            }
            tracing::warn!(
                request_id = error.request_id(),
                "refresh refused: the connection needs the user"
            );
            return Err(LifecycleError::NeedsReauth(reason.into()));
        }
        let (failure, kind) = match answers {
            Answers::SomeLost => {
                (LifecycleError::NotionUncertain(error), RefreshFailureKind::OutcomeUnknown)
            }
            Answers::AllReceived => (LifecycleError::Notion(error), RefreshFailureKind::Failed),
        };
        let message = format!("refresh failed: {failure}");
        let recorded = RefreshFailure { kind, message: &message, request_id: failure.request_id() };
        if !self.store.fail_refresh(bot_id, from, recorded).await? {
            return self.changed_meanwhile(bot_id).await;
        }
        tracing::warn!("{message}");
        Err(failure)
    }

    /// Commits a pair Notion has rotated to. It is the only copy of a working pair, so a busy
    /// database is waited out (the lease is being renewed meanwhile) rather than giving up.
    async fn store_refreshed(
        &self,
        bot_id: &BotId,
        response: TokenResponse,
        from: i64,
    ) -> Result<Token, LifecycleError> {
        // Sealing fails only without randomness: waiting would not help, unlike a busy database.
        let grant = SealedGrant::seal(&self.vault, &response).inspect_err(|error| {
            tracing::error!(error = %Chain(error), "a refreshed pair could not be sealed; the connection will report an interrupted refresh");
        })?;
        let mut attempt = 0;
        let generation = loop {
            match self.store.complete_refresh(&grant, from).await {
                Ok(Some(generation)) => break generation,
                Ok(None) => return self.changed_meanwhile(bot_id).await,
                Err(error) if attempt < 20 => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %Chain(&error), "a refreshed pair could not be stored yet; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => {
                    tracing::error!(error = %Chain(&error), "a refreshed pair could not be stored; the connection will report an interrupted refresh");
                    return Err(error.into());
                }
            }
        };
        tracing::info!(
            generation,
            request_id = response.request_id.as_deref(),
            "connection refreshed"
        );
        Ok(Token {
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            generation,
            refreshed: true,
        })
    }

    /// The connection was re-authorized or revoked while a refresh was at Notion: what it is now.
    async fn changed_meanwhile(&self, bot_id: &BotId) -> Result<Token, LifecycleError> {
        tracing::info!("the connection changed during its refresh; its new state wins");
        Token::newer(self.stored(bot_id).await?)
    }

    /// Asks Notion whether the token still works. An inactive token is first refreshed (in case
    /// it merely expired); only a definite refusal makes the connection revoked, never an outage.
    ///
    /// # Errors
    /// See [`LifecycleError`]; the status is then left as it was.
    #[tracing::instrument(name = "lifecycle.check", skip_all, fields(bot_id = %bot_id))]
    pub async fn check(self: &Arc<Self>, bot_id: &BotId) -> Result<Checked, LifecycleError> {
        let tokens = self.stored(bot_id).await?;
        let from = tokens.generation;
        let access = Token::as_stored(tokens)?;
        let introspection =
            self.client.introspect(&access.access_token).await.map_err(LifecycleError::Notion)?;
        let active = match (introspection.active, &access.refresh_token) {
            (true, _) => true,
            (false, None) => false,
            (false, Some(_)) => match self.refresh_after(bot_id, from, Coalesce::OnlyNewer).await {
                Ok(_) => true,
                Err(LifecycleError::NeedsReauth(_)) => false,
                Err(error) => return Err(error),
            },
        };
        let request_id = introspection.request_id.as_deref();
        self.store.record_check(bot_id, active, from, request_id).await?;
        let status = self
            .store
            .connection(bot_id)
            .await?
            .map_or(ConnectionStatus::Revoked, |connection| connection.status);
        Ok(Checked { active, status, scope: introspection.scope, issued_at_ms: introspection.iat })
    }

    /// Revokes the token at Notion, then forgets it. It takes the same locks as a refresh, so it
    /// cannot race one, and it revokes whatever pair is current when it finishes (a
    /// re-authorization meanwhile is revoked too). Revoking a revoked connection does nothing.
    ///
    /// # Errors
    /// See [`LifecycleError`]; when Notion fails the tokens are kept, so the call can be
    /// repeated.
    #[tracing::instrument(name = "lifecycle.revoke", skip_all, fields(bot_id = %bot_id))]
    pub async fn revoke(&self, bot_id: &BotId, reason: &str) -> Result<(), LifecycleError> {
        let lock = self.locks.for_bot(bot_id);
        let _in_process = lock.lock().await;
        let deadline = Instant::now() + LEASE * 2;
        loop {
            let tokens = self.store.tokens(&self.vault, bot_id).await?;
            let tokens = tokens.ok_or_else(|| LifecycleError::NotFound(bot_id.clone()))?;
            let Some(access) = tokens.access_token else {
                return Ok(());
            };
            let owner = new_owner()?;
            let generation = tokens.generation;
            let claim =
                self.store.claim_lease(bot_id, generation, &owner, lease_until(), LeaseFor::Revoke);
            match claim.await? {
                Claim::Claimed { .. } => {}
                Claim::Moved => continue,
                Claim::Held => {
                    wait_for_holder(deadline).await?;
                    continue;
                }
            }
            let revoked = self.holding_lease(bot_id, &owner, self.client.revoke(&access)).await;
            let request_id = match revoked {
                Ok(revocation) => revocation.request_id,
                // A token Notion already considers dead is as revoked as it gets.
                Err(error) if error.is_invalid_grant() || error.code() == Some("unauthorized") => {
                    error.request_id().map(str::to_owned)
                }
                Err(error) => {
                    self.store.release_lease(bot_id, &owner).await?;
                    return Err(LifecycleError::Notion(error));
                }
            };
            // Whether revoking the access token ended the refresh token too is not documented:
            // revoke that as well, or a copy of it taken earlier could still mint tokens.
            if let Some(refresh) = &tokens.refresh_token {
                let revoked = self.client.revoke_refresh_token(refresh);
                match self.holding_lease(bot_id, &owner, revoked).await {
                    Ok(_) => {}
                    // Dead with its access token, or not a token Notion takes here.
                    Err(NotionError::Api(refused))
                        if (400..500).contains(&refused.status) && refused.status != 429 =>
                    {
                        // Logged: if Notion does not take refresh tokens here at all, this is
                        // where an operator learns that one may outlive its connection.
                        tracing::warn!(status = refused.status, code = %refused.code, "Notion refused to revoke the refresh token; taken as already dead");
                    }
                    // The tokens are kept, so the call can be repeated: the access token is then
                    // refused as dead, and the refresh token tried again.
                    Err(error) => {
                        self.store.release_lease(bot_id, &owner).await?;
                        return Err(LifecycleError::Notion(error));
                    }
                }
            }
            let request_id = request_id.as_deref();
            if self.store.revoke_connection(bot_id, generation, reason, request_id).await? {
                tracing::info!(request_id, "connection revoked");
                return Ok(());
            }
        }
    }

    /// One pass of the background refresh: every active connection whose pair is older than
    /// `older_than`, each through the same single refresh as API calls.
    #[tracing::instrument(name = "lifecycle.refresh_old_tokens", skip_all)]
    pub async fn refresh_old_tokens(self: &Arc<Self>, older_than: Duration) {
        let cutoff = now() - i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
        let due = match self.store.due_for_refresh(cutoff).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(error = %Chain(&error), "background refresh could not list connections");
                return;
            }
        };
        for (bot_id, generation) in due {
            if let Err(error) = self.refresh_after(&bot_id, generation, Coalesce::OnlyNewer).await {
                tracing::warn!(bot_id = %bot_id, error = %Chain(&error), "background refresh failed");
            }
        }
    }

    /// One pass of the background check: every active connection not checked within
    /// `interval`.
    #[tracing::instrument(name = "lifecycle.check_connections", skip_all)]
    pub async fn check_connections(self: &Arc<Self>, interval: Duration) {
        let cutoff = now() - i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
        let due = match self.store.due_for_check(cutoff).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(error = %Chain(&error), "background check could not list connections");
                return;
            }
        };
        for bot_id in due {
            if let Err(error) = self.check(&bot_id).await {
                tracing::warn!(bot_id = %bot_id, error = %Chain(&error), "background check failed");
            }
        }
    }

    /// Runs the passes `policy` turns on until the returned handle is dropped.
    pub(crate) fn spawn_passes(
        self: &Arc<Self>,
        policy: &LifecyclePolicy,
        delivery_retention: Duration,
    ) -> Passes {
        let mut tasks = Vec::new();
        if let Some(older_than) = policy.refresh_older_than {
            let lifecycle = self.clone();
            tasks.push(repeat(older_than, move || {
                let lifecycle = lifecycle.clone();
                async move { lifecycle.refresh_old_tokens(older_than).await }
            }));
        }
        if let Some(interval) = policy.check_interval {
            let lifecycle = self.clone();
            tasks.push(repeat(interval, move || {
                let lifecycle = lifecycle.clone();
                async move { lifecycle.check_connections(interval).await }
            }));
        }
        // Used state nonces, connect links and finished deliveries pile up with every flow;
        // deleting them on the flow's own write would take the write lock for nothing most of
        // the time.
        let store = self.store.clone();
        let retention = i64::try_from(delivery_retention.as_secs()).unwrap_or(i64::MAX);
        tasks.push(repeat(Duration::from_secs(40 * 60), move || {
            let store = store.clone();
            async move {
                let before = crate::store::now().saturating_sub(retention);
                match store.forget_expired(before).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::debug!(rows, "deleted expired states, links and deliveries"),
                    Err(error) => tracing::warn!(error = %Chain(&error), "could not delete expired states, links and deliveries"),
                }
            }
        }));
        Passes(tasks)
    }

    /// Waits (up to `limit`) until no refresh or revoke is under way in this process, so a
    /// shutdown does not drop a pair Notion has already rotated.
    pub(crate) async fn wait_idle(&self, limit: Duration) {
        self.locks.wait_idle(limit).await;
    }
}

/// Runs `pass` over and over, a quarter of `period` apart (at most five minutes): a connection
/// falls due at most that long before a pass finds it.
fn repeat<F>(period: Duration, mut pass: impl FnMut() -> F + Send + 'static) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            pass().await;
            tokio::time::sleep((period / 4).min(Duration::from_secs(300))).await;
        }
    })
}

/// The background passes; they stop when this is dropped.
pub(crate) struct Passes(Vec<JoinHandle<()>>);

impl Drop for Passes {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
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
