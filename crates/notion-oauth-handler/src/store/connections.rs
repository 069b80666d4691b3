//! Connections: upserted by bot on each authorization, refreshed under a lease, revoked.

use notion_oauth::{AccessToken, RefreshToken, TokenResponse};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::events::record;
use super::{Store, StoreError, now};
use crate::vault::Vault;

/// A connection as shown to operators and the API: everything but the tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionSummary {
    pub bot_id: String,
    pub workspace_id: String,
    pub workspace_name: Option<String>,
    pub workspace_icon: Option<String>,
    /// `user` (a person authorized it) or `workspace` (legacy).
    pub owner_type: String,
    pub owner_user_id: Option<String>,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
    /// The page duplicated from the integration's template, if the user chose to.
    pub duplicated_template_id: Option<String>,
    /// The app's own reference passed to `/connect`.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub reference: Option<String>,
    /// `active`, `needs_reauth` (send the user to connect again) or `revoked`.
    pub status: String,
    /// Why the status is not `active`.
    pub status_reason: Option<String>,
    /// How many times the user authorized (re-authorizations replace the token pair).
    pub authorizations: i64,
    /// Set when a refresh was under way and its process stopped before storing the answer:
    /// Notion may have rotated the pair, so the stored one may no longer work.
    pub refresh_interrupted_at: Option<i64>,
    pub refreshed_at: Option<i64>,
    pub checked_at: Option<i64>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    #[schema(ignore)]
    pub key_id: String,
}

pub(super) const SUMMARY_COLUMNS: &str =
    "bot_id, workspace_id, workspace_name, workspace_icon, owner_type, owner_user_id,
    owner_name, owner_email, duplicated_template_id, ref, status, status_reason, authorizations,
    refresh_started_at, refresh_lease_until, refresh_interrupted_at,
    refreshed_at, checked_at, created_at, updated_at, key_id";

/// A refresh whose outcome is unknown: one recorded as such, or one whose holder's lease ran out
/// before it finished (its process died).
fn interrupted_at(row: &AnyRow) -> Result<Option<i64>, sqlx::Error> {
    let started: Option<i64> = row.try_get("refresh_started_at")?;
    let lease_until: Option<i64> = row.try_get("refresh_lease_until")?;
    Ok(match (started, lease_until) {
        (Some(started), Some(until)) if until < now() => Some(started),
        _ => row.try_get("refresh_interrupted_at")?,
    })
}

pub(super) fn summary(row: &AnyRow) -> Result<ConnectionSummary, sqlx::Error> {
    Ok(ConnectionSummary {
        bot_id: row.try_get("bot_id")?,
        workspace_id: row.try_get("workspace_id")?,
        workspace_name: row.try_get("workspace_name")?,
        workspace_icon: row.try_get("workspace_icon")?,
        owner_type: row.try_get("owner_type")?,
        owner_user_id: row.try_get("owner_user_id")?,
        owner_name: row.try_get("owner_name")?,
        owner_email: row.try_get("owner_email")?,
        duplicated_template_id: row.try_get("duplicated_template_id")?,
        reference: row.try_get("ref")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        authorizations: row.try_get("authorizations")?,
        refresh_interrupted_at: interrupted_at(row)?,
        refreshed_at: row.try_get("refreshed_at")?,
        checked_at: row.try_get("checked_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        key_id: row.try_get("key_id")?,
    })
}

/// Which connections to list.
#[derive(Debug, Default, Clone)]
pub struct ConnectionFilter {
    pub workspace_id: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    /// Only bots whose id sorts after this one (the previous page's last).
    pub after: Option<String>,
    pub limit: i64,
}

/// A connection's tokens, opened, with what a refresh needs to know.
#[derive(Debug)]
pub struct StoredTokens {
    pub access_token: Option<AccessToken>,
    pub refresh_token: Option<RefreshToken>,
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub refreshed_at: Option<i64>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Reauthorized,
}

/// The outcome of asking for a connection's refresh lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the lock; `interrupted` is when an earlier refresh started and never
    /// finished (its process died with the lock).
    Claimed { interrupted: Option<i64> },
    /// Another caller holds it.
    Held,
    /// The tokens changed since the caller looked: re-read instead of refreshing.
    Moved,
}

/// Binds a ciphertext to its row and column.
fn context(bot_id: &str, column: &str) -> Vec<u8> {
    format!("connections/{bot_id}/{column}").into_bytes()
}

