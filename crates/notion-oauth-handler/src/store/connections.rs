//! Connections: upserted by bot on each authorization, refreshed under a lease, revoked.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;

use notion_oauth::{AccessToken, RefreshToken, TokenResponse};
use sqlx::{AnyPool, Row};

use super::batched::{Batched, Reply};
use super::events::{HistoryEntry, record};
use super::recent::Lookup;
use super::sql::query;
use super::summary::{ConnectionSummary, SUMMARY_COLUMNS, summary};
use super::writer::Statements;
use super::{SqlStore, StoreError, now, word};
use crate::domain::{BotId, ConnectionStatus, Upserted, WorkspaceId};
use crate::vault::Vault;

/// Stores a grant: a new connection, or new tokens and details for a known bot (counted as one
/// more authorization, which bumps the generation and ends any refresh in flight).
macro_rules! upsert_sql {
    () => {
        concat!(
            upsert_columns!(),
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'active', $16, $17, $17, $17) ",
            upsert_conflict!()
        )
    };
}

/// The columns an upsert writes.
macro_rules! upsert_columns {
    () => {
        "INSERT INTO connections (bot_id, workspace_id, workspace_name, workspace_icon, owner_type,
             owner_user_id, owner_name, owner_email, duplicated_template_id, token_type, access_token,
             refresh_token, key_id, token_response, ref, status, last_request_id, tokens_issued_at,
             created_at, updated_at)"
    };
}

/// What an upsert does to a bot stored before, and what it answers.
macro_rules! upsert_conflict {
    () => {
        "ON CONFLICT (bot_id) DO UPDATE SET
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
         RETURNING bot_id, authorizations"
    };
}

const UPSERT: &str = upsert_sql!();

/// PostgreSQL only (SQLite allows no change inside `WITH`): the upsert and its history row in one
/// statement, `$18` and `$19` the history kinds of a first and of a later authorization.
const UPSERT_AND_RECORD: &str = concat!(
    "WITH changed AS (",
    upsert_sql!(),
    "), recorded AS (
         INSERT INTO connection_events (bot_id, kind, message, request_id, created_at)
         SELECT bot_id, CASE WHEN authorizations = 1 THEN $18 ELSE $19 END, NULL, $16, $17 FROM changed)
     SELECT authorizations FROM changed"
);

/// PostgreSQL only: the upserts of several bots (each at most once) and their history rows in
/// one statement. `$1` is a JSON array of [`Granted`], `$2` the time, `$3` and `$4` the history
/// kinds of a first and of a later authorization; answers each bot's count of authorizations.
const UPSERT_SEVERAL_AND_RECORD: &str = concat!(
    "WITH granted AS (
         SELECT * FROM json_to_recordset($1::json) AS granted(bot_id text, workspace_id text,
             workspace_name text, workspace_icon text, owner_type text, owner_user_id text,
             owner_name text, owner_email text, duplicated_template_id text, token_type text,
             access_token text, refresh_token text, key_id text, token_response text, ref text,
             request_id text)
     ), changed AS (",
    upsert_columns!(),
    " SELECT bot_id, workspace_id, workspace_name, workspace_icon, owner_type, owner_user_id,
         owner_name, owner_email, duplicated_template_id, token_type,
         decode(access_token, 'base64'), decode(refresh_token, 'base64'), key_id, token_response,
         ref, 'active', request_id, $2, $2, $2
     FROM granted ",
    upsert_conflict!(),
    "), recorded AS (
         INSERT INTO connection_events (bot_id, kind, message, request_id, created_at)
         SELECT changed.bot_id, CASE WHEN changed.authorizations = 1 THEN $3 ELSE $4 END, NULL,
             granted.request_id, $2
         FROM changed JOIN granted ON granted.bot_id = changed.bot_id)
     SELECT bot_id, authorizations FROM changed"
);

