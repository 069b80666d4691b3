//! Where connections live: SQLite, with tokens sealed by the [`Vault`] before they are written.

use std::str::FromStr;
use std::time::Duration;

use notion_oauth::{AccessToken, RefreshToken, TokenResponse};
use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqlSafeStr};

use crate::vault::{Vault, VaultError};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database schema could not be brought up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("a stored token is not valid text")]
    Corrupt,
    #[error("Notion's answer could not be serialized for storage: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// A connection as listed for operators: everything but the tokens.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSummary {
    pub bot_id: String,
    pub workspace_id: String,
    pub workspace_name: Option<String>,
    pub owner_type: String,
    pub owner_user_id: Option<String>,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
    pub duplicated_template_id: Option<String>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub status: String,
    pub authorizations: i64,
    pub key_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A connection's tokens, opened.
#[derive(Debug)]
pub struct ConnectionTokens {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Reauthorized,
}

/// The database, shared by all requests.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

fn migrator() -> Migrator {
    let migration = |version: i64, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![migration(
        1,
        "connections",
        include_str!("../migrations/sqlite/0001_connections.sql"),
    )])
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// # Errors
    /// An unusable URL or file, or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// Opens a database that must exist already (for inspection commands, which should not
    /// leave an empty database behind a mistyped path).
    ///
    /// # Errors
    /// A missing file, or see [`Store::connect`].
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            // WAL lets readers (readiness checks, listings) run beside the writer.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Records a state's nonce as used. `false` when it was used before: a replay.
    ///
    /// # Errors
    /// Database failures.
    pub async fn consume_state(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        let now = now();
        // Expired nonces can never verify again (their state is too old), so they can go.
        sqlx::query("DELETE FROM used_states WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO used_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING")
                .bind(nonce)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Stores the connection Notion just granted, replacing the token pair of an earlier
    /// authorization of the same bot. One statement: nothing is ever half-stored.
    ///
    /// # Errors
    /// Database or encryption failures.
    pub async fn upsert_connection(
        &self,
        vault: &Vault,
        response: &TokenResponse,
        reference: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        let bot_id = response.bot_id.as_str();
        let access = vault.seal(
            response.access_token.expose_secret().as_bytes(),
            &context(bot_id, "access_token"),
        )?;
        let refresh = match &response.refresh_token {
            Some(token) => Some(
                vault.seal(token.expose_secret().as_bytes(), &context(bot_id, "refresh_token"))?,
            ),
            None => None,
        };
        let user = response.owner.user();
        let email = user.and_then(|u| u.person.as_ref()).and_then(|p| p.email.clone());
        // Serializing the response leaves the tokens out by construction (see TokenResponse).
        let stored_response = serde_json::to_string(response).map_err(StoreError::Serialize)?;
        let now = now();
        let row = sqlx::query(
            "INSERT INTO connections (bot_id, workspace_id, workspace_name, workspace_icon, owner_type,
                 owner_user_id, owner_name, owner_email, duplicated_template_id, token_type, access_token,
                 refresh_token, key_id, token_response, ref, status, last_request_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'active', $16, $17, $17)
             ON CONFLICT (bot_id) DO UPDATE SET
                 workspace_id = excluded.workspace_id, workspace_name = excluded.workspace_name,
                 workspace_icon = excluded.workspace_icon, owner_type = excluded.owner_type,
                 owner_user_id = excluded.owner_user_id, owner_name = excluded.owner_name,
                 owner_email = excluded.owner_email,
                 duplicated_template_id = COALESCE(excluded.duplicated_template_id, connections.duplicated_template_id),
                 token_type = excluded.token_type, access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token, key_id = excluded.key_id,
                 token_response = excluded.token_response, ref = COALESCE(excluded.ref, connections.ref),
                 status = 'active', authorizations = connections.authorizations + 1,
                 last_request_id = excluded.last_request_id, updated_at = excluded.updated_at
             RETURNING authorizations",
        )
        .bind(bot_id)
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
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let authorizations: i64 = row.try_get("authorizations")?;
        Ok(if authorizations == 1 { Upserted::Created } else { Upserted::Reauthorized })
    }

    /// Every connection, newest first, without tokens.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_connections(&self) -> Result<Vec<ConnectionSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id, workspace_id, workspace_name, owner_type, owner_user_id, owner_name, owner_email,
                    duplicated_template_id, ref, status, authorizations, key_id, created_at, updated_at
             FROM connections ORDER BY created_at DESC, bot_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConnectionSummary {
                    bot_id: row.try_get("bot_id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    workspace_name: row.try_get("workspace_name")?,
                    owner_type: row.try_get("owner_type")?,
                    owner_user_id: row.try_get("owner_user_id")?,
                    owner_name: row.try_get("owner_name")?,
                    owner_email: row.try_get("owner_email")?,
                    duplicated_template_id: row.try_get("duplicated_template_id")?,
                    reference: row.try_get("ref")?,
                    status: row.try_get("status")?,
                    authorizations: row.try_get("authorizations")?,
                    key_id: row.try_get("key_id")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Opens a connection's tokens; `None` when there is no such connection.
    ///
    /// # Errors
    /// Database failures, or a ciphertext that does not open (wrong key, tampering).
    pub async fn connection_tokens(
        &self,
        vault: &Vault,
        bot_id: &str,
    ) -> Result<Option<ConnectionTokens>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT access_token, refresh_token FROM connections WHERE bot_id = $1")
                .bind(bot_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let open = |column: &str, sealed: &[u8]| -> Result<String, StoreError> {
            let plain = vault.open(sealed, &context(bot_id, column))?;
            String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Corrupt)
        };
        let access: Vec<u8> = row.try_get("access_token")?;
        let refresh: Option<Vec<u8>> = row.try_get("refresh_token")?;
        Ok(Some(ConnectionTokens {
            access_token: AccessToken::new(open("access_token", &access)?),
            refresh_token: match refresh {
                Some(sealed) => Some(RefreshToken::new(open("refresh_token", &sealed)?)),
                None => None,
            },
        }))
    }

    /// Closes the pool, flushing SQLite's write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Binds a ciphertext to its row and column.
fn context(bot_id: &str, column: &str) -> Vec<u8> {
    format!("connections/{bot_id}/{column}").into_bytes()
}