fn seal_pair(
    vault: &Vault,
    response: &TokenResponse,
) -> Result<(Vec<u8>, Option<Vec<u8>>), StoreError> {
    let bot_id = response.bot_id.as_str();
    let access = vault
        .seal(response.access_token.expose_secret().as_bytes(), &context(bot_id, "access_token"))?;
    let refresh = match &response.refresh_token {
        Some(token) => {
            Some(vault.seal(token.expose_secret().as_bytes(), &context(bot_id, "refresh_token"))?)
        }
        None => None,
    };
    Ok((access, refresh))
}

impl Store {
    /// Stores the connection Notion just granted, replacing the token pair of an earlier
    /// authorization of the same bot, with its event, in one transaction.
    ///
    /// # Errors
    /// Database or encryption failures; nothing is written then.
    pub async fn upsert_connection(
        &self,
        vault: &Vault,
        response: &TokenResponse,
        reference: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        let (access, refresh) = seal_pair(vault, response)?;
        let user = response.owner.user();
        let email = user.and_then(|u| u.person.as_ref()).and_then(|p| p.email.clone());
        // Serializing the response leaves the tokens out by construction (see TokenResponse).
        let stored_response = serde_json::to_string(response).map_err(StoreError::Serialize)?;
        let mut transaction = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO connections (bot_id, workspace_id, workspace_name, workspace_icon, owner_type,
                 owner_user_id, owner_name, owner_email, duplicated_template_id, token_type, access_token,
                 refresh_token, key_id, token_response, ref, status, last_request_id, tokens_issued_at,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'active', $16, $17, $17, $17)
             ON CONFLICT (bot_id) DO UPDATE SET
                 workspace_id = excluded.workspace_id, workspace_name = excluded.workspace_name,
                 workspace_icon = excluded.workspace_icon, owner_type = excluded.owner_type,
                 owner_user_id = excluded.owner_user_id, owner_name = excluded.owner_name,
                 owner_email = excluded.owner_email,
                 duplicated_template_id = COALESCE(excluded.duplicated_template_id, connections.duplicated_template_id),
                 token_type = excluded.token_type, access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token, key_id = excluded.key_id,
                 token_response = excluded.token_response, ref = COALESCE(excluded.ref, connections.ref),
                 status = 'active', status_reason = NULL, authorizations = connections.authorizations + 1,
                 generation = connections.generation + 1, refresh_lease_owner = NULL,
                 refresh_lease_until = NULL, refresh_started_at = NULL, refresh_interrupted_at = NULL,
                 tokens_issued_at = excluded.tokens_issued_at,
                 last_request_id = excluded.last_request_id, updated_at = excluded.updated_at
             RETURNING authorizations",
        )
        .bind(response.bot_id.as_str())
        .bind(response.workspace_id.as_str())
        .bind(response.workspace_name.as_deref())
        .bind(response.workspace_icon.as_deref())
        .bind(response.owner.kind())
        .bind(user.map(|u| u.id.as_str()))
        .bind(user.and_then(|u| u.name.as_deref()))
        .bind(email)
        .bind(response.duplicated_template_id.as_deref())
        .bind(&response.token_type)
        .bind(access)
        .bind(refresh)
        .bind(vault.active_key_id())
        .bind(stored_response)
        .bind(reference)
        .bind(response.request_id.as_deref())
        .bind(now())
        .fetch_one(&mut *transaction)
        .await?;
        let authorizations: i64 = row.try_get("authorizations")?;
        let outcome = if authorizations == 1 { Upserted::Created } else { Upserted::Reauthorized };
        let kind = if outcome == Upserted::Created { "connected" } else { "reconnected" };
        record(
            &mut transaction,
            &self.deliveries,
            response.bot_id.as_str(),
            kind,
            None,
            response.request_id.as_deref(),
        )
        .await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    /// Connections matching `filter`, ordered by bot id (stable for paging), without tokens.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<ConnectionSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM connections
             WHERE ($1 IS NULL OR workspace_id = $1) AND ($2 IS NULL OR ref = $2)
               AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR bot_id > $4)
             ORDER BY bot_id LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.workspace_id.as_deref())
            .bind(filter.reference.as_deref())
            .bind(filter.status.as_deref())
            .bind(filter.after.as_deref())
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
    }

    /// One connection, without tokens.
    ///
    /// # Errors
    /// Database failures.
    pub async fn connection(&self, bot_id: &str) -> Result<Option<ConnectionSummary>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM connections WHERE bot_id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(bot_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(summary).transpose()?)
    }

    /// Opens a connection's tokens; `None` when there is no such connection.
    ///
    /// # Errors
    /// Database failures, or a ciphertext that does not open (wrong key, tampering).
    pub async fn tokens(
        &self,
        vault: &Vault,
        bot_id: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT access_token, refresh_token, status, status_reason, generation, refreshed_at
             FROM connections WHERE bot_id = $1",
        )
        .bind(bot_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let open = |column: &str| -> Result<Option<String>, StoreError> {
            let sealed: Option<Vec<u8>> = row.try_get(column)?;
            sealed
                .map(|sealed| {
                    let plain = vault.open(&sealed, &context(bot_id, column))?;
                    String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Corrupt)
                })
                .transpose()
        };
        Ok(Some(StoredTokens {
            access_token: open("access_token")?.map(AccessToken::new),
            refresh_token: open("refresh_token")?.map(RefreshToken::new),
            status: row.try_get("status")?,
            status_reason: row.try_get("status_reason")?,
            generation: row.try_get("generation")?,
            refreshed_at: row.try_get("refreshed_at")?,
        }))
    }

    /// Active connections whose pair was issued at or before `cutoff`, with their generation.
    ///
    /// # Errors
    /// Database failures.
    pub async fn due_for_refresh(&self, cutoff: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id, generation FROM connections
             WHERE status = 'active' AND refresh_token IS NOT NULL AND tokens_issued_at <= $1
             ORDER BY tokens_issued_at LIMIT 500",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("bot_id")?, row.try_get("generation")?))).collect()
    }

    /// Active connections not checked since `cutoff`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn due_for_check(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id FROM connections WHERE status = 'active' AND COALESCE(checked_at, 0) <= $1
             ORDER BY COALESCE(checked_at, 0) LIMIT 500",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("bot_id")?)).collect()
    }

    /// Takes the connection's lock for `owner` until `lease_until`, if it is free and the tokens
    /// are still at `generation` (and, with `require_active`, the connection is active). One
    /// statement, so two processes can never both win.
    ///
    /// # Errors
    /// Database failures.
    pub async fn claim_lease(
        &self,
        bot_id: &str,
        generation: i64,
        owner: &str,
        lease_until: i64,
        require_active: bool,
    ) -> Result<Claim, StoreError> {
        let now = now();
        // SET expressions read the row as it was, so refresh_interrupted_at receives the
        // previous holder's start time: set only if that holder never finished.
        let claimed = sqlx::query(
            "UPDATE connections SET refresh_lease_owner = $3, refresh_lease_until = $4, refresh_started_at = $5,
                 refresh_interrupted_at = COALESCE(refresh_started_at, refresh_interrupted_at)
             WHERE bot_id = $1 AND generation = $2 AND (NOT $6 OR status = 'active')
               AND (refresh_lease_until IS NULL OR refresh_lease_until < $5)
             RETURNING refresh_interrupted_at",
        )
        .bind(bot_id)
        .bind(generation)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(require_active)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed { interrupted: row.try_get("refresh_interrupted_at")? });
        }
        let current = sqlx::query("SELECT generation, status FROM connections WHERE bot_id = $1")
            .bind(bot_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match current {
            Some(row)
                if row.try_get::<i64, _>("generation")? == generation
                    && (!require_active || row.try_get::<String, _>("status")? == "active") =>
            {
                Claim::Held
            }
            _ => Claim::Moved,
        })
    }

    /// Extends `owner`'s lease; `false` when it is no longer the owner.
    ///
    /// # Errors
    /// Database failures.
    pub async fn renew_lease(
        &self,
        bot_id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE connections SET refresh_lease_until = $3 WHERE bot_id = $1 AND refresh_lease_owner = $2")
            .bind(bot_id)
            .bind(owner)
            .bind(lease_until)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lock back without changing anything else (a revoke that Notion failed).
    ///
    /// # Errors
    /// Database failures.
    pub async fn release_lease(&self, bot_id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL, refresh_started_at = NULL
             WHERE bot_id = $1 AND refresh_lease_owner = $2",
        )
        .bind(bot_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a refreshed pair and releases the lock, with its event, in one transaction, if the
    /// connection is still at `from_generation` and not revoked. A valid new pair also ends a
    /// `needs_reauth` that a rival refresh (holding a lease this one outlived) recorded. Returns
    /// the new generation, or `None` when the connection changed under the refresh
    /// (re-authorized, revoked): its state wins then.
    ///
    /// # Errors
    /// Database or encryption failures; the lock then stays until it expires, and the next
    /// refresher learns that this one was interrupted.
    pub async fn complete_refresh(
        &self,
        vault: &Vault,
        response: &TokenResponse,
        from_generation: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (access, refresh) = seal_pair(vault, response)?;
        let now = now();
        let mut transaction = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE connections SET access_token = $2,
                 refresh_token = COALESCE($3, refresh_token), key_id = $4, generation = generation + 1,
                 status = 'active', status_reason = NULL, refresh_lease_owner = NULL,
                 refresh_lease_until = NULL, refresh_started_at = NULL, refresh_interrupted_at = NULL,
                 refreshed_at = $5, tokens_issued_at = $5, updated_at = $5, last_request_id = $6
             WHERE bot_id = $1 AND generation = $7 AND status != 'revoked' RETURNING generation",
        )
        .bind(response.bot_id.as_str())
        .bind(access)
        .bind(refresh)
        .bind(vault.active_key_id())
        .bind(now)
        .bind(response.request_id.as_deref())
        .bind(from_generation)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        record(
            &mut transaction,
            &self.deliveries,
            response.bot_id.as_str(),
            "refreshed",
            None,
            response.request_id.as_deref(),
        )
        .await?;
        transaction.commit().await?;
        Ok(Some(row.try_get("generation")?))
    }

    /// Releases the refresh lock after a failed refresh, with the events that say so, if the
    /// connection is still at `from_generation` (returns whether it was). `needs_reauth` sets
    /// that status; `outcome_unknown` (Notion may have rotated the pair before its answer was
    /// lost) keeps the interrupted marker so the next refresh can tell what a refusal means.
    ///
    /// # Errors
    /// Database failures.
    pub async fn fail_refresh(
        &self,
        bot_id: &str,
        from_generation: i64,
        needs_reauth: bool,
        outcome_unknown: bool,
        message: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL,
                 refresh_interrupted_at = CASE WHEN $3 THEN COALESCE(refresh_started_at, refresh_interrupted_at)
                                              ELSE refresh_interrupted_at END,
                 refresh_started_at = NULL,
                 status = CASE WHEN $4 THEN 'needs_reauth' ELSE status END,
                 status_reason = CASE WHEN $4 THEN $5 ELSE status_reason END,
                 updated_at = $6
             WHERE bot_id = $1 AND generation = $2",
        )
        .bind(bot_id)
        .bind(from_generation)
        .bind(outcome_unknown)
        .bind(needs_reauth)
        .bind(message)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record(
            &mut transaction,
            &self.deliveries,
            bot_id,
            "refresh_failed",
            Some(message),
            request_id,
        )
        .await?;
        if needs_reauth {
            record(
                &mut transaction,
                &self.deliveries,
                bot_id,
                "needs_reauth",
                Some(message),
                request_id,
            )
            .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Notes an introspection. An inactive token (that could not be refreshed) means the user
    /// removed the connection in Notion: it becomes revoked, unless it changed since
    /// `from_generation` (a re-authorization meanwhile wins).
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_check(
        &self,
        bot_id: &str,
        active: bool,
        from_generation: i64,
        request_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let reason = "Notion reports the token inactive: the user removed the connection in Notion";
        let now = now();
        let mut transaction = self.pool.begin().await?;
        sqlx::query("UPDATE connections SET checked_at = $2 WHERE bot_id = $1")
            .bind(bot_id)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        let message = if active { "Notion reports the token active" } else { reason };
        record(&mut transaction, &self.deliveries, bot_id, "checked", Some(message), request_id)
            .await?;
        if !active {
            let revoked = sqlx::query(
                "UPDATE connections SET status = 'revoked', status_reason = $3, generation = generation + 1, updated_at = $4
                 WHERE bot_id = $1 AND generation = $2",
            )
            .bind(bot_id)
            .bind(from_generation)
            .bind(reason)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
            if revoked.rows_affected() == 1 {
                record(
                    &mut transaction,
                    &self.deliveries,
                    bot_id,
                    "revoked",
                    Some(reason),
                    request_id,
                )
                .await?;
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Forgets a connection's tokens and marks it revoked, if it is still at `from_generation`
    /// (returns whether it was: a re-authorization meanwhile brought a new pair to revoke).
    ///
    /// # Errors
    /// Database failures.
    pub async fn revoke_connection(
        &self,
        bot_id: &str,
        from_generation: i64,
        message: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE connections SET access_token = NULL, refresh_token = NULL, status = 'revoked',
                 generation = generation + 1, status_reason = $3, refresh_lease_owner = NULL,
                 refresh_lease_until = NULL, refresh_started_at = NULL, updated_at = $4
             WHERE bot_id = $1 AND generation = $2",
        )
        .bind(bot_id)
        .bind(from_generation)
        .bind(message)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
        let changed = done.rows_affected() == 1;
        if changed {
            record(
                &mut transaction,
                &self.deliveries,
                bot_id,
                "revoked",
                Some(message),
                request_id,
            )
            .await?;
        }
        transaction.commit().await?;
        Ok(changed)
    }
}