/// One grant as [`UPSERT_SEVERAL_AND_RECORD`] reads it: the sealed tokens in base64.
#[derive(serde::Serialize)]
struct Granted<'a> {
    bot_id: &'a str,
    workspace_id: &'a str,
    workspace_name: Option<&'a str>,
    workspace_icon: Option<&'a str>,
    owner_type: &'a str,
    owner_user_id: Option<&'a str>,
    owner_name: Option<&'a str>,
    owner_email: Option<&'a str>,
    duplicated_template_id: Option<&'a str>,
    token_type: &'a str,
    access_token: String,
    refresh_token: Option<String>,
    key_id: &'a str,
    token_response: &'a str,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl<'a> Granted<'a> {
    fn of(grant: &'a SealedGrant, reference: Option<&'a str>) -> Self {
        use base64::Engine as _;
        let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        Self {
            bot_id: grant.bot_id.as_str(),
            workspace_id: grant.workspace_id.as_str(),
            workspace_name: grant.workspace_name.as_deref(),
            workspace_icon: grant.workspace_icon.as_deref(),
            owner_type: &grant.owner_type,
            owner_user_id: grant.owner_user_id.as_deref(),
            owner_name: grant.owner_name.as_deref(),
            owner_email: grant.owner_email.as_deref(),
            duplicated_template_id: grant.duplicated_template_id.as_deref(),
            token_type: &grant.token_type,
            access_token: base64(&grant.tokens.access_token),
            refresh_token: grant.tokens.refresh_token.as_deref().map(base64),
            key_id: &grant.tokens.key_id,
            token_response: &grant.response_json,
            reference,
            request_id: grant.request_id.as_deref(),
        }
    }
}

/// A connection to store that nobody is routed to hear of, queued on PostgreSQL.
pub(super) struct Unheard {
    grant: SealedGrant,
    reference: Option<String>,
}

/// Where unheard connections are stored on PostgreSQL: those that arrive together with one
/// statement (`batched` says why). A bot twice in one batch (the same user finishing
/// two flows at once) is stored once by the batch and then again alone, in order, since one
/// statement may not change a row twice. If the batch's statement fails, each is stored alone,
/// so each callback gets its own answer or its own error.
#[derive(Clone, Debug)]
pub(super) struct UnheardConnections(Batched<Unheard, Upserted>);

impl UnheardConnections {
    pub(super) fn start(pool: AnyPool) -> Self {
        Self(Batched::start(pool, store_unheard))
    }

    async fn store(
        &self,
        grant: SealedGrant,
        reference: Option<String>,
    ) -> Result<Upserted, StoreError> {
        self.0.request(Unheard { grant, reference }).await
    }
}

async fn store_unheard(pool: AnyPool, batch: Vec<(Unheard, Reply<Upserted>)>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let (mut firsts, mut repeats) = (Vec::with_capacity(batch.len()), Vec::new());
    for request in batch {
        if seen.insert(request.0.grant.bot_id.clone()) {
            firsts.push(request);
        } else {
            repeats.push(request);
        }
    }
    if firsts.len() > 1 {
        // Rows locked in one order everywhere: two instances' batches that share bots wait for
        // each other instead of deadlocking.
        firsts.sort_unstable_by(|(a, _), (b, _)| {
            a.grant.bot_id.as_str().cmp(b.grant.bot_id.as_str())
        });
        match store_several(&pool, &firsts).await {
            Ok(authorizations) => {
                for (unheard, reply) in firsts.drain(..) {
                    let stored = authorizations
                        .get(unheard.grant.bot_id.as_str())
                        .map(|count| outcome(*count))
                        .ok_or_else(|| {
                            StoreError::Other(
                                "PostgreSQL did not report storing the connection".into(),
                            )
                        });
                    let _ = reply.send(stored);
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::telemetry::Chain(&error), count = firsts.len(), "connections could not be stored together; storing each alone");
            }
        }
    }
    // The bots left are all different: at once, so that if the database cannot be reached
    // every request fails within one timeout. Repeats after them, in order.
    let stored = join_all(firsts.iter().map(|(unheard, _)| store_one(&pool, unheard))).await;
    for ((_, reply), stored) in firsts.into_iter().zip(stored) {
        let _ = reply.send(stored);
    }
    for (unheard, reply) in repeats {
        let _ = reply.send(store_one(&pool, &unheard).await);
    }
}

