//! A connection's life after the flow, as stored: the refresh lock (a lease row), the outcomes
//! of refreshes, checks and revocations, and which connections background work is due for.

use sqlx::Row;

use super::connections::SealedGrant;
use super::events::{HistoryEntry, record};
use super::sql::query;
use super::writer::Statements;
use super::{SqlStore, StoreError, now};
use crate::domain::{BotId, ConnectionStatus, HistoryKind};

/// The outcome of asking for a connection's refresh lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the lock.
    Claimed {
        /// When an earlier refresh started and never finished (its process died with the
        /// lock).
        interrupted: Option<i64>,
    },
    /// Another caller holds it.
    Held,
    /// The tokens changed since the caller looked: re-read instead of refreshing.
    Moved,
}

/// What a lease is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseFor {
    /// A refresh: only an active connection can be refreshed.
    Refresh,
    /// A revocation, which ends a connection in whatever state it is.
    Revoke,
}

/// How a refresh failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailureKind {
    /// Notion refused the refresh token for good: the connection becomes `needs_reauth`.
    Refused,
    /// Notion failed, and the stored pair is known to be as it was.
    Failed,
    /// Notion may have rotated the pair before its answer was lost: the interrupted marker
    /// stays, so the next refresh can tell what a refusal means.
    OutcomeUnknown,
}

/// Why a refresh failed, as [`Refreshes::fail_refresh`] records it.
#[derive(Debug, Clone, Copy)]
pub struct RefreshFailure<'a> {
    /// How it failed.
    pub kind: RefreshFailureKind,
    /// In words, for the history and the status reason.
    pub message: &'a str,
    /// Notion's id for the request that failed.
    pub request_id: Option<&'a str>,
}

/// A connection's refresh lock and the outcomes of refreshes, checks and revocations.
///
/// The generation is how callers tell "the tokens changed since I read them": it must go up
/// with every new pair or end of the tokens (a re-authorization, a refresh, a revocation, a check
/// that finds them inactive) and never otherwise. Outcomes apply only at the generation they were
/// read at, and are not tied to the lease's owner: a refresh that outlived its lease (a long
/// pause) still stores the pair Notion rotated to, if nothing else changed meanwhile.
#[async_trait::async_trait]
pub trait Refreshes: Send + Sync {
    /// Active connections that have a refresh token, whose pair was issued at or before
    /// `cutoff`, with their generation, oldest first.
    async fn due_for_refresh(&self, cutoff: i64) -> Result<Vec<(BotId, i64)>, StoreError>;

    /// Active connections not checked since `cutoff` (or never), least recently checked first.
    async fn due_for_check(&self, cutoff: i64) -> Result<Vec<BotId>, StoreError>;

    /// Takes the connection's lock for `owner` until `lease_until`, if it is free (never taken,
    /// released, or its lease ran out) and the tokens are still at `generation` (and, for a
    /// refresh, the connection is active). One statement, so two processes can never both win.
    /// Notes the time the refresh started; taking over a lease that ran out while its refresh
    /// was under way returns that refresh's start as `interrupted`, which stays until a pair is
    /// stored. `Held` when another owner has it, `Moved` when the generation or status no longer
    /// match (or there is no such connection).
    async fn claim_lease(
        &self,
        bot_id: &BotId,
        generation: i64,
        owner: &str,
        lease_until: i64,
        purpose: LeaseFor,
    ) -> Result<Claim, StoreError>;

    /// Extends `owner`'s lease; `false` when it is no longer the owner.
    async fn renew_lease(
        &self,
        bot_id: &BotId,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError>;

    /// Gives the lock back without changing anything else (a revoke that Notion failed).
    async fn release_lease(&self, bot_id: &BotId, owner: &str) -> Result<(), StoreError>;

    /// Stores a refreshed pair and releases the lock, with its history entry (`refreshed`) and
    /// event, in one transaction, if the connection is still at `from_generation` and not
    /// revoked. A `None` refresh token keeps the stored one. The connection becomes `active`
    /// (a valid new pair also ends a `needs_reauth` that a rival refresh, holding a lease this
    /// one outlived, recorded) and the interrupted marker is cleared. Returns the new
    /// generation, or `None` when the connection changed under the refresh (re-authorized,
    /// revoked): its state wins then.
    ///
    /// `sealed.key_id` names the key of the newest ciphertext; each ciphertext also carries its
    /// own, so a refresh token kept from before (Notion sent none) still opens.
    ///
    /// # Errors
    /// Storage failures; the lock then stays until it expires, and the next refresher learns
    /// that this one was interrupted.
    async fn complete_refresh(
        &self,
        grant: &SealedGrant,
        from_generation: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Releases the refresh lock after a failed refresh, with its history (`refresh_failed`, and
    /// for a refusal `needs_reauth` with its event), if the connection is still at
    /// `from_generation` (returns whether it was). The generation does not change: the pair did
    /// not. Unless the outcome is unknown, the interrupted marker is kept as it was.
    async fn fail_refresh(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        failure: RefreshFailure<'_>,
    ) -> Result<bool, StoreError>;

    /// Notes an introspection: `checked_at` and a `checked` history entry, whatever the
    /// generation. An inactive token (that could not be refreshed) means the user removed the
    /// connection in Notion: it becomes revoked (a `revoked` entry and event, the generation
    /// goes up), unless it changed since `from_generation` (a re-authorization meanwhile wins).
    async fn record_check(
        &self,
        bot_id: &BotId,
        active: bool,
        from_generation: i64,
        request_id: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Forgets a connection's tokens, marks it revoked, releases any lease, and records a
    /// `revoked` entry (with `reason`) and event, if it is still at `from_generation` (returns
    /// whether it was: a re-authorization meanwhile brought a new pair to revoke).
    async fn revoke_connection(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        reason: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError>;
}

#[async_trait::async_trait]
impl Refreshes for SqlStore {
    async fn due_for_refresh(&self, cutoff: i64) -> Result<Vec<(BotId, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id, generation FROM connections
             WHERE status = 'active' AND refresh_token IS NOT NULL AND tokens_issued_at <= $1
             ORDER BY tokens_issued_at LIMIT 500",
        )
        .bind(cutoff)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((BotId::new(row.try_get::<String, _>("bot_id")?), row.try_get("generation")?))
            })
            .collect()
    }

    async fn due_for_check(&self, cutoff: i64) -> Result<Vec<BotId>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id FROM connections WHERE status = 'active' AND COALESCE(checked_at, 0) <= $1
             ORDER BY COALESCE(checked_at, 0) LIMIT 500",
        )
        .bind(cutoff)
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(|row| Ok(BotId::new(row.try_get::<String, _>("bot_id")?))).collect()
    }