async fn store_one(pool: &AnyPool, unheard: &Unheard) -> Result<Upserted, StoreError> {
    let mut connection = pool.acquire().await?;
    let row = upsert(UPSERT_AND_RECORD, &unheard.grant, unheard.reference.clone())
        .bind(Upserted::Created.history_kind().as_str())
        .bind(Upserted::Reauthorized.history_kind().as_str())
        .fetch_one(&mut *connection)
        .await?;
    Ok(outcome(row.try_get("authorizations")?))
}

async fn store_several(
    pool: &AnyPool,
    batch: &[(Unheard, Reply<Upserted>)],
) -> Result<HashMap<String, i64>, StoreError> {
    let granted: Vec<Granted<'_>> = batch
        .iter()
        .map(|(unheard, _)| Granted::of(&unheard.grant, unheard.reference.as_deref()))
        .collect();
    let granted = serde_json::to_string(&granted).map_err(StoreError::Serialize)?;
    let rows = sqlx::query(UPSERT_SEVERAL_AND_RECORD)
        .bind(granted)
        .bind(now())
        .bind(Upserted::Created.history_kind().as_str())
        .bind(Upserted::Reauthorized.history_kind().as_str())
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((row.try_get::<String, _>("bot_id")?, row.try_get::<i64, _>("authorizations")?))
        })
        .collect()
}

/// The upsert statement `sql` with the grant's values bound.
fn upsert(sql: &'static str, grant: &SealedGrant, reference: Option<String>) -> super::sql::Query {
    query(sql)
        .bind(grant.bot_id.as_str())
        .bind(grant.workspace_id.as_str())
        .bind(grant.workspace_name.as_deref())
        .bind(grant.workspace_icon.as_deref())
        .bind(&grant.owner_type)
        .bind(grant.owner_user_id.as_deref())
        .bind(grant.owner_name.as_deref())
        .bind(grant.owner_email.as_deref())
        .bind(grant.duplicated_template_id.as_deref())
        .bind(&grant.token_type)
        .bind(&grant.tokens.access_token)
        .bind(grant.tokens.refresh_token.as_deref())
        .bind(&grant.tokens.key_id)
        .bind(&grant.response_json)
        .bind(reference)
        .bind(grant.request_id.as_deref())
        .bind(now())
}

/// What an upsert did, from the connection's count of authorizations after it.
fn outcome(authorizations: i64) -> Upserted {
    if authorizations == 1 { Upserted::Created } else { Upserted::Reauthorized }
}

/// Which connections to list.
#[derive(Debug, Default, Clone)]
pub struct ConnectionFilter {
    /// Only connections in this workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// Only connections started with this `ref`.
    pub reference: Option<String>,
    /// Only connections in this state.
    pub status: Option<ConnectionStatus>,
    /// Only bots whose id sorts after this one (the previous page's last).
    pub after: Option<BotId>,
    /// At most this many.
    pub limit: i64,
}

/// A connection's tokens, opened, with what a refresh needs to know.
#[derive(Debug)]
pub struct StoredTokens {
    /// `None` once revoked.
    pub access_token: Option<AccessToken>,
    /// `None` once revoked, or when Notion gave none.
    pub refresh_token: Option<RefreshToken>,
    /// Where the connection stands.
    pub status: ConnectionStatus,
    /// Why it is not active.
    pub status_reason: Option<String>,
    /// Goes up with every new pair and with the end of the tokens.
    pub generation: i64,
    /// When the pair was last refreshed.
    pub refreshed_at: Option<i64>,
}

/// Which of a connection's tokens to decrypt. Opening one is about a seventh of what answering
/// the token API costs (callgrind, docs/BENCHMARKS.md), and most callers use the access token
/// alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhichTokens {
    /// The access token; the refresh token stays sealed and is given as `None`.
    Access,
    /// Both: for a refresh, and for an app that refreshes by itself.
    AccessAndRefresh,
}