    async fn claim_lease(
        &self,
        bot_id: &BotId,
        generation: i64,
        owner: &str,
        lease_until: i64,
        purpose: LeaseFor,
    ) -> Result<Claim, StoreError> {
        let (bot_id, owner) = (bot_id.clone(), owner.to_owned());
        self.writer.statement(move |connection| Box::pin(async move {
        let now = now();
        let require_active = purpose == LeaseFor::Refresh;
        // SET expressions read the row as it was, so refresh_interrupted_at receives the
        // previous holder's start time: set only if that holder never finished.
        let claimed = query(
            "UPDATE connections SET refresh_lease_owner = $3, refresh_lease_until = $4, refresh_started_at = $5,
                 refresh_interrupted_at = COALESCE(refresh_started_at, refresh_interrupted_at)
             WHERE bot_id = $1 AND generation = $2 AND (NOT $6 OR status = 'active')
               AND (refresh_lease_until IS NULL OR refresh_lease_until < $5)
             RETURNING refresh_interrupted_at",
        )
        .bind(bot_id.as_str())
        .bind(generation)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(require_active)
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed { interrupted: row.try_get("refresh_interrupted_at")? });
        }
        let current = query("SELECT generation, status FROM connections WHERE bot_id = $1")
            .bind(bot_id.as_str())
            .fetch_optional(&mut *connection)
            .await?;
        Ok(match current {
            Some(row)
                if row.try_get::<i64>("generation")? == generation
                    && (!require_active
                        || super::word::<ConnectionStatus>(&row, "status")?
                            == ConnectionStatus::Active) =>
            {
                Claim::Held
            }
            _ => Claim::Moved,
        })
        })).await
    }

    async fn renew_lease(
        &self,
        bot_id: &BotId,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let (bot_id, owner) = (bot_id.clone(), owner.to_owned());
        self.writer.statement(move |connection| Box::pin(async move {
        let done = query(
            "UPDATE connections SET refresh_lease_until = $3 WHERE bot_id = $1 AND refresh_lease_owner = $2",
        )
        .bind(bot_id.as_str())
        .bind(owner)
        .bind(lease_until)
        .execute(connection)
        .await?;
        Ok(done.rows_affected() == 1)
        })).await
    }

    async fn release_lease(&self, bot_id: &BotId, owner: &str) -> Result<(), StoreError> {
        let (bot_id, owner) = (bot_id.clone(), owner.to_owned());
        self.writer.statement(move |connection| Box::pin(async move {
        query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL, refresh_started_at = NULL
             WHERE bot_id = $1 AND refresh_lease_owner = $2",
        )
        .bind(bot_id.as_str())
        .bind(owner)
        .execute(connection)
        .await?;
        Ok(())
        })).await
    }

    async fn complete_refresh(
        &self,
        grant: &SealedGrant,
        from_generation: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (grant, routing) = (grant.clone(), self.routing.clone());
        let changed = grant.bot_id.clone();
        self.change_connection(&changed, Statements::Several, move |transaction| Box::pin(async move {
        let now = now();
        let row = query(
            "UPDATE connections SET access_token = $2, refresh_token = COALESCE($3, refresh_token),
                 key_id = $4, generation = generation + 1,
                 status = 'active', status_reason = NULL, refresh_lease_owner = NULL,
                 refresh_lease_until = NULL, refresh_started_at = NULL, refresh_interrupted_at = NULL,
                 refreshed_at = $5, tokens_issued_at = $5, updated_at = $5, last_request_id = $6
             WHERE bot_id = $1 AND generation = $7 AND status != 'revoked' RETURNING generation",
        )
        .bind(grant.bot_id.as_str())
        .bind(&grant.tokens.access_token)
        .bind(grant.tokens.refresh_token.as_deref())
        .bind(&grant.tokens.key_id)
        .bind(now)
        .bind(grant.request_id.as_deref())
        .bind(from_generation)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let entry = HistoryEntry {
            kind: HistoryKind::Refreshed,
            message: None,
            request_id: grant.request_id.as_deref(),
        };
        record(&mut *transaction, &routing, &grant.bot_id, entry).await?;
        Ok(Some(row.try_get("generation")?))
        })).await
    }

    async fn fail_refresh(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        failure: RefreshFailure<'_>,
    ) -> Result<bool, StoreError> {
        let RefreshFailure { kind, message, request_id } = failure;
        let refused = kind == RefreshFailureKind::Refused;
        let changed = bot_id.clone();
        let (bot_id, routing) = (bot_id.clone(), self.routing.clone());
        let (message, request_id) = (message.to_owned(), request_id.map(str::to_owned));
        self.change_connection(&changed, Statements::Several, move |transaction| Box::pin(async move {
        let (message, request_id) = (message.as_str(), request_id.as_deref());
        let done = query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL,
                 refresh_interrupted_at = CASE WHEN $3 THEN COALESCE(refresh_started_at, refresh_interrupted_at)
                                              ELSE refresh_interrupted_at END,
                 refresh_started_at = NULL,
                 status = CASE WHEN $4 THEN 'needs_reauth' ELSE status END,
                 status_reason = CASE WHEN $4 THEN $5 ELSE status_reason END,
                 updated_at = $6
             WHERE bot_id = $1 AND generation = $2",
        )
        .bind(bot_id.as_str())
        .bind(from_generation)
        .bind(kind == RefreshFailureKind::OutcomeUnknown)
        .bind(refused)
        .bind(message)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let entry =
            HistoryEntry { kind: HistoryKind::RefreshFailed, message: Some(message), request_id };
        record(&mut *transaction, &routing, &bot_id, entry).await?;
        if refused {
            let entry = HistoryEntry { kind: HistoryKind::NeedsReauth, ..entry };
            record(&mut *transaction, &routing, &bot_id, entry).await?;
        }
        Ok(true)
        })).await
    }

    async fn record_check(
        &self,
        bot_id: &BotId,
        active: bool,
        from_generation: i64,
        request_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let reason = "Notion reports the token inactive: the user removed the connection in Notion";
        let changed = bot_id.clone();
        let (bot_id, routing) = (bot_id.clone(), self.routing.clone());
        let request_id = request_id.map(str::to_owned);
        self.change_connection(&changed, Statements::Several, move |transaction| Box::pin(async move {
        let request_id = request_id.as_deref();
        let now = now();
        query("UPDATE connections SET checked_at = $2 WHERE bot_id = $1")
            .bind(bot_id.as_str())
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        let message = if active { "Notion reports the token active" } else { reason };
        let entry = HistoryEntry { kind: HistoryKind::Checked, message: Some(message), request_id };
        record(&mut *transaction, &routing, &bot_id, entry).await?;
        if !active {
            let revoked = query(
                "UPDATE connections SET status = 'revoked', status_reason = $3, generation = generation + 1, updated_at = $4
                 WHERE bot_id = $1 AND generation = $2",
            )
            .bind(bot_id.as_str())
            .bind(from_generation)
            .bind(reason)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
            if revoked.rows_affected() == 1 {
                let entry =
                    HistoryEntry { kind: HistoryKind::Revoked, message: Some(reason), request_id };
                record(&mut *transaction, &routing, &bot_id, entry).await?;
            }
        }
        Ok(())
        })).await
    }

    async fn revoke_connection(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        reason: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let changed = bot_id.clone();
        let (bot_id, routing) = (bot_id.clone(), self.routing.clone());
        let (reason, request_id) = (reason.to_owned(), request_id.map(str::to_owned));
        self.change_connection(&changed, Statements::Several, move |transaction| {
            Box::pin(async move {
                let (reason, request_id) = (reason.as_str(), request_id.as_deref());
                let done = query(
            "UPDATE connections SET access_token = NULL, refresh_token = NULL, status = 'revoked',
                 generation = generation + 1, status_reason = $3, refresh_lease_owner = NULL,
                 refresh_lease_until = NULL, refresh_started_at = NULL, updated_at = $4
             WHERE bot_id = $1 AND generation = $2",
        )
        .bind(bot_id.as_str())
        .bind(from_generation)
        .bind(reason)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
                let changed = done.rows_affected() == 1;
                if changed {
                    let entry = HistoryEntry {
                        kind: HistoryKind::Revoked,
                        message: Some(reason),
                        request_id,
                    };
                    record(&mut *transaction, &routing, &bot_id, entry).await?;
                }
                Ok(changed)
            })
        })
        .await
    }
}