/// A connection's tokens as a store keeps them: sealed, with what a refresh needs to know.
#[derive(Clone)]
pub struct SealedTokens {
    /// The sealed access token; `None` once revoked.
    pub access_token: Option<Vec<u8>>,
    /// The sealed refresh token; `None` once revoked, or when Notion gave none.
    pub refresh_token: Option<Vec<u8>>,
    /// Where the connection stands.
    pub status: ConnectionStatus,
    /// Why it is not active.
    pub status_reason: Option<String>,
    /// Goes up with every new pair and with the end of the tokens.
    pub generation: i64,
    /// When the pair was last refreshed.
    pub refreshed_at: Option<i64>,
}

/// A token pair Notion just issued, sealed by the vault for one bot: what a store writes in
/// place of the tokens. Each ciphertext is bound to its bot and column, so a store that mixes
/// up rows or columns hands back ciphertexts that refuse to open rather than another bot's token.
#[derive(Clone)]
pub struct SealedPair {
    /// The sealed access token.
    pub access_token: Vec<u8>,
    /// `None` when Notion sent none: a refresh keeps the one stored before, a re-authorization
    /// stores none.
    pub refresh_token: Option<Vec<u8>>,
    /// The vault key that sealed them (each ciphertext names its key too).
    pub key_id: String,
}

impl std::fmt::Debug for SealedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTokens")
            .field("status", &self.status)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SealedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedPair").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Binds a ciphertext to its row and column.
fn context(bot_id: &BotId, column: &str) -> Vec<u8> {
    // Pieces pushed, not formatted: the token API opens two tokens per call.
    let parts = ["connections/", bot_id.as_str(), "/", column];
    let mut context = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
    parts.iter().for_each(|part| context.extend_from_slice(part.as_bytes()));
    context
}

/// What Notion granted, as a store receives it: what Notion said about the connection in clear,
/// the tokens sealed.
#[derive(Debug, Clone)]
pub struct SealedGrant {
    /// The connection's bot.
    pub bot_id: BotId,
    /// The workspace it was installed in.
    pub workspace_id: WorkspaceId,
    /// The workspace's name, if it has one.
    pub workspace_name: Option<String>,
    /// The workspace's icon, usually a URL.
    pub workspace_icon: Option<String>,
    /// `user` or `workspace`.
    pub owner_type: String,
    /// The Notion user who authorized it.
    pub owner_user_id: Option<String>,
    /// That user's name.
    pub owner_name: Option<String>,
    /// That user's email, when the integration may read it.
    pub owner_email: Option<String>,
    /// The page duplicated from the integration's template, if the user chose to.
    pub duplicated_template_id: Option<String>,
    /// Always `bearer` in practice.
    pub token_type: String,
    /// Notion's whole answer as JSON, tokens left out.
    pub response_json: String,
    /// Notion's id for the request that granted it.
    pub request_id: Option<String>,
    /// The tokens, sealed.
    pub tokens: SealedPair,
}

impl SealedGrant {
    /// Seals the tokens in `response` with the vault's active key, and keeps the rest.
    ///
    /// # Errors
    /// Encryption failures (no randomness).
    pub fn seal(vault: &Vault, response: &TokenResponse) -> Result<Self, StoreError> {
        let user = response.owner.user();
        Ok(Self {
            bot_id: response.bot_id.clone(),
            workspace_id: response.workspace_id.clone(),
            workspace_name: response.workspace_name.clone(),
            workspace_icon: response.workspace_icon.clone(),
            owner_type: response.owner.kind().to_owned(),
            owner_user_id: user.map(|u| u.id.as_str().to_owned()),
            owner_name: user.and_then(|u| u.name.clone()),
            owner_email: user.and_then(|u| u.person.as_ref()).and_then(|p| p.email.clone()),
            duplicated_template_id: response.duplicated_template_id.clone(),
            token_type: response.token_type.clone(),
            // Serializing the response leaves the tokens out by construction (see TokenResponse).
            response_json: serde_json::to_string(response).map_err(StoreError::Serialize)?,
            request_id: response.request_id.clone(),
            tokens: SealedPair::seal(vault, response)?,
        })
    }
}

impl SealedPair {
    fn seal(vault: &Vault, response: &TokenResponse) -> Result<Self, StoreError> {
        let bot_id = &response.bot_id;
        let access_token = vault.seal(
            response.access_token.expose_secret().as_bytes(),
            &context(bot_id, "access_token"),
        )?;
        let refresh_token = match &response.refresh_token {
            Some(token) => Some(
                vault.seal(token.expose_secret().as_bytes(), &context(bot_id, "refresh_token"))?,
            ),
            None => None,
        };
        Ok(Self { access_token, refresh_token, key_id: vault.active_key_id() })
    }
}

impl SealedTokens {
    /// Opens the tokens of `bot_id`: both, or the access token alone.
    ///
    /// # Errors
    /// A ciphertext that does not open (wrong key, tampering, another bot's or column's). A
    /// refresh token left sealed is not checked.
    pub fn open(
        self,
        vault: &Vault,
        bot_id: &BotId,
        which: WhichTokens,
    ) -> Result<StoredTokens, StoreError> {
        let open = |sealed: Option<Vec<u8>>, column: &str| -> Result<Option<String>, StoreError> {
            sealed
                .map(|sealed| {
                    let plain = vault.open(&sealed, &context(bot_id, column))?;
                    String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Corrupt)
                })
                .transpose()
        };
        Ok(StoredTokens {
            access_token: open(self.access_token, "access_token")?.map(AccessToken::new),
            refresh_token: match which {
                WhichTokens::Access => None,
                WhichTokens::AccessAndRefresh => {
                    open(self.refresh_token, "refresh_token")?.map(RefreshToken::new)
                }
            },
            status: self.status,
            status_reason: self.status_reason,
            generation: self.generation,
            refreshed_at: self.refreshed_at,
        })
    }

    /// The same tokens sealed under the vault's active key, for a key rotation: each opened
    /// with whichever key sealed it, then sealed again, never leaving this function in clear.
    ///
    /// # Errors
    /// A ciphertext that does not open, or the vault could not seal.
    pub fn resealed(&self, vault: &Vault, bot_id: &BotId) -> Result<Resealed, StoreError> {
        let reseal = |sealed: Option<&Vec<u8>>, column: &str| {
            sealed
                .map(|sealed| {
                    let context = context(bot_id, column);
                    let plain = vault.open(sealed, &context)?;
                    vault.seal(&plain, &context).map_err(StoreError::from)
                })
                .transpose()
        };
        Ok(Resealed {
            access_token: reseal(self.access_token.as_ref(), "access_token")?,
            refresh_token: reseal(self.refresh_token.as_ref(), "refresh_token")?,
            key_id: vault.active_key_id(),
        })
    }
}

/// A connection's stored tokens sealed again under the active key ([`SealedTokens::resealed`]).
#[derive(Clone)]
pub struct Resealed {
    /// The access token, if the connection has one.
    pub access_token: Option<Vec<u8>>,
    /// The refresh token, if the connection has one.
    pub refresh_token: Option<Vec<u8>>,
    /// The key that sealed them.
    pub key_id: String,
}

/// Connections: written by the flow, read by the API and the lifecycle.
#[async_trait::async_trait]
pub trait Connections: Send + Sync {
    /// Stores the connection Notion just granted, with its history entry (`connected` or
    /// `reconnected`) and its event queued for the routed targets, in one transaction: on an
    /// error nothing is written.
    ///
    /// A first authorization of the bot creates it (`Created`: `authorizations` 1, generation
    /// 1). A later one (`Reauthorized`) replaces the whole pair (a `None` refresh token too),
    /// increments `authorizations` and the generation, makes it `active` again, and clears the
    /// refresh lease and the interrupted marker; `reference` replaces the stored one only when
    /// given, and so does `duplicated_template_id`.
    async fn upsert_connection(
        &self,
        grant: &SealedGrant,
        reference: Option<&str>,
    ) -> Result<Upserted, StoreError>;
    /// Connections matching `filter`, ordered by bot id (stable for paging), without tokens.
    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<ConnectionSummary>, StoreError>;

    /// One connection, without tokens.
    async fn connection(&self, bot_id: &BotId) -> Result<Option<ConnectionSummary>, StoreError>;

    /// A connection's sealed tokens; `None` when there is no such connection.
    async fn sealed_tokens(&self, bot_id: &BotId) -> Result<Option<SealedTokens>, StoreError>;

    /// Like [`sealed_tokens`](Self::sealed_tokens), but a store may answer with what it read
    /// up to [`RECENT`](super::RECENT) ago, provided it drops that copy whenever it writes the
    /// connection itself. Used to answer the token API, never to decide about a refresh.
    async fn recent_sealed_tokens(
        &self,
        bot_id: &BotId,
    ) -> Result<Option<SealedTokens>, StoreError> {
        self.sealed_tokens(bot_id).await
    }
}

#[async_trait::async_trait]
impl Connections for SqlStore {
    async fn upsert_connection(
        &self,
        grant: &SealedGrant,
        reference: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        let (grant, reference) = (grant.clone(), reference.map(str::to_owned));
        let (routing, bot_id) = (self.routing.clone(), grant.bot_id.clone());
        let heard = [Upserted::Created, Upserted::Reauthorized]
            .into_iter()
            .filter_map(|outcome| outcome.history_kind().event_type())
            .any(|event| routing.wants(event));
        // Nothing to queue, so the history row goes with the upsert in one statement, shared
        // with every connection stored meanwhile.
        if !heard && let Some(unheard) = &self.unheard_connections {
            let (unheard, tokens) = (unheard.clone(), self.tokens.clone());
            let write = async move { unheard.store(grant, reference).await };
            return super::then_forget(write, move || tokens.forget(&bot_id)).await;
        }
        self.change_connection(&bot_id, Statements::Several, move |transaction| {
            Box::pin(async move {
                let row = upsert(UPSERT, &grant, reference).fetch_one(&mut *transaction).await?;
                let outcome = outcome(row.try_get("authorizations")?);
                let entry = HistoryEntry {
                    kind: outcome.history_kind(),
                    message: None,
                    request_id: grant.request_id.as_deref(),
                };
                record(&mut *transaction, &routing, &grant.bot_id, entry).await?;
                Ok(outcome)
            })
        })
        .await
    }

    async fn list_connections(
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
            .bind(filter.workspace_id.as_ref().map(WorkspaceId::as_str))
            .bind(filter.reference.as_deref())
            .bind(filter.status.map(ConnectionStatus::as_str))
            .bind(filter.after.as_ref().map(BotId::as_str))
            .bind(filter.limit)
            .fetch_all(&self.reads)
            .await?;
        Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
    }

    async fn connection(&self, bot_id: &BotId) -> Result<Option<ConnectionSummary>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM connections WHERE bot_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(bot_id.as_str())
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(summary).transpose()?)
    }

    async fn sealed_tokens(&self, bot_id: &BotId) -> Result<Option<SealedTokens>, StoreError> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, status, status_reason, generation, refreshed_at
             FROM connections WHERE bot_id = $1",
        )
        .bind(bot_id.as_str())
        .fetch_optional(&self.reads)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(sealed_tokens(&row)?))
    }

    async fn recent_sealed_tokens(
        &self,
        bot_id: &BotId,
    ) -> Result<Option<SealedTokens>, StoreError> {
        match self.tokens.get(bot_id) {
            Lookup::Hit(tokens) => Ok(tokens),
            Lookup::Miss(miss) => {
                let tokens = self.sealed_tokens(bot_id).await?;
                self.tokens.store(bot_id, miss, tokens.clone());
                Ok(tokens)
            }
        }
    }
}

pub(super) fn sealed_tokens(row: &sqlx::any::AnyRow) -> Result<SealedTokens, sqlx::Error> {
    Ok(SealedTokens {
        access_token: row.try_get("access_token")?,
        refresh_token: row.try_get("refresh_token")?,
        status: word(row, "status")?,
        status_reason: row.try_get("status_reason")?,
        generation: row.try_get("generation")?,
        refreshed_at: row.try_get("refreshed_at")?,
    })
}
